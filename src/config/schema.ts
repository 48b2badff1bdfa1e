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

const ack = (exact: string) =>
  z.literal(exact).describe(`Acknowledgement of an insecure option; must be exactly "${exact}".`);

export const INSECURE_ACKS = {
  upstreamSkipVerify: 'I understand the upstream certificate will not be verified',
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
  })
  .strict()
  .describe('A route: which requests go to which upstream, and what they must prove.');

export const api = z
  .object({
    id: id.describe('Unique API id, referenced by routes and partner grants.'),
    name: z.string().min(1).optional().describe('Human-readable name.'),
  })
  .strict()
  .describe('An API: a set of routes that partners are granted access to.');

export const partner = z
  .object({
    id: id.describe('Unique partner id.'),
    name: z.string().min(1).optional().describe('Human-readable name.'),
    status: z.enum(['active', 'suspended', 'offboarded']).default('active').describe('Only active partners are let through.'),
    grants: z
      .array(
        z
          .object({
            api: id.describe('Id of the granted API.'),
          })
          .strict(),
      )
      .default([])
      .describe('APIs this partner may call.'),
  })
  .strict()
  .describe('A partner organisation.');

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
    apis: z.array(api).default([]).describe('APIs offered to partners.'),
    partners: z.array(partner).default([]).describe('Partners and their grants.'),
    routes: z.array(route).default([]).describe('Routes. Nothing is reachable without one.'),
  })
  .strict()
  .describe('Portcullis gateway configuration.');

export type ConfigInput = z.input<typeof config>;
export type Config = z.output<typeof config>;
export type ListenerConfig = z.output<typeof listener>;
export type UpstreamConfig = z.output<typeof upstream>;
export type RouteConfig = z.output<typeof route>;
export type Zone = z.output<typeof zone>;
export type HttpMethod = (typeof HTTP_METHODS)[number];
export { HTTP_METHODS };
