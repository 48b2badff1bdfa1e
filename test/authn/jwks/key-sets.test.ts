import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { sign } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compactVerify } from 'jose';
import { KeySets, sameKeySource } from '../../../src/authn/jwks/key-sets.ts';
import type { CompiledIssuer } from '../../../src/config/snapshot.ts';
import type { SigningAlgorithm } from '../../../src/config/schema.ts';
import { setLogListener } from '../../../src/log.ts';
import { jwksOf, signingKey, startIssuerServer } from './issuer-server.ts';
import type { IssuerServer, SigningKey } from './issuer-server.ts';

async function setup(t: TestContext): Promise<{ server: IssuerServer; keySets: KeySets; issuer: (id: string, overrides?: Partial<CompiledIssuer>) => CompiledIssuer }> {
  const server = await startIssuerServer();
  const dataDir = await mkdtemp(join(tmpdir(), 'portcullis-keysets-'));
  const keySets = new KeySets({ dataDir });
  setLogListener(null, { quiet: true });
  t.after(async () => {
    keySets.closeAll();
    await server.close();
    await rm(dataDir, { recursive: true, force: true });
  });
  const issuer = (id: string, overrides: Partial<CompiledIssuer> = {}): CompiledIssuer => ({
    id,
    issuer: `https://${id}.example`,
    source: { kind: 'jwks_uri', url: `${server.origin}/${id}/jwks` },
    ca: null,
    algorithms: new Set<SigningAlgorithm>(['ES256']),
    typ: 'at+jwt',
    leewayMs: 30_000,
    maxLifetimeMs: 3_600_000,
    partnerClaim: 'client_id',
    refreshIntervalMs: 600_000,
    unknownKidCooldownMs: 30_000,
    fetchTimeoutMs: 300,
    ...overrides,
  });
  return { server, keySets, issuer };
}

const issuers = (...list: CompiledIssuer[]): Map<string, CompiledIssuer> => new Map(list.map((issuer) => [issuer.id, issuer]));

function jws(key: SigningKey): string {
  const input = `${Buffer.from(JSON.stringify({ alg: 'ES256', kid: key.kid })).toString('base64url')}.${Buffer.from('{}').toString('base64url')}`;
  return `${input}.${sign('sha256', Buffer.from(input), { key: key.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
}

test('a key of one issuer never verifies a token of another, even under the same kid (JWT-07)', async (t) => {
  const { server, keySets, issuer } = await setup(t);
  const keyOfA = signingKey('ES256', 'shared-kid');
  const keyOfB = signingKey('ES256', 'shared-kid');
  server.serve('/a/jwks', { body: jwksOf(keyOfA) });
  server.serve('/b/jwks', { body: jwksOf(keyOfB) });
  await keySets.sync(issuers(issuer('a'), issuer('b')));

  const foundForA = keySets.get('a')!.find('shared-kid', 'ES256')!;
  await compactVerify(jws(keyOfA), foundForA.key);
  await assert.rejects(compactVerify(jws(keyOfB), foundForA.key), 'B signed it; A\'s key set does not verify it');
  assert.equal(keySets.get('c'), undefined);
});

test('sync keeps unchanged issuers, replaces changed ones after they started, and closes removed ones', async (t) => {
  const { server, keySets, issuer } = await setup(t);
  const key = signingKey('ES256', 'k1');
  server.serve('/a/jwks', { body: jwksOf(key) });
  server.serve('/b/jwks', { body: jwksOf(key) });
  await keySets.sync(issuers(issuer('a'), issuer('b')));
  const a = keySets.get('a')!;
  const b = keySets.get('b')!;
  assert.equal(a.ready() && b.ready(), true);
  assert.deepEqual([server.count('/a/jwks'), server.count('/b/jwks')], [1, 1]);

  // Reload: a unchanged (a new but equal CompiledIssuer object), b with another algorithm list.
  await keySets.sync(issuers(issuer('a'), issuer('b', { algorithms: new Set<SigningAlgorithm>(['ES256', 'RS256']) })));
  assert.equal(keySets.get('a'), a, 'an unchanged issuer keeps its key set');
  assert.equal(server.count('/a/jwks'), 1, 'and fetches nothing');
  const b2 = keySets.get('b')!;
  assert.notEqual(b2, b);
  assert.equal(b2.ready(), true);
  // The replaced set is closed: it fetches nothing any more.
  const before = server.count('/b/jwks');
  await b.refreshForUnknownKid();
  assert.equal(server.count('/b/jwks'), before);

  await keySets.sync(issuers(issuer('b', { algorithms: new Set<SigningAlgorithm>(['ES256', 'RS256']) })));
  assert.equal(keySets.get('a'), undefined, 'a removed issuer has no key set');
  await a.refreshForUnknownKid();
  assert.equal(server.count('/a/jwks'), 1, 'and its set was closed');
  assert.equal(keySets.get('b'), b2);
});

test('while a changed issuer starts, its previous key set keeps answering', async (t) => {
  const { server, keySets, issuer } = await setup(t);
  const key = signingKey('ES256', 'k1');
  server.serve('/a/jwks', { body: jwksOf(key) });
  server.serve('/a/moved', { behaviour: 'hang' });
  await keySets.sync(issuers(issuer('a')));
  const old = keySets.get('a')!;

  const reload = keySets.sync(issuers(issuer('a', { source: { kind: 'jwks_uri', url: `${server.origin}/a/moved` } })));
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(keySets.get('a'), old, 'the old set serves during the new one\'s first fetch');
  assert.ok(old.find('k1', 'ES256'));
  await reload;
  const replaced = keySets.get('a')!;
  assert.notEqual(replaced, old);
  // The configuration now names a source that does not answer: fail closed, not the old keys.
  assert.equal(replaced.ready(), false);
  assert.equal(replaced.find('k1', 'ES256'), undefined);
});

test('sameKeySource compares iss, source, algorithms, CA and fetch timings', async (t) => {
  const { issuer } = await setup(t);
  const base = issuer('a');
  assert.equal(sameKeySource(base, issuer('a')), true);
  assert.equal(sameKeySource(base, issuer('a', { leewayMs: 1 })), true, 'token rules do not concern the key set');
  for (const change of [
    { issuer: 'https://a.example/' },
    { source: { kind: 'discovery', url: (base.source as { url: string }).url } },
    { source: { kind: 'jwks_uri', url: 'https://elsewhere.example/jwks' } },
    { algorithms: new Set<SigningAlgorithm>(['ES384']) },
    { ca: Buffer.from('ca') },
    { refreshIntervalMs: 1 },
    { unknownKidCooldownMs: 1 },
    { fetchTimeoutMs: 1 },
  ] as Array<Partial<CompiledIssuer>>) {
    assert.equal(sameKeySource(base, issuer('a', change)), false, JSON.stringify(change));
  }
  const file = issuer('f', { source: { kind: 'file', path: '/k.json', jwks: { keys: [1] } } });
  assert.equal(sameKeySource(file, issuer('f', { source: { kind: 'file', path: '/k.json', jwks: { keys: [1] } } })), true);
  assert.equal(sameKeySource(file, issuer('f', { source: { kind: 'file', path: '/k.json', jwks: { keys: [2] } } })), false, 'new file content');
  const withCa = issuer('a', { ca: Buffer.from('ca') });
  assert.equal(sameKeySource(withCa, issuer('a', { ca: Buffer.from('ca') })), true);
  assert.equal(sameKeySource(withCa, issuer('a', { ca: Buffer.from('other') })), false);
});

test('closeAll closes every set and later syncs do nothing', async (t) => {
  const { server, keySets, issuer } = await setup(t);
  server.serve('/a/jwks', { body: jwksOf(signingKey('ES256', 'k1')) });
  await keySets.sync(issuers(issuer('a')));
  const a = keySets.get('a')!;
  keySets.closeAll();
  assert.equal(keySets.get('a'), undefined);
  await a.refreshForUnknownKid();
  await keySets.sync(issuers(issuer('a')));
  assert.equal(keySets.get('a'), undefined);
  assert.equal(server.count('/a/jwks'), 1);
});
