/**
 * Compiles a validated configuration into the runtime snapshot (`snapshot.ts`): defaults filled
 * in, files read into memory, hostnames turned into matchers, one router per zone. Everything
 * the request path needs is decided here, once per load; nothing is parsed per request.
 *
 * Only call it after `validateConfig` reported no issue: it relies on references resolving and
 * on every referenced file having been read and checked through the same `ReferencedFiles`.
 */
import { isIP } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import type { CompiledRule } from '../policy/types.ts';
import { Router } from '../router/router.ts';
import { compileIntrospection, compileIssuer, compilePartner, credentialIndex, rateLimitSpec, tokenServiceIssuer } from './compile-identity.ts';
import { PolicyCompiler } from './compile-policy.ts';
import { configHash } from './config-hash.ts';
import type { ReferencedFiles } from './files.ts';
import { deepFreeze } from './freeze.ts';
import { hostMatcher } from './hosts.ts';
import type { ConfigPath } from './issues.ts';
import type { ApiConfig, Config, ListenerConfig, RouteConfig, UpstreamConfig, Zone } from './schema.ts';
import type {
  AbuseThreshold,
  CompiledApi,
  CompiledIssuer,
  CompiledListener,
  CompiledRoute,
  CompiledState,
  CompiledTokenService,
  CompiledUpstream,
  ListenerLimits,
  Snapshot,
} from './snapshot.ts';
import { TOKEN_SERVICE_ISSUER_ID } from './snapshot.ts';

export interface CompileContext {
  /** Absolute path of the configuration file. */
  readonly sourcePath: string;
  readonly files: ReferencedFiles;
  /** `file:line:col` of a path, so a warning says where it comes from. */
  readonly where?: (path: ConfigPath) => string;
  /**
   * The warnings, worked out where the YAML positions are (`insecureOptionWarnings`): a
   * configuration validated in a worker thread is compiled without its YAML document.
   */
  readonly warnings?: readonly string[];
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
  const policy = new PolicyCompiler();

  const listeners = config.listeners.map((listener) => compileListener(listener, files));
  const upstreams = new Map(config.upstreams.map((upstream) => [upstream.id, compileUpstream(upstream, files)] as const));
  // Each rule is compiled once: routes share the global and API rule objects.
  const globalPolicies = policy.rules(config.policies, 'policies');
  const apis = new Map(config.apis.map((api) => [api.id, compileApi(api, policy, config.introspection)] as const));
  const routes = config.routes.map((route) => compileRoute(route, upstreams, apis, globalPolicies, policy));
  const routers = new Map(ZONES.map((zone) => [zone, new Router(routes.filter((route) => route.zone === zone))] as const));

  const tokenService = compileTokenService(config);
  const issuers = new Map(config.issuers.map((issuer) => [issuer.id, compileIssuer(issuer, files)] as const));
  if (tokenService) issuers.set(TOKEN_SERVICE_ISSUER_ID, tokenServiceIssuer(tokenService));
  const issuersByIss = new Map<string, CompiledIssuer>([...issuers.values()].map((issuer) => [issuer.issuer, issuer] as const));
  const introspection = new Map(config.introspection.map((endpoint) => [endpoint.id, compileIntrospection(endpoint, files)] as const));
  const partners = new Map(config.partners.map((partner) => [partner.id, compilePartner(partner, policy, config.rate_limits.tiers, files)] as const));

  const digests = fileDigests(config, files);
  const snapshot: Snapshot = {
    hash: configHash(config, digests),
    watchedFiles: [context.sourcePath, ...new Set([...digests.keys()].map((written) => files.resolve(written)))],
    sourcePath: context.sourcePath,
    baseDir,
    loadedAt: context.now?.() ?? new Date(),
    config,
    dataDir: resolve(baseDir, config.gateway.data_dir),
    decisionLog: config.gateway.decision_log === 'stdout' ? 'stdout' : resolve(baseDir, config.gateway.decision_log),
    shutdownDelayMs: config.gateway.shutdown_delay,
    drainTimeoutMs: config.gateway.drain_timeout,
    ops: { address: config.ops.address, port: config.ops.port },
    audit: {
      dir: resolve(baseDir, config.audit.dir ?? join(config.gateway.data_dir, 'audit')),
      flush: config.audit.flush,
      flushIntervalMs: config.audit.flush_interval,
      checkpointIntervalMs: config.audit.checkpoint_interval,
      checkpointEvery: config.audit.checkpoint_every,
      signingKeyPath: config.audit.signing_key === undefined ? null : resolve(baseDir, config.audit.signing_key),
      keyDir: resolve(baseDir, config.gateway.data_dir, 'audit-keys'),
      maxQueue: config.audit.max_queue,
      rotate: { maxBytes: config.audit.rotate.max_bytes, daily: config.audit.rotate.daily },
      sinks: config.audit.sinks,
      otlp:
        config.audit.sinks.includes('otlp') && config.audit.otlp !== undefined
          ? { url: config.audit.otlp.url, headers: config.audit.otlp.headers, timeoutMs: config.audit.otlp.timeout }
          : null,
    },
    state: compileState(config, baseDir),
    tracing: {
      enabled: config.tracing.enabled,
      trustIncomingTraceparent: config.tracing.trust_incoming_traceparent,
      sampleRatio: config.tracing.sample_ratio,
      serviceName: config.tracing.service_name,
      exporter: config.tracing.enabled && config.tracing.exporter
        ? { url: config.tracing.exporter.otlp_http.url, headers: config.tracing.exporter.otlp_http.headers, timeoutMs: config.tracing.exporter.otlp_http.timeout }
        : null,
      exportIntervalMs: config.tracing.export_interval,
      maxQueue: config.tracing.max_queue,
    },
    adminTokens: new Map(config.admin.tokens.map((token) => [token.sha256, token.id] as const)),
    rateLimits: { mode: config.rate_limits.mode, headers: config.rate_limits.headers !== undefined },
    tokenService,
    partnerTrusts: [...partners.values()].flatMap((partner) => (partner.mtls ? [partner.mtls] : [])),
    dpop: {
      algorithms: new Set(config.dpop.algorithms),
      proofLifetimeMs: config.dpop.proof_lifetime,
      nonce: config.dpop.nonce,
      nonceLifetimeMs: config.dpop.nonce_lifetime,
    },
    abuse: {
      perSource: abuseThreshold(config.abuse.auth_failures_per_source),
      perCredential: abuseThreshold(config.abuse.denials_per_credential),
    },
    listeners,
    upstreams,
    routes,
    routers,
    issuers,
    issuersByIss,
    introspection,
    apis,
    partners,
    credentials: credentialIndex(config.partners, files),
    warnings: context.warnings ? [...context.warnings] : insecureOptionWarnings(config, context.where ?? (() => context.sourcePath)),
  };
  // Routers, compiled rules and compiled grants (CEL programs, BlockLists) own their internals:
  // frozen at the top only.
  return deepFreeze(snapshot, (value) => value instanceof Router || policy.owns(value));
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
          clientCertificates: listener.tls.client_certificates,
          refuseAtHandshake: listener.tls.client_certificates !== 'none' && listener.tls.refuse_at_handshake,
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
    environment: listener.environment,
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

function compileApi(api: ApiConfig, policy: PolicyCompiler, endpoints: Config['introspection']): CompiledApi {
  return {
    id: api.id,
    name: api.name ?? null,
    audience: api.audience ?? null,
    introspection: api.introspection ?? (endpoints.length === 1 ? endpoints[0]!.id : null),
    sensitivity: api.sensitivity,
    policies: policy.rules(api.policies, `apis[${api.id}]`),
    requireSenderConstrained: api.require_sender_constrained,
    tokenLifetimeMs: api.token_lifetime ?? null,
  };
}

function compileRoute(
  route: RouteConfig,
  upstreams: ReadonlyMap<string, CompiledUpstream>,
  apis: ReadonlyMap<string, CompiledApi>,
  globalPolicies: readonly CompiledRule[],
  policy: PolicyCompiler,
): CompiledRoute {
  const api = route.api !== undefined ? apis.get(route.api)! : null;
  // An anonymous route checks no credential, so nothing can be required of one (validation
  // refuses route-level settings there): it accepts no credential type and runs no rule.
  const authenticated = route.auth === 'required';
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
    api,
    credentials: authenticated ? route.credentials : [],
    scopes: route.scopes,
    transactionType: route.transaction_type ?? null,
    sensitivity: route.sensitivity ?? api?.sensitivity ?? 'internal',
    purpose: route.purpose
      ? { header: route.purpose.header ?? null, claim: route.purpose.claim ?? null, allowed: new Set(route.purpose.allowed) }
      : null,
    // Evaluation order: global rules, then the API's, then the route's (the partner's per request).
    policies: authenticated ? [...globalPolicies, ...(api?.policies ?? []), ...policy.rules(route.policies, `routes[${route.id}]`)] : [],
    rateLimit: authenticated && route.rate_limit ? { ...rateLimitSpec(route.rate_limit), per: route.rate_limit.per } : null,
    requireSenderConstrained: authenticated && (route.require_sender_constrained ?? api?.requireSenderConstrained ?? false),
  };
}

function compileTokenService(config: Config): CompiledTokenService | null {
  const service = config.token_service;
  if (!service) return null;
  return {
    issuer: service.issuer,
    listener: service.listener,
    algorithm: service.algorithm,
    tokenLifetimeMs: service.token_lifetime,
    maxTokenLifetimeMs: service.max_token_lifetime,
    assertionMaxLifetimeMs: service.assertion_max_lifetime,
    keyOverlapMs: service.key_overlap,
    allowBearer: service.allow_bearer_tokens !== undefined,
  };
}

function compileState(config: Config, baseDir: string): CompiledState {
  const { state } = config;
  const redis = state.redis;
  return {
    driver: state.driver,
    sqlitePath: resolve(baseDir, config.gateway.data_dir, 'state.sqlite'),
    redis:
      state.driver === 'redis' && redis
        ? {
            mode: redis.sentinel ? 'sentinel' : redis.cluster ? 'cluster' : 'single',
            url: redis.url ?? null,
            sentinel: redis.sentinel
              ? {
                  name: redis.sentinel.name,
                  nodes: redis.sentinel.nodes.map((node) => {
                    const at = node.lastIndexOf(':');
                    return { host: node.slice(0, at), port: Number(node.slice(at + 1)) };
                  }),
                }
              : null,
            clusterNodes: redis.cluster?.nodes ?? [],
            keyPrefix: redis.key_prefix,
            connectTimeoutMs: redis.connect_timeout,
            commandTimeoutMs: redis.command_timeout,
            serveLastKnownForMs: redis.on_disconnect === 'serve_last_known' ? redis.serve_last_known_for : null,
          }
        : null,
    propagationTimeoutMs: state.propagation_timeout,
  };
}

function abuseThreshold(setting: { max: number; window: number; block: number } | 'off'): AbuseThreshold | null {
  return setting === 'off' ? null : { max: setting.max, windowMs: setting.window, blockMs: setting.block };
}

/** Every file the configuration names, keyed by the path as written. */
function fileDigests(config: Config, files: ReferencedFiles): Map<string, string> {
  const written: string[] = [];
  for (const listener of config.listeners) if (listener.tls) written.push(listener.tls.cert, listener.tls.key);
  for (const upstream of config.upstreams) {
    for (const path of [upstream.tls?.ca, upstream.tls?.cert, upstream.tls?.key]) if (path !== undefined) written.push(path);
  }
  // A rotated JWKS, CA or client key changes what is enforced: a new configuration version.
  for (const issuer of config.issuers) {
    for (const path of [issuer.jwks_file, issuer.ca]) if (path !== undefined) written.push(path);
  }
  for (const partner of config.partners) {
    for (const credential of partner.credentials) if (credential.type === 'client' && credential.jwks_file !== undefined) written.push(credential.jwks_file);
    for (const path of partner.mtls?.ca ?? []) written.push(path);
    if (partner.mtls?.revocation?.crl?.file !== undefined) written.push(partner.mtls.revocation.crl.file);
  }
  for (const endpoint of config.introspection) {
    if (endpoint.ca !== undefined) written.push(endpoint.ca);
    if (endpoint.auth.method === 'private_key_jwt') written.push(endpoint.auth.key);
    if (endpoint.auth.method === 'tls_client_auth') written.push(endpoint.auth.cert, endpoint.auth.key);
  }
  return new Map(written.map((path) => [path, files.digest(path)]));
}

/** What the configuration turns off that is secure by default: each a warning logged at every load, with its position. */
export function insecureOptionWarnings(config: Config, where: (path: ConfigPath) => string): string[] {
  const context = { where };
  const warnings: string[] = [];
  config.upstreams.forEach((upstream, index) => {
    if (upstream.tls?.insecure_skip_verify !== undefined) {
      const path = ['upstreams', index, 'tls', 'insecure_skip_verify'];
      warnings.push(
        `${context.where(path)} upstreams[${index}].tls.insecure_skip_verify: the certificate of upstream "${upstream.id}" is not verified; anyone on the network path to it can impersonate it`,
      );
    }
  });
  config.introspection.forEach((endpoint, index) => {
    if (endpoint.auth.method === 'client_secret_basic') {
      const path = ['introspection', index, 'auth', 'insecure_shared_secret'];
      warnings.push(
        `${context.where(path)} introspection[${index}].auth: the gateway authenticates to introspection endpoint "${endpoint.id}" with a shared client secret, a long-lived credential; prefer private_key_jwt or tls_client_auth`,
      );
    }
  });
  if (config.state.redis?.on_disconnect === 'serve_last_known') {
    warnings.push(
      `${context.where(['state', 'redis', 'on_disconnect'])} state.redis.on_disconnect: while Redis is unreachable the gateway serves the last known revocations for up to ${config.state.redis.serve_last_known_for} ms; revocations made meanwhile are not enforced`,
    );
  }
  config.partners.forEach((partner, index) => {
    if (partner.mtls?.revocation?.on_unavailable === 'allow') {
      warnings.push(
        `${context.where(['partners', index, 'mtls', 'revocation', 'on_unavailable'])} partners[${index}].mtls.revocation: certificates of partner "${partner.id}" are accepted while their revocation status cannot be checked (soft-fail); every such request is marked`,
      );
    }
  });
  if (config.rate_limits.headers !== undefined) {
    warnings.push(`${context.where(['rate_limits', 'headers'])} rate_limits.headers: RateLimit headers follow an Internet-Draft and may change`);
  }
  return warnings;
}
