/**
 * The gateway CPU one decision record costs on the audit path (issue 6), measured in process:
 * no HTTP, no load generator, so the figures are the record's own work and nothing else.
 *
 *   cd bench && npm run bench:audit-cost
 *   npm run bench:audit-cost -- --records 20000 --batch 600
 *
 * Stages, each timed alone over the same realistic record (the decision record of a JWT partner
 * request on the `portcullis-jwt-rs256` path):
 *   decisionForTrail  the record written straight to canonical JSON (what `finish()` does now)
 *   decision-log   JSON.stringify of the record as an object
 *   canonical      canonicalJson(hashedBody(record)) (what the chain hashes)
 *   serializeRecord  the generic way to the same string: the line-limit walk and one JSON.stringify
 *                  of the object (what `finish()` did, after building the object, until 2026-12-07)
 *   sha256         one chain hash over the canonical form
 *   per-record work, former code / now: everything but the I/O for one record in two streams,
 *                  the trail's code before issue 6's fix (rebuilt here) against today's
 * and then the whole path as `finish()` runs it — the record written, decision log write, trail append — with
 * the trail written and fdatasync'ed every `--batch` records (the ~600 records an `interval`
 * cycle held under load in the issue-6 runs). "CPU µs/record" is process CPU (user + system,
 * every thread: libuv's file writes and syncs included) divided by records.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { canonicalJson } from '../src/config/config-hash.ts';
import { createHash } from 'node:crypto';
import { chainHash, chainedLine, hashedBody } from '../src/audit/chain-format.ts';
import { openAuditTrail, serializeRecord } from '../src/audit/trail.ts';
import { openDecisionLog } from '../src/audit/decision-log.ts';
import { decisionForTrail, decisionRecord, logDecision } from '../src/pipeline/audit.ts';
import type { DecisionInput } from '../src/pipeline/context.ts';
import { verifyTrail } from '../src/audit/verify.ts';

const { values } = parseArgs({
  options: {
    records: { type: 'string', default: '30000' },
    batch: { type: 'string', default: '600' },
    rounds: { type: 'string', default: '5' },
  },
});
const RECORDS = Number(values.records);
const BATCH = Number(values.batch);
const ROUNDS = Number(values.rounds);
for (const [name, value] of [['records', RECORDS], ['batch', BATCH], ['rounds', ROUNDS]] as const) {
  if (!Number.isSafeInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer`);
}

/** The request context of a cached-RS256 partner call on a route with scope, CEL rule, agreement and grant. */
function requestContext(n: number): DecisionInput {
  const started = process.hrtime.bigint();
  return {
    requestId: `0b6c2f0e-6a3c-4d0e-9d59-${String(n).padStart(12, '0')}`,
    startedAt: started - 900_000n,
    receivedAt: new Date(),
    snapshot: { hash: 'f'.repeat(64) },
    listener: { name: 'partners', zone: 'partner' },
    httpVersion: '1.1',
    method: 'GET',
    clientIp: '127.0.0.1',
    clientPort: 40_000 + (n % 20_000),
    host: 'api.example.test',
    path: '/orders/v1/items',
    traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
    spanId: '00f067aa0ba902b7',
    route: { id: 'orders-read', apiId: 'orders', upstream: { id: 'orders-backend' } },
    tls: null,
    clientCertificate: null,
    principal: {
      partner: { id: 'acme', tier: 'gold', agreement: { id: 'acme-orders-2026' } },
      credential: { id: 'acme-rs256' },
      credentialType: 'jwt',
      longLived: false,
      tokenId: 'jti-7f3a9c1e2b',
      issuer: 'https://idp.example.test',
      scopes: new Set(['orders:read']),
    },
    flags: [],
    decidedBy: 'rule:orders-read-own',
    purpose: null,
    upstreamCalled: true,
    upstreamStatus: 200,
    upstreamStartedAt: started - 500_000n,
    upstreamHeadersAt: started - 100_000n,
  } as unknown as DecisionInput;
}

function cpuMicros(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

/** Best (lowest) of `ROUNDS` timings of `work` over `count` iterations, in µs per iteration. */
function stage(count: number, work: (i: number) => unknown): number {
  let best = Number.POSITIVE_INFINITY;
  let sink = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const start = performance.now();
    for (let i = 0; i < count; i++) if (work(i) !== undefined) sink++;
    best = Math.min(best, ((performance.now() - start) * 1000) / count);
  }
  if (sink < 0) console.log(sink);
  return best;
}

const contexts = Array.from({ length: 1000 }, (_, i) => requestContext(i));
const endedAt = process.hrtime.bigint();
const outcome = { reason: 'allowed', decision: 'allow', status: 200 } as const;
const sample = decisionRecord(contexts[0]!, outcome, endedAt) as Record<string, unknown>;
const canonical = canonicalJson(hashedBody(sample));

/**
 * The per-record CPU work of the trail before issue 6's fix, rebuilt from its code (no I/O): the
 * decision log's stringify, the limits walk, canonicalJson with sorting, and per stream a copy of
 * the record, a createHash and a JSON.stringify + Buffer of the line. For a like-for-like
 * comparison on the same machine in the same run (the VM's speed varies by up to 2× between runs).
 */
function formerPerRecordWork(record: Record<string, unknown>, seq: number): number {
  let bytes = JSON.stringify(record).length;
  if (formerLimitsWalk(record, 1) !== null) throw new Error('over the line limits');
  const canonicalBody = canonicalJson(hashedBody(record));
  for (const stream of ['combined', 'partner/acme']) {
    const chain: { stream: string; seq: number; prev: string; hash?: string } = { stream, seq, prev: '0'.repeat(64) };
    const line = { ...record, portcullis: { ...(record['portcullis'] as object), chain } };
    chain.hash = createHash('sha256').update(`${chain.prev}\n${stream}\n${seq}\n`).update(canonicalBody).digest('hex');
    bytes += Buffer.from(JSON.stringify(line) + '\n', 'utf8').length;
  }
  return bytes;
}

/** trail.ts exceedsLineLimits as it was. */
function formerLimitsWalk(value: unknown, depth: number): string | null {
  const type = typeof value;
  if (type === 'bigint' || type === 'function' || type === 'symbol') return type;
  if (value === null || typeof value !== 'object') return null;
  if (depth > 16) return 'depth';
  const children = Array.isArray(value) ? value : Object.values(value);
  if (children.length > 512) return 'members';
  for (const child of children) {
    const problem = formerLimitsWalk(child, depth + 1);
    if (problem !== null) return problem;
  }
  return null;
}

/** The same work now: one serializeRecord shared by the decision log and both streams, a one-shot hash and a splice per line. */
function currentPerRecordWork(record: Record<string, unknown>, seq: number): number {
  const serialized = serializeRecord(record);
  if (typeof serialized === 'string') throw new Error(serialized);
  let bytes = 0;
  for (const stream of ['combined', 'partner/acme']) {
    const prev = '0'.repeat(64);
    const chain = { stream, seq, prev, hash: chainHash(prev, stream, seq, serialized.json) };
    bytes += Buffer.from(chainedLine(serialized.record, chain, JSON.stringify(stream)), 'utf8').length;
  }
  return bytes;
}

const stages: Array<[string, number]> = [
  ['per-record work, former code', stage(RECORDS, (i) => formerPerRecordWork(sample, i))],
  ['per-record work, now', stage(RECORDS, (i) => currentPerRecordWork(sample, i))],
  ['decisionForTrail (JSON directly)', stage(RECORDS, (i) => decisionForTrail(contexts[i % 1000]!, outcome, endedAt))],
  ['decision-log JSON.stringify', stage(RECORDS, () => JSON.stringify(sample))],
  ['canonicalJson(hashedBody)', stage(RECORDS, () => canonicalJson(hashedBody(sample)))],
  ['serializeRecord (check + JSON)', stage(RECORDS, () => serializeRecord(sample))],
  ['sha256 chain hash', stage(RECORDS, (i) => chainHash('0'.repeat(64), 'combined', i, canonical))],
];

/** The whole per-record path of `finish()` with a real trail and decision log on disk. */
async function wholePath(): Promise<{ cpu: number; wall: number }> {
  const root = mkdtempSync(join(tmpdir(), 'portcullis-audit-cost-'));
  try {
    const trail = await openAuditTrail({
      dir: join(root, 'trail'),
      flush: 'interval',
      // Only the explicit flushes below write: one cycle per `BATCH` records.
      flushIntervalMs: 3_600_000,
      checkpointIntervalMs: 60_000,
      checkpointEvery: 1000,
      signingKeyPath: null,
      keyDir: join(root, 'keys'),
      maxQueue: BATCH * 2 + 10,
    });
    const decisionLog = openDecisionLog(join(root, 'decisions.jsonl'));
    const cpuStart = cpuMicros();
    const wallStart = performance.now();
    for (let i = 0; i < RECORDS; i++) {
      const context = contexts[i % 1000]! as { requestId: string };
      // Unique per record: `audit verify` pairs a partner stream's records with the combined stream's by request id.
      context.requestId = `0b6c2f0e-6a3c-4d0e-9d59-${String(i).padStart(12, '0')}`;
      // As pipeline.ts finish() does: one serialization for the decision log and the trail.
      const record = logDecision(decisionLog, context as DecisionInput, outcome, process.hrtime.bigint());
      if (!trail.append(record, 'acme')) throw new Error('trail refused a record');
      if ((i + 1) % BATCH === 0) await trail.flush();
    }
    await trail.flush();
    decisionLog.flush();
    const cpu = (cpuMicros() - cpuStart) / RECORDS;
    const wall = ((performance.now() - wallStart) * 1000) / RECORDS;
    await trail.close();
    decisionLog.close();
    // Faster is worthless if `audit verify` cannot read what was written.
    const report = await verifyTrail(join(root, 'trail'), { publicKeyPem: trail.publicKeyPem });
    if (!report.ok) throw new Error(`the trail written does not verify: ${JSON.stringify(report.streams.map((stream) => stream.firstProblem))}`);
    return { cpu, wall };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

const whole: Array<{ cpu: number; wall: number }> = [];
for (let round = 0; round < ROUNDS; round++) whole.push(await wholePath());
whole.sort((a, b) => a.cpu - b.cpu);
const median = whole[Math.floor(whole.length / 2)]!;

console.log(`audit cost per record (${RECORDS} records, ${ROUNDS} rounds, write+fdatasync every ${BATCH}); record ${Buffer.byteLength(JSON.stringify(sample))} bytes`);
for (const [name, micros] of stages) console.log(`  ${name.padEnd(32)} ${micros.toFixed(2).padStart(7)} µs (best round)`);
console.log(`  ${'whole path: CPU'.padEnd(32)} ${median.cpu.toFixed(2).padStart(7)} µs/record (median round; min ${whole[0]!.cpu.toFixed(2)}, max ${whole.at(-1)!.cpu.toFixed(2)})`);
console.log(`  ${'whole path: wall'.padEnd(32)} ${median.wall.toFixed(2).padStart(7)} µs/record`);
