/**
 * The tamper-evident audit trail (issue 6, SECURITY.md §2.13 AU-01..AU-04): every decision
 * record is hash-chained into the combined stream and, when a partner is known, into that
 * partner's own stream; signed checkpoints vouch for everything before them. The on-disk
 * format is `chain-format.ts`.
 *
 * The request path chains (`append` is synchronous: a record is hashed into its streams as it
 * arrives, a few µs, so no batch of hundreds of records is chained at once behind the requests
 * that wait for the event loop) and only the write is batched. With `flush: interval` a timer
 * writes what is chained every `flushIntervalMs` with one write per stream and `datasync`s it, so
 * a crash loses at most one interval; `os` writes at the same pace and leaves syncing to the OS. With
 * `every-record` an append starts a write+sync cycle at once; records appended while one is
 * running share the next cycle (group commit: one fdatasync per group, not per record), and
 * `onDurable` tells the caller when its record is on disk, so the pipeline can hold the end of
 * the response until then. Nothing is dropped silently: a record that cannot be queued makes
 * `append` return false (the caller refuses the request: AU-04 fail closed), and a failed write
 * keeps its lines, in order, and retries with backoff while the trail reports itself unhealthy.
 *
 * Stream files are rotated by size and UTC day (`rotate`, StreamWriter.markRotation): the chain
 * goes on across a stream's segments. Lines of the combined stream are copied to the `stdout`
 * and `otlp` sinks once they are in the file; those copies never hold the trail back.
 */
import { auditWriteChannel } from '../observability/channels.ts';
import type { AuditWriteMessage } from '../observability/channels.ts';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { log } from '../log.ts';
import type { Snapshot } from '../config/snapshot.ts';
import {
  CHECKPOINT_ACTION,
  COMBINED_STREAM,
  LINE_LIMITS,
  MAX_LINE_BYTES,
  RECOVERED_ACTION,
  RecordFromJson,
  canonicalRecord,
  checkpointMessage,
  partnerStream,
  segmentBase,
  segmentsByStream,
} from './chain-format.ts';
import type { CanonicalRecord } from './chain-format.ts';
import { forEachConcurrently } from './each-concurrently.ts';
import { reconcilePartnerStreams } from './reconcile.ts';
import { loadCheckpointSigner } from './signing-key.ts';
import { FOLDER_MODE, StreamWriter, isPartnerId, utcDay } from './stream-writer.ts';
import type { RotationPolicy } from './stream-writer.ts';
import type { AuditSink } from './sinks/sink.ts';
import { openStdoutSink } from './sinks/stdout.ts';

/** Room left on a line for `portcullis.chain` (stream name, seq, two hashes). */
const CHAIN_FIELDS_BYTES = 512;
const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 5000;
const PARTNER_FILE_SUFFIX = '.jsonl';
/** Room kept in a segment for the checkpoint that closes it, so a segment stays within `max_bytes`. */
const CHECKPOINT_LINE_BYTES = 512;
/** Combined records read back at a start (reconcile.ts): no fewer than the default max_queue, so a max_queue lowered after a crash still reaches the records it left behind. */
const RECONCILE_WINDOW_MIN = 10_000;
/** Streams opened at once at start (each-concurrently.ts). */
const RECOVERY_CONCURRENCY = 32;
/** Partner stream files written at once in a write cycle. */
const PARTNER_WRITE_CONCURRENCY = 32;
/**
 * Partner stream files kept open between write cycles; beyond it the least recently written idle
 * ones are closed (and opened again at their next write), so thousands of partners never run the
 * process out of file descriptors.
 */
export const MAX_OPEN_PARTNER_FILES = 256;
export const DEFAULT_ROTATION: RotationPolicy = Object.freeze({ maxBytes: 256 * 1024 * 1024, daily: true });

/** One write cycle that wrote or synced something: how long the writes and syncs of all its streams took. */

/** Called once per accepted record that asked for it: null when it is on disk in every stream, or why it could not be made durable (yet). */
export type DurableCallback = (error: Error | null) => void;

/** The compiled `audit` settings, plus a clock for tests. */
export type AuditTrailOptions = Omit<Snapshot['audit'], 'rotate' | 'sinks' | 'otlp'> &
  Partial<Pick<Snapshot['audit'], 'rotate' | 'sinks' | 'otlp'>> & { readonly now?: () => Date };

export interface AuditTrail {
  /**
   * Chains a record into the combined stream and, when partnerId is set, that partner's stream; the write follows with the next cycle. Synchronous and cheap (the request path calls it; pass the `serializeRecord` result when the record is serialized anyway, e.g. for the decision log). Returns false when it cannot be accepted (queue full, the sink is failing, or the record breaks a line limit): the caller refuses the request (503 audit_unavailable) — nothing is ever dropped silently.
   * When it returns true and `onDurable` is given, `onDurable` is called exactly once: with null once the record's lines are written in all its streams and (unless `flush` is `os`) fdatasync'ed; with an error when a write or sync failed first (the lines stay queued and are retried, as always).
   */
  append(record: object | SerializedRecord, partnerId: string | null, onDurable?: DurableCallback): boolean;
  /** False while the sink is failing or the queue is full. */
  healthy(): boolean;
  /** Writes (and, for `interval`, fsyncs) everything queued. Rejects when something could not be written (it stays queued for the retry). */
  flush(): Promise<void>;
  /** flush, then a final checkpoint on every stream that has unsigned lines; closes the files. Rejects, naming what was lost, when that cannot be written. */
  close(): Promise<void>;
  readonly keyId: string;
  readonly publicKeyPem: string;
  /** The flush policy the trail was opened with (a reload does not change it): `every-record` asks callers to wait for `onDurable`. Absent on a stand-in trail that keeps nothing. */
  readonly flushPolicy?: AuditTrailOptions['flush'];
  /** `queued`: records accepted and not yet on disk in all their streams; `lastError`: the most recent write error, kept after recovery. */
  stats(): { queued: number; written: number; failedWrites: number; lastError: string | null };
}

/** A record whose caller waits for it to be durable: its streams, and how many of its lines are not written yet. */
interface AwaitedRecord {
  readonly onDurable: DurableCallback;
  readonly writers: StreamWriter[];
  linesLeft: number;
}

export async function openAuditTrail(options: AuditTrailOptions): Promise<AuditTrail> {
  for (const name of ['flushIntervalMs', 'checkpointIntervalMs', 'checkpointEvery', 'maxQueue'] as const) {
    if (!Number.isSafeInteger(options[name]) || options[name] < 1) throw new TypeError(`audit trail: ${name} must be a positive integer`);
  }
  const now = options.now ?? (() => new Date());
  const sync = options.flush !== 'os';
  const writeEachRecord = options.flush === 'every-record';
  const signer = await loadCheckpointSigner(options);
  const rotation = options.rotate ?? DEFAULT_ROTATION;
  if (!Number.isSafeInteger(rotation.maxBytes) || rotation.maxBytes < 4096) throw new TypeError('audit trail: rotate.maxBytes must be an integer of at least 4096');
  const sinks = await openSinks(options);
  let streams: Map<string, StreamWriter>;
  try {
    const segments = await segmentsByStream(options.dir);
    streams = await recoverStreams(options.dir, segments, now, sync);
    await reconcilePartnerStreams(options.dir, streams, segments, Math.max(options.maxQueue, RECONCILE_WINDOW_MIN), now, sync, RECOVERY_CONCURRENCY);
  } catch (error) {
    await Promise.all(sinks.map((sink) => sink.close()));
    throw error;
  }
  const feedSinks = (line: Buffer, record: Record<string, unknown>): void => {
    for (const sink of sinks) sink.write(line, record);
  };
  if (sinks.length > 0) streams.get(COMBINED_STREAM)!.onLineWritten = feedSinks;

  /** Records accepted whose lines are not on disk in every stream yet. */
  let unwritten = 0;
  let written = 0;
  let failedWrites = 0;
  let consecutiveFailures = 0;
  let lastError: string | null = null;
  let failing = false;
  let queueFull = false;
  let closing: Promise<void> | null = null;
  let timer: NodeJS.Timeout | null = null;
  let cycles: Promise<void> = Promise.resolve();
  /** every-record: a cycle is queued that has not started writing yet (later appends join it). */
  let cycleRequested = false;
  let awaited: AwaitedRecord[] = [];

  /** Tells each waiting caller whose record is now durable; with `failure`, tells the others it is not. */
  const settleAwaited = (failure: Error | null): void => {
    if (awaited.length === 0) return;
    const waiting: AwaitedRecord[] = [];
    const settled: Array<[AwaitedRecord, Error | null]> = [];
    for (const entry of awaited) {
      if (entry.linesLeft === 0 && (!sync || entry.writers.every((writer) => !writer.needsSync))) settled.push([entry, null]);
      else if (failure !== null) settled.push([entry, failure]);
      else waiting.push(entry);
    }
    awaited = waiting;
    for (const [entry, error] of settled) {
      try {
        entry.onDurable(error);
      } catch (callbackError) {
        log('error', 'audit.durable_callback_failed', { error: String(callbackError) });
      }
    }
  };

  const streamFor = (name: string): StreamWriter => {
    let writer = streams.get(name);
    if (writer === undefined) {
      writer = new StreamWriter(options.dir, name);
      if (name === COMBINED_STREAM && sinks.length > 0) writer.onLineWritten = feedSinks;
      streams.set(name, writer);
    }
    return writer;
  };

  /** Closes the stream's live file after a checkpoint (unless its last line is one already): see StreamWriter.markRotation. */
  const rotate = (writer: StreamWriter, at: Date): void => {
    if (writer.unsigned > 0) checkpoint(writer, at);
    writer.markRotation(at.getTime());
  };

  const checkpoint = (writer: StreamWriter, at: Date): void => {
    // The signature covers this line's own seq and prev, so it vouches for every line before it.
    const signature = signer.sign(checkpointMessage(writer.stream, writer.seq + 1, writer.prev));
    writer.chain(
      canonicalRecord(
        {
          '@timestamp': at.toISOString(),
          event: { kind: 'event', action: CHECKPOINT_ACTION, outcome: 'success' },
          portcullis: { checkpoint: { key_id: signer.keyId, alg: 'Ed25519', signature } },
        },
        false,
      ),
      null,
      true,
      at.getTime(),
    );
  };

  /** Partner streams whose file is open, least recently written first. */
  const openPartnerFiles = new Set<StreamWriter>();
  /** Closes the least recently written idle partner files until no more than the cap are open. */
  const closeIdlePartnerFiles = async (): Promise<void> => {
    for (const writer of openPartnerFiles) {
      if (openPartnerFiles.size <= MAX_OPEN_PARTNER_FILES) return;
      if (!writer.fileOpen || (await writer.closeIfIdle(sync))) openPartnerFiles.delete(writer);
    }
  };

  /** Chains an accepted record into the combined stream and, with a partner, that partner's stream. */
  const chainRecord = (record: CanonicalRecord, partnerId: string | null, onDurable: DurableCallback | null): void => {
    const at = now();
    const atMs = at.getTime();
    const combined = streamFor(COMBINED_STREAM);
    const partner = partnerId === null ? null : streamFor(partnerStream(partnerId));
    let remaining = partner === null ? 1 : 2;
    const waiter: AwaitedRecord | null = onDurable === null ? null : { onDurable, writers: partner === null ? [combined] : [combined, partner], linesLeft: remaining };
    const done = (): void => {
      remaining -= 1;
      if (waiter !== null) waiter.linesLeft -= 1;
      if (remaining === 0) {
        unwritten -= 1;
        written += 1;
      }
    };
    unwritten += 1;
    if (waiter !== null) awaited.push(waiter);
    chainInto(combined, record, done, at, atMs);
    if (partner !== null) chainInto(partner, record, done, at, atMs);
  };

  const chainInto = (writer: StreamWriter, record: CanonicalRecord, done: () => void, at: Date, atMs: number): void => {
    if (writer.rotationDue(rotation, atMs, record.bytes + CHAIN_FIELDS_BYTES + CHECKPOINT_LINE_BYTES)) rotate(writer, at);
    writer.chain(record, done, false, atMs);
    if (writer.unsigned >= options.checkpointEvery) checkpoint(writer, at);
  };

  /** One pass: add the checkpoints that are due, write what is chained. */
  const cycle = async (final: boolean): Promise<void> => {
    cycleRequested = false;
    const at = now();
    const atMs = at.getTime();
    // A new UTC day starts a new file for every stream, busy or idle.
    for (const writer of streams.values()) if (rotation.daily && writer.rotationDue({ maxBytes: Number.POSITIVE_INFINITY, daily: true }, atMs, 0)) rotate(writer, at);
    for (const writer of streams.values()) {
      const due = writer.firstUnsignedAt !== null && (final || atMs - writer.firstUnsignedAt >= options.checkpointIntervalMs);
      if (writer.unsigned > 0 && due) checkpoint(writer, at);
    }
    const due = [...streams.values()].filter((writer) => writer.pendingLines > 0 || (sync && writer.needsSync));
    const started = performance.now();
    // The combined stream first, the partner streams once it is on disk: a stop in between leaves
    // records only the combined stream holds, which the next start copies on (reconcile.ts). A
    // partner line never goes to disk ahead of its combined line: each partner stream writes only
    // the lines chained before the combined write began (later ones wait for the next cycle), and
    // none after a combined write that failed.
    const chainedBefore = new Map(due.map((writer) => [writer, writer.pendingLines]));
    const write = (writer: StreamWriter): Promise<{ writer: StreamWriter; error: unknown } | null> =>
      writer.writePending(sync, chainedBefore.get(writer)).then(
        () => null,
        (error: unknown) => ({ writer, error }),
      );
    const combined = due.find((writer) => writer.stream === COMBINED_STREAM);
    const combinedFailure = combined === undefined ? null : await write(combined);
    const results: Array<{ writer: StreamWriter; error: unknown } | null> = [combinedFailure];
    if (combinedFailure === null) {
      const partners = due.filter((writer) => writer !== combined);
      await forEachConcurrently(partners, PARTNER_WRITE_CONCURRENCY, async (writer) => {
        results.push(await write(writer));
        // Most recently written last.
        openPartnerFiles.delete(writer);
        if (writer.fileOpen) openPartnerFiles.add(writer);
        if (openPartnerFiles.size > MAX_OPEN_PARTNER_FILES) await closeIdlePartnerFiles();
      });
    }
    if (due.length > 0 && auditWriteChannel.hasSubscribers) {
      auditWriteChannel.publish({ durationSeconds: (performance.now() - started) / 1000 } satisfies AuditWriteMessage);
    }
    const failures = results.filter((result) => result !== null);
    settleAwaited(failures.length > 0 ? new Error(`audit trail: ${failures[0]!.writer.stream}: ${String(failures[0]!.error)}`) : null);
    if (failures.length > 0) {
      failedWrites += failures.length;
      consecutiveFailures += 1;
      lastError = `${failures[0]!.writer.stream}: ${String(failures[0]!.error)}`;
      if (!failing) {
        failing = true;
        log('error', 'audit.write_failed', {
          streams: failures.map((failure) => failure.writer.stream),
          error: String(failures[0]!.error),
          records_waiting: unwritten,
        });
      }
    } else if (failing) {
      failing = false;
      log('info', 'audit.recovered', { failed_attempts: consecutiveFailures, records_written: written });
      consecutiveFailures = 0;
    } else {
      consecutiveFailures = 0;
    }
    if (queueFull && unwritten < options.maxQueue) {
      queueFull = false;
      log('info', 'audit.queue_available', { max_queue: options.maxQueue });
    }
  };

  // Cycles never overlap: each waits for the one before it, so lines reach a file in chain order.
  const runCycle = (final = false): Promise<void> => {
    const next = cycles.then(() => cycle(final));
    cycles = next.catch((error: unknown) => {
      // A cycle that threw before it could write: nobody may wait forever for its records.
      settleAwaited(new Error(`audit trail: write cycle failed: ${String(error)}`));
    });
    return next;
  };

  /** every-record: write now, or right after the cycle in progress, together with whatever else is queued by then. */
  const requestCycle = (): void => {
    if (cycleRequested) return;
    cycleRequested = true;
    runCycle().catch((error: unknown) => log('error', 'audit.cycle_failed', { error: String(error) }));
  };

  const schedule = (): void => {
    if (closing !== null) return;
    const delay = failing ? Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** (consecutiveFailures - 1)) : options.flushIntervalMs;
    timer = setTimeout(() => {
      timer = null;
      runCycle().then(schedule, (error: unknown) => {
        log('error', 'audit.cycle_failed', { error: String(error) });
        schedule();
      });
    }, delay);
    // The trail must never keep the process alive on its own; close() writes what is left.
    timer.unref();
  };
  schedule();

  const unwrittenError = (what: string): Error =>
    new Error(`audit trail: ${unwritten} record(s) ${what}: ${lastError ?? 'unknown error'}`);

  const refuse = (reason: string): false => {
    log('error', 'audit.record_refused', { reason });
    return false;
  };

  return {
    keyId: signer.keyId,
    publicKeyPem: signer.publicKeyPem,
    flushPolicy: options.flush,

    append(record, partnerId, onDurable) {
      if (closing !== null || failing) return false;
      if (unwritten >= options.maxQueue) {
        if (!queueFull) {
          queueFull = true;
          log('error', 'audit.queue_full', { max_queue: options.maxQueue });
        }
        return false;
      }
      // Partner ids come from validated config; anything else could name a file outside partners/.
      if (partnerId !== null && !isPartnerId(partnerId)) return refuse('partner id is not a valid id');
      const serialized = record instanceof SerializedRecord ? record : serializeRecord(record);
      if (typeof serialized === 'string') return refuse(serialized);
      // `audit verify` pairs partner and combined streams by the record's own partner id: a
      // record filed under another partner than it names would read as tampering.
      const named = serialized.partnerId;
      if (named !== partnerId) return refuse(`record names partner ${JSON.stringify(named)} but was appended for ${JSON.stringify(partnerId)}`);
      // A line `audit verify` would refuse to read is never written (chain-format.ts limits).
      if (serialized.record.bytes > MAX_LINE_BYTES - CHAIN_FIELDS_BYTES) return refuse(`record is longer than ${MAX_LINE_BYTES - CHAIN_FIELDS_BYTES} bytes`);
      try {
        chainRecord(serialized.record, partnerId, onDurable ?? null);
      } catch (error) {
        // Not expected (chaining is hashing and, every checkpointEvery lines, signing): fail
        // closed until a write cycle succeeds again, rather than throw into the request path.
        failing = true;
        lastError = `chaining a record failed: ${String(error)}`;
        log('error', 'audit.chain_failed', { error: String(error) });
        return false;
      }
      if (writeEachRecord) requestCycle();
      return true;
    },

    healthy() {
      return closing === null && !failing && unwritten < options.maxQueue;
    },

    async flush() {
      await runCycle();
      if (failing) throw unwrittenError('are waiting to be written');
    },

    close() {
      closing ??= (async () => {
        if (timer !== null) clearTimeout(timer);
        timer = null;
        await runCycle(true);
        const lost = failing ? unwrittenError('could not be written before closing') : null;
        await Promise.all([...streams.values()].map((writer) => writer.close()));
        await Promise.all(sinks.map((sink) => sink.close()));
        if (lost !== null) {
          log('error', 'audit.records_lost', { error: lost.message });
          throw lost;
        }
      })();
      return closing;
    },

    stats() {
      return { queued: unwritten, written, failedWrites, lastError };
    },
  };
}

/** The sinks besides the file (`audit.sinks`); the OTLP SDK is imported only when `otlp` is named. */
async function openSinks(options: AuditTrailOptions): Promise<AuditSink[]> {
  const names = options.sinks ?? ['file'];
  const sinks: AuditSink[] = [];
  if (names.includes('stdout')) sinks.push(openStdoutSink());
  if (names.includes('otlp')) {
    if (options.otlp == null) throw new TypeError('audit trail: the otlp sink needs audit.otlp settings');
    const { openOtlpSink } = await import('./sinks/otlp.ts');
    sinks.push(await openOtlpSink(options.otlp));
  }
  return sinks;
}

/** Proof that `serializeRecord` made a value: only it holds this. */
const MINT = Symbol('SerializedRecord');

/**
 * A record checked against the line limits and serialized once, in canonical form: the decision
 * log writes `json`, and every stream of the trail chains it without serializing it again. Only
 * `serializeRecord` makes one, so the trail can take `json` for the record's canonical form.
 */
export class SerializedRecord {
  readonly record: CanonicalRecord;
  /** The partner the record names (`portcullis.partner.id`), or null. */
  readonly partnerId: unknown;
  private constructor(mint: symbol, record: CanonicalRecord, partnerId: unknown) {
    if (mint !== MINT) throw new TypeError('SerializedRecord: made by serializeRecord and serializedFromCanonicalJson only');
    this.record = record;
    this.partnerId = partnerId;
  }
  /** The record as one line of JSON (canonical: sorted keys), without the newline. */
  get json(): string {
    return this.record.json;
  }
  static of(record: CanonicalRecord, partnerId: unknown): SerializedRecord {
    return new SerializedRecord(MINT, record, partnerId);
  }
}

/**
 * A record its producer serialized itself — the gateway's decision record, which is written
 * straight to JSON (src/pipeline/audit.ts decisionJson) because building an object, walking it
 * for the line limits and stringifying it cost more than the rest of its way to the trail. The
 * producer vouches that `json` is canonical (what `canonicalJson` would write of it), a JSON
 * object within LINE_LIMITS with neither `portcullis.chain` nor a reserved `event.action`, and
 * that `partnerId` is its `portcullis.partner.id` (test/pipeline/audit.test.ts holds the decision
 * record to that for every shape). What can be checked cheaply is checked here.
 */
export function serializedFromCanonicalJson(json: string, portcullisClose: number, partnerId: string | null): SerializedRecord | string {
  if (json.charCodeAt(0) !== 0x7b || json.charCodeAt(json.length - 1) !== 0x7d || json.charCodeAt(portcullisClose) !== 0x7d) {
    return 'record JSON does not have the shape its producer declared';
  }
  return SerializedRecord.of(new RecordFromJson(json, portcullisClose), partnerId);
}

/**
 * The record as it will be chained, or why it is refused. The trail takes ownership of the
 * record: callers (event records, a decision record over a line limit) build a fresh plain-JSON
 * object and never touch it again, so no defensive copy is made.
 */
export function serializeRecord(record: object): SerializedRecord | string {
  if (record === null || typeof record !== 'object' || Array.isArray(record)) return 'record is not a JSON object';
  const fields = record as Record<string, unknown>;
  const portcullis = fields['portcullis'];
  if (portcullis !== undefined && (portcullis === null || typeof portcullis !== 'object' || Array.isArray(portcullis))) {
    return 'record.portcullis is not an object';
  }
  // `portcullis.chain` adds one member to `portcullis`.
  if (portcullis !== undefined && Object.keys(portcullis).length >= LINE_LIMITS.maxMembers) return `record.portcullis has ${LINE_LIMITS.maxMembers} members or more`;
  // Each stream writes its own `portcullis.chain` into the line: one from the record would be a second, forged one.
  if (portcullis !== undefined && Object.hasOwn(portcullis, 'chain')) return 'record.portcullis.chain is reserved for the trail';
  // Checkpoints and recovery notes are the writer's own lines; a record cannot pose as one.
  const action = (fields['event'] as { action?: unknown } | undefined)?.action;
  if (action === CHECKPOINT_ACTION || action === RECOVERED_ACTION) return `event.action "${String(action)}" is reserved for the trail`;
  const walk: Walk = { problem: null, sorted: true, topSorted: isPlain(fields) };
  checkLineLimits(fields, 1, walk);
  if (walk.problem !== null) return walk.problem;
  const named = (portcullis as { partner?: { id?: unknown } } | undefined)?.partner?.id ?? null;
  return SerializedRecord.of(canonicalRecord(fields, walk.sorted, walk.topSorted), named);
}

interface Walk {
  problem: string | null;
  /** Every object below the top is a plain object with its keys in canonical order (so JSON.stringify is canonical). */
  sorted: boolean;
  /** The same of the record itself. */
  topSorted: boolean;
}

/** A plain object: JSON.stringify writes its own members, no toJSON of a class. */
function isPlain(object: object): boolean {
  const proto = Object.getPrototypeOf(object);
  return proto === Object.prototype || proto === null;
}

/** Notes in `walk` why `value` (a container at `depth`, the line being depth 1) breaks LINE_LIMITS, and whether it is in canonical order. */
function checkLineLimits(value: unknown, depth: number, walk: Walk): void {
  const type = typeof value;
  if (type === 'bigint' || type === 'function' || type === 'symbol') {
    walk.problem = `record holds a ${type}, which JSON cannot carry`;
    return;
  }
  if (value === null || type !== 'object') return;
  if (depth > LINE_LIMITS.maxDepth) {
    walk.problem = `record nests deeper than ${LINE_LIMITS.maxDepth} levels`;
    return;
  }
  if (Array.isArray(value)) {
    if (value.length > LINE_LIMITS.maxMembers) {
      walk.problem = `record has an object or array of more than ${LINE_LIMITS.maxMembers} members`;
      return;
    }
    if (Object.getPrototypeOf(value) !== Array.prototype) walk.sorted = false;
    for (let i = 0; i < value.length && walk.problem === null; i++) checkLineLimits(value[i], depth + 1, walk);
    return;
  }
  const object = value as Record<string, unknown>;
  const keys = Object.keys(object);
  if (keys.length > LINE_LIMITS.maxMembers) {
    walk.problem = `record has an object or array of more than ${LINE_LIMITS.maxMembers} members`;
    return;
  }
  // A Date or any other class may serialize through toJSON, which canonicalJson does not call.
  if (depth > 1 && walk.sorted && !isPlain(object)) walk.sorted = false;
  for (let i = 0; i < keys.length && walk.problem === null; i++) {
    if (i > 0 && !(keys[i - 1]! < keys[i]!)) {
      if (depth > 1) walk.sorted = false;
      else walk.topSorted = false;
    }
    checkLineLimits(object[keys[i]!], depth + 1, walk);
  }
}

/**
 * Opens the streams already on disk (combined plus every `partners/<id>.jsonl`), continues
 * their chains, notes a torn final line as an `audit.recovered` line, and makes any line left
 * unsigned by the previous run due for a checkpoint at the first cycle.
 */
async function recoverStreams(
  dir: string,
  segments: ReadonlyMap<string, readonly string[]>,
  now: () => Date,
  sync: boolean,
): Promise<Map<string, StreamWriter>> {
  const partnersDir = join(dir, 'partners');
  await mkdir(partnersDir, { recursive: true, mode: FOLDER_MODE });
  const names = [COMBINED_STREAM];
  /** Partners with rotated segments: one whose live file is gone (a crash right after a rotation) still continues its chain. */
  const segmentOnly = new Set<string>();
  for (const entry of await readdir(partnersDir, { withFileTypes: true })) {
    const id = entry.name.endsWith(PARTNER_FILE_SUFFIX) ? entry.name.slice(0, -PARTNER_FILE_SUFFIX.length) : null;
    if (entry.isFile() && id !== null && isPartnerId(id)) names.push(partnerStream(id));
    else if (entry.isFile() && isPartnerId(segmentBase(entry.name))) segmentOnly.add(segmentBase(entry.name)!);
    else log('warn', 'audit.unknown_file', { path: join(partnersDir, entry.name) });
  }
  const live = new Set(names);
  for (const id of segmentOnly) if (!live.has(partnerStream(id))) names.push(partnerStream(id));
  const writers = new Map<string, StreamWriter>();
  await forEachConcurrently(names, RECOVERY_CONCURRENCY, async (name) => {
    const writer = new StreamWriter(dir, name);
    const tail = await writer.recover(segments.get(name) ?? []);
    // A file whose last line does not tell the writer's day counts from now.
    if (writer.fileBytes > 0) writer.fileDay ??= utcDay(now().getTime());
    writers.set(name, writer);
    if (!tail.endsSigned) {
      writer.unsigned = 1;
      writer.firstUnsignedAt = Number.NEGATIVE_INFINITY;
    }
    if (tail.discardedBytes === 0) return;
    log('warn', 'audit.torn_line_discarded', { stream: name, path: writer.path, discarded_bytes: tail.discardedBytes });
    const at = now();
    writer.chain(
      canonicalRecord(
        {
          '@timestamp': at.toISOString(),
          event: { kind: 'event', action: RECOVERED_ACTION, outcome: 'success' },
          message: `discarded ${tail.discardedBytes} byte(s) of a torn final line (a write cut short by a crash)`,
          portcullis: { recovered: { discarded_bytes: tail.discardedBytes } },
        },
        false,
      ),
      null,
      false,
      at.getTime(),
    );
    await writer.writePending(sync);
    // The write cycles keep only the recently written partner files open.
    if (name !== COMBINED_STREAM) await writer.closeIfIdle(sync);
  });
  // In the order listed, the combined stream first.
  const streams = new Map<string, StreamWriter>();
  for (const name of names) streams.set(name, writers.get(name)!);
  return streams;
}
