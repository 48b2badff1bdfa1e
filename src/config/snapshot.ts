/**
 * The compiled, immutable runtime snapshot. Built once per (re)load by `compile.ts`; the request
 * path only reads it. A request keeps the snapshot it started with, so a reload never changes
 * the rules under a request in flight.
 */
import type { Config, HttpMethod, Zone } from './schema.ts';
import type { Router } from '../router/router.ts';

export interface ListenerLimits {
  readonly maxHeaderBytes: number;
  readonly maxHeaders: number;
  readonly maxBodyBytes: number;
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
}

export interface ListenerTls {
  readonly certPath: string;
  readonly keyPath: string;
  /** PEM contents, read at load time so a reload picks up rotated files. */
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly http2: boolean;
  readonly minVersion: 'TLSv1.2' | 'TLSv1.3';
}

export interface CompiledListener {
  readonly name: string;
  readonly zone: Zone;
  readonly address: string;
  readonly port: number;
  /** Lowercase exact names, and `*.suffix` wildcards. */
  readonly hostnames: readonly string[];
  /** True when `host` (lowercase, no port) is served by this listener. */
  readonly servesHost: (host: string) => boolean;
  readonly tls: ListenerTls | null;
  readonly limits: ListenerLimits;
}

export interface UpstreamTls {
  readonly ca: Buffer | null;
  readonly cert: Buffer | null;
  readonly key: Buffer | null;
  readonly servername: string | null;
  readonly rejectUnauthorized: boolean;
}

export interface CompiledUpstream {
  readonly id: string;
  /** `http:` or `https:` origin, e.g. `http://127.0.0.1:9000`. */
  readonly origin: string;
  /** Host header for the upstream: its URL's authority (`host[:port]`), unless `preserveHost`. */
  readonly authority: string;
  readonly preserveHost: boolean;
  /** SNI and certificate name for https upstreams (configured `servername`, else the URL host; null for IPs). */
  readonly servername: string | null;
  /** Path prefix from the upstream URL without trailing slash ('' when none). */
  readonly basePath: string;
  readonly connections: number;
  readonly connectTimeoutMs: number;
  readonly headersTimeoutMs: number;
  readonly bodyTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  readonly tls: UpstreamTls | null;
}

export interface CompiledRoute {
  readonly id: string;
  readonly zone: Zone;
  /** Hostnames this route answers on; null = every hostname of its zone's listeners. */
  readonly hosts: readonly string[] | null;
  readonly methods: readonly HttpMethod[];
  readonly path: string;
  readonly upstream: CompiledUpstream;
  readonly apiId: string | null;
  readonly auth: 'required' | 'none';
  /** Body limit for this route, or null to use the listener's. */
  readonly maxBodyBytes: number | null;
}

export interface Snapshot {
  /** SHA-256 (hex) of the validated configuration: the policy version on every decision record. */
  readonly hash: string;
  readonly sourcePath: string;
  /** Absolute paths of the config file and every file it references: a change to any reloads. */
  readonly watchedFiles: readonly string[];
  /** Folder of the config file; relative paths in the config resolve against it. */
  readonly baseDir: string;
  readonly loadedAt: Date;
  /** The validated configuration (deeply frozen). */
  readonly config: Readonly<Config>;
  readonly dataDir: string;
  readonly decisionLog: string;
  readonly shutdownDelayMs: number;
  readonly drainTimeoutMs: number;
  readonly ops: { readonly address: string; readonly port: number };
  readonly listeners: readonly CompiledListener[];
  readonly upstreams: ReadonlyMap<string, CompiledUpstream>;
  readonly routes: readonly CompiledRoute[];
  /** One router per zone: a route can never be matched from a listener of another zone. */
  readonly routers: ReadonlyMap<Zone, Router<CompiledRoute>>;
  /** Warnings to log at every load (insecure options that were acknowledged, …). */
  readonly warnings: readonly string[];
}
