// A stop between a write cycle's combined write and its partner writes leaves records only the
// combined stream holds; the next start copies them to the partner stream (src/audit/reconcile.ts)
// so that `audit verify` passes again — and touches nothing it cannot prove it should.
import { after, before, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, readdir, readlink, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RECOVERED_ACTION } from '../../src/audit/chain-format.ts';
import { openAuditTrail } from '../../src/audit/trail.ts';
import type { AuditTrailOptions } from '../../src/audit/trail.ts';
import { verifyTrail } from '../../src/audit/verify.ts';
import { setLogListener } from '../../src/log.ts';
import { assertChain, readStream, records } from './trail-chain.ts';
import { decision, trailOptions } from './trail-fixtures.ts';
import type { Line } from './trail-chain.ts';

let root: string;
let dir: string;
let logs: { event: string; fields: Record<string, unknown> }[] = [];

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'portcullis-reconcile-'));
  setLogListener((entry) => logs.push({ event: entry.event, fields: entry }), { quiet: true });
});
after(async () => {
  setLogListener(null);
  await rm(root, { recursive: true, force: true });
});
let counter = 0;
beforeEach(() => {
  counter += 1;
  dir = join(root, `case-${counter}`, 'trail');
  logs = [];
});

function options(overrides: Partial<AuditTrailOptions> = {}): AuditTrailOptions {
  return trailOptions(dir, overrides);
}

/** Writes record n for `partners[n]`, for every n, and closes cleanly. */
async function writeTrail(partners: readonly (string | null)[], overrides: Partial<AuditTrailOptions> = {}): Promise<{ publicKeyPem: string; keyId: string }> {
  const trail = await openAuditTrail(options(overrides));
  partners.forEach((partner, n) => assert.ok(trail.append(decision(n, partner), partner)));
  await trail.close();
  return { publicKeyPem: trail.publicKeyPem, keyId: trail.keyId };
}

/** What a stop right after the combined write leaves: the file holds only its first `keep` lines. */
async function keepLines(file: string, keep: number): Promise<void> {
  const text = await readFile(join(dir, file), 'utf8');
  const lines = text.split('\n').slice(0, keep);
  await truncate(join(dir, file), Buffer.byteLength(lines.map((line) => `${line}\n`).join('')));
}

const ids = (lines: readonly Line[]): string[] => records(lines).map((line) => (line['http'] as { request: { id: string } }).request.id);

async function reopenAndClose(overrides: Partial<AuditTrailOptions> = {}): Promise<void> {
  const trail = await openAuditTrail(options(overrides));
  await trail.close();
}

async function assertVerifies(publicKeyPem: string): Promise<void> {
  const report = await verifyTrail(dir, { publicKeyPem });
  assert.equal(report.ok, true, JSON.stringify(report.streams.filter((stream) => !stream.ok), null, 1));
  assert.equal(report.crossChecked, true);
}

test('records the combined stream holds and the partner stream lost are copied on, after a line that says so, and the trail verifies', async () => {
  const { publicKeyPem, keyId } = await writeTrail(['acme', null, 'acme', 'acme', 'globex', 'acme', 'acme']);
  await keepLines('partners/acme.jsonl', 2); // req-0 and req-2: the last cycle's req-3, req-5, req-6 never reached it
  const before = await verifyTrail(dir, { publicKeyPem });
  assert.equal(before.ok, false, 'the cut is what audit verify reports');

  await reopenAndClose();
  const acme = await readStream(join(dir, 'partners/acme.jsonl'));
  assertChain(acme, 'partner/acme', publicKeyPem, keyId);
  assert.deepEqual(ids(acme), ['req-0', 'req-2', 'req-3', 'req-5', 'req-6']);
  const note = acme[2]!;
  assert.equal(note.event?.action, RECOVERED_ACTION);
  assert.deepEqual(note.portcullis['recovered'], { copied_records: 3, from_stream: 'combined' });
  const repaired = logs.find((entry) => entry.event === 'audit.stream_repaired');
  assert.equal(repaired?.fields['stream'], 'partner/acme');
  assert.equal(repaired?.fields['copied_records'], 3);
  assert.equal(logs.filter((entry) => entry.event === 'audit.stream_repaired').length, 1, 'globex was whole and is left alone');
  await assertVerifies(publicKeyPem);

  // The repair is done once: the next start finds nothing to copy.
  logs = [];
  await reopenAndClose();
  assert.deepEqual(ids(await readStream(join(dir, 'partners/acme.jsonl'))), ['req-0', 'req-2', 'req-3', 'req-5', 'req-6']);
  assert.equal(logs.some((entry) => entry.event === 'audit.stream_repaired'), false);
});

/** Files under the trail folder this process holds open. */
async function openTrailFiles(): Promise<string[]> {
  const targets = await Promise.all((await readdir('/proc/self/fd')).map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')));
  return targets.filter((target) => target.startsWith(dir));
}

test('a partner whose stream file was never written gets one, with every record the combined stream holds for it', async () => {
  const { publicKeyPem } = await writeTrail([null, 'acme', null, 'acme']);
  await rm(join(dir, 'partners/acme.jsonl'));
  const trail = await openAuditTrail(options());
  // The repair wrote the file and closed it: the write cycles decide which partner files stay open.
  assert.deepEqual((await openTrailFiles()).filter((path) => path.includes('partners')), []);
  await trail.close();
  const acme = await readStream(join(dir, 'partners/acme.jsonl'));
  assert.deepEqual(ids(acme), ['req-1', 'req-3']);
  assert.equal(acme[0]!.event?.action, RECOVERED_ACTION);
  await assertVerifies(publicKeyPem);
});

test('a clean stop leaves nothing to copy: no recovery line in any stream', async () => {
  await writeTrail(['acme', 'globex', null, 'acme']);
  await reopenAndClose();
  for (const file of ['combined.jsonl', 'partners/acme.jsonl', 'partners/globex.jsonl']) {
    const lines = await readStream(join(dir, file));
    assert.equal(lines.some((line) => line.event?.action === RECOVERED_ACTION), false, file);
  }
  assert.equal(logs.some((entry) => entry.event === 'audit.stream_repaired' || entry.event === 'audit.reconcile_skipped'), false);
});

test('the records to copy are found across the combined stream\'s rotated segments', async () => {
  const partners = Array.from({ length: 40 }, (_, n) => (n % 3 === 0 ? 'acme' : null));
  const { publicKeyPem } = await writeTrail(partners, { rotate: { maxBytes: 4096, daily: false } });
  assert.ok((await readdir(dir)).filter((name) => name.startsWith('combined.') && name !== 'combined.jsonl').length >= 2, 'the combined stream rotated');
  // acme's own stream is cut back to its first two records (its live file and segments both).
  await rm(join(dir, 'partners'), { recursive: true });
  await reopenAndClose({ rotate: { maxBytes: 4096, daily: false } });
  const acmeFiles = (await readdir(join(dir, 'partners'))).sort();
  const acme = (await Promise.all(acmeFiles.map((file) => readStream(join(dir, 'partners', file))))).flat();
  assert.deepEqual(ids(acme).sort(), partners.flatMap((partner, n) => (partner === 'acme' ? [`req-${n}`] : [])).sort());
  await assertVerifies(publicKeyPem);
});

test('a partner stream holding a record the combined stream does not is not a cut-short cycle: left alone for audit verify', async () => {
  const { publicKeyPem } = await writeTrail(['acme', 'acme', 'acme']);
  const before = await stat(join(dir, 'partners/acme.jsonl'));
  await keepLines('combined.jsonl', 1); // combined keeps req-0 only
  await reopenAndClose();
  const skipped = logs.find((entry) => entry.event === 'audit.reconcile_skipped');
  assert.equal(skipped?.fields['stream'], 'partner/acme');
  const acme = await readStream(join(dir, 'partners/acme.jsonl'));
  assert.equal(acme.some((line) => line.event?.action === RECOVERED_ACTION), false);
  assert.ok((await stat(join(dir, 'partners/acme.jsonl'))).size >= before.size);
  const report = await verifyTrail(dir, { publicKeyPem });
  assert.equal(report.ok, false, 'audit verify still reports what is missing from combined.jsonl');
});

test('an edited line in the combined stream\'s tail stops the copy: nothing unproven is written into a partner stream', async () => {
  const { publicKeyPem } = await writeTrail(['acme', 'acme', 'acme', 'acme']);
  await keepLines('partners/acme.jsonl', 1);
  const combinedPath = join(dir, 'combined.jsonl');
  const text = await readFile(combinedPath, 'utf8');
  // req-2 is one of the records to copy; the edit keeps the JSON valid and the length the same.
  await writeFile(combinedPath, text.replace('"decision":"allow","n":2', '"decision":"ALLOW","n":2'));
  await reopenAndClose();
  assert.ok(logs.some((entry) => entry.event === 'audit.reconcile_skipped' && /does not match its hash/.test(String(entry.fields['reason']))));
  assert.deepEqual(ids(await readStream(join(dir, 'partners/acme.jsonl'))), ['req-0']);
  assert.equal((await verifyTrail(dir, { publicKeyPem })).ok, false);
});

test('a partner stream whose records are no longer on disk (segments moved away) is not filled from the combined stream', async () => {
  await writeTrail(['acme', 'acme', 'acme']);
  // What is left when the segments holding its records were archived: a live file with only the
  // closing checkpoint, which still continues the chain.
  const path = join(dir, 'partners/acme.jsonl');
  const lines = (await readFile(path, 'utf8')).split('\n').filter(Boolean);
  await writeFile(path, `${lines.at(-1)}\n`);
  await reopenAndClose();
  const acme = await readStream(path);
  assert.equal(acme.some((line) => line.event?.action === RECOVERED_ACTION), false);
  assert.deepEqual(ids(acme), [], 'nothing copied: the three records it held would have been duplicated');
  assert.equal(logs.some((entry) => entry.event === 'audit.stream_repaired'), false);
});

const hasPrlimit = spawnSync('prlimit', ['--version']).status === 0;

test('a write cycle puts the combined stream on disk before any partner stream: a failed combined write writes no partner line', { skip: hasPrlimit ? false : 'needs prlimit (util-linux)' }, async () => {
  const child = join(import.meta.dirname, 'trail-combined-first-child.ts');
  const output = execFileSync('prlimit', ['--fsize=3000:unlimited', process.execPath, child, dir, join(dir, '..', 'keys')], { encoding: 'utf8' });
  const result = JSON.parse(output) as { flushError: string | null; during: { combinedBytes: number; partnerBytes: number }; after: { queued: number; written: number }; publicKeyPem: string };
  assert.match(String(result.flushError), /EFBIG/);
  assert.equal(result.during.combinedBytes, 3000, 'the combined write stopped at the limit');
  assert.equal(result.during.partnerBytes, 0, 'no partner line went to disk ahead of its combined line');
  assert.equal(result.after.queued, 0);
  assert.equal(result.after.written, 20);
  await assertVerifies(result.publicKeyPem);
});
