// `verifyTrail` against trails written by the real writer (`openAuditTrail`), then tampered
// with the way an intruder would: one byte, a deleted line, a swap, a cut tail, a rewritten and
// re-chained stream, a forged checkpoint. Each names the kind of damage and where it starts.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { cp, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkpointMessage, lineHash } from '../../src/audit/chain-format.ts';
import { openAuditTrail } from '../../src/audit/trail.ts';
import { verifyTrail } from '../../src/audit/verify.ts';
import type { StreamReport, TrailReport } from '../../src/audit/verify.ts';

let workDir: string;
/** A pristine trail (<pristine>/audit, key in <pristine>/audit-keys); each test tampers with a copy. */
let pristine: string;
let publicKeyPem: string;
let copies = 0;

/** acme 6, globex 3, one anonymous request: interleaved, as traffic is. */
const TRAFFIC: readonly (string | null)[] = ['acme', 'globex', 'acme', null, 'acme', 'globex', 'acme', 'acme', 'globex', 'acme'];

function decision(index: number, partner: string | null): object {
  return {
    '@timestamp': new Date(Date.UTC(2026, 10, 28, 19, 0, index)).toISOString(),
    event: { kind: 'event', action: 'gateway.request', reason: partner ? 'allowed' : 'credential.missing' },
    http: { request: { id: `req-${index}`, method: 'GET' }, response: { status_code: partner ? 200 : 401 } },
    url: { path: `/orders/${index}` },
    portcullis: { decision: partner ? 'allow' : 'deny', partner: partner ? { id: partner, tier: 'gold' } : null, route: 'orders' },
  };
}

before(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'portcullis-verify-'));
  pristine = join(workDir, 'pristine');
  const trail = await openAuditTrail({
    dir: join(pristine, 'audit'),
    keyDir: join(pristine, 'audit-keys'),
    signingKeyPath: null,
    flush: 'os',
    flushIntervalMs: 3_600_000,
    checkpointIntervalMs: 3_600_000,
    // combined: 4 records then a checkpoint (seq 5), …; acme: the same, so its stream has one mid-stream checkpoint.
    checkpointEvery: 4,
    maxQueue: 1000,
  });
  TRAFFIC.forEach((partner, index) => assert.equal(trail.append(decision(index + 1, partner), partner), true));
  await trail.close();
  publicKeyPem = trail.publicKeyPem;
});
after(async () => rm(workDir, { recursive: true, force: true }));

/** A fresh copy of the pristine trail; returns its `audit` folder. */
async function copyOfTrail(): Promise<string> {
  const root = join(workDir, `copy-${++copies}`);
  await cp(pristine, root, { recursive: true });
  return join(root, 'audit');
}

async function readLines(file: string): Promise<string[]> {
  return (await readFile(file, 'utf8')).split('\n').slice(0, -1);
}

async function writeLines(file: string, lines: readonly string[]): Promise<void> {
  await writeFile(file, lines.map((line) => `${line}\n`).join(''));
}

function streamOf(report: TrailReport, stream: string): StreamReport {
  const found = report.streams.find((entry) => entry.stream === stream);
  assert.ok(found, `the report has stream ${stream}`);
  return found;
}

/** Every stream but the named ones is intact. */
function assertOthersIntact(report: TrailReport, ...damaged: string[]): void {
  for (const stream of report.streams) if (!damaged.includes(stream.stream)) assert.equal(stream.firstProblem, null, stream.stream);
}

/** Re-chains lines from `from` (0-based) on, as an intruder with write access but no signing key would. */
function rechain(lines: string[], from: number, resignWith: KeyObject | null = null): string[] {
  const parsed = lines.map((line) => JSON.parse(line));
  for (let index = from; index < parsed.length; index++) {
    const line = parsed[index];
    const chain = line.portcullis.chain;
    chain.seq = index + 1;
    chain.prev = index === 0 ? '0'.repeat(64) : parsed[index - 1].portcullis.chain.hash;
    delete chain.hash;
    if (resignWith && line.event.action === 'audit.checkpoint') {
      line.portcullis.checkpoint.signature = sign(null, Buffer.from(checkpointMessage(chain.stream, chain.seq, chain.prev)), resignWith).toString('base64url');
    }
    chain.hash = lineHash(chain.prev, line);
  }
  return parsed.map((line) => JSON.stringify(line));
}

test('an untouched trail verifies: every stream intact, every tail signed, the key found next to the trail', async () => {
  const report = await verifyTrail(join(pristine, 'audit'), {});
  assert.equal(report.ok, true, JSON.stringify(report, null, 1));
  assert.equal(report.signatures, 'verified');
  assert.equal(report.keySource, join(pristine, 'audit-keys', 'audit-signing.pub'));
  assert.equal(report.crossChecked, true);
  assert.deepEqual(report.streams.map((stream) => stream.stream), ['combined', 'partner/acme', 'partner/globex']);
  const combined = streamOf(report, 'combined');
  // 10 records + a checkpoint after every 4 + the closing checkpoint.
  assert.deepEqual({ lines: combined.lines, lastSeq: combined.lastSeq, lastCheckpointSeq: combined.lastCheckpointSeq }, { lines: 13, lastSeq: 13, lastCheckpointSeq: 13 });
  for (const stream of report.streams) assert.equal(stream.tailCovered, true, stream.stream);
});

test('one byte changed in a record: edited, at that line', async () => {
  const trail = await copyOfTrail();
  const file = join(trail, 'combined.jsonl');
  const lines = await readLines(file);
  assert.ok(lines[2]!.includes('/orders/3'));
  lines[2] = lines[2]!.replace('/orders/3', '/orders/4');
  await writeLines(file, lines);
  const report = await verifyTrail(trail, { publicKeyPem });
  assert.equal(report.ok, false);
  assert.deepEqual(streamOf(report, 'combined').firstProblem, { line: 3, seq: 3, kind: 'edited', detail: 'the content does not match its hash' });
  assert.equal(streamOf(report, 'combined').tailCovered, false);
});

test('one byte changed in a seq number: edited, not mistaken for a removal', async () => {
  const trail = await copyOfTrail();
  const file = join(trail, 'combined.jsonl');
  const lines = await readLines(file);
  lines[5] = lines[5]!.replace('"seq":6', '"seq":7');
  await writeLines(file, lines);
  const problem = streamOf(await verifyTrail(trail, { publicKeyPem }), 'combined').firstProblem;
  assert.equal(problem?.kind, 'edited');
  assert.equal(problem?.line, 6);
});

test('a record edited and given a fresh hash: the edited line is named, through the next line\'s prev', async () => {
  const trail = await copyOfTrail();
  const file = join(trail, 'partners', 'acme.jsonl');
  const lines = await readLines(file);
  const edited = JSON.parse(lines[1]!);
  edited.url.path = '/orders/999';
  delete edited.portcullis.chain.hash;
  edited.portcullis.chain.hash = lineHash(edited.portcullis.chain.prev, edited);
  lines[1] = JSON.stringify(edited);
  await writeLines(file, lines);
  const problem = streamOf(await verifyTrail(trail, { publicKeyPem }), 'partner/acme').firstProblem;
  assert.equal(problem?.kind, 'edited');
  assert.equal(problem?.line, 2);
  assert.equal(problem?.seq, 2);
});

test('a record deleted: removed, at the line after the gap', async () => {
  const trail = await copyOfTrail();
  const file = join(trail, 'combined.jsonl');
  const lines = await readLines(file);
  lines.splice(2, 1);
  await writeLines(file, lines);
  const report = await verifyTrail(trail, { publicKeyPem });
  assert.deepEqual(streamOf(report, 'combined').firstProblem, { line: 3, seq: 4, kind: 'removed', detail: 'seq 3 is missing before this line' });
  assertOthersIntact(report, 'combined');
});

test('two records swapped: reordered, at the first line out of place', async () => {
  const trail = await copyOfTrail();
  const file = join(trail, 'combined.jsonl');
  const lines = await readLines(file);
  [lines[1], lines[2]] = [lines[2]!, lines[1]!];
  await writeLines(file, lines);
  const problem = streamOf(await verifyTrail(trail, { publicKeyPem }), 'combined').firstProblem;
  assert.equal(problem?.kind, 'reordered');
  assert.equal(problem?.line, 2);
  assert.equal(problem?.seq, 3);
  assert.match(problem!.detail, /seq 2 comes later, at line 3/);
});

test('the tail cut mid-line: truncated, at the torn last line', async () => {
  const trail = await copyOfTrail();
  const file = join(trail, 'partners', 'globex.jsonl');
  const text = await readFile(file, 'utf8');
  await truncate(file, Buffer.byteLength(text) - 40);
  const report = await verifyTrail(trail, { publicKeyPem });
  const globex = streamOf(report, 'partner/globex');
  // globex: 3 records + the closing checkpoint; the checkpoint is the torn line.
  assert.equal(globex.lines, 4);
  assert.equal(globex.firstProblem?.kind, 'truncated');
  assert.equal(globex.firstProblem?.line, 4);
  assert.match(globex.firstProblem!.detail, /cut short/);
  assert.equal(globex.tailCovered, false);
});

test('whole lines removed after a checkpoint of a partner stream: truncated, found through the combined stream', async () => {
  const trail = await copyOfTrail();
  const file = join(trail, 'partners', 'acme.jsonl');
  const lines = await readLines(file);
  // acme: 4 records, checkpoint (seq 5), 2 records, closing checkpoint. Keep up to the first checkpoint.
  assert.equal(JSON.parse(lines[4]!).event.action, 'audit.checkpoint');
  await writeLines(file, lines.slice(0, 5));
  const report = await verifyTrail(trail, { publicKeyPem });
  const acme = streamOf(report, 'partner/acme');
  // On its own the cut stream is flawless — a valid chain ending in a valid checkpoint.
  assert.equal(acme.lastCheckpointSeq, 5);
  assert.equal(acme.firstProblem?.kind, 'truncated');
  assert.equal(acme.firstProblem?.line, 6);
  assert.equal(acme.firstProblem?.seq, 6);
  assert.match(acme.firstProblem!.detail, /combined\.jsonl line 9 \(seq 9, signed by the combined checkpoint at seq 13\) is missing from its end/);
  assertOthersIntact(report, 'partner/acme');
});

test('whole lines removed after a checkpoint of the combined stream: truncated, found through the partner streams', async () => {
  const trail = await copyOfTrail();
  const file = join(trail, 'combined.jsonl');
  const lines = await readLines(file);
  assert.equal(JSON.parse(lines[9]!).event.action, 'audit.checkpoint');
  await writeLines(file, lines.slice(0, 10));
  const combined = streamOf(await verifyTrail(trail, { publicKeyPem }), 'combined');
  assert.equal(combined.firstProblem?.kind, 'truncated');
  assert.equal(combined.firstProblem?.line, 11);
});

test('a line deleted from a partner stream and the chain fixed after it: still removed, through the combined stream', async () => {
  const trail = await copyOfTrail();
  const file = join(trail, 'partners', 'acme.jsonl');
  const lines = await readLines(file);
  lines.splice(1, 1);
  await writeLines(file, rechain(lines, 1));
  const acme = streamOf(await verifyTrail(trail, { publicKeyPem }), 'partner/acme');
  assert.equal(acme.firstProblem?.kind, 'removed');
  assert.equal(acme.firstProblem?.line, 2);
  assert.match(acme.firstProblem!.detail, /combined\.jsonl line 3 /);
});

test('a stream rewritten and re-chained from an edit onwards: the next checkpoint no longer verifies', async () => {
  const trail = await copyOfTrail();
  const file = join(trail, 'combined.jsonl');
  const lines = await readLines(file);
  // The anonymous request (no partner stream to compare with) is rewritten as allowed.
  const edited = JSON.parse(lines[3]!);
  assert.equal(edited.portcullis.partner, null);
  edited.portcullis.decision = 'allow';
  lines[3] = JSON.stringify(edited);
  await writeLines(file, rechain(lines, 3));
  const problem = streamOf(await verifyTrail(trail, { publicKeyPem }), 'combined').firstProblem;
  assert.deepEqual(problem, { line: 5, seq: 5, kind: 'forged_checkpoint', detail: 'the signature does not verify with the trail\'s public key' });
});

test('a checkpoint signed with another key: forged_checkpoint, even with its hash fixed', async () => {
  const trail = await copyOfTrail();
  const file = join(trail, 'partners', 'globex.jsonl');
  const lines = await readLines(file);
  const intruderKey = generateKeyPairSync('ed25519').privateKey;
  await writeLines(file, rechain(lines, 3, intruderKey));
  const report = await verifyTrail(trail, { publicKeyPem });
  assert.deepEqual(streamOf(report, 'partner/globex').firstProblem, {
    line: 4,
    seq: 4,
    kind: 'forged_checkpoint',
    detail: 'the signature does not verify with the trail\'s public key',
  });
  assertOthersIntact(report, 'partner/globex');
});

test('a checkpoint whose signature was edited: forged_checkpoint', async () => {
  const trail = await copyOfTrail();
  const file = join(trail, 'combined.jsonl');
  const lines = await readLines(file);
  const checkpoint = JSON.parse(lines[4]!);
  const signature: string = checkpoint.portcullis.checkpoint.signature;
  const flipped = `${signature[0] === 'A' ? 'B' : 'A'}${signature.slice(1)}`;
  lines[4] = lines[4]!.replace(signature, flipped);
  await writeLines(file, lines);
  const problem = streamOf(await verifyTrail(trail, { publicKeyPem }), 'combined').firstProblem;
  assert.equal(problem?.kind, 'forged_checkpoint');
  assert.equal(problem?.line, 5);
  assert.match(problem!.detail, /its hash does not match either/);
});

test('a line of another stream spliced in: foreign_line', async () => {
  const trail = await copyOfTrail();
  const acmeLines = await readLines(join(trail, 'partners', 'acme.jsonl'));
  const globexFile = join(trail, 'partners', 'globex.jsonl');
  const globexLines = await readLines(globexFile);
  globexLines.splice(1, 0, acmeLines[1]!);
  await writeLines(globexFile, globexLines);
  const problem = streamOf(await verifyTrail(trail, { publicKeyPem }), 'partner/globex').firstProblem;
  assert.equal(problem?.kind, 'foreign_line');
  assert.equal(problem?.line, 2);
});

test('without the public key the chains are checked but the trail does not verify', async () => {
  const trail = await copyOfTrail();
  await rm(join(trail, '..', 'audit-keys'), { recursive: true });
  const report = await verifyTrail(trail, {});
  assert.equal(report.signatures, 'no_key');
  assert.equal(report.keySource, null);
  assert.equal(report.ok, false);
  for (const stream of report.streams) {
    assert.equal(stream.firstProblem, null);
    assert.equal(stream.lastCheckpointSeq, null);
    assert.equal(stream.tailCovered, false);
  }
});

test('a wrong key makes every checkpoint a forgery', async () => {
  const otherPem = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }) as string;
  const report = await verifyTrail(join(pristine, 'audit'), { publicKeyPem: otherPem });
  for (const stream of report.streams) assert.equal(stream.firstProblem?.kind, 'forged_checkpoint', stream.stream);
});

test('one stream file on its own: its chain is verified, without cross-checks', async () => {
  const report = await verifyTrail(join(pristine, 'audit', 'partners', 'acme.jsonl'), {});
  assert.equal(report.crossChecked, false);
  assert.equal(report.signatures, 'verified');
  assert.deepEqual(report.streams.map((stream) => [stream.stream, stream.ok, stream.tailCovered]), [['partner/acme', true, true]]);
});

test('a path that is not a trail, or a key that is not Ed25519, is an input error', async () => {
  await assert.rejects(verifyTrail(join(workDir, 'nope'), {}), { name: 'TrailInputError' });
  await assert.rejects(verifyTrail(workDir, {}), { name: 'TrailInputError', message: /holds no audit trail/ });
  const ecPem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
  await assert.rejects(verifyTrail(join(pristine, 'audit'), { publicKeyPem: ecPem }), { name: 'TrailInputError', message: /Ed25519/ });
});
