// `queryTrail` over a trail written by the real writer: each filter narrows the answer, a partner
// query reads the partner's own stream, checkpoints are not records, and the table cannot be
// used to send control characters to the operator's terminal.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openAuditTrail } from '../../src/audit/trail.ts';
import { formatTable, queryTrail } from '../../src/audit/query.ts';
import type { QueryFilters, QueryResult } from '../../src/audit/query.ts';

let dir: string;
let trail: string;

interface Spec {
  readonly partner: string | null;
  readonly decision: 'allow' | 'deny' | 'error';
  readonly reason: string;
  readonly route: string | null;
  readonly path?: string;
}

const SPECS: readonly Spec[] = [
  { partner: 'acme', decision: 'allow', reason: 'allowed', route: 'orders' },
  { partner: null, decision: 'deny', reason: 'credential.missing', route: 'orders' },
  { partner: 'acme', decision: 'deny', reason: 'token.expired', route: 'orders' },
  { partner: 'globex', decision: 'deny', reason: 'token.audience_mismatch', route: 'invoices' },
  { partner: 'globex', decision: 'allow', reason: 'allowed', route: 'invoices' },
  { partner: 'acme', decision: 'error', reason: 'upstream.timeout', route: 'invoices' },
  { partner: null, decision: 'deny', reason: 'route.not_found', route: null, path: '/\u001b[2Jhello' },
];

function record(index: number, spec: Spec): object {
  return {
    '@timestamp': new Date(Date.UTC(2026, 10, 28, 19, index)).toISOString(),
    event: { kind: 'event', action: 'gateway.request', reason: spec.reason },
    http: { request: { id: `req-${index}`, method: 'GET' }, response: { status_code: spec.decision === 'allow' ? 200 : 403 } },
    url: { path: spec.path ?? `/${spec.route}/${index}` },
    portcullis: {
      decision: spec.decision,
      reason: spec.reason,
      route: spec.route,
      partner: spec.partner ? { id: spec.partner, tier: 'gold' } : null,
      ...(spec.partner ? { agreement: { id: `AGR-${spec.partner}` }, credential: { id: `${spec.partner}-idp`, type: 'jwt', long_lived: false } } : {}),
      decided_by: spec.decision === 'allow' ? `grant:${spec.route}#0` : null,
    },
  };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portcullis-query-'));
  trail = join(dir, 'audit');
  const writer = await openAuditTrail({
    dir: trail,
    keyDir: join(dir, 'audit-keys'),
    signingKeyPath: null,
    flush: 'os',
    flushIntervalMs: 3_600_000,
    checkpointIntervalMs: 3_600_000,
    checkpointEvery: 2,
    maxQueue: 100,
  });
  SPECS.forEach((spec, index) => assert.equal(writer.append(record(index, spec), spec.partner), true));
  await writer.close();
});
after(async () => rm(dir, { recursive: true, force: true }));

async function ids(filters: QueryFilters, path = trail): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of queryTrail(path, filters)) found.push((entry['http'] as { request: { id: string } }).request.id);
  return found;
}

test('no filter: every record of the combined stream, in order, and no checkpoint', async () => {
  assert.deepEqual(await ids({}), ['req-0', 'req-1', 'req-2', 'req-3', 'req-4', 'req-5', 'req-6']);
});

test('--partner reads the partner\'s own stream', async () => {
  const streams: string[] = [];
  for await (const entry of queryTrail(trail, { partner: 'acme' })) streams.push((entry['portcullis'] as { chain: { stream: string } }).chain.stream);
  assert.deepEqual(streams, ['partner/acme', 'partner/acme', 'partner/acme']);
  assert.deepEqual(await ids({ partner: 'acme' }), ['req-0', 'req-2', 'req-5']);
  assert.deepEqual(await ids({ partner: 'initech' }), [], 'a partner with no stream made no request');
});

test('--partner on one stream file filters its records', async () => {
  assert.deepEqual(await ids({ partner: 'globex' }, join(trail, 'combined.jsonl')), ['req-3', 'req-4']);
});

test('--decision, --route and an exact --reason', async () => {
  assert.deepEqual(await ids({ decision: 'deny' }), ['req-1', 'req-2', 'req-3', 'req-6']);
  assert.deepEqual(await ids({ route: 'invoices' }), ['req-3', 'req-4', 'req-5']);
  assert.deepEqual(await ids({ reason: 'token.expired' }), ['req-2']);
  assert.deepEqual(await ids({ reason: 'token' }), [], 'a reason matches exactly, not as a prefix');
});

test('--reason CATEGORY.* matches the category only', async () => {
  assert.deepEqual(await ids({ reason: 'token.*' }), ['req-2', 'req-3']);
  assert.deepEqual(await ids({ reason: 'upstream.*', partner: 'acme' }), ['req-5']);
});

test('--since is inclusive, --until exclusive', async () => {
  const since = new Date(Date.UTC(2026, 10, 28, 19, 2));
  const until = new Date(Date.UTC(2026, 10, 28, 19, 4));
  assert.deepEqual(await ids({ since, until }), ['req-2', 'req-3']);
  assert.deepEqual(await ids({ since, until, partner: 'globex', decision: 'deny' }), ['req-3']);
});

test('bad filters are refused before anything is read', async () => {
  await assert.rejects(ids({ partner: '../combined' }), { name: 'QueryInputError', message: /not a partner id/ });
  await assert.rejects(ids({ reason: 'token*' }), { name: 'QueryInputError' });
  await assert.rejects(ids({ since: new Date('nope') }), { name: 'QueryInputError' });
  await assert.rejects(ids({}, join(dir, 'missing')), { name: 'QueryInputError', message: /cannot be read/ });
});

test('the table shows who called what under which agreement, with control characters escaped', async () => {
  const records = [];
  for await (const entry of queryTrail(trail, {})) records.push(entry);
  const lines = formatTable(records).trimEnd().split('\n');
  assert.match(lines[0]!, /^time\s+request_id\s+partner\s+agreement\s+credential\s+method\s+path\s+route\s+decision\s+reason\s+status\s+decided_by$/);
  assert.match(lines[1]!, /^2026-11-28T19:00:00\.000Z\s+req-0\s+acme\s+AGR-acme\s+acme-idp\s+GET\s+\/orders\/0\s+orders\s+allow\s+allowed\s+200\s+grant:orders#0$/);
  assert.match(lines[2]!, /req-1\s+-\s+-\s+-\s+GET/);
  assert.ok(!lines.join('\n').includes('\u001b'), 'no raw ESC reaches the terminal');
  assert.match(lines[7]!, /\/\\u001b\[2Jhello/);
});

test('a line that cannot be read is skipped and counted, not guessed at', async () => {
  const copy = join(dir, 'broken.jsonl');
  await appendFile(copy, '{"@timestamp":"2026-11-28T19:00:00.000Z","http":{"request":{"id":"ok-1"}}}\n{"broken\n{"a":1,"a":2}\n');
  const result: QueryResult = { unreadable: [] };
  const found = [];
  for await (const entry of queryTrail(copy, {}, result)) found.push(entry);
  assert.equal(found.length, 1);
  assert.deepEqual(result.unreadable.map((entry) => entry.line), [2, 3]);
  assert.match(result.unreadable[1]!.detail, /duplicate_member/);
});
