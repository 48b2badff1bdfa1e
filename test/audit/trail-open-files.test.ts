// Thousands of partners, each with its own stream file: the trail keeps at most
// MAX_OPEN_PARTNER_FILES of them open between cycles and closes the least recently written idle
// ones, so a process with a low open-files limit (here 512) still writes every record.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAX_OPEN_PARTNER_FILES } from '../../src/audit/trail.ts';
import { verifyTrail } from '../../src/audit/verify.ts';

const hasPrlimit = spawnSync('prlimit', ['--version']).status === 0;
const PARTNERS = 1500;
const LIMIT = 512;

test(`${PARTNERS} partner streams under an open-files limit of ${LIMIT}: every record written, files open stay bounded`, { skip: hasPrlimit ? false : 'needs prlimit (util-linux)' }, async () => {
  assert.ok(MAX_OPEN_PARTNER_FILES + 100 < LIMIT, 'the limit leaves room for the cap, the cycle\'s writes in flight and Node\'s own descriptors');
  const root = await mkdtemp(join(tmpdir(), 'portcullis-trail-nofile-'));
  try {
    const dir = join(root, 'trail');
    const child = join(import.meta.dirname, 'trail-open-files-child.ts');
    const output = execFileSync('prlimit', [`--nofile=${LIMIT}:${LIMIT}`, process.execPath, child, dir, String(PARTNERS)], { encoding: 'utf8' });
    const result = JSON.parse(output) as { refused: number; flushError: string | null; stats: { queued: number; written: number; failedWrites: number }; mostOpen: number; publicKeyPem: string };
    assert.equal(result.flushError, null);
    assert.equal(result.refused, 0);
    assert.equal(result.stats.failedWrites, 0);
    assert.equal(result.stats.written, PARTNERS * 2);
    assert.ok(result.mostOpen < MAX_OPEN_PARTNER_FILES + 100, `at most ${result.mostOpen} descriptors open after a cycle`);
    assert.equal((await readdir(join(dir, 'partners'))).length, PARTNERS);
    const report = await verifyTrail(dir, { publicKeyPem: result.publicKeyPem });
    assert.equal(report.ok, true, JSON.stringify(report.streams.find((stream) => !stream.ok)));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
