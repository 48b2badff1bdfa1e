// `portcullis audit verify | query` through the real CLI: what the operator reads, and the exit
// status a script relies on.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { openAuditTrail } from '../../src/audit/trail.ts';

const run = promisify(execFile);
const MAIN = new URL('../../src/cli/main.ts', import.meta.url).pathname;
let dir: string;
let trail: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portcullis-audit-cli-'));
  trail = join(dir, 'data', 'audit');
  const writer = await openAuditTrail({
    dir: trail,
    keyDir: join(dir, 'data', 'audit-keys'),
    signingKeyPath: null,
    flush: 'os',
    flushIntervalMs: 3_600_000,
    checkpointIntervalMs: 3_600_000,
    checkpointEvery: 3,
    maxQueue: 100,
  });
  ['acme', 'globex', 'acme', null, 'acme'].forEach((partner, index) => {
    writer.append(
      {
        '@timestamp': new Date(Date.UTC(2026, 10, 28, 19, index)).toISOString(),
        event: { kind: 'event', action: 'gateway.request', reason: partner ? 'allowed' : 'credential.missing' },
        http: { request: { id: `req-${index}`, method: 'GET' }, response: { status_code: partner ? 200 : 401 } },
        url: { path: `/orders/${index}` },
        portcullis: { decision: partner ? 'allow' : 'deny', reason: partner ? 'allowed' : 'credential.missing', route: 'orders', partner: partner ? { id: partner } : null },
      },
      partner,
    );
  });
  await writer.close();
});
after(async () => rm(dir, { recursive: true, force: true }));

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [MAIN, 'audit', ...args]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

test('verify: an intact trail with signed tails exits 0', async () => {
  const result = await cli('verify', trail);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(result.stdout, /✔ combined\.jsonl \(combined\): 7 line\(s\), seq 1–7, last checkpoint at seq 7, tail signed/);
  assert.match(result.stdout, /VERIFIED: 3 stream\(s\) intact, every tail signed/);
});

test('verify: a tampered trail exits 1 and names the stream, line, seq and kind', async () => {
  const copy = join(dir, 'tampered');
  await cp(join(dir, 'data'), copy, { recursive: true });
  const file = join(copy, 'audit', 'partners', 'acme.jsonl');
  const lines = (await readFile(file, 'utf8')).split('\n');
  [lines[0], lines[1]] = [lines[1]!, lines[0]!];
  await writeFile(file, lines.join('\n'));
  const result = await cli('verify', join(copy, 'audit'));
  assert.equal(result.code, 1);
  assert.match(result.stdout, /✖ partners\/acme\.jsonl \(partner\/acme\): reordered at line 1, seq 2 — /);
  assert.match(result.stdout, /NOT VERIFIED: 1 of 3 stream\(s\)/);

  const json = await cli('verify', join(copy, 'audit'), '--format', 'json');
  assert.equal(json.code, 1);
  const report = JSON.parse(json.stdout);
  assert.equal(report.ok, false);
  assert.deepEqual(report.streams[1].firstProblem.kind, 'reordered');
});

test('verify: without a key the trail does not verify (exit 1) and the output says why', async () => {
  const copy = join(dir, 'keyless');
  await cp(trail, copy, { recursive: true });
  const result = await cli('verify', copy);
  assert.equal(result.code, 1);
  assert.match(result.stdout, /checkpoint signatures NOT checked: no public key/);
  const withKey = await cli('verify', copy, '--key', join(dir, 'data', 'audit-keys', 'audit-signing.pub'));
  assert.equal(withKey.code, 0, withKey.stdout);
});

test('usage errors exit 2', async () => {
  for (const args of [['verify'], ['verify', trail, '--format', 'xml'], ['verify', trail, '--bogus'], ['frobnicate'], [], ['query', trail, '--decision', 'maybe'], ['query', trail, '--since', 'yesterday']]) {
    const result = await cli(...args);
    assert.equal(result.code, 2, args.join(' '));
    assert.match(result.stderr, /^portcullis audit: /, args.join(' '));
  }
  const missing = await cli('verify', join(dir, 'nowhere'));
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /cannot be read/);
});

test('query: a table of the matching records, or JSON lines', async () => {
  const table = await cli('query', trail, '--partner', 'acme');
  assert.equal(table.code, 0, table.stderr);
  const rows = table.stdout.trimEnd().split('\n');
  assert.match(rows[0]!, /^time\s+request_id\s+partner/);
  assert.deepEqual(rows.slice(1).map((row) => row.split(/\s+/)[1]), ['req-0', 'req-2', 'req-4']);

  const json = await cli('query', trail, '--reason', 'credential.*', '--format', 'json');
  assert.equal(json.code, 0, json.stderr);
  const records = json.stdout.trimEnd().split('\n').map((line) => JSON.parse(line));
  assert.deepEqual(records.map((entry) => entry.http.request.id), ['req-3']);
});

test('--help prints the usage of both subcommands', async () => {
  const result = await cli('--help');
  assert.equal(result.code, 0);
  assert.match(result.stdout, /portcullis audit verify PATH/);
  assert.match(result.stdout, /portcullis audit query PATH/);
});
