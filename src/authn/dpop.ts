/**
 * DPoP proofs of possession (RFC 9449; SECURITY.md §2.5, DP-01…DP-07).
 *
 * `verifyDpopProof` runs every check of RFC 9449 §4.3, in an order where each step decides only
 * on what the previous ones proved:
 * 1. exactly one `DPoP` header (checks 1–2; DP-01);
 * 2. a strict compact JWS: bounded size, three canonical base64url segments, UTF-8 JSON objects
 *    without duplicate members (`jwt/parse.ts` helpers; SECURITY.md §0 item 6);
 * 3. the header: no parameter that names another key or changes what is signed, `typ` is
 *    `dpop+jwt`, `alg` is in the allow-list, `jwk` is a strong public signature key that fits
 *    `alg` (checks 3–7; DP-02) — all before any cryptography;
 * 4. the signature, with the embedded key, pinned to `alg` (check 6);
 * 5. only then the claims (no claim oracle for forged proofs, as JWT-16): `htm`, `htu`
 *    (checks 8–9; DP-03), the server nonce (check 10; DP-07), `iat` (check 11; DP-04), `ath`
 *    (check 12; DP-05);
 * 6. last, `jti` single use: only a proof that passed everything takes a place in the replay
 *    cache (§11.1; DP-04).
 *
 * The result's `jkt` is the RFC 7638 thumbprint of the proof's key; `binding.ts` compares it with
 * the access token's `cnf.jkt` (DP-05, §6.1). Details are operator-facing: they name claims and
 * never contain the proof or the access token.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { calculateJwkThumbprint } from 'jose';
import { SIGNING_ALGORITHMS } from '../config/schema.ts';
import { validateJwks } from './jwks/validate.ts';
import { DEFAULT_JWS_PARSE_LIMITS, decodeStrictBase64url } from './jwt/parse.ts';
import type { ParsedJws } from './jwt/parse.ts';
import { verifyJwsSignature } from './jwt/verify.ts';
import { parseStrictJson } from './strict-json.ts';

export type DpopReason =
  | 'dpop.missing'
  | 'dpop.multiple'
  | 'dpop.malformed'
  | 'dpop.typ_invalid'
  | 'dpop.alg_not_allowed'
  | 'dpop.jwk_invalid'
  | 'dpop.signature_invalid'
  | 'dpop.htm_mismatch'
  | 'dpop.htu_mismatch'
  | 'dpop.iat_invalid'
  | 'dpop.replayed'
  | 'dpop.ath_mismatch'
  | 'dpop.nonce_required'
  | 'dpop.nonce_invalid';

/** Server-provided nonces (RFC 9449 §8, §9). */
export interface NonceSource {
  /** The nonce to hand out now (`DPoP-Nonce`); the same value for a while, so clients can reuse it. */
  current(): string;
  /** Whether a proof's `nonce` is one this source issued and is still within its lifetime. */
  accepts(nonce: string): boolean;
}

export interface DpopSettings {
  /** Algorithms accepted for proofs (config `dpop.algorithms`); only asymmetric ones ever pass. */
  readonly algorithms: ReadonlySet<string>;
  /** Largest difference between `iat` and now, either way (config `dpop.proof_lifetime`). */
  readonly proofLifetimeMs: number;
  /** Set when proofs must carry a server nonce (config `dpop.nonce`). */
  readonly nonce: NonceSource | null;
}

export interface DpopProofInput {
  /** Every `DPoP` header value received, as separate field lines (DP-01: exactly one). */
  readonly headerValues: readonly string[];
  readonly method: string;
  /**
   * The URI the client used (scheme, host and port of the gateway as the client saw them, and the
   * path as received), without query and fragment (RFC 9449 §4.3 check 9; DP-03). Normalised
   * here again, so a caller that passes it unnormalised still compares like with like.
   */
  readonly htu: string;
  /** The access token that came with the proof (`Authorization: DPoP …`), or null: then no `ath` check. */
  readonly accessToken: string | null;
  /** Milliseconds since the epoch. */
  readonly nowMs: number;
  readonly settings: DpopSettings;
  /** Records `key` for `ttlMs` if absent: true on first use (`StateStore.setIfAbsent`). */
  readonly replay: (key: string, ttlMs: number) => Promise<boolean>;
}

export type DpopResult =
  | { readonly ok: true; readonly jkt: string }
  | {
      readonly ok: false;
      readonly reason: DpopReason;
      /** Operator-facing only (audit, log). */
      readonly detail: string;
      /** With `dpop.nonce_required` / `dpop.nonce_invalid`: the nonce to send as `DPoP-Nonce`. */
      readonly useNonce?: string;
    };

/** Longest proof accepted, in characters; it carries a public key, so it is larger than most tokens. */
export const MAX_PROOF_LENGTH = DEFAULT_JWS_PARSE_LIMITS.maxTokenLength;
/** Longest `jti` accepted: it becomes part of a state-store key. */
export const MAX_JTI_LENGTH = 256;
/** Longest `htu` (or request URI) normalised. */
export const MAX_HTU_LENGTH = 4096;
/** Replay entries outlive the acceptance window by this much, for the store's clock granularity. */
const REPLAY_TTL_MARGIN_MS = 1000;

/** The asymmetric algorithms the gateway implements; `none` and `HS*` never among them (RFC 9449 §4.3 check 5). */
const IMPLEMENTED_ALGORITHMS: ReadonlySet<string> = new Set(SIGNING_ALGORITHMS);

/**
 * Header parameters refused in a proof: its key is `jwk` and nothing else (RFC 9449 §4.2), so a
 * parameter naming another key or key location is never honoured (RFC 8725 §3.10); `b64`
 * (RFC 7797) changes the signing input, `crit` names an extension we do not implement
 * (RFC 7515 §4.1.11), and `enc` marks a JWE.
 */
const FORBIDDEN_HEADER_PARAMETERS = ['jku', 'x5u', 'x5c', 'x5t', 'x5t#S256', 'b64', 'crit', 'enc'] as const;

/** RFC 9449 §4.2: the required claims of a proof. */
const REQUIRED_CLAIMS = ['jti', 'htm', 'htu', 'iat'] as const;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Verifies the DPoP proof of one request. Resolves to the proof key's thumbprint or a refusal;
 * rejects only when `replay` does (the replay cache is unavailable): the caller fails closed (503).
 */
export async function verifyDpopProof(input: DpopProofInput): Promise<DpopResult> {
  const { settings } = input;

  // RFC 9449 §4.3 checks 1–2 (DP-01): one header field, one proof. A proof is never a list, so
  // two field lines, or one holding two proofs, are refused rather than picked from.
  if (input.headerValues.length === 0) return refuse('dpop.missing', 'the request has no DPoP header');
  if (input.headerValues.length > 1) return refuse('dpop.multiple', `the request has ${input.headerValues.length} DPoP header fields; exactly one is accepted`);
  const proof = input.headerValues[0]!;

  const parsed = parseProof(proof);
  if (!parsed.ok) return parsed;
  const { header, payload, jws } = parsed;

  // RFC 9449 §4.3 check 4, RFC 8725 §3.11: explicit typing keeps an access token, ID token or
  // client assertion from being accepted as a proof (SECURITY.md §0 item 5).
  if (!typMatches(header['typ'])) {
    return refuse('dpop.typ_invalid', Object.hasOwn(header, 'typ') ? `"typ" ${describe(header['typ'])} is not "dpop+jwt"` : 'the header has no "typ"; a proof has "dpop+jwt"');
  }

  // RFC 9449 §4.3 check 5 (DP-02): the allow-list decides, never the proof.
  const alg = jws.alg;
  if (!IMPLEMENTED_ALGORITHMS.has(alg) || !settings.algorithms.has(alg)) {
    return refuse('dpop.alg_not_allowed', `"alg" ${describe(alg)} is not allowed for DPoP proofs (${[...settings.algorithms].filter((name) => IMPLEMENTED_ALGORITHMS.has(name)).join(', ')})`);
  }

  const key = await proofKey(header, jws.encoded.header, alg);
  if (!key.ok) return key;

  // RFC 9449 §4.3 check 6: the signature, with that key, for `alg` only.
  const signature = await verifyJwsSignature(jws, { kid: undefined, alg, key: key.publicKey });
  if (!signature.ok) {
    return refuse(signature.reason === 'token.alg_not_allowed' ? 'dpop.alg_not_allowed' : 'dpop.signature_invalid', signature.detail);
  }

  // From here on the claims are the key holder's.
  for (const claim of REQUIRED_CLAIMS) {
    if (!Object.hasOwn(payload, claim)) return refuse('dpop.malformed', `the proof has no "${claim}" claim (RFC 9449 §4.2)`);
  }
  const jti = payload['jti'];
  if (typeof jti !== 'string' || jti.length === 0 || jti.length > MAX_JTI_LENGTH || hasControlCharacter(jti)) {
    return refuse('dpop.malformed', `"jti" is not a string of 1 to ${MAX_JTI_LENGTH} characters without control characters`);
  }
  const htm = payload['htm'];
  const htu = payload['htu'];
  if (typeof htm !== 'string') return refuse('dpop.malformed', '"htm" is not a string');
  if (typeof htu !== 'string') return refuse('dpop.malformed', '"htu" is not a string');

  // RFC 9449 §4.3 check 8 (DP-03): methods are case-sensitive (RFC 9110 §9.1).
  if (htm !== input.method) return refuse('dpop.htm_mismatch', `"htm" ${describe(htm)} is not the request method ${describe(input.method)}`);

  // RFC 9449 §4.3 check 9 (DP-03): both sides normalised the same way, query and fragment ignored.
  const requestUri = normalizeHtu(input.htu);
  if (requestUri === null) return refuse('dpop.htu_mismatch', 'the request URI cannot be normalised as an http(s) URI');
  const claimedUri = normalizeHtu(htu);
  if (claimedUri === null) return refuse('dpop.htu_mismatch', `"htu" ${describe(htu)} is not an http(s) URI that can be normalised`);
  if (claimedUri !== requestUri) return refuse('dpop.htu_mismatch', `"htu" ${describe(claimedUri)} is not the request URI ${describe(requestUri)}`);

  // RFC 9449 §4.3 check 10, §8, §9 (DP-07).
  if (settings.nonce !== null) {
    if (!Object.hasOwn(payload, 'nonce')) return { ok: false, reason: 'dpop.nonce_required', detail: 'the proof has no "nonce" and server nonces are required', useNonce: settings.nonce.current() };
    const nonce = payload['nonce'];
    if (typeof nonce !== 'string' || !settings.nonce.accepts(nonce)) {
      return { ok: false, reason: 'dpop.nonce_invalid', detail: '"nonce" is not a current server nonce', useNonce: settings.nonce.current() };
    }
  }

  // RFC 9449 §4.3 check 11, §11.1 (DP-04): a proof is usable only around the time it was made.
  const iat = payload['iat'];
  if (typeof iat !== 'number' || !Number.isFinite(iat)) return refuse('dpop.iat_invalid', '"iat" is not a number');
  const skewMs = iat * 1000 - input.nowMs;
  if (Math.abs(skewMs) > settings.proofLifetimeMs) {
    return refuse('dpop.iat_invalid', `"iat" is ${Math.round(Math.abs(skewMs) / 1000)}s in the ${skewMs > 0 ? 'future' : 'past'}; at most ${settings.proofLifetimeMs / 1000}s either way`);
  }

  // RFC 9449 §4.3 check 12, §4.2 (DP-05): the proof names the very token it accompanies.
  if (input.accessToken !== null) {
    if (!Object.hasOwn(payload, 'ath')) return refuse('dpop.ath_mismatch', 'the proof has no "ath" but an access token was presented');
    const ath = payload['ath'];
    // RFC 9449 §4.2 hashes the ASCII token; a token with other characters has no such hash.
    if (typeof ath !== 'string' || !/^[\x20-\x7e]*$/.test(input.accessToken) || !constantTimeEqual(ath, accessTokenHash(input.accessToken))) {
      return refuse('dpop.ath_mismatch', '"ath" is not the SHA-256 hash of the presented access token');
    }
  }

  const { jkt } = key;

  // RFC 9449 §11.1 (DP-04): single use. A proof is acceptable for proofLifetime on each side of
  // its `iat`, so its entry must live at least twice that long after first use.
  const first = await input.replay(`dpop:${jkt}:${jti}`, 2 * settings.proofLifetimeMs + REPLAY_TTL_MARGIN_MS);
  if (!first) return refuse('dpop.replayed', 'this proof ("jti" and key) was already used');

  return { ok: true, jkt };
}

interface ProofKey {
  readonly ok: true;
  readonly publicKey: KeyObject;
  /** RFC 7638 thumbprint (SHA-256, base64url). */
  readonly jkt: string;
}

/**
 * Keys of recent proofs, by their exact encoded header: a client signs every proof with the same
 * key and, in practice, the same header bytes, and validating, importing and hashing a key costs
 * more than verifying a signature with it. The header bytes hold `alg` and `jwk` and nothing else
 * decides the outcome, so a hit is exactly as good as a fresh check; only accepted keys are kept,
 * and the map is bounded (least recently used goes first).
 */
const keyCache = new Map<string, ProofKey>();
const KEY_CACHE_ENTRIES = 1024;

/**
 * RFC 9449 §4.3 check 7, §11.6 (DP-02): a public, strong, well-formed signature key that fits
 * `alg`. The JWKS validator applies every rule an issuer's key passes (no private or symmetric
 * keys, RSA ≥ 2048 bits without ROCA, EC points on their curve, Ed25519 only, `use` and
 * `key_ops` for signatures, a `jwk.alg` that agrees with the header).
 */
async function proofKey(header: Readonly<Record<string, unknown>>, encodedHeader: string, alg: string): Promise<ProofKey | { readonly ok: false; readonly reason: DpopReason; readonly detail: string }> {
  const cached = keyCache.get(encodedHeader);
  if (cached !== undefined) {
    keyCache.delete(encodedHeader);
    keyCache.set(encodedHeader, cached);
    return cached;
  }
  if (!Object.hasOwn(header, 'jwk')) return refuse('dpop.jwk_invalid', 'the header has no "jwk"');
  const validation = validateJwks({ keys: [header['jwk']] }, new Set([alg]));
  if (!validation.ok) return refuse('dpop.jwk_invalid', `"jwk" is not acceptable for ${alg}: ${validation.problems.join('; ')}`);
  const validated = validation.keys[0]!;
  // Only the required members reach the thumbprint (RFC 7638 §3.2): `validated.jwk` holds nothing else.
  const key: ProofKey = { ok: true, publicKey: validated.publicKey, jkt: await calculateJwkThumbprint(validated.jwk, 'sha256') };
  if (keyCache.size >= KEY_CACHE_ENTRIES) keyCache.delete(keyCache.keys().next().value!);
  keyCache.set(encodedHeader, key);
  return key;
}

/** RFC 9449 §4.2: `ath` is base64url(SHA-256(ASCII(access token))). */
export function accessTokenHash(accessToken: string): string {
  return createHash('sha256').update(accessToken, 'utf8').digest('base64url');
}

type ParsedProof =
  | { readonly ok: true; readonly header: Readonly<Record<string, unknown>>; readonly payload: Readonly<Record<string, unknown>>; readonly jws: ParsedJws }
  | { readonly ok: false; readonly reason: DpopReason; readonly detail: string };

/**
 * The compact JWS checks of `jwt/parse.ts`, except that the header must carry `jwk` (which an
 * access token may never): same strict base64url, UTF-8 and JSON rules, same limits.
 */
function parseProof(proof: string): ParsedProof {
  if (proof.length === 0) return refuse('dpop.malformed', 'the DPoP header is empty');
  if (proof.length > MAX_PROOF_LENGTH) return refuse('dpop.malformed', `the proof is ${proof.length} characters, the limit is ${MAX_PROOF_LENGTH}`);
  const segments = proof.split('.');
  if (segments.length !== 3) return refuse('dpop.malformed', `the proof has ${segments.length} segments, a compact JWS has 3`);
  const [encodedHeader, encodedPayload, encodedSignature] = segments as [string, string, string];

  const headerBytes = decodeStrictBase64url(encodedHeader);
  if (headerBytes === null) return refuse('dpop.malformed', 'the header segment is not canonical base64url');
  const payloadBytes = decodeStrictBase64url(encodedPayload);
  if (payloadBytes === null) return refuse('dpop.malformed', 'the payload segment is not canonical base64url');
  const signature = decodeStrictBase64url(encodedSignature);
  if (signature === null) return refuse('dpop.malformed', 'the signature segment is not canonical base64url');

  const header = parseJsonObject(headerBytes, 'header');
  if (!header.ok) return header;
  const payload = parseJsonObject(payloadBytes, 'payload');
  if (!payload.ok) return payload;

  for (const name of FORBIDDEN_HEADER_PARAMETERS) {
    if (Object.hasOwn(header.object, name)) return refuse('dpop.malformed', `the header has "${name}", which a proof never carries`);
  }
  const alg = header.object['alg'];
  if (typeof alg !== 'string' || alg === '') return refuse('dpop.malformed', 'the header has no "alg" string');

  return {
    ok: true,
    header: header.object,
    payload: payload.object,
    jws: {
      header: header.object,
      alg,
      kid: undefined,
      encoded: { header: encodedHeader, payload: encodedPayload, signature: encodedSignature },
      signingInput: `${encodedHeader}.${encodedPayload}`,
      payloadBytes,
      signature,
    },
  };
}

function parseJsonObject(bytes: Uint8Array, part: 'header' | 'payload'): { readonly ok: true; readonly object: Readonly<Record<string, unknown>> } | { readonly ok: false; readonly reason: DpopReason; readonly detail: string } {
  // RFC 8725 §3.7: UTF-8 only, and a BOM is refused rather than silently skipped.
  if (bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) return refuse('dpop.malformed', `the ${part} starts with a byte order mark`);
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return refuse('dpop.malformed', `the ${part} is not valid UTF-8`);
  }
  const parsed = parseStrictJson(text, DEFAULT_JWS_PARSE_LIMITS);
  if (!parsed.ok) return refuse('dpop.malformed', `the ${part} is not acceptable JSON: ${parsed.detail}`);
  const value = parsed.value;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return refuse('dpop.malformed', `the ${part} is not a JSON object`);
  return { ok: true, object: value as Record<string, unknown> };
}

/**
 * RFC 9449 §4.2: `typ` is `dpop+jwt`. As for `at+jwt` (verify.ts), media type names compare
 * case-insensitively and the `application/` prefix may be written (RFC 7515 §4.1.9); ASCII only,
 * so no Unicode case mapping can make another string match.
 */
function typMatches(typ: unknown): boolean {
  if (typeof typ !== 'string' || !/^[\x21-\x7e]+$/.test(typ)) return false;
  const lower = typ.toLowerCase();
  return (lower.startsWith('application/') ? lower.slice('application/'.length) : lower) === 'dpop+jwt';
}

// ---------------------------------------------------------------------------------------------
// htu normalisation

const DEFAULT_PORTS: Readonly<Record<string, string>> = { http: '80', https: '443' };
/** RFC 3986 §3.2.2 reg-name restricted to what DNS names and IPv4 addresses use: no escapes, no sub-delims. */
const REG_NAME = /^[a-z0-9._~-]+$/;
/** RFC 3986 §3.2.2 IP-literal with an IPv6 address; IPvFuture and zone identifiers are refused. */
const IPV6_LITERAL = /^\[[0-9a-f:.]+\]$/;
/** RFC 3986 §3.3 path characters: pchar and "/" (pct-encoded checked separately). */
const PATH_CHARACTERS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*$/;
/** RFC 3986 §2.3. */
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

/**
 * The request URI for an `htu` comparison (RFC 9449 §4.3 check 9): query and fragment dropped,
 * then RFC 3986 §6.2.2 syntax-based normalisation (case of scheme and host, percent-encoding:
 * unreserved characters decoded, other escapes uppercased, dot segments removed) and §6.2.3
 * scheme-based normalisation (default port dropped, empty path is "/"). Only `http` and `https`
 * URIs with a host and no userinfo (RFC 9110 §4.2.4) are accepted; anything ambiguous — invalid
 * escapes, non-ASCII, characters a URI cannot hold, escapes in the host — gives null.
 */
export function normalizeHtu(url: string): string | null {
  if (typeof url !== 'string' || url.length === 0 || url.length > MAX_HTU_LENGTH) return null;
  // RFC 3986 §3: the query starts at the first "?", the fragment at the first "#".
  const cut = url.search(/[?#]/);
  const target = cut === -1 ? url : url.slice(0, cut);

  const match = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/]*)(.*)$/s.exec(target);
  if (match === null) return null;
  const scheme = match[1]!.toLowerCase();
  const defaultPort = Object.hasOwn(DEFAULT_PORTS, scheme) ? DEFAULT_PORTS[scheme]! : undefined;
  if (defaultPort === undefined) return null;

  const authority = match[2]!.toLowerCase();
  if (authority.includes('@')) return null;
  let host: string;
  let portText: string;
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    if (close === -1) return null;
    host = authority.slice(0, close + 1);
    const rest = authority.slice(close + 1);
    if (rest !== '' && !rest.startsWith(':')) return null;
    portText = rest.slice(1);
    if (!IPV6_LITERAL.test(host)) return null;
  } else {
    const colon = authority.indexOf(':');
    host = colon === -1 ? authority : authority.slice(0, colon);
    portText = colon === -1 ? '' : authority.slice(colon + 1);
    if (!REG_NAME.test(host)) return null;
  }
  let port = '';
  if (portText !== '') {
    if (!/^[0-9]{1,5}$/.test(portText)) return null;
    const number = Number(portText);
    if (number === 0 || number > 65535) return null;
    if (String(number) !== defaultPort) port = `:${number}`;
  }

  const rawPath = match[3]!;
  if (!PATH_CHARACTERS.test(rawPath)) return null;
  const decoded = normalizePercentEncoding(rawPath);
  if (decoded === null) return null;
  const path = removeDotSegments(decoded === '' ? '/' : decoded);
  return `${scheme}://${host}${port}${path}`;
}

/** RFC 3986 §6.2.2.1–2: decode escapes of unreserved characters, uppercase the hex of the others. */
function normalizePercentEncoding(path: string): string | null {
  let result = '';
  for (let i = 0; i < path.length; i++) {
    const char = path[i]!;
    if (char !== '%') {
      result += char;
      continue;
    }
    const hex = path.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return null;
    const decoded = String.fromCharCode(Number.parseInt(hex, 16));
    result += UNRESERVED.test(decoded) ? decoded : `%${hex.toUpperCase()}`;
    i += 2;
  }
  return result;
}

/** RFC 3986 §5.2.4, for an absolute path. */
function removeDotSegments(path: string): string {
  let input = path;
  const output: string[] = [];
  while (input.length > 0) {
    if (input.startsWith('../')) input = input.slice(3);
    else if (input.startsWith('./')) input = input.slice(2);
    else if (input.startsWith('/./')) input = input.slice(2);
    else if (input === '/.') input = '/';
    else if (input.startsWith('/../')) {
      input = input.slice(3);
      output.pop();
    } else if (input === '/..') {
      input = '/';
      output.pop();
    } else if (input === '.' || input === '..') input = '';
    else {
      const next = input.indexOf('/', input.startsWith('/') ? 1 : 0);
      const segment = next === -1 ? input : input.slice(0, next);
      output.push(segment);
      input = next === -1 ? '' : input.slice(next);
    }
  }
  return output.join('');
}

// ---------------------------------------------------------------------------------------------
// Challenges and nonces

/**
 * `WWW-Authenticate: DPoP …` (RFC 9449 §7.1; DP-07): the error (none when the request carried no
 * credential, as RFC 6750 §3.1) and the algorithms a proof may use. No `error_description`: the
 * detail is for the operator (SECURITY.md ER-06).
 */
export function dpopChallenge(error: 'invalid_dpop_proof' | 'use_dpop_nonce' | 'invalid_token' | null, algorithms: Iterable<string>, realm?: string): string {
  const parameters: string[] = [];
  if (realm !== undefined) {
    // RFC 9110 §5.6.4: a quoted-string holds no control characters; the realm is configuration.
    if (hasControlCharacter(realm)) throw new TypeError('dpopChallenge: realm must not contain control characters');
    parameters.push(`realm="${realm.replace(/["\\]/g, (char) => `\\${char}`)}"`);
  }
  if (error !== null) parameters.push(`error="${error}"`);
  // Algorithm names are tokens; anything else (never produced by our config) is left out.
  const algs = [...algorithms].filter((alg) => /^[A-Za-z0-9._+-]+$/.test(alg));
  if (algs.length > 0) parameters.push(`algs="${algs.join(' ')}"`);
  return parameters.length === 0 ? 'DPoP' : `DPoP ${parameters.join(', ')}`;
}

export interface NonceSourceOptions {
  /** How long a nonce is accepted after it was issued (config `dpop.nonce_lifetime`). */
  readonly lifetimeMs: number;
  /**
   * The HMAC key (≥ 32 bytes). Every instance that may receive the retried request must share
   * it; default: random per process, which suits one instance only.
   */
  readonly secret?: Uint8Array;
  /** Milliseconds since the epoch (default `Date.now()`). */
  readonly now?: () => number;
}

const NONCE_CONTEXT = 'portcullis dpop nonce v1';
const NONCE_TIME_BYTES = 8;
const NONCE_MAC_BYTES = 16;
/** A nonce issued by an instance whose clock runs a little ahead is still accepted. */
const NONCE_FUTURE_SKEW_MS = 5000;

/**
 * Stateless rotating nonces (RFC 9449 §8, §9): `base64url(issuedAt ‖ HMAC-SHA-256(secret,
 * context ‖ issuedAt)[0..16])`. Nothing is stored; the MAC proves we issued it, `issuedAt` bounds
 * its life. A new nonce is minted when the current one has used half its lifetime, so every
 * nonce handed out stays valid for at least half the lifetime (a client retrying at once is
 * never refused for the nonce it was just given). The value uses base64url characters only,
 * within RFC 9449 §8.1's NQCHAR.
 */
export function createNonceSource(options: NonceSourceOptions): NonceSource {
  const { lifetimeMs } = options;
  if (typeof lifetimeMs !== 'number' || !Number.isFinite(lifetimeMs) || lifetimeMs <= 0) throw new TypeError('nonce source: lifetimeMs must be a positive number');
  if (options.secret !== undefined && options.secret.length < 32) throw new TypeError('nonce source: secret must be at least 32 bytes');
  const secret = Buffer.from(options.secret ?? randomBytes(32));
  const now = options.now ?? (() => Date.now());
  const encodedLength = Math.ceil(((NONCE_TIME_BYTES + NONCE_MAC_BYTES) * 4) / 3);
  let issued: { readonly at: number; readonly value: string } | null = null;

  const mac = (time: Buffer): Buffer => createHmac('sha256', secret).update(NONCE_CONTEXT).update(time).digest().subarray(0, NONCE_MAC_BYTES);

  function current(): string {
    const at = Math.floor(now());
    if (issued === null || at < issued.at || at - issued.at >= lifetimeMs / 2) {
      const time = Buffer.alloc(NONCE_TIME_BYTES);
      time.writeBigUInt64BE(BigInt(at));
      issued = { at, value: Buffer.concat([time, mac(time)]).toString('base64url') };
    }
    return issued.value;
  }

  function accepts(nonce: string): boolean {
    if (typeof nonce !== 'string' || nonce.length !== encodedLength) return false;
    const bytes = decodeStrictBase64url(nonce);
    if (bytes === null || bytes.length !== NONCE_TIME_BYTES + NONCE_MAC_BYTES) return false;
    const time = Buffer.from(bytes.subarray(0, NONCE_TIME_BYTES));
    if (!timingSafeEqual(Buffer.from(bytes.subarray(NONCE_TIME_BYTES)), mac(time))) return false;
    const age = now() - Number(time.readBigUInt64BE());
    return age >= -NONCE_FUTURE_SKEW_MS && age <= lifetimeMs;
  }

  return { current, accepts };
}

// ---------------------------------------------------------------------------------------------

function constantTimeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a, 'utf8');
  const right = Buffer.from(b, 'utf8');
  return left.length === right.length && timingSafeEqual(left, right);
}

function hasControlCharacter(value: string): boolean {
  return /[\x00-\x1f\x7f]/.test(value);
}

/** A proof-supplied value in a detail: JSON-quoted (no raw control characters) and bounded. */
function describe(value: unknown): string {
  const text = typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value));
  return JSON.stringify(text.length > 100 ? `${text.slice(0, 100)}…` : text);
}

function refuse(reason: DpopReason, detail: string): { readonly ok: false; readonly reason: DpopReason; readonly detail: string } {
  return { ok: false, reason, detail };
}
