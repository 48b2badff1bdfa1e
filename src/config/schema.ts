/**
 * The configuration schema: the single source of truth for what a Portcullis config file may
 * contain. Every object is strict (an unknown key is an error) and every field is described;
 * the descriptions are the reference docs (`portcullis schema` emits them as JSON Schema).
 *
 * This module only describes shape and local value rules. Cross-references (a route naming an
 * upstream that exists, duplicate ids, …) are checked in `validate.ts`; the runtime snapshot is
 * built in `compile.ts`.
 */
import { z } from 'zod';

const DURATION_RE = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const DURATION_UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

/** A duration such as `250ms`, `10s`, `5m`, `1h`; compiled to milliseconds. */
export const duration = z
  .string()
  .regex(DURATION_RE, 'expected a duration such as "250ms", "10s", "5m" or "1h"')
  .transform((text) => {
    const [, amount, unit] = DURATION_RE.exec(text)!;
    return Math.round(Number(amount) * DURATION_UNIT_MS[unit as keyof typeof DURATION_UNIT_MS]);
  });

const SIZE_RE = /^(\d+)(B|KiB|MiB|GiB)?$/;
const SIZE_UNIT = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 } as const;

/** A size in bytes: an integer, or a string such as `16KiB`, `1MiB`. */
export const byteSize = z
  .union([
    z.number().int().nonnegative(),
    z.string().regex(SIZE_RE, 'expected a size such as 16384, "16KiB" or "1MiB"'),
  ])
  .transform((value) => {
    if (typeof value === 'number') return value;
    const [, amount, unit] = SIZE_RE.exec(value)!;
    return Number(amount) * SIZE_UNIT[(unit ?? 'B') as keyof typeof SIZE_UNIT];
  });

const id = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_.-]{0,62}$/, 'expected an id: lowercase letters, digits, "_", "-", "." (max 63), starting with a letter or digit');

export const zone = z
  .enum(['public', 'partner', 'internal'])
  .describe('Trust zone. A route is only reachable from listeners of its own zone.');

/** A hostname as listed on a listener or route: exact, or one leading `*.` wildcard label. */
const hostname = z
  .string()
  .regex(
    /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/,
    'expected a lowercase hostname (optionally starting with "*.") without port',
  );

const port = z.number().int().min(0).max(65535);

/** RFC 6749 §3.3 scope-token: printable ASCII without space, `"` or `\\`. */
const scope = z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'expected a scope token (printable ASCII, no spaces, quotes or backslashes)');

const sensitivity = z.enum(['public', 'internal', 'confidential', 'restricted']);

const headerName = z
  .string()
  .regex(/^[a-z0-9-]+$/, 'expected a lowercase header name');

const claimName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'expected a claim name');

/** A calendar date (`2027-01-31`, the end of that day in UTC) or an RFC 3339 timestamp. */
const isoDate = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?$/, 'expected a date (2027-01-31) or an RFC 3339 timestamp')
  .refine(isRealDate, 'not a valid calendar date');

/** `Date.parse` rolls `2027-02-30` over to March 2; a date must name a day that exists. */
function isRealDate(text: string): boolean {
  if (Number.isNaN(Date.parse(text))) return false;
  const [year, month, day] = text.slice(0, 10).split('-').map(Number) as [number, number, number];
  const probe = new Date(Date.UTC(year, month - 1, day));
  return probe.getUTCFullYear() === year && probe.getUTCMonth() === month - 1 && probe.getUTCDate() === day;
}

const cidr = z
  .string()
  .regex(/^([0-9.]+|[0-9a-fA-F:]+)\/\d{1,3}$/, 'expected a CIDR block such as 10.0.0.0/8 or 2001:db8::/32');

const RATE_RE = /^([1-9][0-9]{0,8})\/(s|m|h)$/;
const RATE_UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000 } as const;

/** `100/s`, `6000/m`, `100000/h` → one request every `emissionIntervalMs` (GCRA's T). */
export const rate = z
  .string()
  .regex(RATE_RE, 'expected a rate such as 100/s, 6000/m or 100000/h')
  .transform((text) => {
    const [, count, unit] = RATE_RE.exec(text)!;
    return { text, emissionIntervalMs: RATE_UNIT_MS[unit as keyof typeof RATE_UNIT_MS] / Number(count) };
  });

const rateLimit = z
  .object({
    rate: rate.describe('Steady rate: requests per second, minute or hour, e.g. 100/s, 6000/m.'),
    burst: z.number().int().min(0).max(1_000_000).default(0).describe('Requests allowed at once on top of the steady rate (GCRA burst). Default 0.'),
  })
  .strict();

const quota = z
  .object({
    limit: z.number().int().min(1).describe('Most requests in one window.'),
    per: z.enum(['day', 'month']).describe('Calendar window: a day or a month, in `timezone`.'),
    timezone: z.string().min(1).default('UTC').describe('IANA time zone of the window boundaries. Default UTC.'),
  })
  .strict()
  .describe('A quota over a calendar window; counts persist in the state store across restarts.');

/** Asymmetric JWS algorithms only: `none` and HS* can never be configured (SECURITY.md JWT-01). */
export const SIGNING_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;

export const CREDENTIAL_TYPES = ['jwt', 'introspection', 'api_key', 'mtls'] as const;

/**
 * A policy rule in CEL. `require`: the request is denied unless the expression is true.
 * `deny`: the request is denied when it is true. Exactly one of the two.
 */
const policyRule = z
  .object({
    id: id.describe('Rule id; named on the decision record of every request it decides.'),
    require: z.string().min(1).optional().describe('CEL expression that must be true.'),
    deny: z.string().min(1).optional().describe('CEL expression that denies when true.'),
    reason: z
      .string()
      .regex(/^[a-z][a-z0-9_]{0,62}$/, 'expected a reason such as weekend_writes')
      .optional()
      .describe('Operator-facing reason recorded as policy.<reason> when this rule denies. Default: the rule id.'),
    description: z.string().optional().describe('What the rule is for.'),
  })
  .strict()
  .describe('A CEL policy rule over partner, credential, token, request and route.');

const ack = (exact: string) =>
  z.literal(exact).describe(`Acknowledgement of an insecure option; must be exactly "${exact}".`);

export const INSECURE_ACKS = {
  upstreamSkipVerify: 'I understand the upstream certificate will not be verified',
  rateLimitHeaders: 'I understand the RateLimit headers follow an Internet-Draft that may change',
  serveLastKnownState: 'I understand revocations made while Redis is unreachable are not enforced until it returns',
  clientSecret: 'I understand a client secret is a long-lived shared credential',
  bearerTokens: 'I understand tokens issued without mTLS or DPoP can be replayed by whoever holds them',
} as const;

const listenerLimits = z
  .object({
    max_header_bytes: byteSize
      .optional()
      .describe('Largest request header section accepted; larger gets 431. Default 16KiB.'),
    max_headers: z.number().int().min(1).max(1000).optional().describe('Most header fields accepted; more gets 431. Default 100.'),
    max_body_bytes: byteSize.optional().describe('Largest request body accepted unless a route sets its own; larger gets 413. Default 1MiB.'),
    headers_timeout: duration.optional().describe('Time allowed to receive the whole header section; slower gets 408. Default 10s.'),
    request_timeout: duration.optional().describe('Time allowed to receive the whole request; slower gets 408. Default 30s.'),
    keep_alive_timeout: duration.optional().describe('Idle time before a kept-alive client connection is closed. Default 5s.'),
  })
  .strict()
  .describe('Per-listener request limits (SECURITY.md HT-09).');

const listenerTls = z
  .object({
    cert: z.string().min(1).describe('Path to the PEM certificate chain served by this listener (relative to the config file). Re-read on reload.'),
    key: z.string().min(1).describe('Path to the PEM private key of the certificate (relative to the config file). Re-read on reload.'),
    http2: z.boolean().default(true).describe('Offer HTTP/2 by ALPN, with HTTP/1.1 fallback.'),
    min_version: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2').describe('Lowest TLS version accepted.'),
    client_certificates: z
      .enum(['none', 'request', 'require'])
      .default('none')
      .describe('Client certificates (mutual TLS): `none` (default); `request`: asked for, optional; `require`: a request without one is refused (401 tls.certificate_missing). Either way the certificate is checked against the partners\' own trust after the handshake, so each refusal gets a precise reason and a record.'),
    refuse_at_handshake: z
      .boolean()
      .default(false)
      .describe('Close a connection whose client certificate no partner accepts right after the handshake (no HTTP answer, no per-request record) instead of refusing its requests with a 401. Default false.'),
  })
  .strict()
  .describe('Serve TLS on this listener.');

export const listener = z
  .object({
    name: id.describe('Unique listener name; appears in decision records.'),
    zone,
    address: z.string().min(1).default('127.0.0.1').describe('IP address to bind. Loopback by default; use 0.0.0.0 or :: to expose.'),
    port: port.describe('TCP port to bind (0 picks a free port, for tests).'),
    hostnames: z
      .array(hostname)
      .min(1)
      .describe('Hostnames served by this listener. A request whose Host (or SNI) is not listed gets 421. There is no default hostname.'),
    environment: id
      .default('production')
      .describe('The environment this listener serves (e.g. production, sandbox); partner grants name the environments they cover.'),
    tls: listenerTls.optional(),
    limits: listenerLimits.optional(),
  })
  .strict()
  .describe('A data-plane listener.');

const upstreamTls = z
  .object({
    ca: z.string().min(1).optional().describe('Path to PEM CA certificates that sign the upstream certificate. Default: the system trust store.'),
    cert: z.string().min(1).optional().describe('Path to a PEM client certificate presented to the upstream (upstream mTLS).'),
    key: z.string().min(1).optional().describe('Path to the PEM private key of `cert`.'),
    servername: z.string().min(1).optional().describe('SNI and name to verify on the upstream certificate. Default: the URL host.'),
    insecure_skip_verify: ack(INSECURE_ACKS.upstreamSkipVerify)
      .optional()
      .describe(`Do not verify the upstream certificate. Requires the exact value "${INSECURE_ACKS.upstreamSkipVerify}"; logged at every load.`),
  })
  .strict()
  .describe('TLS settings for https upstreams.');

export const upstream = z
  .object({
    id: id.describe('Unique upstream id, referenced by routes.'),
    url: z
      .url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' })
      .describe('Base URL of the upstream (scheme, host, port and optional path prefix). The routed path is appended to its path.'),
    connections: z.number().int().min(1).max(4096).default(128).describe('Most open connections to this upstream.'),
    timeouts: z
      .object({
        connect: duration.default(2000).describe('Time allowed to open a connection. Default 2s.'),
        response_headers: duration.default(15000).describe('Time allowed for the upstream response headers. Default 15s.'),
        body: duration.default(30000).describe('Most idle time between response body chunks. Default 30s.'),
      })
      .strict()
      .default({ connect: 2000, response_headers: 15000, body: 30000 })
      .describe('Upstream timeouts; a timeout is a 504 upstream_timeout.'),
    keep_alive_timeout: duration.default(4000).describe('How long an idle upstream connection is kept. Default 4s.'),
    preserve_host: z
      .boolean()
      .default(false)
      .describe('Send the client\'s Host to the upstream. Default false: Host is the upstream URL\'s authority (the client\'s host is in X-Forwarded-Host and Forwarded).'),
    tls: upstreamTls.optional(),
  })
  .strict()
  .describe('An upstream service that routes forward to.');

const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

export const route = z
  .object({
    id: id.describe('Unique route id; appears in decision records and metrics.'),
    zone,
    hosts: z
      .array(hostname)
      .min(1)
      .optional()
      .describe('Hostnames this route answers on. Default: every hostname of the listeners in its zone.'),
    methods: z.array(z.enum(HTTP_METHODS)).min(1).describe('HTTP methods this route accepts; others get 405 with Allow.'),
    path: z
      .string()
      .regex(
        /^\/([A-Za-z0-9._~!$&'()*+,=:@-]+|\{[a-z_][a-z0-9_]*\}|\{[a-z_][a-z0-9_]*\*\})?(\/([A-Za-z0-9._~!$&'()*+,=:@-]+|\{[a-z_][a-z0-9_]*\}|\{[a-z_][a-z0-9_]*\*\}))*$/,
        'expected a path template such as /orders/{id}: literal segments and {param} segments; {rest*} only as the last segment',
      )
      .describe('Path template. `{name}` matches one segment; `{name*}` (last segment only) matches the rest of the path. Literal segments beat parameters; most specific first.'),
    upstream: id.describe('Id of the upstream this route forwards to.'),
    api: id.optional().describe('Id of the API this route belongs to.'),
    auth: z
      .enum(['required', 'none'])
      .default('required')
      .describe('`required` (default): a valid credential is needed. `none`: anonymous access, allowed only in the public zone.'),
    max_body_bytes: byteSize.optional().describe('Largest request body on this route; overrides the listener limit.'),
    credentials: z
      .array(z.enum(CREDENTIAL_TYPES))
      .min(1)
      .default(['jwt'])
      .describe('Credential types this route accepts (with `auth: required`): `jwt` (a token from a configured issuer), `introspection` (an opaque token checked at an introspection endpoint), `api_key` (legacy, flagged on every decision record). Default [jwt].'),
    scopes: z
      .array(scope)
      .default([])
      .describe('Scopes the token must carry, all of them (exact match). The partner\'s grant must cover them too.'),
    transaction_type: id.optional().describe('Transaction type of this operation (e.g. read, write, payment); grants may restrict it.'),
    sensitivity: sensitivity.optional().describe('Data sensitivity of this operation; default: the API\'s.'),
    purpose: z
      .object({
        header: headerName.optional().describe('Request header that declares the purpose (e.g. x-purpose).'),
        claim: claimName.optional().describe('Token claim that declares the purpose; used when the header is absent.'),
        allowed: z.array(id).min(1).describe('Purposes accepted on this route.'),
      })
      .strict()
      .optional()
      .describe('Require a declared purpose from an allowed list; the purpose is part of the decision and its record.'),
    policies: z.array(policyRule).default([]).describe('CEL rules evaluated for this route, after the API\'s and global rules.'),
    require_sender_constrained: z
      .boolean()
      .optional()
      .describe('Accept only sender-constrained tokens on this route (certificate-bound or DPoP-bound); default: the API\'s setting.'),
    rate_limit: rateLimit
      .extend({
        per: z.enum(['partner', 'credential']).default('partner').describe('Whose requests share the limit on this route: each partner\'s, or each credential\'s. Default partner.'),
      })
      .strict()
      .optional()
      .describe('Rate limit of this operation, counted per partner (or per credential).'),
  })
  .strict()
  .describe('A route: which requests go to which upstream, and what they must prove. A route of an API is one of its operations.');

export const api = z
  .object({
    id: id.describe('Unique API id, referenced by routes and partner grants.'),
    name: z.string().min(1).optional().describe('Human-readable name.'),
    audience: z
      .string()
      .min(1)
      .optional()
      .describe('Resource identifier of this API: a token must list it in `aud` (exact match). Required when a route of the API accepts tokens.'),
    sensitivity: sensitivity.default('internal').describe('Default data sensitivity of the API\'s operations.'),
    introspection: id
      .optional()
      .describe('Id of the introspection endpoint that knows this API\'s opaque tokens. Default: the only endpoint, when exactly one is configured; required when there are several.'),
    policies: z.array(policyRule).default([]).describe('CEL rules evaluated for every route of this API, after the global rules.'),
    require_sender_constrained: z.boolean().default(false).describe('Accept only sender-constrained tokens on this API\'s routes. Default false.'),
    token_lifetime: duration.optional().describe('Lifetime of tokens the token service issues for this API (never above token_service.max_token_lifetime).'),
  })
  .strict()
  .describe('An API: a set of routes (its operations) that partners are granted access to.');

const partnerCredential = z.discriminatedUnion('type', [
  z
    .object({
      id: id.describe('Unique credential id (across all partners); appears in decision records.'),
      type: z.literal('jwt'),
      issuer: id.describe('Id of the issuer (in `issuers`) that issues this credential\'s tokens.'),
      client_id: z.string().min(1).describe('Value of the issuer\'s partner claim (`client_id` by default) that identifies this credential.'),
      rate_limit: rateLimit.optional().describe('Rate limit of this credential, on top of the partner\'s.'),
    })
    .strict()
    .describe('Tokens of a configured issuer, identified by their client id.'),
  z
    .object({
      id: id.describe('Unique credential id (across all partners).'),
      type: z.literal('introspection'),
      endpoint: id.describe('Id of the introspection endpoint (in `introspection`) that knows these tokens.'),
      client_id: z.string().min(1).describe('`client_id` of the introspection response that identifies this credential.'),
      rate_limit: rateLimit.optional().describe('Rate limit of this credential, on top of the partner\'s.'),
    })
    .strict()
    .describe('Opaque tokens checked at an introspection endpoint, identified by their client id.'),
  z
    .object({
      id: id.describe('Unique credential id (across all partners).'),
      type: z.literal('client'),
      client_id: z.string().min(1).max(256).describe('The OAuth client id this partner uses at the token service (`iss`/`sub` of its client assertions; `client_id` of the tokens issued to it).'),
      auth: z
        .enum(['private_key_jwt', 'tls_client_auth', 'self_signed_tls_client_auth', 'client_secret_basic'])
        .describe('How the client authenticates at the token endpoint: `private_key_jwt` (RFC 7523, keys in `jwks_file` or `jwks_uri`), `tls_client_auth` (RFC 8705 §2.1: the partner\'s mTLS certificate), `self_signed_tls_client_auth` (RFC 8705 §2.2: a certificate whose key is in `jwks_file`), `client_secret_basic` (legacy; needs `insecure_shared_secret`).'),
      jwks_file: z.string().min(1).optional().describe('JWKS file of the client\'s public keys (private_key_jwt, self_signed_tls_client_auth).'),
      jwks_uri: z.url({ protocol: /^https?$/ }).optional().describe('URL of the client\'s JWKS (private_key_jwt). Plain http only to loopback addresses.'),
      secret_sha256: z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex digits').optional().describe('SHA-256 (hex) of the client secret (client_secret_basic only).'),
      insecure_shared_secret: ack(INSECURE_ACKS.clientSecret).optional(),
      token_lifetime: duration.optional().describe('Lifetime of tokens issued to this client (never above token_service.max_token_lifetime).'),
      token_exchange: z.boolean().default(false).describe('May exchange tokens of its partner for narrower ones (RFC 8693). Default false (SECURITY.md TX-06).'),
      rate_limit: rateLimit.optional().describe('Rate limit of this credential, on top of the partner\'s.'),
    })
    .strict()
    .describe('A client of the gateway\'s own token service: it obtains short-lived tokens (RFC 6749 §4.4) and presents them on routes that accept `jwt`.'),
  z
    .object({
      id: id.describe('Unique credential id (across all partners).'),
      type: z.literal('mtls'),
      rate_limit: rateLimit.optional().describe('Rate limit of this credential, on top of the partner\'s.'),
    })
    .strict()
    .describe('The partner\'s client certificate alone (see `mtls`), on routes that accept `mtls`. At most one per partner.'),
  z
    .object({
      id: id.describe('Unique credential id (across all partners).'),
      type: z.literal('api_key'),
      key_id: z
        .string()
        .regex(/^[a-z0-9]{12}$/, 'expected the 12-character key id that `portcullis apikey create` printed')
        .describe('Public id of the key (the part after the `pcs_` prefix).'),
      sha256: z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex digits').describe('SHA-256 (hex) of the whole key; the key itself is never stored.'),
      expires: isoDate.describe('Expiry (required): API keys are long-lived credentials and must end.'),
      rate_limit: rateLimit.optional().describe('Rate limit of this credential, on top of the partner\'s.'),
    })
    .strict()
    .describe('A legacy API key (header `X-API-Key`). Every use is marked as a long-lived credential.'),
]);

export const REVOCATION_SOFT_FAIL_ACK = 'I understand a revoked certificate is accepted while its revocation status cannot be checked' as const;

const fingerprint = z
  .string()
  .regex(/^sha256:[0-9a-f]{64}$/, 'expected sha256: and 64 lowercase hex digits (portcullis report certificates prints them)');

const namePattern = z
  .string()
  .min(1)
  .max(512)
  .describe('An exact name, or `*` standing for one DNS label / one path segment (e.g. `*.acme.example`, `spiffe://acme.example/workload/*`).');

const partnerMtls = z
  .object({
    ca: z
      .array(z.string().min(1))
      .default([])
      .describe('PEM files of the CA certificates this partner\'s client certificates chain to (roots, and intermediates the partner does not send). Trusted for this partner only.'),
    pinned: z.array(fingerprint).default([]).describe('SHA-256 fingerprints of individual client certificates accepted for this partner (self-signed or from any CA).'),
    subjects: z.array(z.string().min(1).max(1024)).min(1).optional().describe('Accepted subject DNs, whole: RFC 4514 order (`CN=orders-client,O=Acme`) or node\'s one-per-line form; `*` matches within one attribute value.'),
    san_dns: z.array(namePattern).min(1).optional().describe('Accepted DNS subject alternative names.'),
    san_uri: z.array(namePattern).min(1).optional().describe('Accepted URI subject alternative names, e.g. SPIFFE IDs `spiffe://acme.example/*`.'),
    revocation: z
      .object({
        crl: z
          .object({
            file: z.string().min(1).optional().describe('A CRL file (PEM or DER), re-read when it changes.'),
            url: z.url({ protocol: /^https?$/ }).optional().describe('URL the CRL is fetched from.'),
            from_certificate: z.boolean().default(false).describe('Fetch the CRL named by the certificate\'s distribution point, if its host is in `allowed_hosts`.'),
            refresh: duration.default(3600000).describe('Longest time between two fetches (a CRL is refetched before its nextUpdate anyway). Default 1h.'),
            timeout: duration.default(5000).describe('Timeout of one fetch. Default 5s.'),
          })
          .strict()
          .optional(),
        ocsp: z
          .object({
            url: z.url({ protocol: /^https?$/ }).optional().describe('OCSP responder URL. Default: the certificate\'s AIA, if its host is in `allowed_hosts`.'),
            from_certificate: z.boolean().default(false).describe('Use the responder named in the certificate\'s Authority Information Access, if its host is in `allowed_hosts`.'),
            timeout: duration.default(2000).describe('Timeout of one query. Default 2s.'),
            max_cache: duration.default(3600000).describe('Longest time a good answer is cached (never beyond its nextUpdate). Default 1h.'),
          })
          .strict()
          .optional(),
        allowed_hosts: z.array(z.string().min(1)).default([]).describe('Hosts the gateway may fetch CRLs and OCSP answers from when a certificate names them (SSRF guard).'),
        on_unavailable: z
          .enum(['refuse', 'allow'])
          .default('refuse')
          .describe('When the revocation status cannot be established: `refuse` (default, 503 tls.revocation_unavailable) or `allow` (soft-fail: counted, and marked on every record it affects; needs `acknowledge`).'),
        acknowledge: z.literal(REVOCATION_SOFT_FAIL_ACK).optional(),
      })
      .strict()
      .optional()
      .describe('How revocation of this partner\'s certificates is checked. Without it, only revocations made through the gateway apply.'),
  })
  .strict()
  .describe('Mutual TLS trust for one partner.');

const TIME_OF_DAY = /^([01][0-9]|2[0-3]):[0-5][0-9]$/;
const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;

const grant = z
  .object({
    api: id.describe('Id of the granted API.'),
    environments: z.array(id).min(1).default(['production']).describe('Environments (listener `environment`) this grant covers. Default [production].'),
    scopes: z.array(scope).default([]).describe('Scopes the partner may hold for this API; a token carrying others gains nothing from them.'),
    constraints: z
      .object({
        time_windows: z
          .array(
            z
              .object({
                days: z.array(z.enum(WEEKDAYS)).min(1).default([...WEEKDAYS]).describe('Days of the week.'),
                from: z.string().regex(TIME_OF_DAY, 'expected HH:MM').describe('Start time (inclusive), HH:MM.'),
                to: z.string().regex(TIME_OF_DAY, 'expected HH:MM').describe('End time (exclusive), HH:MM; earlier than `from` means the window crosses midnight.'),
              })
              .strict(),
          )
          .min(1)
          .optional()
          .describe('Requests are allowed only inside one of these windows.'),
        timezone: z.string().min(1).default('UTC').describe('IANA time zone of the time windows. Default UTC.'),
        transaction_types: z.array(id).min(1).optional().describe('Transaction types (route `transaction_type`) allowed.'),
        purposes: z.array(id).min(1).optional().describe('Purposes allowed (see route `purpose`).'),
        source_networks: z.array(cidr).min(1).optional().describe('Client addresses allowed, as CIDR blocks.'),
      })
      .strict()
      .optional()
      .describe('Conditions that must all hold for the grant to apply.'),
  })
  .strict()
  .describe('Access of a partner to one API.');

export const partner = z
  .object({
    id: id.describe('Unique partner id.'),
    name: z.string().min(1).optional().describe('Human-readable name.'),
    owner: z.string().min(1).optional().describe('Who owns this partnership on our side (team or person).'),
    contact: z.string().min(1).optional().describe('Partner contact (e-mail or URL) for incidents.'),
    tier: id.default('standard').describe('Partner tier (e.g. standard, premium); available to policies and rate limits.'),
    attributes: z
      .record(z.string().regex(/^[a-z][a-z0-9_]{0,62}$/), z.union([z.string(), z.number(), z.boolean()]))
      .default({})
      .describe('Free attributes available to policies as partner.attributes.'),
    status: z.enum(['active', 'suspended', 'offboarded']).default('active').describe('Only active partners are let through.'),
    agreement: z
      .object({
        id: z.string().min(1).describe('Agreement (contract) id; appears in decision records.'),
        expires: isoDate.describe('End of the agreement: from then on, no access.'),
      })
      .strict()
      .optional()
      .describe('The agreement under which the partner has access. No current agreement, no access.'),
    credentials: z.array(partnerCredential).default([]).describe('How this partner proves who it is.'),
    grants: z.array(grant).default([]).describe('APIs this partner may call.'),
    policies: z.array(policyRule).default([]).describe('CEL rules evaluated for this partner\'s requests, after route rules.'),
    rate_limit: rateLimit.optional().describe('Rate limit of all this partner\'s requests together. Default: its tier\'s (`rate_limits.tiers`).'),
    quotas: z.array(quota).optional().describe('Quotas over calendar windows. Default: its tier\'s.'),
    max_concurrent: z.number().int().min(1).optional().describe('Most requests of this partner in flight at once, per instance. Default: its tier\'s.'),
    source_networks: z
      .array(cidr)
      .min(1)
      .optional()
      .describe('Client addresses this partner may call from, as CIDR blocks; a credential used from elsewhere is refused and flagged.'),
    mtls: partnerMtls.optional().describe('Client certificates that authenticate this partner (mutual TLS).'),
    require_sender_constrained: z
      .boolean()
      .default(false)
      .describe('Accept only sender-constrained tokens from this partner (bound to its TLS certificate, RFC 8705, or to a DPoP key, RFC 9449); a plain bearer token is refused.'),
  })
  .strict()
  .describe('A partner organisation.');

const issuer = z
  .object({
    id: id.describe('Unique issuer id, referenced by partner credentials.'),
    issuer: z.string().min(1).describe('The exact `iss` of its tokens (compared byte for byte: no case folding, no trailing-slash tolerance).'),
    jwks_uri: z.url({ protocol: /^https?$/ }).optional().describe('URL of the issuer\'s JWKS. Plain http only to loopback addresses.'),
    discovery: z
      .url({ protocol: /^https?$/ })
      .optional()
      .describe('OpenID Connect / RFC 8414 metadata URL; its `jwks_uri` is used (and its `issuer` must equal `issuer`).'),
    jwks_file: z.string().min(1).optional().describe('Path of a local JWKS file (relative to the config file); re-read on reload.'),
    ca: z.string().min(1).optional().describe('PEM CA certificates for fetching the JWKS or metadata over https. Default: system store.'),
    algorithms: z
      .array(z.enum(SIGNING_ALGORITHMS))
      .min(1)
      .describe('Algorithms this issuer may sign with (required; `none` and HS* are never accepted).'),
    typ: z.string().min(1).default('at+jwt').describe('Required `typ` header (RFC 9068: at+jwt; `application/` prefix and case are ignored).'),
    leeway: duration.default(30000).describe('Clock leeway for exp/nbf/iat. Default 30s, at most 60s.'),
    max_token_lifetime: duration.default(3600000).describe('Longest accepted `exp - iat`. Default 1h.'),
    partner_claim: z.enum(['client_id', 'sub']).default('client_id').describe('Claim that identifies the partner credential. Default client_id.'),
    refresh_interval: duration.default(600000).describe('How often remote keys are refreshed. Default 10m.'),
    unknown_kid_cooldown: duration.default(30000).describe('Least time between two refetches caused by an unknown `kid`. Default 30s.'),
    fetch_timeout: duration.default(5000).describe('Timeout of a JWKS or metadata fetch. Default 5s.'),
  })
  .strict()
  .describe('A trusted token issuer. Exactly one of jwks_uri, discovery, jwks_file.');

/** `audit.disabled_for_benchmark`: the only way to run without an audit trail, for `bench/` alone. */
export const AUDIT_DISABLED_FOR_BENCHMARK_ACK = 'I understand no audit record is written' as const;

export const INTROSPECTION_SECRET_ACK = 'I understand a shared client secret is a long-lived credential' as const;

const introspectionEndpoint = z
  .object({
    id: id.describe('Unique endpoint id, referenced by partner credentials.'),
    url: z.url({ protocol: /^https?$/ }).describe('RFC 7662 introspection endpoint. Plain http only to loopback addresses.'),
    issuer: z.string().min(1).optional().describe('Expected `iss` in introspection responses, when they carry one.'),
    ca: z.string().min(1).optional().describe('PEM CA certificates for the endpoint. Default: system store.'),
    client_id: z.string().min(1).describe('The gateway\'s client id at the endpoint.'),
    auth: z
      .discriminatedUnion('method', [
        z
          .object({
            method: z.literal('private_key_jwt'),
            key: z.string().min(1).describe('PEM private key (PKCS#8) that signs the client assertion.'),
            alg: z.enum(SIGNING_ALGORITHMS).describe('Signing algorithm of the client assertion.'),
            kid: z.string().min(1).optional().describe('`kid` of the key as registered at the endpoint.'),
          })
          .strict(),
        z
          .object({
            method: z.literal('tls_client_auth'),
            cert: z.string().min(1).describe('PEM client certificate.'),
            key: z.string().min(1).describe('PEM private key of the certificate.'),
          })
          .strict(),
        z
          .object({
            method: z.literal('client_secret_basic'),
            secret: z.string().min(1).describe('The client secret (use ${ENV} interpolation; never commit it).'),
            insecure_shared_secret: ack(INTROSPECTION_SECRET_ACK),
          })
          .strict(),
      ])
      .describe('How the gateway authenticates to the endpoint (RFC 7662 §2.1). Asymmetric methods are preferred.'),
    cache_ttl: duration.default(60000).describe('Longest time an active result is cached (never beyond the token\'s exp). Default 60s.'),
    negative_cache_ttl: duration.default(5000).describe('How long an inactive result is cached. Default 5s.'),
    timeout: duration.default(2000).describe('Timeout of one introspection call; a timeout is a 503. Default 2s.'),
    max_requests_per_second: z.number().int().min(1).default(100).describe('Most calls per second to the endpoint (cache misses); beyond it, 503.'),
  })
  .strict()
  .describe('An RFC 7662 introspection endpoint for opaque tokens.');

export const config = z
  .object({
    version: z.literal(1).describe('Configuration format version. Must be 1.'),
    gateway: z
      .object({
        data_dir: z.string().min(1).default('.portcullis').describe('Folder for state and keys (relative to the config file).'),
        shutdown_delay: duration.default(0).describe('On SIGTERM, how long /readyz reports 503 before listeners stop accepting (lets load balancers deregister). Default 0s.'),
        drain_timeout: duration.default(30000).describe('On SIGTERM, how long in-flight requests may finish before connections are closed. Default 30s.'),
        decision_log: z
          .string()
          .min(1)
          .default('stdout')
          .describe('Where decision records go as JSON lines: `stdout`, or a file path (relative to the config file).'),
      })
      .strict()
      .default({ data_dir: '.portcullis', shutdown_delay: 0, drain_timeout: 30000, decision_log: 'stdout' })
      .describe('Process-wide settings.'),
    audit: z
      .object({
        dir: z.string().min(1).optional().describe('Folder of the audit trail (relative to the config file). Default: <data_dir>/audit.'),
        flush: z
          .enum(['interval', 'os', 'every-record'])
          .default('interval')
          .describe('`interval`: records are written and fsynced at least every `flush_interval` (a crash loses at most that); `os`: written at the same pace, synced when the OS decides; `every-record`: a response ends only once its record is written and fsynced (concurrent records share one fsync) — no loss, at the cost of an fdatasync per group of records.'),
        flush_interval: duration.default(100).describe('Longest time a record waits in memory before it is written. Default 100ms.'),
        checkpoint_interval: duration.default(60000).describe('A signed checkpoint is written at least this often per stream (when it has new records). Default 60s.'),
        checkpoint_every: z.number().int().min(1).default(1000).describe('…and at least every this many records per stream. Default 1000.'),
        signing_key: z
          .string()
          .min(1)
          .optional()
          .describe('PEM Ed25519 private key that signs checkpoints. Default: generated on first start in <data_dir>/audit-keys/ (keep audit-signing.pub to verify).'),
        max_queue: z.number().int().min(100).default(10000).describe('Most records waiting to be written; beyond it new requests are refused with 503 audit_unavailable.'),
        rotate: z
          .object({
            max_bytes: z
              .number()
              .int()
              .min(65536)
              .default(256 * 1024 * 1024)
              .describe('A stream file is closed (after a signed checkpoint) and renamed to `<name>.<UTC timestamp>.jsonl` before it would grow past this many bytes. Default 256 MiB (268435456).'),
            daily: z.boolean().default(true).describe('Also close and rename every stream file when the UTC day changes. Default true.'),
          })
          .strict()
          .default({ max_bytes: 256 * 1024 * 1024, daily: true })
          .describe('Rotation of the stream files: a rotated file is never written again, and the chain goes on in the new file (`audit verify` reads the segments in order).'),
        sinks: z
          .array(z.enum(['file', 'stdout', 'otlp']))
          .min(1)
          .default(['file'])
          .refine((sinks) => sinks.includes('file'), { message: 'audit.sinks must include file: the file is what `audit verify` checks and what refuses requests when it cannot be written' })
          .refine((sinks) => new Set(sinks).size === sinks.length, { message: 'audit.sinks lists a sink twice' })
          .describe('Where chained lines go. `file` (required) is the source of truth; `stdout` copies every line of the combined stream to stdout as written; `otlp` exports each as an OpenTelemetry log record (the SDK is loaded only then). A failing copy never blocks or fails the trail. Default [file].'),
        otlp: z
          .object({
            url: z
              .url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' })
              .describe('OTLP/HTTP logs endpoint, e.g. http://127.0.0.1:4318/v1/logs (the full path: nothing is appended).'),
            headers: z
              .record(headerName, z.string())
              .default({})
              .describe('Headers sent with every export (e.g. a collector API key; use ${ENV} interpolation for secrets). Never logged.'),
            timeout: duration.default(10000).describe('Time allowed for one export request. Default 10s.'),
          })
          .strict()
          .optional()
          .describe('The OTLP logs sink (OTLP/HTTP, JSON encoding). Required when `sinks` names `otlp`.'),
        // Benchmarks only (bench/, issue 6: the cost of the trail needs a row without one). Two
        // separate acts are needed: this exact sentence in the file and PORTCULLIS_BENCHMARK=1 in
        // the environment, else `serve` refuses to start (src/server/gateway.ts).
        disabled_for_benchmark: z
          .literal(AUDIT_DISABLED_FOR_BENCHMARK_ACK)
          .optional()
          .describe(`Benchmarks only: no audit trail at all (the decision log is still written). Must be exactly "${AUDIT_DISABLED_FOR_BENCHMARK_ACK}", and the gateway refuses to start unless PORTCULLIS_BENCHMARK=1 is set; it then never reports ready.`),
      })
      .strict()
      .refine((audit) => !audit.sinks.includes('otlp') || audit.otlp !== undefined, { message: 'audit.sinks names otlp: audit.otlp.url is needed', path: ['otlp'] })
      .default({
        flush: 'interval',
        flush_interval: 100,
        checkpoint_interval: 60000,
        checkpoint_every: 1000,
        max_queue: 10000,
        rotate: { max_bytes: 256 * 1024 * 1024, daily: true },
        sinks: ['file'],
      })
      .describe('The tamper-evident audit trail: one hash-chained record per decision, a combined stream and one stream per partner, signed checkpoints. A request that cannot be recorded is not forwarded.'),
    token_service: z
      .object({
        issuer: z.url({ protocol: /^https?$/ }).describe('The `iss` of the tokens it issues, and the base of its metadata (RFC 8414). https in production.'),
        listener: id.describe('Name of the listener that serves the token service (`/oauth2/token`, `/oauth2/jwks`, `/oauth2/introspect`, `/oauth2/revoke`, `/.well-known/oauth-authorization-server`).'),
        algorithm: z.enum(['ES256', 'EdDSA', 'PS256', 'RS256']).default('ES256').describe('Signing algorithm of issued tokens. Default ES256.'),
        token_lifetime: duration.default(300000).describe('Default lifetime of issued tokens. Default 5m.'),
        max_token_lifetime: duration.default(900000).describe('Ceiling of any lifetime (client, API or request). Default 15m.'),
        assertion_max_lifetime: duration.default(300000).describe('Longest `exp - now` of an accepted client assertion (RFC 7523). Default 5m.'),
        key_overlap: duration.default(86400000).describe('After `portcullis keys rotate`, how long the previous key stays in the JWKS (it no longer signs). Default 24h.'),
        allow_bearer_tokens: ack(INSECURE_ACKS.bearerTokens)
          .optional()
          .describe('Issue tokens without a sender constraint when the client used neither mTLS nor DPoP. Default: refused (`invalid_request`).'),
      })
      .strict()
      .optional()
      .describe('The gateway\'s own token service: short-lived, audience-bound, sender-constrained tokens for partner clients (RFC 6749 §4.4, RFC 7523, RFC 8705, RFC 9449, RFC 8693, RFC 9068).'),
    dpop: z
      .object({
        algorithms: z
          .array(z.enum(SIGNING_ALGORITHMS))
          .min(1)
          .default(['ES256', 'EdDSA', 'PS256', 'RS256'])
          .describe('Algorithms accepted for DPoP proofs (RFC 9449 §4.3: asymmetric only).'),
        proof_lifetime: duration.default(60000).describe('Largest difference between a proof\'s `iat` and now, either way. Default 60s.'),
        nonce: z.boolean().default(false).describe('Require a server nonce in proofs (RFC 9449 §8): a proof without a current one gets 401 use_dpop_nonce and a `DPoP-Nonce` header.'),
        nonce_lifetime: duration.default(300000).describe('How long a server nonce stays valid. Default 5m.'),
      })
      .strict()
      .default({ algorithms: ['ES256', 'EdDSA', 'PS256', 'RS256'], proof_lifetime: 60000, nonce: false, nonce_lifetime: 300000 })
      .describe('DPoP proofs of possession (RFC 9449) for DPoP-bound tokens.'),
    state: z
      .object({
        driver: z
          .enum(['embedded', 'redis'])
          .default('embedded')
          .describe('`embedded` (default): in-process, persisted with SQLite in the data folder; shared by the workers of one host. `redis`: shared by many instances.'),
        redis: z
          .object({
            url: z
              .string()
              .regex(/^rediss?:\/\/[^\s]+$/, 'expected a redis:// or rediss:// URL')
              .optional()
              .describe('A single Redis server, e.g. redis://127.0.0.1:6379/0. Exactly one of url, sentinel, cluster.'),
            sentinel: z
              .object({
                name: z.string().min(1).describe('Name of the monitored master.'),
                nodes: z.array(z.string().regex(/^[^\s:]+:\d{1,5}$/, 'expected host:port')).min(1).describe('Sentinel addresses, host:port.'),
              })
              .strict()
              .optional()
              .describe('Redis Sentinel: the master is found through the sentinels.'),
            cluster: z
              .object({
                nodes: z.array(z.string().regex(/^rediss?:\/\/[^\s]+$/, 'expected a redis:// URL')).min(1).describe('Seed nodes of the cluster.'),
              })
              .strict()
              .optional()
              .describe('Redis Cluster: keys are spread over the nodes.'),
            key_prefix: z.string().regex(/^[A-Za-z0-9:_.-]{1,64}$/).default('portcullis:').describe('Prefix of every key and channel. Default portcullis:.'),
            connect_timeout: duration.default(2000).describe('Timeout of a connection attempt. Default 2s.'),
            command_timeout: duration.default(1000).describe('Timeout of one command; a timeout is a 503. Default 1s.'),
            on_disconnect: z
              .enum(['fail_closed', 'serve_last_known'])
              .default('fail_closed')
              .describe('When Redis is unreachable: `fail_closed` (default) refuses requests with 503; `serve_last_known` keeps enforcing the last known revocations for `serve_last_known_for` (needs `acknowledge`).'),
            serve_last_known_for: duration.default(30000).describe('Longest time the last known state is served while Redis is unreachable. Default 30s, at most 10m.'),
            acknowledge: ack(INSECURE_ACKS.serveLastKnownState).optional(),
          })
          .strict()
          .optional()
          .describe('Redis connection (with `driver: redis`).'),
        propagation_timeout: duration
          .default(1000)
          .describe('How long a revocation made through the admin API waits for every live instance to confirm it. Default 1s.'),
      })
      .strict()
      .default({ driver: 'embedded', propagation_timeout: 1000 })
      .describe('Where mutable, shared state lives: revocations, partner status, rate-limit counters and quotas, replay caches.'),
    admin: z
      .object({
        tokens: z
          .array(
            z
              .object({
                id: id.describe('Who holds this token; recorded as the actor of every change made with it.'),
                sha256: z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex digits').describe('SHA-256 (hex) of the token, as `portcullis admin token` prints it.'),
              })
              .strict(),
          )
          .default([])
          .describe('Bearer tokens accepted by the admin API (`/admin/…` on the ops listener). None: the admin API refuses every call.'),
      })
      .strict()
      .default({ tokens: [] })
      .describe('The admin API: revocations and partner status changes.'),
    rate_limits: z
      .object({
        mode: z
          .enum(['local', 'shared'])
          .default('local')
          .describe('`local` (default): each instance counts on its own, no round trip (approximate across instances). `shared`: counted in the state store, exact across instances.'),
        tiers: z
          .record(
            id,
            z
              .object({
                rate_limit: rateLimit.optional().describe('Rate limit of each partner of this tier.'),
                quotas: z.array(quota).default([]).describe('Quotas of each partner of this tier.'),
                max_concurrent: z.number().int().min(1).optional().describe('Most requests in flight per partner of this tier, per instance.'),
              })
              .strict(),
          )
          .default({})
          .describe('Defaults per partner tier; a partner\'s own settings override them.'),
        headers: z
          .object({
            enabled: z.literal(true),
            acknowledge: ack(INSECURE_ACKS.rateLimitHeaders),
          })
          .strict()
          .optional()
          .describe('Send `RateLimit-Policy` / `RateLimit` headers (draft-ietf-httpapi-ratelimit-headers). Off by default.'),
      })
      .strict()
      .default({ mode: 'local', tiers: {} })
      .describe('Rate limits and quotas. Keys come from the authenticated identity, never from forwarding headers.'),
    abuse: z
      .object({
        auth_failures_per_source: z
          .union([
            z
              .object({
                max: z.number().int().min(1).describe('Authentication failures (401) allowed from one address within `window`.'),
                window: duration.describe('Counting window.'),
                block: duration.describe('How long the address is then refused.'),
              })
              .strict(),
            z.literal('off'),
          ])
          .default({ max: 100, window: 60000, block: 300000 })
          .describe('Temporary block of a client address after a burst of authentication failures. Default 100 per 1m, blocked 5m; `off` to disable.'),
        denials_per_credential: z
          .union([
            z
              .object({
                max: z.number().int().min(1).describe('Authorization refusals (403) allowed for one credential within `window`.'),
                window: duration.describe('Counting window.'),
                block: duration.describe('How long the credential is then refused.'),
              })
              .strict(),
            z.literal('off'),
          ])
          .default({ max: 100, window: 60000, block: 300000 })
          .describe('Temporary block of an authenticated credential that keeps probing what it is not granted. Default 100 per 1m, blocked 5m; `off` to disable.'),
      })
      .strict()
      .default({ auth_failures_per_source: { max: 100, window: 60000, block: 300000 }, denials_per_credential: { max: 100, window: 60000, block: 300000 } })
      .describe('Abuse protection, per instance.'),
    tracing: z
      .object({
        enabled: z.boolean().default(false).describe('Export OpenTelemetry spans (a SERVER span per request, a CLIENT span per upstream call). Off by default: the SDK is then never loaded.'),
        exporter: z
          .object({
            otlp_http: z
              .object({
                url: z
                  .url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' })
                  .describe('OTLP/HTTP traces endpoint, e.g. http://127.0.0.1:4318/v1/traces (the full path: nothing is appended).'),
                headers: z
                  .record(headerName, z.string())
                  .default({})
                  .describe('Headers sent with every export (e.g. a collector API key; use ${ENV} interpolation for secrets). Never logged.'),
                timeout: duration.default(10000).describe('Time allowed for one export request. Default 10s.'),
              })
              .strict()
              .describe('OTLP over HTTP with JSON bodies (OTLP/HTTP JSON encoding).'),
          })
          .strict()
          .optional()
          .describe('Where spans go. Required when `enabled`.'),
        sample_ratio: z.number().min(0).max(1).default(1).describe('Share of new traces that are recorded (by trace id). A continued trace follows its caller\'s `sampled` flag. Default 1.'),
        trust_incoming_traceparent: z
          .boolean()
          .default(true)
          .describe('Continue the trace of a valid incoming W3C `traceparent` (its trace id goes into records, spans and the upstream\'s traceparent). false: every request starts a new trace. The gateway always starts its own span. Default true.'),
        service_name: z.string().min(1).max(128).default('portcullis').describe('`service.name` of the exported spans. Default portcullis.'),
        export_interval: duration.default(5000).describe('Longest time a finished span waits before it is exported (batched). Default 5s.'),
        max_queue: z.number().int().min(1).max(1_000_000).default(2048).describe('Most finished spans waiting for export; beyond it spans are dropped (never requests). Default 2048.'),
      })
      .strict()
      .refine((tracing) => !tracing.enabled || tracing.exporter !== undefined, { message: 'tracing.enabled needs exporter.otlp_http', path: ['exporter'] })
      .default({ enabled: false, sample_ratio: 1, trust_incoming_traceparent: true, service_name: 'portcullis', export_interval: 5000, max_queue: 2048 })
      .describe('OpenTelemetry tracing (HTTP semantic conventions) and W3C Trace Context handling.'),
    ops: z
      .object({
        address: z.string().min(1).default('127.0.0.1').describe('Address of the ops listener (/livez, /readyz). Loopback by default.'),
        port: port.default(9901).describe('Port of the ops listener.'),
      })
      .strict()
      .default({ address: '127.0.0.1', port: 9901 })
      .describe('The ops listener: health and readiness, never on a data-plane port.'),
    listeners: z.array(listener).min(1).describe('Data-plane listeners.'),
    upstreams: z.array(upstream).default([]).describe('Upstream services.'),
    issuers: z.array(issuer).default([]).describe('Trusted token issuers.'),
    introspection: z.array(introspectionEndpoint).default([]).describe('Introspection endpoints for opaque tokens.'),
    apis: z.array(api).default([]).describe('APIs offered to partners.'),
    partners: z.array(partner).default([]).describe('Partners and their grants.'),
    routes: z.array(route).default([]).describe('Routes. Nothing is reachable without one.'),
    policies: z.array(policyRule).default([]).describe('Global CEL rules, evaluated first for every authenticated request.'),
  })
  .strict()
  .describe('Portcullis gateway configuration.');

export type ConfigInput = z.input<typeof config>;
export type Config = z.output<typeof config>;
export type ListenerConfig = z.output<typeof listener>;
export type UpstreamConfig = z.output<typeof upstream>;
export type RouteConfig = z.output<typeof route>;
export type Zone = z.output<typeof zone>;
export type IssuerConfig = z.output<typeof issuer>;
export type IntrospectionConfig = z.output<typeof introspectionEndpoint>;
export type PartnerConfig = z.output<typeof partner>;
export type PartnerCredentialConfig = z.output<typeof partnerCredential>;
export type GrantConfig = z.output<typeof grant>;
export type PolicyRuleConfig = z.output<typeof policyRule>;
export type ApiConfig = z.output<typeof api>;
export type Sensitivity = z.output<typeof sensitivity>;
export type CredentialType = (typeof CREDENTIAL_TYPES)[number];
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];
export type HttpMethod = (typeof HTTP_METHODS)[number];
export { HTTP_METHODS };
