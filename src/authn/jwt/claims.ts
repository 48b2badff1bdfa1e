/**
 * Claim checks of an OAuth 2.0 JWT access token (RFC 9068 §2.2, §4; RFC 7519 §4.1), run only
 * after the signature verified (SECURITY.md JWT-16: no claim-validity oracle on forged tokens).
 *
 * Every lookup is `Object.hasOwn` on a null-prototype object, so `__proto__`, `constructor` or
 * `toString` can never satisfy a check by inheritance (JWT-20). Types are checked before values:
 * a string `"exp"` is not a time, an `aud` array with a number in it is not an audience.
 */
import type { CompiledIssuer } from '../../config/snapshot.ts';
import type { RefusalReason } from '../../errors.ts';

/** RFC 9068 §2.2: claims every access token must carry (SECURITY.md AT-02). */
export const REQUIRED_ACCESS_TOKEN_CLAIMS = ['iss', 'exp', 'aud', 'sub', 'client_id', 'iat', 'jti'] as const;

/** JWT-18: time claims beyond 2^53 are refused (they lose integer precision as doubles). */
const MAX_TIME_CLAIM = 2 ** 53;

export type ClaimRefusalReason = Extract<
  RefusalReason,
  | 'token.issuer_unknown'
  | 'token.claim_missing'
  | 'token.claim_invalid'
  | 'token.aud_mismatch'
  | 'token.expired'
  | 'token.not_yet_valid'
  | 'token.iat_future'
  | 'token.lifetime_too_long'
>;

export interface AcceptedClaims {
  readonly ok: true;
  /** The value of the issuer's partner claim (`client_id` or `sub`). */
  readonly clientId: string;
  readonly jti: string;
  /** Seconds since the epoch. */
  readonly exp: number;
  /** Seconds since the epoch, when the token has `nbf`. */
  readonly nbf: number | undefined;
  readonly scopes: ReadonlySet<string>;
}

export interface RefusedClaims {
  readonly ok: false;
  readonly reason: ClaimRefusalReason;
  /** Operator-facing: names the claim, never echoes the token. */
  readonly detail: string;
}

/**
 * Checks the verified claims of an access token of `issuer` presented to `audience` at `nowMs`
 * (milliseconds since the epoch).
 */
export function checkAccessTokenClaims(claims: Readonly<Record<string, unknown>>, issuer: CompiledIssuer, audience: string, nowMs: number): AcceptedClaims | RefusedClaims {
  for (const name of REQUIRED_ACCESS_TOKEN_CLAIMS) {
    if (!Object.hasOwn(claims, name)) return refuse('token.claim_missing', `the token has no "${name}" claim`);
  }
  // RFC 9068 §4 step 3 / RFC 8725 §3.8 (JWT-07, AT-03): exact match, no normalisation. The
  // verifier picked the issuer by this very value; checked again so this function stands alone.
  if (claims['iss'] !== issuer.issuer) return refuse('token.issuer_unknown', `"iss" is not the issuer "${issuer.id}"`);

  const exp = timeClaim(claims, 'exp');
  if (exp === null) return invalid('exp');
  const iat = timeClaim(claims, 'iat');
  if (iat === null) return invalid('iat');
  const nbf = Object.hasOwn(claims, 'nbf') ? timeClaim(claims, 'nbf') : undefined;
  if (nbf === null) return invalid('nbf');

  const aud = claims['aud'];
  if (!isAudience(aud)) return refuse('token.claim_invalid', 'the "aud" claim is not a string or a non-empty array of strings');
  for (const name of ['sub', 'client_id', 'jti'] as const) {
    const value = claims[name];
    if (typeof value !== 'string' || value === '') return refuse('token.claim_invalid', `the "${name}" claim is not a non-empty string`);
  }
  const scopes = Object.hasOwn(claims, 'scope') ? parseScope(claims['scope']) : EMPTY_SCOPES;
  if (scopes === null) return refuse('token.claim_invalid', 'the "scope" claim is not a space-delimited string of scope tokens');

  // RFC 7519 §4.1.3, RFC 9068 §4 step 4 (JWT-08, JWT-11, AT-04): one value equal, byte for byte.
  if (!(typeof aud === 'string' ? aud === audience : aud.includes(audience))) return refuse('token.aud_mismatch', 'the "aud" claim does not contain this API\'s audience');

  const leewayMs = issuer.leewayMs;
  // RFC 7519 §4.1.4, RFC 9068 §4 step 6 (JWT-18, AT-06): reject on or after exp, with leeway.
  if (nowMs >= exp * 1000 + leewayMs) return refuse('token.expired', 'the token expired ("exp" is in the past)');
  // RFC 7519 §4.1.5: not before nbf, with leeway.
  if (nbf !== undefined && nbf * 1000 > nowMs + leewayMs) return refuse('token.not_yet_valid', 'the token is not valid yet ("nbf" is in the future)');
  // RFC 7519 §4.1.6 (JWT-18): a token issued in the future comes from a wrong clock or a forger.
  if (iat * 1000 > nowMs + leewayMs) return refuse('token.iat_future', 'the "iat" claim is in the future');
  if (exp <= iat) return refuse('token.claim_invalid', 'the "exp" claim is not after "iat"');
  // JWT-19 (OWASP NHI7): long-lived tokens are refused even when correctly signed.
  if ((exp - iat) * 1000 > issuer.maxLifetimeMs) return refuse('token.lifetime_too_long', `the token lives ${exp - iat}s ("exp" - "iat"), the limit is ${issuer.maxLifetimeMs / 1000}s`);

  return {
    ok: true,
    clientId: claims[issuer.partnerClaim] as string,
    jti: claims['jti'] as string,
    exp,
    nbf,
    scopes,
  };
}

const EMPTY_SCOPES: ReadonlySet<string> = new Set();

/**
 * RFC 6749 §3.3 / RFC 9068 §2.2.3 (AT-07): `scope = scope-token *( SP scope-token )`,
 * `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`. Each token is kept exactly as written, so
 * `orders:read` never matches `orders:read:all`. An array (some issuers' `scp`) is refused, as is
 * any other spelling: double or edge spaces, tabs, quotes, backslashes, non-ASCII. The empty
 * string grants nothing and is read as no scope at all. Returns null when the value is refused.
 */
export function parseScope(value: unknown): ReadonlySet<string> | null {
  if (typeof value !== 'string') return null;
  if (value === '') return EMPTY_SCOPES;
  const scopes = new Set<string>();
  for (const token of value.split(' ')) {
    if (!isScopeToken(token)) return null;
    scopes.add(token);
  }
  return scopes;
}

function isScopeToken(token: string): boolean {
  if (token.length === 0) return false;
  for (let i = 0; i < token.length; i++) {
    const code = token.charCodeAt(i);
    if (code < 0x21 || code > 0x7e || code === 0x22 || code === 0x5c) return false;
  }
  return true;
}

/**
 * RFC 7519 §2 NumericDate: a JSON number of seconds, integer or not. JWT-18: not a string,
 * boolean or null, finite, and within ±2^53. Returns null when the value is refused.
 */
function timeClaim(claims: Readonly<Record<string, unknown>>, name: 'exp' | 'iat' | 'nbf'): number | null {
  const value = claims[name];
  if (typeof value !== 'number' || !Number.isFinite(value) || Math.abs(value) > MAX_TIME_CLAIM) return null;
  return value;
}

/** RFC 7519 §4.1.3: a string, or an array of strings; we also require the array be non-empty (JWT-08). */
function isAudience(value: unknown): value is string | readonly string[] {
  if (typeof value === 'string') return true;
  if (!Array.isArray(value) || value.length === 0) return false;
  return value.every((member) => typeof member === 'string');
}

function invalid(name: 'exp' | 'iat' | 'nbf'): RefusedClaims {
  return refuse('token.claim_invalid', `the "${name}" claim is not a finite JSON number of seconds within 2^53`);
}

function refuse(reason: ClaimRefusalReason, detail: string): RefusedClaims {
  return { ok: false, reason, detail };
}
