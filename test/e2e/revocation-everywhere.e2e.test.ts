// Issue 7's promise, end to end: three gateway processes share one Redis; a token, a certificate, a credential
// and a partner revoked through the admin API of one instance are refused by the very next
// request on each of the others — no sleep, no retry. Then the same on the embedded driver with
// `serve --workers 2`, where the workers share one SQLite file.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { startRecordingUpstream } from '../helpers/recording-upstream.ts';
import type { RecordingUpstream } from '../helpers/recording-upstream.ts';
import { startRedisServer } from '../helpers/redis-server.ts';
import { startGatewayProcess } from '../helpers/gateway-process.ts';
import type { GatewayProcess } from '../helpers/gateway-process.ts';
import { accessToken, generateTestKey, jwks } from '../helpers/tokens.ts';
import { generateApiKey } from '../../src/authn/api-key.ts';
import { createTestPki } from '../helpers/pki.ts';
import type { TestLeaf, TestPki, TestPkiFiles } from '../helpers/pki.ts';

const ISS = 'https://idp.example.test';
const AUD = 'https://api.example.test/orders';
const key = generateTestKey('ES256');
const adminToken = `pca_${randomBytes(32).toString('base64url')}`;
const apiKey = generateApiKey();

let dir: string;
let upstream: RecordingUpstream;
let pki: TestPki;
let pkiFiles: TestPkiFiles;

function config(instance: string, state: string): string {
  return `
version: 1
gateway:
  data_dir: ${dir}/data-${instance}
  decision_log: ${dir}/decisions-${instance}.jsonl
${state}
admin:
  tokens: [{ id: secops, sha256: ${createHash('sha256').update(adminToken).digest('hex')} }]
abuse: { auth_failures_per_source: off, denials_per_credential: off }
rate_limits: { mode: shared }
ops: { port: 0 }
listeners:
  - { name: api, zone: partner, port: 0, hostnames: [api.example.test] }
  - name: mtls
    zone: partner
    port: 0
    hostnames: [api.example.test]
    tls: { cert: ${pkiFiles.server.cert}, key: ${pkiFiles.server.key}, http2: false, client_certificates: request }
upstreams:
  - { id: orders, url: "${upstream.url}" }
issuers:
  - { id: idp, issuer: "${ISS}", jwks_file: ${dir}/jwks.json, algorithms: [ES256] }
apis:
  - { id: orders, audience: "${AUD}" }
routes:
  - { id: orders, zone: partner, methods: [GET], path: /orders, upstream: orders, api: orders, scopes: [orders:read], credentials: [jwt, api_key] }
partners:
${['acme', 'globex', 'initech', 'umbrella', 'hooli']
  .map(
    (id) => `  - id: ${id}
    agreement: { id: MSA-${id}, expires: 2099-12-31 }
    credentials:
      - { id: ${id}-jwt, type: jwt, issuer: idp, client_id: ${id}-client }
${id === 'hooli' ? '    rate_limit: { rate: 1/h, burst: 9 }\n' : ''}${id === 'acme' ? `    mtls: { ca: [${pkiFiles.partnerA.root}] }\n` : ''}${id === 'initech' ? `      - { id: initech-key, type: api_key, key_id: ${apiKey.keyId}, sha256: ${apiKey.sha256}, expires: 2099-01-01 }\n` : ''}    grants:
      - { api: orders, scopes: [orders:read] }`,
  )
  .join('\n')}
`;
}

function tokenFor(partner: string): string {
  return accessToken(key, { iss: ISS, aud: AUD, clientId: `${partner}-client`, scope: 'orders:read' });
}

/** One request on a fresh connection (so with workers, the primary may hand it to any worker). */
async function call(url: string, headers: Record<string, string>): Promise<{ status: number; code: string | undefined }> {
  const dispatcher = new Agent({ pipelining: 0 });
  try {
    const response = await request(`${url}/orders`, { headers: { host: 'api.example.test', ...headers }, dispatcher });
    const text = await response.body.text();
    return { status: response.statusCode, code: text.startsWith('{') ? (JSON.parse(text) as { code?: string }).code : undefined };
  } finally {
    await dispatcher.close();
  }
}

/** A request over mTLS presenting `leaf`, with a token of acme. */
async function callWithCertificate(url: string, leaf: TestLeaf, token: string): Promise<{ status: number; code: string | undefined }> {
  const dispatcher = new Agent({ connect: { ca: pki.server.ca.certPem, servername: 'api.example.test', cert: leaf.chainPem, key: leaf.keyPem } });
  try {
    const response = await request(`${url}/orders`, { headers: { host: 'api.example.test', authorization: `Bearer ${token}` }, dispatcher });
    const text = await response.body.text();
    return { status: response.statusCode, code: text.startsWith('{') ? (JSON.parse(text) as { code?: string }).code : undefined };
  } finally {
    await dispatcher.close();
  }
}

async function admin(ops: string, method: string, path: string, body?: object): Promise<{ status: number; json: any }> {
  const response = await request(`${ops}${path}`, {
    method: method as 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await response.body.text();
  return { status: response.statusCode, json: text ? JSON.parse(text) : null };
}

async function reasonsIn(instance: string): Promise<string[]> {
  const text = await readFile(join(dir, `decisions-${instance}.jsonl`), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => (JSON.parse(line) as { event: { reason: string } }).event.reason);
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portcullis-revoke-everywhere-'));
  upstream = await startRecordingUpstream();
  await writeFile(join(dir, 'jwks.json'), jwks(key));
  pki = await createTestPki();
  pkiFiles = await pki.writePki(join(dir, 'pki'));
});
after(async () => {
  await upstream?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('three instances on one Redis', () => {
  let redis: Awaited<ReturnType<typeof startRedisServer>>;
  const gateways: GatewayProcess[] = [];
  before(async () => {
    redis = await startRedisServer();
    const prefix = `t${randomBytes(4).toString('hex')}:`;
    for (const instance of ['a', 'b', 'c']) {
      const path = join(dir, `redis-${instance}.yaml`);
      await writeFile(path, config(`redis-${instance}`, `state:\n  driver: redis\n  redis: { url: "${redis.url}", key_prefix: "${prefix}" }`));
      gateways.push(await startGatewayProcess(path));
    }
  });
  after(async () => {
    await Promise.all(gateways.map((gateway) => gateway.stop()));
    await redis?.stop();
  });

  test('a revoked token is refused by the next request on every other instance', async () => {
    const token = tokenFor('acme');
    for (const gateway of gateways) assert.equal((await call(gateway.listeners['api']!, { authorization: `Bearer ${token}` })).status, 200);
    const jti = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).jti as string;
    const revoked = await admin(gateways[0]!.ops, 'POST', '/admin/revocations', { kind: 'token', key: jti, reason: 'leaked in a ticket' });
    assert.equal(revoked.status, 201, JSON.stringify(revoked.json));
    assert.deepEqual([revoked.json.propagation.instances, revoked.json.propagation.acknowledged], [3, 3]);
    for (const gateway of gateways.slice(1)) {
      const refused = await call(gateway.listeners['api']!, { authorization: `Bearer ${token}` });
      assert.deepEqual(refused, { status: 401, code: 'invalid_token' });
    }
    // Other tokens of the same partner are untouched.
    assert.equal((await call(gateways[1]!.listeners['api']!, { authorization: `Bearer ${tokenFor('acme')}` })).status, 200);
  });

  test('a certificate revoked through one instance is refused by the next request on every other', async () => {
    const token = tokenFor('acme');
    for (const gateway of gateways) assert.equal((await callWithCertificate(gateway.listeners['mtls']!, pki.partnerA.good, token)).status, 200);
    const revoked = await admin(gateways[2]!.ops, 'POST', '/admin/revocations', { kind: 'certificate', key: `sha256:${pki.partnerA.good.fingerprint}`, reason: 'key compromise' });
    assert.equal(revoked.status, 201, JSON.stringify(revoked.json));
    for (const gateway of gateways.slice(0, 2)) {
      assert.deepEqual(await callWithCertificate(gateway.listeners['mtls']!, pki.partnerA.good, token), { status: 401, code: 'invalid_client_certificate' });
    }
    // Another certificate of the same partner still works.
    assert.equal((await callWithCertificate(gateways[0]!.listeners['mtls']!, pki.partnerA.spiffe, token)).status, 200);
  });

  test('a revoked credential and a suspended partner bite at once on every other instance', async () => {
    const globex = tokenFor('globex');
    const umbrella = tokenFor('umbrella');
    assert.equal((await admin(gateways[1]!.ops, 'POST', '/admin/revocations', { kind: 'credential', key: 'globex-jwt', reason: 'contract ended' })).status, 201);
    assert.equal((await admin(gateways[2]!.ops, 'POST', '/admin/partners/umbrella/suspend', { reason: 'incident 4711' })).status, 200);
    for (const gateway of [gateways[0]!, gateways[2]!]) {
      assert.deepEqual(await call(gateway.listeners['api']!, { authorization: `Bearer ${globex}` }), { status: 401, code: 'invalid_token' });
    }
    for (const gateway of [gateways[0]!, gateways[1]!]) {
      assert.deepEqual(await call(gateway.listeners['api']!, { authorization: `Bearer ${umbrella}` }), { status: 403, code: 'partner_suspended' });
    }
    // Resume through yet another instance: the partner is back everywhere.
    assert.equal((await admin(gateways[0]!.ops, 'POST', '/admin/partners/umbrella/resume', { reason: 'incident closed' })).status, 200);
    for (const gateway of gateways) assert.equal((await call(gateway.listeners['api']!, { authorization: `Bearer ${umbrella}` })).status, 200);
    const reasons = await reasonsIn('redis-a');
    assert.ok(reasons.includes('credential.revoked'), reasons.join(','));
    assert.ok(reasons.includes('partner.suspended'), reasons.join(','));
  });

  test('a shared rate limit holds exactly across instances under concurrent load', async () => {
    // burst 9 at 1/h: exactly 10 requests in all, whichever instance takes them.
    const token = tokenFor('hooli');
    const results = await Promise.all(
      gateways.flatMap((gateway) => Array.from({ length: 12 }, () => call(gateway.listeners['api']!, { authorization: `Bearer ${token}` }))),
    );
    const allowed = results.filter((result) => result.status === 200).length;
    const limited = results.filter((result) => result.status === 429 && result.code === 'rate_limited').length;
    assert.deepEqual({ allowed, limited }, { allowed: 10, limited: 26 });
  });

  test('Redis gone: every instance refuses with 503 state_unavailable (fail closed), and recovers', async () => {
    const token = tokenFor('acme');
    redis.kill();
    const deadline = Date.now() + 10_000;
    let result = await call(gateways[1]!.listeners['api']!, { authorization: `Bearer ${token}` });
    while (result.status !== 503 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      result = await call(gateways[1]!.listeners['api']!, { authorization: `Bearer ${token}` });
    }
    assert.deepEqual(result, { status: 503, code: 'state_unavailable' });
    await redis.restart!();
    const back = Date.now() + 15_000;
    for (const gateway of gateways) {
      let status = 0;
      while (status !== 200 && Date.now() < back) {
        status = (await call(gateway.listeners['api']!, { authorization: `Bearer ${token}` })).status;
        if (status !== 200) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.equal(status, 200);
    }
  });
});

describe('serve --workers 2 on the embedded driver', () => {
  let gateway: GatewayProcess;
  before(async () => {
    const path = join(dir, 'workers.yaml');
    await writeFile(path, config('workers', ''));
    gateway = await startGatewayProcess(path, ['--workers', '2']);
  });
  after(async () => gateway?.stop());

  test('a revocation made through one worker is refused by every worker on the next request', async () => {
    const token = tokenFor('acme');
    const url = gateway.listeners['api']!;
    for (let i = 0; i < 4; i++) assert.equal((await call(url, { authorization: `Bearer ${token}` })).status, 200);
    const jti = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).jti as string;
    assert.equal((await admin(gateway.ops, 'POST', '/admin/revocations', { kind: 'token', key: jti, reason: 'test' })).status, 201);
    assert.equal((await admin(gateway.ops, 'POST', '/admin/revocations', { kind: 'credential', key: 'initech-key', reason: 'rotated' })).status, 201);
    // Fresh connections: the primary spreads them over both workers.
    for (let i = 0; i < 8; i++) {
      assert.deepEqual(await call(url, { authorization: `Bearer ${token}` }), { status: 401, code: 'invalid_token' });
      assert.deepEqual(await call(url, { 'x-api-key': apiKey.key }), { status: 401, code: 'invalid_api_key' });
    }
    // Both workers took part: each one's own audit trail holds refusals for the revoked credentials.
    for (const worker of ['worker-1', 'worker-2']) {
      const file = join(dir, 'data-workers', 'audit', worker, 'combined.jsonl');
      let reasons: string[] = [];
      for (let i = 0; i < 50 && !reasons.some((reason) => reason.endsWith('.revoked')); i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        reasons = (await readFile(file, 'utf8').catch(() => ''))
          .split('\n')
          .filter(Boolean)
          .map((line) => (JSON.parse(line) as { event: { reason?: string } }).event.reason ?? '');
      }
      assert.ok(reasons.some((reason) => reason.endsWith('.revoked')), `${worker}: ${reasons.join(',')}`);
    }
  });
});
