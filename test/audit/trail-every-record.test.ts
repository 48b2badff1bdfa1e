// `audit.flush: every-record`: an append starts a write+fdatasync at once (no waiting for the
// interval timer), records appended meanwhile share the next cycle (group commit), and the
// caller's onDurable runs only once the record is in the file of every stream it belongs to —
// or reports why it is not, when the disk refuses the write.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openAuditTrail } from '../../src/audit/trail.ts';
import type { AuditTrailOptions } from '../../src/audit/trail.ts';
import { auditWriteChannel } from '../../src/observability/channels.ts';
import type { AuditWriteMessage } from '../../src/observability/channels.ts';
import { setLogListener } from '../../src/log.ts';
import { assertChain, readStream, records } from './trail-chain.ts';
import { decision, trailOptions } from './trail-fixtures.ts';

let root: string;
let counter = 0;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'portcullis-every-record-'));
  setLogListener(() => undefined, { quiet: true });
});
after(async () => {
  setLogListener(null);
  await rm(root, { recursive: true, force: true });
});

function options(overrides: Partial<AuditTrailOptions> = {}): AuditTrailOptions {
  counter += 1;
  const dir = join(root, `case-${counter}`, 'trail');
  // Far beyond the test's time: whatever is written, the append itself started.
  return trailOptions(dir, { flush: 'every-record', flushIntervalMs: 60_000, ...overrides });
}

const idsIn = async (path: string): Promise<string[]> =>
  (await readFile(path, 'utf8').catch(() => ''))
    .split('\n')
    .filter(Boolean)
    .map((line) => (JSON.parse(line) as { http?: { request?: { id?: string } } }).http?.request?.id ?? '')
    .filter(Boolean);

test('onDurable runs once the record is in the file of each of its streams, without waiting for the interval', async () => {
  const settings = options();
  const trail = await openAuditTrail(settings);
  try {
    assert.equal(trail.flushPolicy, 'every-record');
    const started = performance.now();
    const seen = await new Promise<{ error: Error | null; combined: string[]; partner: string[] }>((resolve, reject) => {
      const accepted = trail.append(decision(1, 'acme'), 'acme', (error) => {
        // Read right when the callback runs, before any further cycle could write it.
        void Promise.all([idsIn(join(settings.dir, 'combined.jsonl')), idsIn(join(settings.dir, 'partners', 'acme.jsonl'))]).then(
          ([combined, partner]) => resolve({ error, combined, partner }),
          reject,
        );
      });
      assert.equal(accepted, true);
    });
    assert.equal(seen.error, null);
    assert.deepEqual(seen.combined, ['req-1']);
    assert.deepEqual(seen.partner, ['req-1']);
    assert.ok(performance.now() - started < 5000, 'written on append, not on the 60 s timer');
    assert.equal(trail.stats().queued, 0);
  } finally {
    await trail.close();
  }
});

test('records appended while a cycle runs share the next one: far fewer write cycles than records', async () => {
  const settings = options();
  const trail = await openAuditTrail(settings);
  const cycles: number[] = [];
  const onWrite = (message: unknown): void => {
    cycles.push((message as AuditWriteMessage).durationSeconds);
  };
  auditWriteChannel.subscribe(onWrite);
  try {
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, n) => new Promise<Error | null>((resolve) => assert.equal(trail.append(decision(n, n % 2 === 0 ? 'acme' : null), n % 2 === 0 ? 'acme' : null, resolve), true))),
    );
    assert.ok(results.every((error) => error === null));
    assert.ok(cycles.length >= 1 && cycles.length <= 4, `200 records in ${cycles.length} write cycles`);
    assert.ok(cycles.every((seconds) => seconds >= 0 && seconds < 10));
    // Records appended one at a time after that each get their own cycle, promptly.
    for (let n = 200; n < 203; n++) assert.equal(await new Promise<Error | null>((resolve) => trail.append(decision(n, null), null, resolve)), null);
    assert.ok(cycles.length >= 4);
  } finally {
    auditWriteChannel.unsubscribe(onWrite);
    await trail.close();
  }
  const combined = await readStream(join(settings.dir, 'combined.jsonl'));
  assertChain(combined, 'combined', trail.publicKeyPem, trail.keyId);
  assert.deepEqual(
    records(combined).map((line) => (line['http'] as { request: { id: string } }).request.id),
    Array.from({ length: 203 }, (_, n) => `req-${n}`),
  );
  assert.equal(records(await readStream(join(settings.dir, 'partners', 'acme.jsonl'))).length, 100);
});

test('a record the writer refuses (too long) is refused to its caller at append, never left waiting', async () => {
  const trail = await openAuditTrail(options());
  try {
    const huge = { ...decision(1, null), padding: 'x'.repeat(2 * 1024 * 1024) };
    let called = false;
    // Serialized and chained in append: a line too long for `audit verify` is refused right there.
    assert.equal(trail.append(huge, null, () => (called = true)), false);
    await trail.flush();
    assert.equal(called, false, 'onDurable is only for records append accepted');
    assert.equal(trail.stats().queued, 0);
    assert.equal(await new Promise<Error | null>((resolve) => trail.append(decision(2, null), null, resolve)), null);
  } finally {
    await trail.close();
  }
});

const hasPrlimit = spawnSync('prlimit', ['--version']).status === 0;

test('a write the disk refuses (EFBIG) fails the waiting caller, refuses new records, and recovers', { skip: hasPrlimit ? false : 'needs prlimit (util-linux)' }, async () => {
  const base = join(root, `case-${++counter}`);
  const dir = join(base, 'trail');
  const child = join(import.meta.dirname, 'durability-child.ts');
  // Room for the first record's line (~600 bytes) but not the second.
  const output = execFileSync('prlimit', ['--fsize=900:unlimited', process.execPath, child, dir, join(base, 'keys')], { encoding: 'utf8' });
  const result = JSON.parse(output);
  assert.equal(result.first, null, 'the first record fits and is durable');
  assert.match(result.second, /EFBIG/, 'the caller learns its record is not on disk');
  assert.equal(result.during.healthy, false);
  assert.equal(result.during.accepted, false, 'no new record is accepted while writes fail');
  assert.ok(result.events.includes('audit.write_failed'));
  assert.equal(result.healed, true);
  assert.ok(result.events.includes('audit.recovered'));
  assert.equal(result.third, null);
  assert.equal(result.after.queued, 0);
  // Nothing dropped: the refused record was kept and written by the retry, in order.
  const lines = await readStream(join(dir, 'combined.jsonl'));
  assertChain(lines, 'combined', result.publicKeyPem, result.keyId);
  assert.deepEqual(records(lines).map((line) => (line['http'] as { request: { id: string } }).request.id), ['req-0', 'req-1', 'req-2']);
});
