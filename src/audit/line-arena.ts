/**
 * Where the audit trail keeps the bytes of lines chained but not yet written: large buffers
 * outside the JavaScript heap, reused once every line in them is written.
 *
 * Why not the lines' strings: under load a stream holds a write cycle's worth of lines (100 ms,
 * thousands of records) that live through a young-generation collection or two, and the
 * scavenger copies every one of them, with the string pieces each line was spliced from, each
 * time — pauses of 6–10 ms every few hundred ms, and an old generation that grew until the next
 * full collection. Why not a Buffer per line: small Buffers come from 8 KiB pool slabs, and that
 * churn of external memory makes V8 run full collections twice a second. Here a line is copied
 * into a chunk that is already there.
 */

/** Lines of up to this size share chunks; a longer one gets a buffer of its own. */
const CHUNK_BYTES = 256 * 1024;
/** Empty chunks kept for reuse (the rest are left to the garbage collector). */
const MAX_FREE_CHUNKS = 16;

export class ArenaChunk {
  readonly buffer: Buffer;
  /** Bytes handed out. */
  used = 0;
  /** Lines placed here and not released yet. */
  live = 0;
  constructor(bytes: number) {
    this.buffer = Buffer.allocUnsafeSlow(bytes);
  }
}

/** Where one line's bytes are. */
export interface PlacedBytes {
  readonly chunk: ArenaChunk;
  readonly offset: number;
}

export class LineArena {
  private current: ArenaChunk | null = null;
  private readonly free: ArenaChunk[] = [];

  /** Encodes `text` (exactly `bytes` bytes of UTF-8) into the arena. Release it once written. */
  place(text: string, bytes: number): PlacedBytes {
    const placed = this.reserve(bytes);
    const written = placed.chunk.buffer.write(text, placed.offset, 'utf8');
    if (written !== bytes) {
      this.release(placed.chunk);
      throw new Error(`line arena: ${written} bytes encoded, ${bytes} expected`);
    }
    return placed;
  }

  /**
   * Places `body` (`bodyBytes` bytes from `start`) with the ASCII text `insert` put in at `at`
   * bytes into it, and a newline after: a line built from a record's bytes, not encoded again.
   */
  placeSpliced(body: Buffer, start: number, bodyBytes: number, at: number, insert: string): PlacedBytes {
    const bytes = bodyBytes + insert.length + 1;
    const placed = this.reserve(bytes);
    const target = placed.chunk.buffer;
    body.copy(target, placed.offset, start, start + at);
    if (target.write(insert, placed.offset + at, 'latin1') !== insert.length) throw new Error('line arena: the inserted text did not fit');
    body.copy(target, placed.offset + at + insert.length, start + at, start + bodyBytes);
    target[placed.offset + bytes - 1] = 0x0a;
    return placed;
  }

  /** Room for `bytes` bytes, counted as one live line. */
  private reserve(bytes: number): PlacedBytes {
    if (bytes > CHUNK_BYTES) {
      const own = new ArenaChunk(bytes);
      own.used = bytes;
      own.live = 1;
      return { chunk: own, offset: 0 };
    }
    let chunk = this.current;
    if (chunk === null || chunk.used + bytes > CHUNK_BYTES) {
      if (chunk !== null && chunk.live === 0) this.recycle(chunk);
      chunk = this.free.pop() ?? new ArenaChunk(CHUNK_BYTES);
      this.current = chunk;
    }
    const offset = chunk.used;
    chunk.used += bytes;
    chunk.live += 1;
    return { chunk, offset };
  }

  /** The line is written (or dropped): its chunk is reused once nothing in it is waiting. */
  release(chunk: ArenaChunk): void {
    chunk.live -= 1;
    if (chunk.live !== 0) return;
    // Nothing in it waits to be written, so no write in flight reads from it either.
    if (chunk === this.current) chunk.used = 0;
    else if (chunk.buffer.length === CHUNK_BYTES) this.recycle(chunk);
  }

  private recycle(chunk: ArenaChunk): void {
    if (chunk === this.current) this.current = null;
    chunk.used = 0;
    if (this.free.length < MAX_FREE_CHUNKS) this.free.push(chunk);
  }

  /** Chunks held (in use or free), for tests. */
  get chunks(): { readonly free: number; readonly current: boolean } {
    return { free: this.free.length, current: this.current !== null };
  }
}

/** One arena for every stream of every trail in the process. */
export const lineArena = new LineArena();
