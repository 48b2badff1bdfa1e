/**
 * Explains, stage by stage, what the gateway would decide for a request of a given partner
 * credential — with the gateway's own functions: the canonical-path rule of ingress, the
 * zone's router, the credential index, and the policy module's `authorize`. Only the
 * cryptographic check of the credential itself is assumed (the explanation starts from "this
 * credential, carrying these scopes").
 */
import { canonicalizeTarget } from '../http/canonical-path.ts';
import type { Principal } from '../authn/principal.ts';
import type { CompiledListener, Snapshot } from '../config/snapshot.ts';
import type { RefusalReason } from '../errors.ts';
import { problemFor } from '../errors.ts';
import { authorize } from '../policy/authorize.ts';
import { declaredPurpose } from '../policy/purpose.ts';
import type { ExplanationStep } from '../policy/types.ts';

export interface ExplainInput {
  readonly partnerId: string;
  readonly credentialId: string;
  readonly method: string;
  readonly path: string;
  readonly listener?: string;
  readonly host?: string;
  readonly scopes: readonly string[];
  readonly purpose?: string;
  readonly sourceIp: string;
  readonly now: Date;
  readonly claims?: Readonly<Record<string, unknown>>;
}

export type Explanation = {
  readonly steps: readonly ExplanationStep[];
  readonly listener: CompiledListener | null;
  readonly host: string | null;
  readonly principal: Principal | null;
} & (
  | { readonly allowed: true; readonly routeId: string; readonly decidedBy: string; readonly rules: readonly string[] }
  | { readonly allowed: false; readonly reason: RefusalReason; readonly status: number; readonly code: string; readonly detail: string; readonly decidedBy: string | null }
);

export function explainRequest(snapshot: Snapshot, input: ExplainInput): Explanation {
  const steps: ExplanationStep[] = [];
  const base = { listener: null, host: null, principal: null } as { listener: CompiledListener | null; host: string | null; principal: Principal | null };
  const deny = (reason: RefusalReason, detail: string, decidedBy: string | null = null): Explanation => {
    const problem = problemFor(reason);
    return { ...base, steps, allowed: false, reason, status: problem.status, code: problem.code, detail, decidedBy };
  };

  // The partner credential, and the partner it belongs to.
  const partner = snapshot.partners.get(input.partnerId);
  if (!partner) return deny('credential.unknown', `no partner "${input.partnerId}" in the configuration`);
  const credentialEntry = findCredential(snapshot, input.credentialId);
  if (!credentialEntry || credentialEntry.partnerId !== partner.id) {
    return deny('credential.unknown', `partner ${partner.id} has no credential "${input.credentialId}"`);
  }

  // Listener: the named one, or the first whose zone has a route for this method and path.
  const target = canonicalizeTarget(input.path);
  if (!target.ok) {
    steps.push({ stage: 'ingress', check: 'canonical path', outcome: 'fail', detail: `${input.path} is not in canonical form` });
    return deny(target.reason, `${input.path} is not in canonical form`);
  }
  steps.push({ stage: 'ingress', check: 'canonical path', outcome: 'pass', detail: `${target.path} is canonical` });
  const candidates = input.listener
    ? snapshot.listeners.filter((listener) => listener.name === input.listener)
    : snapshot.listeners;
  if (candidates.length === 0) return deny('http.host_not_allowed', `no listener named "${input.listener}"`);
  let chosen: { listener: CompiledListener; host: string } | null = null;
  for (const listener of candidates) {
    const host = input.host ?? listener.hostnames.find((name) => !name.startsWith('*.')) ?? listener.hostnames[0]!;
    if (!listener.servesHost(host)) continue;
    const match = snapshot.routers.get(listener.zone)?.match(host, input.method, target.path);
    if (match && match.kind !== 'not_found') {
      chosen = { listener, host };
      break;
    }
    chosen ??= { listener, host };
  }
  if (!chosen) {
    steps.push({ stage: 'ingress', check: 'host allowlist', outcome: 'fail', detail: `host ${input.host} is not served by ${input.listener ?? 'any listener'}` });
    return deny('http.host_not_allowed', `host ${input.host} is not listed`);
  }
  base.listener = chosen.listener;
  base.host = chosen.host;
  steps.push({
    stage: 'ingress',
    check: 'host allowlist',
    outcome: 'pass',
    detail: `host ${chosen.host} on listener ${chosen.listener.name} (zone ${chosen.listener.zone}, environment ${chosen.listener.environment})`,
  });

  const match = snapshot.routers.get(chosen.listener.zone)!.match(chosen.host, input.method, target.path);
  if (match.kind === 'not_found') {
    steps.push({ stage: 'routing', check: 'route', outcome: 'fail', detail: `no route of zone ${chosen.listener.zone} matches ${input.method} ${target.path}` });
    return deny('route.not_found', 'no route');
  }
  if (match.kind === 'method_not_allowed') {
    steps.push({ stage: 'routing', check: 'route', outcome: 'fail', detail: `${target.path} allows ${match.allow.join(', ')}, not ${input.method}` });
    return deny('route.method_not_allowed', `allowed: ${match.allow.join(', ')}`);
  }
  const route = match.route;
  steps.push({
    stage: 'routing',
    check: 'route',
    outcome: 'pass',
    detail: `route ${route.id} (${route.path}${route.api ? `, api ${route.api.id}` : ''}${route.scopes.length ? `, needs ${route.scopes.join(' ')}` : ''})`,
  });
  if (route.auth === 'none') {
    steps.push({ stage: 'credential', check: 'auth', outcome: 'skip', detail: 'route is public (auth: none): no credential needed' });
    return { ...base, steps, allowed: true, routeId: route.id, decidedBy: `route/${route.id}`, rules: [] };
  }
  // A token service client presents the service's JWTs on the data plane.
  const presentedType = credentialEntry.type === 'client' ? 'jwt' : credentialEntry.type;
  if (!route.credentials.includes(presentedType)) {
    steps.push({ stage: 'credential', check: 'credential type', outcome: 'fail', detail: `route ${route.id} accepts ${route.credentials.join(', ')}, not ${presentedType}` });
    return deny(credentialEntry.type === 'api_key' ? 'api_key.invalid' : 'token.issuer_unknown', 'credential type not accepted');
  }
  if (credentialEntry.type === 'api_key' && credentialEntry.expiresAt <= input.now.getTime()) {
    steps.push({ stage: 'credential', check: 'expiry', outcome: 'fail', detail: `API key ${credentialEntry.keyId} expired ${new Date(credentialEntry.expiresAt).toISOString()}` });
    return deny('api_key.expired', 'API key expired');
  }
  const principal: Principal = {
    partner,
    credential: credentialEntry,
    credentialType: presentedType,
    longLived: credentialEntry.type === 'api_key',
    claims: Object.freeze({ ...Object.create(null), ...input.claims }),
    scopes: new Set(input.scopes),
    tokenId: null,
    issuer: credentialEntry.type === 'jwt' ? (snapshot.issuers.get(credentialEntry.issuerId)?.issuer ?? null) : null,
    expiresAt: null,
  };
  base.principal = principal;
  steps.push({
    stage: 'credential',
    check: 'partner binding',
    outcome: 'pass',
    detail: `credential ${credentialEntry.id} (${credentialEntry.type}) belongs to partner ${partner.id}; assumed valid, carrying scopes [${input.scopes.join(' ')}]`,
  });

  const headers: Record<string, string> = {};
  if (input.purpose !== undefined && route.purpose?.header) headers[route.purpose.header] = input.purpose;
  const claims = input.purpose !== undefined && route.purpose?.claim && !route.purpose.header ? { ...principal.claims, [route.purpose.claim]: input.purpose } : principal.claims;
  const purpose = declaredPurpose(route, headers, claims);
  const decision = authorize({
    principal,
    route,
    request: {
      method: input.method,
      path: target.path,
      host: chosen.host,
      params: match.params,
      sourceIp: input.sourceIp,
      environment: chosen.listener.environment,
      purpose,
      now: input.now,
    },
    explain: true,
  });
  steps.push(...decision.steps);
  if (decision.allowed) return { ...base, steps, allowed: true, routeId: route.id, decidedBy: decision.grant.id, rules: decision.rules };
  return deny(decision.reason, decision.detail, decision.decidedBy);
}

function findCredential(snapshot: Snapshot, id: string) {
  for (const byClient of snapshot.credentials.jwt.values()) for (const credential of byClient.values()) if (credential.id === id) return credential;
  for (const byClient of snapshot.credentials.introspection.values()) for (const credential of byClient.values()) if (credential.id === id) return credential;
  for (const credential of snapshot.credentials.apiKeys.values()) if (credential.id === id) return credential;
  return undefined;
}
