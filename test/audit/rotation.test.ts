// Rotation of the audit trail's stream files: by size and by UTC day, each segment closed after
// a signed checkpoint and never written again, one chain per stream across its segments and the
// live file — verified and queried as one, a missing segment reported, restarts continuing it.
import { after, before, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { link, mkdtemp, readdir, rm, stat, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHECKPOINT_ACTION } from '../../src/audit/chain-format.ts';
import { openAuditTrail } from '../../src/audit/trail.ts';
import type { AuditTrail, AuditTrailOptions } from '../../src/audit/trail.ts';
import { verifyTrail } from '../../src/audit/verify.ts';
import { queryTrail } from '../../src/audit/query.ts';
import { setLogListener } from '../../src/log.ts';
import { assertChain, readStream } from './trail-chain.ts';
import type { Line } from './trail-chain.ts';

const MAX_BYTES = 4096;
const SEGMENT = /^combined\.\d{8}T\d{6}\.\d{3}Z(-\d+)?\.jsonl$/;

let root: string;
let dir: string;
let counter = 0;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'portcullis-rotation-'));
  setLogListener(() => undefined, { quiet: true });
});
after(async () => {
  setLogListener(null);
  await rm(root, { recursive: true, force: true });
});
beforeEach(() => {
  counter += 1;
  dir = join(root, `case-${counter}`, 'trail');
});

function options(overrides: Partial<AuditTrailOptions> = {}): AuditTrailOptions {
  return {
    dir,
    flush: 'interval',
    flushIntervalMs: 60_000,
    checkpointIntervalMs: 3_600_000,
    checkpointEvery: 1000,
    signingKeyPath: null,
    keyDir: join(dir, '..', 'keys'),
    maxQueue: 10_000,
    rotate: { maxBytes: MAX_BYTES, daily: true },
    ...overrides,
  };
}

function decision(n: number, partner: string | null): object {
  return {
    '@timestamp': new Date(Date.UTC(2030, 0, 1, 0, 0, 0, n)).toISOString(),
    event: { kind: 'event', action: 'gateway.request', outcome: 'success' },
    http: { request: { id: `req-${n}` } },
    portcullis: { decision: 'allow', reason: 'allowed', partner: partner === null ? null : { id: partner }, n },
  };
}

/** Segment names of a folder's combined stream (or of `prefix` in partners/), oldest first as the writer named them. */
async function segments(folder: string, pattern: RegExp = SEGMENT): Promise<string[]> {
  return (await readdir(folder)).filter((name) => pattern.test(name)).sort();
}

/** The lines of a stream read as one: its segments in order, then the live file. */
async function wholeStream(folder: string, names: readonly string[], live: string): Promise<Line[]> {
  const lines: Line[] = [];
  for (const name of [...names, live]) lines.push(...(await readStream(join(folder, name)).catch(() => [])));
  return lines;
}

async function appendAll(trail: AuditTrail, from: number, count: number, partnerOf: (n: number) => string | null): Promise<void> {
  for (let n = from; n < from + count; n++) {
    assert.equal(trail.append(decision(n, partnerOf(n)), partnerOf(n)), true);
    if (n % 7 === 0) await trail.flush();
  }
}

test('size: segments stay within max_bytes, each ends with a signed checkpoint, the chain spans them and verify and query read them in order', async () => {
  const trail = await openAuditTrail(options());
  await appendAll(trail, 0, 120, (n) => (n % 3 === 0 ? 'acme' : null));
  await trail.close();

  const combinedSegments = await segments(dir);
  assert.ok(combinedSegments.length >= 3, `several combined segments: ${combinedSegments.join(', ')}`);
  for (const name of combinedSegments) {
    const size = (await stat(join(dir, name))).size;
    assert.ok(size <= MAX_BYTES, `${name} is ${size} bytes`);
    const lines = await readStream(join(dir, name));
    assert.equal(lines.at(-1)!.event?.action, CHECKPOINT_ACTION, `${name} ends with a checkpoint`);
  }
  // One chain from seq 1 across every segment and the live file, every checkpoint signed.
  const combined = await wholeStream(dir, combinedSegments, 'combined.jsonl');
  assertChain(combined, 'combined', trail.publicKeyPem, trail.keyId);
  const partnerSegments = await segments(join(dir, 'partners'), /^acme\.\d{8}T.*\.jsonl$/);
  assert.ok(partnerSegments.length >= 1, 'the partner stream rotated too');
  assertChain(await wholeStream(join(dir, 'partners'), partnerSegments, 'acme.jsonl'), 'partner/acme', trail.publicKeyPem, trail.keyId);

  const report = await verifyTrail(dir, { publicKeyPem: trail.publicKeyPem });
  assert.equal(report.ok, true, JSON.stringify(report.streams.filter((stream) => !stream.ok)));
  const combinedReport = report.streams.find((stream) => stream.stream === 'combined')!;
  assert.deepEqual(combinedReport.segments, combinedSegments);
  assert.equal(combinedReport.lastSeq, combined.length);
  assert.equal(combinedReport.tailCovered, true);

  const ids: string[] = [];
  for await (const record of queryTrail(dir, {})) ids.push((record['http'] as { request: { id: string } }).request.id);
  assert.deepEqual(ids, Array.from({ length: 120 }, (_, n) => `req-${n}`));
  const acme: string[] = [];
  for await (const record of queryTrail(dir, { partner: 'acme' })) acme.push((record['http'] as { request: { id: string } }).request.id);
  assert.deepEqual(acme, Array.from({ length: 40 }, (_, n) => `req-${n * 3}`));
});

test('day: a new UTC day closes every stream, busy or idle, stamped with the rotation time', async () => {
  let clock = new Date('2030-01-01T23:59:59.000Z');
  const trail = await openAuditTrail(options({ now: () => clock, rotate: { maxBytes: 1024 * 1024, daily: true } }));
  await appendAll(trail, 0, 4, (n) => (n % 2 === 0 ? 'acme' : 'globex'));
  await trail.flush();
  assert.deepEqual(await segments(dir), []);
  clock = new Date('2030-01-02T00:00:01.000Z');
  // Only acme makes requests on the new day; globex's file is closed all the same.
  assert.equal(trail.append(decision(10, 'acme'), 'acme'), true);
  await trail.flush();
  await trail.close();

  assert.deepEqual(await segments(dir), ['combined.20300102T000001.000Z.jsonl']);
  const partnerFiles = (await readdir(join(dir, 'partners'))).sort();
  assert.deepEqual(partnerFiles, ['acme.20300102T000001.000Z.jsonl', 'acme.jsonl', 'globex.20300102T000001.000Z.jsonl']);
  const live = await readStream(join(dir, 'combined.jsonl'));
  const closed = await readStream(join(dir, 'combined.20300102T000001.000Z.jsonl'));
  // The chain goes on: the new file's first line follows the segment's closing checkpoint.
  assert.equal(closed.at(-1)!.event?.action, CHECKPOINT_ACTION);
  assert.equal(live[0]!.portcullis.chain.seq, closed.at(-1)!.portcullis.chain.seq + 1);
  assert.equal(live[0]!.portcullis.chain.prev, closed.at(-1)!.portcullis.chain.hash);
  assert.ok(closed.every((line) => line['@timestamp']!.startsWith('2030-01-0')));
  const report = await verifyTrail(dir, { publicKeyPem: trail.publicKeyPem });
  assert.equal(report.ok, true, JSON.stringify(report.streams.filter((stream) => !stream.ok)));
});

test('a deleted middle segment is reported as a missing segment; a deleted first one too', async () => {
  const trail = await openAuditTrail(options());
  await appendAll(trail, 0, 80, () => null);
  await trail.close();
  const names = await segments(dir);
  assert.ok(names.length >= 3, names.join(', '));
  await rm(join(dir, names[1]!));
  let report = await verifyTrail(dir, { publicKeyPem: trail.publicKeyPem });
  let problem = report.streams.find((stream) => stream.stream === 'combined')!.firstProblem;
  assert.equal(report.ok, false);
  assert.equal(problem?.kind, 'removed');
  assert.equal(problem?.file, names[2]);
  assert.equal(problem?.fileLine, 1);
  assert.match(problem!.detail, new RegExp(`a rotated segment before ${names[2]!.replace(/\./g, '\\.')} is missing`));

  await rm(join(dir, names[0]!));
  report = await verifyTrail(dir, { publicKeyPem: trail.publicKeyPem });
  problem = report.streams.find((stream) => stream.stream === 'combined')!.firstProblem;
  assert.equal(problem?.kind, 'removed');
  assert.equal(problem?.file, names[2]);
  assert.equal(problem?.line, 1);
});

test('a restart continues the chain after a rotation, including one cut between its link and unlink', async () => {
  // One fixed time: every rotation of a run shares a stamp, so names take a collision number.
  let clock = new Date('2030-01-01T00:00:00.000Z');
  const now = () => clock;
  const first = await openAuditTrail(options({ now }));
  await appendAll(first, 0, 40, (n) => (n % 2 === 0 ? 'acme' : null));
  await first.close();
  // A crash inside a rotation: the segment name exists and the live name still points at it.
  assert.ok((await segments(dir)).includes('combined.20300101T000000.000Z-1.jsonl'));
  const stamp = 'combined.20300101T000000.001Z.jsonl';
  clock = new Date('2030-01-01T00:00:00.002Z');
  await link(join(dir, 'combined.jsonl'), join(dir, stamp));
  const second = await openAuditTrail(options({ now }));
  assert.equal((await stat(join(dir, 'combined.jsonl')).catch(() => null)), null, 'the rotation was finished on start');
  await appendAll(second, 40, 10, (n) => (n % 2 === 0 ? 'acme' : null));
  await second.close();
  // A crash right after a rotation: the live file renamed, no new one yet; the chain continues from the segment.
  const partnerStamp = 'acme.20300101T000000.003Z.jsonl';
  clock = new Date('2030-01-01T00:00:00.004Z');
  await link(join(dir, 'partners', 'acme.jsonl'), join(dir, 'partners', partnerStamp));
  await unlink(join(dir, 'partners', 'acme.jsonl'));
  const third = await openAuditTrail(options({ now }));
  await appendAll(third, 50, 4, () => 'acme');
  await third.close();
  const partnerLive = await readStream(join(dir, 'partners', 'acme.jsonl'));
  const partnerClosed = await readStream(join(dir, 'partners', partnerStamp));
  assert.equal(partnerLive[0]!.portcullis.chain.seq, partnerClosed.at(-1)!.portcullis.chain.seq + 1);

  const report = await verifyTrail(dir, { publicKeyPem: third.publicKeyPem });
  assert.equal(report.ok, true, JSON.stringify(report.streams.filter((stream) => !stream.ok)));
  const combined = report.streams.find((stream) => stream.stream === 'combined')!;
  assert.ok(combined.segments.includes(stamp));
});
