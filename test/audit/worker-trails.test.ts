// `serve --workers N`: one trail per worker under the audit folder. `verifyTrail` and `queryTrail`
// given the audit folder treat it as the union of the workers' trails: each chain verified with
// the key beside the folder, records merged in time order; tampering in one worker is found.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openAuditTrail } from '../../src/audit/trail.ts';
import { queryTrail } from '../../src/audit/query.ts';
import { verifyTrail } from '../../src/audit/verify.ts';

let dir: string;
let audit: string;

function record(minute: number, partner: string): object {
  return {
    '@timestamp': new Date(Date.UTC(2026, 10, 23, 12, minute)).toISOString(),
    event: { kind: 'event', action: 'gateway.request', reason: 'allowed' },
    portcullis: { decision: 'allow', reason: 'allowed', route: 'orders', partner: { id: partner, tier: 'standard' } },
  };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portcullis-worker-trails-'));
  audit = join(dir, 'audit');
  // Worker 1 wrote minutes 0, 2, 4; worker 2 wrote 1, 3: one key for both (the primary made it).
  for (const [slot, minutes] of [[1, [0, 2, 4]], [2, [1, 3]]] as const) {
    const trail = await openAuditTrail({
      dir: join(audit, `worker-${slot}`),
      keyDir: join(dir, 'audit-keys'),
      signingKeyPath: null,
      flush: 'os',
      flushIntervalMs: 3_600_000,
      checkpointIntervalMs: 3_600_000,
      checkpointEvery: 1000,
      maxQueue: 1000,
    });
    for (const minute of minutes) assert.equal(trail.append(record(minute, minute % 2 === 0 ? 'acme' : 'globex'), minute % 2 === 0 ? 'acme' : 'globex'), true);
    await trail.close();
  }
});
after(async () => rm(dir, { recursive: true, force: true }));

test('the audit folder verifies as the union of the workers\' trails, with the key beside it', async () => {
  const report = await verifyTrail(audit, {});
  assert.equal(report.ok, true, JSON.stringify(report, null, 2));
  assert.equal(report.signatures, 'verified');
  const files = report.streams.map((stream) => stream.file).sort();
  assert.deepEqual(files, [
    join('worker-1', 'combined.jsonl'),
    join('worker-1', 'partners', 'acme.jsonl'),
    join('worker-2', 'combined.jsonl'),
    join('worker-2', 'partners', 'globex.jsonl'),
  ]);
  assert.ok(report.streams.every((stream) => stream.tailCovered));
});

test('an edit in one worker\'s trail is found and named', async () => {
  const file = join(audit, 'worker-2', 'combined.jsonl');
  const original = await readFile(file, 'utf8');
  try {
    await writeFile(file, original.replace('"globex"', '"globez"'));
    const report = await verifyTrail(audit, {});
    assert.equal(report.ok, false);
    const broken = report.streams.filter((stream) => !stream.ok).map((stream) => stream.file);
    assert.ok(broken.includes(join('worker-2', 'combined.jsonl')), broken.join(', '));
    assert.ok(broken.every((name) => name.startsWith('worker-2')), `worker 1 is intact: ${broken.join(', ')}`);
  } finally {
    await writeFile(file, original);
  }
});

test('a query over the audit folder merges the workers\' records in time order', async () => {
  const minutes: number[] = [];
  for await (const found of queryTrail(audit, {})) minutes.push(new Date(String(found['@timestamp'])).getUTCMinutes());
  assert.deepEqual(minutes, [0, 1, 2, 3, 4]);
  const acme: number[] = [];
  for await (const found of queryTrail(audit, { partner: 'acme' })) acme.push(new Date(String(found['@timestamp'])).getUTCMinutes());
  assert.deepEqual(acme, [0, 2, 4]);
});
