/**
 * Client authentication at the token endpoint (issue 5; SECURITY.md §2.4 MT-01…MT-03, §2.8
 * TK-01…TK-07).
 *
 * A request uses exactly one method (RFC 6749 §2.3): a `client_assertion` (RFC 7523), an
 * `Authorization: Basic` header (RFC 6749 §2.3.1), or — with neither — the TLS client certificate
 * of this connection and the `client_id` parameter (RFC 8705 §2). The method must be the one the
 * client was registered with: a client registered for `private_key_jwt` is never let in by a
 * certificate or a secret. `client_secret_post` is not offered (credentials in a body leak into
 * logs more easily than a header).
 *
 * Every refusal carries an operator-facing `detail` (audit only) and the RFC 6749 §5.2 error the
 * client sees; no detail ever holds the assertion or the secret.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { KeyObject, X509Certificate } from 'node:crypto';
import type { Dispatcher } from 'undici';
import type { ClientCredential, Snapshot } from '../config/snapshot.ts';
import { SIGNING_ALGORITHMS } from '../config/schema.ts';
import { checkKeyUrl, createKeyFetchAgent, fetchJsonDocument } from '../authn/jwks/fetch.ts';
import { validateJwks } from '../authn/jwks/validate.ts';
import type { ValidatedKey } from '../authn/jwks/validate.ts';
import { parseJwt } from '../authn/jwt/parse.ts';
import { verifyJwsSignature } from '../authn/jwt/verify.ts';
import type { IdentifyResult } from '../pki/types.ts';
import type { StateStore } from '../state/store.ts';

/** RFC 7523 §2.2. */
export const JWT_BEARER_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

export type ClientAuthMethod = ClientCredential['auth'];

/** What the request and its connection present, already parsed (form parameters de-duplicated). */
export interface ClientAuthRequest {
  readonly params: ReadonlyMap<string, string>;
  /** Every `Authorization` header value received (more than one is refused). */
  readonly authorization: readonly string[];
  /**
   * The connection's client certificate: the leaf as presented, and how the partners' mTLS trust
   * judged it (`connectionIdentity`); null when none was presented.
   */
  readonly certificate: { readonly leaf: X509Certificate; readonly x5t: string; readonly identity: IdentifyResult } | null;
  readonly nowMs: number;
}

export interface ClientAuthDeps {
  readonly snapshot: Snapshot;
  readonly store: Pick<StateStore, 'setIfAbsent'>;
  /** Key sets of `jwks_uri` clients (defaults to a module-wide cache). */
  readonly remoteKeys?: RemoteClientKeys;
}

export type ClientAuthError = 'invalid_request' | 'invalid_client' | 'temporarily_unavailable';

export type ClientAuthResult =
  | {
      readonly ok: true;
      readonly client: ClientCredential;
      readonly method: ClientAuthMethod;
      /** `x5t#S256` of the certificate that authenticated the client (tls_client_auth, self_signed_tls_client_auth). */
      readonly x5t: string | null;
    }
  | {
      readonly ok: false;
      readonly error: ClientAuthError;
      /** Stable machine reason for the audit record (`assertion.replayed`, …). */
      readonly reason: string;
      /** Operator-facing only. */
      readonly detail: string;
      /** The client the request claimed to be, when known (for the record's partner stream). */
      readonly client: ClientCredential | null;
      /** Set when an `Authorization` header was used: the 401 must challenge that scheme (RFC 6749 §5.2). */
      readonly usedAuthorizationHeader: boolean;
    };

/** Clock skew tolerated on `iat`, `nbf` and `exp` of an assertion. */
export const ASSERTION_LEEWAY_MS = 5_000;
const MAX_JTI_LENGTH = 256;
const MAX_CLIENT_ID_LENGTH = 256;
const ALL_ALGORITHMS: ReadonlySet<string> = new Set(SIGNING_ALGORITHMS);
/** `typ` values that mark a JWT of another kind: never accepted as a client assertion (RFC 8725 §3.11). */
const FOREIGN_TYPES = new Set(['at+jwt', 'dpop+jwt', 'application/at+jwt', 'application/dpop+jwt', 'token-introspection+jwt', 'logout+jwt']);

export async function authenticateClient(request: ClientAuthRequest, deps: ClientAuthDeps): Promise<ClientAuthResult> {
  const { params } = request;
  const clients = deps.snapshot.credentials.clients;
  const assertion = params.get('client_assertion');
  const assertionType = params.get('client_assertion_type');
  const basic = request.authorization.length > 0;
  const usedAuthorizationHeader = basic;
  const fail = (error: ClientAuthError, reason: string, detail: string, client: ClientCredential | null = null): ClientAuthResult => ({
    ok: false,
    error,
    reason,
    detail,
    client,
    usedAuthorizationHeader,
  });

  // RFC 6749 §2.3: one method per request.
  const presented = [assertion !== undefined || assertionType !== undefined ? 'client_assertion' : null, basic ? 'authorization header' : null, params.has('client_secret') ? 'client_secret' : null].filter(
    (name): name is string => name !== null,
  );
  if (presented.length > 1) return fail('invalid_request', 'client_auth.multiple_methods', `the request uses more than one client authentication method (${presented.join(', ')})`);
  if (params.has('client_secret')) return fail('invalid_client', 'client_auth.method_unsupported', 'client_secret_post is not supported (use private_key_jwt or mTLS)');
  if (request.authorization.length > 1) return fail('invalid_request', 'client_auth.multiple_methods', 'the request has more than one Authorization header');

  const claimedId = params.get('client_id');
  if (claimedId !== undefined && !isPrintable(claimedId, MAX_CLIENT_ID_LENGTH)) return fail('invalid_request', 'client_auth.client_id_invalid', 'client_id is not 1–256 printable characters');

  if (assertion !== undefined || assertionType !== undefined) {
    // TK-01: the exact assertion type, with exactly one assertion (duplicates were refused by the form parser).
    if (assertionType !== JWT_BEARER_ASSERTION_TYPE) return fail('invalid_request', 'assertion.type_invalid', 'client_assertion_type is not urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
    if (assertion === undefined) return fail('invalid_request', 'assertion.missing', 'client_assertion_type without client_assertion');
    return privateKeyJwt(assertion, claimedId, request.nowMs, deps, fail);
  }

  if (basic) {
    const credentials = parseBasic(request.authorization[0]!);
    if (credentials === null) return fail('invalid_client', 'client_secret.malformed', 'the Authorization header is not a well-formed Basic credential');
    const client = clients.get(credentials.id) ?? null;
    if (client === null) return fail('invalid_client', 'client.unknown', 'no client with this client_id');
    if (claimedId !== undefined && claimedId !== client.clientId) return fail('invalid_client', 'client.id_mismatch', 'client_id parameter differs from the Basic user', client);
    if (client.auth !== 'client_secret_basic' || client.secretSha256 === null) return fail('invalid_client', 'client_auth.method_not_registered', `client is registered for ${client.auth}, not client_secret_basic`, client);
    // SHA-256 first: equal-length inputs for the constant-time compare, and no stored secret.
    const presentedHash = createHash('sha256').update(credentials.secret, 'utf8').digest();
    if (!timingSafeEqual(presentedHash, client.secretSha256)) return fail('invalid_client', 'client_secret.mismatch', 'the client secret does not match', client);
    return { ok: true, client, method: 'client_secret_basic', x5t: null };
  }

  // RFC 8705 §2: mTLS client authentication — `client_id` parameter and this connection's certificate (MT-01).
  if (claimedId === undefined) return fail('invalid_client', 'client_auth.missing', 'the request has no client authentication');
  const client = clients.get(claimedId) ?? null;
  if (client === null) return fail('invalid_client', 'client.unknown', 'no client with this client_id');
  if (client.auth !== 'tls_client_auth' && client.auth !== 'self_signed_tls_client_auth') {
    return fail('invalid_client', 'client_auth.method_not_registered', `client is registered for ${client.auth}; the request carries no credential for it`, client);
  }
  const certificate = request.certificate;
  if (certificate === null) return fail('invalid_client', 'tls.certificate_missing', `client is registered for ${client.auth}; the connection has no client certificate`, client);

  if (client.auth === 'tls_client_auth') {
    // RFC 8705 §2.1 (MT-02): the certificate must authenticate the client's partner under that
    // partner's own trust (CA set, pins, name patterns).
    const identity = certificate.identity;
    if (!identity.ok) return fail('invalid_client', identity.reason, identity.detail, client);
    if (identity.partnerId !== client.partnerId) return fail('invalid_client', 'tls.partner_mismatch', `the client certificate authenticates partner ${identity.partnerId}, the client belongs to ${client.partnerId}`, client);
    return { ok: true, client, method: 'tls_client_auth', x5t: certificate.x5t };
  }

  // RFC 8705 §2.2 (MT-03): the certificate's public key is one of the client's registered keys.
  const keys = await clientKeys(client, deps);
  if (!keys.ok) return fail(keys.error, keys.reason, keys.detail, client);
  const leafKey = spkiFingerprint(certificate.leaf.publicKey);
  if (!keys.keys.some((key) => key.fingerprint === leafKey)) return fail('invalid_client', 'tls.key_not_registered', 'the client certificate\'s public key is not in the client\'s JWKS', client);
  const now = request.nowMs;
  if (!(Date.parse(certificate.leaf.validFrom) <= now && now < Date.parse(certificate.leaf.validTo))) {
    return fail('invalid_client', 'tls.cert_expired', 'the self-signed client certificate is outside its validity period', client);
  }
  return { ok: true, client, method: 'self_signed_tls_client_auth', x5t: certificate.x5t };
}

type Fail = (error: ClientAuthError, reason: string, detail: string, client?: ClientCredential | null) => ClientAuthResult;

/** RFC 7523 §3 (TK-02…TK-06). Cryptography before claims, claims before the replay cache. */
async function privateKeyJwt(assertion: string, claimedId: string | undefined, nowMs: number, deps: ClientAuthDeps, fail: Fail): Promise<ClientAuthResult> {
  const service = deps.snapshot.tokenService;
  if (service === null) return fail('invalid_client', 'token_service.disabled', 'no token service is configured');
  const parsed = parseJwt(assertion);
  if (!parsed.ok) return fail('invalid_client', 'assertion.malformed', parsed.detail);
  const { payload, header } = parsed;
  const typ = header['typ'];
  if (typ !== undefined && (typeof typ !== 'string' || FOREIGN_TYPES.has(typ.toLowerCase()))) return fail('invalid_client', 'assertion.typ_invalid', 'the assertion\'s "typ" marks another kind of JWT');

  // The client is named by the (unverified) `sub`; nothing else of the payload is trusted yet.
  const sub = payload['sub'];
  if (typeof sub !== 'string' || !isPrintable(sub, MAX_CLIENT_ID_LENGTH)) return fail('invalid_client', 'assertion.sub_invalid', 'the assertion has no usable "sub"');
  const client = deps.snapshot.credentials.clients.get(sub) ?? null;
  if (client === null) return fail('invalid_client', 'client.unknown', 'no client with this client_id');
  if (client.auth !== 'private_key_jwt') return fail('invalid_client', 'client_auth.method_not_registered', `client is registered for ${client.auth}, not private_key_jwt`, client);

  const keys = await clientKeys(client, deps);
  if (!keys.ok) return fail(keys.error, keys.reason, keys.detail, client);
  // TK-06: only the client's own keys, each pinned to its algorithms; `kid` narrows, never widens.
  const candidates = keys.keys.filter((key) => key.algorithms.includes(parsed.alg) && (parsed.kid === undefined || key.kid === parsed.kid));
  if (candidates.length === 0) return fail('invalid_client', 'assertion.key_unknown', `no key of the client's JWKS fits "alg" ${JSON.stringify(parsed.alg)}${parsed.kid !== undefined ? ' and the "kid"' : ''}`, client);
  let verified = false;
  for (const key of candidates) {
    const check = await verifyJwsSignature(parsed, { kid: key.kid, alg: parsed.alg, key: key.publicKey });
    if (check.ok) {
      verified = true;
      break;
    }
  }
  if (!verified) return fail('invalid_client', 'assertion.signature_invalid', 'the assertion\'s signature does not verify with the client\'s keys', client);

  // TK-02: iss = sub = client_id (and = the client_id parameter when present).
  if (payload['iss'] !== sub) return fail('invalid_client', 'assertion.iss_invalid', '"iss" is not the client_id', client);
  if (claimedId !== undefined && claimedId !== sub) return fail('invalid_client', 'client.id_mismatch', 'client_id parameter differs from the assertion\'s "sub"', client);
  // TK-03: the issuer identifier exactly, as a single string (audience injection, RFC 7523bis).
  const aud = payload['aud'];
  if (typeof aud !== 'string') return fail('invalid_client', 'assertion.aud_invalid', '"aud" is not a single string', client);
  if (aud !== service.issuer) return fail('invalid_client', 'assertion.aud_invalid', `"aud" is not the token service's issuer ${service.issuer}`, client);
  // TK-04: lifetime.
  const exp = payload['exp'];
  if (typeof exp !== 'number' || !Number.isFinite(exp)) return fail('invalid_client', 'assertion.exp_invalid', '"exp" is missing or not a number', client);
  const expMs = exp * 1000;
  if (expMs <= nowMs - ASSERTION_LEEWAY_MS) return fail('invalid_client', 'assertion.expired', 'the assertion has expired', client);
  if (expMs - nowMs > service.assertionMaxLifetimeMs + ASSERTION_LEEWAY_MS) {
    return fail('invalid_client', 'assertion.exp_too_far', `"exp" is ${Math.round((expMs - nowMs) / 1000)}s ahead; at most ${service.assertionMaxLifetimeMs / 1000}s`, client);
  }
  for (const claim of ['iat', 'nbf'] as const) {
    if (!Object.hasOwn(payload, claim)) continue;
    const value = payload[claim];
    if (typeof value !== 'number' || !Number.isFinite(value)) return fail('invalid_client', `assertion.${claim}_invalid`, `"${claim}" is not a number`, client);
    if (value * 1000 > nowMs + ASSERTION_LEEWAY_MS) return fail('invalid_client', `assertion.${claim}_invalid`, `"${claim}" is in the future`, client);
  }
  const iat = payload['iat'];
  if (typeof iat === 'number' && expMs - iat * 1000 > service.assertionMaxLifetimeMs + ASSERTION_LEEWAY_MS) {
    return fail('invalid_client', 'assertion.exp_too_far', `"exp" - "iat" exceeds ${service.assertionMaxLifetimeMs / 1000}s`, client);
  }
  // TK-05: single use within its lifetime.
  const jti = payload['jti'];
  if (typeof jti !== 'string' || !isPrintable(jti, MAX_JTI_LENGTH)) return fail('invalid_client', 'assertion.jti_invalid', '"jti" is missing or not 1–256 printable characters', client);
  let first: boolean;
  try {
    first = await deps.store.setIfAbsent(`assertion:${client.clientId}:${jti}`, Math.max(1, expMs - nowMs) + ASSERTION_LEEWAY_MS);
  } catch (error) {
    return fail('temporarily_unavailable', 'state.unavailable', `the replay cache is unavailable: ${error instanceof Error ? error.message : String(error)}`, client);
  }
  if (!first) return fail('invalid_client', 'assertion.replayed', 'this assertion ("jti") was already used', client);
  return { ok: true, client, method: 'private_key_jwt', x5t: null };
}

type ClientKeys = { readonly ok: true; readonly keys: readonly ValidatedKey[] } | { readonly ok: false; readonly error: ClientAuthError; readonly reason: string; readonly detail: string };

/** Validated keys of a `jwks_file`, once per compiled credential (a reload compiles new ones). */
const fileKeys = new WeakMap<ClientCredential, ClientKeys>();

async function clientKeys(client: ClientCredential, deps: ClientAuthDeps): Promise<ClientKeys> {
  if (client.jwks !== null) {
    let known = fileKeys.get(client);
    if (known === undefined) {
      const validation = validateJwks(client.jwks, ALL_ALGORITHMS);
      known = validation.ok ? { ok: true, keys: validation.keys } : { ok: false, error: 'invalid_client', reason: 'client.jwks_invalid', detail: `the client's JWKS is not usable: ${validation.problems.join('; ')}` };
      fileKeys.set(client, known);
    }
    return known;
  }
  if (client.jwksUri !== null) return (deps.remoteKeys ?? defaultRemoteKeys).keys(client.jwksUri);
  return { ok: false, error: 'invalid_client', reason: 'client.jwks_missing', detail: 'the client has no registered keys' };
}

/**
 * Key sets fetched from clients' `jwks_uri`: kept for `ttlMs`, fetched with a timeout, one fetch
 * in flight per URL. A failed fetch keeps the set already held (if any) and is not retried for
 * `failureCooldownMs`, so a client cannot turn the token endpoint into a request amplifier.
 */
export interface RemoteClientKeys {
  keys(url: string): Promise<ClientKeys>;
  close(): Promise<void>;
}

export function createRemoteClientKeys(options: { readonly ttlMs?: number; readonly timeoutMs?: number; readonly failureCooldownMs?: number; readonly ca?: Buffer | null } = {}): RemoteClientKeys {
  const ttlMs = options.ttlMs ?? 300_000;
  const timeoutMs = options.timeoutMs ?? 3_000;
  const failureCooldownMs = options.failureCooldownMs ?? 10_000;
  let agent: Dispatcher | null = null;
  const entries = new Map<string, { value: ClientKeys; fetchedAt: number; inFlight: Promise<ClientKeys> | null }>();

  async function fetchKeys(url: string): Promise<ClientKeys> {
    try {
      agent ??= createKeyFetchAgent({ ca: options.ca ?? null, fetchTimeoutMs: timeoutMs });
      const document = await fetchJsonDocument(checkKeyUrl(url, 'jwks_uri'), { dispatcher: agent, timeoutMs, what: 'client jwks_uri' });
      const validation = validateJwks(document, ALL_ALGORITHMS);
      if (!validation.ok) return { ok: false, error: 'invalid_client', reason: 'client.jwks_invalid', detail: `the client's JWKS is not usable: ${validation.problems.join('; ')}` };
      return { ok: true, keys: validation.keys };
    } catch (error) {
      return { ok: false, error: 'invalid_client', reason: 'client.jwks_unavailable', detail: `the client's jwks_uri could not be fetched: ${error instanceof Error ? error.message : String(error)}` };
    }
  }

  return {
    async keys(url) {
      const now = Date.now();
      const entry = entries.get(url);
      if (entry !== undefined) {
        if (entry.inFlight !== null) return entry.inFlight;
        const age = now - entry.fetchedAt;
        if (entry.value.ok ? age < ttlMs : age < failureCooldownMs) return entry.value;
      }
      const inFlight = fetchKeys(url).then((value) => {
        // A failed refresh keeps the last good set until it is twice its TTL old.
        const keep = !value.ok && entry !== undefined && entry.value.ok && now - entry.fetchedAt < 2 * ttlMs;
        entries.set(url, { value: keep ? entry.value : value, fetchedAt: keep ? entry.fetchedAt : Date.now(), inFlight: null });
        return keep ? entry.value : value;
      });
      entries.set(url, { value: entry?.value ?? { ok: false, error: 'invalid_client', reason: 'client.jwks_unavailable', detail: 'fetching' }, fetchedAt: entry?.fetchedAt ?? 0, inFlight });
      return inFlight;
    },
    async close() {
      entries.clear();
      const closing = agent;
      agent = null;
      await closing?.close();
    },
  };
}

const defaultRemoteKeys = createRemoteClientKeys();

/** RFC 7617 §2 with RFC 6749 §2.3.1: user and password are form-urlencoded before Base64. */
function parseBasic(header: string): { readonly id: string; readonly secret: string } | null {
  const match = /^Basic +([A-Za-z0-9+/]+={0,2})$/i.exec(header);
  if (match === null) return null;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return null;
  try {
    const id = decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' '));
    const secret = decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, ' '));
    if (!isPrintable(id, MAX_CLIENT_ID_LENGTH) || secret.length === 0 || secret.length > 1024) return null;
    return { id, secret };
  } catch {
    return null;
  }
}

function spkiFingerprint(key: KeyObject): string {
  return createHash('sha256').update(key.export({ format: 'der', type: 'spki' })).digest('hex');
}

function isPrintable(value: string, maxLength: number): boolean {
  return value.length > 0 && value.length <= maxLength && /^[\x20-\x7e]+$/.test(value);
}
