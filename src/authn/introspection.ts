/**
 * Opaque access tokens, checked at an RFC 7662 introspection endpoint — the gateway as an
 * authenticated client of the authorization server (SECURITY.md §2.7, IN-01..IN-07).
 *
 * - The call: POST `application/x-www-form-urlencoded` with `token` and `token_type_hint`
 *   (RFC 7662 §2.1), authenticated by `private_key_jwt`, `tls_client_auth` or
 *   `client_secret_basic` (see `introspection/client-auth.ts`), over one undici pool per endpoint.
 * - The answer: only a 200 JSON object with the boolean `active: true` can allow, and even then
 *   `exp`, `nbf`, `iss`, `aud`, `scope`, `client_id` and `token_type` are re-checked here
 *   (`introspection/claims.ts`).
 * - Fail closed: no answer (connection error, timeout, non-200, not JSON, over the call budget)
 *   is `dependency.introspection_unavailable` — a 503, never an allow (IN-04).
 * - Cache: keyed on SHA-256(token) and audience; an active answer for at most
 *   min(`cache_ttl`, exp − now), an answer that refuses for `negative_cache_ttl`; a failure to
 *   get an answer is never cached (IN-05). A hit is answered synchronously.
 */
import { Pool } from 'undici';
import type { CompiledIntrospection } from '../config/snapshot.ts';
import { log } from '../log.ts';
import { CallBudget } from './introspection/call-budget.ts';
import { CACHE_MAX_ENTRIES, ExpiringLruCache, cacheKey } from './introspection/cache.ts';
import { interpretIntrospection, refuse } from './introspection/claims.ts';
import type { IntrospectionOutcome, RefusedToken } from './introspection/claims.ts';
import { prepareClientAuthentication } from './introspection/client-auth.ts';
import { readEndpointAnswer } from './introspection/http-response.ts';
import type { EndpointAnswer } from './introspection/http-response.ts';

export type { ActiveToken, IntrospectionOutcome, RefusedToken } from './introspection/claims.ts';

export interface IntrospectionClient {
  /** Synchronous on a cache hit and on a refusal that needs no call; a promise otherwise. */
  introspect(token: string, audience: string): Promise<IntrospectionOutcome> | IntrospectionOutcome;
  /** Stops new calls, empties the cache and closes the pool once in-flight calls finish. */
  close(): void;
}

export interface IntrospectionClientOptions {
  /** Clock in milliseconds since the epoch (tests inject one). Default `Date.now`. */
  readonly now?: () => number;
}

/** Same limit as for JWTs (SECURITY.md JWT-17): a longer token is refused before any call. */
export const MAX_TOKEN_LENGTH = 8192;
/** An answer larger than this is used but not cached, so 10,000 entries stay a bounded amount of memory. */
const MAX_CACHED_ANSWER_BYTES = 16 * 1024;
/** At most this many connections to one endpoint; the call budget bounds the rate anyway. */
const MAX_CONNECTIONS = 32;
/** The "our credentials were refused" alert is logged at most once per this interval per endpoint. */
const REJECTION_ALERT_INTERVAL_MS = 10_000;

/** RFC 6750 §2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
/** A JOSE compact serialization segment (RFC 7515 §7.1, RFC 7516 §7.1): base64url, possibly empty. */
const BASE64URL_SEGMENT = /^[A-Za-z0-9_-]*$/;

export function createIntrospectionClient(endpoint: CompiledIntrospection, options: IntrospectionClientOptions = {}): IntrospectionClient {
  const now = options.now ?? Date.now;
  const url = new URL(endpoint.url);
  const auth = prepareClientAuthentication(endpoint, now);
  if (auth.tls.cert !== undefined && url.protocol !== 'https:') {
    throw new TypeError(`introspection endpoint "${endpoint.id}": tls_client_auth needs an https:// URL`);
  }
  const pool = new Pool(url.origin, {
    connections: Math.min(MAX_CONNECTIONS, endpoint.maxRequestsPerSecond),
    pipelining: 1,
    headersTimeout: endpoint.timeoutMs,
    bodyTimeout: endpoint.timeoutMs,
    maxHeaderSize: 16 * 1024,
    connect: {
      timeout: endpoint.timeoutMs,
      ...(endpoint.ca !== null ? { ca: endpoint.ca } : {}),
      ...auth.tls,
    },
  });
  const path = `${url.pathname}${url.search}`;
  const cache = new ExpiringLruCache<IntrospectionOutcome>(CACHE_MAX_ENTRIES);
  const budget = new CallBudget(endpoint.maxRequestsPerSecond, now());
  // Concurrent requests with the same token share one call (IN-07: one token, one call).
  const inFlight = new Map<string, Promise<IntrospectionOutcome>>();
  const alertRejection = rejectionAlert(endpoint.id, now);
  let closed = false;

  const unavailable = (detail: string): RefusedToken => refuse('dependency.introspection_unavailable', `introspection endpoint ${endpoint.id}: ${detail}`);

  async function call(token: string, audience: string, key: string): Promise<IntrospectionOutcome> {
    const answer = await ask(token);
    if (!answer.ok) {
      if (answer.rejectedOurCredentials) alertRejection(answer.detail);
      return unavailable(answer.detail);
    }
    const outcome = interpretIntrospection(answer.document, { audience, issuer: endpoint.issuer, nowMs: now() });
    if (!closed) remember(key, outcome, answer.bytes);
    return outcome;
  }

  function remember(key: string, outcome: IntrospectionOutcome, bytes: number): void {
    const at = now();
    if (!outcome.ok) {
      // The endpoint answered and the answer refuses: keep refusing briefly without asking again.
      if (endpoint.negativeCacheTtlMs > 0) cache.set(key, outcome, at + endpoint.negativeCacheTtlMs);
      return;
    }
    if (bytes > MAX_CACHED_ANSWER_BYTES) return;
    // IN-05: never past the token's own expiry, never longer than configured — a revocation at
    // the authorization server bites within `cache_ttl`.
    const ttl = Math.min(endpoint.cacheTtlMs, outcome.exp === null ? Infinity : outcome.exp * 1000 - at);
    if (ttl > 0) cache.set(key, Object.freeze({ ...outcome, cached: true }), at + ttl);
  }

  async function ask(token: string): Promise<EndpointAnswer> {
    let credentials;
    try {
      credentials = await auth.forCall();
    } catch (error) {
      return { ok: false, detail: `the client assertion could not be signed (${(error as Error).message})`, rejectedOurCredentials: false };
    }
    // RFC 7662 §2.1: `token` is REQUIRED; `token_type_hint` tells the server where to look first.
    const body = new URLSearchParams([['token', token], ['token_type_hint', 'access_token'], ...credentials.params]).toString();
    // headersTimeout and bodyTimeout bound each phase; this bounds the whole call, queueing included.
    const deadline = AbortSignal.timeout(endpoint.timeoutMs);
    try {
      const response = await pool.request({
        method: 'POST',
        path,
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', ...credentials.headers },
        body,
        signal: deadline,
      });
      return await readEndpointAnswer(response);
    } catch (error) {
      return { ok: false, detail: describeCallFailure(error, deadline.aborted, endpoint.timeoutMs), rejectedOurCredentials: false };
    }
  }

  return {
    introspect(token, audience) {
      const shapeProblem = refuseByShape(token);
      if (shapeProblem !== null) return shapeProblem;
      if (closed) return unavailable('the client is closed (its configuration was replaced)');
      const key = cacheKey(token, audience);
      const cached = cache.get(key, now());
      if (cached !== undefined) return cached;
      const pending = inFlight.get(key);
      if (pending !== undefined) return pending;
      if (!budget.tryTake(now())) return unavailable(`over the call budget of ${endpoint.maxRequestsPerSecond} calls per second`);
      const promise = call(token, audience, key).finally(() => inFlight.delete(key));
      inFlight.set(key, promise);
      return promise;
    },
    close() {
      if (closed) return;
      closed = true;
      cache.clear();
      pool.close().catch(() => {});
    },
  };
}

/**
 * Refuses, without a call, what is not an opaque bearer token: too long, not an RFC 6750
 * b64token, or shaped like a JWS/JWE compact serialization (3 or 5 base64url segments). Tokens
 * are classified once, by shape, and a JWT is never retried through introspection (IN-06): that
 * would hand our partners' signed tokens to a third party and let a bad signature be "rescued".
 */
export function refuseByShape(token: string): RefusedToken | null {
  if (token.length > MAX_TOKEN_LENGTH) return refuse('token.too_large', `the token is longer than ${MAX_TOKEN_LENGTH} characters`);
  if (!B64TOKEN.test(token)) return refuse('token.malformed', 'the token is not an RFC 6750 b64token');
  if (isJoseCompactShaped(token)) return refuse('token.malformed', 'a JWT-shaped token goes to JWT validation, never to introspection');
  return null;
}

/** True for a JWS (3 segments) or JWE (5 segments) compact serialization shape; `prefix.signature` tokens stay opaque. */
export function isJoseCompactShaped(token: string): boolean {
  const segments = token.split('.');
  return (segments.length === 3 || segments.length === 5) && segments[0] !== '' && segments.every((segment) => BASE64URL_SEGMENT.test(segment));
}

function describeCallFailure(error: unknown, deadlinePassed: boolean, timeoutMs: number): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (deadlinePassed || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') {
    return `no answer within ${timeoutMs}ms`;
  }
  return `the call failed (${typeof code === 'string' ? code : (error as Error).name})`;
}

/**
 * RFC 7662 §2.1/§2.3: a 401 or 403 means the endpoint refused the gateway's own credentials —
 * every opaque token is now refused with a 503, and only an operator can fix it (IN-04: alert).
 * Logged once per interval, with how many were suppressed, so a storm of calls is not a storm
 * of log lines.
 */
function rejectionAlert(endpointId: string, now: () => number): (detail: string) => void {
  let lastLoggedAt = -Infinity;
  let suppressed = 0;
  return (detail) => {
    const at = now();
    if (at - lastLoggedAt < REJECTION_ALERT_INTERVAL_MS) {
      suppressed++;
      return;
    }
    log('error', 'introspection.rejected_our_credentials', { endpoint: endpointId, detail, suppressed });
    lastLoggedAt = at;
    suppressed = 0;
  };
}
