/**
 * One stream of the audit trail on disk (format: `chain-format.ts`): it continues the chain
 * from the file's last complete line, chains new lines, and appends them — one write per batch,
 * never rewriting a byte that is already there. A write that fails keeps the bytes it did not
 * write, in order, for the next attempt; a partial write is resumed where it stopped, so a retry
 * never duplicates a line.
 */
import { open, mkdir } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { CHECKPOINT_ACTION, GENESIS_HASH, MAX_LINE_BYTES, chainHash, hashedBody, lineHash, streamFile } from './chain-format.ts';
import { canonicalJson } from '../config/config-hash.ts';
import type { ChainFields } from './chain-format.ts';

/** Same rule as configuration ids: no "/", no leading ".", so a partner file stays in `partners/`. */
const PARTNER_ID = /^[a-z0-9][a-z0-9_.-]{0,62}$/;
const HEX_HASH = /^[0-9a-f]{64}$/;
const TAIL_CHUNK_BYTES = 64 * 1024;
export const FILE_MODE = 0o640;
export const FOLDER_MODE = 0o750;

export function isPartnerId(value: unknown): value is string {
  return typeof value === 'string' && PARTNER_ID.test(value);
}

export class AuditTrailCorruptError extends Error {
  override readonly name = 'AuditTrailCorruptError';
}

/** A record's line waiting to be written to this stream; `done` runs once it is on disk. */
interface PendingLine {
  bytes: Buffer;
  readonly done: (() => void) | null;
}

export interface RecoveredTail {
  /** Bytes of a torn final line (no newline: a crash mid-write) that were truncated away. */
  readonly discardedBytes: number;
  /** Whether the file ends with a checkpoint (nothing unsigned left from the previous run). */
  readonly endsSigned: boolean;
}

export class StreamWriter {
  readonly stream: string;
  readonly path: string;
  /** seq and hash of the last line chained (written or pending). */
  seq = 0;
  prev = GENESIS_HASH;
  /** Lines chained since the last checkpoint, and when the first of them was chained (ms). */
  unsigned = 0;
  firstUnsignedAt: number | null = null;
  /** Bytes written whose `datasync` has not succeeded yet. */
  needsSync = false;
  private pending: PendingLine[] = [];
  private handle: FileHandle | null = null;
  private existsOnDisk = false;

  constructor(dir: string, stream: string) {
    this.stream = stream;
    this.path = join(dir, streamFile(stream));
  }

  get pendingLines(): number {
    return this.pending.length;
  }

  /**
   * Reads the tail of the existing file (if any) and continues its chain. A torn final line is
   * truncated — exactly the bytes after the last newline; the last complete line must be a line
   * of this stream whose hash recomputes, otherwise the trail was damaged and we refuse to write
   * after it (`portcullis audit verify` tells what is wrong).
   */
  async recover(): Promise<RecoveredTail> {
    let handle: FileHandle;
    try {
      handle = await open(this.path, 'r+');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { discardedBytes: 0, endsSigned: true };
      throw error;
    }
    this.existsOnDisk = true;
    try {
      const size = (await handle.stat()).size;
      const tail = await readLastLine(handle, size, this.path);
      if (tail.completeLength < size) {
        await handle.truncate(tail.completeLength);
        await handle.datasync();
      }
      if (tail.lastLine === null) return { discardedBytes: size - tail.completeLength, endsSigned: true };
      const last = this.checkLastLine(tail.lastLine, tail.lastLineOffset);
      this.seq = last.chain.seq;
      this.prev = last.chain.hash;
      return { discardedBytes: size - tail.completeLength, endsSigned: last.action === CHECKPOINT_ACTION };
    } finally {
      await handle.close();
    }
  }

  private checkLastLine(text: string, offset: number): { chain: ChainFields; action: unknown } {
    const where = `${this.path} (last line, byte ${offset})`;
    let line: unknown;
    try {
      line = JSON.parse(text);
    } catch {
      throw new AuditTrailCorruptError(`${where} is not JSON; run \`portcullis audit verify\` before writing to this trail again`);
    }
    const chain = (line as { portcullis?: { chain?: Partial<ChainFields> } } | null)?.portcullis?.chain;
    if (
      chain === undefined ||
      chain.stream !== this.stream ||
      !Number.isSafeInteger(chain.seq) ||
      (chain.seq as number) < 1 ||
      typeof chain.prev !== 'string' ||
      !HEX_HASH.test(chain.prev) ||
      typeof chain.hash !== 'string' ||
      !HEX_HASH.test(chain.hash)
    ) {
      throw new AuditTrailCorruptError(`${where} has no valid portcullis.chain for stream "${this.stream}"; run \`portcullis audit verify\``);
    }
    const { hash, ...withoutHash } = chain;
    const body = { ...(line as object), portcullis: { ...(line as { portcullis: object }).portcullis, chain: withoutHash } };
    if (lineHash(chain.prev, body) !== hash) {
      throw new AuditTrailCorruptError(`${where} does not match its hash; run \`portcullis audit verify\``);
    }
    return { chain: chain as ChainFields, action: (line as { event?: { action?: unknown } }).event?.action };
  }

  /**
   * Chains `body` as the next line of this stream and queues it. `body` is not modified: its
   * `portcullis` object is copied before this stream's chain fields go in, because the same
   * record is chained into two streams.
   */
  chain(body: Record<string, unknown>, done: (() => void) | null, signing: boolean, now: number, canonicalBody: string = canonicalJson(hashedBody(body))): void {
    const portcullis = body['portcullis'] as Record<string, unknown> | undefined;
    const chain: { stream: string; seq: number; prev: string; hash?: string } = { stream: this.stream, seq: this.seq + 1, prev: this.prev };
    const line = { ...body, portcullis: { ...portcullis, chain } };
    chain.hash = chainHash(chain.prev, chain.stream, chain.seq, canonicalBody);
    this.seq = chain.seq;
    this.prev = chain.hash;
    this.pending.push({ bytes: Buffer.from(JSON.stringify(line) + '\n', 'utf8'), done });
    if (signing) {
      this.unsigned = 0;
      this.firstUnsignedAt = null;
    } else {
      this.unsigned += 1;
      this.firstUnsignedAt ??= now;
    }
  }

  /**
   * Appends every pending line with one write (a short write is continued), then — with `sync` —
   * `datasync`s. Throws on failure, keeping whatever was not written.
   */
  async writePending(sync: boolean): Promise<void> {
    if (this.pending.length > 0) {
      const handle = await this.openHandle(sync);
      const batch = Buffer.concat(this.pending.map((line) => line.bytes));
      let written = 0;
      try {
        while (written < batch.length) {
          const { bytesWritten } = await handle.write(batch, written, batch.length - written);
          written += bytesWritten;
        }
      } catch (error) {
        await this.dropHandle();
        throw error;
      } finally {
        this.settle(written);
      }
      this.needsSync = true;
    }
    if (this.needsSync && sync) {
      // After a failed sync the bytes are in the file already: only the sync is retried (writing
      // them again would duplicate lines). fsync applies to the file, whichever descriptor asks.
      const handle = await this.openHandle(sync);
      try {
        await handle.datasync();
      } catch (error) {
        await this.dropHandle();
        throw error;
      }
      this.needsSync = false;
    }
  }

  /** Drops the lines (and the part of a line) that made it to the file. */
  private settle(written: number): void {
    let remaining = written;
    let completed = 0;
    for (const line of this.pending) {
      if (remaining >= line.bytes.length) {
        remaining -= line.bytes.length;
        completed += 1;
        line.done?.();
        continue;
      }
      line.bytes = line.bytes.subarray(remaining);
      break;
    }
    this.pending.splice(0, completed);
  }

  private async openHandle(sync: boolean): Promise<FileHandle> {
    if (this.handle !== null) return this.handle;
    await mkdir(dirname(this.path), { recursive: true, mode: FOLDER_MODE });
    this.handle = await open(this.path, 'a', FILE_MODE);
    if (!this.existsOnDisk) {
      // A new file's directory entry must be durable too, or a crash can lose the whole stream.
      if (sync) await syncFolder(dirname(this.path));
      this.existsOnDisk = true;
    }
    return this.handle;
  }

  private async dropHandle(): Promise<void> {
    const handle = this.handle;
    this.handle = null;
    await handle?.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.dropHandle();
  }
}

export async function syncFolder(path: string): Promise<void> {
  const folder = await open(path, 'r');
  try {
    await folder.sync();
  } finally {
    await folder.close();
  }
}

/**
 * Finds the last complete line by reading backwards from the end: `completeLength` is the size
 * up to and including the last newline; what follows it is a torn write.
 */
async function readLastLine(
  handle: FileHandle,
  size: number,
  path: string,
): Promise<{ completeLength: number; lastLine: string | null; lastLineOffset: number }> {
  let tail = Buffer.alloc(0);
  let tailStart = size;
  let end = -1;
  for (;;) {
    if (end < 0) {
      const newline = tail.lastIndexOf(0x0a);
      if (newline >= 0) end = tailStart + newline;
    }
    if (end >= 0) {
      const before = end - tailStart - 1 >= 0 ? tail.lastIndexOf(0x0a, end - tailStart - 1) : -1;
      if (before >= 0 || tailStart === 0) {
        const start = before >= 0 ? tailStart + before + 1 : 0;
        const text = tail.subarray(start - tailStart, end - tailStart).toString('utf8');
        if (text.length === 0) throw new AuditTrailCorruptError(`${path} has an empty line at byte ${start}; run \`portcullis audit verify\``);
        return { completeLength: end + 1, lastLine: text, lastLineOffset: start };
      }
    } else if (tailStart === 0) {
      return { completeLength: 0, lastLine: null, lastLineOffset: 0 };
    }
    if (size - tailStart > 2 * MAX_LINE_BYTES) {
      throw new AuditTrailCorruptError(`${path}: no line boundary in the last ${size - tailStart} bytes; run \`portcullis audit verify\``);
    }
    const length = Math.min(TAIL_CHUNK_BYTES, tailStart);
    const chunk = Buffer.alloc(length);
    const { bytesRead } = await handle.read(chunk, 0, length, tailStart - length);
    if (bytesRead !== length) throw new Error(`${path}: short read while recovering the chain`);
    tail = Buffer.concat([chunk, tail]);
    tailStart -= length;
  }
}
