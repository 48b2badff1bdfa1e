/**
 * The decision log: one JSON line per decision, to stdout or appended to a file.
 *
 * Lines are buffered and written in batches (at most every 25 ms, or sooner past 64 KiB) so the
 * request path never waits on the disk; `close()` writes what is left before the process exits.
 * A write failure is reported on the application log with the number of records affected and
 * the records are kept for the next attempt, never dropped silently. Durable, hash-chained
 * audit storage is the audit module's job; this is its first sink.
 */
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { log } from '../log.ts';

const FLUSH_INTERVAL_MS = 25;
const FLUSH_BYTES = 64 * 1024;

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
  let pending: string[] = [];
  let pendingBytes = 0;
  let timer: NodeJS.Timeout | null = null;
  let closed = false;

  const flush = (): void => {
    if (timer) {
      clearTimeout(timer);
      timer = null;
    }
    if (pending.length === 0) return;
    const chunk = pending.join('');
    try {
      writeFully(fd, chunk);
      pending = [];
      pendingBytes = 0;
    } catch (error) {
      log('error', 'decision_log.write_failed', { target, records: pending.length, error: String(error) });
      if (!closed) timer = setTimeout(flush, 1000);
    }
  };

  return {
    target,
    write(record) {
      this.writeJson(JSON.stringify(record));
    },
    writeJson(json) {
      const line = json + '\n';
      pending.push(line);
      pendingBytes += line.length;
      if (pendingBytes >= FLUSH_BYTES) flush();
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

function writeFully(fd: number, text: string): void {
  const buffer = Buffer.from(text);
  let offset = 0;
  while (offset < buffer.length) {
    try {
      offset += writeSync(fd, buffer, offset);
    } catch (error) {
      // stdout may be a non-blocking pipe: wait for it rather than lose records.
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error;
    }
  }
}
