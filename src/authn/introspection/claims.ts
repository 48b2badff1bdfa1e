/**
 * What an introspection answer means, decided locally. The endpoint's `active: true` is
 * necessary but not sufficient: the gateway re-checks the claims it relies on (SECURITY.md
 * IN-02, IN-03), so a misconfigured or overly generous authorization server cannot widen access.
 */
import type { RefusalReason } from '../../errors.ts';

export interface ActiveToken {
  readonly ok: true;
  /** Every member of the response (null-prototype, frozen): prototype-safe lookups (JWT-20). */
  readonly claims: Readonly<Record<string, unknown>>;
  readonly clientId: string;
  readonly scopes: ReadonlySet<string>;
  readonly jti: string | null;
  /** Seconds since the epoch, when the response carries `exp`. */
  readonly exp: number | null;
  /** True when answered from the cache without a call. */
  readonly cached: boolean;
}

export interface RefusedToken {
  readonly ok: false;
  readonly reason: RefusalReason;
  /** For the decision record and the log only; never contains the token (RFC 6750 §3, ER-06). */
  readonly detail: string;
}

export type IntrospectionOutcome = ActiveToken | RefusedToken;

export interface Expectations {
  /** The route's API audience: `aud` must contain it. */
  readonly audience: string;
  /** The endpoint's configured issuer, or null when none is configured. */
  readonly issuer: string | null;
  readonly nowMs: number;
}

/**
 * Clock skew tolerated on `nbf` and `iat` (the endpoint's clock may run a little ahead of ours).
 * None on `exp`: an expired token is refused the moment it expires (RFC 7519 §4.1.4).
 */
export const CLOCK_SKEW_SECONDS = 30;

/** RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ). */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;

/** RFC 6749 §7.1 / RFC 6750: the only token type this client accepts is a plain bearer token. */
const TOKEN_TYPES = new Set(['bearer', 'access_token', 'dpop']);

export function refuse(reason: RefusalReason, detail: string): RefusedToken {
  return { ok: false, reason, detail };
}

/** Interprets one parsed introspection response (a JSON object) for one audience. */
export function interpretIntrospection(response: Record<string, unknown>, expected: Expectations): IntrospectionOutcome {
  const active = own(response, 'active');
  // RFC 7662 §2.2: `active` is REQUIRED and boolean. Only the JSON literal true means active;
  // "true", 1 or a missing member is an endpoint we cannot read, and that is never "allow" (IN-02).
  if (active !== true) {
    return refuse('token.inactive', active === false ? 'the endpoint answered active: false' : `"active" is ${describeValue(active)}, not the boolean true`);
  }

  const clientId = own(response, 'client_id');
  if (clientId === undefined) return refuse('token.claim_missing', 'the response has no client_id, so no partner credential can be bound');
  if (typeof clientId !== 'string' || clientId === '') return refuse('token.claim_invalid', `client_id is ${describeValue(clientId)}, not a non-empty string`);

  // RFC 7662 §2.2 `iss`: compared byte for byte with the configured issuer, when one is configured.
  const iss = own(response, 'iss');
  if (iss !== undefined && typeof iss !== 'string') return refuse('token.claim_invalid', `iss is ${describeValue(iss)}, not a string`);
  if (expected.issuer !== null && iss !== undefined && iss !== expected.issuer) {
    return refuse('token.issuer_unknown', 'iss is not the issuer configured for this introspection endpoint');
  }

  const audience = checkAudience(own(response, 'aud'), expected.audience);
  if (audience !== null) return audience;

  const nowSeconds = expected.nowMs / 1000;
  const exp = own(response, 'exp');
  if (exp !== undefined && !isNumericDate(exp)) return refuse('token.claim_invalid', `exp is ${describeValue(exp)}, not a finite number`);
  // RFC 7519 §4.1.4: not accepted on or after `exp`.
  if (exp !== undefined && nowSeconds >= exp) return refuse('token.expired', 'exp is past');
  const nbf = own(response, 'nbf');
  if (nbf !== undefined && !isNumericDate(nbf)) return refuse('token.claim_invalid', `nbf is ${describeValue(nbf)}, not a finite number`);
  // RFC 7519 §4.1.5: not accepted before `nbf`.
  if (nbf !== undefined && nbf > nowSeconds + CLOCK_SKEW_SECONDS) return refuse('token.not_yet_valid', 'nbf is in the future');
  const iat = own(response, 'iat');
  if (iat !== undefined && !isNumericDate(iat)) return refuse('token.claim_invalid', `iat is ${describeValue(iat)}, not a finite number`);
  if (iat !== undefined && iat > nowSeconds + CLOCK_SKEW_SECONDS) return refuse('token.iat_future', 'iat is in the future');

  const tokenType = own(response, 'token_type');
  const cnf = own(response, 'cnf');
  if (tokenType !== undefined) {
    if (typeof tokenType !== 'string') return refuse('token.claim_invalid', `token_type is ${describeValue(tokenType)}, not a string`);
    if (!TOKEN_TYPES.has(tokenType.toLowerCase())) return refuse('token.claim_invalid', `token_type "${tokenType.slice(0, 32)}" is neither Bearer nor DPoP`);
    // RFC 9449 §6.2: a DPoP token is bound to a key (`cnf.jkt`); one without a binding is inconsistent.
    if (tokenType.toLowerCase() === 'dpop' && !(typeof cnf === 'object' && cnf !== null && typeof (cnf as Record<string, unknown>)['jkt'] === 'string')) {
      return refuse('token.claim_invalid', 'token_type is DPoP but cnf.jkt is missing');
    }
  }
  // RFC 8705 §3.2 / RFC 9449 §6.2: a `cnf` binds the token to a certificate or a key; the
  // credential stage checks that binding on every request (src/authn/binding.ts).

  const scopes = parseScope(own(response, 'scope'));
  if (scopes === null) return refuse('token.claim_invalid', 'scope is not a space-delimited string of scope tokens');

  const jti = own(response, 'jti');
  if (jti !== undefined && typeof jti !== 'string') return refuse('token.claim_invalid', `jti is ${describeValue(jti)}, not a string`);

  return {
    ok: true,
    claims: nullPrototypeCopy(response),
    clientId,
    scopes,
    jti: jti ?? null,
    exp: exp ?? null,
    cached: false,
  };
}

/**
 * RFC 7662 §2.2 `aud`: a string or an array of strings. Absent means the endpoint does not say
 * which resource the token is for; we refuse rather than assume it is ours (RFC 9700 §2.3).
 */
function checkAudience(aud: unknown, audience: string): RefusedToken | null {
  if (aud === undefined) return refuse('token.aud_mismatch', 'the response has no aud');
  if (typeof aud === 'string') return aud === audience ? null : refuse('token.aud_mismatch', `aud does not contain "${audience}"`);
  if (!Array.isArray(aud) || aud.length === 0 || !aud.every((value) => typeof value === 'string')) {
    return refuse('token.claim_invalid', 'aud is neither a string nor a non-empty array of strings');
  }
  return aud.includes(audience) ? null : refuse('token.aud_mismatch', `aud does not contain "${audience}"`);
}

/** RFC 7662 §2.2 / RFC 6749 §3.3: `scope` is one space-delimited string, exact tokens. Null when malformed. */
function parseScope(scope: unknown): ReadonlySet<string> | null {
  if (scope === undefined || scope === '') return new Set();
  if (typeof scope !== 'string') return null;
  const tokens = scope.split(' ');
  return tokens.every((token) => SCOPE_TOKEN.test(token)) ? new Set(tokens) : null;
}

/** RFC 7519 §2 NumericDate: a finite JSON number (not a string), within the safe integer range. */
function isNumericDate(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && Math.abs(value) <= Number.MAX_SAFE_INTEGER;
}

function own(object: Record<string, unknown>, name: string): unknown {
  return Object.hasOwn(object, name) ? object[name] : undefined;
}

/** The claims outlive this call (cache, policies): a frozen, null-prototype copy nobody can alter. */
function nullPrototypeCopy(response: Record<string, unknown>): Readonly<Record<string, unknown>> {
  const copy: Record<string, unknown> = Object.create(null);
  for (const name of Object.keys(response)) copy[name] = deepFreeze(response[name]);
  return Object.freeze(copy);
}

function deepFreeze(value: unknown): unknown {
  if (typeof value === 'object' && value !== null) {
    for (const member of Object.values(value)) deepFreeze(member);
    Object.freeze(value);
  }
  return value;
}

/** Names the JSON type of a value, never the value itself (it may echo attacker-chosen text). */
function describeValue(value: unknown): string {
  if (value === undefined) return 'missing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}
