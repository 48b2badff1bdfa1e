/**
 * The compiled, immutable runtime snapshot. Built once per (re)load by `compile.ts`; the request
 * path only reads it. A request keeps the snapshot it started with, so a reload never changes
 * the rules under a request in flight.
 */
import type { Config, CredentialType, HttpMethod, Sensitivity, SigningAlgorithm, Zone } from './schema.ts';
import type { Router } from '../router/router.ts';
import type { BlockList } from 'node:net';
import type { CompiledGrant, CompiledRule } from '../policy/types.ts';
import type { PartnerTrust } from '../pki/types.ts';

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
  /** Mutual TLS: whether client certificates are asked for, and required. */
  readonly clientCertificates: 'none' | 'request' | 'require';
  /** Close a connection whose certificate no partner accepts right after the handshake, before any HTTP. */
  readonly refuseAtHandshake: boolean;
}

/** A GCRA limit (ECOSYSTEM.md §2.19) as configured: `text` is the rate as written (`100/s`). */
export interface RateLimitSpec {
  readonly text: string;
  readonly emissionIntervalMs: number;
  readonly burst: number;
}

export interface CompiledQuota {
  readonly limit: number;
  readonly per: 'day' | 'month';
  readonly timezone: string;
}

/** The limits of one partner: its own settings, else its tier's, else none. */
export interface PartnerLimits {
  readonly rate: RateLimitSpec | null;
  readonly quotas: readonly CompiledQuota[];
  readonly maxConcurrent: number | null;
}

export interface AbuseThreshold {
  readonly max: number;
  readonly windowMs: number;
  readonly blockMs: number;
}

export interface CompiledState {
  readonly driver: 'embedded' | 'redis';
  /** SQLite file of the embedded driver (in the data folder). */
  readonly sqlitePath: string;
  readonly redis: {
    readonly mode: 'single' | 'sentinel' | 'cluster';
    readonly url: string | null;
    readonly sentinel: { readonly name: string; readonly nodes: readonly { readonly host: string; readonly port: number }[] } | null;
    readonly clusterNodes: readonly string[];
    readonly keyPrefix: string;
    readonly connectTimeoutMs: number;
    readonly commandTimeoutMs: number;
    /** null = fail closed; else how long the last known state may be served while Redis is unreachable. */
    readonly serveLastKnownForMs: number | null;
  } | null;
  readonly propagationTimeoutMs: number;
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
  readonly environment: string;
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
  readonly api: CompiledApi | null;
  /** Accepted credential types, in order (with `auth: required`). */
  readonly credentials: readonly CredentialType[];
  /** Scopes the token must carry, all of them. */
  readonly scopes: readonly string[];
  readonly transactionType: string | null;
  /** The route's sensitivity, else its API's, else `internal`. */
  readonly sensitivity: Sensitivity;
  readonly purpose: { readonly header: string | null; readonly claim: string | null; readonly allowed: ReadonlySet<string> } | null;
  /** Rules in evaluation order: global, the API's, the route's (the partner's are added per request). */
  readonly policies: readonly CompiledRule[];
  /** The operation's own rate limit, counted per partner or per credential. */
  readonly rateLimit: (RateLimitSpec & { readonly per: 'partner' | 'credential' }) | null;
  /** Only sender-constrained tokens (route setting, else its API's). */
  readonly requireSenderConstrained: boolean;
}

export interface CompiledApi {
  readonly id: string;
  readonly name: string | null;
  /** The `aud` value tokens must carry for this API; null when no route of it accepts tokens. */
  readonly audience: string | null;
  readonly sensitivity: Sensitivity;
  readonly policies: readonly CompiledRule[];
  /** The introspection endpoint for this API's opaque tokens (explicit, or the only one configured). */
  readonly introspection: string | null;
  readonly requireSenderConstrained: boolean;
  /** Lifetime of tokens the token service issues for this API, or null for the service's default. */
  readonly tokenLifetimeMs: number | null;
}

export type KeySource =
  | { readonly kind: 'jwks_uri'; readonly url: string }
  | { readonly kind: 'discovery'; readonly url: string }
  | { readonly kind: 'file'; readonly path: string; readonly jwks: unknown }
  /** The gateway's own token service: keys from the state store, no network (src/tokens/keys.ts). */
  | { readonly kind: 'token_service' };

/** Id of the issuer the token service is compiled into (reserved: no configured issuer may use it). */
export const TOKEN_SERVICE_ISSUER_ID = 'token-service';

export interface CompiledTokenService {
  readonly issuer: string;
  readonly listener: string;
  readonly algorithm: 'ES256' | 'EdDSA' | 'PS256' | 'RS256';
  readonly tokenLifetimeMs: number;
  readonly maxTokenLifetimeMs: number;
  readonly assertionMaxLifetimeMs: number;
  readonly keyOverlapMs: number;
  /** Tokens without a sender constraint may be issued (acknowledged). */
  readonly allowBearer: boolean;
}

export interface CompiledIssuer {
  readonly id: string;
  /** Exact `iss`. */
  readonly issuer: string;
  readonly source: KeySource;
  readonly ca: Buffer | null;
  readonly algorithms: ReadonlySet<SigningAlgorithm>;
  /** Expected `typ`, lowercase, without an `application/` prefix. */
  readonly typ: string;
  readonly leewayMs: number;
  readonly maxLifetimeMs: number;
  readonly partnerClaim: 'client_id' | 'sub';
  readonly refreshIntervalMs: number;
  readonly unknownKidCooldownMs: number;
  readonly fetchTimeoutMs: number;
}

export type IntrospectionAuth =
  | { readonly method: 'private_key_jwt'; readonly key: Buffer; readonly alg: SigningAlgorithm; readonly kid: string | null }
  | { readonly method: 'tls_client_auth'; readonly cert: Buffer; readonly key: Buffer }
  | { readonly method: 'client_secret_basic'; readonly secret: string };

export interface CompiledIntrospection {
  readonly id: string;
  readonly url: string;
  readonly issuer: string | null;
  readonly ca: Buffer | null;
  readonly clientId: string;
  readonly auth: IntrospectionAuth;
  readonly cacheTtlMs: number;
  readonly negativeCacheTtlMs: number;
  readonly timeoutMs: number;
  readonly maxRequestsPerSecond: number;
}

export interface CompiledPartner {
  readonly id: string;
  readonly name: string | null;
  readonly owner: string | null;
  readonly contact: string | null;
  readonly tier: string;
  readonly attributes: Readonly<Record<string, string | number | boolean>>;
  readonly status: 'active' | 'suspended' | 'offboarded';
  /** `expiresAt` in ms since the epoch (a bare date means the end of that day, UTC). */
  readonly agreement: { readonly id: string; readonly expiresAt: number } | null;
  /** Grants by API id, in configuration order. */
  readonly grants: ReadonlyMap<string, readonly CompiledGrant[]>;
  readonly policies: readonly CompiledRule[];
  readonly limits: PartnerLimits;
  /** Addresses this partner may call from (null: anywhere). */
  readonly sourceNetworks: BlockList | null;
  /** Client certificates that authenticate this partner; null when it has no mTLS trust. */
  readonly mtls: PartnerTrust | null;
  readonly requireSenderConstrained: boolean;
}

export type CompiledCredential =
  | { readonly id: string; readonly type: 'jwt'; readonly partnerId: string; readonly issuerId: string; readonly clientId: string; readonly rateLimit: RateLimitSpec | null }
  | { readonly id: string; readonly type: 'introspection'; readonly partnerId: string; readonly endpointId: string; readonly clientId: string; readonly rateLimit: RateLimitSpec | null }
  | { readonly id: string; readonly type: 'api_key'; readonly partnerId: string; readonly keyId: string; readonly sha256: Buffer; readonly expiresAt: number; readonly rateLimit: RateLimitSpec | null }
  | { readonly id: string; readonly type: 'mtls'; readonly partnerId: string; readonly rateLimit: RateLimitSpec | null }
  | ClientCredential;

/** A client of the token service (and, on the data plane, the credential its tokens bind to). */
export interface ClientCredential {
  readonly id: string;
  readonly type: 'client';
  readonly partnerId: string;
  readonly clientId: string;
  readonly auth: 'private_key_jwt' | 'tls_client_auth' | 'self_signed_tls_client_auth' | 'client_secret_basic';
  /** Parsed JWKS from `jwks_file`, or null. */
  readonly jwks: unknown;
  readonly jwksUri: string | null;
  readonly secretSha256: Buffer | null;
  readonly tokenLifetimeMs: number | null;
  /** May use token exchange (RFC 8693). */
  readonly tokenExchange: boolean;
  readonly rateLimit: RateLimitSpec | null;
}

/** How a presented credential finds its partner: every lookup is one map access. */
export interface CredentialIndex {
  /** issuer id → client id (the issuer's partner claim value) → credential. */
  readonly jwt: ReadonlyMap<string, ReadonlyMap<string, CompiledCredential>>;
  /** endpoint id → client id → credential. */
  readonly introspection: ReadonlyMap<string, ReadonlyMap<string, CompiledCredential>>;
  /** API key id → credential. */
  readonly apiKeys: ReadonlyMap<string, CompiledCredential & { readonly type: 'api_key' }>;
  /** Partner id → its `mtls` credential (the client certificate alone). */
  readonly mtls: ReadonlyMap<string, CompiledCredential & { readonly type: 'mtls' }>;
  /** Token service client id → its `client` credential. */
  readonly clients: ReadonlyMap<string, ClientCredential>;
}

/** OpenTelemetry tracing and Trace Context handling (`tracing` in the config). */
export interface CompiledTracing {
  readonly enabled: boolean;
  /** Continue a caller's valid `traceparent` (else every request starts a new trace). */
  readonly trustIncomingTraceparent: boolean;
  readonly sampleRatio: number;
  readonly serviceName: string;
  /** OTLP/HTTP JSON endpoint; null when tracing is off. Headers may hold secrets: never log them. */
  readonly exporter: { readonly url: string; readonly headers: Readonly<Record<string, string>>; readonly timeoutMs: number } | null;
  readonly exportIntervalMs: number;
  readonly maxQueue: number;
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
  readonly audit: {
    /** Absolute folder of the trail. */
    readonly dir: string;
    readonly flush: 'interval' | 'os' | 'every-record';
    readonly flushIntervalMs: number;
    readonly checkpointIntervalMs: number;
    readonly checkpointEvery: number;
    /** Absolute path of the configured signing key, or null to use the generated one in keyDir. */
    readonly signingKeyPath: string | null;
    readonly keyDir: string;
    readonly maxQueue: number;
    /** When a stream's live file is closed and renamed (docs/audit.md "Rotation"). */
    readonly rotate: { readonly maxBytes: number; readonly daily: boolean };
    /** Where chained lines go: always the file; `stdout` and `otlp` are copies. */
    readonly sinks: readonly ('file' | 'stdout' | 'otlp')[];
    /** OTLP/HTTP logs exporter settings; null unless `sinks` names `otlp`. */
    readonly otlp: { readonly url: string; readonly headers: Readonly<Record<string, string>>; readonly timeoutMs: number } | null;
  };
  readonly state: CompiledState;
  readonly tracing: CompiledTracing;
  /** Admin API tokens: SHA-256 (hex) → holder id. */
  readonly adminTokens: ReadonlyMap<string, string>;
  readonly rateLimits: { readonly mode: 'local' | 'shared'; readonly headers: boolean };
  readonly tokenService: CompiledTokenService | null;
  /** Partners with mTLS trust, for identifying a client certificate. */
  readonly partnerTrusts: readonly PartnerTrust[];
  readonly dpop: { readonly algorithms: ReadonlySet<string>; readonly proofLifetimeMs: number; readonly nonce: boolean; readonly nonceLifetimeMs: number };
  readonly abuse: { readonly perSource: AbuseThreshold | null; readonly perCredential: AbuseThreshold | null };
  readonly listeners: readonly CompiledListener[];
  readonly upstreams: ReadonlyMap<string, CompiledUpstream>;
  readonly routes: readonly CompiledRoute[];
  /** One router per zone: a route can never be matched from a listener of another zone. */
  readonly routers: ReadonlyMap<Zone, Router<CompiledRoute>>;
  readonly issuers: ReadonlyMap<string, CompiledIssuer>;
  /** Issuers by exact `iss`, to pick the key set of a token. */
  readonly issuersByIss: ReadonlyMap<string, CompiledIssuer>;
  readonly introspection: ReadonlyMap<string, CompiledIntrospection>;
  readonly apis: ReadonlyMap<string, CompiledApi>;
  readonly partners: ReadonlyMap<string, CompiledPartner>;
  readonly credentials: CredentialIndex;
  /** Warnings to log at every load (insecure options that were acknowledged, …). */
  readonly warnings: readonly string[];
}
