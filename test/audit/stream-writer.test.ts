// The stream writer builds each line from the record's UTF-8 bytes (encoded once for all the
// streams a record goes to) rather than from strings: what it writes must be, byte for byte,
// the line chain-format.ts defines (chainedLine with the chainHash of its position) — for
// multi-byte text, an empty `portcullis`, members after `portcullis`, every stream, and one
// record chained into several streams.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GENESIS_HASH, canonicalRecord, chainHash, chainedLine, streamFile } from '../../src/audit/chain-format.ts';
import type { CanonicalRecord } from '../../src/audit/chain-format.ts';
import { StreamWriter } from '../../src/audit/stream-writer.ts';

const RECORDS: CanonicalRecord[] = [
  canonicalRecord({ '@timestamp': '2026-12-07T12:00:00.000Z', portcullis: { partner: { id: 'acme' } }, url: { path: '/é/😀' } }, false),
  canonicalRecord({ a: 1, portcullis: {} }, false),
  canonicalRecord({ portcullis: { host: 'ü'.repeat(300) } }, false),
  canonicalRecord({ z: '"\\\u2028', portcullis: { b: [1, 2] }, y: { x: 'é' } }, false),
  canonicalRecord({ big: 'x'.repeat(70_000), portcullis: { note: 'ß' } }, false),
];

/** What chain-format.ts says the stream's lines are, from its string functions. */
function expectedLines(stream: string, records: readonly CanonicalRecord[]): string {
  let prev = GENESIS_HASH;
  let text = '';
  records.forEach((record, i) => {
    const seq = i + 1;
    const hash = chainHash(prev, stream, seq, record.json);
    text += chainedLine(record, { stream, seq, prev, hash }, JSON.stringify(stream));
    prev = hash;
  });
  return text;
}

test('lines are written byte for byte as chain-format.ts defines them, one record in several streams', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-stream-writer-'));
  try {
    // The last stream's name is not ASCII: it takes the writer's string path, with the same result.
    const streams = ['combined', 'partner/acme', 'partner/b-2', 'partner/é'];
    const writers = streams.map((stream) => new StreamWriter(dir, stream));
    for (const record of RECORDS) for (const writer of writers) writer.chain(record, null, false, Date.now());
    for (const writer of writers) await writer.writePending(false);
    for (const [i, stream] of streams.entries()) {
      assert.equal(await readFile(join(dir, streamFile(stream)), 'utf8'), expectedLines(stream, RECORDS), stream);
      assert.equal(writers[i]!.seq, RECORDS.length);
    }
    await Promise.all(writers.map((writer) => writer.close()));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
