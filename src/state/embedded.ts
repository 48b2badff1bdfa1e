/**
 * The embedded state driver (DESIGN.md "state", the default): one `node:sqlite` file in the data
 * folder, shared by every process on the host — the workers of `portcullis serve --workers N`
 * and the CLI — each through its own connection.
 *
 * Correct under several processes at once:
 * - counters (GCRA, quotas) read and write inside `BEGIN IMMEDIATE`, which takes the write lock
 *   before the read, so two processes can never both act on the same old value;
 * - `setIfAbsent` is one `INSERT … ON CONFLICT DO UPDATE … WHERE expired` statement;
 * - revocations reach the other processes through `PRAGMA data_version`, which changes for a
 *   connection exactly when another connection committed (https://sqlite.org/pragma.html#pragma_data_version).
 *   `revocations.current()` checks it once per request (one prepared statement, a few µs), so a
 *   revocation made by another worker or the CLI bites on the next request, without polling;
 *   a 250 ms timer runs the same check so subscribers hear of changes while no request comes.
 *   A moved data_version then costs one indexed probe of `revocation_log` (the change may have
 *   been a counter), and only new events are read and applied, in commit order.
 *
 * Durability: WAL with `synchronous = NORMAL` survives a crash of the process (a commit is in the
 * WAL, in the OS, before the call returns), which is the bar for counters and replay caches. A
 * revocation or partner status change is committed with `synchronous = FULL` (the WAL is fsynced
 * at commit), so it survives a power loss too: revocations are rare and must never come back.
 *
 * The database is synchronous: a call blocks the event loop for as long as SQLite works, and at
 * most `BUSY_TIMEOUT_MS` while another process holds the write lock (each write transaction is a
 * few statements, so waits are normally microseconds).
 */
import { StateEventFanout } from './event-fanout.ts';
import { validEvent, diffEvents, requireText, requireKind, requireTime, requireTtl, validRevocation, validPartnerStatus } from './validate.ts';
import { randomUUID } from 'node:crypto';
import { chmod, mkdir, open as openFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import type { StatementSync } from 'node:sqlite';
import { log } from '../log.ts';
import { gcraStep } from './gcra.ts';
import { MemoryRevocationSet } from './revocation-set.ts';
import { migrate } from './sqlite-schema.ts';
import type {
  GcraLimit,
  GcraResult,
  PartnerStatus,
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

export interface EmbeddedStoreOptions {
  /** The SQLite file; its folder is created (0700) when missing. */
  readonly path: string;
  /** Part of the common driver settings; here every change is applied before the call returns, so nothing waits. */
  readonly propagationTimeoutMs: number;
  readonly instanceId?: string;
}

const FOLDER_MODE = 0o700;
const FILE_MODE = 0o600;
const BUSY_TIMEOUT_MS = 5000;
const SQLITE_BUSY = 5;
/** How often subscribers hear of other processes' changes while no request calls `current()`. */
const CHECK_INTERVAL_MS = 250;
/** How often expired rows (counters, replay keys, token revocations, old log events) are deleted. */
const SWEEP_INTERVAL_MS = 60_000;
/** A process further behind than this reloads the tables instead of reading the log. */
const LOG_RETENTION_MS = 10 * 60_000;
/** A quota window is deleted this long after its end: callers whose clocks lag a little still find it. */
const QUOTA_GRACE_MS = 60_000;
/** Keeps the WAL file from staying large after a burst of writes (bytes kept after a checkpoint). */
const WAL_SIZE_LIMIT_BYTES = 4 * 1024 * 1024;

const CLOSED_VIEW = Object.freeze({ unavailable: 'state store is closed' });

export async function openEmbeddedStore(options: EmbeddedStoreOptions): Promise<StateStore> {
  if (typeof options.path !== 'string' || options.path === '' || options.path === ':memory:') {
    throw new TypeError('embedded state: path must name a file');
  }
  if (typeof options.propagationTimeoutMs !== 'number' || !(options.propagationTimeoutMs > 0)) {
    throw new TypeError('embedded state: propagationTimeoutMs must be a positive number');
  }
  if (options.instanceId !== undefined) requireText(options.instanceId, 'instanceId');
  await prepareFiles(options.path);
  const db = new DatabaseSync(options.path, { timeout: BUSY_TIMEOUT_MS, enableForeignKeyConstraints: true });
  try {
    const mode = await enableWal(db);
    if (mode !== 'wal') throw new Error(`state database ${options.path}: cannot use WAL (journal_mode is ${mode})`);
    db.exec(`PRAGMA synchronous = NORMAL; PRAGMA journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`);
    migrate(db, options.path);
    return new EmbeddedStateStore(db, options.path, options.instanceId ?? randomUUID());
  } catch (error) {
    db.close();
    throw error;
  }
}

/**
 * WAL is persistent in the file: a process that finds it set changes nothing. Switching a new
 * file to WAL needs an exclusive lock, and SQLite answers SQLITE_BUSY at once, without its busy
 * handler, when another process holds a lock at that moment (two workers starting together on a
 * new file), so the switch is retried here for as long as the busy timeout would have waited.
 */
async function enableWal(db: DatabaseSync): Promise<string> {
  const deadline = Date.now() + BUSY_TIMEOUT_MS;
  for (let delayMs = 5; ; delayMs = Math.min(delayMs * 2, 100)) {
    try {
      return (db.prepare('PRAGMA journal_mode = WAL').get() as { journal_mode: string }).journal_mode;
    } catch (error) {
      if (((error as { errcode?: number }).errcode ?? 0) % 256 !== SQLITE_BUSY || Date.now() + delayMs > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}

/**
 * The file is created 0600 before SQLite opens it: SQLite gives the `-wal` and `-shm` files the
 * database file's mode, so all three stay private. Existing files that are readable by others
 * (revocations name partners and credentials) are tightened.
 */
async function prepareFiles(path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: FOLDER_MODE });
  const handle = await openFile(path, 'a', FILE_MODE);
  await handle.close();
  for (const file of [path, `${path}-wal`, `${path}-shm`]) {
    let mode: number;
    try {
      mode = (await stat(file)).mode;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw error;
    }
    if ((mode & 0o077) !== 0) await chmod(file, FILE_MODE);
  }
}

interface Statements {
  readonly dataVersion: StatementSync;
  readonly beginRead: StatementSync;
  readonly beginImmediate: StatementSync;
  readonly commit: StatementSync;
  readonly rollback: StatementSync;
  readonly synchronousFull: StatementSync;
  readonly synchronousNormal: StatementSync;
  readonly logProbe: StatementSync;
  readonly logAfter: StatementSync;
  readonly logFloor: StatementSync;
  readonly logMaxSeq: StatementSync;
  readonly logInsert: StatementSync;
  readonly revocationsLive: StatementSync;
  readonly revocationUpsert: StatementSync;
  readonly revocationDelete: StatementSync;
  readonly partnersAll: StatementSync;
  readonly partnerUpsert: StatementSync;
  readonly partnerDelete: StatementSync;
  readonly gcraRead: StatementSync;
  readonly gcraWrite: StatementSync;
  readonly quotaRead: StatementSync;
  readonly quotaWrite: StatementSync;
  readonly kvGet: StatementSync;
  readonly kvSet: StatementSync;
  readonly kvSetIfAbsent: StatementSync;
  readonly kvDelete: StatementSync;
  readonly sweepGcra: StatementSync;
  readonly sweepKv: StatementSync;
  readonly sweepQuota: StatementSync;
  readonly sweepRevocations: StatementSync;
  readonly sweepLogFloor: StatementSync;
  readonly sweepLog: StatementSync;
  readonly setLogFloor: StatementSync;
}

function prepareStatements(db: DatabaseSync): Statements {
  const dataVersion = db.prepare('PRAGMA data_version');
  // An array is cheaper to build than an object, on the one statement run on every request.
  dataVersion.setReturnArrays(true);
  return {
    dataVersion,
    beginRead: db.prepare('BEGIN'),
    beginImmediate: db.prepare('BEGIN IMMEDIATE'),
    commit: db.prepare('COMMIT'),
    rollback: db.prepare('ROLLBACK'),
    synchronousFull: db.prepare('PRAGMA synchronous = FULL'),
    synchronousNormal: db.prepare('PRAGMA synchronous = NORMAL'),
    logProbe: db.prepare('SELECT seq FROM revocation_log WHERE seq > ? LIMIT 1'),
    logAfter: db.prepare('SELECT seq, event FROM revocation_log WHERE seq > ? ORDER BY seq'),
    logFloor: db.prepare("SELECT value FROM meta WHERE name = 'log_floor'"),
    logMaxSeq: db.prepare('SELECT coalesce(max(seq), 0) AS seq FROM revocation_log'),
    logInsert: db.prepare('INSERT INTO revocation_log (at, event) VALUES (?, ?) RETURNING seq'),
    revocationsLive: db.prepare(
      'SELECT kind, key, reason, actor, at, expires_at FROM revocations WHERE expires_at IS NULL OR expires_at > ? ORDER BY at, kind, key',
    ),
    revocationUpsert: db.prepare(
      `INSERT INTO revocations (kind, key, reason, actor, at, expires_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (kind, key) DO UPDATE SET reason = excluded.reason, actor = excluded.actor, at = excluded.at, expires_at = excluded.expires_at`,
    ),
    revocationDelete: db.prepare('DELETE FROM revocations WHERE kind = ? AND key = ? RETURNING kind'),
    partnersAll: db.prepare('SELECT partner_id, status, reason, actor, at FROM partner_status ORDER BY at, partner_id'),
    partnerUpsert: db.prepare(
      `INSERT INTO partner_status (partner_id, status, reason, actor, at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (partner_id) DO UPDATE SET status = excluded.status, reason = excluded.reason, actor = excluded.actor, at = excluded.at`,
    ),
    partnerDelete: db.prepare('DELETE FROM partner_status WHERE partner_id = ? RETURNING partner_id'),
    gcraRead: db.prepare('SELECT tat FROM gcra WHERE key = ?'),
    gcraWrite: db.prepare('INSERT INTO gcra (key, tat) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET tat = excluded.tat'),
    quotaRead: db.prepare('SELECT used FROM quota WHERE key = ? AND window_end = ?'),
    quotaWrite: db.prepare(
      'INSERT INTO quota (key, window_end, used) VALUES (?, ?, ?) ON CONFLICT (key, window_end) DO UPDATE SET used = excluded.used',
    ),
    kvGet: db.prepare('SELECT value FROM kv WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)'),
    kvSet: db.prepare(
      'INSERT INTO kv (key, value, expires_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at',
    ),
    // An expired key counts as absent: the upsert takes it over; a live one makes the statement change nothing.
    kvSetIfAbsent: db.prepare(
      `INSERT INTO kv (key, value, expires_at) VALUES (?, '1', ?)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
       WHERE kv.expires_at IS NOT NULL AND kv.expires_at <= ?`,
    ),
    kvDelete: db.prepare('DELETE FROM kv WHERE key = ?'),
    sweepGcra: db.prepare('DELETE FROM gcra WHERE tat < ?'),
    sweepKv: db.prepare('DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ?'),
    sweepQuota: db.prepare('DELETE FROM quota WHERE window_end <= ?'),
    sweepRevocations: db.prepare('DELETE FROM revocations WHERE expires_at IS NOT NULL AND expires_at <= ?'),
    // The newest event always stays: it carries the highest sequence number.
    sweepLogFloor: db.prepare('SELECT max(seq) AS seq FROM revocation_log WHERE at < ? AND seq < (SELECT max(seq) FROM revocation_log)'),
    sweepLog: db.prepare('DELETE FROM revocation_log WHERE seq <= ?'),
    setLogFloor: db.prepare("UPDATE meta SET value = max(value, ?) WHERE name = 'log_floor'"),
  };
}

/** What a process has not applied yet: the new log events, or (behind the pruned log) the whole tables. */
type Delta =
  | { readonly events: readonly StateEvent[]; readonly lastSeq: number }
  | { readonly reload: { revocations: Revocation[]; partners: PartnerStatusChange[] }; readonly lastSeq: number };

class EmbeddedStateStore implements StateStore {
  readonly driver = 'embedded' as const;
  readonly instanceId: string;
  readonly revocations: RevocationView;

  readonly #path: string;
  #db: DatabaseSync | null;
  readonly #sql: Statements;
  readonly #set = new MemoryRevocationSet();
  readonly #events = new StateEventFanout();
  /** data_version when this process last caught up; NaN forces the next check. */
  #dataVersion = Number.NaN;
  /** The last revocation_log event applied to the set. */
  #lastSeq = 0;
  #syncError: string | null = null;
  readonly #checkTimer: NodeJS.Timeout;
  readonly #sweepTimer: NodeJS.Timeout;

  constructor(db: DatabaseSync, path: string, instanceId: string) {
    this.#db = db;
    this.#path = path;
    this.instanceId = instanceId;
    this.#sql = prepareStatements(db);
    this.#sweep();
    const now = Date.now();
    const { delta, dataVersion } = this.#inTransaction(this.#sql.beginRead, () => ({ delta: this.#readAll(now), dataVersion: this.#readDataVersion() }));
    this.#applyDelta(delta, now);
    this.#dataVersion = dataVersion;
    this.revocations = { current: () => this.#current() };
    this.#checkTimer = setInterval(() => this.#current(), CHECK_INTERVAL_MS).unref();
    this.#sweepTimer = setInterval(() => this.#sweep(), SWEEP_INTERVAL_MS).unref();
  }

  async revoke(revocation: Revocation): Promise<Propagation> {
    const started = performance.now();
    this.#requireOpen();
    const entry = validRevocation(revocation);
    this.#change(() => {
      this.#sql.revocationUpsert.run(entry.kind, entry.key, entry.reason, entry.actor, entry.at, entry.expiresAt);
      return { type: 'revoked', revocation: entry };
    });
    return propagation(started);
  }

  async unrevoke(kind: RevocationKind, key: string, actor: string): Promise<{ removed: boolean; propagation: Propagation }> {
    const started = performance.now();
    this.#requireOpen();
    requireKind(kind);
    requireText(key, 'key');
    requireText(actor, 'actor');
    const removed = this.#change((now) => {
      if (this.#sql.revocationDelete.get(kind, key) === undefined) return null;
      return { type: 'unrevoked', kind, key, actor, at: now };
    });
    return { removed, propagation: propagation(started) };
  }

  async setPartnerStatus(partnerId: string, change: PartnerStatusChange | null, actor: string): Promise<Propagation> {
    const started = performance.now();
    this.#requireOpen();
    requireText(partnerId, 'partnerId');
    requireText(actor, 'actor');
    const entry = change === null ? null : validPartnerStatus(change);
    if (entry !== null && entry.partnerId !== partnerId) throw new TypeError(`state: change.partnerId ${JSON.stringify(entry.partnerId)} is not ${JSON.stringify(partnerId)}`);
    this.#change((now) => {
      if (entry !== null) {
        this.#sql.partnerUpsert.run(entry.partnerId, entry.status, entry.reason, entry.actor, entry.at);
        return { type: 'partner_status', partnerId, change: entry, actor, at: entry.at };
      }
      // Resuming a partner that has no override changes nothing, so no event.
      if (this.#sql.partnerDelete.get(partnerId) === undefined) return null;
      return { type: 'partner_status', partnerId, change: null, actor, at: now };
    });
    return propagation(started);
  }

  async list(): Promise<{ revocations: Revocation[]; partners: PartnerStatusChange[] }> {
    this.#requireOpen();
    const now = Date.now();
    return this.#inTransaction(this.#sql.beginRead, () => this.#readTables(now));
  }

  async gcra(key: string, limit: GcraLimit, nowMs: number = Date.now()): Promise<GcraResult> {
    this.#requireOpen();
    requireText(key, 'key');
    if (typeof limit !== 'object' || limit === null) throw new TypeError('state: limit must be an object');
    if (typeof limit.emissionIntervalMs !== 'number' || !Number.isFinite(limit.emissionIntervalMs) || limit.emissionIntervalMs <= 0) {
      throw new TypeError('state: limit.emissionIntervalMs must be a positive number');
    }
    if (!Number.isSafeInteger(limit.burst) || limit.burst < 0) throw new TypeError('state: limit.burst must be an integer ≥ 0');
    requireTime(nowMs, 'nowMs');
    return this.#inTransaction(this.#sql.beginImmediate, () => {
      const row = this.#sql.gcraRead.get(key) as { tat: number } | undefined;
      const { result, newTat } = gcraStep(row === undefined ? null : row.tat, nowMs, limit);
      if (newTat !== null) this.#sql.gcraWrite.run(key, newTat);
      return result;
    });
  }

  async quota(key: string, limit: number, windowEndMs: number, nowMs: number = Date.now()): Promise<QuotaResult> {
    this.#requireOpen();
    requireText(key, 'key');
    if (!Number.isSafeInteger(limit) || limit < 0) throw new TypeError('state: quota limit must be an integer ≥ 0');
    if (!Number.isSafeInteger(windowEndMs) || windowEndMs < 0) throw new TypeError('state: windowEndMs must be an integer (ms since the epoch)');
    // The window is named by its end; nowMs only has to be a time (old windows are swept by wall clock).
    requireTime(nowMs, 'nowMs');
    return this.#inTransaction(this.#sql.beginImmediate, () => {
      const row = this.#sql.quotaRead.get(key, windowEndMs) as { used: number } | undefined;
      const used = row === undefined ? 0 : row.used;
      if (used >= limit) return { allowed: false, used, limit, resetAt: windowEndMs };
      this.#sql.quotaWrite.run(key, windowEndMs, used + 1);
      return { allowed: true, used: used + 1, limit, resetAt: windowEndMs };
    });
  }

  async setIfAbsent(key: string, ttlMs: number): Promise<boolean> {
    this.#requireOpen();
    requireText(key, 'key');
    requireTtl(ttlMs);
    const now = Date.now();
    const { changes } = this.#sql.kvSetIfAbsent.run(key, expiry(now, ttlMs), now);
    return Number(changes) === 1;
  }

  async get(key: string): Promise<string | null> {
    this.#requireOpen();
    requireText(key, 'key');
    const row = this.#sql.kvGet.get(key, Date.now()) as { value: string } | undefined;
    return row === undefined ? null : row.value;
  }

  async set(key: string, value: string, ttlMs: number | null): Promise<void> {
    this.#requireOpen();
    requireText(key, 'key');
    if (typeof value !== 'string') throw new TypeError('state: value must be a string');
    if (ttlMs !== null) requireTtl(ttlMs);
    this.#sql.kvSet.run(key, value, ttlMs === null ? null : expiry(Date.now(), ttlMs));
  }

  async delete(key: string): Promise<void> {
    this.#requireOpen();
    requireText(key, 'key');
    this.#sql.kvDelete.run(key);
  }

  subscribe(listener: (event: StateEvent) => void): () => void {
    this.#requireOpen();
    return this.#events.subscribe(listener);
  }

  health(): StoreHealth {
    if (this.#db === null) return { ok: false, detail: 'closed' };
    if (this.#syncError !== null) return { ok: false, detail: `sqlite ${this.#path}: ${this.#syncError}` };
    return { ok: true, detail: `sqlite ${this.#path}` };
  }

  async close(): Promise<void> {
    const db = this.#db;
    if (db === null) return;
    this.#db = null;
    clearInterval(this.#checkTimer);
    clearInterval(this.#sweepTimer);
    this.#events.clear();
    db.close();
  }

  #requireOpen(): DatabaseSync {
    if (this.#db === null) throw new Error('state store is closed');
    return this.#db;
  }

  /** The request path: one pragma when nothing changed; new events applied (and published) when something did. */
  #current(): RevocationSet | { readonly unavailable: string } {
    if (this.#db === null) return CLOSED_VIEW;
    try {
      const dataVersion = this.#readDataVersion();
      if (dataVersion !== this.#dataVersion) {
        // Read after data_version: a commit in between is either seen here or moves data_version again.
        if (this.#sql.logProbe.get(this.#lastSeq) !== undefined) {
          const now = Date.now();
          const delta = this.#inTransaction(this.#sql.beginRead, () => this.#readDelta(now));
          this.#applyDelta(delta, now);
        }
        this.#dataVersion = dataVersion;
      }
      if (this.#syncError !== null) {
        log('info', 'state.sync_recovered', { driver: 'embedded' });
        this.#syncError = null;
      }
      return this.#set;
    } catch (error) {
      // Fail closed: when the file cannot be read, nobody can tell whether something was revoked.
      const message = error instanceof Error ? error.message : String(error);
      if (this.#syncError === null) log('error', 'state.sync_failed', { driver: 'embedded', error: message });
      this.#syncError = message;
      return { unavailable: `state database unreadable: ${message}` };
    }
  }

  #readDataVersion(): number {
    return (this.#sql.dataVersion.get() as unknown as [number])[0];
  }

  /**
   * One revocation-side change, committed durably with its log event. The events other processes
   * committed before it are read in the same transaction and applied first, so this process
   * applies every event exactly once, in commit order. Returns whether anything changed.
   */
  #change(mutate: (now: number) => StateEvent | null): boolean {
    const now = Date.now();
    this.#sql.synchronousFull.run();
    let committed: { delta: Delta; dataVersion: number; own: { event: StateEvent; seq: number } | null };
    try {
      committed = this.#inTransaction(this.#sql.beginImmediate, () => {
        const dataVersion = this.#readDataVersion();
        const delta = this.#readDelta(now);
        const event = mutate(now);
        if (event === null) return { delta, dataVersion, own: null };
        const { seq } = this.#sql.logInsert.get(now, JSON.stringify(event)) as { seq: number };
        return { delta, dataVersion, own: { event, seq } };
      });
    } finally {
      this.#sql.synchronousNormal.run();
    }
    const { delta, dataVersion, own } = committed;
    this.#applyDelta(delta, now);
    if (own !== null) this.#applyDelta({ events: [own.event], lastSeq: own.seq }, now);
    // Our own commit leaves our data_version unchanged, so the next check does not re-read it.
    this.#dataVersion = dataVersion;
    return own !== null;
  }

  /** Must run inside a transaction (one snapshot for the floor and the events). */
  #readDelta(now: number): Delta {
    const floor = (this.#sql.logFloor.get() as { value: number }).value;
    if (floor > this.#lastSeq) return this.#readAll(now);
    const rows = this.#sql.logAfter.all(this.#lastSeq) as { seq: number; event: string }[];
    const events: StateEvent[] = [];
    for (const row of rows) {
      const event = parseEvent(row.event);
      if (event === null) {
        log('warn', 'state.log_event_unreadable', { driver: 'embedded', seq: row.seq });
        return this.#readAll(now);
      }
      events.push(event);
    }
    return { events, lastSeq: rows.length === 0 ? this.#lastSeq : rows[rows.length - 1]!.seq };
  }

  /** Must run inside a transaction. */
  #readAll(now: number): Delta {
    const lastSeq = (this.#sql.logMaxSeq.get() as { seq: number }).seq;
    return { reload: this.#readTables(now), lastSeq };
  }

  #readTables(now: number): { revocations: Revocation[]; partners: PartnerStatusChange[] } {
    const revocations = (this.#sql.revocationsLive.all(now) as unknown as RevocationRow[]).map(
      (row): Revocation => ({ kind: row.kind, key: row.key, reason: row.reason, actor: row.actor, at: row.at, expiresAt: row.expires_at }),
    );
    const partners = (this.#sql.partnersAll.all() as unknown as PartnerRow[]).map(
      (row): PartnerStatusChange => ({ partnerId: row.partner_id, status: row.status, reason: row.reason, actor: row.actor, at: row.at }),
    );
    return { revocations, partners };
  }

  #applyDelta(delta: Delta, now: number): void {
    let events: readonly StateEvent[];
    if ('events' in delta) {
      events = delta.events;
      for (const event of events) this.#set.apply(event);
    } else {
      // Entries that expired on their own are not changes: drop them before comparing.
      this.#set.prune(now);
      events = diffEvents(this.#set.entries(), delta.reload, now);
      this.#set.replace(delta.reload.revocations, delta.reload.partners);
    }
    this.#lastSeq = delta.lastSeq;
    this.#events.emit(events);
  }

  #inTransaction<T>(begin: StatementSync, work: () => T): T {
    const db = this.#requireOpen();
    begin.run();
    try {
      const result = work();
      this.#sql.commit.run();
      return result;
    } catch (error) {
      if (db.isTransaction) this.#sql.rollback.run();
      throw error;
    }
  }

  /** Deletes what has expired, by wall clock. Best effort: a failure is logged and retried next time. */
  #sweep(): void {
    if (this.#db === null) return;
    const now = Date.now();
    try {
      this.#inTransaction(this.#sql.beginImmediate, () => {
        this.#sql.sweepGcra.run(now);
        this.#sql.sweepKv.run(now);
        this.#sql.sweepQuota.run(now - QUOTA_GRACE_MS);
        // Not logged as events: every process forgets them by the same rule (`prune` below).
        this.#sql.sweepRevocations.run(now);
        const floor = (this.#sql.sweepLogFloor.get(now - LOG_RETENTION_MS) as { seq: number | null }).seq;
        if (floor !== null) {
          this.#sql.sweepLog.run(floor);
          this.#sql.setLogFloor.run(floor);
        }
      });
      this.#set.prune(now);
    } catch (error) {
      log('warn', 'state.sweep_failed', { driver: 'embedded', error: error instanceof Error ? error.message : String(error) });
    }
  }
}

interface RevocationRow {
  readonly kind: RevocationKind;
  readonly key: string;
  readonly reason: string;
  readonly actor: string;
  readonly at: number;
  readonly expires_at: number | null;
}

interface PartnerRow {
  readonly partner_id: string;
  readonly status: PartnerStatus;
  readonly reason: string;
  readonly actor: string;
  readonly at: number;
}

function propagation(startedAt: number): Propagation {
  // Every process on the file sees the change on its next `current()`: applied here before returning.
  return { instances: 1, acknowledged: 1, elapsedMs: performance.now() - startedAt };
}

function expiry(nowMs: number, ttlMs: number): number {
  return Math.ceil(nowMs + ttlMs);
}

/** A log event read back; null when it is not one this code wrote (the caller reloads the tables). */
function parseEvent(text: string): StateEvent | null {
  try {
    return validEvent(JSON.parse(text));
  } catch {
    return null;
  }
}

