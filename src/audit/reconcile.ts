/**
 * Recovery of the partner streams after a stop that cut a write cycle short (a crash, SIGKILL,
 * power loss). A write cycle puts the combined stream's lines on disk before any partner
 * stream's (trail.ts `cycle`), so a stop between the two leaves records that the combined stream
 * holds and a partner stream does not — never the other way round. `audit verify` would read that
 * as a partner stream that ends early; on the next start this copies those records, unchanged,
 * to the end of the partner stream, after an `audit.recovered` line that says how many were
 * copied and from where.
 *
 * Only the newest records can be missing: the trail never holds more than `max_queue` records
 * that are not on disk in every stream (it refuses new ones first), so the combined stream's last
 * `window` records are all that is read. Every line read must chain to the line after it, and
 * before anything is copied every line from the oldest record to copy to the end has its hash
 * computed again: a tail that does not chain is left alone for `audit verify` to report.
 */
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { log } from '../log.ts';
import { COMBINED_STREAM, RECOVERED_ACTION, canonicalRecord, lineBody, lineHash, partnerStream, streamFile } from './chain-format.ts';
import type { CanonicalRecord } from './chain-format.ts';
import { forEachConcurrently } from './each-concurrently.ts';
import { StreamWriter, AuditTrailCorruptError } from './stream-writer.ts';
import { isTrailLine, parseTrailLine, recordDigest, recordKey, recordPartner } from './verify.ts';

const CHUNK_BYTES = 64 * 1024;

/** One line read back from a stream, newest first. */
interface ReadLine {
  readonly record: Record<string, unknown>;
  readonly seq: number;
  readonly prev: string;
  readonly hash: string;
}

/**
 * Copies to each partner stream the records the combined stream's last `window` records hold for
 * that partner after the partner stream's own last record. `streams` are the recovered writers
 * (their chains continued from disk); a partner with nothing on disk gets a writer here.
 */
export async function reconcilePartnerStreams(
  dir: string,
  streams: Map<string, StreamWriter>,
  segments: ReadonlyMap<string, readonly string[]>,
  window: number,
  now: () => Date,
  sync: boolean,
  concurrency: number,
): Promise<void> {
  /**
   * Each partner stream's last record key: '' for a stream that never held a line, null when it
   * cannot be known (its tail does not chain, or its records are no longer on disk: segments
   * moved away). A partner stream not in the map has nothing on disk.
   */
  const lastKey = new Map<string, string | null>();
  const partners = [...streams.values()].filter((writer) => writer.stream !== COMBINED_STREAM);
  await forEachConcurrently(partners, concurrency, async (writer) => {
    const key = await lastRecordKey(dir, writer.stream, segments.get(writer.stream) ?? []);
    lastKey.set(writer.stream, key === '' && writer.seq > 0 ? null : key);
  });

  /** Per partner stream, the combined records newer than its last record, newest first. */
  const missing = new Map<string, CanonicalRecord[]>();
  /** Per partner stream, how many lines from the combined stream's end its oldest missing record is (0: the last line). */
  const reach = new Map<string, number>();
  const caughtUp = new Set<string>();
  let records = 0;
  let lines = 0;
  const combinedSegments = segments.get(COMBINED_STREAM) ?? [];
  const combined = await readBackwards(dir, COMBINED_STREAM, combinedSegments, 0, (line) => {
    lines += 1;
    if (isTrailLine(line.record)) return true;
    records += 1;
    const partner = recordPartner(line.record);
    if (partner !== null) {
      const stream = partnerStream(partner);
      // A stream whose last record cannot be known is never copied to: nothing to collect.
      if (!caughtUp.has(stream) && lastKey.get(stream) !== null) {
        if (lastKey.get(stream) === recordKey(line.record, () => recordDigest(line.record))) caughtUp.add(stream);
        else {
          const list = missing.get(stream) ?? [];
          list.push(canonicalRecord(lineBody(line.record) as Record<string, unknown>, false));
          missing.set(stream, list);
          reach.set(stream, lines - 1);
        }
      }
    }
    return records < window;
  });
  if (!combined) return;

  const toRepair = [...missing].filter(([stream]) => {
    // A partner stream with nothing on disk (not in lastKey) never held a record.
    if (!caughtUp.has(stream) && (lastKey.get(stream) ?? '') !== '') {
      // Its last record is not among the combined stream's newest: that is no cut-short cycle, and
      // copying could duplicate what it holds.
      log('error', 'audit.reconcile_skipped', { stream, reason: `its last record is not among the last ${window} records of combined.jsonl; run \`portcullis audit verify\`` });
      return false;
    }
    return true;
  });
  if (toRepair.length === 0) return;
  // What is copied must be what was chained: every line from the oldest record to copy to the
  // end has its hash computed again (the first pass only followed the links, which is all a
  // start with nothing to copy needs).
  const span = Math.max(...toRepair.map(([stream]) => reach.get(stream)!)) + 1;
  let checked = 0;
  if (!(await readBackwards(dir, COMBINED_STREAM, combinedSegments, span, () => ++checked < span))) return;

  // New writers join `streams` in a stable order once all are written.
  const created = new Map<string, StreamWriter>();
  await forEachConcurrently(toRepair, concurrency, async ([stream, newestFirst]) => {
    let writer = streams.get(stream);
    if (writer === undefined) {
      writer = new StreamWriter(dir, stream);
      await writer.recover(segments.get(stream) ?? []);
      created.set(stream, writer);
    }
    const at = now();
    const atMs = at.getTime();
    writer.chain(
      canonicalRecord(
        {
          '@timestamp': at.toISOString(),
          event: { kind: 'event', action: RECOVERED_ACTION, outcome: 'success' },
          message: `copied ${newestFirst.length} record(s) from combined.jsonl that a stop cut short before they reached this stream`,
          portcullis: { recovered: { copied_records: newestFirst.length, from_stream: COMBINED_STREAM } },
        },
        false,
      ),
      null,
      false,
      atMs,
    );
    for (let i = newestFirst.length - 1; i >= 0; i--) writer.chain(newestFirst[i]!, null, false, atMs);
    // Signed by the first write cycle, like any tail the previous run left unsigned.
    writer.firstUnsignedAt = Number.NEGATIVE_INFINITY;
    await writer.writePending(sync);
    // The write cycles keep only the recently written partner files open (trail.ts).
    await writer.closeIfIdle(sync);
    log('warn', 'audit.stream_repaired', { stream, path: writer.path, copied_records: newestFirst.length, from_stream: COMBINED_STREAM });
  });
  for (const [stream] of toRepair) if (created.has(stream)) streams.set(stream, created.get(stream)!);
}

/** The key of the stream's last record, '' when it has none, null when its tail does not chain. */
async function lastRecordKey(dir: string, stream: string, segments: readonly string[]): Promise<string | null> {
  let key = '';
  const chained = await readBackwards(dir, stream, segments, 0, (line) => {
    if (isTrailLine(line.record)) return true;
    key = recordKey(line.record, () => recordDigest(line.record));
    return false;
  });
  return chained ? key : null;
}

/**
 * Hands `visit` the stream's lines from the newest back (live file, then its segments newest
 * first) until it returns false or the stream's first line is passed. Each line must chain to
 * the one after it (its `hash` is the next line's `prev`); the newest `hashed` lines also have
 * their hash computed again (the newest was, by StreamWriter.recover). Returns false, after
 * logging why, when a line fails.
 */
async function readBackwards(dir: string, stream: string, segments: readonly string[], hashed: number, visit: (line: ReadLine) => boolean): Promise<boolean> {
  const files = [join(dir, streamFile(stream)), ...[...segments].reverse().map((segment) => join(dir, segment))];
  let after: ReadLine | null = null;
  let read = 0;
  for (const file of files) {
    for await (const text of linesBackwards(file)) {
      const parsed = parseTrailLine({ number: 0, text, terminated: true });
      const problem = !parsed.ok
        ? parsed.detail
        : parsed.chain.stream !== stream
          ? `a line of stream "${parsed.chain.stream}"`
          : read++ < hashed && lineHash(parsed.chain.prev, parsed.record) !== parsed.chain.hash
            ? 'a line that does not match its hash'
            : after !== null && (after.prev !== parsed.chain.hash || after.seq !== parsed.chain.seq + 1)
              ? 'a line the next line does not chain to'
              : null;
      if (problem !== null || !parsed.ok) {
        log('error', 'audit.reconcile_skipped', { stream, path: file, reason: `${problem}; run \`portcullis audit verify\`` });
        return false;
      }
      const line: ReadLine = { record: parsed.record, ...parsed.chain };
      if (!visit(line)) return true;
      after = line;
    }
  }
  return true;
}

/** The lines of a file from the last back to the first; a missing file has none. */
async function* linesBackwards(path: string): AsyncGenerator<string> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  try {
    let position = (await handle.stat()).size;
    /** Bytes read whose line start has not been read yet. */
    let rest = Buffer.alloc(0);
    let atEnd = true;
    while (position > 0) {
      const length = Math.min(CHUNK_BYTES, position);
      position -= length;
      const chunk = Buffer.alloc(length);
      const { bytesRead } = await handle.read(chunk, 0, length, position);
      if (bytesRead !== length) throw new Error(`${path}: short read while reconciling the trail`);
      rest = rest.length === 0 ? chunk : Buffer.concat([chunk, rest]);
      if (atEnd) {
        // Recovery left every live file ending with a whole line, and a segment is written whole.
        if (rest.at(-1) !== 0x0a) throw new AuditTrailCorruptError(`${path} does not end with a complete line`);
        rest = rest.subarray(0, -1);
        atEnd = false;
      }
      for (let newline = rest.lastIndexOf(0x0a); newline >= 0; newline = rest.lastIndexOf(0x0a)) {
        yield rest.subarray(newline + 1).toString('utf8');
        rest = rest.subarray(0, newline);
      }
    }
    if (!atEnd) yield rest.toString('utf8');
  } finally {
    await handle.close();
  }
}
