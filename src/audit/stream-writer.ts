/**
 * One stream of the audit trail on disk (format: `chain-format.ts`): it continues the chain
 * from the file's last complete line, chains new lines, and appends them — one write per batch,
 * never rewriting a byte that is already there. A write that fails keeps the bytes it did not
 * write, in order, for the next attempt; a partial write is resumed where it stopped, so a retry
 * never duplicates a line.
 */
import { link, mkdir, open, stat, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { CHECKPOINT_ACTION, GENESIS_HASH, RECOVERED_ACTION, MAX_LINE_BYTES, chainHash, chainHashHead, chainMember, chainedLine, lineHash, segmentFile, segmentStamp, streamFile } from './chain-format.ts';
import type { CanonicalRecord, ChainFields } from './chain-format.ts';
import { COMBINED_STREAM } from './chain-format.ts';
import { hash as cryptoHash } from 'node:crypto';
import { LineArena, lineArena } from './line-arena.ts';
import type { ArenaChunk, PlacedBytes } from './line-arena.ts';

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
  /** Where its UTF-8 bytes are (line-arena.ts), newline included. */
  readonly chunk: ArenaChunk;
  readonly offset: number;
  readonly bytes: number;
  /** Bytes of it already in the file (a short write cut it). */
  written: number;
  readonly done: (() => void) | null;
  /** What the line was made of, for the sinks that copy written lines (null without them, so neither is kept). */
  readonly record: CanonicalRecord | null;
  readonly chain: ChainFields | null;
  /** Set on the last line of a segment: once it is written the file is rotated, stamped with this time (ms). */
  rotateAt?: number;
}

/**
 * A record's UTF-8 bytes, put once at HEAD_ROOM in `scratch` for every stream it is chained into
 * (all within one synchronous append), with room in front for a stream's hash head: `prev`,
 * stream name and seq, at most 64 + 1 + 71 + 1 + 16 + 1 bytes.
 */
const HEAD_ROOM = 256;
let scratch = Buffer.allocUnsafeSlow(HEAD_ROOM + 64 * 1024);
let encoded: { record: CanonicalRecord; closeByte: number } | null = null;

function encodedBody(record: CanonicalRecord): { readonly closeByte: number } {
  if (encoded !== null && encoded.record === record) return encoded;
  if (HEAD_ROOM + record.bytes > scratch.length) scratch = Buffer.allocUnsafeSlow(HEAD_ROOM + record.bytes);
  if (scratch.write(record.json, HEAD_ROOM, 'utf8') !== record.bytes) throw new Error('audit line: the record did not encode to its byte count');
  // Where `portcullis` closes, in bytes: its index in `json` when every character is one byte.
  const closeByte = record.bytes === record.json.length ? record.portcullisClose : Buffer.byteLength(record.json.slice(0, record.portcullisClose));
  encoded = { record, closeByte };
  return encoded;
}

/** `YYYY-MM-DD` of a time in UTC: a stream file holds one UTC day when daily rotation is on. */
function isWriterAction(action: unknown): boolean {
  return action === CHECKPOINT_ACTION || action === RECOVERED_ACTION;
}

const DAY_MS = 86_400_000;
/** The last day asked for: every append asks (daily rotation), and almost always for the same day. */
let lastDay = { number: Number.NaN, text: '' };

export function utcDay(ms: number): string {
  const number = Math.floor(ms / DAY_MS);
  if (number !== lastDay.number) lastDay = { number, text: new Date(ms).toISOString().slice(0, 10) };
  return lastDay.text;
}

/** When a stream's live file is closed and renamed (docs/audit.md "Rotation"). */
export interface RotationPolicy {
  readonly maxBytes: number;
  readonly daily: boolean;
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
  private readonly quotedStream: string;
  /** seq and hash of the last line chained (written or pending). */
  seq = 0;
  prev = GENESIS_HASH;
  /** Lines chained since the last checkpoint, and when the first of them was chained (ms). */
  unsigned = 0;
  firstUnsignedAt: number | null = null;
  /** Bytes written whose `datasync` has not succeeded yet. */
  needsSync = false;
  /** Called with each line once it is in the file (the stdout and OTLP sinks copy the combined stream). */
  onLineWritten: ((line: Buffer, record: Record<string, unknown>) => void) | null = null;
  /** Bytes of the live file: on disk plus chained and not written yet. */
  fileBytes = 0;
  /** UTC day of the live file's first line (null while it is empty). */
  fileDay: string | null = null;
  private pending: PendingLine[] = [];
  /** The combined stream's lines lie one after another in an arena of its own, so a batch is a few large writes. */
  private readonly arena: LineArena;
  /** Stream names are ids (ASCII): the chain fields then take one byte a character. */
  private readonly asciiStream: boolean;
  private handle: FileHandle | null = null;
  private existsOnDisk = false;
  private readonly dir: string;
  /** A rotation whose last line is written but whose rename is not done yet (a retry finishes it first). */
  private rotation: { readonly at: number; linkedTo: string | null } | null = null;

  constructor(dir: string, stream: string) {
    this.dir = dir;
    this.stream = stream;
    this.quotedStream = JSON.stringify(stream);
    this.path = join(dir, streamFile(stream));
    this.arena = stream === COMBINED_STREAM ? new LineArena() : lineArena;
    this.asciiStream = /^[\x20-\x7e]*$/.test(this.quotedStream);
  }

  /** Whether the live file must be closed before a line of about `nextLineBytes` goes in at `now` (ms). */
  rotationDue(policy: RotationPolicy, now: number, nextLineBytes: number): boolean {
    if (this.fileBytes === 0) return false;
    return this.fileBytes + nextLineBytes > policy.maxBytes || (policy.daily && this.fileDay !== null && this.fileDay !== utcDay(now));
  }

  /**
   * Ends the live file after the last line chained so far (the caller chains a checkpoint first,
   * so every segment ends signed): the next write renames it and starts a fresh file in which the
   * chain goes on.
   */
  markRotation(now: number): void {
    const last = this.pending.at(-1);
    if (last !== undefined) last.rotateAt = now;
    else this.rotation ??= { at: now, linkedTo: null };
    this.fileBytes = 0;
    this.fileDay = null;
  }

  get pendingLines(): number {
    return this.pending.length;
  }

  /**
   * Reads the tail of the existing file (if any) and continues its chain. A torn final line is
   * truncated — exactly the bytes after the last newline; the last complete line must be a line
   * of this stream whose hash recomputes, otherwise the trail was damaged and we refuse to write
   * after it (`portcullis audit verify` tells what is wrong). `segments`: the stream's rotated
   * segments, oldest first (chain-format.ts segmentsByStream lists every stream's at once).
   */
  async recover(segments: readonly string[]): Promise<RecoveredTail> {
    const lastSegment = segments.length > 0 ? join(this.dir, segments.at(-1)!) : null;
    let handle: FileHandle;
    try {
      handle = await open(this.path, 'r+');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return this.continueFromSegment(lastSegment);
      throw error;
    }
    try {
      const info = await handle.stat();
      if (lastSegment !== null) {
        const segment = await stat(lastSegment);
        if (segment.ino === info.ino && segment.dev === info.dev) {
          // A crash between the rotation's link and unlink: the live name is still the segment.
          await handle.close();
          await unlink(this.path);
          await syncFolder(dirname(this.path));
          return this.continueFromSegment(lastSegment);
        }
      }
      this.existsOnDisk = true;
      const size = info.size;
      const tail = await readLastLine(handle, size, this.path);
      if (tail.completeLength < size) {
        await handle.truncate(tail.completeLength);
        await handle.datasync();
      }
      this.fileBytes = tail.completeLength;
      if (tail.lastLine === null) {
        // An empty live file (a crash right after a rotation): the chain goes on from the last segment.
        const before = await this.continueFromSegment(lastSegment);
        return { ...before, discardedBytes: size - tail.completeLength };
      }
      const last = this.checkLastLine(tail.lastLine, tail.lastLineOffset);
      this.seq = last.chain.seq;
      this.prev = last.chain.hash;
      this.fileDay = last.day;
      return { discardedBytes: size - tail.completeLength, endsSigned: last.action === CHECKPOINT_ACTION };
    } finally {
      await handle.close().catch(() => undefined);
    }
  }

  /** Continues the chain from the last line of the newest rotated segment (written whole and synced before its rename). */
  private async continueFromSegment(segment: string | null): Promise<RecoveredTail> {
    if (segment === null) return { discardedBytes: 0, endsSigned: true };
    const handle = await open(segment, 'r');
    try {
      const size = (await handle.stat()).size;
      const tail = await readLastLine(handle, size, segment);
      if (tail.lastLine === null || tail.completeLength !== size) {
        throw new AuditTrailCorruptError(`${segment} (a rotated segment) does not end with a complete line; run \`portcullis audit verify\``);
      }
      const last = this.checkLastLine(tail.lastLine, tail.lastLineOffset, segment);
      this.seq = last.chain.seq;
      this.prev = last.chain.hash;
      return { discardedBytes: 0, endsSigned: last.action === CHECKPOINT_ACTION };
    } finally {
      await handle.close();
    }
  }

  private checkLastLine(text: string, offset: number, file: string = this.path): { chain: ChainFields; action: unknown; day: string | null } {
    const where = `${file} (last line, byte ${offset})`;
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
    const timestamp = Date.parse(String((line as { '@timestamp'?: unknown })['@timestamp']));
    return {
      chain: chain as ChainFields,
      action: (line as { event?: { action?: unknown } }).event?.action,
      // Only the writer's own lines carry the writer's clock; a record's time is the request's.
      day: Number.isNaN(timestamp) || !isWriterAction((line as { event?: { action?: unknown } }).event?.action) ? null : utcDay(timestamp),
    };
  }

  /**
   * Chains `record` as the next line of this stream and queues it. The record is shared by every
   * stream it goes to: the line is its canonical JSON with this stream's chain fields spliced in.
   */
  chain(record: CanonicalRecord, done: (() => void) | null, signing: boolean, now: number): void {
    const seq = this.seq + 1;
    const prev = this.prev;
    const sinks = this.onLineWritten !== null;
    let hash: string;
    let placed: PlacedBytes;
    let bytes: number;
    const head = chainHashHead(prev, this.stream, seq);
    if (this.asciiStream && head.length <= HEAD_ROOM) {
      // chainHash and chainedLine, from the record's bytes (encoded once for all its streams):
      // the hash input is this stream's head written in front of them.
      const body = encodedBody(record);
      scratch.write(head, HEAD_ROOM - head.length, 'latin1');
      hash = cryptoHash('sha256', scratch.subarray(HEAD_ROOM - head.length, HEAD_ROOM + record.bytes), 'hex');
      const member = chainMember(record, { stream: this.stream, seq, prev, hash }, this.quotedStream);
      placed = this.arena.placeSpliced(scratch, HEAD_ROOM, record.bytes, body.closeByte, member);
      bytes = record.bytes + member.length + 1;
    } else {
      hash = chainHash(prev, this.stream, seq, record.json);
      const text = chainedLine(record, { stream: this.stream, seq, prev, hash }, this.quotedStream);
      bytes = Buffer.byteLength(text);
      placed = this.arena.place(text, bytes);
    }
    this.seq = seq;
    this.prev = hash;
    this.pending.push({ chunk: placed.chunk, offset: placed.offset, bytes, written: 0, done, record: sinks ? record : null, chain: sinks ? { stream: this.stream, seq, prev, hash } : null });
    if (this.fileBytes === 0) this.fileDay = utcDay(now);
    this.fileBytes += bytes;
    if (signing) {
      this.unsigned = 0;
      this.firstUnsignedAt = null;
    } else {
      this.unsigned += 1;
      this.firstUnsignedAt ??= now;
    }
  }

  /**
   * Appends the pending lines — the first `upTo` of them at most — with one write (a short write is
   * continued), then — with `sync` — `datasync`s. Throws on failure, keeping whatever was not written.
   */
  async writePending(sync: boolean, upTo = Number.POSITIVE_INFINITY): Promise<void> {
    if (this.rotation !== null) await this.rotate();
    let left = upTo;
    while (this.pending.length > 0 && left > 0) {
      // Up to the end of the current segment, if a rotation is marked.
      const end = this.pending.findIndex((line) => line.rotateAt !== undefined);
      // A copy: lines chained while this write is under way join the pending list, not this batch.
      const lines = this.pending.slice(0, Math.min(end < 0 ? this.pending.length : end + 1, left));
      left -= lines.length;
      const handle = await this.openHandle(sync);
      let total = 0;
      for (const line of lines) total += line.bytes - line.written;
      let written = 0;
      try {
        while (written < total) {
          const { bytesWritten } = await handle.writev(batchBuffers(lines, written));
          written += bytesWritten;
        }
      } catch (error) {
        await this.dropHandle();
        throw error;
      } finally {
        this.settle(written);
      }
      this.needsSync = true;
      // Read after the write: markRotation may have marked this batch's last line meanwhile.
      const rotateAt = lines.at(-1)!.rotateAt;
      if (rotateAt === undefined) break;
      this.rotation = { at: rotateAt, linkedTo: null };
      await this.rotate();
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

  /**
   * Closes the live file for good and renames it to its segment name. The segment is synced
   * first whatever the flush policy (it is final); link + unlink rather than rename, because a
   * rename would silently replace an existing segment — a segment is never rewritten.
   */
  private async rotate(): Promise<void> {
    const rotation = this.rotation!;
    if (rotation.linkedTo === null) {
      if (this.needsSync) {
        const handle = await this.openHandle(true);
        try {
          await handle.datasync();
        } catch (error) {
          await this.dropHandle();
          throw error;
        }
        this.needsSync = false;
      }
      await this.dropHandle();
      const stamp = segmentStamp(new Date(rotation.at));
      for (let collision = 0; ; collision++) {
        const target = join(this.dir, segmentFile(this.stream, stamp, collision));
        try {
          await link(this.path, target);
          rotation.linkedTo = target;
          break;
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || collision >= 999_999) throw error;
        }
      }
    }
    await unlink(this.path).catch((error: NodeJS.ErrnoException) => {
      // A retry after the unlink itself went through (only the folder sync failed).
      if (error.code !== 'ENOENT') throw error;
    });
    await syncFolder(dirname(this.path));
    this.existsOnDisk = false;
    this.rotation = null;
  }

  /** Drops the lines (and the part of a line) that made it to the file. */
  private settle(written: number): void {
    let remaining = written;
    let completed = 0;
    for (const line of this.pending) {
      const left = line.bytes - line.written;
      if (remaining >= left) {
        remaining -= left;
        completed += 1;
        line.done?.();
        if (this.onLineWritten !== null && line.record !== null && line.chain !== null) {
          // A copy: the arena reuses these bytes once the line is released.
          this.onLineWritten(Buffer.from(line.chunk.buffer.subarray(line.offset, line.offset + line.bytes)), lineObject(line.record.body, line.chain));
        }
        this.arena.release(line.chunk);
        continue;
      }
      line.written += remaining;
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

  /** Whether the file is open: it is kept open between writes until `closeIfIdle`. */
  get fileOpen(): boolean {
    return this.handle !== null;
  }

  /**
   * Closes the file when nothing waits to be written to it (nor, with `sync`, to be synced):
   * the next write opens it again. Returns whether it closed it.
   */
  async closeIfIdle(sync: boolean): Promise<boolean> {
    if (this.handle === null || this.pending.length > 0 || this.rotation !== null || (sync && this.needsSync)) return false;
    await this.dropHandle();
    return true;
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

/**
 * The unwritten bytes of a batch, `skip` bytes in (what this attempt's earlier writes took), as
 * views of the arena: lines that lie one after another make one view.
 */
function batchBuffers(lines: readonly PendingLine[], skip: number): Buffer[] {
  const views: Buffer[] = [];
  let buffer: Buffer | null = null;
  let start = 0;
  let end = 0;
  for (const line of lines) {
    const left = line.bytes - line.written;
    if (skip >= left) {
      skip -= left;
      continue;
    }
    const from = line.offset + line.written + skip;
    skip = 0;
    const to = line.offset + line.bytes;
    if (buffer === line.chunk.buffer && from === end) {
      end = to;
      continue;
    }
    if (buffer !== null) views.push(buffer.subarray(start, end));
    buffer = line.chunk.buffer;
    start = from;
    end = to;
  }
  if (buffer !== null) views.push(buffer.subarray(start, end));
  return views;
}

/** The object a line was serialized from: the record with this stream's chain fields in `portcullis`. */
function lineObject(body: Record<string, unknown>, chain: ChainFields): Record<string, unknown> {
  const portcullis = body['portcullis'] as Record<string, unknown> | undefined;
  return { ...body, portcullis: { ...portcullis, chain } };
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
