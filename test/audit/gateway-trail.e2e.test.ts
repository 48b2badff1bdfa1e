// The gateway writes every decision into the hash-chained trail: the combined stream and the
// partner's own stream, both verifiable; the chain continues across a restart; a request the
// trail cannot record is not forwarded.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { startHarness } from '../helpers/harness.ts';
import type { Harness } from '../helpers/harness.ts';
import { accessToken, generateTestKey, jwks } from '../helpers/tokens.ts';
import { verifyTrail } from '../../src/audit/verify.ts';

const ISS = 'https://idp.example.test';
const AUD = 'https://api.example.test/orders';
const key = generateTestKey('ES256');
let h: Harness;

const CONFIG = `
version: 1
audit:
  dir: trail
  flush_interval: 20ms
  checkpoint_every: 5
listeners:
  - { name: api, zone: partner, port: 0, hostnames: [api.example.test] }
upstreams:
  - { id: sample, url: "{{UPSTREAM}}" }
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
  - id: globex
    agreement: { id: AGR-2, expires: 2099-12-31 }
    credentials: [{ id: globex-idp, type: jwt, issuer: idp, client_id: globex }]
    grants: [{ api: orders, scopes: [orders:read] }]
  - id: umbrella
    agreement: { id: AGR-3, expires: 2099-12-31 }
    credentials: [{ id: umbrella-idp, type: jwt, issuer: idp, client_id: umbrella }]
    grants: [{ api: orders, scopes: [orders:read] }]
`;

before(async () => {
  h = await startHarness(CONFIG, { files: { 'idp.jwks.json': jwks(key) } });
});
after(async () => h?.close());

async function call(clientId: string | null, scope = 'orders:read'): Promise<number> {
  const headers: Record<string, string> = { host: 'api.example.test' };
  if (clientId) headers['authorization'] = `Bearer ${accessToken(key, { iss: ISS, aud: AUD, clientId, scope })}`;
  const response = await request(`${h.url('api')}/orders`, { headers });
  await response.body.dump();
  return response.statusCode;
}

test('every decision is in the combined stream and in its partner\'s stream, and the trail verifies', async () => {
  const statuses = [];
  for (let i = 0; i < 6; i++) statuses.push(await call('acme'));
  for (let i = 0; i < 3; i++) statuses.push(await call('globex'));
  statuses.push(await call(null));
  statuses.push(await call('acme', 'orders:write'));
  assert.deepEqual(statuses, [200, 200, 200, 200, 200, 200, 200, 200, 200, 401, 403]);
  await new Promise((resolve) => setTimeout(resolve, 200));

  const trail = join(h.dir, 'trail');
  assert.deepEqual((await readdir(join(trail, 'partners'))).sort(), ['acme.jsonl', 'globex.jsonl']);
  const lines = async (file: string) =>
    (await readFile(join(trail, file), 'utf8')).split('\n').filter(Boolean).map((line) => JSON.parse(line)).filter((line) => line.event.action === 'gateway.request');
  assert.equal((await lines('combined.jsonl')).length, 11);
  const acme = await lines('partners/acme.jsonl');
  assert.equal(acme.length, 7);
  assert.ok(acme.every((line) => line.portcullis.partner.id === 'acme' && line.portcullis.chain.stream === 'partner/acme'));
  assert.equal((await lines('partners/globex.jsonl')).length, 3);

  const publicKeyPem = await readFile(join(h.dir, '.portcullis', 'audit-keys', 'audit-signing.pub'), 'utf8');
  const report = await verifyTrail(trail, { publicKeyPem });
  assert.equal(report.ok, true, JSON.stringify(report, null, 1));
});

test('when the trail cannot write, authenticated requests are refused with 503 until it recovers; nothing is lost', async () => {
  const trail = join(h.dir, 'trail');
  // A real write failure: a folder sits where umbrella's stream file must be created.
  await mkdir(join(trail, 'partners', 'umbrella.jsonl'));
  assert.equal(await call('umbrella'), 200, 'accepted into the queue while the trail was healthy');
  let status = 200;
  for (let i = 0; i < 50 && status === 200; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    status = await call('acme');
  }
  assert.equal(status, 503, 'refused once the trail failed');
  const ready = await request(`${h.gateway.addresses().ops}/readyz?verbose`);
  assert.equal(ready.statusCode, 503);
  assert.match(await ready.body.text(), /\[-\]audit failed/);
  assert.ok(h.logLines.some((line) => line.event === 'audit.write_failed'));

  await rm(join(trail, 'partners', 'umbrella.jsonl'), { recursive: true });
  for (let i = 0; i < 120 && status !== 200; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    status = await call('acme');
  }
  assert.equal(status, 200, 'serving again once the trail recovered');
  await new Promise((resolve) => setTimeout(resolve, 200));
  const umbrella = (await readFile(join(trail, 'partners', 'umbrella.jsonl'), 'utf8')).split('\n').filter(Boolean).map((line) => JSON.parse(line));
  assert.equal(umbrella.filter((line) => line.event.action === 'gateway.request').length, 1, 'the record queued during the failure was written, not dropped');
  const publicKeyPem = await readFile(join(h.dir, '.portcullis', 'audit-keys', 'audit-signing.pub'), 'utf8');
  const report = await verifyTrail(trail, { publicKeyPem });
  assert.equal(report.ok, true, JSON.stringify(report.streams.filter((stream) => !stream.ok)));
});
