/**
 * The running gateway: the current generation (snapshot + upstream pools), the listeners bound
 * for it, the ops listener and the decision log; reload and graceful shutdown.
 *
 * Reload (Caddy's model, ECOSYSTEM.md §4.2): load and validate → bind what is new → swap the
 * generation atomically → retire what is no longer used once it drains. Any failure before the
 * swap keeps the old generation serving, untouched. A request keeps the generation it started on.
 */
import { watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { Socket } from 'node:net';
import { loadConfigOffThread } from '../config/load-off-thread.ts';
import { formatIssue } from '../config/issues.ts';
import type { ConfigIssue } from '../config/issues.ts';
import type { Snapshot, CompiledListener } from '../config/snapshot.ts';
import type { Zone } from '../config/schema.ts';
import { openDecisionLog } from '../audit/decision-log.ts';
import { openAuditTrail } from '../audit/trail.ts';
import type { AuditTrail } from '../audit/trail.ts';
import type { DecisionLog } from '../audit/decision-log.ts';
import { log, setLogListener } from '../log.ts';
import type { LogListener } from '../log.ts';
import { handleRequest } from '../pipeline/pipeline.ts';
import type { PipelineGeneration, PipelineHooks } from '../pipeline/pipeline.ts';
import type { RequestContext } from '../pipeline/context.ts';
import { sendRefusal } from '../pipeline/respond.ts';
import { connectionIdentity } from '../pipeline/transport-identity.ts';
import { reconcilePools } from '../upstream/pools.ts';
import { AuthnRuntime } from '../authn/runtime.ts';
import type { UpstreamPool } from '../upstream/pools.ts';
import { answerClientError, clientErrorReason } from './client-error.ts';
import { bindKeyOf, bindListener } from './listeners.ts';
import type { BoundListener, ListenerHandlers } from './listeners.ts';
import { startOpsServer } from './ops.ts';
import { createMetrics } from '../observability/metrics.ts';
import { startTracing } from '../observability/tracing.ts';
import type { Tracing } from '../observability/tracing.ts';
import type { OpsServer } from './ops.ts';
import { openStateStore } from '../state/open.ts';
import type { StateStore } from '../state/store.ts';
import { RateLimiter } from '../ratelimit/limiter.ts';
import { ConcurrencyLimiter } from '../ratelimit/concurrency.ts';
import { AbuseGuard } from '../abuse/guard.ts';
import { RevocationChecker } from '../pki/revocation/checker.ts';
import { createNonceSource } from '../authn/dpop.ts';
import { randomBytes } from 'node:crypto';
import { createAdminHandler } from '../admin/api.ts';
import { eventRecord } from '../audit/event-record.ts';
import type { RequestServices } from '../pipeline/context.ts';
import type { TokenServiceDeps } from '../tokens/types.ts';
import { openTokenKeys } from '../tokens/keys.ts';
import type { TokenKeys } from '../tokens/types.ts';

export interface GatewayOptions {
  readonly configPath: string;
  readonly env?: Record<string, string | undefined>;
  /** Reload when a file in the config file's folder changes (debounced). Default false. */
  readonly watch?: boolean;
  /** Receives the application log instead of stderr (the demo prints its own summary). */
  readonly log?: LogListener;
  /** Sub-folder of the audit folder for this process's trail (a worker's own chain). */
  readonly auditFolder?: string;
}

export type ReloadResult =
  | { readonly ok: true; readonly changed: boolean; readonly hash: string }
  | { readonly ok: false; readonly issues: readonly ConfigIssue[] };

export interface Gateway {
  readonly snapshot: Snapshot;
  /** The state store (revocations, counters) this gateway shares with its peers. */
  readonly state: StateStore;
  /** The token service's signing keys; null when `token_service` is not configured. */
  readonly tokenKeys: TokenKeys | null;
  addresses(): { listeners: Array<{ name: string; zone: Zone; url: string }>; ops: string };
  /** `actor` is recorded on the audit record of the reload (`signal`, `file-watch`, …). */
  reload(actor?: string): Promise<ReloadResult>;
  /** Not ready → (shutdown delay) → stop accepting → drain in-flight (bounded) → close. */
  shutdown(): Promise<void>;
}

export class ConfigLoadError extends Error {
  readonly issues: readonly ConfigIssue[];
  constructor(issues: readonly ConfigIssue[]) {
    super(`invalid configuration:\n${issues.map(formatIssue).join('\n')}`);
    this.issues = issues;
  }
}

interface Generation extends PipelineGeneration {
  readonly pools: ReadonlyMap<string, UpstreamPool>;
}

const WATCH_DEBOUNCE_MS = 250;
/**
 * How often the token service's keys are re-read from the state store, so a rotation made by
 * another instance or by `portcullis keys rotate` is published here well within its publish delay.
 */
const TOKEN_KEYS_REFRESH_MS = 15_000;

export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const configPath = resolve(options.configPath);
  if (options.log) setLogListener(options.log, { quiet: true });
  const loaded = await loadConfigOffThread(configPath, { env: options.env ?? process.env });
  if (!loaded.ok) throw new ConfigLoadError(loaded.issues);

  // One registry per gateway, and one gateway per process (`portcullis serve`); created before
  // the issuers' keys are fetched, so the first fetch is counted too.
  const metrics = createMetrics({ snapshot: () => generation.snapshot, auditStats: () => auditTrail.stats() });
  metrics.configLoaded(true, true);
  // The token service's keys open with the state store, after the first snapshot is prepared:
  // its key set reads them through this closure and is reloaded once they are open.
  let tokenKeys: TokenKeys | null = null;
  let tokenKeysAlgorithm: string | null = null;
  let tokenKeysTimer: NodeJS.Timeout | null = null;
  const authn = new AuthnRuntime(loaded.snapshot.dataDir, { tokenServiceJwks: () => tokenKeys?.jwks() ?? null });
  /** Opens the keys when the snapshot has a token service (again when its algorithm changed). */
  const ensureTokenKeys = async (snapshot: Snapshot): Promise<void> => {
    const service = snapshot.tokenService;
    if (!service || (tokenKeys && tokenKeysAlgorithm === service.algorithm)) return;
    const opened = await openTokenKeys({ store: state, algorithm: service.algorithm });
    tokenKeys?.close();
    tokenKeys = opened;
    tokenKeysAlgorithm = service.algorithm;
    await authn.keySets.reloadTokenService();
    tokenKeysTimer ??= setInterval(() => {
      void (async () => {
        try {
          await tokenKeys?.refresh();
          await authn.keySets.reloadTokenService();
        } catch (error) {
          log('error', 'token_service.keys_refresh_failed', { error: (error as Error).message });
        }
      })();
    }, TOKEN_KEYS_REFRESH_MS);
    tokenKeysTimer.unref();
  };
  const closeTokenKeys = (): void => {
    if (tokenKeysTimer) clearInterval(tokenKeysTimer);
    tokenKeysTimer = null;
    tokenKeys?.close();
  };
  let generation: Generation = {
    snapshot: loaded.snapshot,
    pools: reconcilePools(loaded.snapshot.upstreams, new Map()).pools,
    checkers: await authn.prepare(loaded.snapshot),
  };
  let decisionLog: DecisionLog = openDecisionLog(loaded.snapshot.decisionLog);
  const auditSettings = loaded.snapshot.audit;
  const trailSettings = options.auditFolder ? { ...auditSettings, dir: join(auditSettings.dir, options.auditFolder) } : auditSettings;
  const stateSettings = loaded.snapshot.state;
  const auditOff = loaded.snapshot.config.audit.disabled_for_benchmark !== undefined;
  if (auditOff && (options.env ?? process.env)['PORTCULLIS_BENCHMARK'] !== '1') {
    generation.checkers.close();
    authn.close();
    decisionLog.close();
    metrics.close();
    throw new Error('audit.disabled_for_benchmark is set: a gateway without an audit trail only starts for a benchmark, with PORTCULLIS_BENCHMARK=1 in its environment');
  }
  let auditTrail: AuditTrail;
  let state: StateStore;
  try {
    auditTrail = auditOff ? benchmarkWithoutTrail() : await openAuditTrail(trailSettings);
  } catch (error) {
    generation.checkers.close();
    authn.close();
    decisionLog.close();
    metrics.close();
    throw error;
  }
  try {
    state = await openStateStore(stateSettings);
  } catch (error) {
    generation.checkers.close();
    authn.close();
    await auditTrail.close();
    decisionLog.close();
    metrics.close();
    throw error;
  }
  const services: RequestServices = {
    revocations: state.revocations,
    limiter: new RateLimiter(state),
    concurrency: new ConcurrencyLimiter(),
    abuse: new AbuseGuard(),
    certificateRevocation: new RevocationChecker(),
    replay: (key, ttlMs) => state.setIfAbsent(key, ttlMs),
    // Every instance must accept the nonces any of them issued: the key lives in the shared state.
    dpopNonces: createNonceSource({ lifetimeMs: loaded.snapshot.dpop.nonceLifetimeMs, secret: await sharedSecret(state, 'dpop-nonce-key') }),
    // The token service answers once its keys are open (a reload may add it).
    get tokenService(): TokenServiceDeps | null {
      const keys = tokenKeys;
      if (keys === null || generation.snapshot.tokenService === null) return null;
      return { snapshot: () => generation.snapshot, store: state, keys, audit: recordEvent, auditHealthy: () => auditTrail.healthy(), dpopNonces: services.dpopNonces };
    },
  };
  try {
    await ensureTokenKeys(loaded.snapshot);
  } catch (error) {
    closeTokenKeys();
    generation.checkers.close();
    authn.close();
    await auditTrail.close();
    await state.close();
    decisionLog.close();
    metrics.close();
    throw error;
  }
  /** Appends a non-request record (reload, admin change); the caller decides what a refusal means. */
  const recordEvent = (record: object, partnerId: string | null): boolean => {
    const accepted = auditTrail.append(record, partnerId);
    countTokenRequest(metrics, record);
    if (!accepted) log('error', 'audit.record_not_chained', { action: (record as { event?: { action?: string } }).event?.action ?? 'unknown' });
    return accepted;
  };
  const listeners = new Map<string, BoundListener>();
  let ops: OpsServer | null = null;
  let starting = true;
  let draining = false;
  let inFlight = 0;
  let drained: (() => void) | null = null;
  /** Requests on HTTP/1 sockets, so a request timeout answers the request rather than adding a record. */
  const activeBySocket = new WeakMap<Socket, RequestContext>();

  const hooks: PipelineHooks = {
    get decisionLog() {
      return decisionLog;
    },
    auditTrail,
    metrics,
    onStart: () => {
      inFlight++;
    },
    onEnd: () => {
      inFlight--;
      if (inFlight === 0 && drained) drained();
    },
    draining: () => draining,
    services,
  };

  const handlers: ListenerHandlers = {
    acceptsClient(name, socket) {
      const mode = generation.snapshot.listeners.find((listener) => listener.name === name)?.tls?.clientCertificates;
      const result = connectionIdentity(socket, generation.snapshot).result;
      // No certificate: acceptable only where certificates are optional; the stage decides then.
      if (result === null) return mode === 'request';
      if (!result.ok) log('info', 'tls.refused_at_handshake', { listener: name, reason: result.reason, fingerprint: result.facts?.fingerprintSha256 ?? null });
      return result.ok;
    },
    onRequest(name, req, res) {
      const bound = listeners.get(name);
      const current = generation;
      const spec = current.snapshot.listeners.find((listener) => listener.name === name) ?? bound?.spec;
      if (!spec) {
        res.destroy();
        return;
      }
      metrics.requestStarted(name);
      const ctx = handleRequest(current, spec, req, res, hooks);
      const socket = req.httpVersionMajor === 1 ? req.socket : null;
      if (socket !== null) activeBySocket.set(socket, ctx);
      res.once('close', () => {
        metrics.requestEnded(name);
        if (socket !== null) activeBySocket.delete(socket);
      });
    },
    onClientError(name, error, socket) {
      const active = activeBySocket.get(socket);
      if (active) {
        // The request was already in the pipeline (e.g. its body is too slow): answer it, once.
        // Once its response has started, a socket error is a consequence, not a new decision.
        const reason = active.res.headersSent || active.lateFailure ? null : clientErrorReason(error);
        if (reason) {
          active.refusal ??= { reason, detail: `${error.code ?? 'error'}: ${error.message}` };
          // At once: the socket is ended right below.
          sendRefusal(active, active.refusal, true);
        }
        socket.destroySoon?.();
        return;
      }
      const spec = generation.snapshot.listeners.find((listener) => listener.name === name) ?? listeners.get(name)?.spec;
      if (!spec) {
        socket.destroy();
        return;
      }
      answerClientError(error, socket, generation, spec, hooks);
    },
  };

  let tracing: Tracing | null = null;
  try {
    // Before the listeners: no request goes untraced, and an SDK that cannot load stops the start.
    tracing = await startTracing(generation.snapshot.tracing, services);
    for (const spec of generation.snapshot.listeners) listeners.set(spec.name, await bindListener(spec, handlers));
    ops = await startOpsServer(generation.snapshot.ops.address, generation.snapshot.ops.port, [
      { name: 'config', ok: () => generation.snapshot !== null },
      { name: 'listeners', ok: () => !starting && listeners.size === generation.snapshot.listeners.length },
      { name: 'issuer-keys', ok: () => authn.keysReady(generation.snapshot) },
      // Without a trail the gateway never reports ready: no load balancer sends it real traffic.
      { name: 'audit', ok: () => !auditOff && auditTrail.healthy() },
      { name: 'state', ok: () => state.health().ok },
      { name: 'not-draining', ok: () => !draining },
    ], metrics, createAdminHandler({
      store: state,
      snapshot: () => generation.snapshot,
      audit: recordEvent,
      auditHealthy: () => auditTrail.healthy(),
    }));
  } catch (error) {
    for (const bound of listeners.values()) await bound.stopAccepting();
    for (const entry of generation.pools.values()) await entry.pool.destroy();
    await tracing?.shutdown();
    closeTokenKeys();
    generation.checkers.close();
    authn.close();
    await auditTrail.close();
    await state.close();
    decisionLog.close();
    metrics.close();
    throw error;
  }
  for (const warning of generation.snapshot.warnings) log('warn', 'config.insecure_option', { message: warning });
  log('info', 'gateway.started', {
    config_hash: generation.snapshot.hash,
    listeners: [...listeners.values()].map((bound) => ({ name: bound.name, zone: bound.spec.zone, url: bound.url })),
    ops: ops.url,
  });
  starting = false;

  let onSwap: ((snapshot: Snapshot) => void) | null = null;
  let reloading: Promise<ReloadResult> = Promise.resolve({ ok: true, changed: false, hash: generation.snapshot.hash });

  async function reloadNow(actor: string): Promise<ReloadResult> {
    const result = await applyReload();
    // Every reload that changed something, or was refused, is on the trail: who, when, which version.
    if (!result.ok) {
      recordEvent(
        eventRecord({
          action: 'config.reload_refused',
          outcome: 'failure',
          reason: 'invalid_configuration',
          actor,
          partnerId: null,
          configHash: generation.snapshot.hash,
          issues: result.issues.map(formatIssue),
        }),
        null,
      );
    } else if ('previousHash' in result) {
      recordEvent(
        eventRecord({ action: 'config.reload_applied', outcome: 'success', reason: 'applied', actor, partnerId: null, configHash: result.hash, previousConfigHash: result.previousHash }),
        null,
      );
    }
    return result.ok ? { ok: true, changed: result.changed, hash: result.hash } : result;
  }

  async function applyReload(): Promise<ReloadResult | { ok: true; changed: true; hash: string; previousHash: string }> {
    if (draining) return { ok: true, changed: false, hash: generation.snapshot.hash };
    const started = performance.now();
    const next = await loadConfigOffThread(configPath, { env: options.env ?? process.env });
    if (!next.ok) {
      for (const issue of next.issues) log('error', 'config.reload_refused', { issue: formatIssue(issue) });
      return { ok: false, issues: next.issues };
    }
    const snapshot = next.snapshot;
    if (snapshot.hash === generation.snapshot.hash) return { ok: true, changed: false, hash: snapshot.hash };

    // Bind new or changed listeners first: if one cannot bind, nothing has changed yet.
    const fresh = new Map<string, BoundListener>();
    try {
      for (const spec of snapshot.listeners) {
        const existing = listeners.get(spec.name);
        if (existing && existing.bindKey === bindKeyOf(spec)) continue;
        if (existing && existing.spec.address === spec.address && existing.spec.port === spec.port && spec.port !== 0) {
          // Same socket address, different kind: the old server must release it first; done below.
          continue;
        }
        fresh.set(spec.name, await bindListener(spec, handlers));
      }
    } catch (error) {
      for (const bound of fresh.values()) await bound.stopAccepting();
      log('error', 'config.reload_refused', { error: String(error) });
      return { ok: false, issues: [{ file: configPath, line: 1, col: 1, code: 'CONFIG_CONFLICT', path: 'listeners', message: `cannot bind: ${String(error)}` }] };
    }

    let checkers;
    try {
      await ensureTokenKeys(snapshot);
      checkers = await authn.prepare(snapshot);
    } catch (error) {
      for (const bound of fresh.values()) await bound.stopAccepting();
      log('error', 'config.reload_refused', { error: String(error) });
      return { ok: false, issues: [{ file: configPath, line: 1, col: 1, code: 'CONFIG_CONFLICT', path: 'issuers', message: `cannot prepare credential checks: ${String(error)}` }] };
    }
    const { pools, retired } = reconcilePools(snapshot.upstreams, generation.pools);
    const previous = generation;
    generation = { snapshot, pools, checkers };

    const retiredListeners: BoundListener[] = [];
    const rebindInPlace: CompiledListener[] = [];
    for (const spec of snapshot.listeners) {
      const existing = listeners.get(spec.name);
      const bound = fresh.get(spec.name);
      if (bound) {
        if (existing) retiredListeners.push(existing);
        listeners.set(spec.name, bound);
      } else if (existing && existing.bindKey === bindKeyOf(spec)) {
        existing.update(spec);
      } else if (existing) {
        rebindInPlace.push(spec);
      }
    }
    for (const [name, existing] of listeners) {
      if (!snapshot.listeners.some((spec) => spec.name === name)) {
        retiredListeners.push(existing);
        listeners.delete(name);
      }
    }
    for (const spec of rebindInPlace) {
      const old = listeners.get(spec.name)!;
      await old.stopAccepting();
      listeners.set(spec.name, await bindListener(spec, handlers));
    }
    for (const bound of retiredListeners) void bound.stopAccepting();
    for (const entry of retired) void entry.pool.close();
    // Requests still in flight on the old snapshot may be mid-introspection; let them finish.
    // Only the checkers are kept for that: the previous snapshot (tens of MB for thousands of
    // partners) is released with the last request that uses it.
    const previousCheckers = previous.checkers;
    setTimeout(() => previousCheckers.close(), previous.snapshot.drainTimeoutMs).unref();
    if (snapshot.decisionLog !== previous.snapshot.decisionLog) {
      const old = decisionLog;
      decisionLog = openDecisionLog(snapshot.decisionLog);
      setTimeout(() => old.close(), 100).unref();
    }
    for (const warning of snapshot.warnings) log('warn', 'config.insecure_option', { message: warning });
    if (JSON.stringify(snapshot.audit) !== JSON.stringify(auditSettings) || (snapshot.config.audit.disabled_for_benchmark !== undefined) !== auditOff) {
      log('warn', 'audit.settings_need_restart', { message: 'audit settings changed; the running trail keeps its settings until the next start' });
    }
    if (JSON.stringify(snapshot.state) !== JSON.stringify(stateSettings)) {
      log('warn', 'state.settings_need_restart', { message: 'state settings changed; the running store keeps its settings until the next start' });
    }
    if (JSON.stringify(snapshot.tracing) !== JSON.stringify(previous.snapshot.tracing)) {
      log('warn', 'tracing.settings_need_restart', { message: 'tracing settings changed; the running tracer keeps its settings until the next start' });
    }
    onSwap?.(snapshot);
    // From the reload's start (signal, watch or admin call) to the swap: load, validate, compile, bind.
    log('info', 'config.reloaded', { config_hash: snapshot.hash, previous_hash: previous.snapshot.hash, duration_ms: Math.round(performance.now() - started) });
    return { ok: true, changed: true, hash: snapshot.hash, previousHash: previous.snapshot.hash };
  }

  async function reloadAndCount(actor: string): Promise<ReloadResult> {
    let result: ReloadResult;
    try {
      result = await reloadNow(actor);
    } catch (error) {
      metrics.configLoaded(false);
      throw error;
    }
    metrics.configLoaded(result.ok);
    return result;
  }

  function reload(actor = 'api'): Promise<ReloadResult> {
    const run = (): Promise<ReloadResult> => reloadAndCount(actor);
    reloading = reloading.then(run, run);
    return reloading;
  }

  // Editors save by rename, so folders are watched, not files; only events naming the config
  // file or a file it references count (the decision log may live in the same folder).
  const watchers = new Map<string, FSWatcher>();
  let watchTimer: NodeJS.Timeout | null = null;
  function watchFiles(files: readonly string[]): void {
    const wanted = new Map<string, Set<string>>();
    for (const file of files) {
      const names = wanted.get(dirname(file)) ?? new Set<string>();
      names.add(basename(file));
      wanted.set(dirname(file), names);
    }
    for (const [folder, watcher] of watchers) {
      if (!wanted.has(folder)) {
        watcher.close();
        watchers.delete(folder);
      }
    }
    for (const [folder, names] of wanted) {
      watchers.get(folder)?.close();
      try {
        const watcher = watch(folder, { persistent: false }, (_event, name) => {
          if (name !== null && !names.has(String(name))) return;
          if (watchTimer) clearTimeout(watchTimer);
          watchTimer = setTimeout(() => void reload('file-watch'), WATCH_DEBOUNCE_MS);
        });
        watcher.on('error', (error) => log('warn', 'config.watch_failed', { folder, error: String(error) }));
        watchers.set(folder, watcher);
      } catch (error) {
        log('warn', 'config.watch_failed', { folder, error: String(error) });
      }
    }
  }
  if (options.watch) {
    watchFiles(generation.snapshot.watchedFiles);
    onSwap = (snapshot) => watchFiles(snapshot.watchedFiles);
    log('info', 'config.watching', { files: generation.snapshot.watchedFiles });
  }

  let shuttingDown: Promise<void> | null = null;
  async function shutdownNow(): Promise<void> {
    draining = true;
    for (const watcher of watchers.values()) watcher.close();
    if (watchTimer) clearTimeout(watchTimer);
    const { shutdownDelayMs, drainTimeoutMs } = generation.snapshot;
    log('info', 'gateway.draining', { in_flight: inFlight, shutdown_delay_ms: shutdownDelayMs, drain_timeout_ms: drainTimeoutMs });
    if (shutdownDelayMs > 0) await delay(shutdownDelayMs);
    const stopped = Promise.all([...listeners.values()].map((bound) => bound.stopAccepting()));
    if (inFlight > 0) {
      const allDone = new Promise<void>((resolveDrained) => {
        drained = resolveDrained;
      });
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<boolean>((resolveTimeout) => {
        timer = setTimeout(() => resolveTimeout(true), drainTimeoutMs);
      });
      const timedOut = await Promise.race([allDone.then(() => false), timeout]);
      // The drain timer must not keep the process alive once everything has drained.
      clearTimeout(timer);
      if (timedOut) log('warn', 'gateway.drain_timeout', { in_flight: inFlight });
    }
    for (const bound of listeners.values()) bound.destroyAll();
    await stopped;
    await Promise.all([...generation.pools.values()].map((entry) => entry.pool.close().catch(() => undefined)));
    await ops?.close();
    // After the drain: the spans of the last requests are exported before the process exits.
    await tracing?.shutdown();
    generation.checkers.close();
    authn.close();
    closeTokenKeys();
    await auditTrail.close();
    await state.close();
    services.certificateRevocation.close();
    decisionLog.close();
    metrics.close();
    log('info', 'gateway.stopped', {});
  }

  return {
    get snapshot() {
      return generation.snapshot;
    },
    state,
    get tokenKeys() {
      return tokenKeys;
    },
    addresses() {
      return {
        listeners: [...listeners.values()].map((bound) => ({ name: bound.name, zone: bound.spec.zone, url: bound.url })),
        ops: ops!.url,
      };
    },
    reload,
    shutdown() {
      shuttingDown ??= shutdownNow();
      return shuttingDown;
    },
  };
}

/** The token endpoint's answers, counted from their audit records (one place that sees them all). */
function countTokenRequest(metrics: { tokenRequest(result: 'issued' | 'refused', api: string | null, method: string | null): void }, record: object): void {
  const body = record as { event?: { action?: string }; portcullis?: { token?: { api?: string | null; client_auth_method?: string | null } } };
  const action = body.event?.action;
  if (action !== 'token.issued' && action !== 'token.refused' && action !== 'token.exchanged') return;
  const token = body.portcullis?.token;
  metrics.tokenRequest(action === 'token.refused' ? 'refused' : 'issued', token?.api ?? null, token?.client_auth_method ?? null);
}

/**
 * A 32-byte key shared by every instance of one state store, created once: the instance that
 * wins `setIfAbsent` on the lock writes it, the others wait for it.
 */
async function sharedSecret(state: StateStore, name: string): Promise<Buffer> {
  const key = `secret:${name}`;
  let value = await state.get(key);
  if (value === null && (await state.setIfAbsent(`${key}:lock`, 10_000))) {
    await state.set(key, randomBytes(32).toString('base64url'), null);
  }
  for (let waited = 0; value === null && waited < 10_000; waited += 50) {
    value = await state.get(key);
    if (value === null) await delay(50);
  }
  const secret = Buffer.from(value ?? '', 'base64url');
  if (secret.length !== 32) throw new Error(`state: the shared secret "${name}" is missing or malformed`);
  return secret;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolveDelay) => setTimeout(resolveDelay, ms));
}

/**
 * `audit.disabled_for_benchmark` with PORTCULLIS_BENCHMARK=1 (bench/: the row the trail's cost
 * is measured against): accepts every record and keeps none. Said loudly at start, and the
 * gateway never reports ready (see the `audit` readiness check).
 */
function benchmarkWithoutTrail(): AuditTrail {
  log('warn', 'audit.disabled_for_benchmark', {
    message: 'NO AUDIT RECORD IS WRITTEN: audit.disabled_for_benchmark is set and PORTCULLIS_BENCHMARK=1; for benchmarks only, /readyz stays 503',
  });
  return {
    keyId: '',
    publicKeyPem: '',
    append: () => true,
    healthy: () => true,
    flush: async () => {},
    close: async () => {},
    stats: () => ({ queued: 0, written: 0, failedWrites: 0, lastError: null }),
  };
}
