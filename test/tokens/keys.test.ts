/**
 * The token service's signing keys (src/tokens/keys.ts) over a real embedded state store, and the
 * gateway's own validation trusting them with no network: `KeySets` reads the keys in memory and
 * `createJwtVerifier` verifies tokens `keys.sign()` produced, exactly as for any issuer.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { calculateJwkThumbprint, compactVerify, decodeProtectedHeader } from 'jose';
import type { JWK } from 'jose';
import { openEmbeddedStore } from '../../src/state/embedded.ts';
import type { StateStore } from '../../src/state/store.ts';
import { TOKEN_KEYS_STATE_KEY, openTokenKeys } from '../../src/tokens/keys.ts';
import { KeySets } from '../../src/authn/jwks/key-sets.ts';
import { createJwtVerifier } from '../../src/authn/jwt/verify.ts';
import { VerifiedTokenCache } from '../../src/authn/jwt/cache.ts';
import { tokenServiceIssuer } from '../../src/config/compile-identity.ts';
import { TOKEN_SERVICE_ISSUER_ID } from '../../src/config/snapshot.ts';
import type { CompiledIssuer } from '../../src/config/snapshot.ts';
import { setLogListener } from '../../src/log.ts';

const ISSUER = 'https://tokens.example.test';
const AUDIENCE = 'https://api.example.test/orders';
const MINUTE = 60_000;

let dir: string;
let storePath: string;
let store: StateStore;
/** A controllable clock shared by the keys, the key sets and the verifier. */
let clock = Date.UTC(2031, 0, 1);
const now = (): number => clock;

before(async () => {
  setLogListener(null, { quiet: true });
  dir = await mkdtemp(join(tmpdir(), 'portcullis-token-keys-'));
  storePath = join(dir, 'state.sqlite');
  store = await openEmbeddedStore({ path: storePath, propagationTimeoutMs: 1000 });
});

after(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

function claims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const iat = Math.floor(clock / 1000);
  return { iss: ISSUER, sub: 'client-1', client_id: 'client-1', aud: AUDIENCE, iat, exp: iat + 300, jti: `jti-${clock}-${Math.random()}`, scope: 'orders:read', ...overrides };
}

function issuer(algorithm: 'ES256' | 'EdDSA' | 'PS256' | 'RS256' = 'ES256'): CompiledIssuer {
  return tokenServiceIssuer({
    issuer: ISSUER,
    listener: 'tokens',
    algorithm,
    tokenLifetimeMs: 5 * MINUTE,
    maxTokenLifetimeMs: 15 * MINUTE,
    assertionMaxLifetimeMs: 5 * MINUTE,
    keyOverlapMs: 60 * MINUTE,
    allowBearer: false,
  });
}

describe('openTokenKeys', () => {
  it('generates one key on first start, keeps it in the state store, and two instances starting together share it', async () => {
    await store.delete(TOKEN_KEYS_STATE_KEY);
    const [first, second] = await Promise.all([openTokenKeys({ store, algorithm: 'ES256', now }), openTokenKeys({ store, algorithm: 'ES256', now })]);
    assert.equal(first.list().length, 1);
    assert.deepEqual(second.list().map((key) => key.kid), first.list().map((key) => key.kid));
    const key = first.list()[0]!;
    assert.equal(key.alg, 'ES256');
    assert.equal(key.retiredAt, null);
    // RFC 7638: the kid is the thumbprint of the public key.
    const { kid: _kid, alg: _alg, use: _use, ...bare } = key.publicJwk as JWK & { use?: string };
    assert.equal(key.kid, await calculateJwkThumbprint(bare as JWK, 'sha256'));
    // A restart reads the same key back.
    const reopened = await openTokenKeys({ store, algorithm: 'ES256', now });
    assert.equal(reopened.list()[0]!.kid, key.kid);
    // The embedded store holding the private key is readable by its owner only.
    assert.equal((await stat(storePath)).mode & 0o077, 0);
  });

  it('publishes only public members in the JWKS', async () => {
    const keys = await openTokenKeys({ store, algorithm: 'ES256', now });
    for (const jwk of keys.jwks().keys) {
      for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']) assert.equal(Object.hasOwn(jwk, member), false, `published JWK has "${member}"`);
      assert.equal(jwk['use'], 'sig');
    }
    const raw = (await store.get(TOKEN_KEYS_STATE_KEY))!;
    assert.match(raw, /"d":/, 'the stored document keeps the private key');
  });

  it('signs with the active key: typ and kid in the header, verifiable with the published key', async () => {
    const keys = await openTokenKeys({ store, algorithm: 'ES256', now });
    const token = await keys.sign(claims(), 'at+jwt');
    const header = decodeProtectedHeader(token);
    assert.deepEqual(header, { alg: 'ES256', typ: 'at+jwt', kid: keys.list()[0]!.kid });
    const verified = await compactVerify(token, keys.publicKey(header.kid!)!);
    assert.equal(JSON.parse(new TextDecoder().decode(verified.payload)).iss, ISSUER);
  });

  it('refuses a corrupted key document instead of signing with something else', async () => {
    const saved = (await store.get(TOKEN_KEYS_STATE_KEY))!;
    try {
      const document = JSON.parse(saved) as { keys: Array<Record<string, unknown>> };
      document.keys[0]!['privateJwk'] = { kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA', d: 'AA' };
      await store.set(TOKEN_KEYS_STATE_KEY, JSON.stringify(document), null);
      await assert.rejects(openTokenKeys({ store, algorithm: 'ES256', now }), /private key unusable/);
      await store.set(TOKEN_KEYS_STATE_KEY, 'not json', null);
      await assert.rejects(openTokenKeys({ store, algorithm: 'ES256', now }), /not JSON/);
    } finally {
      await store.set(TOKEN_KEYS_STATE_KEY, saved, null);
    }
  });

  it('adds a key of the configured algorithm when the configuration changes it', async () => {
    const before = await openTokenKeys({ store, algorithm: 'ES256', now });
    const changed = await openTokenKeys({ store, algorithm: 'EdDSA', now });
    assert.equal(changed.list()[0]!.alg, 'EdDSA');
    assert.equal(decodeProtectedHeader(await changed.sign(claims(), 'at+jwt')).alg, 'EdDSA');
    // The previous key is retired, not dropped: it leaves the JWKS only after the overlap.
    await before.refresh();
    assert.equal(before.list().length, changed.list().length);
    await store.delete(TOKEN_KEYS_STATE_KEY);
  });
});

describe('rotation', () => {
  it('publishes the new key at once, signs with it only after the publish delay, removes the old one after the overlap', async () => {
    await store.delete(TOKEN_KEYS_STATE_KEY);
    const keys = await openTokenKeys({ store, algorithm: 'ES256', now });
    const other = await openTokenKeys({ store, algorithm: 'ES256', now });
    const oldKid = keys.list()[0]!.kid;
    const added = await keys.rotate({ publishDelayMs: 5 * MINUTE, overlapMs: 60 * MINUTE });
    assert.notEqual(added.kid, oldKid);
    assert.deepEqual(keys.jwks().keys.map((jwk) => jwk['kid']).sort(), [added.kid, oldKid].sort());
    assert.equal(decodeProtectedHeader(await keys.sign(claims(), 'at+jwt')).kid, oldKid, 'the old key signs during the publish delay');
    const retired = keys.list().find((key) => key.kid === oldKid)!;
    assert.equal(retired.retiredAt, clock + 5 * MINUTE);
    assert.equal(retired.removeAt, clock + 65 * MINUTE);

    // Another instance learns the rotation on refresh.
    assert.equal(other.jwks().keys.length, 1);
    await other.refresh();
    assert.equal(other.jwks().keys.length, 2);

    clock += 5 * MINUTE;
    assert.equal(decodeProtectedHeader(await other.sign(claims(), 'at+jwt')).kid, added.kid);
    clock += 60 * MINUTE;
    assert.deepEqual(keys.jwks().keys.map((jwk) => jwk['kid']), [added.kid]);
    assert.equal(keys.publicKey(oldKid), undefined);
  });

  it('refuses nonsense durations', async () => {
    const keys = await openTokenKeys({ store, algorithm: 'ES256', now });
    await assert.rejects(keys.rotate({ publishDelayMs: -1, overlapMs: 0 }), /publish delay/);
    await assert.rejects(keys.rotate({ publishDelayMs: 0, overlapMs: Number.NaN }), /overlap/);
  });
});

describe('the gateway trusts its own token service with no network', () => {
  it('verifies a token the keys signed, and refuses the old kid once rotated out', async () => {
    await store.delete(TOKEN_KEYS_STATE_KEY);
    const keys = await openTokenKeys({ store, algorithm: 'ES256', now });
    const tokenIssuer = issuer();
    const keySets = new KeySets({ dataDir: dir, now, tokenServiceJwks: () => keys.jwks() });
    try {
      await keySets.sync(new Map([[TOKEN_SERVICE_ISSUER_ID, tokenIssuer]]));
      const verifier = createJwtVerifier({ issuersByIss: new Map([[ISSUER, tokenIssuer]]), keySets, cache: new VerifiedTokenCache(), now });
      assert.equal(keySets.get(TOKEN_SERVICE_ISSUER_ID)!.status().source, 'token_service');

      const oldToken = await keys.sign(claims(), 'at+jwt');
      const accepted = await verifier.verify(oldToken, AUDIENCE);
      assert.equal(accepted.ok, true, JSON.stringify(accepted));
      assert.equal(accepted.ok && accepted.clientId, 'client-1');
      // Wrong typ and wrong audience are refused like for any issuer.
      assert.equal((await verifier.verify(await keys.sign(claims(), 'JWT'), AUDIENCE)).ok, false);
      assert.equal((await verifier.verify(oldToken, 'https://api.example.test/payments')).ok, false);

      // An overlap shorter than the token's lifetime (a misconfiguration, but it makes the removal observable).
      await keys.rotate({ publishDelayMs: 0, overlapMs: 1 * MINUTE });
      await keySets.reloadTokenService();
      const newToken = await keys.sign(claims(), 'at+jwt');
      assert.notEqual(decodeProtectedHeader(newToken).kid, decodeProtectedHeader(oldToken).kid);
      assert.equal((await verifier.verify(newToken, AUDIENCE)).ok, true);
      assert.equal((await verifier.verify(oldToken, AUDIENCE)).ok, true, 'during the overlap the old key still verifies');

      clock += 1 * MINUTE + 1;
      await keySets.reloadTokenService();
      // The old token has not expired, but its key has left the JWKS: refused.
      const lateOld = await verifier.verify(oldToken, AUDIENCE);
      assert.equal(lateOld.ok, false);
      assert.match(lateOld.ok ? '' : lateOld.reason, /kid|key/);
      const survivor = await keys.sign(claims(), 'at+jwt');
      assert.equal((await verifier.verify(survivor, AUDIENCE)).ok, true);
      assert.equal(keySets.get(TOKEN_SERVICE_ISSUER_ID)!.find(decodeProtectedHeader(oldToken).kid, 'ES256'), undefined, 'the removed kid is no longer served');
    } finally {
      keySets.closeAll();
    }
  });

  it('has no keys (fails closed) while the token service keys are not open', async () => {
    const keySets = new KeySets({ dataDir: dir, now, tokenServiceJwks: () => null });
    try {
      await keySets.sync(new Map([[TOKEN_SERVICE_ISSUER_ID, issuer()]]));
      assert.equal(keySets.get(TOKEN_SERVICE_ISSUER_ID)!.ready(), false);
    } finally {
      keySets.closeAll();
    }
  });
});
