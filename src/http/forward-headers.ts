/**
 * Header hygiene at both edges of the proxy (SECURITY.md §0.8, HT-01, HT-05, HT-10).
 *
 * Upstream-bound: drop hop-by-hop fields and every field the client named in `Connection`, drop
 * every client-sent field that claims an identity or describes the forwarding path, THEN append
 * the gateway's own fields. Because ours are appended after filtering, a client-sent
 * `Connection: x-forwarded-for` can remove the client's copy but never ours.
 *
 * Client-bound: the upstream is untrusted too, so its hop-by-hop fields go the same way.
 */

/** RFC 9110 §7.6.1 hop-by-hop fields, plus `proxy-connection` (pre-standard, still sent by clients). */
export const HOP_BY_HOP_HEADERS: readonly string[] = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-authorization',
  'proxy-authenticate',
];

/**
 * Client-sent fields that assert who the caller is, where it connected from, or what it "really"
 * asked for. Upstreams (and other proxies or auth layers in front of them) trust these, so a
 * client must never be able to set them: every one is removed, and the gateway re-adds the ones it
 * vouches for. `prefixes` match the start of the lowercase name.
 */
export const CLIENT_IDENTITY_HEADERS = {
  exact: [
    // forwarding path: we set our own (RFC 7239 Forwarded and the de-facto X-Forwarded-*)
    'forwarded',
    'x-real-ip',
    'x-client-ip',
    'client-ip',
    'true-client-ip', // Akamai / Cloudflare
    'cf-connecting-ip', // Cloudflare
    'fastly-client-ip',
    'x-cluster-client-ip',
    'x-original-forwarded-for',
    'x-original-host',
    'x-host',
    'x-scheme', // proto spoofing: makes an upstream believe the hop was TLS
    'x-url-scheme',
    'front-end-https',
    // the request "really" was something else: path / method overrides honoured by frameworks
    'x-original-url',
    'x-rewrite-url',
    'x-original-uri',
    'x-original-method',
    'x-http-method-override',
    'x-http-method',
    'x-method-override',
    // correlation and tracing: we set our own
    'x-request-id',
    'traceparent',
    'tracestate',
    // identity asserted by some other authenticating layer
    'x-client-dn',
    'x-client-verify',
    'x-remote-user',
    'remote-user',
    'x-forwarded-client-cert', // Envoy XFCC
    'x-jwt-assertion', // WSO2
    'x-anonymous-consumer', // Kong
    'x-goog-iap-jwt-assertion', // Google IAP
  ],
  prefixes: [
    'x-forwarded-', // -for, -host, -proto, -port, -prefix, -user, -email, -ssl, -client-cert, …
    'x-portcullis-', // ours: only the gateway may speak in its name
    'x-partner-',
    'x-consumer-', // Kong
    'x-credential-', // Kong
    'x-client-cert', // -cert, -cert-chain, … (nginx/Traefik/ALB mTLS pass-through)
    'x-ssl-',
    'ssl-client-',
    'x-arr-', // IIS ARR client certificate
    'x-authenticated-',
    'x-auth-request-', // oauth2-proxy
    'x-user', // x-user, x-user-id, x-userinfo, …
    'x-remote-', // x-remote-user, x-remote-addr, …
    'x-amzn-', // AWS ALB OIDC identity, trace id
    'x-ms-client-principal', // Azure App Service authentication
    'x-goog-authenticated-user-', // Google IAP
    'x-envoy-', // Envoy internal headers (original path, external address, …)
  ],
} as const;

/**
 * Also never forwarded as sent: `host` (re-added from the routed host) and `expect` (Node's
 * server answers `100-continue` itself, RFC 9110 §10.1.1, and undici refuses the field).
 */
const REPLACED_HEADERS = ['host', 'expect'];

const DROPPED_EXACT = new Set<string>([...HOP_BY_HOP_HEADERS, ...CLIENT_IDENTITY_HEADERS.exact, ...REPLACED_HEADERS]);
const DROPPED_PREFIXES: readonly string[] = CLIENT_IDENTITY_HEADERS.prefixes;
/** First characters of the prefixes, so most names skip the prefix scan altogether. */
const PREFIX_FIRST_CHARS = new Set(DROPPED_PREFIXES.map((prefix) => prefix.charCodeAt(0)));
const HOP_BY_HOP = new Set(HOP_BY_HOP_HEADERS);

export interface ForwardInfo {
  readonly clientIp: string;
  readonly proto: 'http' | 'https';
  /** The routed host: lowercase, no port. */
  readonly host: string;
  /** The Host sent upstream when it is not the client's (the upstream's own authority). */
  readonly upstreamHost?: string;
  readonly requestId: string;
  readonly traceparent: string;
  /** Received protocol for Via (RFC 9110 §7.6.3), e.g. `1.1` or `2`. */
  readonly viaProtocol: string;
  /**
   * The gateway checked the request's credential (Authorization, X-API-Key): it is removed, so a
   * partner's bearer token is never handed to the upstream, which could replay it.
   */
  readonly consumedCredentials?: boolean;
  /** Verified identity fields the gateway adds last (`x-portcullis-*`), as [name, value, …]. */
  readonly identity?: readonly string[];
}

/** Scratch list of `Connection` option names; reset on every call (the hot path is synchronous). */
const connectionNamed: string[] = [];

/**
 * The header list for the upstream request, as a flat `[name, value, …]` array with lowercase
 * names (undici's raw header form). Framing is re-done by the caller (HT-01): Content-Length is
 * kept only when the client did not send Transfer-Encoding.
 */
export function buildUpstreamHeaders(rawHeaders: readonly string[], info: ForwardInfo): string[] {
  connectionNamed.length = 0;
  let chunked = false;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length === 10 && name.toLowerCase() === 'connection') collectConnectionOptions(rawHeaders[i + 1]!);
    else if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') chunked = true;
  }

  const out: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    if (isDropped(name)) continue;
    if (chunked && name === 'content-length') continue;
    if (info.consumedCredentials === true && (name === 'authorization' || name === 'x-api-key')) continue;
    out.push(name, rawHeaders[i + 1]!);
  }

  // Added last, so nothing the client sent (or named in Connection) can remove or precede them.
  const node = forwardedNode(info.clientIp);
  out.push(
    'host', info.upstreamHost ?? info.host,
    'x-forwarded-for', info.clientIp,
    'x-forwarded-proto', info.proto,
    'x-forwarded-host', info.host,
    // RFC 7239 §4: for/proto/host pairs; §6: an IPv6 node is bracketed and therefore quoted.
    'forwarded', `for=${node};proto=${info.proto};host=${quoteIfNeeded(info.host)}`,
    'x-request-id', info.requestId,
    'traceparent', info.traceparent,
    // RFC 9110 §7.6.3: each intermediary appends its own Via entry (any client entry stays before it).
    'via', `${info.viaProtocol} portcullis`,
  );
  if (info.identity !== undefined) for (const part of info.identity) out.push(part);
  return out;
}

/**
 * The upstream response's fields as they go to the client: hop-by-hop and `Connection`-named
 * fields removed (RFC 9110 §7.6.1), pseudo-headers removed, Content-Length dropped when the
 * upstream also sent Transfer-Encoding (Node re-frames the response; RFC 9112 §6.3). Input is the
 * lowercase-keyed object undici returns; the result has no prototype, so no name is special.
 */
export function stripResponseHeaders(
  headers: Readonly<Record<string, string | string[] | undefined>>,
): Record<string, string | string[]> {
  connectionNamed.length = 0;
  let chunked = false;
  for (const key of Object.keys(headers)) {
    const name = key.toLowerCase();
    const value = headers[key];
    if (value === undefined) continue;
    if (name === 'connection') {
      if (typeof value === 'string') collectConnectionOptions(value);
      else for (const item of value) collectConnectionOptions(item);
    } else if (name === 'transfer-encoding') {
      chunked = true;
    }
  }

  const out: Record<string, string | string[]> = Object.create(null);
  for (const key of Object.keys(headers)) {
    const value = headers[key];
    if (value === undefined) continue;
    const name = key.toLowerCase();
    if (name.charCodeAt(0) === 0x3a || HOP_BY_HOP.has(name) || connectionNamed.includes(name)) continue;
    if (chunked && name === 'content-length') continue;
    const previous = out[name];
    out[name] = previous === undefined ? value : [...toList(previous), ...toList(value)];
  }
  return out;
}

function isDropped(name: string): boolean {
  // HTTP/2 pseudo-headers (`:path`, `:authority`, …) are not fields (RFC 9113 §8.3).
  if (name.charCodeAt(0) === 0x3a) return true;
  if (DROPPED_EXACT.has(name)) return true;
  // RFC 9110 §7.6.1: fields named in Connection are hop-by-hop for this message.
  if (connectionNamed.length !== 0 && connectionNamed.includes(name)) return true;
  if (PREFIX_FIRST_CHARS.has(name.charCodeAt(0))) {
    for (const prefix of DROPPED_PREFIXES) if (name.startsWith(prefix)) return true;
  }
  return false;
}

/** `Connection = #connection-option` (RFC 9110 §7.6.1): comma-separated tokens, OWS around them. */
function collectConnectionOptions(value: string): void {
  let start = 0;
  while (start <= value.length) {
    let end = value.indexOf(',', start);
    if (end === -1) end = value.length;
    let from = start;
    let to = end;
    while (from < to && isOws(value.charCodeAt(from))) from++;
    while (to > from && isOws(value.charCodeAt(to - 1))) to--;
    if (to > from) {
      const option = value.slice(from, to).toLowerCase();
      // `close` and `keep-alive` are connection options, not field names we could be missing.
      if (option !== 'close' && option !== 'keep-alive') connectionNamed.push(option);
    }
    start = end + 1;
  }
}

function isOws(c: number): boolean {
  return c === 0x20 || c === 0x09;
}

/** RFC 7239 §6: `node = nodename [ ":" node-port ]`; IPv6 goes in brackets. Unknown peer → `unknown`. */
function forwardedNode(ip: string): string {
  if (ip === '') return 'unknown';
  // A socket's remote address is IPv4 or IPv6, and only IPv6 contains ':' (net.isIPv6 costs ~0.3 µs).
  return ip.includes(':') ? `"[${ip}]"` : quoteIfNeeded(ip);
}

/** RFC 7239 §4: a value is a token or a quoted-string (RFC 9110 §5.6.4). */
function quoteIfNeeded(value: string): string {
  for (let i = 0; i < value.length; i++) {
    if (!isTchar(value.charCodeAt(i))) return `"${value.replace(/["\\]/g, '\\$&')}"`;
  }
  return value;
}

/** tchar (RFC 9110 §5.6.2) */
const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") TCHAR[c.charCodeAt(0)] = 1;

function isTchar(c: number): boolean {
  return c < 128 && TCHAR[c] === 1;
}

function toList(value: string | string[]): string[] {
  return typeof value === 'string' ? [value] : value;
}
