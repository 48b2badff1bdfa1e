import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { chmod, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, calculateJwkThumbprint, type JSONWebKeySet } from 'jose';
import {
  loadOrCreateDevIssuer,
  DEV_ISSUER,
  DEV_ISSUER_FILES,
  DEV_TOKEN_MAX_LIFETIME_SECONDS,
} from '../../src/demo/dev-issuer.ts';

const AUDIENCE = 'https://api.localhost/orders';
/** A fixed instant, so `iat`/`exp` are known exactly. */
const NOW_MS = Date.parse('2026-03-02T10:00:00.000Z');
const NOW_S = NOW_MS / 1000;

async function readJwks(dir: string): Promise<JSONWebKeySet> {
  return JSON.parse(await readFile(join(dir, DEV_ISSUER_FILES.jwks), 'utf8')) as JSONWebKeySet;
}

/** Verifies as a resource server would: the published JWKS, ES256 only, at+jwt, exact iss and aud. */
async function verify(dir: string, token: string, at = new Date(NOW_MS)) {
  return jwtVerify(token, createLocalJWKSet(await readJwks(dir)), {
    algorithms: ['ES256'],
    typ: 'at+jwt',
    issuer: DEV_ISSUER,
    audience: AUDIENCE,
    currentDate: at,
    requiredClaims: ['iss', 'exp', 'aud', 'sub', 'client_id', 'iat', 'jti'],
  });
}

describe('loadOrCreateDevIssuer', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'portcullis-dev-issuer-'));
  });
  after(() => rm(root, { recursive: true, force: true }));

  it('creates a P-256 key (0600, PKCS#8) and a JWKS publishing only its public half', async () => {
    const dir = join(root, 'create', 'nested');
    const issuer = await loadOrCreateDevIssuer(dir);
    assert.equal(issuer.reused, false);
    assert.equal(issuer.replacedBecause, undefined, 'nothing was replaced on a first start');
    assert.equal(issuer.issuer, DEV_ISSUER);
    assert.deepEqual(issuer.paths, { privateKey: join(dir, DEV_ISSUER_FILES.privateKey), jwks: join(dir, DEV_ISSUER_FILES.jwks) });

    const keyPem = await readFile(issuer.paths.privateKey, 'utf8');
    assert.match(keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
    const key = createPrivateKey(keyPem);
    assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    if (process.platform !== 'win32') {
      assert.equal((await stat(issuer.paths.privateKey)).mode & 0o777, 0o600);
      assert.equal((await stat(dir)).mode & 0o777, 0o700);
    }

    const jwks = await readJwks(dir);
    assert.equal(jwks.keys.length, 1);
    const [jwk] = jwks.keys;
    assert.deepEqual(Object.keys(jwk!).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
    assert.equal(jwk!.alg, 'ES256');
    assert.equal(jwk!.use, 'sig');
    assert.equal(jwk!.kid, issuer.kid);
    assert.equal(jwk!.kid, await calculateJwkThumbprint(jwk!, 'sha256'), 'kid is the RFC 7638 thumbprint');
    assert.ok(!('d' in jwk!), 'no private member in the public JWKS');
    assert.deepEqual((await readdir(dir)).sort(), Object.values(DEV_ISSUER_FILES).sort(), 'no temporary files left');
  });

  it('reuses the key on the next start, byte for byte', async () => {
    const dir = join(root, 'reuse');
    const first = await loadOrCreateDevIssuer(dir);
    const key = await readFile(first.paths.privateKey);
    const jwks = await readFile(first.paths.jwks);
    const { mtimeMs } = await stat(first.paths.privateKey);

    const second = await loadOrCreateDevIssuer(dir);
    assert.equal(second.reused, true);
    assert.equal(second.kid, first.kid);
    assert.deepEqual(await readFile(second.paths.privateKey), key);
    assert.deepEqual(await readFile(second.paths.jwks), jwks);
    assert.equal((await stat(second.paths.privateKey)).mtimeMs, mtimeMs);
    // A token of the second start verifies with the JWKS written by the first.
    await verify(dir, await second.mintAccessToken({ clientId: 'acme-orders', scopes: ['orders:read'], audience: AUDIENCE }), new Date());
  });

  for (const [what, spoil, reason] of [
    ['a JWKS that publishes another key', async (dir: string) => {
      const other = await loadOrCreateDevIssuer(join(dir, 'other'));
      await writeFile(join(dir, DEV_ISSUER_FILES.jwks), await readFile(other.paths.jwks));
    }, /does not publish exactly the key/],
    ['a JWKS that is not JSON', (dir: string) => writeFile(join(dir, DEV_ISSUER_FILES.jwks), '{"keys": ['), /is not JSON/],
    ['a missing JWKS', (dir: string) => rm(join(dir, DEV_ISSUER_FILES.jwks)), /dev-issuer\.jwks\.json is missing/],
    ['a key that is not PEM', (dir: string) => writeFile(join(dir, DEV_ISSUER_FILES.privateKey), 'not a key', { mode: 0o600 }), /is not a PEM private key/],
    ['a key readable by others', (dir: string) => chmod(join(dir, DEV_ISSUER_FILES.privateKey), 0o644), /readable by others \(mode 644\)/],
  ] as const) {
    it(`replaces ${what}, and says why`, { skip: what.includes('readable') && process.platform === 'win32' }, async () => {
      const dir = join(root, what.replaceAll(' ', '-'));
      await loadOrCreateDevIssuer(dir);
      await spoil(dir);
      const second = await loadOrCreateDevIssuer(dir);
      assert.equal(second.reused, false);
      assert.match(second.replacedBecause ?? '', reason);
      // Whatever was wrong, the files are consistent again and a fresh token verifies.
      assert.equal((await readJwks(dir)).keys[0]!.kid, second.kid);
      if (process.platform !== 'win32') assert.equal((await stat(second.paths.privateKey)).mode & 0o777, 0o600);
      await verify(dir, await second.mintAccessToken({ clientId: 'acme-orders', scopes: ['orders:read'], audience: AUDIENCE }), new Date());
      assert.equal((await loadOrCreateDevIssuer(dir)).reused, true, 'the repaired files are reused next time');
    });
  }
});

describe('mintAccessToken', () => {
  let root: string;
  let dir: string;
  let issuer: Awaited<ReturnType<typeof loadOrCreateDevIssuer>>;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'portcullis-dev-issuer-'));
    dir = join(root, 'pki');
    issuer = await loadOrCreateDevIssuer(dir, { now: () => NOW_MS + 999 });
  });
  after(() => rm(root, { recursive: true, force: true }));

  it('signs an RFC 9068 access token: at+jwt, kid, and every required claim', async () => {
    const token = await issuer.mintAccessToken({ clientId: 'acme-orders', scopes: ['orders:read', 'orders:write'], audience: AUDIENCE });
    assert.deepEqual(decodeProtectedHeader(token), { alg: 'ES256', typ: 'at+jwt', kid: issuer.kid });
    const { payload } = await verify(dir, token);
    const { jti, ...rest } = payload;
    assert.deepEqual(rest, {
      iss: DEV_ISSUER,
      sub: 'acme-orders',
      client_id: 'acme-orders',
      aud: AUDIENCE,
      scope: 'orders:read orders:write',
      iat: NOW_S,
      exp: NOW_S + DEV_TOKEN_MAX_LIFETIME_SECONDS,
    });
    assert.equal(DEV_TOKEN_MAX_LIFETIME_SECONDS, 900, 'at most 15 minutes');
    assert.match(String(jti), /^[0-9a-f-]{36}$/);
  });

  it('gives every token its own jti', async () => {
    const options = { clientId: 'acme-orders', scopes: ['orders:read'], audience: AUDIENCE };
    const [a, b] = await Promise.all([issuer.mintAccessToken(options), issuer.mintAccessToken(options)]);
    assert.notEqual((await verify(dir, a)).payload.jti, (await verify(dir, b)).payload.jti);
  });

  it('expires after lifetimeSeconds', async () => {
    const token = await issuer.mintAccessToken({ clientId: 'globex-orders', scopes: ['orders:read'], audience: AUDIENCE, lifetimeSeconds: 60 });
    assert.equal((await verify(dir, token, new Date(NOW_MS + 59_000))).payload.exp, NOW_S + 60);
    await assert.rejects(verify(dir, token, new Date(NOW_MS + 60_000)), { code: 'ERR_JWT_EXPIRED' });
  });

  it('is rejected for another audience', async () => {
    const token = await issuer.mintAccessToken({ clientId: 'acme-orders', scopes: ['orders:read'], audience: 'https://api.localhost/billing' });
    await assert.rejects(verify(dir, token), { code: 'ERR_JWT_CLAIM_VALIDATION_FAILED', claim: 'aud' });
  });

  it('leaves scope out when there is none, and joins duplicates once', async () => {
    const none = await verify(dir, await issuer.mintAccessToken({ clientId: 'acme-orders', scopes: [], audience: AUDIENCE }));
    assert.ok(!('scope' in none.payload));
    const twice = await verify(dir, await issuer.mintAccessToken({ clientId: 'acme-orders', scopes: ['orders:read', 'orders:read'], audience: AUDIENCE }));
    assert.equal(twice.payload['scope'], 'orders:read');
  });

  it('refuses options it cannot put in a valid token, naming the option', async () => {
    const base = { clientId: 'acme-orders', scopes: ['orders:read'], audience: AUDIENCE };
    await assert.rejects(issuer.mintAccessToken({ ...base, lifetimeSeconds: DEV_TOKEN_MAX_LIFETIME_SECONDS + 1 }), { name: 'RangeError', message: /lifetimeSeconds must be an integer from 1 to 900, got 901/ });
    await assert.rejects(issuer.mintAccessToken({ ...base, lifetimeSeconds: 0 }), { name: 'RangeError' });
    await assert.rejects(issuer.mintAccessToken({ ...base, lifetimeSeconds: 1.5 }), { name: 'RangeError' });
    await assert.rejects(issuer.mintAccessToken({ ...base, scopes: ['orders:read orders:write'] }), { name: 'TypeError', message: /"orders:read orders:write" is not an RFC 6749 §3\.3 scope token/ });
    await assert.rejects(issuer.mintAccessToken({ ...base, scopes: ['say "hi"'] }), { name: 'TypeError' });
    await assert.rejects(issuer.mintAccessToken({ ...base, clientId: '' }), { name: 'TypeError', message: /clientId/ });
    await assert.rejects(issuer.mintAccessToken({ ...base, audience: '' }), { name: 'TypeError', message: /audience/ });
  });
});
