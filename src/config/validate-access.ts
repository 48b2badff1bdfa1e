/**
 * Semantic checks of what decides access: routes (what they require and whether anything could
 * ever satisfy it), partner grants, and CEL policy rules. A setting that could never take effect
 * — a grant for an environment no listener serves, scopes on an anonymous route — is an error,
 * not a silent no-op: on a security gateway an operator must get exactly what the file says.
 */
import { compileGrant } from '../policy/grants.ts';
import { compileRule } from '../policy/rules.ts';
import { duplicatesIn, knownIds } from './checks.ts';
import { allHave } from './config-view.ts';
import type { ConfigView, RulesView } from './config-view.ts';
import type { ValidationContext } from './checks.ts';
import type { ConfigPath, PendingIssue } from './issues.ts';
import type { CredentialType } from './schema.ts';

/** Route keys that only mean something when a credential is checked. */
const AUTHENTICATED_ONLY = ['credentials', 'scopes', 'purpose', 'policies', 'rate_limit'] as const;

export function routeAccessChecks(view: ConfigView): PendingIssue[] {
  const issues: PendingIssue[] = [];
  const apis = knownIds(view.apis);
  /** API index → routes that accept tokens for it: each API without an audience is reported once. */
  const tokenRoutesByApi = new Map<number, string[]>();
  /** API index → routes that accept opaque tokens: such an API must say which endpoint knows them. */
  const opaqueRoutesByApi = new Map<number, string[]>();
  const endpoints = knownIds(view.introspection);

  view.routes.entries.forEach((route, index) => {
    const written = view.routes.written[index];
    // Not a mapping (the schema says so), or `auth` itself is wrong: nothing here can be judged.
    if (!written || route.auth === undefined) return;
    const at = (...rest: (string | number)[]): ConfigPath => ['routes', index, ...rest];

    if (route.auth === 'none') {
      for (const key of AUTHENTICATED_ONLY) {
        if (written.has(key)) {
          issues.push({ code: 'CONFIG_CONFLICT', path: at(key), message: `"${key}" does nothing on a route with "auth: none": no credential is checked there, so nothing can be required of one` });
        }
      }
      return;
    }

    if (!written.has('api')) {
      issues.push({
        code: 'CONFIG_CONFLICT',
        path: written.has('auth') ? at('auth') : at(),
        message: 'a route with "auth: required" must name an "api": partners are granted APIs, so no grant could ever allow this route',
      });
    }
    if (route.purpose && route.purpose.header === undefined && route.purpose.claim === undefined) {
      issues.push({ code: 'CONFIG_INVALID_TYPE', path: at('purpose'), message: 'missing key: "purpose" needs "header" or "claim", or no request could ever declare a purpose' });
    }

    const credentials = route.credentials;
    if (credentials === undefined) return;
    const credentialAt = (type: CredentialType): ConfigPath => (written.has('credentials') ? at('credentials', credentials.indexOf(type)) : at());
    const defaulted = written.has('credentials') ? '' : ' (the default of "credentials")';
    // The token service is an issuer too (its tokens are JWTs the gateway validates).
    if (credentials.includes('jwt') && view.issuers.isList && view.issuers.entries.length === 0 && view.tokenService === null) {
      issues.push({ code: 'CONFIG_CONFLICT', path: credentialAt('jwt'), message: `the route accepts jwt tokens${defaulted}, but no issuers are configured: every token would be refused` });
    }
    if (credentials.includes('introspection') && view.introspection.isList && view.introspection.entries.length === 0) {
      issues.push({ code: 'CONFIG_CONFLICT', path: credentialAt('introspection'), message: 'the route accepts introspection tokens, but no introspection endpoints are configured: every token would be refused' });
    }

    if (credentials.includes('introspection') && route.api !== undefined && apis?.has(route.api)) {
      const apiIndex = view.apis.entries.findIndex((api) => api.id === route.api);
      opaqueRoutesByApi.set(apiIndex, [...(opaqueRoutesByApi.get(apiIndex) ?? []), route.id ?? `routes[${index}]`]);
    }
    const acceptsTokens = credentials.some((type) => type === 'jwt' || type === 'introspection');
    if (acceptsTokens && route.api !== undefined && apis?.has(route.api)) {
      const apiIndex = view.apis.entries.findIndex((api) => api.id === route.api);
      const api = view.apis.entries[apiIndex]!;
      // A written but invalid audience is the schema's to report.
      if (api.audience === undefined && !view.apis.written[apiIndex]?.has('audience')) {
        tokenRoutesByApi.set(apiIndex, [...(tokenRoutesByApi.get(apiIndex) ?? []), route.id ?? `routes[${index}]`]);
      }
    }
  });

  view.apis.entries.forEach((api, apiIndex) => {
    if (api.introspection !== undefined && endpoints && !endpoints.has(api.introspection)) {
      issues.push({
        code: 'CONFIG_DANGLING_REF',
        path: ['apis', apiIndex, 'introspection'],
        message: `unknown introspection endpoint "${api.introspection}" (defined endpoints: ${[...endpoints].join(', ') || 'none'})`,
      });
    }
  });
  for (const [apiIndex, routes] of opaqueRoutesByApi) {
    const api = view.apis.entries[apiIndex]!;
    if (api.introspection !== undefined || !view.introspection.isList || view.introspection.entries.length <= 1) continue;
    issues.push({
      code: 'CONFIG_CONFLICT',
      path: ['apis', apiIndex],
      message: `api "${api.id}" has routes (${routes.join(', ')}) that accept opaque tokens and ${view.introspection.entries.length} introspection endpoints are configured: name the one that knows its tokens in "introspection"`,
    });
  }
  for (const [apiIndex, routes] of tokenRoutesByApi) {
    const id = view.apis.entries[apiIndex]!.id!;
    issues.push({
      code: 'CONFIG_CONFLICT',
      path: ['apis', apiIndex, 'audience'],
      message: `api "${id}" has no "audience", but ${routes.length === 1 ? 'route' : 'routes'} ${routes.join(', ')} ${routes.length === 1 ? 'accepts' : 'accept'} tokens: a token must name the API it is meant for in "aud" (RFC 9068 §4, RFC 8725 §3.9), or one minted for another service would be accepted here`,
    });
  }
  return issues;
}

export function grantChecks(view: ConfigView): PendingIssue[] {
  const issues: PendingIssue[] = [];
  const environments = allHave(view.listeners, 'environment') ? new Set(view.listeners.entries.map((listener) => listener.environment!)) : null;
  view.partners.entries.forEach((partner, partnerIndex) => {
    partner.grants.entries.forEach((grant, index) => {
      const at = (...rest: (string | number)[]): ConfigPath => ['partners', partnerIndex, 'grants', index, ...rest];
      const written = partner.grants.written[index];
      if (!written) return;
      if (environments && grant.environments) {
        grant.environments.forEach((environment, envIndex) => {
          if (environments.has(environment)) return;
          issues.push({
            code: 'CONFIG_DANGLING_REF',
            path: written.has('environments') ? at('environments', envIndex) : at('environments'),
            message: `no listener serves environment "${environment}"${written.has('environments') ? '' : ' (the default of "environments")'}, so this grant could never apply (served environments: ${[...environments].join(', ')})`,
          });
        });
      }
      const complete = partner.grants.complete[index];
      if (!complete) return;
      const compiled = compileGrant(complete, partner.id ?? `partners[${partnerIndex}]`, index);
      if (!compiled.ok) issues.push({ code: 'CONFIG_INVALID_VALUE', path: at(...compiled.path), message: compiled.message });
    });
  });
  return issues;
}

/** Every rule list: global, per API, per route (authenticated ones), per partner. */
export function policyChecks(view: ConfigView, context: ValidationContext): PendingIssue[] {
  const issues = ruleListChecks(view.policies, ['policies'], 'policies', context);
  view.apis.entries.forEach((api, index) => {
    issues.push(...ruleListChecks(api.policies, ['apis', index, 'policies'], `apis[${api.id ?? index}]`, context));
  });
  view.routes.entries.forEach((route, index) => {
    // On an anonymous route the list itself is the mistake (reported by routeAccessChecks).
    if (route.auth === 'none') return;
    issues.push(...ruleListChecks(route.policies, ['routes', index, 'policies'], `routes[${route.id ?? index}]`, context));
  });
  view.partners.entries.forEach((partner, index) => {
    issues.push(...ruleListChecks(partner.policies, ['partners', index, 'policies'], `partners[${partner.id ?? index}]`, context));
  });
  return issues;
}

function ruleListChecks(rules: RulesView, base: ConfigPath, scope: string, context: ValidationContext): PendingIssue[] {
  // Rule ids name the rule on decision records: within one list they must tell rules apart.
  const issues = duplicatesIn(rules, base, 'id', 'rule id', context);
  rules.entries.forEach((_rule, index) => {
    const written = rules.written[index];
    if (!written) return;
    const at = (...rest: string[]): ConfigPath => [...base, index, ...rest];
    const hasRequire = written.has('require');
    const hasDeny = written.has('deny');
    if (hasRequire && hasDeny) {
      issues.push({ code: 'CONFIG_CONFLICT', path: at('deny'), message: '"require" and "deny" are both set: a rule is one or the other' });
      return;
    }
    if (!hasRequire && !hasDeny) {
      issues.push({ code: 'CONFIG_INVALID_TYPE', path: at(), message: 'missing key: a rule needs "require" (must be true to allow) or "deny" (denies when true)' });
      return;
    }
    const complete = rules.complete[index];
    if (!complete) return;
    const compiled = compileRule(complete, scope);
    if (!compiled.ok) issues.push({ code: 'CONFIG_INVALID_VALUE', path: at(hasRequire ? 'require' : 'deny'), message: compiled.message });
  });
  return issues;
}
