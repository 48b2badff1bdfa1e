/**
 * The Redis state driver (DESIGN.md "state", many instances): counters, replay caches and the
 * revocation state shared by every instance through one Redis (single node, Sentinel or Cluster),
 * with node-redis 6 (ECOSYSTEM.md §2.9).
 *
 * Revocations are pushed, never polled. Each change is one Lua script that writes the state,
 * bumps a version counter and PUBLISHes the event, atomically; every instance applies the events
 * to its in-memory set in version order. Each instance holds two connections: commands, and a
 * subscriber of its own, so a slow command never delays a push and the health of the
 * subscription — what fail-closed depends on — is seen on its own. After the subscriber
 * (re)connects — and only once its SUBSCRIBE has been
 * answered — the whole state is read in one script together with its version, and the events
 * that arrived meanwhile are replayed above that version: nothing published around a reconnect
 * is lost, and a version that jumps (a missed message) triggers the same reload.
 *
 * Acknowledgements make "refused by the next request on every instance" checkable: instances
 * register themselves in a sorted set (heartbeat every second, registration valid 3 s, by the
 * Redis clock), and after applying pushed events each one publishes the highest version it has
 * applied without gaps. A change resolves once every instance that was live when the script
 * ran has reported at least the change's version, or after `propagationTimeoutMs`; the caller
 * gets `{ instances, acknowledged, elapsedMs }`. Only instances that serve requests register:
 * one that refuses everything (fail closed, below) cannot let a revoked credential through.
 *
 * Fail closed: `revocations.current()` answers `unavailable` while the subscriber is down or not
 * answering (pinged every heartbeat), before the first full load and after a failed one — the set
 * might miss a revocation — unless `serveLastKnownForMs` allows serving it for that long after the
 * trouble started. Commands get a reply deadline of `commandTimeoutMs` (node-redis's own timeout
 * stops once a command is written); a connection that leaves several in a row unanswered is
 * replaced. Sentinel and Cluster give no exact "re-subscribed" signal: there any sign of trouble
 * makes the store reload shortly after, and the heartbeat compares Redis's version with the one
 * applied, so a subscription that went silent is noticed within about two heartbeats.
 *
 * Clocks: GCRA uses the `nowMs` the caller passes; without one, the Redis server's clock (TIME),
 * so all instances count against one clock. Callers that pass their own clock need instances
 * with synchronised clocks (NTP): a skew of d ms shifts an instance's view of a bucket by d ms.
 * Instance liveness always uses the Redis clock.
 *
 * Durability is Redis's: revocations survive a Redis restart only with persistence (AOF) or a
 * replica. A version that goes backwards after a reconnect is logged as `state.redis.version_regressed`.
 */
import { StateEventFanout } from './event-fanout.ts';
import { validEvent, diffEvents, requireText, requireKind, requireTime, requireTtl, validRevocation, validPartnerStatus, UNKNOWN_ACTOR, KINDS } from './validate.ts';
import { randomUUID } from 'node:crypto';
import { ErrorReply, TimeoutError, createClient, createCluster, createSentinel } from 'redis';
import type { CompiledState } from '../config/snapshot.ts';
import { log } from '../log.ts';
import { MemoryRevocationSet } from './revocation-set.ts';
import {
  CHANGE_SCRIPT,
  GCRA_SCRIPT,
  HEARTBEAT_SCRIPT,
  LOAD_STATE_SCRIPT,
  PRUNE_SCRIPT,
  QUOTA_SCRIPT,
  UNREGISTER_SCRIPT,
} from './redis-scripts.ts';
import type { RedisScript } from './redis-scripts.ts';
import type {
  GcraLimit,
  GcraResult,
  PartnerStatusChange,
  Propagation,
  QuotaResult,
  Revocation,
  RevocationKind,
  RevocationSet,
  RevocationView,
  StateEvent,
  StateStore,
  StoreHealth,
} from './store.ts';

export type RedisStoreOptions = NonNullable<CompiledState['redis']> & {
  readonly propagationTimeoutMs: number;
  readonly instanceId?: string;
};

/** A command that failed or timed out, or a connection that is down: the caller answers 503. */
export class RedisStateError extends Error {
  override readonly name = 'RedisStateError';
}

const HEARTBEAT_INTERVAL_MS = 1_000;
/** Three missed heartbeats and an instance no longer counts as live (no change waits for it). */
const INSTANCE_TTL_MS = 3_000;
/** Expired token revocations are deleted from Redis every this many heartbeats, at most PRUNE_BATCH at a time. */
const PRUNE_EVERY_BEATS = 60;
const PRUNE_BATCH = 1_000;
/** Quota counters outlive their window by a day: a caller whose clock lags still finds the count. */
const QUOTA_EXPIRY_SLACK_MS = 86_400_000;
const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 1_000;
const RELOAD_RETRY_MIN_MS = 100;
const RELOAD_RETRY_MAX_MS = 2_000;
/** Sentinel and Cluster give no reliable "subscriber is back" signal: reload this long after trouble, then retry. */
const RESYNC_DELAY_MS = 250;
/** Commands in a row without an answer before the command connection is replaced. */
const COMMAND_TIMEOUTS_BEFORE_RECONNECT = 3;
/** Own changes whose echo has not come back are forgotten after this long. */
const OWN_CHANGE_MEMORY_MS = 60_000;
/** Instances that have not acknowledged anything for this long are forgotten. */
const ACK_MEMORY_MS = 60_000;

const CLOSED_VIEW = Object.freeze({ unavailable: 'state store is closed' });

type ScriptOptions = { keys: string[]; arguments: string[] };

/** The commands this driver sends, common to node-redis's client, Sentinel and Cluster objects. */
interface CommandConnection {
  evalSha(sha1: string, options: ScriptOptions): Promise<unknown>;
  eval(script: string, options: ScriptOptions): Promise<unknown>;
  get(key: string): Promise<string | null>;
  set(key: string, value: string, options?: { expiration?: { type: 'PX'; value: number }; condition?: 'NX' }): Promise<string | null>;
  del(key: string): Promise<number>;
  publish(channel: string, message: string): Promise<number>;
  connect(): Promise<unknown>;
  close(): Promise<void>;
  destroy(): unknown;
  on(event: string, listener: (...args: never[]) => void): unknown;
  readonly isReady: boolean;
}

interface SubscriberConnection {
  subscribe(channels: string[], listener: (message: string, channel: string) => void): Promise<unknown>;
  ping(): Promise<unknown>;
  connect(): Promise<unknown>;
  close(): Promise<void>;
  destroy(): unknown;
  on(event: string, listener: (...args: never[]) => void): unknown;
  readonly isReady: boolean;
}

interface Connections {
  /** A new command connection (not connected): at start, and to replace one that stopped answering. */
  readonly createCommands: () => CommandConnection;
  /** A new subscriber connection (not connected): at start, and to replace one that stopped answering. */
  readonly createSubscriber: () => SubscriberConnection;
  /** `single`: the subscriber's own ready/error events are exact; otherwise resync on any sign of trouble. */
  readonly exactSubscriberEvents: boolean;
  /** Where, for logs: host:port list, never credentials. */
  readonly target: string;
}

/** What travels on the events channel: the version the change got, its id, who made it, and the event. */
interface Envelope {
  readonly v: number;
  readonly id: string;
  readonly origin: string;
  readonly event: StateEvent;
}

interface LoadedState {
  readonly version: number;
  readonly revocations: Revocation[];
  readonly partners: PartnerStatusChange[];
}

interface Load {
  readonly epoch: number;
  readonly buffer: Envelope[];
}

interface OwnChange {
  /** Set when the script answered. */
  version: number | null;
  readonly event: StateEvent;
  readonly at: number;
  emitted: boolean;
}

interface Waiter {
  readonly version: number;
  readonly others: readonly string[];
  readonly done: () => void;
}

export async function openRedisStore(options: RedisStoreOptions): Promise<StateStore> {
  validateOptions(options);
  const instanceId = options.instanceId ?? randomUUID();
  const connections = createConnections(options, instanceId);
  const store = new RedisStateStore(options, instanceId, connections);
  try {
    await store.start();
  } catch (error) {
    await store.close().catch(() => undefined);
    throw error;
  }
  return store;
}

class RedisStateStore implements StateStore {
  readonly driver = 'redis' as const;
  readonly instanceId: string;
  readonly revocations: RevocationView;

  readonly #options: RedisStoreOptions;
  readonly #createCommands: () => CommandConnection;
  #commands: CommandConnection;
  /** Commands in a row that got no answer in time; at COMMAND_TIMEOUTS_BEFORE_RECONNECT the connection is replaced. */
  #consecutiveTimeouts = 0;
  readonly #createSubscriber: () => SubscriberConnection;
  #subscriber: SubscriberConnection | null = null;
  /** The subscriber whose SUBSCRIBE has been answered (its later 'ready' events mean: re-subscribed). */
  #subscribedConnection: SubscriberConnection | null = null;
  readonly #exactSubscriberEvents: boolean;
  readonly #target: string;
  readonly #keys: ReturnType<typeof stateKeys>;

  readonly #set = new MemoryRevocationSet();
  readonly #events = new StateEventFanout();

  /** True while the set is known to be current: subscribed, loaded, no missed message. */
  #trusted = false;
  #everLoaded = false;
  /** When the set stopped being trusted (serveLastKnownForMs counts from here). */
  #untrustedSince: number | null = null;
  #untrustedReason = 'not loaded yet';
  #unavailableView: { readonly unavailable: string } = { unavailable: 'revocation state not loaded yet' };
  #commandsOk = true;
  #commandsError: string | null = null;
  #started = false;
  #closed = false;

  /** Bumped whenever the subscription may have missed something: a load started before is void. */
  #epoch = 0;
  #loading: Load | null = null;
  #reloadTimer: NodeJS.Timeout | null = null;
  #reloadFailures = 0;
  /** The highest version applied from the channel (or a load) with no gap below it. */
  #lastPushedVersion = 0;
  /**
   * Own changes until their echo comes back: applied locally as soon as the script answers, unless
   * the echo (or a reload) got there first; emitted once, by whichever comes first.
   */
  readonly #ownChanges = new Map<string, OwnChange>();

  /** The last version each other instance reported as applied. */
  readonly #acks = new Map<string, { version: number; at: number }>();
  readonly #waiters = new Set<Waiter>();
  #ackScheduled = false;

  #heartbeatTimer: NodeJS.Timeout | null = null;
  #graceTimer: NodeJS.Timeout | null = null;
  #beats = 0;
  /** The version Redis reported at a heartbeat, and when: to notice a subscription that went silent. */
  #versionProbe: { readonly version: number; readonly at: number } | null = null;
  #firstLoad: { resolve: () => void; reject: (error: Error) => void } | null = null;
  #loggedState: string | null = null;

  constructor(options: RedisStoreOptions, instanceId: string, connections: Connections) {
    this.#options = options;
    this.instanceId = instanceId;
    this.#createCommands = connections.createCommands;
    this.#commands = connections.createCommands();
    this.#createSubscriber = connections.createSubscriber;
    this.#exactSubscriberEvents = connections.exactSubscriberEvents;
    this.#target = connections.target;
    this.#keys = stateKeys(options.keyPrefix);
    this.revocations = { current: () => (this.#trusted ? this.#set : this.#untrustedView()) };
    this.#wireCommandEvents(this.#commands);
  }

  /** Connects both connections, subscribes, loads the state and registers: all within connectTimeoutMs. */
  async start(): Promise<void> {
    const deadline = this.#options.connectTimeoutMs;
    const what = `Redis (${this.#options.mode}) at ${this.#target}`;
    const loaded = new Promise<void>((resolve, reject) => {
      this.#firstLoad = { resolve, reject };
    });
    // Awaited below only once connected; a failure before that must not surface as unhandled.
    loaded.catch(() => undefined);
    // Both connections at once; the load needs both (it starts after SUBSCRIBE was answered).
    await Promise.all([
      withDeadline(this.#commands.connect(), deadline, `${what}: command connection not established within ${deadline} ms`),
      withDeadline(this.#connectSubscriber(), deadline, `${what}: subscriber connection not established within ${deadline} ms`),
    ]);
    void this.#reload();
    await withDeadline(loaded, deadline, `${what}: revocation state not loaded within ${deadline} ms`);
    await this.#heartbeat();
    this.#heartbeatTimer = setInterval(() => void this.#tick(), HEARTBEAT_INTERVAL_MS).unref();
    this.#started = true;
    this.#loggedState = 'recovered';
    log('info', 'state.redis.connected', { mode: this.#options.mode, target: this.#target, instance: this.instanceId });
  }

  async revoke(revocation: Revocation): Promise<Propagation> {
    this.#requireOpen();
    const entry = validRevocation(revocation);
    const event: StateEvent = { type: 'revoked', revocation: entry };
    const { propagation } = await this.#change(
      this.#keys.revocations,
      'set',
      revocationField(entry.kind, entry.key),
      JSON.stringify(entry),
      entry.expiresAt,
      event,
    );
    return propagation;
  }

  async unrevoke(kind: RevocationKind, key: string, actor: string): Promise<{ removed: boolean; propagation: Propagation }> {
    this.#requireOpen();
    requireKind(kind);
    requireText(key, 'key');
    requireText(actor, 'actor');
    const event: StateEvent = { type: 'unrevoked', kind, key, actor, at: Date.now() };
    const { changed, propagation } = await this.#change(this.#keys.revocations, 'del', revocationField(kind, key), '', null, event);
    return { removed: changed, propagation };
  }

  async setPartnerStatus(partnerId: string, change: PartnerStatusChange | null, actor: string): Promise<Propagation> {
    this.#requireOpen();
    requireText(partnerId, 'partnerId');
    requireText(actor, 'actor');
    const entry = change === null ? null : validPartnerStatus(change);
    if (entry !== null && entry.partnerId !== partnerId) {
      throw new TypeError(`state: change.partnerId ${JSON.stringify(entry.partnerId)} is not ${JSON.stringify(partnerId)}`);
    }
    const event: StateEvent =
      entry === null
        ? { type: 'partner_status', partnerId, change: null, actor, at: Date.now() }
        : { type: 'partner_status', partnerId, change: entry, actor, at: entry.at };
    const { propagation } = await this.#change(
      this.#keys.partners,
      entry === null ? 'del' : 'set',
      partnerId,
      entry === null ? '' : JSON.stringify(entry),
      null,
      event,
    );
    return propagation;
  }

  async list(): Promise<{ revocations: Revocation[]; partners: PartnerStatusChange[] }> {
    this.#requireOpen();
    const state = await this.#readState();
    const now = Date.now();
    return {
      revocations: state.revocations
        .filter((entry) => entry.expiresAt === null || entry.expiresAt > now)
        .sort((a, b) => a.at - b.at || compareText(a.kind, b.kind) || compareText(a.key, b.key)),
      partners: state.partners.sort((a, b) => a.at - b.at || compareText(a.partnerId, b.partnerId)),
    };
  }

  async gcra(key: string, limit: GcraLimit, nowMs?: number): Promise<GcraResult> {
    this.#requireOpen();
    requireText(key, 'key');
    if (typeof limit !== 'object' || limit === null) throw new TypeError('state: limit must be an object');
    if (typeof limit.emissionIntervalMs !== 'number' || !Number.isFinite(limit.emissionIntervalMs) || limit.emissionIntervalMs <= 0) {
      throw new TypeError('state: limit.emissionIntervalMs must be a positive number');
    }
    if (!Number.isSafeInteger(limit.burst) || limit.burst < 0) throw new TypeError('state: limit.burst must be an integer ≥ 0');
    if (nowMs !== undefined) requireTime(nowMs, 'nowMs');
    // String(x) is the shortest text that parses back to exactly x, so Lua computes with the same doubles.
    const reply = await this.#run(GCRA_SCRIPT, [this.#keys.gcra(key)], [
      String(limit.emissionIntervalMs),
      String(limit.burst),
      nowMs === undefined ? '' : String(nowMs),
    ]);
    const [allowed, retryAfterMs, remaining, resetMs] = integers(reply, 4, 'gcra');
    return { allowed: allowed === 1, retryAfterMs, remaining, resetMs };
  }

  async quota(key: string, limit: number, windowEndMs: number, nowMs: number = Date.now()): Promise<QuotaResult> {
    this.#requireOpen();
    requireText(key, 'key');
    if (!Number.isSafeInteger(limit) || limit < 0) throw new TypeError('state: quota limit must be an integer ≥ 0');
    if (!Number.isSafeInteger(windowEndMs) || windowEndMs < 0) throw new TypeError('state: windowEndMs must be an integer (ms since the epoch)');
    // The window is named by its end; nowMs only has to be a time (the counter expires by the Redis clock).
    requireTime(nowMs, 'nowMs');
    const reply = await this.#run(QUOTA_SCRIPT, [this.#keys.quota(key, windowEndMs)], [String(limit), String(windowEndMs + QUOTA_EXPIRY_SLACK_MS)]);
    const [allowed, used] = integers(reply, 2, 'quota');
    return { allowed: allowed === 1, used, limit, resetAt: windowEndMs };
  }

  async setIfAbsent(key: string, ttlMs: number): Promise<boolean> {
    this.#requireOpen();
    requireText(key, 'key');
    requireTtl(ttlMs);
    const reply = await this.#command((commands) =>
      commands.set(this.#keys.kv(key), '1', { condition: 'NX', expiration: { type: 'PX', value: Math.max(1, Math.ceil(ttlMs)) } }),
    );
    return reply !== null;
  }

  async get(key: string): Promise<string | null> {
    this.#requireOpen();
    requireText(key, 'key');
    return this.#command((commands) => commands.get(this.#keys.kv(key)));
  }

  async set(key: string, value: string, ttlMs: number | null): Promise<void> {
    this.#requireOpen();
    requireText(key, 'key');
    if (typeof value !== 'string') throw new TypeError('state: value must be a string');
    if (ttlMs !== null) requireTtl(ttlMs);
    const redisKey = this.#keys.kv(key);
    await this.#command((commands) =>
      ttlMs === null
        ? commands.set(redisKey, value)
        : commands.set(redisKey, value, { expiration: { type: 'PX', value: Math.max(1, Math.ceil(ttlMs)) } }),
    );
  }

  async delete(key: string): Promise<void> {
    this.#requireOpen();
    requireText(key, 'key');
    await this.#command((commands) => commands.del(this.#keys.kv(key)));
  }

  subscribe(listener: (event: StateEvent) => void): () => void {
    this.#requireOpen();
    return this.#events.subscribe(listener);
  }

  health(): StoreHealth {
    if (this.#closed) return { ok: false, detail: 'closed' };
    const where = `redis ${this.#options.mode} ${this.#target}`;
    if (!this.#trusted) {
      const since = this.#untrustedSince === null ? '' : ` since ${new Date(this.#untrustedSince).toISOString()}`;
      const serving = this.revocations.current() === this.#set ? 'serving last known state' : 'refusing requests (fail closed)';
      return { ok: false, detail: `${where}: ${this.#untrustedReason}${since}, ${serving}` };
    }
    if (!this.#commandsOk) return { ok: false, detail: `${where}: commands failing (${this.#commandsError ?? 'disconnected'})` };
    return { ok: true, detail: `${where}: connected` };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#trusted = false;
    if (this.#heartbeatTimer !== null) clearInterval(this.#heartbeatTimer);
    if (this.#reloadTimer !== null) clearTimeout(this.#reloadTimer);
    if (this.#graceTimer !== null) clearTimeout(this.#graceTimer);
    this.#firstLoad?.reject(new RedisStateError('state store is closed'));
    this.#firstLoad = null;
    // Waiting changes return with what was acknowledged so far.
    for (const waiter of [...this.#waiters]) waiter.done();
    this.#events.clear();
    if (this.#commands.isReady) {
      // Unregister, so no other instance waits for this one's acknowledgement; best effort.
      await this.#run(UNREGISTER_SCRIPT, [this.#keys.instances], [this.instanceId], true).catch(() => undefined);
    }
    const subscriber = this.#subscriber;
    this.#subscriber = null;
    await Promise.all([subscriber === null ? undefined : closeConnection(subscriber), closeConnection(this.#commands)]);
    log('info', 'state.redis.closed', { instance: this.instanceId });
  }

  // ---- connection state -------------------------------------------------------------------

  #wireCommandEvents(commands: CommandConnection): void {
    // node-redis emits 'error' for every failed connection attempt: without listeners the process would crash.
    commands.on('error', (error: unknown) => {
      if (this.#commands === commands && !commands.isReady) this.#commandsDown(describeError(error));
    });
    commands.on('ready', () => {
      if (this.#commands === commands) this.#commandsUp();
    });
  }

  /**
   * node-redis's command timeout ends when the command is written; a reply that never comes (a
   * peer gone without closing the connection) is only noticed by our own timeout, and such a
   * connection never recovers by itself: replace it.
   */
  #recycleCommands(): void {
    if (this.#closed) return;
    const old = this.#commands;
    const commands = this.#createCommands();
    this.#commands = commands;
    this.#consecutiveTimeouts = 0;
    this.#wireCommandEvents(commands);
    void closeConnection(old, true);
    log('warn', 'state.redis.reconnecting', { instance: this.instanceId, connection: 'commands', reason: 'no answers' });
    // Retries by itself (reconnectStrategy) until connected or destroyed; meanwhile commands fail at once.
    commands.connect().catch(() => undefined);
  }

  /** Creates, connects and subscribes a new subscriber (replacing any previous one); true if it is still the current one. */
  async #connectSubscriber(): Promise<boolean> {
    const previous = this.#subscriber;
    if (previous !== null) void closeConnection(previous, true);
    const subscriber = this.#createSubscriber();
    this.#subscriber = subscriber;
    this.#subscribedConnection = null;
    this.#wireSubscriberEvents(subscriber);
    // Retries on its own (reconnectStrategy) until connected or destroyed.
    await subscriber.connect();
    if (this.#subscriber !== subscriber) return false;
    const subscribed = subscriber.subscribe([this.#keys.events, this.#keys.acks], (message, channel) => {
      if (this.#subscriber === subscriber) this.#onMessage(message, channel);
    });
    await withDeadline(subscribed, this.#options.commandTimeoutMs, null);
    if (this.#subscriber !== subscriber) return false;
    this.#subscribedConnection = subscriber;
    return true;
  }

  #wireSubscriberEvents(subscriber: SubscriberConnection): void {
    const current = (): boolean => this.#subscriber === subscriber && !this.#closed;
    if (this.#exactSubscriberEvents) {
      subscriber.on('error', (error: unknown) => {
        if (current() && !subscriber.isReady) this.#subscriptionLost(`subscriber connection lost (${describeError(error)})`);
      });
      subscriber.on('end', () => {
        if (current()) this.#subscriptionLost('subscriber connection closed');
      });
      // After a reconnect, 'ready' comes once node-redis has re-sent SUBSCRIBE and Redis has answered it.
      subscriber.on('ready', () => {
        if (current() && this.#subscribedConnection === subscriber) void this.#reload();
      });
      return;
    }
    const trouble = (what: string) => (error?: unknown) => {
      if (!current()) return;
      this.#subscriptionLost(error instanceof Error ? `${what} (${describeError(error)})` : what);
      this.#scheduleReload(RESYNC_DELAY_MS);
    };
    subscriber.on('error', trouble('subscriber connection error'));
    for (const event of ['node-error', 'node-disconnect', 'node-reconnecting', 'disconnect']) subscriber.on(event, trouble(`cluster ${event}`));
    subscriber.on('topology-change', (change: { type?: string }) => {
      if (change?.type === 'MASTER_CHANGE') trouble('sentinel master changed')();
    });
    subscriber.on('node-ready', () => {
      if (current() && this.#subscribedConnection === subscriber) this.#scheduleReload(RESYNC_DELAY_MS);
    });
  }

  /** Replaces a subscriber that stopped answering: a connection whose peer vanished is never closed by TCP alone. */
  #recycleSubscriber(): void {
    if (this.#closed) return;
    const retry = (): void => {
      if (this.#closed) return;
      this.#connectSubscriber().then(
        (current) => {
          // The load must start after SUBSCRIBE was answered.
          if (current) void this.#reload();
        },
        (error: unknown) => {
          this.#subscriptionLost(`subscriber connection failed (${describeError(error)})`);
          setTimeout(retry, RECONNECT_MAX_MS).unref();
        },
      );
    };
    retry();
  }

  #commandsDown(reason: string): void {
    this.#commandsError = reason;
    if (!this.#commandsOk) return;
    this.#commandsOk = false;
    this.#reportState();
  }

  #commandsUp(): void {
    if (this.#commandsOk) return;
    this.#commandsOk = true;
    this.#commandsError = null;
    this.#reportState();
  }

  /** The set may miss events from now on: stop trusting it (a load in flight is void). */
  #subscriptionLost(reason: string): void {
    if (this.#closed) return;
    this.#epoch++;
    this.#loading = null;
    this.#untrustedReason = reason;
    if (this.#trusted) {
      this.#trusted = false;
      this.#untrustedSince = Date.now();
      const grace = this.#options.serveLastKnownForMs;
      if (grace !== null && this.#everLoaded) {
        // Tells (once) when serving the last known state stops.
        this.#graceTimer = setTimeout(() => this.#reportState(), grace + 1).unref();
      }
    }
    this.#unavailableView = { unavailable: `revocation state cannot be confirmed: ${reason}` };
    this.#reportState();
  }

  #untrustedView(): RevocationSet | { readonly unavailable: string } {
    if (this.#closed) return CLOSED_VIEW;
    const grace = this.#options.serveLastKnownForMs;
    if (grace !== null && this.#everLoaded && this.#untrustedSince !== null && Date.now() - this.#untrustedSince <= grace) return this.#set;
    return this.#unavailableView;
  }

  /**
   * Logs each change of state once: `state.redis.recovered` (info), `state.redis.commands_failing`
   * (warn: the set is current, but changes, counters and caches fail), `state.redis.serving_last_known`
   * (warn: within serveLastKnownForMs), `state.redis.unavailable` (error: requests are refused).
   */
  #reportState(): void {
    // Until start() has finished, its outcome (connected, or the error) is the report.
    if (this.#closed || !this.#started) return;
    const state = this.#trusted
      ? this.#commandsOk ? 'recovered' : 'commands_failing'
      : this.revocations.current() === this.#set ? 'serving_last_known' : 'unavailable';
    if (state === this.#loggedState) return;
    this.#loggedState = state;
    const level = state === 'recovered' ? 'info' : state === 'unavailable' ? 'error' : 'warn';
    log(level, `state.redis.${state}`, { instance: this.instanceId, detail: this.health().detail });
  }

  // ---- loading and applying ---------------------------------------------------------------

  #scheduleReload(delayMs: number): void {
    if (this.#closed || this.#reloadTimer !== null) return;
    this.#reloadTimer = setTimeout(() => {
      this.#reloadTimer = null;
      void this.#reload();
    }, delayMs).unref();
  }

  /** Reads the whole state with its version; events that arrive meanwhile are replayed above it. */
  async #reload(): Promise<void> {
    if (this.#closed) return;
    if (this.#reloadTimer !== null) {
      clearTimeout(this.#reloadTimer);
      this.#reloadTimer = null;
    }
    const load: Load = { epoch: this.#epoch, buffer: [] };
    this.#loading = load;
    let state: LoadedState;
    try {
      state = await this.#readState();
    } catch (error) {
      if (this.#loading !== load || this.#closed) return;
      this.#loading = null;
      this.#untrustedReason = `loading the revocation state failed (${describeError(error)})`;
      this.#unavailableView = { unavailable: `revocation state cannot be confirmed: ${this.#untrustedReason}` };
      this.#reportState();
      const delay = Math.min(RELOAD_RETRY_MAX_MS, RELOAD_RETRY_MIN_MS * 2 ** this.#reloadFailures++);
      this.#scheduleReload(delay);
      return;
    }
    if (this.#loading !== load || this.#epoch !== load.epoch || this.#closed) return;
    this.#loading = null;
    this.#reloadFailures = 0;

    const now = Date.now();
    if (this.#everLoaded && state.version < this.#lastPushedVersion) {
      log('warn', 'state.redis.version_regressed', {
        instance: this.instanceId,
        before: this.#lastPushedVersion,
        now: state.version,
        message: 'Redis lost revocation state (restart without persistence, or failover to a lagging replica)',
      });
    }
    // Entries that expired on their own are not changes: drop them before comparing.
    this.#set.prune(now);
    const diff = diffEvents(this.#set.entries(), state, now);
    this.#set.replace(state.revocations, state.partners);
    this.#lastPushedVersion = state.version;
    this.#versionProbe = null;
    // Own changes the snapshot predates (their echo is still on its way) stay applied.
    for (const own of [...this.#ownChanges.values()].sort((a, b) => (a.version ?? 0) - (b.version ?? 0))) {
      if (own.version !== null && own.version > state.version) this.#set.apply(own.event);
    }
    this.#events.emit(diff);
    // Acknowledgements from before this load may belong to another Redis lifetime.
    this.#acks.clear();
    for (const envelope of load.buffer) {
      if (!this.#applyPushed(envelope)) return;
    }
    this.#everLoaded = true;
    this.#trusted = true;
    this.#untrustedSince = null;
    this.#untrustedReason = 'connected';
    if (this.#graceTimer !== null) {
      clearTimeout(this.#graceTimer);
      this.#graceTimer = null;
    }
    this.#reportState();
    this.#scheduleAck();
    // Serving again: count as live at once (a registration lost with a restarted Redis comes back now, not at the next beat).
    if (this.#started) void this.#heartbeat().catch(() => undefined);
    this.#firstLoad?.resolve();
    this.#firstLoad = null;
  }

  #onMessage(message: string, channel: string): void {
    if (this.#closed) return;
    if (channel === this.#keys.acks) {
      this.#onAck(message);
      return;
    }
    const envelope = parseEnvelope(message);
    if (envelope === null) {
      // Not ours (or corrupt): if it carried a version, the next one shows a gap and triggers a reload.
      log('warn', 'state.redis.event_unreadable', { instance: this.instanceId, bytes: message.length });
      return;
    }
    if (this.#loading !== null) {
      this.#loading.buffer.push(envelope);
      return;
    }
    // Not trusted and not loading: the coming load reads a state that includes this event.
    if (!this.#trusted) return;
    this.#applyPushed(envelope);
  }

  /** Applies one pushed event in version order; false (and a reload) when one was missed. */
  #applyPushed(envelope: Envelope): boolean {
    if (envelope.v <= this.#lastPushedVersion) return true;
    if (envelope.v !== this.#lastPushedVersion + 1) {
      this.#subscriptionLost(`missed revocation events (version ${this.#lastPushedVersion + 1} to ${envelope.v - 1})`);
      void this.#reload();
      return false;
    }
    this.#set.apply(envelope.event);
    this.#lastPushedVersion = envelope.v;
    if (envelope.origin === this.instanceId) {
      // Nobody waits for an instance's acknowledgement of its own change.
      const own = this.#ownChanges.get(envelope.id);
      this.#ownChanges.delete(envelope.id);
      if (own?.emitted) return true;
      if (own !== undefined) own.emitted = true;
      this.#events.emit([envelope.event]);
      return true;
    }
    this.#events.emit([envelope.event]);
    this.#scheduleAck();
    return true;
  }

  /** Tells the other instances, once per burst, the version this one has applied without gaps. */
  #scheduleAck(): void {
    if (this.#ackScheduled) return;
    this.#ackScheduled = true;
    setImmediate(() => {
      this.#ackScheduled = false;
      if (this.#closed || !this.#trusted) return;
      const message = JSON.stringify({ i: this.instanceId, v: this.#lastPushedVersion });
      this.#command((commands) => commands.publish(this.#keys.acks, message), true).catch(() => {
        // The waiting instance times out and reports fewer acknowledgements: that is the signal.
      });
    });
  }

  #onAck(message: string): void {
    let ack: { i?: unknown; v?: unknown };
    try {
      ack = JSON.parse(message) as { i?: unknown; v?: unknown };
    } catch {
      return;
    }
    if (typeof ack.i !== 'string' || ack.i === this.instanceId || !Number.isSafeInteger(ack.v)) return;
    // The latest report counts, not the highest: after a Redis restart versions start again.
    this.#acks.set(ack.i, { version: ack.v as number, at: Date.now() });
    for (const waiter of [...this.#waiters]) {
      if (waiter.others.every((id) => (this.#acks.get(id)?.version ?? -1) >= waiter.version)) waiter.done();
    }
  }

  // ---- changes and propagation ------------------------------------------------------------

  async #change(
    hashKey: string,
    op: 'set' | 'del',
    field: string,
    value: string,
    expiresAt: number | null,
    event: StateEvent,
  ): Promise<{ changed: boolean; propagation: Propagation }> {
    const started = performance.now();
    const id = randomUUID();
    // Everything but the version, which only the script knows; it prepends `{"v":<version>,`.
    const envelopeTail = JSON.stringify({ id, origin: this.instanceId, event }).slice(1);
    const own: OwnChange = { version: null, event, at: Date.now(), emitted: false };
    this.#ownChanges.set(id, own);
    let reply: unknown;
    try {
      reply = await this.#run(CHANGE_SCRIPT, [hashKey, this.#keys.version, this.#keys.instances, this.#keys.expiries], [
        op,
        field,
        value,
        expiresAt === null ? '' : String(expiresAt),
        this.#keys.events,
        envelopeTail,
      ]);
    } catch (error) {
      // It may still have run: its echo then counts as another instance's change (applied and emitted).
      this.#ownChanges.delete(id);
      throw error;
    }
    const [changed, version, live] = parseChangeReply(reply);
    const others = live.filter((instance) => instance !== this.instanceId);
    if (!changed) {
      this.#ownChanges.delete(id);
      return { changed: false, propagation: { instances: others.length + 1, acknowledged: others.length + 1, elapsedMs: performance.now() - started } };
    }
    own.version = version;
    if (!own.emitted) {
      own.emitted = true;
      // Not when the echo's stream (or a reload) is already past it: re-applying it now could undo a later change.
      if (version > this.#lastPushedVersion) {
        this.#set.apply(event);
        this.#events.emit([event]);
      }
    }
    const acknowledged = await this.#awaitAcknowledgements(version, others);
    return { changed: true, propagation: { instances: others.length + 1, acknowledged: acknowledged + 1, elapsedMs: performance.now() - started } };
  }

  /** How many of `others` reported `version` before the propagation timeout. */
  #awaitAcknowledgements(version: number, others: readonly string[]): Promise<number> {
    const count = (): number => others.filter((id) => (this.#acks.get(id)?.version ?? -1) >= version).length;
    if (others.length === 0 || count() === others.length || this.#options.propagationTimeoutMs <= 0) return Promise.resolve(count());
    return new Promise((resolve) => {
      const waiter: Waiter = {
        version,
        others,
        done: () => {
          clearTimeout(timer);
          this.#waiters.delete(waiter);
          resolve(count());
        },
      };
      const timer = setTimeout(() => waiter.done(), this.#options.propagationTimeoutMs);
      this.#waiters.add(waiter);
    });
  }

  // ---- heartbeat --------------------------------------------------------------------------

  async #tick(): Promise<void> {
    if (this.#closed) return;
    this.#beats++;
    const now = Date.now();
    for (const [id, own] of this.#ownChanges) if (now - own.at > OWN_CHANGE_MEMORY_MS) this.#ownChanges.delete(id);
    for (const [id, ack] of this.#acks) if (now - ack.at > ACK_MEMORY_MS) this.#acks.delete(id);
    this.#set.prune(now);
    const subscriber = this.#subscriber;
    if (this.#exactSubscriberEvents && this.#trusted && subscriber !== null) {
      // A connection whose peer vanished without closing it shows up only as an unanswered command.
      const epoch = this.#epoch;
      withDeadline(subscriber.ping(), this.#options.commandTimeoutMs, null).catch((error: unknown) => {
        if (this.#epoch === epoch && !this.#closed) {
          this.#subscriptionLost(`subscriber connection not answering (${describeError(error)})`);
          this.#recycleSubscriber();
        }
      });
    }
    try {
      await this.#heartbeat();
      if (this.#beats % PRUNE_EVERY_BEATS === 0) {
        await this.#run(PRUNE_SCRIPT, [this.#keys.revocations, this.#keys.expiries], [String(now), String(PRUNE_BATCH)]);
      }
    } catch {
      // Reported through health() by #command; the next beat retries.
    }
  }

  /** Registers this instance as live (while it serves requests) and checks the subscription kept up. */
  async #heartbeat(): Promise<void> {
    const serving = this.revocations.current() === this.#set;
    const reply = serving
      ? await this.#run(HEARTBEAT_SCRIPT, [this.#keys.instances, this.#keys.version], [this.instanceId, String(INSTANCE_TTL_MS)])
      : null;
    if (reply === null) return;
    const now = Date.now();
    const probe = this.#versionProbe;
    // Everything published before the previous probe has had at least half a beat to arrive.
    if (probe !== null && now - probe.at >= HEARTBEAT_INTERVAL_MS / 2 && this.#trusted && this.#loading === null && probe.version > this.#lastPushedVersion) {
      this.#subscriptionLost(`subscription silent (Redis was at version ${probe.version}, applied ${this.#lastPushedVersion})`);
      void this.#reload();
    }
    this.#versionProbe = { version: Number(reply), at: now };
  }

  // ---- commands ---------------------------------------------------------------------------

  async #readState(): Promise<LoadedState> {
    const reply = await this.#run(LOAD_STATE_SCRIPT, [this.#keys.revocations, this.#keys.partners, this.#keys.version], []);
    if (!Array.isArray(reply) || reply.length !== 3 || !Array.isArray(reply[1]) || !Array.isArray(reply[2])) {
      throw new RedisStateError('state: unexpected reply to the state load');
    }
    const version = Number(reply[0]);
    const revocations: Revocation[] = [];
    const fields = reply[1] as unknown[];
    for (let index = 0; index + 1 < fields.length; index += 2) revocations.push(this.#readRevocation(String(fields[index]), String(fields[index + 1])));
    const partners: PartnerStatusChange[] = [];
    const partnerFields = reply[2] as unknown[];
    for (let index = 0; index + 1 < partnerFields.length; index += 2) partners.push(this.#readPartner(String(partnerFields[index]), String(partnerFields[index + 1])));
    return { version, revocations, partners };
  }

  /** An unreadable entry still revokes what its field names (fail closed), and is logged. */
  #readRevocation(field: string, value: string): Revocation {
    try {
      const entry = validRevocation(JSON.parse(value) as Revocation);
      if (revocationField(entry.kind, entry.key) === field) return entry;
    } catch {
      // handled below
    }
    const separator = field.indexOf(':');
    const kind = separator < 0 ? '' : field.slice(0, separator);
    log('error', 'state.redis.entry_unreadable', { instance: this.instanceId, hash: 'revocations', field });
    return {
      kind: KINDS.has(kind) ? (kind as RevocationKind) : 'credential',
      key: KINDS.has(kind) ? field.slice(separator + 1) : field,
      reason: 'unreadable revocation entry in Redis',
      actor: UNKNOWN_ACTOR,
      at: 0,
      expiresAt: null,
    };
  }

  /** An unreadable status is read as `suspended` (fail closed), and logged. */
  #readPartner(field: string, value: string): PartnerStatusChange {
    try {
      const entry = validPartnerStatus(JSON.parse(value) as PartnerStatusChange);
      if (entry.partnerId === field) return entry;
    } catch {
      // handled below
    }
    log('error', 'state.redis.entry_unreadable', { instance: this.instanceId, hash: 'partners', field });
    return { partnerId: field, status: 'suspended', reason: 'unreadable partner status entry in Redis', actor: UNKNOWN_ACTOR, at: 0 };
  }

  /** EVALSHA, and EVAL when the server does not have the script (restart, failover, new cluster node). */
  #run(script: RedisScript, keys: string[], args: string[], quiet = false): Promise<unknown> {
    const options = { keys, arguments: args };
    return this.#command(async (commands) => {
      try {
        return await commands.evalSha(script.sha1, options);
      } catch (error) {
        if (error instanceof Error && error.message.startsWith('NOSCRIPT')) return commands.eval(script.source, options);
        throw error;
      }
    }, quiet);
  }

  /**
   * Runs one command with a reply deadline of commandTimeoutMs; a failure or timeout rejects with
   * RedisStateError (the caller answers 503) and shows in health(). `quiet`: background work
   * whose failure says nothing new about the connection.
   */
  async #command<T>(send: (commands: CommandConnection) => Promise<T>, quiet = false): Promise<T> {
    const commands = this.#commands;
    try {
      const result = await withDeadline(send(commands), this.#options.commandTimeoutMs, null);
      if (commands === this.#commands) {
        this.#consecutiveTimeouts = 0;
        this.#commandsUp();
      }
      return result;
    } catch (error) {
      const timedOut = error instanceof DeadlineError || error instanceof TimeoutError;
      const reason = timedOut ? `no answer within ${this.#options.commandTimeoutMs} ms` : describeError(error);
      // A reply error (wrong type, script error) is not a connection problem.
      if (!(error instanceof ErrorReply) && !quiet && commands === this.#commands) {
        this.#commandsDown(reason);
        if (timedOut && ++this.#consecutiveTimeouts >= COMMAND_TIMEOUTS_BEFORE_RECONNECT) this.#recycleCommands();
      }
      throw new RedisStateError(`state: Redis command failed: ${reason}`, { cause: error });
    }
  }

  #requireOpen(): void {
    if (this.#closed) throw new RedisStateError('state store is closed');
  }
}

// ---- connections ----------------------------------------------------------------------------

function createConnections(options: RedisStoreOptions, instanceId: string): Connections {
  const socket = (): { connectTimeout: number; reconnectStrategy: (retries: number) => number } => ({
    connectTimeout: options.connectTimeoutMs,
    // Never give up: the store reports itself unavailable meanwhile; jitter spreads reconnects of many instances.
    reconnectStrategy: (retries: number) => Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** retries) + Math.floor(Math.random() * RECONNECT_MIN_MS),
  });
  const commandOptions = { timeout: options.commandTimeoutMs };
  const name = (role: string): string => `portcullis-${role}-${instanceId}`.replace(/[^A-Za-z0-9._:-]/g, '_').slice(0, 128);

  switch (options.mode) {
    case 'single': {
      const url = options.url!;
      // Commands fail at once while disconnected (the caller answers 503) instead of queueing.
      return {
        createCommands: () =>
          createClient({ url, name: name('cmd'), socket: socket(), disableOfflineQueue: true, commandOptions }) as unknown as CommandConnection,
        createSubscriber: () =>
          createClient({ url, name: name('sub'), socket: socket(), disableOfflineQueue: true, commandOptions }) as unknown as SubscriberConnection,
        exactSubscriberEvents: true,
        target: redactedTarget(url),
      };
    }
    case 'sentinel': {
      const sentinel = options.sentinel!;
      // The url, when set, carries the data nodes' credentials, database and TLS (its host is not used).
      const { auth, tls } = options.url === null ? { auth: {}, tls: false } : connectionAuth(options.url);
      const make = (role: string) =>
        createSentinel({
          name: sentinel.name,
          sentinelRootNodes: sentinel.nodes.map((node) => ({ host: node.host, port: node.port })),
          nodeClientOptions: { ...auth, name: name(role), socket: { ...socket(), ...(tls ? { tls: true as const } : {}) }, disableOfflineQueue: true },
          sentinelClientOptions: { socket: socket() },
          commandOptions,
          masterPoolSize: 1,
          passthroughClientErrorEvents: true,
        });
      return {
        createCommands: () => make('cmd') as unknown as CommandConnection,
        createSubscriber: () => make('sub') as unknown as SubscriberConnection,
        exactSubscriberEvents: false,
        target: `${sentinel.name}@${sentinel.nodes.map((node) => `${node.host}:${node.port}`).join(',')}`,
      };
    }
    case 'cluster': {
      // Discovered nodes get `defaults` only: credentials and TLS of the first root node's url.
      const { auth, tls } = connectionAuth(options.clusterNodes[0]!);
      const make = (role: string, minimizeConnections: boolean) =>
        createCluster({
          rootNodes: options.clusterNodes.map((url) => ({ url })),
          defaults: { ...auth, name: name(role), socket: { ...socket(), ...(tls ? { tls: true as const } : {}) }, disableOfflineQueue: true },
          commandOptions,
          minimizeConnections,
        });
      return {
        createCommands: () => make('cmd', false) as unknown as CommandConnection,
        createSubscriber: () => make('sub', true) as unknown as SubscriberConnection,
        exactSubscriberEvents: false,
        target: options.clusterNodes.map(redactedTarget).join(','),
      };
    }
  }
}

/** Credentials, database and TLS of a redis:// or rediss:// URL, for Sentinel and Cluster node clients. */
function connectionAuth(url: string): { auth: { username?: string; password?: string; database?: number }; tls: boolean } {
  const parsed = new URL(url);
  const auth: { username?: string; password?: string; database?: number } = {};
  if (parsed.username !== '') auth.username = decodeURIComponent(parsed.username);
  if (parsed.password !== '') auth.password = decodeURIComponent(parsed.password);
  const database = parsed.pathname.replace(/^\//, '');
  if (database !== '') auth.database = Number(database);
  return { auth, tls: parsed.protocol === 'rediss:' };
}

/** host:port of a URL, for logs and health (never the credentials). */
function redactedTarget(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}`;
  } catch {
    return '(invalid url)';
  }
}

/** Graceful close (pending replies arrive first), or `destroy` at once; never throws. */
async function closeConnection(connection: { close(): Promise<void>; destroy(): unknown }, immediately = false): Promise<void> {
  try {
    if (immediately) await connection.destroy();
    else await connection.close();
  } catch {
    try {
      await connection.destroy();
    } catch {
      // Already closed, or never connected.
    }
  }
}

function validateOptions(options: RedisStoreOptions): void {
  if (typeof options !== 'object' || options === null) throw new TypeError('redis state: options must be an object');
  if (options.mode === 'single') {
    if (typeof options.url !== 'string' || !/^rediss?:\/\//.test(options.url)) throw new TypeError('redis state: single mode needs a redis:// or rediss:// url');
  } else if (options.mode === 'sentinel') {
    if (options.sentinel === null || options.sentinel.nodes.length === 0) throw new TypeError('redis state: sentinel mode needs sentinel.name and sentinel nodes');
  } else if (options.mode === 'cluster') {
    if (options.clusterNodes.length === 0) throw new TypeError('redis state: cluster mode needs cluster nodes');
  } else {
    throw new TypeError(`redis state: unknown mode ${JSON.stringify((options as { mode: unknown }).mode)}`);
  }
  if (typeof options.keyPrefix !== 'string') throw new TypeError('redis state: keyPrefix must be a string');
  for (const [name, value] of [['connectTimeoutMs', options.connectTimeoutMs], ['commandTimeoutMs', options.commandTimeoutMs]] as const) {
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw new TypeError(`redis state: ${name} must be a positive number`);
  }
  if (typeof options.propagationTimeoutMs !== 'number' || !Number.isFinite(options.propagationTimeoutMs) || options.propagationTimeoutMs < 0) {
    throw new TypeError('redis state: propagationTimeoutMs must be a number ≥ 0');
  }
  const grace = options.serveLastKnownForMs;
  if (grace !== null && (typeof grace !== 'number' || !Number.isFinite(grace) || grace < 0)) {
    throw new TypeError('redis state: serveLastKnownForMs must be null or a number ≥ 0');
  }
  if (options.instanceId !== undefined) requireText(options.instanceId, 'instanceId');
}

// ---- keys -----------------------------------------------------------------------------------

/**
 * Every key and channel starts with the prefix. The revocation keys share one hash tag, so the
 * change and load scripts touch one Cluster slot; counters and cache keys each live alone.
 */
function stateKeys(prefix: string) {
  const tagged = `${prefix}{state}`;
  return {
    revocations: `${tagged}:revocations`,
    partners: `${tagged}:partners`,
    version: `${tagged}:version`,
    instances: `${tagged}:instances`,
    expiries: `${tagged}:revocation-expiries`,
    events: `${prefix}events`,
    acks: `${prefix}acks`,
    gcra: (key: string): string => `${prefix}gcra:${key}`,
    quota: (key: string, windowEndMs: number): string => `${prefix}quota:${windowEndMs}:${key}`,
    kv: (key: string): string => `${prefix}kv:${key}`,
  };
}

/** Kinds contain no ':', so the first ':' separates kind and key. */
function revocationField(kind: RevocationKind, key: string): string {
  return `${kind}:${key}`;
}

// ---- replies and messages -------------------------------------------------------------------

function integers(reply: unknown, count: number, what: string): number[] {
  if (!Array.isArray(reply) || reply.length !== count) throw new RedisStateError(`state: unexpected reply to ${what}`);
  return reply.map((value) => {
    const number = Number(value);
    if (!Number.isSafeInteger(number)) throw new RedisStateError(`state: unexpected reply to ${what}`);
    return number;
  });
}

function parseChangeReply(reply: unknown): [boolean, number, string[]] {
  if (!Array.isArray(reply) || reply.length !== 3 || !Array.isArray(reply[2])) throw new RedisStateError('state: unexpected reply to a change');
  return [Number(reply[0]) === 1, Number(reply[1]), (reply[2] as unknown[]).map(String)];
}

function parseEnvelope(message: string): Envelope | null {
  try {
    const parsed = JSON.parse(message) as { v?: unknown; id?: unknown; origin?: unknown; event?: unknown };
    if (!Number.isSafeInteger(parsed.v) || typeof parsed.id !== 'string' || typeof parsed.origin !== 'string') return null;
    const event = validEvent(parsed.event);
    return event === null ? null : { v: parsed.v as number, id: parsed.id, origin: parsed.origin, event };
  } catch {
    return null;
  }
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function describeError(error: unknown): string {
  if (error instanceof Error) return error.message || error.constructor.name;
  return String(error);
}

class DeadlineError extends Error {}

/** The promise, or a rejection after `ms` (DeadlineError, or RedisStateError with `message`); a late outcome is ignored. */
function withDeadline<T>(promise: Promise<T>, ms: number, message: string | null): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  promise.catch(() => undefined);
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(message === null ? new DeadlineError(`no answer within ${ms} ms`) : new RedisStateError(message)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

// ---- input validation (the same rules as the embedded driver) -------------------------------

