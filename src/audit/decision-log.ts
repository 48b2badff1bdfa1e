/**
 * The decision log: one JSON line per decision, to stdout or appended to a file.
 *
 * Lines are buffered and written in batches (at most every 25 ms, or sooner past 64 KiB) so the
 * request path never waits on the disk; `close()` writes what is left before the process exits.
 * A write failure is reported on the application log with the number of records affected and
 * the records are kept for the next attempt, never dropped silently; a write cut short resumes
 * at the byte where it stopped, so no line is written twice. Durable, hash-chained
 * audit storage is the audit module's job; this is its first sink.
 */
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { log } from '../log.ts';

const FLUSH_INTERVAL_MS = 25;
const FLUSH_BYTES = 64 * 1024;
/** Room for a batch and the lines that arrive while a write keeps failing; grown when needed. */
const INITIAL_BUFFER_BYTES = 2 * FLUSH_BYTES;

export interface DecisionLog {
  readonly target: string;
  write(record: object): void;
  /** Writes a record already serialized as one line of JSON (no newline): the audit trail's serialization, shared rather than made twice. */
  writeJson(json: string): void;
  /** Writes every buffered record now. */
  flush(): void;
  close(): void;
}

export function openDecisionLog(target: string): DecisionLog {
  let fd: number;
  if (target === 'stdout') {
    fd = 1;
  } else {
    mkdirSync(dirname(target), { recursive: true });
    fd = openSync(target, 'a', 0o640);
  }
  // Lines are encoded straight into one reused buffer outside the JavaScript heap: no string per
  // line kept until the flush, no joining, no new buffer per batch.
  let buffer = Buffer.allocUnsafeSlow(INITIAL_BUFFER_BYTES);
  let used = 0;
  let lines = 0;
  let timer: NodeJS.Timeout | null = null;
  let closed = false;

  const flush = (): void => {
    if (timer) {
      clearTimeout(timer);
      timer = null;
    }
    if (used === 0) return;
    try {
      writeFully(fd, buffer, used);
      used = 0;
      lines = 0;
    } catch (error) {
      // What was written stays written; the rest is kept, in order, for the next attempt.
      const written = (error as { written?: number }).written ?? 0;
      buffer.copyWithin(0, written, used);
      used -= written;
      lines = newlines(buffer, used);
      log('error', 'decision_log.write_failed', { target, records: lines, bytes_waiting: used, error: String(error) });
      if (!closed) timer = setTimeout(flush, 1000);
    }
  };

  return {
    target,
    write(record) {
      this.writeJson(JSON.stringify(record));
    },
    writeJson(json) {
      // UTF-8 takes at most 3 bytes for a UTF-16 code unit; one more for the newline.
      const room = json.length * 3 + 1;
      if (used + room > buffer.length) {
        const grown = Buffer.allocUnsafeSlow(Math.max(buffer.length * 2, used + room));
        buffer.copy(grown, 0, 0, used);
        buffer = grown;
      }
      used += buffer.write(json, used, 'utf8');
      buffer[used++] = 0x0a;
      lines += 1;
      if (used >= FLUSH_BYTES) flush();
      else if (!timer) timer = setTimeout(flush, FLUSH_INTERVAL_MS);
    },
    flush,
    close() {
      closed = true;
      flush();
      if (fd !== 1) closeSync(fd);
    },
  };
}

/** Writes `length` bytes of `buffer`; on failure the error carries how many were written. */
function writeFully(fd: number, buffer: Buffer, length: number): void {
  let offset = 0;
  while (offset < length) {
    try {
      offset += writeSync(fd, buffer, offset, length - offset);
    } catch (error) {
      // stdout may be a non-blocking pipe: wait for it rather than lose records.
      if ((error as NodeJS.ErrnoException).code === 'EAGAIN') continue;
      throw Object.assign(error as Error, { written: offset });
    }
  }
}

/** Records (lines, each ending in a newline) among the first `length` bytes: a line cut by a short write counts once. */
function newlines(buffer: Buffer, length: number): number {
  const waiting = buffer.subarray(0, length);
  let count = 0;
  for (let at = waiting.indexOf(0x0a); at !== -1; at = waiting.indexOf(0x0a, at + 1)) count += 1;
  return count;
}
