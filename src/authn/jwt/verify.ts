/**
 * JWT access-token verification (RFC 9068 §4, RFC 8725; SECURITY.md §2.1, §2.2).
 *
 * The order is the security argument, each step deciding on what the previous ones proved:
 * 1. cache hit → answered synchronously (`cache.ts` re-checks time and key-set generation);
 * 2. strict parse of bytes, before any crypto (`parse.ts`; JWT-04, -06, -13, -14, -15, -17);
 * 3. the issuer is picked by the exact `iss` of the (still unverified) payload (JWT-07, AT-03);
 *    it only selects *which* rules and keys apply — nothing is trusted until step 7;
 * 4. `alg` must be one this issuer signs with (JWT-01, AT-05): the token never chooses it;
 * 5. `typ` must be the issuer's (explicit typing: RFC 8725 §3.11, RFC 9068 §4 step 1; JWT-09,
 *    JWT-10, AT-01);
 * 6. the key comes from that issuer's key set only (JWT-07), by `kid` and `alg`; an unknown kid
 *    causes at most one rate-limited refetch (JWT-02);
 * 7. the signature is checked with jose, pinned to the key's one algorithm;
 * 8. only then the claims (JWT-16: no claim oracle for forged tokens; `claims.ts`).
 *
 * Refusals carry a precise internal reason and an operator-facing detail that names the claim,
 * header parameter or kid, never the token. The caller maps every `token.*` reason to the same
 * public `invalid_token` (JWT-16, AT-08).
 */
import { KeyObject } from 'node:crypto';
import { flattenedVerify } from 'jose';
import { SIGNING_ALGORITHMS } from '../../config/schema.ts';
import type { CompiledIssuer } from '../../config/snapshot.ts';
import type { RefusalReason } from '../../errors.ts';
import type { KeySet, VerificationKey } from '../jwks/key-set.ts';
import type { VerifiedTokenCache } from './cache.ts';
import { checkAccessTokenClaims } from './claims.ts';
import { DEFAULT_JWS_PARSE_LIMITS, parseJwt } from './parse.ts';
import type { JwsParseLimits, ParsedJws, ParsedJwt } from './parse.ts';

export interface VerifiedToken {
  readonly ok: true;
  /** The verified claims: a deeply frozen null-prototype object. */
  readonly claims: Readonly<Record<string, unknown>>;
  /** The `scope` claim split on single spaces: exact tokens (AT-07). */
  readonly scopes: ReadonlySet<string>;
  readonly issuer: CompiledIssuer;
  /** The value of the issuer's partner claim (`client_id` or `sub`). */
  readonly clientId: string;
  readonly jti: string;
  /** Seconds since the epoch. */
  readonly exp: number;
  /** True when answered from the verified-token cache. */
  readonly cached: boolean;
}

export type JwtRefusalReason = Extract<RefusalReason, `token.${string}`> | 'dependency.jwks_unavailable';

export interface RefusedToken {
  readonly ok: false;
  readonly reason: JwtRefusalReason;
  /** Operator-facing (audit record, log): never sent to the caller, never contains the token. */
  readonly detail: string;
}

export type VerifyOutcome = VerifiedToken | RefusedToken;

export interface JwtVerifierOptions {
  readonly issuersByIss: ReadonlyMap<string, CompiledIssuer>;
  readonly keySets: { get(issuerId: string): KeySet | undefined };
  readonly cache?: VerifiedTokenCache;
  /** Milliseconds since the epoch (default `Date.now()`). */
  readonly now?: () => number;
  readonly limits?: JwsParseLimits;
}

export interface JwtVerifier {
  /**
   * Verifies `token` as an access token for `audience` (the API's `aud` value). Synchronous on a
   * cache hit and on refusals decided before any crypto; a promise otherwise. Never rejects.
   */
  verify(token: string, audience: string): VerifyOutcome | Promise<VerifyOutcome>;
}

/** The asymmetric algorithms the gateway implements; `none` and `HS*` are never among them (JWT-01). */
const IMPLEMENTED_ALGORITHMS: ReadonlySet<string> = new Set(SIGNING_ALGORITHMS);

export function createJwtVerifier(options: JwtVerifierOptions): JwtVerifier {
  const { issuersByIss, keySets, cache } = options;
  const now = options.now ?? (() => Date.now());
  const limits = options.limits ?? DEFAULT_JWS_PARSE_LIMITS;
  const currentGeneration = (issuerId: string): number | undefined => keySets.get(issuerId)?.generation;

  function verify(token: string, audience: string): VerifyOutcome | Promise<VerifyOutcome> {
    const cacheKey = cache?.keyFor(token, audience);
    if (cache !== undefined && cacheKey !== undefined) {
      const hit = cache.get(cacheKey, now(), currentGeneration);
      if (hit !== undefined) return hit;
    }

    const parsed = parseJwt(token, limits);
    if (!parsed.ok) return parsed;

    // RFC 9068 §4 step 3 / RFC 8725 §3.8 (JWT-07): the exact `iss` selects the issuer's rules
    // and keys. It is unverified here; a wrong one simply selects keys that will not verify.
    const iss = parsed.payload['iss'];
    if (!Object.hasOwn(parsed.payload, 'iss') || typeof iss !== 'string') return refuse('token.issuer_unknown', 'the token has no "iss" string');
    const issuer = issuersByIss.get(iss);
    if (issuer === undefined) return refuse('token.issuer_unknown', `no issuer is configured for "iss" ${quote(iss)}`);

    // RFC 8725 §3.1, §3.2 (JWT-01, AT-05): the issuer's allow-list decides, never the token.
    const alg = parsed.alg;
    if (!IMPLEMENTED_ALGORITHMS.has(alg) || !(issuer.algorithms as ReadonlySet<string>).has(alg)) {
      return refuse('token.alg_not_allowed', `"alg" ${quote(alg)} is not allowed for issuer "${issuer.id}"`);
    }

    // RFC 8725 §3.11, RFC 9068 §2.1 and §4 step 1 (JWT-09, JWT-10, AT-01).
    if (!typMatches(parsed.header['typ'], issuer.typ)) {
      const typ = parsed.header['typ'];
      return refuse('token.typ_invalid', typ === undefined ? `the header has no "typ"; issuer "${issuer.id}" requires "${issuer.typ}"` : `"typ" ${quote(String(typ))} is not "${issuer.typ}" (issuer "${issuer.id}")`);
    }

    // Fail closed (SECURITY.md §0 item 2): without the issuer's keys nothing can be verified.
    const keySet = keySets.get(issuer.id);
    if (keySet === undefined || !keySet.ready()) return refuse('dependency.jwks_unavailable', `the keys of issuer "${issuer.id}" are not loaded`);

    // JWT-07: the key comes from this issuer's set only, found by kid and alg.
    const key = keySet.find(parsed.kid, alg);
    if (key !== undefined) return verifyWithKey(parsed, issuer, key, keySet.generation, audience, cacheKey);

    // JWT-01: a kid this issuer uses with another algorithm is an algorithm confusion, not a
    // rotation: refused without refetching.
    for (const other of issuer.algorithms) {
      if (other !== alg && keySet.find(parsed.kid, other) !== undefined) {
        return refuse('token.alg_not_allowed', `key ${describeKid(parsed.kid)} of issuer "${issuer.id}" is for ${other}, the token says ${quote(alg)}`);
      }
    }
    return verifyAfterRefresh(parsed, issuer, keySet, audience, cacheKey);
  }

  /** JWT-02: an unknown kid may be a rotation; refetch at most once per cooldown, then decide. */
  async function verifyAfterRefresh(parsed: ParsedJwt, issuer: CompiledIssuer, keySet: KeySet, audience: string, cacheKey: string | undefined): Promise<VerifyOutcome> {
    let refreshFailed = false;
    try {
      await keySet.refreshForUnknownKid();
    } catch {
      refreshFailed = true;
    }
    if (!keySet.ready()) return refuse('dependency.jwks_unavailable', `the keys of issuer "${issuer.id}" are not loaded`);
    const key = keySet.find(parsed.kid, parsed.alg);
    if (key === undefined) {
      return refuse('token.kid_unknown', `issuer "${issuer.id}" has no ${parsed.alg} key ${describeKid(parsed.kid)}${refreshFailed ? ' (refreshing its keys failed)' : ''}`);
    }
    return verifyWithKey(parsed, issuer, key, keySet.generation, audience, cacheKey);
  }

  async function verifyWithKey(parsed: ParsedJwt, issuer: CompiledIssuer, key: VerificationKey, generation: number, audience: string, cacheKey: string | undefined): Promise<VerifyOutcome> {
    const signature = await verifyJwsSignature(parsed, key);
    if (!signature.ok) return refuse(signature.reason, `issuer "${issuer.id}", key ${describeKid(key.kid)}: ${signature.detail}`);

    // JWT-16: claims are looked at only now that the issuer's key vouched for them.
    const nowMs = now();
    const claims = checkAccessTokenClaims(parsed.payload, issuer, audience, nowMs);
    if (!claims.ok) return claims;

    const verified: VerifiedToken = Object.freeze({
      ok: true,
      claims: deepFreeze(parsed.payload),
      scopes: claims.scopes,
      issuer,
      clientId: claims.clientId,
      jti: claims.jti,
      exp: claims.exp,
      cached: false,
    });
    if (cache !== undefined && cacheKey !== undefined) cache.set(cacheKey, Object.freeze({ ...verified, cached: true }), generation, nowMs, claims.nbf);
    return verified;
  }

  return { verify };
}

export type SignatureCheck = { readonly ok: true } | { readonly ok: false; readonly reason: 'token.alg_not_allowed' | 'token.signature_invalid'; readonly detail: string };

const SIGNATURE_OK: SignatureCheck = Object.freeze({ ok: true });

/**
 * Checks the signature of a parsed JWS with `key`, pinned to the key's one algorithm (RFC 8725
 * §3.1; JWT-01): a header `alg` other than `key.alg` is refused before any crypto. The signature
 * must have the exact length the algorithm and key produce (JWT-15), then jose verifies it with
 * WebCrypto, allowing only `key.alg`. Never rejects.
 */
export async function verifyJwsSignature(jws: ParsedJws, key: VerificationKey): Promise<SignatureCheck> {
  if (jws.alg !== key.alg) return { ok: false, reason: 'token.alg_not_allowed', detail: `the key is for ${key.alg}, the token says ${quote(jws.alg)}` };
  const expectedLength = expectedSignatureLength(key);
  if (expectedLength === undefined) return { ok: false, reason: 'token.signature_invalid', detail: `the key does not fit ${key.alg}` };
  if (jws.signature.length !== expectedLength) {
    return { ok: false, reason: 'token.signature_invalid', detail: `the signature is ${jws.signature.length} bytes, ${key.alg} with this key makes ${expectedLength}` };
  }
  try {
    await flattenedVerify({ protected: jws.encoded.header, payload: jws.encoded.payload, signature: jws.encoded.signature }, key.key, { algorithms: [key.alg] });
    return SIGNATURE_OK;
  } catch (error) {
    const code = typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string' ? error.code : 'ERR_KEY_UNUSABLE';
    return { ok: false, reason: 'token.signature_invalid', detail: code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' ? 'the signature does not verify' : `the signature was not checked (${code})` };
  }
}

/**
 * Length in bytes of a signature made by `key` for its algorithm, or undefined when the key does
 * not fit the algorithm. Exported for the Wycheproof harness, which drives raw vectors through
 * the same rule.
 * - ES256/384/512: R‖S, each the curve's size (RFC 7518 §3.4): 64, 96, 132; a DER signature is
 *   therefore refused here.
 * - RSnnn and PSnnn: the modulus length k (RFC 8017 §8.1.2 step 1, §8.2.2 step 1).
 * - EdDSA: 64 bytes for Ed25519 (RFC 8032 §5.1.6), 114 for Ed448 (§5.2.6) (RFC 8037 §3.1).
 */
export function expectedSignatureLength(key: VerificationKey): number | undefined {
  switch (key.alg) {
    case 'ES256':
      return 64;
    case 'ES384':
      return 96;
    case 'ES512':
      return 132;
    case 'EdDSA': {
      const type = key.key instanceof KeyObject ? key.key.asymmetricKeyType : key.key.algorithm.name.toLowerCase();
      return type === 'ed25519' ? 64 : type === 'ed448' ? 114 : undefined;
    }
    case 'RS256':
    case 'RS384':
    case 'RS512':
    case 'PS256':
    case 'PS384':
    case 'PS512': {
      const bits = key.key instanceof KeyObject ? key.key.asymmetricKeyDetails?.modulusLength : (key.key.algorithm as { modulusLength?: unknown }).modulusLength;
      return typeof bits === 'number' && bits > 0 ? Math.ceil(bits / 8) : undefined;
    }
    default:
      return undefined;
  }
}

/**
 * RFC 7515 §4.1.9: `typ` is compared case-insensitively and `application/` may be omitted
 * (RFC 9068 §4 step 1: `at+jwt` or `application/at+jwt`). `expected` is lowercase without the
 * prefix (`CompiledIssuer.typ`). ASCII only: Unicode case mapping could make another string
 * match (U+212A KELVIN SIGN lowercases to `k`).
 */
function typMatches(typ: unknown, expected: string): boolean {
  if (typeof typ !== 'string' || !/^[\x21-\x7e]+$/.test(typ)) return false;
  const lower = typ.toLowerCase();
  return (lower.startsWith('application/') ? lower.slice('application/'.length) : lower) === expected;
}

/** Claims are shared by every request answered from the cache: nobody may change them. */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const member of Object.values(value)) deepFreeze(member);
    Object.freeze(value);
  }
  return value;
}

function describeKid(kid: string | undefined): string {
  return kid === undefined ? 'without "kid"' : `"kid" ${quote(kid)}`;
}

/** A token-supplied value in a detail: JSON-quoted (no raw control characters) and bounded. */
function quote(value: string): string {
  return JSON.stringify(value.length > 100 ? `${value.slice(0, 100)}…` : value);
}

function refuse(reason: JwtRefusalReason, detail: string): RefusedToken {
  return { ok: false, reason, detail };
}
