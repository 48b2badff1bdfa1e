// The audit trail keeps chained-but-unwritten lines as UTF-8 bytes in reused off-heap chunks
// (src/audit/line-arena.ts). A chunk may be reused only once every line in it is released —
// reusing it earlier would overwrite bytes a write has not taken yet.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LineArena } from '../../src/audit/line-arena.ts';

const CHUNK = 256 * 1024;

function text(placed: { chunk: { buffer: Buffer }; offset: number }, bytes: number): string {
  return placed.chunk.buffer.subarray(placed.offset, placed.offset + bytes).toString('utf8');
}

test('lines are encoded one after another, multi-byte characters included', () => {
  const arena = new LineArena();
  const lines = ['{"a":"é"}\n', '{"b":"😀 \\u2028"}\n', '{}\n'];
  const placed = lines.map((line) => arena.place(line, Buffer.byteLength(line)));
  assert.equal(placed[1]!.chunk, placed[0]!.chunk);
  assert.equal(placed[1]!.offset, Buffer.byteLength(lines[0]!));
  assert.equal(placed[2]!.offset, Buffer.byteLength(lines[0]!) + Buffer.byteLength(lines[1]!));
  lines.forEach((line, i) => assert.equal(text(placed[i]!, Buffer.byteLength(line)), line));
});

test('a byte count that does not match the encoding is refused', () => {
  const arena = new LineArena();
  assert.throws(() => arena.place('é\n', 2), /3 bytes encoded, 2 expected/);
});

test('a chunk is reused only once every line in it is released', () => {
  const arena = new LineArena();
  const line = 'x'.repeat(1023) + '\n';
  const first = arena.place(line, 1024);
  // Fill the first chunk: the next line starts a second one.
  const rest = Array.from({ length: CHUNK / 1024 - 1 }, () => arena.place(line, 1024));
  assert.ok(rest.every((placed) => placed.chunk === first.chunk));
  const second = arena.place(line, 1024);
  assert.notEqual(second.chunk, first.chunk);
  // All but one line of the first chunk written: it is still in use, its bytes intact.
  for (const placed of rest) arena.release(placed.chunk);
  assert.equal(arena.chunks.free, 0);
  assert.equal(text(first, 1024), line);
  arena.release(first.chunk);
  assert.equal(arena.chunks.free, 1);
  // The current chunk, once drained, starts again at its beginning.
  arena.release(second.chunk);
  assert.equal(arena.place(line, 1024).offset, 0);
});

test('when the current chunk fills up, a freed chunk is taken before a new one is made', () => {
  const arena = new LineArena();
  const line = 'y'.repeat(CHUNK / 2 - 1) + '\n';
  const a = arena.place(line, CHUNK / 2);
  const b = arena.place(line, CHUNK / 2);
  const c = arena.place(line, CHUNK / 2); // a second chunk
  arena.release(a.chunk);
  arena.release(b.chunk);
  assert.equal(arena.chunks.free, 1);
  arena.place(line, CHUNK / 2);
  const e = arena.place(line, CHUNK / 2); // the second chunk is full: the freed first one is reused
  assert.equal(e.chunk, a.chunk);
  assert.equal(e.offset, 0);
  assert.notEqual(c.chunk, a.chunk);
});

test('a line longer than a chunk gets a buffer of its own, never reused', () => {
  const arena = new LineArena();
  const long = 'z'.repeat(CHUNK + 10) + '\n';
  const placed = arena.place(long, CHUNK + 11);
  assert.equal(placed.chunk.buffer.length, CHUNK + 11);
  assert.equal(text(placed, CHUNK + 11), long);
  arena.release(placed.chunk);
  assert.equal(arena.chunks.free, 0);
  assert.equal(arena.chunks.current, false);
});
