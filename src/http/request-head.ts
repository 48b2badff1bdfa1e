/**
 * Checks on the raw request head that Node's parser lets through (SECURITY.md §1.8 "Accepted and
 * passed to the handler", HT-01…HT-08). One pass over `rawHeaders`, no regex, no allocation for
 * headers that are none of Host / Content-Length / Transfer-Encoding / Upgrade.
 *
 * What llhttp already refuses (CTLs in values, obs-fold, space before colon, CL lists, …) is not
 * re-checked here; what it accepts but a proxy must not (duplicate Host, `_` in names, HTTP/1.0
 * with TE, `TE: identity, chunked`, absolute-form with another authority) is.
 *
 * For HTTP/2 the caller passes `httpVersion` '2.0' and Node's `rawHeaders`, which carry the
 * pseudo-headers; `:authority` then stands in for Host (RFC 9113 §8.3.1).
 */
import { isIPv6 } from 'node:net';
import type { RefusalReason } from '../errors.ts';

export type RequestHeadResult =
  | { ok: true; host: string; hostHeader: string }
  | { ok: false; reason: RefusalReason };

const refusals = new Map<RefusalReason, { ok: false; reason: RefusalReason }>();
function refuse(reason: RefusalReason): { ok: false; reason: RefusalReason } {
  let result = refusals.get(reason);
  if (result === undefined) {
    result = Object.freeze({ ok: false, reason } as const);
    refusals.set(reason, result);
  }
  return result;
}

/**
 * tchar (RFC 9110 §5.6.2) without `_`: some upstreams map `_` to `-`, so `Transfer_Encoding`
 * would become framing they trust (HT-08; Envoy and NGINX refuse or drop these too).
 */
const NAME_CHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") {
  NAME_CHAR[c.charCodeAt(0)] = 1;
}

/** HTTP/2 pseudo-headers a request may carry (RFC 9113 §8.3.1). `:protocol` (RFC 8441) is a tunnel. */
const REQUEST_PSEUDO_HEADERS = new Set([':method', ':scheme', ':authority', ':path']);

/** What a head field is, for the few names that matter here. */
const OTHER = 0;
const HOST = 1;
const CONTENT_LENGTH = 2;
const TRANSFER_ENCODING = 3;
const UPGRADE = 4;
const AUTHORITY = 5;
const INVALID = 6;

/**
 * Classifies a field name and validates it in the same loop. The name is compared
 * case-insensitively (RFC 9110 §5.1) without lowercasing it into a new string.
 */
function classify(name: string, http2: boolean): number {
  const length = name.length;
  if (length === 0) return INVALID;
  if (name.charCodeAt(0) === 0x3a) {
    if (!http2 || !REQUEST_PSEUDO_HEADERS.has(name)) return INVALID;
    return name === ':authority' ? AUTHORITY : OTHER;
  }
  for (let i = 0; i < length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 128 || NAME_CHAR[c] === 0) return INVALID;
  }
  switch (length) {
    case 4: return equalsLower(name, 'host') ? HOST : OTHER;
    case 7: return equalsLower(name, 'upgrade') ? UPGRADE : OTHER;
    case 14: return equalsLower(name, 'content-length') ? CONTENT_LENGTH : OTHER;
    case 17: return equalsLower(name, 'transfer-encoding') ? TRANSFER_ENCODING : OTHER;
    default: return OTHER;
  }
}

/** `name` is a valid token; `lower` is lowercase letters and `-`. Setting bit 0x20 folds A–Z. */
function equalsLower(name: string, lower: string): boolean {
  for (let i = 0; i < lower.length; i++) {
    if ((name.charCodeAt(i) | 0x20) !== lower.charCodeAt(i)) return false;
  }
  return true;
}

export function inspectRequestHead(
  rawHeaders: readonly string[],
  httpVersion: string,
  method: string,
  rawTarget: string,
): RequestHeadResult {
  // CONNECT opens a tunnel and TRACE reflects the request (credentials included) back: neither
  // has a place on an identity gateway (RFC 9110 §9.3.6, §9.3.8).
  if (method === 'CONNECT' || method === 'TRACE') return refuse('http.malformed');
  const http2 = httpVersion === '2.0';
  const http10 = httpVersion === '1.0';
  if (!http2 && !http10 && httpVersion !== '1.1') return refuse('http.malformed');

  let host: string | undefined;
  let hostCount = 0;
  let authority: string | undefined;
  let authorityCount = 0;
  let contentLengthCount = 0;
  let contentLengthValid = true;
  let transferEncodingCount = 0;
  let transferEncodingChunked = true;
  let upgrade = false;

  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const kind = classify(rawHeaders[i]!, http2);
    if (kind === OTHER) continue;
    const value = rawHeaders[i + 1]!;
    switch (kind) {
      case INVALID:
        return refuse('http.header_name_invalid');
      case HOST:
        hostCount++;
        host = value;
        break;
      case AUTHORITY:
        authorityCount++;
        authority = value;
        break;
      case CONTENT_LENGTH:
        contentLengthCount++;
        // RFC 9110 §8.6: Content-Length = 1*DIGIT (llhttp already refuses lists and signs).
        if (!isDigits(trimOws(value))) contentLengthValid = false;
        break;
      case TRANSFER_ENCODING:
        transferEncodingCount++;
        // HT-02: exactly `chunked`, case-insensitive (RFC 9110 §7.4 codings), OWS around it.
        if (!isChunked(trimOws(value))) transferEncodingChunked = false;
        break;
      case UPGRADE:
        upgrade = true;
        break;
    }
  }

  // Framing first: these are smuggling attempts and the caller closes the connection.
  // RFC 9112 §6.1: CL together with TE is a framing ambiguity (HT-01).
  if (contentLengthCount > 0 && transferEncodingCount > 0) return refuse('http.framing_ambiguous');
  // RFC 9112 §6.3 (5): several or invalid Content-Length values are unrecoverable.
  if (contentLengthCount > 1 || !contentLengthValid) return refuse('http.framing_ambiguous');
  if (transferEncodingCount > 0) {
    // RFC 9112 §6.1: TE is HTTP/1.1 only; HTTP/2 forbids it (RFC 9113 §8.2.2); one `chunked` only.
    if (transferEncodingCount > 1 || !transferEncodingChunked || httpVersion !== '1.1') {
      return refuse('http.transfer_encoding_invalid');
    }
  }
  // RFC 9110 §7.8 / HT-06: no route declares a protocol switch, so no tunnel (h2c included).
  if (upgrade) return refuse('http.upgrade_refused');

  // The authority of the request: Host, or `:authority` on HTTP/2.
  if (hostCount > 1 || authorityCount > 1) return refuse('http.host_duplicate');
  let value = host;
  if (http2 && authority !== undefined) {
    // RFC 9113 §8.3.1: a Host that names another entity than :authority is malformed.
    if (host !== undefined && host.toLowerCase() !== authority.toLowerCase()) return refuse('http.host_mismatch');
    value = authority;
  }

  const target = targetKind(method, rawTarget);
  if (target === null) return refuse('http.target_invalid');

  if (value === undefined || value === '') {
    // RFC 9112 §3.2: Host is mandatory on HTTP/1.1 (and we serve no default host on 1.0 either).
    if (target.kind !== 'absolute' || !http10) return refuse('http.host_missing');
    value = target.authority;
  }
  const parsed = parseAuthority(value);
  if (parsed === null) return refuse('http.malformed');

  if (target.kind === 'absolute') {
    // RFC 9112 §3.2.2 lets the target's authority override Host; we refuse the disagreement instead (HT-04).
    const fromTarget = parseAuthority(target.authority);
    if (fromTarget === null) return refuse('http.target_invalid');
    const defaultPort = target.https ? '443' : '80';
    if (fromTarget.host !== parsed.host || portOr(fromTarget.port, defaultPort) !== portOr(parsed.port, defaultPort)) {
      return refuse('http.host_mismatch');
    }
  }

  return { ok: true, host: parsed.host, hostHeader: parsed.port === '' ? parsed.host : `${parsed.host}:${parsed.port}` };
}

/**
 * The origin-form part (path and query) of an absolute-form target such as
 * `http://example.com/a?b` → `/a?b`, or null when `rawTarget` is not a valid http(s) absolute form.
 * Use after `inspectRequestHead` accepted the request, before `canonicalizeTarget`.
 */
export function originFormOf(rawTarget: string): string | null {
  if (rawTarget.charCodeAt(0) === 0x2f) return rawTarget;
  const schemeEnd = absoluteSchemeEnd(rawTarget);
  if (schemeEnd < 0) return null;
  const pathStart = authorityEnd(rawTarget, schemeEnd);
  if (pathStart === schemeEnd) return null;
  if (pathStart === rawTarget.length) return '/';
  // RFC 9112 §3.2.1: an empty path is sent as "/" (`http://x?q` → `/?q`).
  return rawTarget.charCodeAt(pathStart) === 0x2f ? rawTarget.slice(pathStart) : '/' + rawTarget.slice(pathStart);
}

type TargetKind = { kind: 'origin' } | { kind: 'asterisk' } | { kind: 'absolute'; authority: string; https: boolean };
const ORIGIN_FORM: TargetKind = Object.freeze({ kind: 'origin' });
const ASTERISK_FORM: TargetKind = Object.freeze({ kind: 'asterisk' });

/** RFC 9112 §3.2: origin-form, absolute-form (http/https), or `*` for OPTIONS only (HT-04). */
function targetKind(method: string, rawTarget: string): TargetKind | null {
  if (rawTarget.charCodeAt(0) === 0x2f) return ORIGIN_FORM;
  if (rawTarget === '*') return method === 'OPTIONS' ? ASTERISK_FORM : null;
  const schemeEnd = absoluteSchemeEnd(rawTarget);
  if (schemeEnd < 0) return null;
  const end = authorityEnd(rawTarget, schemeEnd);
  if (end === schemeEnd) return null; // empty authority
  const authority = rawTarget.slice(schemeEnd, end);
  // RFC 9110 §4.2.4: userinfo is deprecated and a phishing vector; never accepted in a target.
  if (authority.includes('@')) return null;
  return { kind: 'absolute', authority, https: schemeEnd === 8 };
}

/** Index just after `http://` or `https://` (case-insensitive scheme, RFC 3986 §3.1), else -1. */
function absoluteSchemeEnd(target: string): number {
  if (target.length > 7 && equalsLowerPrefix(target, 'http://')) return 7;
  if (target.length > 8 && equalsLowerPrefix(target, 'https://')) return 8;
  return -1;
}

function equalsLowerPrefix(text: string, lower: string): boolean {
  for (let i = 0; i < lower.length; i++) {
    const c = text.charCodeAt(i);
    const folded = c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
    if (folded !== lower.charCodeAt(i)) return false;
  }
  return true;
}

/** End of the authority: the first `/`, `?` or `#` after the scheme (RFC 3986 §3.2). */
function authorityEnd(target: string, from: number): number {
  for (let i = from; i < target.length; i++) {
    const c = target.charCodeAt(i);
    if (c === 0x2f || c === 0x3f || c === 0x23) return i;
  }
  return target.length;
}

interface Authority {
  /** lowercase; IPv6 keeps its brackets */
  readonly host: string;
  /** digits, or '' when absent */
  readonly port: string;
}

/**
 * `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2). The reg-name is limited to DNS names
 * (letters, digits, `-`, `.`): listener hostnames can be nothing else, and it keeps percent
 * escapes and sub-delims out of routing and logs. IPv4 dotted quads are DNS-shaped; IPv6 must be
 * bracketed; IPvFuture and zone ids are refused. An empty port (`host:`) is refused too.
 */
function parseAuthority(value: string): Authority | null {
  let hostEnd: number;
  let host: string;
  if (value.charCodeAt(0) === 0x5b) {
    hostEnd = value.indexOf(']');
    if (hostEnd < 0) return null;
    const inner = value.slice(1, hostEnd);
    for (let i = 0; i < inner.length; i++) {
      const c = inner.charCodeAt(i);
      // hex digits, ':' and '.' (embedded IPv4) only: no zone id (`%25eth0`), no IPvFuture.
      const hex = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
      if (!hex && c !== 0x3a && c !== 0x2e) return null;
    }
    if (!isIPv6(inner)) return null;
    hostEnd++;
    host = value.slice(0, hostEnd).toLowerCase();
  } else {
    hostEnd = value.indexOf(':');
    if (hostEnd < 0) hostEnd = value.length;
    if (!isDnsName(value, hostEnd)) return null;
    host = hostEnd === value.length ? value.toLowerCase() : value.slice(0, hostEnd).toLowerCase();
  }
  if (hostEnd === value.length) return { host, port: '' };
  if (value.charCodeAt(hostEnd) !== 0x3a) return null;
  const port = value.slice(hostEnd + 1);
  if (port.length === 0 || port.length > 5 || !isDigits(port) || Number(port) > 65535) return null;
  return { host, port };
}

/** Labels of 1–63 letters, digits or `-`, not starting or ending with `-`; 253 characters at most. */
function isDnsName(value: string, end: number): boolean {
  if (end === 0 || end > 253) return false;
  let labelLength = 0;
  for (let i = 0; i < end; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x2e) {
      if (labelLength === 0 || value.charCodeAt(i - 1) === 0x2d) return false;
      labelLength = 0;
      continue;
    }
    const lower = c | 0x20;
    const letterOrDigit = (lower >= 0x61 && lower <= 0x7a) || (c >= 0x30 && c <= 0x39);
    if (!letterOrDigit && !(c === 0x2d && labelLength > 0)) return false;
    if (++labelLength > 63) return false;
  }
  // A trailing dot (`example.com.`) would be a second spelling of the same name.
  return labelLength > 0 && value.charCodeAt(end - 1) !== 0x2d;
}

function portOr(port: string, fallback: string): string {
  return port === '' ? fallback : port.replace(/^0+(?=\d)/, '');
}

function isDigits(text: string): boolean {
  if (text.length === 0) return false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

function isChunked(text: string): boolean {
  return text.length === 7 && equalsLowerPrefix(text, 'chunked');
}

/** OWS = *( SP / HTAB ) (RFC 9110 §5.6.3). */
function trimOws(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && isOws(text.charCodeAt(start))) start++;
  while (end > start && isOws(text.charCodeAt(end - 1))) end--;
  return start === 0 && end === text.length ? text : text.slice(start, end);
}

function isOws(c: number): boolean {
  return c === 0x20 || c === 0x09;
}
