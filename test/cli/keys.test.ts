/**
 * `portcullis keys` as an operator runs it: a child process on the configuration's data folder,
 * then a real gateway (`portcullis serve`) on the same folder publishing what the CLI stored.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGatewayProcess } from '../helpers/gateway-process.ts';
import type { GatewayProcess } from '../helpers/gateway-process.ts';

const MAIN = new URL('../../src/cli/main.ts', import.meta.url).pathname;

function configWith(tokenService: string): string {
  return `version: 1
gateway: { data_dir: data, decision_log: stdout }
audit: { dir: audit }
ops: { address: 127.0.0.1, port: 0 }
listeners:
  - { name: api, zone: partner, address: 127.0.0.1, port: 0, hostnames: [localhost] }
upstreams:
  - { id: sample, url: "http://127.0.0.1:9" }
${tokenService}
apis:
  - { id: orders, audience: "https://api.example.test/orders" }
routes:
  - { id: orders, zone: partner, methods: [GET], path: /orders, upstream: sample, api: orders }
`;
}

interface Finished {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function keys(args: readonly string[]): Promise<Finished> {
  const child = spawn(process.execPath, [MAIN, 'keys', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}

function getJson(url: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: unknown }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers: { host: 'localhost' }, agent: false }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: JSON.parse(text) }));
      })
      .on('error', reject);
  });
}

describe('portcullis keys', () => {
  let root: string;
  let configPath: string;
  let gateway: GatewayProcess | undefined;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'portcullis-keys-'));
    configPath = join(root, 'gateway.yaml');
    await writeFile(configPath, configWith('token_service: { issuer: "https://localhost", listener: api, key_overlap: 1h }'));
  });
  after(async () => {
    await gateway?.stop();
    await rm(root, { recursive: true, force: true });
  });

  it('rotate adds a key that signs after the publish delay; list shows both; a gateway on the same data folder publishes both', async () => {
    const before = Date.now();
    const rotated = await keys(['rotate', '-c', configPath, '--publish-delay', '10m']);
    assert.equal(rotated.code, 0, rotated.stderr);
    const added = /^added ES256 key (\S+): in the JWKS now, signs from (\S+)$/m.exec(rotated.stdout);
    assert.ok(added, rotated.stdout);
    const activeFrom = Date.parse(added[2]!);
    assert.ok(activeFrom >= before + 600_000 - 1000 && activeFrom <= Date.now() + 600_000, `signs 10 minutes after the rotation, not ${added[2]}`);
    assert.doesNotMatch(rotated.stderr, /warning:/, 'a 10 minute delay is above JWKS max-age + refresh');

    const listed = await keys(['list', '-c', configPath]);
    assert.equal(listed.code, 0, listed.stderr);
    const [header, ...rows] = listed.stdout.trimEnd().split('\n');
    assert.match(header!, /^KID\s+ALG\s+STATUS\s+CREATED\s+ACTIVE FROM\s+RETIRED\s+REMOVED AT$/);
    assert.equal(rows.length, 2, listed.stdout);
    // Newest first: the new key waits, the first one (generated when the store was empty) still signs until then.
    const [fresh, first] = rows.map((row) => row.split(/\s{2,}/)) as [string[], string[]];
    assert.deepEqual(fresh.slice(0, 3), [added[1], 'ES256', 'pending']);
    assert.deepEqual([fresh[5], fresh[6]], ['-', '-']);
    assert.deepEqual(first.slice(1, 3), ['ES256', 'signing']);
    assert.notEqual(first[0], added[1]);
    assert.equal(first[5], added[2], 'the old key retires when the new one starts signing');
    assert.equal(Date.parse(first[6]!) - activeFrom, 3_600_000, 'and stays published for key_overlap');

    const json = await keys(['list', '-c', configPath, '--format', 'json']);
    assert.equal(json.code, 0, json.stderr);
    const document = JSON.parse(json.stdout) as { keys: Array<{ kid: string; status: string; retired_at: string | null }> };
    assert.deepEqual(document.keys.map((key) => [key.kid, key.status]), [[added[1], 'pending'], [first[0], 'signing']]);

    gateway = await startGatewayProcess(configPath);
    const jwks = await getJson(`${gateway.listeners['api']}/oauth2/jwks`);
    assert.equal(jwks.status, 200);
    assert.equal(jwks.headers['content-type'], 'application/jwk-set+json');
    const published = (jwks.body as { keys: Array<{ kid: string; d?: string }> }).keys;
    assert.deepEqual(published.map((key) => key.kid).sort(), [added[1], first[0]].sort());
    assert.ok(published.every((key) => key.d === undefined), 'no private member is published');
  });

  it('exits 2 when the configuration has no token_service, and on usage errors', async () => {
    const without = join(root, 'no-token-service.yaml');
    await writeFile(
      without,
      `version: 1
gateway: { data_dir: data-without }
listeners:
  - { name: web, zone: public, address: 127.0.0.1, port: 0, hostnames: [localhost] }
upstreams:
  - { id: sample, url: "http://127.0.0.1:9" }
routes:
  - { id: status, zone: public, methods: [GET], path: /status, upstream: sample, auth: none }
`,
    );
    const [refused, missingConfig, badDelay, unknown] = await Promise.all([
      keys(['rotate', '-c', without]),
      keys(['list']),
      keys(['rotate', '-c', configPath, '--publish-delay', 'soon']),
      keys(['shuffle', '-c', configPath]),
    ]);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /has no token_service section/);
    assert.equal(missingConfig.code, 2);
    assert.match(missingConfig.stderr, /--config is required[\s\S]*Usage: portcullis keys/);
    assert.equal(badDelay.code, 2);
    assert.match(badDelay.stderr, /--publish-delay must be a duration/);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown subcommand "shuffle"/);
  });
});
