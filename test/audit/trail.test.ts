// The audit trail writer: records chained into the combined stream and their partner's stream,
// signed checkpoints, continuity across restarts and torn writes, fail-closed behaviour when
// the disk refuses a write or the queue is full — and recovery without losing or reordering.
import { after, before, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, mkdir, mkdtemp, readFile, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHECKPOINT_ACTION, LINE_LIMITS, MAX_LINE_BYTES, listSegments, partnerStream, streamFile } from '../../src/audit/chain-format.ts';
import { AuditTrailCorruptError } from '../../src/audit/stream-writer.ts';
import { openAuditTrail } from '../../src/audit/trail.ts';
import { RECOVERED_ACTION } from '../../src/audit/chain-format.ts';
import type { AuditTrail, AuditTrailOptions } from '../../src/audit/trail.ts';
import { verifyTrail } from '../../src/audit/verify.ts';
import { setLogListener } from '../../src/log.ts';
import { assertChain, readStream, records } from './trail-chain.ts';
import { decision, trailOptions } from './trail-fixtures.ts';
import type { Line } from './trail-chain.ts';

let root: string;
let dir: string;
let logEvents: string[] = [];

before(async () => {
  process.umask(0o022);
  root = await mkdtemp(join(tmpdir(), 'portcullis-trail-'));
  setLogListener((entry) => logEvents.push(entry.event), { quiet: true });
});
after(async () => {
  setLogListener(null);
  await rm(root, { recursive: true, force: true });
});
let counter = 0;
beforeEach(() => {
  counter += 1;
  dir = join(root, `case-${counter}`, 'trail');
  logEvents = [];
});

function options(overrides: Partial<AuditTrailOptions> = {}): AuditTrailOptions {
  return trailOptions(dir, overrides);
}

const requestIds = (lines: readonly Line[]): string[] => lines.map((line) => (line['http'] as { request: { id: string } }).request.id);

async function streamOf(trail: AuditTrail, file: string, stream: string) {
  const lines = await readStream(join(dir, file));
  const checkpoints = assertChain(lines, stream, trail.publicKeyPem, trail.keyId);
  return { lines, checkpoints };
}

test('a few hundred records: contiguous verifiable chains per stream, signed checkpoints, each record where it belongs', async () => {
  const trail = await openAuditTrail(options({ checkpointEvery: 50 }));
  const partners = ['acme', 'globex', 'initech', null];
  const appended: object[] = [];
  for (let n = 0; n < 300; n++) {
    const record = decision(n, partners[n % 4]!);
    appended.push(record);
    assert.equal(trail.append(record, partners[n % 4]!), true);
    if (n % 70 === 0) await trail.flush();
  }
  const before = structuredClone(appended);
  await trail.close();
  // The caller's objects carry no chain fields: one stream's chain never leaks into another.
  assert.deepEqual(appended, before);

  assert.deepEqual((await readdir(join(dir, 'partners'))).sort(), ['acme.jsonl', 'globex.jsonl', 'initech.jsonl']);
  const combined = await streamOf(trail, 'combined.jsonl', 'combined');
  assert.deepEqual(requestIds(records(combined.lines)), appended.map((_, n) => `req-${n}`));
  // checkpoint_every 50: right after every 50th unsigned line; the 300th record is signed already,
  // so close() adds none here (the partner streams below get theirs from close()).
  assert.deepEqual(combined.checkpoints.map((line) => line.portcullis.chain.seq), [51, 102, 153, 204, 255, 306]);
  assert.equal(combined.lines.length, 306);
  for (const [index, partner] of ['acme', 'globex', 'initech'].entries()) {
    const stream = await streamOf(trail, `partners/${partner}.jsonl`, `partner/${partner}`);
    const expected = appended.flatMap((_, n) => (n % 4 === index ? [`req-${n}`] : []));
    assert.deepEqual(requestIds(records(stream.lines)), expected);
    assert.equal(stream.lines.at(-1)!.event?.action, CHECKPOINT_ACTION, 'close() signs what is left');
    assert.equal(stream.checkpoints.length, 2);
  }
  // A record without a partner is in the combined stream only.
  const partnerIds = new Set<string>();
  for (const partner of ['acme', 'globex', 'initech']) {
    for (const line of records(await readStream(join(dir, 'partners', `${partner}.jsonl`)))) partnerIds.add(requestIds([line])[0]!);
  }
  assert.equal(partnerIds.has('req-3'), false);
  assert.equal(partnerIds.size, 225);
  assert.deepEqual(trail.stats(), { queued: 0, written: 300, failedWrites: 0, lastError: null });
});

test('the same record in two streams keeps its own fields and gets each stream\'s chain', async () => {
  const trail = await openAuditTrail(options());
  assert.equal(trail.append(decision(1, 'acme'), 'acme'), true);
  await trail.close();
  const [inCombined] = records(await readStream(join(dir, 'combined.jsonl')));
  const [inPartner] = records(await readStream(join(dir, 'partners', 'acme.jsonl')));
  assert.equal(inCombined!.portcullis.chain.stream, 'combined');
  assert.equal(inPartner!.portcullis.chain.stream, 'partner/acme');
  const strip = (line: typeof inCombined) => ({ ...line, portcullis: { ...line!.portcullis, chain: null } });
  assert.deepEqual(strip(inCombined), strip(inPartner));
  assert.equal(inPartner!.portcullis['n'], 1);
});

test('files are 0640 in 0750 folders; nothing is written before the flush interval', async () => {
  const trail = await openAuditTrail(options({ flushIntervalMs: 60_000 }));
  trail.append(decision(1, 'acme'), 'acme');
  assert.equal((await stat(join(dir, 'combined.jsonl')).catch(() => null)), null);
  await trail.flush();
  assert.equal((await stat(join(dir, 'combined.jsonl'))).mode & 0o777, 0o640);
  assert.equal((await stat(join(dir, 'partners', 'acme.jsonl'))).mode & 0o777, 0o640);
  assert.equal((await stat(dir)).mode & 0o777, 0o750);
  assert.equal((await stat(join(dir, 'partners'))).mode & 0o777, 0o750);
  await trail.close();
});

test('the timer writes the queue without anyone calling flush', async () => {
  const trail = await openAuditTrail(options({ flushIntervalMs: 5 }));
  trail.append(decision(1, null), null);
  for (let i = 0; i < 100 && trail.stats().written === 0; i++) await new Promise((resolve) => setTimeout(resolve, 5));
  assert.equal(records(await readStream(join(dir, 'combined.jsonl'))).length, 1);
  await trail.close();
});

test('a restart continues every stream\'s seq and prev with the same key', async () => {
  const first = await openAuditTrail(options());
  for (let n = 0; n < 5; n++) first.append(decision(n, 'acme'), 'acme');
  await first.close();
  const second = await openAuditTrail(options());
  assert.equal(second.keyId, first.keyId);
  for (let n = 5; n < 8; n++) second.append(decision(n, n === 7 ? null : 'acme'), n === 7 ? null : 'acme');
  await second.close();
  const combined = await streamOf(second, 'combined.jsonl', 'combined');
  assert.deepEqual(combined.lines.map((line) => line.event?.action), [
    ...Array(5).fill('gateway.request'), CHECKPOINT_ACTION,
    ...Array(3).fill('gateway.request'), CHECKPOINT_ACTION,
  ]);
  const acme = await streamOf(second, 'partners/acme.jsonl', 'partner/acme');
  assert.deepEqual(requestIds(records(acme.lines)), ['req-0', 'req-1', 'req-2', 'req-3', 'req-4', 'req-5', 'req-6']);
});

test('lines a crash left unsigned get a checkpoint at the first cycle after the restart', async () => {
  const first = await openAuditTrail(options());
  first.append(decision(1, null), null);
  await first.flush(); // written, never checkpointed: the process "dies" here
  const second = await openAuditTrail(options());
  await second.flush();
  const combined = await streamOf(second, 'combined.jsonl', 'combined');
  assert.deepEqual(combined.lines.map((line) => line.event?.action), ['gateway.request', CHECKPOINT_ACTION]);
  await second.close();
  await first.close();
});

test('a torn final line is truncated, noted in an audit.recovered line, and the chain still verifies', async () => {
  const first = await openAuditTrail(options());
  for (let n = 0; n < 3; n++) first.append(decision(n, 'acme'), 'acme');
  await first.close();
  const intact = (await stat(join(dir, 'partners', 'acme.jsonl'))).size;
  const torn = '{"@timestamp":"2030-01-01T00:00:09.000Z","event":{"kind":"ev';
  await appendFile(join(dir, 'partners', 'acme.jsonl'), torn);

  const second = await openAuditTrail(options());
  assert.ok(logEvents.includes('audit.torn_line_discarded'));
  second.append(decision(3, 'acme'), 'acme');
  await second.close();
  const acme = await streamOf(second, 'partners/acme.jsonl', 'partner/acme');
  const text = await readFile(join(dir, 'partners', 'acme.jsonl'), 'utf8');
  assert.equal(text.includes('"kind":"ev\n'), false);
  assert.ok(text.length > intact);
  const recovered = acme.lines.find((line) => line.event?.action === RECOVERED_ACTION)!;
  assert.equal(recovered.portcullis.recovered!.discarded_bytes, Buffer.byteLength(torn));
  assert.equal(recovered.portcullis.chain.seq, 5, 'right after the three records and the closing checkpoint');
  assert.deepEqual(requestIds(records(acme.lines)), ['req-0', 'req-1', 'req-2', 'req-3']);
  // The combined stream was not torn and has no recovery line.
  const combined = await streamOf(second, 'combined.jsonl', 'combined');
  assert.equal(combined.lines.some((line) => line.event?.action === RECOVERED_ACTION), false);
});

test('a file that is nothing but a torn line restarts its chain at seq 1', async () => {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'combined.jsonl'), '{"half":');
  const trail = await openAuditTrail(options());
  await trail.close();
  const combined = await streamOf(trail, 'combined.jsonl', 'combined');
  assert.deepEqual(combined.lines.map((line) => line.event?.action), [RECOVERED_ACTION, CHECKPOINT_ACTION]);
});

test('a last line that does not match its hash is refused: the trail does not open', async () => {
  const first = await openAuditTrail(options());
  first.append(decision(1, null), null);
  await first.close();
  const path = join(dir, 'combined.jsonl');
  const text = await readFile(path, 'utf8');
  await writeFile(path, text.replace('"outcome":"success"}', '"outcome":"failure"}'));
  const before = await readFile(path, 'utf8');
  await assert.rejects(openAuditTrail(options()), (error: unknown) => error instanceof AuditTrailCorruptError && /does not match its hash/.test((error as Error).message));
  assert.equal(await readFile(path, 'utf8'), before, 'nothing written after a damaged line');

  await writeFile(path, 'not json\n');
  await assert.rejects(openAuditTrail(options()), /is not JSON/);
});

test('a write failure makes the trail unhealthy and refusing; after the fault is removed nothing is lost or reordered', async () => {
  const trail = await openAuditTrail(options({ flushIntervalMs: 60_000 }));
  for (let n = 0; n < 4; n++) assert.equal(trail.append(decision(n, 'acme'), 'acme'), true);
  // A real fault: a folder sits where the partner's stream file must be created (EISDIR).
  const blocker = join(dir, 'partners', 'acme.jsonl');
  await mkdir(blocker);
  await assert.rejects(trail.flush(), /could not|waiting to be written/);
  assert.equal(trail.healthy(), false);
  assert.equal(trail.append(decision(99, 'acme'), 'acme'), false, 'refused while failing');
  assert.equal(trail.append(decision(99, null), null), false, 'refused while failing, whatever the stream');
  const failed = trail.stats();
  assert.equal(failed.queued, 4);
  assert.equal(failed.written, 0);
  assert.equal(failed.failedWrites, 1);
  assert.match(failed.lastError!, /partner\/acme: .*EISDIR/);
  assert.ok(logEvents.includes('audit.write_failed'));
  await assert.rejects(trail.flush());
  assert.equal(trail.stats().failedWrites, 2);

  await rm(blocker, { recursive: true });
  await trail.flush();
  assert.equal(trail.healthy(), true);
  assert.ok(logEvents.includes('audit.recovered'));
  assert.equal(trail.append(decision(4, 'acme'), 'acme'), true);
  await trail.close();
  assert.deepEqual(trail.stats(), { queued: 0, written: 5, failedWrites: 2, lastError: failed.lastError });
  const acme = await streamOf(trail, 'partners/acme.jsonl', 'partner/acme');
  assert.deepEqual(requestIds(records(acme.lines)), ['req-0', 'req-1', 'req-2', 'req-3', 'req-4']);
  const combined = await streamOf(trail, 'combined.jsonl', 'combined');
  assert.deepEqual(requestIds(records(combined.lines)), ['req-0', 'req-1', 'req-2', 'req-3', 'req-4']);
});

test('the timer retries a failed write with backoff and the trail heals by itself', async () => {
  const trail = await openAuditTrail(options({ flushIntervalMs: 5 }));
  const blocker = join(dir, 'partners', 'acme.jsonl');
  await mkdir(blocker);
  trail.append(decision(0, 'acme'), 'acme');
  for (let i = 0; i < 100 && trail.healthy(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
  assert.equal(trail.healthy(), false);
  await rm(blocker, { recursive: true });
  // First retries come after 250 ms, 500 ms, …; well within two seconds.
  for (let i = 0; i < 200 && !trail.healthy(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(trail.healthy(), true);
  assert.equal(trail.stats().written, 1);
  await trail.close();
});

test('a full queue refuses records until the writer catches up', async () => {
  const trail = await openAuditTrail(options({ flushIntervalMs: 60_000, maxQueue: 3 }));
  for (let n = 0; n < 3; n++) assert.equal(trail.append(decision(n, null), null), true);
  assert.equal(trail.healthy(), false);
  assert.equal(trail.append(decision(3, null), null), false);
  assert.ok(logEvents.includes('audit.queue_full'));
  assert.equal(trail.stats().queued, 3, 'a refused record is not queued');
  await trail.flush();
  assert.equal(trail.healthy(), true);
  assert.equal(trail.append(decision(4, null), null), true);
  await trail.close();
  const combined = await streamOf(trail, 'combined.jsonl', 'combined');
  assert.deepEqual(requestIds(records(combined.lines)), ['req-0', 'req-1', 'req-2', 'req-4']);
});

test('a checkpoint is written once checkpointIntervalMs has passed with unsigned lines', async () => {
  let clock = Date.UTC(2030, 0, 1);
  const trail = await openAuditTrail(options({ flushIntervalMs: 60_000, checkpointIntervalMs: 1000, now: () => new Date(clock) }));
  trail.append(decision(1, 'acme'), 'acme');
  await trail.flush();
  clock += 999;
  await trail.flush();
  const actions = async (file: string) => (await readStream(join(dir, file))).map((line) => line.event?.action);
  assert.deepEqual(await actions('combined.jsonl'), ['gateway.request']);
  clock += 1;
  await trail.flush();
  assert.deepEqual(await actions('combined.jsonl'), ['gateway.request', CHECKPOINT_ACTION]);
  assert.deepEqual(await actions('partners/acme.jsonl'), ['gateway.request', CHECKPOINT_ACTION]);
  const checkpoint = (await readStream(join(dir, 'combined.jsonl')))[1]!;
  assert.equal(checkpoint['@timestamp'], new Date(clock).toISOString());
  // Nothing new: no further checkpoint, not even at close.
  clock += 5000;
  await trail.close();
  assert.deepEqual(await actions('combined.jsonl'), ['gateway.request', CHECKPOINT_ACTION]);
  await streamOf(trail, 'combined.jsonl', 'combined');
});

test('append refuses what could escape the folder or pose as the writer\'s own lines, and writes nothing', async () => {
  const trail = await openAuditTrail(options({ flushIntervalMs: 60_000 }));
  for (const partner of ['../acme', 'acme/x', '.hidden', 'Acme', '', 'a'.repeat(64), 'acme\n']) {
    assert.equal(trail.append(decision(1, partner), partner), false, JSON.stringify(partner));
  }
  assert.equal(trail.append({ event: { action: CHECKPOINT_ACTION }, portcullis: {} }, null), false);
  assert.equal(trail.append({ event: { action: RECOVERED_ACTION } }, null), false);
  assert.equal(trail.append({ portcullis: 'x' }, null), false);
  assert.equal(trail.append({ n: 1n }, null), false);
  assert.equal(trail.append([] as object, null), false);
  // The partner the record names is the stream it goes to (`audit verify` pairs streams by it).
  assert.equal(trail.append(decision(1, 'acme'), 'globex'), false);
  assert.equal(trail.append(decision(1, 'acme'), null), false);
  assert.equal(trail.append(decision(1, null), 'acme'), false);
  // Lines `audit verify` would refuse to read (chain-format.ts LINE_LIMITS, MAX_LINE_BYTES).
  let deep: object = {};
  for (let i = 0; i < LINE_LIMITS.maxDepth; i++) deep = { deep };
  assert.equal(trail.append(deep, null), false);
  assert.equal(trail.append({ list: Array(LINE_LIMITS.maxMembers + 1).fill(0) }, null), false);
  assert.equal(trail.append({ portcullis: Object.fromEntries(Array.from({ length: LINE_LIMITS.maxMembers }, (_, i) => [`k${i}`, i])) }, null), false);
  assert.equal(trail.stats().queued, 0);
  // Too long for a line: serialized (and chained) in append, so refused there, loudly.
  assert.equal(trail.append({ blob: 'x'.repeat(MAX_LINE_BYTES) }, null), false);
  await trail.flush();
  assert.ok(logEvents.includes('audit.record_refused'));
  assert.equal(trail.healthy(), true, 'a refused record does not make the trail unhealthy');
  await trail.close();
  assert.deepEqual(await readdir(join(dir, 'partners')), []);
  assert.equal(await stat(join(dir, 'combined.jsonl')).catch(() => null), null);
});

test('records at the line limits are accepted and the verifier-facing line stays within them', async () => {
  const trail = await openAuditTrail(options({ flushIntervalMs: 60_000 }));
  let deep: object = { event: { action: 'gateway.request' } };
  for (let i = 0; i < LINE_LIMITS.maxDepth - 2; i++) deep = { deep };
  assert.equal(trail.append({ ...deep, event: { action: 'gateway.request' }, portcullis: { partner: { id: 'acme' } } }, 'acme'), true);
  assert.equal(trail.append({ event: { action: 'gateway.request' }, list: Array(LINE_LIMITS.maxMembers).fill(0) }, null), true);
  await trail.close();
  await streamOf(trail, 'combined.jsonl', 'combined');
  await streamOf(trail, 'partners/acme.jsonl', 'partner/acme');
  // …and `audit verify`, which parses lines strictly within those limits, accepts them.
  const report = await verifyTrail(dir, { publicKeyPem: trail.publicKeyPem });
  assert.equal(report.ok, true, JSON.stringify(report.streams));
});

test('the trail takes the record as appended (no copy on the request path) and a closed trail accepts nothing', async () => {
  const trail = await openAuditTrail(options({ flushIntervalMs: 60_000 }));
  const record = decision(1, null) as { portcullis: { decision: string } };
  trail.append(record, null);
  await trail.close();
  assert.equal(records(await readStream(join(dir, 'combined.jsonl')))[0]!.portcullis['decision'], 'allow');
  assert.equal(trail.append(decision(2, null), null), false, 'a closed trail accepts nothing');
});

test('close() is idempotent and leaves files alone that it does not own', async () => {
  await mkdir(join(dir, 'partners'), { recursive: true });
  await writeFile(join(dir, 'partners', 'README.txt'), 'operator notes');
  const trail = await openAuditTrail(options());
  assert.ok(logEvents.includes('audit.unknown_file'));
  trail.append(decision(1, null), null);
  await Promise.all([trail.close(), trail.close()]);
  assert.equal(await readFile(join(dir, 'partners', 'README.txt'), 'utf8'), 'operator notes');
  assert.equal(records(await readStream(join(dir, 'combined.jsonl'))).length, 1);
});

test('a torn write inside a batch keeps the complete lines before it', async () => {
  const first = await openAuditTrail(options());
  for (let n = 0; n < 4; n++) first.append(decision(n, null), null);
  await first.close();
  // Cut the file in the middle of the third record, as a crash during the batch write would.
  const path = join(dir, 'combined.jsonl');
  const text = await readFile(path, 'utf8');
  const third = text.indexOf('req-2');
  await truncate(path, Buffer.byteLength(text.slice(0, third)));
  const second = await openAuditTrail(options());
  await second.close();
  const combined = await streamOf(second, 'combined.jsonl', 'combined');
  assert.deepEqual(requestIds(records(combined.lines)), ['req-0', 'req-1']);
  assert.deepEqual(combined.lines.slice(2).map((line) => line.event?.action), [RECOVERED_ACTION, CHECKPOINT_ACTION]);
});

test('thousands of records of every size, appended while write cycles run, across many streams and rotations: every chain verifies, nothing lost or reordered', async () => {
  // The lines wait in shared, reused buffers (line-arena.ts) while earlier ones are being written:
  // a buffer reused too early, or a line spliced at the wrong byte, would show here as a broken chain.
  const trail = await openAuditTrail(options({ flushIntervalMs: 1, checkpointEvery: 97, rotate: { maxBytes: 256 * 1024, daily: true } }));
  const partners = Array.from({ length: 23 }, (_, i) => `p-${i}`);
  let seed = 7;
  const random = (): number => {
    seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const texts = ['', 'é', '😀 ü', '"\\', 'x'.repeat(3000), 'ß'.repeat(70_000), 'y'.repeat(300 * 1024)];
  const expected = new Map<string, string[]>();
  const total = 4000;
  for (let n = 0; n < total; n++) {
    const partner = random() < 0.2 ? null : partners[Math.floor(random() * partners.length)]!;
    const record = decision(n, partner) as { portcullis: Record<string, unknown> };
    record.portcullis['note'] = texts[Math.floor(random() * random() * texts.length)]!;
    assert.equal(trail.append(record, partner), true, `record ${n}`);
    for (const stream of partner === null ? ['combined'] : ['combined', partner]) expected.set(stream, [...(expected.get(stream) ?? []), `req-${n}`]);
    // Let write cycles start and finish in between appends.
    if (random() < 0.05) await new Promise((resolve) => setTimeout(resolve, random() * 3));
  }
  await trail.close();
  const report = await verifyTrail(dir, { publicKeyPem: trail.publicKeyPem });
  assert.equal(report.ok, true, JSON.stringify(report.streams.filter((stream) => !stream.ok)));
  assert.equal(requestIds(records(await readAllSegments('combined'))).length, total);
  for (const partner of partners) assert.deepEqual(requestIds(records(await readAllSegments(partner))), expected.get(partner) ?? [], partner);
});

/** A stream's lines across its rotated segments and live file, oldest first. */
async function readAllSegments(name: string): Promise<Line[]> {
  const stream = name === 'combined' ? name : partnerStream(name);
  const lines: Line[] = [];
  for (const file of [...(await listSegments(dir, stream)), streamFile(stream)]) lines.push(...(await readStream(join(dir, file))));
  return lines;
}
