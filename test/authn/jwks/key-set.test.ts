import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { constants, generateKeyPairSync, sign } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compactVerify } from 'jose';
import { MIN_FETCH_SPACING_MS, createKeySet } from '../../../src/authn/jwks/key-set.ts';
import type { ManagedKeySet, VerificationKey } from '../../../src/authn/jwks/key-set.ts';
import { MAX_KEY_SET_AGE_MS, cacheFilePath } from '../../../src/authn/jwks/disk-cache.ts';
import type { CompiledIssuer, KeySource } from '../../../src/config/snapshot.ts';
import type { SigningAlgorithm } from '../../../src/config/schema.ts';
import { setLogListener } from '../../../src/log.ts';
import { jwksOf, signingKey, startIssuerServer, waitFor } from './issuer-server.ts';
import type { IssuerServer, SigningKey } from './issuer-server.ts';

const ISS = 'https://idp.example';
const HOUR = 3_600_000;

interface LogEntry {
  level: string;
  event: string;
  [key: string]: unknown;
}

interface Fixture {
  server: IssuerServer;
  dataDir: string;
  clock: { now: number };
  logs: LogEntry[];
  issuer(overrides?: Partial<CompiledIssuer>): CompiledIssuer;
  /** A key set on the fixture's clock and data folder, closed when the test ends. */
  keySet(issuer: CompiledIssuer, options?: { realClock?: boolean }): ManagedKeySet;
  events(event: string): LogEntry[];
}

async function fixture(t: TestContext): Promise<Fixture> {
  const server = await startIssuerServer();
  const dataDir = await mkdtemp(join(tmpdir(), 'portcullis-jwks-'));
  const clock = { now: Date.UTC(2030, 0, 1) };
  const logs: LogEntry[] = [];
  setLogListener((entry) => void logs.push(entry), { quiet: true });
  const sets: ManagedKeySet[] = [];
  t.after(async () => {
    for (const set of sets) set.close();
    setLogListener(null);
    await server.close();
    // A disk-cache write begun before close() may still land while the folder is removed.
    await rm(dataDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
  });
  return {
    server,
    dataDir,
    clock,
    logs,
    issuer: (overrides = {}) => ({
      id: 'idp',
      issuer: ISS,
      source: { kind: 'jwks_uri', url: `${server.origin}/jwks` },
      ca: null,
      algorithms: new Set<SigningAlgorithm>(['ES256', 'RS256', 'EdDSA']),
      typ: 'at+jwt',
      leewayMs: 30_000,
      maxLifetimeMs: HOUR,
      partnerClaim: 'client_id',
      refreshIntervalMs: 10 * 60_000,
      unknownKidCooldownMs: 30_000,
      fetchTimeoutMs: 1_000,
      ...overrides,
    }),
    keySet(issuer, options = {}) {
      const set = createKeySet(issuer, { dataDir, ...(options.realClock ? {} : { now: () => clock.now }) });
      sets.push(set);
      return set;
    },
    events: (event) => logs.filter((entry) => entry.event === event),
  };
}

/** A compact JWS signed with `key` (ES256 raw r‖s, RFC 7518 §3.4), for checking a found key really verifies. */
function jwsFrom(key: SigningKey, payload = 'payload'): string {
  const input = `${Buffer.from(JSON.stringify({ alg: key.alg, kid: key.kid })).toString('base64url')}.${Buffer.from(payload).toString('base64url')}`;
  const signature =
    key.alg === 'ES256'
      ? sign('sha256', Buffer.from(input), { key: key.privateKey, dsaEncoding: 'ieee-p1363' })
      : sign(key.alg === 'RS256' ? 'sha256' : null, Buffer.from(input), key.privateKey);
  return `${input}.${signature.toString('base64url')}`;
}

async function verifies(found: VerificationKey | undefined, key: SigningKey): Promise<boolean> {
  if (!found) return false;
  try {
    await compactVerify(jwsFrom(key), found.key, { algorithms: [found.alg] });
    return true;
  } catch {
    return false;
  }
}

test('the first fetch loads the keys and writes the on-disk copy (0600)', async (t) => {
  const f = await fixture(t);
  const k1 = signingKey('ES256', 'k1');
  f.server.serve('/jwks', { body: jwksOf(k1) });
  const set = f.keySet(f.issuer());
  assert.equal(set.ready(), false, 'not ready before start');
  assert.equal(set.find('k1', 'ES256'), undefined);
  await set.start();

  assert.equal(set.ready(), true);
  assert.equal(f.server.count('/jwks'), 1);
  const found = set.find('k1', 'ES256');
  assert.equal(found?.kid, 'k1');
  assert.equal(found?.alg, 'ES256');
  assert.ok(await verifies(found, k1), 'the found key verifies the issuer signature');
  assert.equal(await verifies(found, signingKey('ES256', 'k1')), false, 'and only that key');
  // The algorithm is bound to the key; kid-less lookups only find kid-less keys.
  assert.equal(set.find('k1', 'RS256'), undefined);
  assert.equal(set.find('k1', 'ES384'), undefined);
  assert.equal(set.find(undefined, 'ES256'), undefined);
  assert.equal(set.find('k2', 'ES256'), undefined);

  const status = set.status();
  assert.deepEqual(status, { keys: 1, generation: set.generation, lastFetchAt: f.clock.now, lastError: null, source: 'issuer' });
  assert.ok(set.generation > 0);

  const path = cacheFilePath(f.dataDir, f.issuer());
  assert.match(path, new RegExp(`/jwks/idp-[0-9a-f]{12}\\.json$`));
  assert.equal((await stat(path)).mode & 0o777, 0o600);
  const cached = JSON.parse(await readFile(path, 'utf8'));
  assert.equal(cached.fetchedAt, f.clock.now);
  assert.equal(cached.issuer, ISS);
  assert.deepEqual(cached.jwks, jwksOf(k1));
  assert.equal(f.events('jwks.keys_changed').length, 1);
});

test('a restart while the issuer is down serves the on-disk copy', async (t) => {
  const f = await fixture(t);
  const k1 = signingKey('ES256', 'k1');
  f.server.serve('/jwks', { body: jwksOf(k1) });
  const first = f.keySet(f.issuer());
  await first.start();
  first.close();
  await f.server.close();

  f.clock.now += 23 * HOUR;
  const restarted = f.keySet(f.issuer());
  await restarted.start();
  assert.equal(restarted.ready(), true, 'the cached keys serve although the fetch failed');
  assert.ok(await verifies(restarted.find('k1', 'ES256'), k1));
  const status = restarted.status();
  assert.equal(status.source, 'disk_cache');
  assert.equal(status.lastFetchAt, null);
  assert.match(status.lastError ?? '', /JWK Set http:\/\/127\.0\.0\.1:\d+\/jwks: .*ECONNREFUSED/);
  const failure = f.events('jwks.refresh_failed').at(-1);
  assert.equal(failure?.level, 'warn', 'serving the previous keys is a warning, not an outage');

  // The copy counts from when the issuer served it: 24 h later it is no longer served.
  f.clock.now += HOUR;
  assert.equal(restarted.ready(), false);
  assert.equal(restarted.find('k1', 'ES256'), undefined, 'stale keys are not served even without ready()');
  const tooOld = f.keySet(f.issuer());
  await tooOld.start();
  assert.equal(tooOld.ready(), false);
  assert.match(String(f.events('jwks.cache_ignored').at(-1)?.['reason']), /older than 24 h/);
  assert.equal(f.events('jwks.refresh_failed').at(-1)?.level, 'error', 'no keys at all is an error');
});

test('an on-disk copy for another issuer or source, or with a bad key set, is ignored', async (t) => {
  const f = await fixture(t);
  const k1 = signingKey('ES256', 'k1');
  const path = cacheFilePath(f.dataDir, f.issuer());
  const write = (entry: Record<string, unknown>): Promise<void> =>
    writeFile(path, JSON.stringify({ issuer: ISS, source: `${f.server.origin}/jwks`, url: `${f.server.origin}/jwks`, fetchedAt: f.clock.now, jwks: jwksOf(k1), ...entry }));
  await mkdir(join(f.dataDir, 'jwks'));

  for (const [entry, reason] of [
    [{ issuer: 'https://other.example' }, /another issuer/],
    [{ source: 'https://other.example/jwks' }, /another key source/],
    [{ fetchedAt: f.clock.now + HOUR }, /in the future/],
    [{ fetchedAt: 'yesterday' }, /no fetchedAt/],
    [{ jwks: jwksOf({ ...k1.jwk, use: 'enc' }) }, /invalid key set/],
  ] as const) {
    await write(entry);
    const set = f.keySet(f.issuer());
    await set.start();
    assert.equal(set.ready(), false, `ignored: ${reason}`);
    assert.match(String(f.events('jwks.cache_ignored').at(-1)?.['reason']), reason);
  }
  await write({});
  const good = f.keySet(f.issuer());
  await good.start();
  assert.equal(good.ready(), true, 'the same file, well-formed, is used');
  assert.equal(existsSync(cacheFilePath(f.dataDir, f.issuer({ issuer: 'https://other.example' }))), false);
});

test('keys the issuer has not confirmed for 24 h stop being served, and come back with the issuer', async (t) => {
  const f = await fixture(t);
  const k1 = signingKey('ES256', 'k1');
  f.server.serve('/jwks', { body: jwksOf(k1) });
  const set = f.keySet(f.issuer());
  await set.start();
  f.server.serve('/jwks', { status: 503, body: {} });
  f.clock.now += MAX_KEY_SET_AGE_MS - 1;
  await set.refreshForUnknownKid();
  assert.equal(set.ready(), true, 'a failed refresh keeps the last good set');
  assert.match(set.status().lastError ?? '', /answered 503/);
  f.clock.now += 1;
  assert.equal(set.ready(), false);
  f.server.serve('/jwks', { body: jwksOf(k1) });
  f.clock.now += 30_000;
  await set.refreshForUnknownKid();
  assert.equal(set.ready(), true);
  assert.equal(set.status().lastError, null);
});

test('refreshes on its interval, and stops when closed', async (t) => {
  const f = await fixture(t);
  f.server.serve('/jwks', { body: jwksOf(signingKey('ES256', 'k1')) });
  const set = f.keySet(f.issuer({ refreshIntervalMs: MIN_FETCH_SPACING_MS }), { realClock: true });
  const started = Date.now();
  await set.start();
  await waitFor(() => f.server.count('/jwks') >= 3, 4 * MIN_FETCH_SPACING_MS, 'two scheduled refreshes');
  assert.ok(Date.now() - started >= 2 * MIN_FETCH_SPACING_MS - 50, 'not before their time');
  set.close();
  const count = f.server.count('/jwks');
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(f.server.count('/jwks'), count, 'no fetch after close');
  await set.refreshForUnknownKid();
  assert.equal(f.server.count('/jwks'), count, 'not even for an unknown kid');
});

test('a 0 ms interval or cooldown in the configuration does not become a loop on the issuer', async (t) => {
  const f = await fixture(t);
  f.server.serve('/jwks', { body: jwksOf(signingKey('ES256', 'k1')) });
  const set = f.keySet(f.issuer({ refreshIntervalMs: 0, unknownKidCooldownMs: 0 }));
  await set.start();
  await set.refreshForUnknownKid();
  assert.equal(f.server.count('/jwks'), 2);
  await new Promise((resolve) => setTimeout(resolve, 300));
  f.clock.now += MIN_FETCH_SPACING_MS - 1;
  await set.refreshForUnknownKid();
  assert.equal(f.server.count('/jwks'), 2, `at most one fetch per ${MIN_FETCH_SPACING_MS} ms`);
  f.clock.now += 1;
  await set.refreshForUnknownKid();
  assert.equal(f.server.count('/jwks'), 3);

  // Past setTimeout's 2^31−1 ms Node would fire after 1 ms: a 40-day interval must not.
  f.server.serve('/long', { body: jwksOf(signingKey('ES256', 'k1')) });
  const longInterval = f.keySet(f.issuer({ id: 'long', source: { kind: 'jwks_uri', url: `${f.server.origin}/long` }, refreshIntervalMs: 40 * 24 * HOUR }));
  await longInterval.start();
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(f.server.count('/long'), 1);
});

test('an unknown-kid flood costs the issuer one fetch per cooldown', async (t) => {
  const f = await fixture(t);
  f.server.serve('/jwks', { body: jwksOf(signingKey('ES256', 'k1')) });
  const set = f.keySet(f.issuer({ unknownKidCooldownMs: 30_000 }));
  await set.start();
  assert.equal(f.server.count('/jwks'), 1);

  const flood = Array.from({ length: 100 }, () => set.refreshForUnknownKid());
  assert.ok(flood.every((promise) => promise === flood[0]), 'concurrent callers share one fetch');
  await Promise.all(flood);
  assert.equal(f.server.count('/jwks'), 2, '100 unknown kids: exactly one fetch');

  f.clock.now += 29_999;
  await Promise.all(Array.from({ length: 100 }, () => set.refreshForUnknownKid()));
  assert.equal(f.server.count('/jwks'), 2, 'within the cooldown: no fetch');

  f.clock.now += 1;
  await Promise.all(Array.from({ length: 100 }, () => set.refreshForUnknownKid()));
  assert.equal(f.server.count('/jwks'), 3, 'after the cooldown: one more');
});

test('rotation: a new kid is found after one refetch, a removed key is gone, and nothing fails in between', async (t) => {
  const f = await fixture(t);
  const k1 = signingKey('ES256', 'k1');
  const k2 = signingKey('RS256', 'k2');
  f.server.serve('/jwks', { body: jwksOf(k1) });
  const set = f.keySet(f.issuer());
  await set.start();
  const first = set.generation;

  // The issuer publishes k2 next to k1 and starts signing with it.
  f.server.serve('/jwks', { body: jwksOf(k1, k2) });
  assert.equal(set.find('k2', 'RS256'), undefined);
  const refetch = set.refreshForUnknownKid();
  assert.ok(await verifies(set.find('k1', 'ES256'), k1), 'the old key serves while the refetch runs');
  await refetch;
  assert.ok(await verifies(set.find('k2', 'RS256'), k2), 'the new kid is found');
  assert.ok(await verifies(set.find('k1', 'ES256'), k1), 'the old key still verifies tokens issued before the rotation');
  const second = set.generation;
  assert.ok(second > first, 'a changed set is a new generation');
  assert.deepEqual(f.events('jwks.keys_changed').at(-1)?.['added'], ['k2']);

  // The same set again: same generation (verification caches stay valid).
  f.clock.now += 30_000;
  await set.refreshForUnknownKid();
  assert.equal(f.server.count('/jwks'), 3);
  assert.equal(set.generation, second);

  // The issuer retires k1.
  f.server.serve('/jwks', { body: jwksOf(k2) });
  f.clock.now += 30_000;
  await set.refreshForUnknownKid();
  assert.equal(set.find('k1', 'ES256'), undefined, 'a removed key no longer verifies');
  assert.ok(await verifies(set.find('k2', 'RS256'), k2));
  assert.ok(set.generation > second);
  assert.deepEqual(f.events('jwks.keys_changed').at(-1)?.['removed'], ['k1']);

  // The same kid with a different key is a change too.
  const k2Replaced = signingKey('RS256', 'k2');
  f.server.serve('/jwks', { body: jwksOf(k2Replaced) });
  f.clock.now += 30_000;
  const third = set.generation;
  await set.refreshForUnknownKid();
  assert.ok(set.generation > third);
  assert.ok(await verifies(set.find('k2', 'RS256'), k2Replaced));
  assert.equal(await verifies(set.find('k2', 'RS256'), k2), false);
});

test('a fetched set that fails validation is refused whole and the previous set kept', async (t) => {
  const f = await fixture(t);
  const k1 = signingKey('ES256', 'k1');
  f.server.serve('/jwks', { body: jwksOf(k1) });
  const set = f.keySet(f.issuer());
  await set.start();
  const generation = set.generation;
  const path = cacheFilePath(f.dataDir, f.issuer());
  const cachedBefore = await readFile(path, 'utf8');

  const weak = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' });
  const k2 = signingKey('ES256', 'k2');
  f.server.serve('/jwks', { body: jwksOf(k1, k2, { ...weak, kid: 'weak', alg: 'RS256' }) });
  f.clock.now += 30_000;
  await set.refreshForUnknownKid();

  assert.equal(set.generation, generation);
  assert.ok(await verifies(set.find('k1', 'ES256'), k1));
  assert.equal(set.find('k2', 'ES256'), undefined, 'not even the good keys of a refused set are served');
  assert.match(set.status().lastError ?? '', /key 2 \(kid "weak"\): the RSA modulus has 1024 bits/);
  const failure = f.events('jwks.refresh_failed').at(-1);
  assert.equal(failure?.level, 'warn');
  assert.deepEqual(failure?.['problems'], ['key 2 (kid "weak"): the RSA modulus has 1024 bits; at least 2048 are required (RFC 7518 §3.3)']);
  assert.equal(await readFile(path, 'utf8'), cachedBefore, 'a refused set never reaches the disk');
});

test('an issuer that never answers: start ends at the timeout, nothing is served, and it is retried', async (t) => {
  const f = await fixture(t);
  f.server.serve('/jwks', { behaviour: 'hang' });
  const set = f.keySet(f.issuer({ fetchTimeoutMs: 200, unknownKidCooldownMs: 100 }), { realClock: true });
  const started = Date.now();
  await set.start();
  assert.ok(Date.now() - started < 1500, 'start is bounded by the fetch timeout');
  assert.equal(set.ready(), false);
  assert.equal(set.find('k1', 'ES256'), undefined);
  assert.match(set.status().lastError ?? '', /no answer within 200 ms/);
  assert.equal(set.status().source, 'none');
  assert.equal(f.events('jwks.refresh_failed').at(-1)?.level, 'error');

  // Without keys the next try comes after the cooldown, not the (10 min) refresh interval.
  const k1 = signingKey('ES256', 'k1');
  f.server.serve('/jwks', { body: jwksOf(k1) });
  await waitFor(() => set.ready(), 3000, 'the retry to load the keys');
  assert.ok(await verifies(set.find('k1', 'ES256'), k1));
});

test('discovery: keys come from the metadata jwks_uri, and only when it names this exact issuer', async (t) => {
  const f = await fixture(t);
  const k1 = signingKey('EdDSA', 'k1');
  f.server.serve('/keys', { body: jwksOf(k1) });
  const discovery: KeySource = { kind: 'discovery', url: `${f.server.origin}/.well-known/openid-configuration` };

  f.server.serve('/.well-known/openid-configuration', { body: { issuer: `${ISS}/`, jwks_uri: `${f.server.origin}/keys` } });
  const refused = f.keySet(f.issuer({ source: discovery }));
  await refused.start();
  assert.equal(refused.ready(), false);
  assert.match(refused.status().lastError ?? '', /names issuer "https:\/\/idp.example\/", not the configured "https:\/\/idp.example"/);
  assert.equal(f.server.count('/keys'), 0, 'no key of another issuer is ever fetched');

  f.server.serve('/.well-known/openid-configuration', { body: { issuer: ISS, jwks_uri: `${f.server.origin}/keys` } });
  const accepted = f.keySet(f.issuer({ id: 'idp2', source: discovery }));
  await accepted.start();
  assert.equal(accepted.ready(), true);
  assert.ok(await verifies(accepted.find('k1', 'EdDSA'), k1));
});

test('a document that is not JSON, or too large, is refused', async (t) => {
  const f = await fixture(t);
  const k1 = signingKey('ES256', 'k1');
  f.server.serve('/jwks', { body: jwksOf(k1), contentType: 'text/plain' });
  const set = f.keySet(f.issuer());
  await set.start();
  assert.equal(set.ready(), false);
  assert.match(set.status().lastError ?? '', /is not JSON/);

  f.server.serve('/jwks', { body: jwksOf(k1) });
  f.clock.now += 30_000;
  await set.refreshForUnknownKid();
  assert.equal(set.ready(), true);

  f.server.serve('/jwks', { body: { ...jwksOf(signingKey('ES256', 'k2')), padding: 'x'.repeat(300 * 1024) } });
  f.clock.now += 30_000;
  await set.refreshForUnknownKid();
  assert.match(set.status().lastError ?? '', /larger than 262144 bytes/);
  assert.ok(await verifies(set.find('k1', 'ES256'), k1), 'the previous set is kept');
});

test('a key without alg serves each issuer algorithm that fits it; a key without kid only kid-less tokens', async (t) => {
  const f = await fixture(t);
  const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = signingKey('ES256', 'unused');
  const { kid: _, ...noKid } = ec.jwk;
  f.server.serve('/jwks', { body: { keys: [{ ...pair.publicKey.export({ format: 'jwk' }), kid: 'r' }, noKid] } });
  const set = f.keySet(f.issuer({ algorithms: new Set<SigningAlgorithm>(['RS256', 'PS256', 'ES256']) }));
  await set.start();
  assert.equal(set.status().keys, 2);
  const rs = set.find('r', 'RS256');
  const ps = set.find('r', 'PS256');
  assert.ok(rs && ps && rs.key !== ps.key, 'one imported key per algorithm');
  assert.equal(set.find('r', 'RS384'), undefined, 'an algorithm the issuer does not use is not served');
  const input = `${Buffer.from('{"alg":"PS256","kid":"r"}').toString('base64url')}.${Buffer.from('x').toString('base64url')}`;
  const pss = sign('sha256', Buffer.from(input), { key: pair.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
  await compactVerify(`${input}.${pss.toString('base64url')}`, ps.key, { algorithms: ['PS256'] });
  await assert.rejects(compactVerify(`${input}.${pss.toString('base64url')}`, rs.key, { algorithms: ['PS256'] }), 'the RS256 key is not usable for PS256');

  assert.ok(await verifies(set.find(undefined, 'ES256'), { ...ec, kid: 'unused' }));
  assert.equal(set.find('unused', 'ES256'), undefined, 'a kid-less key never answers a token with a kid');
});

test('a file source: keys from the configuration, nothing fetched, nothing cached', async (t) => {
  const f = await fixture(t);
  const k1 = signingKey('ES256', 'k1');
  const issuer = f.issuer({ source: { kind: 'file', path: '/etc/portcullis/idp.jwks', jwks: jwksOf(k1) } });
  const set = f.keySet(issuer);
  await set.start();
  assert.equal(set.ready(), true);
  assert.ok(await verifies(set.find('k1', 'ES256'), k1));
  assert.equal(set.status().source, 'file');
  f.clock.now += 10 * 24 * HOUR;
  assert.equal(set.ready(), true, 'a file does not age');
  await set.refreshForUnknownKid();
  assert.equal(f.server.requests.size, 0);
  assert.equal(existsSync(join(f.dataDir, 'jwks')), false);

  const bad = f.keySet(f.issuer({ id: 'bad', source: { kind: 'file', path: '/etc/portcullis/bad.jwks', jwks: jwksOf({ ...k1.jwk, kty: 'oct', k: 'AAAA' }) } }));
  await bad.start();
  assert.equal(bad.ready(), false);
  const refused = f.events('jwks.file_refused').at(-1);
  assert.equal(refused?.level, 'error');
  assert.match(String(refused?.['error']), /\/etc\/portcullis\/bad.jwks refused: key 0 \(kid "k1"\)/);
});
