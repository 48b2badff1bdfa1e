// The decision log: one JSON line per decision, batched, in order, never a record lost or
// written twice — through a short write, a failing device, and lines larger than its buffer.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDecisionLog } from '../../src/audit/decision-log.ts';
import { setLogListener } from '../../src/log.ts';

let root: string;
const events: Array<Record<string, unknown>> = [];
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'portcullis-decision-log-'));
  setLogListener((entry) => events.push(entry as Record<string, unknown>), { quiet: true });
});
after(async () => {
  setLogListener(null);
  await rm(root, { recursive: true, force: true });
});

const lines = (path: string): unknown[] => (existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line)) : []);

test('lines are written in order, as given, after at most the flush interval, and at once past 64 KiB', async () => {
  const path = join(root, 'a', 'decisions.jsonl');
  const log = openDecisionLog(path);
  log.writeJson(JSON.stringify({ n: 0, text: 'é 😀 "\\' }));
  log.write({ n: 1 });
  assert.deepEqual(lines(path), [], 'not written before the interval');
  await new Promise((resolve) => setTimeout(resolve, 80));
  assert.deepEqual(lines(path), [{ n: 0, text: 'é 😀 "\\' }, { n: 1 }]);
  // Past 64 KiB the batch goes out without waiting for the timer.
  for (let n = 2; n < 200; n++) log.writeJson(JSON.stringify({ n, padding: 'x'.repeat(400) }));
  assert.ok(lines(path).length > 100);
  log.close();
  assert.deepEqual((lines(path) as Array<{ n: number }>).map((line) => line.n), Array.from({ length: 200 }, (_, n) => n));
});

test('a line larger than the buffer is written whole, between its neighbours', () => {
  const path = join(root, 'b.jsonl');
  const log = openDecisionLog(path);
  const big = 'ü'.repeat(400_000);
  log.writeJson(JSON.stringify({ n: 0 }));
  log.writeJson(JSON.stringify({ n: 1, big }));
  log.writeJson(JSON.stringify({ n: 2 }));
  log.close();
  assert.deepEqual(lines(path), [{ n: 0 }, { n: 1, big }, { n: 2 }]);
});

test('a device that refuses writes is reported with the records waiting, and nothing throws into the request path', () => {
  const log = openDecisionLog('/dev/full');
  events.length = 0;
  log.writeJson('{"n":0}');
  log.writeJson('{"n":1}');
  log.flush();
  const failure = events.find((entry) => entry['event'] === 'decision_log.write_failed');
  assert.ok(failure, 'decision_log.write_failed logged');
  assert.equal(failure['records'], 2);
  assert.equal(failure['bytes_waiting'], 16);
  assert.match(String(failure['error']), /ENOSPC/);
  log.close();
});

const hasPrlimit = spawnSync('prlimit', ['--version']).status === 0;

test('a write the kernel cuts short part-way through a line resumes at that byte: no record lost or written twice', { skip: hasPrlimit ? false : 'needs prlimit (util-linux)' }, () => {
  const path = join(root, 'c.jsonl');
  const limit = 1000;
  const output = execFileSync('prlimit', [`--fsize=${limit}:unlimited`, process.execPath, join(import.meta.dirname, 'decision-log-child.ts'), path], { encoding: 'utf8' });
  const result = JSON.parse(output) as { failures: Array<Record<string, unknown>>; sizeDuring: number };
  assert.equal(result.sizeDuring, limit, 'the write stopped mid-line at the limit');
  assert.equal(result.failures.length, 1);
  assert.match(String(result.failures[0]!['error']), /EFBIG/);
  // 1000 bytes of ~211-byte lines: 4 written whole, the fifth cut; 16 waiting, the cut one included.
  assert.equal(result.failures[0]!['records'], 16);
  assert.deepEqual((lines(path) as Array<{ n: number }>).map((line) => line.n), Array.from({ length: 21 }, (_, n) => n));
});
