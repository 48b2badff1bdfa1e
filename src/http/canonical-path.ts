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
 * Raw characters allowed in a path: `pchar` and `/` (RFC 3986 §3.3), minus `;`, which we refuse
 * because servlet containers treat `..;/` as `../` (path parameters). `%` is handled separately.
 */
const RAW_PATH_CHAR = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,=:@/") {
  RAW_PATH_CHAR[c.charCodeAt(0)] = 1;
}

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

  // UTF-8 state for consecutive escapes >= %80 (RFC 3629 §4; also rejects overlongs and surrogates).
  let utf8Pending = 0;
  let utf8Low = 0x80;
  let utf8High = 0xbf;

  for (let i = 1; i <= end; i++) {
    const c = i < end ? target.charCodeAt(i) : SLASH; // a virtual '/' closes the last segment

    if (c === PERCENT) {
      if (i + 2 >= end) return null; // "%" or "%X" cut off by the end of the path
      const hi = hexValue(target.charCodeAt(i + 1));
      const lo = hexValue(target.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) return null; // invalid escape (RFC 3986 §2.1)
      const byte = (hi << 4) | lo;

      if (utf8Pending > 0) {
        if (byte < utf8Low || byte > utf8High) return null;
        utf8Pending--;
        utf8Low = 0x80;
        utf8High = 0xbf;
      } else if (byte >= 0x80) {
        // Lead byte ranges of well-formed UTF-8 (RFC 3629 §4).
        if (byte >= 0xc2 && byte <= 0xdf) utf8Pending = 1;
        else if (byte === 0xe0) { utf8Pending = 2; utf8Low = 0xa0; }
        else if (byte >= 0xe1 && byte <= 0xec) utf8Pending = 2;
        else if (byte === 0xed) { utf8Pending = 2; utf8High = 0x9f; }
        else if (byte >= 0xee && byte <= 0xef) utf8Pending = 2;
        else if (byte === 0xf0) { utf8Pending = 3; utf8Low = 0x90; }
        else if (byte >= 0xf1 && byte <= 0xf3) utf8Pending = 3;
        else if (byte === 0xf4) { utf8Pending = 3; utf8High = 0x8f; }
        else return null;
      } else if (
        byte < 0x20 || byte === 0x7f || // encoded control characters, %00 included
        byte === DOT || // %2E: an encoded dot segment is an attack, never a convenience
        byte === SLASH || // %2F: a segment boundary the backend may or may not see
        byte === 0x5c || // %5C: `\` is `/` to many servers
        byte === PERCENT // %25: double encoding (`%252F`)
      ) {
        return null;
      }

      segmentDots = -1;
      if (byte < 0x80 && isDecodableUnreserved(byte)) {
        // RFC 3986 §6.2.2.2: decode percent-encoded unreserved characters.
        out += target.slice(copiedUpTo, i) + String.fromCharCode(byte);
        copiedUpTo = i + 3;
        changed = true;
      } else {
        // RFC 3986 §6.2.2.1: hex digits of an escape are uppercase.
        const h1 = target.charCodeAt(i + 1);
        const h2 = target.charCodeAt(i + 2);
        if (h1 >= 0x61 || h2 >= 0x61) {
          out += target.slice(copiedUpTo, i) + '%' + HEX_UPPER[hi] + HEX_UPPER[lo];
          copiedUpTo = i + 3;
          changed = true;
        }
      }
      i += 2;
      continue;
    }

    if (utf8Pending > 0) return null; // a multi-byte sequence cut short

    if (c === SLASH) {
      const length = i - segmentStart;
      if (length === 0) {
        // Empty segment (`//`, RFC 3986 §3.3): only the final one, i.e. a trailing '/', is kept.
        if (i !== end) return null;
      } else if (segmentDots > 0) {
        // `.` and `..` segments (RFC 3986 §5.2.4) are refused, never resolved.
        return null;
      }
      segmentStart = i + 1;
      segmentDots = 0;
      continue;
    }

    // Raw characters: pchar only (RFC 3986 §3.3); no `\`, `;`, spaces, controls or non-ASCII.
    if (c >= 128 || RAW_PATH_CHAR[c] === 0) return null;
    if (c === DOT) {
      if (segmentDots >= 0) segmentDots++;
      if (segmentDots > 2) segmentDots = -1; // `...` is an ordinary name
    } else {
      segmentDots = -1;
    }
  }

  if (!changed) return end === target.length ? target : target.slice(0, end);
  return out + target.slice(copiedUpTo, end);
}
