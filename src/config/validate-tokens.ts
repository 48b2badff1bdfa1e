/**
 * Semantic checks of the token service and its clients (issue 5): where it listens, that its
 * lifetimes respect their ceiling, and that every client can actually authenticate the way its
 * credential says — with nothing configured that the method would ignore.
 */
import { secureTransport } from './checks.ts';
import type { ValidationContext } from './checks.ts';
import type { ConfigView } from './config-view.ts';
import { jwksFile } from './file-checks.ts';
import type { ConfigPath, PendingIssue } from './issues.ts';
import { INSECURE_ACKS } from './schema.ts';
import { TOKEN_SERVICE_ISSUER_ID } from './snapshot.ts';

/** RFC 7523 §3 leaves the bound to the server; the issue asks for at most 5 minutes. */
const MAX_ASSERTION_LIFETIME_MS = 5 * 60_000;

export function tokenServiceChecks(view: ConfigView): PendingIssue[] {
  const issues: PendingIssue[] = [];
  const service = view.tokenService;
  view.issuers.entries.forEach((issuer, index) => {
    if (issuer.id === TOKEN_SERVICE_ISSUER_ID) {
      issues.push({ code: 'CONFIG_CONFLICT', path: ['issuers', index, 'id'], message: `issuer id "${TOKEN_SERVICE_ISSUER_ID}" is reserved for the gateway's own token service` });
    }
  });
  if (service !== null) {
    if (service.listener !== undefined && view.listeners.isList && !view.listeners.entries.some((listener) => listener.name === service.listener)) {
      issues.push({ code: 'CONFIG_DANGLING_REF', path: ['token_service', 'listener'], message: `unknown listener "${service.listener}" (defined: ${view.listeners.entries.map((listener) => listener.name).join(', ')})` });
    }
    if (service.issuer !== undefined) issues.push(...secureTransport(service.issuer, ['token_service', 'issuer']));
    const ceiling = service.max_token_lifetime;
    if (ceiling !== undefined && service.token_lifetime !== undefined && service.token_lifetime > ceiling) {
      issues.push({ code: 'CONFIG_INVALID_VALUE', path: ['token_service', 'token_lifetime'], message: 'longer than max_token_lifetime' });
    }
    if (service.assertion_max_lifetime !== undefined && service.assertion_max_lifetime > MAX_ASSERTION_LIFETIME_MS) {
      issues.push({ code: 'CONFIG_INVALID_VALUE', path: ['token_service', 'assertion_max_lifetime'], message: 'at most 5m: a client assertion is a one-time proof, not a credential' });
    }
    view.apis.entries.forEach((api, index) => {
      if (ceiling !== undefined && api.token_lifetime !== undefined && api.token_lifetime > ceiling) {
        issues.push({ code: 'CONFIG_INVALID_VALUE', path: ['apis', index, 'token_lifetime'], message: 'longer than token_service.max_token_lifetime' });
      }
    });
  }

  const clientIds = new Map<string, string>();
  view.partners.entries.forEach((partner, partnerIndex) => {
    partner.credentials.entries.forEach((credential, index) => {
      if (credential.type !== 'client') return;
      const at = (...rest: (string | number)[]): ConfigPath => ['partners', partnerIndex, 'credentials', index, ...rest];
      const written = partner.credentials.written[index] ?? new Set<string>();
      if (service === null) {
        issues.push({ code: 'CONFIG_DANGLING_REF', path: at('type'), message: 'a "client" credential needs the "token_service" section' });
      }
      if (credential.client_id !== undefined) {
        const previous = clientIds.get(credential.client_id);
        if (previous !== undefined) issues.push({ code: 'CONFIG_DUPLICATE_ID', path: at('client_id'), message: `client_id "${credential.client_id}" is also used by ${previous}` });
        else clientIds.set(credential.client_id, `partner ${partner.id ?? partnerIndex}`);
      }
      const uses = (key: string): boolean => written.has(key);
      const forbid = (key: string, why: string): void => {
        if (uses(key)) issues.push({ code: 'CONFIG_CONFLICT', path: at(key), message: `"${key}" is not used by ${credential.auth}: ${why}` });
      };
      switch (credential.auth) {
        case 'private_key_jwt':
          if (uses('jwks_file') === uses('jwks_uri')) {
            issues.push({ code: 'CONFIG_INVALID_TYPE', path: at('auth'), message: 'private_key_jwt needs exactly one of "jwks_file" or "jwks_uri" (the keys that sign the client assertions)' });
          }
          forbid('secret_sha256', 'the client proves itself with a signed assertion');
          break;
        case 'self_signed_tls_client_auth':
          if (!uses('jwks_file')) issues.push({ code: 'CONFIG_INVALID_TYPE', path: at('auth'), message: 'self_signed_tls_client_auth needs "jwks_file" (the key of its certificate, RFC 8705 §2.2)' });
          forbid('jwks_uri', 'its key must be registered in jwks_file');
          forbid('secret_sha256', 'the client proves itself with its certificate');
          break;
        case 'tls_client_auth':
          if (!(partner.mtls !== undefined || view.partners.written[partnerIndex]?.has('mtls'))) {
            issues.push({ code: 'CONFIG_DANGLING_REF', path: at('auth'), message: 'tls_client_auth needs the partner\'s "mtls" section: its certificate identifies the client (RFC 8705 §2.1)' });
          }
          for (const key of ['jwks_file', 'jwks_uri', 'secret_sha256']) forbid(key, 'the client proves itself with its partner certificate');
          break;
        case 'client_secret_basic':
          if (!uses('secret_sha256')) issues.push({ code: 'CONFIG_INVALID_TYPE', path: at('auth'), message: 'client_secret_basic needs "secret_sha256"' });
          if (!uses('insecure_shared_secret')) {
            issues.push({ code: 'CONFIG_INSECURE_UNACKNOWLEDGED', path: at('auth'), message: `a client secret is a long-lived shared credential; set "insecure_shared_secret: ${INSECURE_ACKS.clientSecret}"` });
          }
          forbid('jwks_file', 'the client proves itself with its secret');
          forbid('jwks_uri', 'the client proves itself with its secret');
          break;
        default:
          break;
      }
      if (credential.jwks_uri !== undefined) issues.push(...secureTransport(credential.jwks_uri, at('jwks_uri')));
      const ceiling = service?.max_token_lifetime;
      if (ceiling !== undefined && credential.token_lifetime !== undefined && credential.token_lifetime > ceiling) {
        issues.push({ code: 'CONFIG_INVALID_VALUE', path: at('token_lifetime'), message: 'longer than token_service.max_token_lifetime' });
      }
    });
  });
  return issues;
}

export function tokenFileChecks(view: ConfigView, context: ValidationContext): Promise<PendingIssue[]>[] {
  const checks: Promise<PendingIssue[]>[] = [];
  view.partners.entries.forEach((partner, partnerIndex) => {
    partner.credentials.entries.forEach((credential, index) => {
      if (credential.type === 'client' && credential.jwks_file !== undefined) {
        checks.push(jwksFile(context.files, ['partners', partnerIndex, 'credentials', index, 'jwks_file'], credential.jwks_file, null));
      }
    });
  });
  return checks;
}
