/**
 * The verified-token cache, exercised through the real verifier (ES256 keys as node KeyObjects,
 * generated per run) with an injected clock.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, hash, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import type { CompiledIssuer } from '../../../src/config/snapshot.ts';
import type { KeySet, VerificationKey } from '../../../src/authn/jwks/key-set.ts';
import { VerifiedTokenCache } from '../../../src/authn/jwt/cache.ts';
import { createJwtVerifier } from '../../../src/authn/jwt/verify.ts';
import type { VerifyOutcome } from '../../../src/authn/jwt/verify.ts';

const ISS = 'https://issuer.example';
const API_A = 'https://api.example/a';
const API_B = 'https://api.example/b';
const START_MS = Date.UTC(2030, 0, 1, 12, 0, 0);

interface EsKey {
  readonly kid: string;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

let current: EsKey;
let next: EsKey;

before(() => {
  const pair = (kid: string): EsKey => ({ kid, ...generateKeyPairSync('ec', { namedCurve: 'P-256' }) });
  current = pair('k1');
  next = pair('k2');
});

const b64url = (data: string | Buffer): string => Buffer.from(data).toString('base64url');

function token(key: EsKey, claims: Record<string, unknown>): string {
  const input = `${b64url(JSON.stringify({ alg: 'ES256', typ: 'at+jwt', kid: key.kid }))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${b64url(sign('sha256', Buffer.from(input), { key: key.privateKey, dsaEncoding: 'ieee-p1363' }))}`;
}

class InMemoryKeySet implements KeySet {
  readonly issuerId = 'issuer';
  generation = 1;
  keys: VerificationKey[] = [];
  finds = 0;
  refreshes = 0;
  ready(): boolean {
    return true;
  }
  find(kid: string | undefined, alg: string): VerificationKey | undefined {
    this.finds++;
    return this.keys.find((key) => key.kid === kid && key.alg === alg);
  }
  async refreshForUnknownKid(): Promise<void> {
    this.refreshes++;
  }
  rotate(keys: EsKey[]): void {
    this.keys = keys.map((key) => ({ kid: key.kid, alg: 'ES256', key: key.publicKey }));
    this.generation++;
  }
}

const issuer: CompiledIssuer = {
  id: 'issuer',
  issuer: ISS,
  source: { kind: 'file', path: 'issuer.jwks.json', jwks: { keys: [] } },
  ca: null,
  algorithms: new Set(['ES256']),
  typ: 'at+jwt',
  leewayMs: 30_000,
  maxLifetimeMs: 3_600_000,
  partnerClaim: 'client_id',
  refreshIntervalMs: 600_000,
  unknownKidCooldownMs: 30_000,
  fetchTimeoutMs: 5_000,
};

function setup(cache = new VerifiedTokenCache()) {
  const clock = { ms: START_MS };
  const keySet = new InMemoryKeySet();
  keySet.rotate([current]);
  keySet.generation = 1;
  const verifier = createJwtVerifier({ issuersByIss: new Map([[ISS, issuer]]), keySets: new Map([[issuer.id, keySet]]), cache, now: () => clock.ms });
  const seconds = () => Math.floor(clock.ms / 1000);
  const claims = (overrides: Record<string, unknown> = {}) => ({
    iss: ISS,
    sub: 'partner',
    client_id: 'client',
    aud: API_A,
    iat: seconds(),
    exp: seconds() + 300,
    jti: 'jti-1',
    scope: 'a:read',
    ...overrides,
  });
  return { clock, keySet, verifier, cache, claims, seconds };
}

/** The outcome of a call that must be answered from the cache: synchronously. */
function hit(outcome: VerifyOutcome | Promise<VerifyOutcome>) {
  assert.ok(!(outcome instanceof Promise), 'a cache hit is answered synchronously');
  assert.ok(outcome.ok, outcome.ok ? '' : outcome.detail);
  assert.equal(outcome.cached, true);
  return outcome;
}

/** The outcome of a call that had to verify (a promise): a miss. */
async function miss(outcome: VerifyOutcome | Promise<VerifyOutcome>) {
  assert.ok(outcome instanceof Promise, 'a miss verifies the signature again');
  const result = await outcome;
  if (result.ok) assert.equal(result.cached, false);
  return result;
}

describe('VerifiedTokenCache through the verifier', () => {
  it('answers a verified token from the cache synchronously, without touching the key set', async () => {
    const { verifier, keySet, claims, cache } = setup();
    const jwt = token(current, claims());
    const first = await miss(verifier.verify(jwt, API_A));
    assert.ok(first.ok);
    assert.equal(cache.size, 1);
    const finds = keySet.finds;
    const second = hit(verifier.verify(jwt, API_A));
    assert.equal(keySet.finds, finds);
    assert.equal(second.claims, first.claims);
    assert.equal(second.jti, 'jti-1');
    assert.equal(second.clientId, 'client');
    assert.deepEqual([...second.scopes], ['a:read']);
    assert.ok(Object.isFrozen(second));
    assert.throws(() => {
      (second.claims as Record<string, unknown>)['sub'] = 'someone-else';
    }, TypeError);
  });

  it('JWT-11: is keyed per audience: a token verified for API A is not a hit for API B', async () => {
    const { verifier, claims } = setup();
    const onlyA = token(current, claims());
    assert.ok((await miss(verifier.verify(onlyA, API_A))).ok);
    const forB = await miss(verifier.verify(onlyA, API_B));
    assert.ok(!forB.ok);
    assert.equal(forB.reason, 'token.aud_mismatch');

    const both = token(current, claims({ aud: [API_A, API_B], jti: 'jti-2' }));
    assert.ok((await miss(verifier.verify(both, API_A))).ok);
    assert.ok((await miss(verifier.verify(both, API_B))).ok);
    hit(verifier.verify(both, API_B));
    hit(verifier.verify(both, API_A));
  });

  it('drops an entry at exp; the verifier then decides with its leeway', async () => {
    const { verifier, clock, claims, seconds, cache } = setup();
    const jwt = token(current, claims({ exp: seconds() + 20 }));
    assert.ok((await miss(verifier.verify(jwt, API_A))).ok);
    clock.ms += 19_000;
    hit(verifier.verify(jwt, API_A));
    clock.ms += 2_000; // 1 s after exp: no longer cached, still within the 30 s leeway
    assert.ok((await miss(verifier.verify(jwt, API_A))).ok);
    // accepted within leeway after exp, but not cached
    assert.equal(cache.size, 0);
    assert.ok((await miss(verifier.verify(jwt, API_A))).ok);
    clock.ms += 30_000;
    const expired = await miss(verifier.verify(jwt, API_A));
    assert.ok(!expired.ok);
    assert.equal(expired.reason, 'token.expired');
  });

  it('keeps an entry at most 60 s even when exp is later', async () => {
    const { verifier, clock, keySet, claims } = setup();
    const jwt = token(current, claims());
    await miss(verifier.verify(jwt, API_A));
    clock.ms += 59_999;
    hit(verifier.verify(jwt, API_A));
    clock.ms += 1;
    const finds = keySet.finds;
    assert.ok((await miss(verifier.verify(jwt, API_A))).ok);
    assert.equal(keySet.finds, finds + 1);
    hit(verifier.verify(jwt, API_A));
  });

  it('re-checks nbf on every hit (a clock that steps back)', async () => {
    const { verifier, clock, claims, seconds } = setup();
    const jwt = token(current, claims({ nbf: seconds() - 10 }));
    await miss(verifier.verify(jwt, API_A));
    hit(verifier.verify(jwt, API_A));
    clock.ms -= 45_000; // nbf is now 35 s ahead: beyond the 30 s leeway
    const early = await miss(verifier.verify(jwt, API_A));
    assert.ok(!early.ok);
    assert.equal(early.reason, 'token.not_yet_valid');
  });

  it('drops cached verifications when the issuer\'s key set changes generation (rotation)', async () => {
    const { verifier, keySet, claims } = setup();
    const jwt = token(current, claims());
    await miss(verifier.verify(jwt, API_A));
    hit(verifier.verify(jwt, API_A));
    keySet.rotate([current, next]);
    assert.ok((await miss(verifier.verify(jwt, API_A))).ok, 'still verifies while its key is published');
    hit(verifier.verify(jwt, API_A));
    keySet.rotate([next]);
    const retired = await miss(verifier.verify(jwt, API_A));
    assert.ok(!retired.ok);
    assert.equal(retired.reason, 'token.kid_unknown');
  });

  it('never caches a refusal', async () => {
    const { verifier, keySet, claims, cache } = setup();
    const wrongAudience = token(current, claims({ aud: API_B }));
    for (let i = 0; i < 2; i++) assert.ok(!(await miss(verifier.verify(wrongAudience, API_A))).ok);
    const unknownKid = token({ ...next, kid: 'k9' }, claims());
    for (let i = 0; i < 2; i++) assert.ok(!(await miss(verifier.verify(unknownKid, API_A))).ok);
    assert.equal(keySet.refreshes, 2);
    assert.equal(cache.size, 0);
  });

  it('is a bounded LRU: the least recently used entry is evicted', async () => {
    const { verifier, claims } = setup(new VerifiedTokenCache({ maxEntries: 2 }));
    const [t1, t2, t3] = ['j1', 'j2', 'j3'].map((jti) => token(current, claims({ jti }))) as [string, string, string];
    await miss(verifier.verify(t1, API_A));
    await miss(verifier.verify(t2, API_A));
    hit(verifier.verify(t1, API_A)); // t1 is now the most recently used
    await miss(verifier.verify(t3, API_A)); // evicts t2
    hit(verifier.verify(t1, API_A));
    hit(verifier.verify(t3, API_A));
    await miss(verifier.verify(t2, API_A));
  });

  it('does not cache tokens longer than its limit', async () => {
    const { verifier, claims } = setup(new VerifiedTokenCache({ maxTokenLength: 300 }));
    const long = token(current, claims({ padding: 'x'.repeat(200) }));
    assert.ok(long.length > 300);
    assert.ok((await miss(verifier.verify(long, API_A))).ok);
    assert.ok((await miss(verifier.verify(long, API_A))).ok);
  });
});

describe('VerifiedTokenCache', () => {
  it('keys entries by SHA-256 of the token (base64url) and the audience, never by the token', () => {
    const cache = new VerifiedTokenCache();
    const jwt = token(current, { any: 'claims' });
    const key = cache.keyFor(jwt, API_A);
    assert.equal(key, `${hash('sha256', jwt, 'base64url')}${API_A}`);
    assert.ok(!key!.includes(jwt.split('.')[1]!));
    assert.notEqual(cache.keyFor(jwt, API_B), key);
    assert.equal(new VerifiedTokenCache({ maxTokenLength: 10 }).keyFor(jwt, API_A), undefined);
  });

  it('refuses nonsensical sizes at construction', () => {
    for (const options of [{ maxEntries: 0 }, { maxTtlMs: -1 }, { maxTokenLength: 1.5 }, { maxEntries: Number.NaN }]) {
      assert.throws(() => new VerifiedTokenCache(options), RangeError);
    }
  });
});
