/**
 * Strict parse of a compact JWS, before any cryptography runs (SECURITY.md §0 items 4–6, JWT-17).
 *
 * Everything a token says is untrusted until its signature is checked, and even the checking
 * must not be steered by it. So this module decides, on bytes alone and cheaply, whether the
 * token has the one shape we accept:
 * - at most `maxTokenLength` characters (JWT-17), checked first;
 * - compact serialisation with exactly three segments (RFC 7515 §7.1); five is a JWE, which we
 *   never decrypt (JWT-04);
 * - each segment strict, canonical base64url (RFC 7515 §2, RFC 4648 §5; JWT-15), because
 *   `Buffer.from(s, 'base64url')` skips junk, stops at `=` and takes `+` and `/` (SECURITY.md §1.8);
 * - header and payload UTF-8 without a BOM (RFC 8725 §3.7; JWT-06), then JSON objects without
 *   duplicate members and within depth and member bounds (`../strict-json.ts`; JWT-13, JWT-17);
 * - a header that names no parameter we refuse to honour (RFC 8725 §3.10, RFC 7515 §4.1.11,
 *   RFC 7797 §6; JWT-03, JWT-04, JWT-14) and whose `kid` is an opaque, short, printable string
 *   (JWT-02).
 *
 * Nothing here looks up keys or issuers; `verify.ts` does that with the result.
 */
import type { RefusalReason } from '../../errors.ts';
import { parseStrictJson } from '../strict-json.ts';
import type { StrictJsonLimits } from '../strict-json.ts';

export interface JwsParseLimits extends StrictJsonLimits {
  /** Longest token accepted, in characters (a valid token is ASCII: characters = bytes). */
  readonly maxTokenLength: number;
}

export const DEFAULT_JWS_PARSE_LIMITS: JwsParseLimits = Object.freeze({ maxTokenLength: 8192, maxDepth: 8, maxMembers: 64 });

/** The longest `kid` accepted (JWT-02). */
export const MAX_KID_LENGTH = 256;

/** A compact JWS whose shape, encodings and header passed every pre-crypto check. */
export interface ParsedJws {
  /** The protected header: a null-prototype object, deeply plain data. */
  readonly header: Readonly<Record<string, unknown>>;
  /** `header.alg`: always a string here; whether it is acceptable is the verifier's call. */
  readonly alg: string;
  /** `header.kid` when present (printable ASCII, 1–256 characters). */
  readonly kid: string | undefined;
  /** The three segments exactly as received. */
  readonly encoded: { readonly header: string; readonly payload: string; readonly signature: string };
  /** RFC 7515 §5.2: ASCII(BASE64URL(header) || '.' || BASE64URL(payload)). */
  readonly signingInput: string;
  readonly payloadBytes: Uint8Array;
  readonly signature: Uint8Array;
}

/** A JWS whose payload is also a JWT claims set: a JSON object (RFC 7519 §7.2 step 10). */
export interface ParsedJwt extends ParsedJws {
  /** The claims: a null-prototype object; unverified until the signature is checked. */
  readonly payload: Readonly<Record<string, unknown>>;
}

export type ParseRefusalReason = Extract<
  RefusalReason,
  | 'token.too_large'
  | 'token.malformed'
  | 'token.encoding'
  | 'token.duplicate_member'
  | 'token.jwe_unsupported'
  | 'token.nested_unsupported'
  | 'token.header_param_forbidden'
  | 'token.crit_unsupported'
>;

export interface ParseRefusal {
  readonly ok: false;
  readonly reason: ParseRefusalReason;
  /** Operator-facing: names the segment or header parameter, never echoes the token. */
  readonly detail: string;
}

/**
 * Header parameters that would let the token choose its own key or change what is signed:
 * never honoured, and their presence refuses the token (RFC 8725 §3.10; JWT-03). `b64` (RFC 7797)
 * changes the signing input, and we implement no extension (JWT-14).
 */
const FORBIDDEN_HEADER_PARAMETERS = ['jku', 'x5u', 'jwk', 'x5c', 'b64'] as const;

/** RFC 4648 §5 alphabet, no padding. */
const BASE64URL = /^[A-Za-z0-9_-]+$/;
/** RFC 7515 §7.1 / RFC 7516 §7.1: a JWE compact serialisation has five segments. */
const JWE_SEGMENTS = 5;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Parses a compact JWS: shape, encodings and header. The payload is returned as bytes, so this
 * layer also serves JWS whose payload is not a claims set (test vectors). Never throws.
 */
export function parseJws(token: string, limits: JwsParseLimits = DEFAULT_JWS_PARSE_LIMITS): ({ readonly ok: true } & ParsedJws) | ParseRefusal {
  // JWT-17: bound the cost before doing anything else with the input.
  if (token.length > limits.maxTokenLength) return refuse('token.too_large', `the token is ${token.length} characters, the limit is ${limits.maxTokenLength}`);

  const segmentCount = countSegments(token);
  if (segmentCount === JWE_SEGMENTS) return refuse('token.jwe_unsupported', 'the token has five segments: an encrypted JWT (JWE) is not accepted');
  if (segmentCount !== 3) return refuse('token.malformed', `the token has ${segmentCount} segments, a compact JWS has 3`);
  const [encodedHeader, encodedPayload, encodedSignature] = token.split('.') as [string, string, string];
  if (encodedHeader === '') return refuse('token.malformed', 'the header segment is empty');
  if (encodedSignature === '') return refuse('token.malformed', 'the signature segment is empty');

  const headerBytes = decodeStrictBase64url(encodedHeader);
  if (headerBytes === null) return refuse('token.encoding', 'the header segment is not canonical base64url');
  // RFC 7515 §7.1 permits an empty payload; `parseJwt` refuses it (a claims set is an object).
  const payloadBytes = encodedPayload === '' ? new Uint8Array(0) : decodeStrictBase64url(encodedPayload);
  if (payloadBytes === null) return refuse('token.encoding', 'the payload segment is not canonical base64url');
  const signature = decodeStrictBase64url(encodedSignature);
  if (signature === null) return refuse('token.encoding', 'the signature segment is not canonical base64url');

  const header = parseJsonObject(headerBytes, 'header', limits);
  if (!header.ok) return header;
  const checked = checkHeader(header.object);
  if (!checked.ok) return checked;

  return {
    ok: true,
    header: header.object,
    alg: checked.alg,
    kid: checked.kid,
    encoded: { header: encodedHeader, payload: encodedPayload, signature: encodedSignature },
    signingInput: `${encodedHeader}.${encodedPayload}`,
    payloadBytes,
    signature,
  };
}

/**
 * Parses a compact JWS whose payload is a JWT claims set. All checks of `parseJws`, then the
 * payload: UTF-8, no BOM, a JSON object without duplicate members (RFC 7519 §4). Never throws.
 */
export function parseJwt(token: string, limits: JwsParseLimits = DEFAULT_JWS_PARSE_LIMITS): ({ readonly ok: true } & ParsedJwt) | ParseRefusal {
  const jws = parseJws(token, limits);
  if (!jws.ok) return jws;
  if (jws.payloadBytes.length === 0) return refuse('token.malformed', 'the payload is empty, a JWT carries a claims set');
  const payload = parseJsonObject(jws.payloadBytes, 'payload', limits);
  if (!payload.ok) return payload;
  return { ...jws, payload: payload.object };
}

/**
 * Strict base64url (RFC 4648 §5, unpadded as RFC 7515 §2 requires): only the 64 alphabet
 * characters, a length that can encode whole bytes, and canonical trailing bits (RFC 4648 §3.5:
 * the unused bits must be zero — otherwise several strings decode to the same bytes). The
 * canonical check re-encodes and compares, which also guards against any leniency of the
 * decoder. Returns null when the segment is not exactly one encoding of its bytes.
 */
export function decodeStrictBase64url(segment: string): Uint8Array | null {
  if (segment.length % 4 === 1 || !BASE64URL.test(segment)) return null;
  const bytes = Buffer.from(segment, 'base64url');
  if (bytes.toString('base64url') !== segment) return null;
  return bytes;
}

type JsonObjectResult = { readonly ok: true; readonly object: Readonly<Record<string, unknown>> } | ParseRefusal;

function parseJsonObject(bytes: Uint8Array, part: 'header' | 'payload', limits: JwsParseLimits): JsonObjectResult {
  // RFC 8725 §3.7 (JWT-06): UTF-8 only. `ignoreBOM: true` keeps a BOM in the text instead of
  // silently dropping it, but we refuse it on the bytes, before decoding.
  if (bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) return refuse('token.encoding', `the ${part} starts with a byte order mark`);
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return refuse('token.encoding', `the ${part} is not valid UTF-8`);
  }
  const parsed = parseStrictJson(text, limits);
  if (!parsed.ok) {
    if (parsed.error === 'duplicate_member') return refuse('token.duplicate_member', `the ${part} has a ${parsed.detail}`);
    return refuse('token.malformed', `the ${part} is not acceptable JSON: ${parsed.detail}`);
  }
  const value = parsed.value;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return refuse('token.malformed', `the ${part} is not a JSON object`);
  return { ok: true, object: value as Record<string, unknown> };
}

type HeaderCheck = { readonly ok: true; readonly alg: string; readonly kid: string | undefined } | ParseRefusal;

function checkHeader(header: Readonly<Record<string, unknown>>): HeaderCheck {
  // RFC 7516 §4.1.2: `enc` marks a JWE; it is never decrypted here (RFC 8725 §3.3; JWT-04).
  if (Object.hasOwn(header, 'enc')) return refuse('token.jwe_unsupported', 'the header has "enc": an encrypted JWT (JWE) is not accepted');
  // RFC 7515 §4.1.1: `alg` is required.
  const alg = header['alg'];
  if (!Object.hasOwn(header, 'alg') || typeof alg !== 'string' || alg === '') return refuse('token.malformed', 'the header has no "alg" string');
  // RFC 7519 §5.2: `cty: JWT` announces a nested JWT; we validate one layer only (RFC 8725 §3.6; JWT-04).
  if (Object.hasOwn(header, 'cty') && isNestedJwtContentType(header['cty'])) return refuse('token.nested_unsupported', 'the header has "cty": "JWT": nested JWTs are not accepted');
  // RFC 8725 §3.10 (JWT-03): the token never names a key location or embeds a key.
  for (const name of FORBIDDEN_HEADER_PARAMETERS) {
    if (Object.hasOwn(header, name)) return refuse('token.header_param_forbidden', `the header has "${name}", which is never honoured`);
  }
  // RFC 7515 §4.1.11 (JWT-14): we implement no extension, so any `crit` is one we do not understand.
  if (Object.hasOwn(header, 'crit')) return refuse('token.crit_unsupported', 'the header has "crit": no JWS extension is supported');
  let kid: string | undefined;
  if (Object.hasOwn(header, 'kid')) {
    const value = header['kid'];
    // RFC 8725 §3.10 (JWT-02): `kid` is an opaque lookup key; bounded and printable so that it
    // is safe in a log line and can never act as a path, query or URL anywhere.
    if (typeof value !== 'string' || !isPrintableAscii(value, MAX_KID_LENGTH)) return refuse('token.malformed', `the header "kid" is not a printable ASCII string of 1 to ${MAX_KID_LENGTH} characters`);
    kid = value;
  }
  return { ok: true, alg, kid };
}

/** RFC 7515 §4.1.10: `cty` is case-insensitive and may omit the `application/` prefix. */
function isNestedJwtContentType(value: unknown): boolean {
  if (typeof value !== 'string') return false;
  const lower = value.toLowerCase();
  return lower === 'jwt' || lower === 'application/jwt';
}

function countSegments(token: string): number {
  let count = 1;
  for (let at = token.indexOf('.'); at !== -1; at = token.indexOf('.', at + 1)) count++;
  return count;
}

function isPrintableAscii(value: string, maxLength: number): boolean {
  if (value.length === 0 || value.length > maxLength) return false;
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code < 0x20 || code > 0x7e) return false;
  }
  return true;
}

function refuse(reason: ParseRefusalReason, detail: string): ParseRefusal {
  return { ok: false, reason, detail };
}
