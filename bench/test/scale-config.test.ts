import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exportJWK, generateKeyPair } from 'jose';
import { verifyApiKey } from '../../src/authn/api-key.ts';
import { loadConfig } from '../../src/config/load.ts';
import type { Snapshot } from '../../src/config/snapshot.ts';
import type { ScaleConfigOptions } from '../lib/scale-config.ts';
import { LOAD_CLIENT, LOAD_PARTNER, ROUTES_PER_API, apiKeyFor, credentialMix, scaleConfig } from '../lib/scale-config.ts';

const REPO_ROOT = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
const PARTNERS = 60;
const APIS = 4;

let dir: string;
let options: ScaleConfigOptions;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'portcullis-scale-config-test-'));
  const { publicKey } = await generateKeyPair('ES256', { extractable: true });
  const jwksFile = join(dir, 'issuer.jwks.json');
  writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] }));
  options = {
    partners: PARTNERS,
    apis: APIS,
    upstreamOrigin: 'http://127.0.0.1:9',
    listenerPort: 18080,
    opsPort: 18081,
    host: 'localhost',
    dataDir: join(dir, 'data'),
    decisionLog: join(dir, 'decisions.jsonl'),
    jwksFile,
  };
});

after(() => rmSync(dir, { recursive: true, force: true }));

async function load(name: string, yaml: string): Promise<Awaited<ReturnType<typeof loadConfig>>> {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, yaml);
  return loadConfig(file);
}

async function loadValid(name: string, yaml: string): Promise<Snapshot> {
  const result = await load(name, yaml);
  assert.ok(result.ok, result.ok ? '' : result.issues.map((issue) => `${issue.path}: ${issue.message}`).join('\n'));
  return result.snapshot;
}

test('the generated configuration loads cleanly, with the partners, routes and credential mix it says', async () => {
  const generated = scaleConfig(options);
  const snapshot = await loadValid('base', generated.yaml);
  assert.equal(snapshot.partners.size, PARTNERS);
  assert.equal(snapshot.routes.length, APIS * ROUTES_PER_API);
  assert.equal(generated.partners, PARTNERS);
  assert.equal(generated.routes, APIS * ROUTES_PER_API);
  assert.equal(snapshot.apis.size, APIS);

  const jwt = [...snapshot.credentials.jwt.values()].reduce((sum, byClient) => sum + byClient.size, 0);
  assert.deepEqual({ jwt, apiKey: snapshot.credentials.apiKeys.size, mtls: snapshot.credentials.mtls.size }, generated.credentials);
  // 60 partners are three rounds of the 20-partner mix: 13 + 3 JWT, 3 + 3 API keys, 1 certificate.
  assert.deepEqual(generated.credentials, { jwt: 48, apiKey: 18, mtls: 3 });
  assert.equal(credentialMix(0), 'jwt');

  // The load partner: its token's `sub` names it, and it may read the loaded API.
  const byClient = snapshot.credentials.jwt.get('scale-idp');
  assert.equal(byClient?.get(LOAD_CLIENT)?.partnerId, LOAD_PARTNER);
  const loadApi = generated.load.routeId.replace(/-get-order$/, '');
  const grants = snapshot.config.partners.find((partner) => partner.id === LOAD_PARTNER)!.grants;
  assert.ok(grants.some((grant) => grant.api === loadApi && grant.scopes.includes(generated.load.scope)));
  assert.equal(snapshot.config.partners.find((partner) => partner.id === LOAD_PARTNER)!.rate_limit, undefined);
});

test('every lookup the benchmark times finds the route it names, or nothing for the miss', async () => {
  const generated = scaleConfig(options);
  const snapshot = await loadValid('lookups', generated.yaml);
  const router = snapshot.routers.get('partner')!;
  for (const lookup of [...generated.lookups, { method: 'GET', path: generated.load.path, routeId: generated.load.routeId }]) {
    const match = router.match('localhost', lookup.method, lookup.path);
    if (lookup.routeId === null) assert.equal(match.kind, 'not_found', lookup.path);
    else assert.equal(match.kind === 'matched' ? match.route.id : match.kind, lookup.routeId, lookup.path);
  }
});

test('API keys are derived, not stored: the derived key verifies against the compiled configuration', async () => {
  const snapshot = await loadValid('keys', scaleConfig(options).yaml);
  const partnerWithKey = [...Array(PARTNERS).keys()].find((index) => credentialMix(index) === 'api_key')!;
  const key = apiKeyFor('portcullis-scale', partnerWithKey);
  const verified = verifyApiKey(key.key, snapshot.credentials.apiKeys, Date.now());
  assert.ok(verified.ok);
  assert.equal(verified.credential.partnerId, `partner-${String(partnerWithKey).padStart(5, '0')}`);
  assert.equal(verifyApiKey(apiKeyFor('another-seed', partnerWithKey).key, snapshot.credentials.apiKeys, Date.now()).ok, false);
  // Same options, same file: two generations differ only by what a reload is meant to change.
  assert.equal(scaleConfig(options).yaml, scaleConfig(options).yaml);
});

test('generation 1 is a real, valid change; the invalid variant is refused for its dangling upstream', async () => {
  const base = await loadValid('gen0', scaleConfig(options).yaml);
  const next = await loadValid('gen1', scaleConfig({ ...options, generation: 1 }).yaml);
  assert.notEqual(next.hash, base.hash);
  assert.equal(next.routes.length, base.routes.length + 1);
  const scopes = (snapshot: Snapshot) => snapshot.config.partners.find((partner) => partner.id === 'partner-00001')!.grants.flatMap((grant) => grant.scopes);
  assert.ok(!scopes(base).some((scope) => scope.endsWith(':write')));
  assert.ok(scopes(next).some((scope) => scope.endsWith(':write')));

  const invalid = await load('invalid', scaleConfig({ ...options, invalid: true }).yaml);
  assert.equal(invalid.ok, false);
  assert.ok(!invalid.ok && invalid.issues.some((issue) => issue.code === 'CONFIG_DANGLING_REF' && /no-such-upstream/.test(issue.message)));
});

test('`portcullis validate -c` exits 0 on the generated file', () => {
  const file = join(dir, 'cli.yaml');
  writeFileSync(file, scaleConfig(options).yaml);
  const result = spawnSync(join(REPO_ROOT, 'node_modules', '.bin', 'node'), [join(REPO_ROOT, 'src', 'cli', 'main.ts'), 'validate', '-c', file], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(result.status, 0, `${result.stdout}${result.stderr}`);
  assert.match(result.stdout, /^Valid configuration/);
});

test('sizes are checked', () => {
  assert.throws(() => scaleConfig({ ...options, partners: 0 }), /partners/);
  assert.throws(() => scaleConfig({ ...options, apis: 1.5 }), /apis/);
});
