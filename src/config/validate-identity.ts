/**
 * Semantic checks of what proves identity: token issuers, introspection endpoints and the
 * partner credentials that point at them. A credential must resolve to exactly one partner, so
 * anything two partners could share (a credential id, a client id at one issuer or endpoint, an
 * API key id) is a duplicate.
 */
import { UniqueValues, duplicatesIn, isPlainHttp, knownIds, secureTransport, unknownRef } from './checks.ts';
import type { ValidationContext } from './checks.ts';
import type { ConfigView } from './config-view.ts';
import { caBundle, certificateAndKey, jwksFile, signingKey } from './file-checks.ts';
import type { ConfigPath, PendingIssue } from './issues.ts';

/** SECURITY.md JWT-18: leeway for exp/nbf/iat (RFC 7519 §4.1.4 allows "some small leeway") of at most 60 s. */
const MAX_LEEWAY_MS = 60_000;

const KEY_SOURCES = ['jwks_uri', 'discovery', 'jwks_file'] as const;

export function issuerChecks(view: ConfigView, context: ValidationContext): PendingIssue[] {
  const issues = [
    ...duplicatesIn(view.issuers, 'issuers', 'id', 'issuer id', context),
    // Tokens pick their issuer by exact `iss` (RFC 9068 §4 step 3): two entries would be ambiguous.
    ...duplicatesIn(view.issuers, 'issuers', 'issuer', 'issuer (iss)', context),
  ];
  view.issuers.entries.forEach((issuer, index) => {
    const at = (...rest: (string | number)[]): ConfigPath => ['issuers', index, ...rest];
    const written = view.issuers.written[index];
    if (!written) return;
    // Presence as written: a source with a bad value still counts as set (the schema reports the value).
    const sources = KEY_SOURCES.filter((source) => written.has(source));
    if (sources.length === 0) {
      issues.push({ code: 'CONFIG_INVALID_TYPE', path: at(), message: 'missing key source: set exactly one of "jwks_uri", "discovery", "jwks_file"' });
    }
    for (const extra of sources.slice(1)) {
      issues.push({ code: 'CONFIG_CONFLICT', path: at(extra), message: `"${sources[0]}" and "${extra}" are both set: an issuer has exactly one key source` });
    }
    if (issuer.leeway !== undefined && issuer.leeway > MAX_LEEWAY_MS) {
      issues.push({ code: 'CONFIG_INVALID_VALUE', path: at('leeway'), message: `leeway is at most 60s (got ${issuer.leeway / 1000}s): a longer one keeps expired tokens alive` });
    }
    if (issuer.jwks_uri !== undefined) issues.push(...secureTransport(issuer.jwks_uri, at('jwks_uri')));
    if (issuer.discovery !== undefined) issues.push(...secureTransport(issuer.discovery, at('discovery')));
    if (written.has('ca') && sources.length === 1) {
      const remote = issuer.jwks_uri ?? issuer.discovery;
      if (sources[0] === 'jwks_file') {
        issues.push({ code: 'CONFIG_CONFLICT', path: at('ca'), message: '"ca" is set but the keys are read from "jwks_file": nothing is fetched over TLS' });
      } else if (isPlainHttp(remote)) {
        issues.push({ code: 'CONFIG_CONFLICT', path: at('ca'), message: `"ca" is set but "${sources[0]}" is http://: nothing is fetched over TLS` });
      }
    }
  });
  return issues;
}

export function introspectionChecks(view: ConfigView, context: ValidationContext): PendingIssue[] {
  const issues = duplicatesIn(view.introspection, 'introspection', 'id', 'introspection endpoint id', context);
  view.introspection.entries.forEach((endpoint, index) => {
    if (endpoint.url === undefined) return;
    issues.push(...secureTransport(endpoint.url, ['introspection', index, 'url']));
    if (endpoint.ca !== undefined && isPlainHttp(endpoint.url)) {
      issues.push({ code: 'CONFIG_CONFLICT', path: ['introspection', index, 'ca'], message: '"ca" is set but "url" is http://: nothing is sent over TLS' });
    }
  });
  return issues;
}

export function credentialChecks(view: ConfigView, context: ValidationContext): PendingIssue[] {
  const issues: PendingIssue[] = [];
  const issuers = knownIds(view.issuers);
  const endpoints = knownIds(view.introspection);
  const ids = new UniqueValues('credential id', context);
  const keyIds = new UniqueValues('API key id', context);
  // A client id must name one credential per issuer / endpoint, or a token would match two partners.
  const clientIds = new Map<string, UniqueValues>();
  const clientIdsAt = (kind: string, id: string): UniqueValues => {
    const key = `${kind}\u0000${id}`;
    let unique = clientIds.get(key);
    if (!unique) clientIds.set(key, (unique = new UniqueValues('client_id', context, ` at ${kind} "${id}"`)));
    return unique;
  };

  view.partners.entries.forEach((partner, partnerIndex) => {
    const owner = partner.id === undefined ? `partners[${partnerIndex}]` : `partner "${partner.id}"`;
    partner.credentials.entries.forEach((credential, index) => {
      const at = (key: string): ConfigPath => ['partners', partnerIndex, 'credentials', index, key];
      if (credential.id !== undefined) issues.push(...ids.claim(credential.id, at('id'), owner));
      switch (credential.type) {
        case 'jwt':
          if (credential.issuer === undefined) break;
          if (issuers && !issuers.has(credential.issuer)) issues.push(unknownRef('issuer', credential.issuer, issuers, at('issuer')));
          else if (credential.client_id !== undefined) issues.push(...clientIdsAt('issuer', credential.issuer).claim(credential.client_id, at('client_id'), owner));
          break;
        case 'introspection':
          if (credential.endpoint === undefined) break;
          if (endpoints && !endpoints.has(credential.endpoint)) issues.push(unknownRef('introspection endpoint', credential.endpoint, endpoints, at('endpoint')));
          else if (credential.client_id !== undefined) issues.push(...clientIdsAt('endpoint', credential.endpoint).claim(credential.client_id, at('client_id'), owner));
          break;
        case 'api_key':
          if (credential.key_id !== undefined) issues.push(...keyIds.claim(credential.key_id, at('key_id'), owner));
          break;
      }
    });
  });
  return issues;
}

/** Reads and checks every file issuers and introspection endpoints name. */
export function identityFileChecks(view: ConfigView, context: ValidationContext): Promise<PendingIssue[]>[] {
  const { files } = context;
  const checks: Promise<PendingIssue[]>[] = [];
  view.issuers.entries.forEach((issuer, index) => {
    const algorithms = issuer.algorithms === undefined ? null : new Set<string>(issuer.algorithms);
    if (issuer.jwks_file !== undefined) checks.push(jwksFile(files, ['issuers', index, 'jwks_file'], issuer.jwks_file, algorithms));
    if (issuer.ca !== undefined) checks.push(caBundle(files, ['issuers', index, 'ca'], issuer.ca));
  });
  view.introspection.entries.forEach((endpoint, index) => {
    const at = (...rest: string[]): ConfigPath => ['introspection', index, ...rest];
    if (endpoint.ca !== undefined) checks.push(caBundle(files, at('ca'), endpoint.ca));
    const auth = endpoint.auth;
    if (auth?.method === 'private_key_jwt') checks.push(signingKey(files, at('auth', 'key'), auth.key, auth.alg));
    if (auth?.method === 'tls_client_auth') checks.push(certificateAndKey(files, at('auth'), auth.cert, auth.key));
  });
  return checks;
}
