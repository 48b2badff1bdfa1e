/**
 * Compiles a validated configuration into the runtime snapshot (`snapshot.ts`): defaults filled
 * in, files read into memory, hostnames turned into matchers, one router per zone. Everything
 * the request path needs is decided here, once per load; nothing is parsed per request.
 *
 * Only call it after `validateConfig` reported no issue: it relies on references resolving and
 * on every referenced file having been read and checked through the same `ReferencedFiles`.
 */
import { isIP } from 'node:net';
import { dirname, resolve } from 'node:path';
import { Router } from '../router/router.ts';
import { configHash } from './config-hash.ts';
import type { ReferencedFiles } from './files.ts';
import { deepFreeze } from './freeze.ts';
import { hostMatcher } from './hosts.ts';
import type { ConfigPath } from './issues.ts';
import type { Config, ListenerConfig, RouteConfig, UpstreamConfig, Zone } from './schema.ts';
import type { CompiledListener, CompiledRoute, CompiledUpstream, ListenerLimits, Snapshot } from './snapshot.ts';

export interface CompileContext {
  /** Absolute path of the configuration file. */
  readonly sourcePath: string;
  readonly files: ReferencedFiles;
  /** `file:line:col` of a path, so a warning says where it comes from. */
  readonly where: (path: ConfigPath) => string;
  readonly now?: () => Date;
}

export const LISTENER_LIMIT_DEFAULTS: ListenerLimits = Object.freeze({
  maxHeaderBytes: 16 * 1024,
  maxHeaders: 100,
  maxBodyBytes: 1024 * 1024,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
});

const ZONES: readonly Zone[] = ['public', 'partner', 'internal'];

export function compileSnapshot(config: Config, context: CompileContext): Snapshot {
  const baseDir = dirname(context.sourcePath);
  const { files } = context;

  const listeners = config.listeners.map((listener) => compileListener(listener, files));
  const upstreams = new Map(config.upstreams.map((upstream) => [upstream.id, compileUpstream(upstream, files)] as const));
  const routes = config.routes.map((route) => compileRoute(route, upstreams));
  const routers = new Map(ZONES.map((zone) => [zone, new Router(routes.filter((route) => route.zone === zone))] as const));

  const digests = fileDigests(config, files);
  const snapshot: Snapshot = {
    hash: configHash(config, digests),
    watchedFiles: [context.sourcePath, ...[...digests.keys()].map((written) => files.resolve(written))],
    sourcePath: context.sourcePath,
    baseDir,
    loadedAt: context.now?.() ?? new Date(),
    config,
    dataDir: resolve(baseDir, config.gateway.data_dir),
    decisionLog: config.gateway.decision_log === 'stdout' ? 'stdout' : resolve(baseDir, config.gateway.decision_log),
    shutdownDelayMs: config.gateway.shutdown_delay,
    drainTimeoutMs: config.gateway.drain_timeout,
    ops: { address: config.ops.address, port: config.ops.port },
    listeners,
    upstreams,
    routes,
    routers,
    warnings: insecureOptionWarnings(config, context),
  };
  return deepFreeze(snapshot, (value) => value instanceof Router);
}

function compileListener(listener: ListenerConfig, files: ReferencedFiles): CompiledListener {
  const limits = listener.limits ?? {};
  const hostnames = listener.hostnames.map((name) => name.toLowerCase());
  return {
    name: listener.name,
    zone: listener.zone,
    address: listener.address,
    port: listener.port,
    hostnames,
    servesHost: hostMatcher(hostnames),
    tls: listener.tls
      ? {
          certPath: files.resolve(listener.tls.cert),
          keyPath: files.resolve(listener.tls.key),
          cert: files.contents(listener.tls.cert),
          key: files.contents(listener.tls.key),
          http2: listener.tls.http2,
          minVersion: listener.tls.min_version,
        }
      : null,
    limits: {
      maxHeaderBytes: limits.max_header_bytes ?? LISTENER_LIMIT_DEFAULTS.maxHeaderBytes,
      maxHeaders: limits.max_headers ?? LISTENER_LIMIT_DEFAULTS.maxHeaders,
      maxBodyBytes: limits.max_body_bytes ?? LISTENER_LIMIT_DEFAULTS.maxBodyBytes,
      headersTimeoutMs: limits.headers_timeout ?? LISTENER_LIMIT_DEFAULTS.headersTimeoutMs,
      requestTimeoutMs: limits.request_timeout ?? LISTENER_LIMIT_DEFAULTS.requestTimeoutMs,
      keepAliveTimeoutMs: limits.keep_alive_timeout ?? LISTENER_LIMIT_DEFAULTS.keepAliveTimeoutMs,
    },
  };
}

function compileUpstream(upstream: UpstreamConfig, files: ReferencedFiles): CompiledUpstream {
  const url = new URL(upstream.url);
  const tls = upstream.tls;
  return {
    id: upstream.id,
    origin: url.origin,
    authority: url.host,
    preserveHost: upstream.preserve_host,
    servername: url.protocol === 'https:' ? (tls?.servername ?? (isIP(url.hostname.replace(/^\[|\]$/g, '')) ? null : url.hostname)) : null,
    basePath: url.pathname.replace(/\/+$/, ''),
    connections: upstream.connections,
    connectTimeoutMs: upstream.timeouts.connect,
    headersTimeoutMs: upstream.timeouts.response_headers,
    bodyTimeoutMs: upstream.timeouts.body,
    keepAliveTimeoutMs: upstream.keep_alive_timeout,
    // Every https upstream gets TLS settings (verification on unless acknowledged off); http gets none.
    tls:
      url.protocol === 'https:'
        ? {
            ca: tls?.ca !== undefined ? files.contents(tls.ca) : null,
            cert: tls?.cert !== undefined ? files.contents(tls.cert) : null,
            key: tls?.key !== undefined ? files.contents(tls.key) : null,
            servername: tls?.servername ?? null,
            rejectUnauthorized: tls?.insecure_skip_verify === undefined,
          }
        : null,
  };
}

function compileRoute(route: RouteConfig, upstreams: ReadonlyMap<string, CompiledUpstream>): CompiledRoute {
  return {
    id: route.id,
    zone: route.zone,
    hosts: route.hosts ?? null,
    methods: route.methods,
    path: route.path,
    upstream: upstreams.get(route.upstream)!,
    apiId: route.api ?? null,
    auth: route.auth,
    maxBodyBytes: route.max_body_bytes ?? null,
  };
}

/** Every file the configuration names, keyed by the path as written. */
function fileDigests(config: Config, files: ReferencedFiles): Map<string, string> {
  const written: string[] = [];
  for (const listener of config.listeners) if (listener.tls) written.push(listener.tls.cert, listener.tls.key);
  for (const upstream of config.upstreams) {
    for (const path of [upstream.tls?.ca, upstream.tls?.cert, upstream.tls?.key]) if (path !== undefined) written.push(path);
  }
  return new Map(written.map((path) => [path, files.digest(path)]));
}

function insecureOptionWarnings(config: Config, context: CompileContext): string[] {
  const warnings: string[] = [];
  config.upstreams.forEach((upstream, index) => {
    if (upstream.tls?.insecure_skip_verify !== undefined) {
      const path = ['upstreams', index, 'tls', 'insecure_skip_verify'];
      warnings.push(
        `${context.where(path)} upstreams[${index}].tls.insecure_skip_verify: the certificate of upstream "${upstream.id}" is not verified; anyone on the network path to it can impersonate it`,
      );
    }
  });
  return warnings;
}
