// A write the kernel cuts short part-way through a line (file-size limit: a short write, then
// EFBIG) leaves the trail unhealthy; once the fault is gone the rest is written from the exact
// byte where the write stopped — no line lost, duplicated or reordered, and the chain verifies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertChain, readStream, records } from './trail-chain.ts';

const LIMIT = 3000;
const hasPrlimit = spawnSync('prlimit', ['--version']).status === 0;

test('a short write followed by EFBIG resumes at the byte it stopped at', { skip: hasPrlimit ? false : 'needs prlimit (util-linux)' }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'portcullis-trail-fsize-'));
  try {
    const dir = join(root, 'trail');
    const child = join(import.meta.dirname, 'trail-fsize-child.ts');
    const output = execFileSync('prlimit', [`--fsize=${LIMIT}:unlimited`, process.execPath, child, dir, join(root, 'keys')], { encoding: 'utf8' });
    const result = JSON.parse(output);
    assert.match(result.flushError, /EFBIG/);
    assert.equal(result.during.healthy, false);
    assert.equal(result.during.accepted, false);
    assert.equal(result.during.size, LIMIT, 'the write stopped mid-batch at the limit');
    assert.equal(result.during.stats.written < 20, true);
    assert.equal(result.healed, true);
    assert.equal(result.after.queued, 0);
    assert.equal(result.after.written, 21);

    const lines = await readStream(join(dir, 'combined.jsonl'));
    assertChain(lines, 'combined', result.publicKeyPem, result.keyId);
    const ids = records(lines).map((line) => (line['http'] as { request: { id: string } }).request.id);
    assert.deepEqual(ids, Array.from({ length: 21 }, (_, n) => `req-${n}`));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
