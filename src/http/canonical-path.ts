/**
 * One canonical request path (SECURITY.md §0.3, HT-07).
 *
 * The string returned here is what the router matches, what authorization decides on and what is
 * forwarded upstream, byte for byte. Any spelling that a backend could read differently from us is
 * refused rather than "fixed": we never merge `//`, never resolve `..`, never decode `%2F`.
 *
 * Normalisation is RFC 3986 §6.2.2 only: percent-encoded unreserved characters are decoded
 * (§6.2.2.2) and the hex of every other escape is uppercased (§6.2.2.1). A path with no `%` and
 * no forbidden character comes back as the very same string (no allocation beyond the slice).
 *
 * A trailing `/` is kept (`/orders/` ≠ `/orders`): it is unambiguous and routes nowhere unless a
 * `{rest*}` template swallows it. Every other empty segment is refused.
 */

export type CanonicalTarget =
  | { ok: true; path: string; query: string }
  | { ok: false; reason: 'http.path_not_canonical' | 'http.target_invalid' };

const TARGET_INVALID = Object.freeze({ ok: false, reason: 'http.target_invalid' } as const);
const NOT_CANONICAL = Object.freeze({ ok: false, reason: 'http.path_not_canonical' } as const);

const SLASH = 0x2f;
const DOT = 0x2e;
const PERCENT = 0x25;
const QUESTION = 0x3f;
const HASH = 0x23;

/**
 * Class of each ASCII character in a path. Allowed raw: `pchar` and `/` (RFC 3986 §3.3), minus
 * `;`, which we refuse because servlet containers read `..;/` as `../` (path parameters).
 * Everything else (backslash, space, controls, the delimiters " < > [ ] ^ ` { | }, non-ASCII) is
 * REFUSED.
 */
const REFUSED = 0;
const PLAIN = 1;
const DOT_CHAR = 2;
const SLASH_CHAR = 3;
const PERCENT_CHAR = 4;
const CHAR_CLASS = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_~!$&'()*+,=:@") {
  CHAR_CLASS[c.charCodeAt(0)] = PLAIN;
}
CHAR_CLASS[DOT] = DOT_CHAR;
CHAR_CLASS[SLASH] = SLASH_CHAR;
CHAR_CLASS[PERCENT] = PERCENT_CHAR;

/** Hex digit value, or -1. */
function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  const lower = code | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

/** ALPHA / DIGIT / "-" / "_" / "~" — unreserved (RFC 3986 §2.3) minus ".", which we refuse encoded. */
function isDecodableUnreserved(byte: number): boolean {
  return (
    (byte >= 0x41 && byte <= 0x5a) ||
    (byte >= 0x61 && byte <= 0x7a) ||
    (byte >= 0x30 && byte <= 0x39) ||
    byte === 0x2d ||
    byte === 0x5f ||
    byte === 0x7e
  );
}

const HEX_UPPER = '0123456789ABCDEF';

/**
 * Canonicalises an origin-form request target (RFC 9112 §3.2.1), as Node gives it in `req.url`.
 * `query` is returned without the `?` and unchanged.
 */
export function canonicalizeTarget(target: string): CanonicalTarget {
  // RFC 9112 §3.2: only origin-form reaches here; `*` and absolute-form are the caller's business.
  if (target.length === 0 || target.charCodeAt(0) !== SLASH) return TARGET_INVALID;
  // RFC 9112 §3.2: a request target carries no fragment (HT-04).
  if (target.indexOf('#') !== -1) return TARGET_INVALID;

  const q = target.indexOf('?');
  const end = q === -1 ? target.length : q;
  const path = canonicalPathOf(target, end);
  if (path === null) return NOT_CANONICAL;
  return { ok: true, path, query: q === -1 ? '' : target.slice(q + 1) };
}

/** True when `path` is exactly what `canonicalizeTarget` would route and forward. */
export function isCanonicalPath(path: string): boolean {
  if (path.length === 0 || path.charCodeAt(0) !== SLASH) return false;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c === QUESTION || c === HASH) return false;
  }
  return canonicalPathOf(path, path.length) === path;
}

/**
 * Canonical form of `target[0, end)` (which starts with `/`), or null when it must be refused.
 * A single left-to-right pass; output is only built once something changes.
 */
function canonicalPathOf(target: string, end: number): string | null {
  let out = '';
  let copiedUpTo = 0; // target[copiedUpTo, i) is still to be appended to `out` verbatim
  let changed = false;
  let segmentStart = 1; // index just after the last '/'
  let segmentDots = 0; // raw '.' count of the current segment, -1 once it holds anything else

  for (let i = 1; i < end; i++) {
    const c = target.charCodeAt(i);
    const kind = c < 128 ? CHAR_CLASS[c] : REFUSED;
    if (kind === PLAIN) {
      segmentDots = -1;
    } else if (kind === SLASH_CHAR) {
      // `//` (RFC 3986 §3.3 empty segment) and `.`/`..` (§5.2.4 dot segments): refused, never resolved.
      if (i === segmentStart || segmentDots > 0) return null;
      segmentStart = i + 1;
      segmentDots = 0;
    } else if (kind === DOT_CHAR) {
      if (segmentDots >= 0) segmentDots = segmentDots < 2 ? segmentDots + 1 : -1; // `...` is a name
    } else if (kind === PERCENT_CHAR) {
      const escapes = escapeRun(target, i, end);
      if (escapes < 0) return null;
      segmentDots = -1;
      // Rewrite the run of escapes only if it is not canonical already.
      for (let j = i; j < i + escapes * 3; j += 3) {
        const h1 = target.charCodeAt(j + 1);
        const h2 = target.charCodeAt(j + 2);
        const byte = (hexValue(h1) << 4) | hexValue(h2);
        if (isDecodableUnreserved(byte)) {
          // RFC 3986 §6.2.2.2: percent-encoded unreserved characters are decoded.
          out += target.slice(copiedUpTo, j) + String.fromCharCode(byte);
          copiedUpTo = j + 3;
          changed = true;
        } else if (h1 >= 0x61 || h2 >= 0x61) {
          // RFC 3986 §6.2.2.1: the hex digits of an escape are uppercase.
          out += target.slice(copiedUpTo, j) + '%' + HEX_UPPER[byte >> 4] + HEX_UPPER[byte & 15];
          copiedUpTo = j + 3;
          changed = true;
        }
      }
      i += escapes * 3 - 1;
    } else {
      return null; // raw character outside pchar: `\`, `;`, space, control, non-ASCII, …
    }
  }
  // The last segment: a trailing '/' (empty last segment) is kept, a final `.` or `..` is not.
  if (segmentDots > 0) return null;

  if (!changed) return end === target.length ? target : target.slice(0, end);
  return out + target.slice(copiedUpTo, end);
}

/**
 * Validates the run of consecutive escapes starting at `target[i]` (a `%`) and returns how many
 * there are, or -1 when the run must be refused. Bytes >= 0x80 must form well-formed UTF-8
 * (RFC 3629 §4: no overlongs, no surrogates, nothing above U+10FFFF), and a multi-byte sequence
 * cannot be split by a raw character.
 */
function escapeRun(target: string, i: number, end: number): number {
  let count = 0;
  let pending = 0; // continuation bytes still expected
  let low = 0x80;
  let high = 0xbf;
  for (;;) {
    // RFC 3986 §2.1: "%" HEXDIG HEXDIG.
    if (i + 2 >= end) return -1;
    const hi = hexValue(target.charCodeAt(i + 1));
    const lo = hexValue(target.charCodeAt(i + 2));
    if (hi < 0 || lo < 0) return -1;
    const byte = (hi << 4) | lo;
    count++;
    if (pending > 0) {
      if (byte < low || byte > high) return -1;
      pending--;
      low = 0x80;
      high = 0xbf;
    } else if (byte >= 0x80) {
      // Lead bytes of well-formed UTF-8 (RFC 3629 §4).
      if (byte >= 0xc2 && byte <= 0xdf) pending = 1;
      else if (byte === 0xe0) { pending = 2; low = 0xa0; }
      else if ((byte >= 0xe1 && byte <= 0xec) || byte === 0xee || byte === 0xef) pending = 2;
      else if (byte === 0xed) { pending = 2; high = 0x9f; } // no UTF-16 surrogates
      else if (byte === 0xf0) { pending = 3; low = 0x90; }
      else if (byte >= 0xf1 && byte <= 0xf3) pending = 3;
      else if (byte === 0xf4) { pending = 3; high = 0x8f; } // nothing above U+10FFFF
      else return -1;
    } else if (
      byte < 0x20 || byte === 0x7f || // encoded control characters, %00 included
      byte === DOT || // %2E: an encoded dot segment is an attack, never a convenience
      byte === SLASH || // %2F: a segment boundary the backend may or may not see
      byte === 0x5c || // %5C: `\` is `/` to many servers
      byte === PERCENT // %25: double encoding (`%252F`)
    ) {
      return -1;
    }
    i += 3;
    if (pending === 0) return count;
    if (i >= end || target.charCodeAt(i) !== PERCENT) return -1; // sequence cut short
  }
}
