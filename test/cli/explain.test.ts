// `portcullis explain` through the real CLI: the stage-by-stage explanation, the deciding grant
// or rule, and the exit status — from the same functions the gateway runs.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { generateTestKey, jwks } from '../helpers/tokens.ts';

const run = promisify(execFile);
const MAIN = new URL('../../src/cli/main.ts', import.meta.url).pathname;
let dir: string;
let config: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portcullis-explain-'));
  await writeFile(join(dir, 'idp.jwks.json'), jwks(generateTestKey('ES256')));
  config = join(dir, 'gateway.yaml');
  await writeFile(
    config,
    `version: 1
listeners:
  - { name: api, zone: partner, port: 8443, hostnames: [api.example.test] }
upstreams:
  - { id: backend, url: "http://127.0.0.1:9000" }
issuers:
  - { id: idp, issuer: "https://idp.example.test", jwks_file: idp.jwks.json, algorithms: [ES256] }
apis:
  - id: orders
    audience: https://api.example.test/orders
    policies:
      - { id: no-weekend-writes, deny: 'request.method == "POST" && request.time.getDayOfWeek("UTC") == 0', reason: weekend_writes }
routes:
  - { id: list, zone: partner, api: orders, methods: [GET, POST], path: /orders, upstream: backend, scopes: [orders:read] }
partners:
  - id: acme
    agreement: { id: AGR-7, expires: 2099-12-31 }
    credentials:
      - { id: acme-idp, type: jwt, issuer: idp, client_id: acme }
    grants:
      - { api: orders, scopes: [orders:read], constraints: { source_networks: [10.0.0.0/8] } }
`,
  );
});
after(async () => rm(dir, { recursive: true, force: true }));

async function explain(...args: string[]): Promise<{ code: number; stdout: string }> {
  try {
    const { stdout } = await run(process.execPath, [MAIN, 'explain', '-c', config, '--partner', 'acme', '--credential', 'acme-idp', '--path', '/orders', ...args]);
    return { code: 0, stdout };
  } catch (error) {
    const failed = error as { code: number; stdout: string };
    return { code: failed.code, stdout: failed.stdout };
  }
}

test('allowed: every stage passes and the grant that allowed it is named (exit 0)', async () => {
  const result = await explain('--scope', 'orders:read', '--source-ip', '10.1.2.3', '--time', '2026-11-25T10:00:00Z');
  assert.equal(result.code, 0, result.stdout);
  assert.match(result.stdout, /ALLOWED — route list, decided by partner\/acme\/grant\/orders#0/);
  assert.match(result.stdout, /✔ routing\s+route: route list/);
});

test('denied by a grant constraint: the failing check and the grant are named (exit 1)', async () => {
  const result = await explain('--scope', 'orders:read', '--source-ip', '192.0.2.9');
  assert.equal(result.code, 1);
  assert.match(result.stdout, /DENIED 403 grant_denied — reason grant\.source_network, decided by partner\/acme\/grant\/orders#0/);
});

test('denied by a CEL rule: the rule id decides (a Sunday POST), JSON output', async () => {
  const result = await explain('--scope', 'orders:read', '--source-ip', '10.1.2.3', '--method', 'POST', '--time', '2026-11-29T10:00:00Z', '--format', 'json');
  assert.equal(result.code, 1, result.stdout);
  const json = JSON.parse(result.stdout);
  assert.equal(json.allowed, false);
  assert.equal(json.reason, 'policy.denied');
  assert.equal(json.decidedBy, 'no-weekend-writes');
  assert.match(json.config_hash, /^[0-9a-f]{64}$/);
});

test('a missing scope is the token\'s failure, reported as insufficient_scope', async () => {
  const result = await explain('--scope', 'orders:write', '--source-ip', '10.1.2.3');
  assert.equal(result.code, 1);
  assert.match(result.stdout, /DENIED 403 insufficient_scope — reason scope\.insufficient/);
});

test('usage errors exit 2', async () => {
  assert.equal((await explain('--time', 'yesterday')).code, 2);
  assert.equal((await explain('--source-ip', 'nope')).code, 2);
});
