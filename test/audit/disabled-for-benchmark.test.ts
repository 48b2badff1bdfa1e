// `audit.disabled_for_benchmark` (issue 6: the "audit off" row of bench/) is the only way to run
// without an audit trail. It needs two separate acts — the exact sentence in the config and
// PORTCULLIS_BENCHMARK=1 in the environment — and a gateway running that way says so loudly and
// never reports ready.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { loadConfig } from '../../src/config/load.ts';
import { AUDIT_DISABLED_FOR_BENCHMARK_ACK } from '../../src/config/schema.ts';
import { startGateway } from '../../src/server/gateway.ts';
import type { Gateway } from '../../src/server/gateway.ts';
import { setLogListener } from '../../src/log.ts';
import { startRecordingUpstream } from '../helpers/recording-upstream.ts';
import type { RecordingUpstream } from '../helpers/recording-upstream.ts';
import { accessToken, generateTestKey, jwks } from '../helpers/tokens.ts';

const ISS = 'https://idp.example.test';
const AUD = 'https://api.example.test/orders';
const key = generateTestKey('ES256');
const logLines: Array<{ level: string; event: string; [key: string]: unknown }> = [];
let upstream: RecordingUpstream;
let dir: string;
const running: Gateway[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portcullis-audit-off-'));
  upstream = await startRecordingUpstream();
  await writeFile(join(dir, 'idp.jwks.json'), jwks(key));
  setLogListener((entry) => logLines.push(entry), { quiet: true });
});
after(async () => {
  for (const gateway of running) await gateway.shutdown();
  await upstream?.close();
  if (dir && !process.env.KEEP_TEST_DIRS) await rm(dir, { recursive: true, force: true });
});

/** A config in its own folder: a partner-zone route that needs a token (and so a healthy trail). */
async function writeConfig(name: string, acknowledgement: string | null): Promise<{ path: string; folder: string }> {
  const folder = join(dir, name);
  const path = join(dir, `${name}.yaml`);
  await writeFile(
    path,
    `version: 1
gateway:
  data_dir: ${JSON.stringify(join(folder, 'data'))}
  decision_log: ${JSON.stringify(join(folder, 'decisions.jsonl'))}
  drain_timeout: 1s
ops: { port: 0 }
${acknowledgement === null ? '' : `audit:\n  disabled_for_benchmark: ${JSON.stringify(acknowledgement)}\n`}listeners:
  - { name: api, zone: partner, port: 0, hostnames: [api.example.test] }
upstreams:
  - { id: sample, url: "${upstream.url}" }
issuers:
  - { id: idp, issuer: "${ISS}", jwks_file: idp.jwks.json, algorithms: [ES256] }
apis:
  - { id: orders, audience: "${AUD}" }
routes:
  - { id: orders, zone: partner, api: orders, methods: [GET], path: /orders, upstream: sample, scopes: [orders:read] }
partners:
  - id: acme
    agreement: { id: AGR-1, expires: 2099-12-31 }
    credentials: [{ id: acme-idp, type: jwt, issuer: idp, client_id: acme }]
    grants: [{ api: orders, scopes: [orders:read] }]
`,
  );
  return { path, folder };
}

async function start(configPath: string, env: Record<string, string>): Promise<Gateway> {
  const gateway = await startGateway({ configPath, env });
  running.push(gateway);
  return gateway;
}

async function callOrders(gateway: Gateway): Promise<number> {
  const url = gateway.addresses().listeners.find((entry) => entry.name === 'api')!.url;
  const headers = { host: 'api.example.test', authorization: `Bearer ${accessToken(key, { iss: ISS, aud: AUD, clientId: 'acme', scope: 'orders:read' })}` };
  const response = await request(`${url}/orders`, { headers });
  await response.body.dump();
  return response.statusCode;
}

async function readyz(gateway: Gateway): Promise<{ status: number; body: string }> {
  const response = await request(`${gateway.addresses().ops}/readyz?verbose`);
  return { status: response.statusCode, body: await response.body.text() };
}

test('only the exact acknowledgement is accepted', async () => {
  const { path } = await writeConfig('wrong-sentence', 'I understand');
  const loaded = await loadConfig(path, { env: { PORTCULLIS_BENCHMARK: '1' } });
  assert.equal(loaded.ok, false);
  assert.ok(!loaded.ok && loaded.issues.some((issue) => issue.path === 'audit.disabled_for_benchmark'), JSON.stringify(loaded));
});

test('without PORTCULLIS_BENCHMARK=1 the gateway refuses to start, and opens no trail', async () => {
  const { path, folder } = await writeConfig('no-env', AUDIT_DISABLED_FOR_BENCHMARK_ACK);
  for (const env of [{}, { PORTCULLIS_BENCHMARK: '0' }, { PORTCULLIS_BENCHMARK: 'true' }] as Array<Record<string, string>>) {
    await assert.rejects(start(path, env), /audit\.disabled_for_benchmark is set.*PORTCULLIS_BENCHMARK=1/);
  }
  assert.equal(existsSync(join(folder, 'data', 'audit')), false);
});

test('with both, requests are served and decided, no trail is written, it is said loudly and /readyz stays 503', async () => {
  const { path, folder } = await writeConfig('audit-off', AUDIT_DISABLED_FOR_BENCHMARK_ACK);
  const gateway = await start(path, { PORTCULLIS_BENCHMARK: '1' });
  assert.deepEqual([await callOrders(gateway), await callOrders(gateway)], [200, 200]);
  await new Promise((resolve) => setTimeout(resolve, 150)); // longer than the default flush interval (100 ms)
  assert.equal(existsSync(join(folder, 'data', 'audit')), false);
  // The decision log (the foundation's record) is still written: the row measures the trail alone.
  const decisions = (await readFile(join(folder, 'decisions.jsonl'), 'utf8')).split('\n').filter(Boolean);
  assert.equal(decisions.length, 2);
  const warning = logLines.find((line) => line.event === 'audit.disabled_for_benchmark');
  assert.equal(warning?.level, 'warn');
  const ready = await readyz(gateway);
  assert.equal(ready.status, 503);
  assert.match(ready.body, /\[-\]audit failed/);
});

test('PORTCULLIS_BENCHMARK=1 alone changes nothing: the trail is written and the gateway is ready', async () => {
  const { path, folder } = await writeConfig('env-only', null);
  const gateway = await start(path, { PORTCULLIS_BENCHMARK: '1' });
  assert.equal(await callOrders(gateway), 200);
  const combined = join(folder, 'data', 'audit', 'combined.jsonl');
  const deadline = Date.now() + 3000;
  while (!(existsSync(combined) && (await readFile(combined, 'utf8')).includes('gateway.request')) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.match(await readFile(combined, 'utf8'), /gateway\.request/);
  assert.equal((await readyz(gateway)).status, 200);
});
