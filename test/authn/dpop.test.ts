/**
 * DPoP proof verification (src/authn/dpop.ts; RFC 9449 §4.3; SECURITY.md DP-01…DP-05, DP-07).
 *
 * Keys are generated per run (ES256, EdDSA, RS256, PS256); proofs are minted with jose `SignJWT`
 * and, for the shapes a JOSE library refuses to produce, byte by byte (`forge`). The RFC's own
 * examples (Figures 2 and 13) and the Wycheproof JWS/JWK vectors check us against other
 * implementations. Replay goes through the real embedded state store (SQLite in a private
 * temporary folder), opened twice to show that a second worker sees the first one's proofs.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, randomUUID, sign as nodeSign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, importJWK } from 'jose';
import {
  MAX_PROOF_LENGTH,
  accessTokenHash,
  createNonceSource,
  dpopChallenge,
  normalizeHtu,
  verifyDpopProof,
} from '../../src/authn/dpop.ts';
import type { DpopProofInput, DpopReason, DpopResult, DpopSettings } from '../../src/authn/dpop.ts';
import { SIGNING_ALGORITHMS } from '../../src/config/schema.ts';
import { openEmbeddedStore } from '../../src/state/embedded.ts';
import type { StateStore } from '../../src/state/store.ts';
import { b64url, forge, signingInput } from '../helpers/tokens.ts';
import type { TestKey } from '../helpers/tokens.ts';
import { WYCHEPROOF } from './wycheproof/vectors.ts';

const HTU = 'https://api.example.com/orders/42';
const NOW_MS = Date.now();
const NOW_S = Math.floor(NOW_MS / 1000);
const LIFETIME_MS = 60_000;

type Alg = 'ES256' | 'EdDSA' | 'RS256' | 'PS256';

interface ProofKey {
  readonly alg: Alg;
  readonly privateKey: KeyObject;
  /** The public JWK as a client would embed it (only the key members). */
  readonly jwk: Record<string, unknown>;
}

function newKey(alg: Alg): ProofKey {
  const pair =
    alg === 'ES256'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : alg === 'EdDSA'
        ? generateKeyPairSync('ed25519')
        : generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { alg, privateKey: pair.privateKey, jwk: pair.publicKey.export({ format: 'jwk' }) as Record<string, unknown> };
}

/** The same key as `forge` (test/helpers/tokens.ts) wants it. */
function asTestKey(key: ProofKey): TestKey {
  if (key.alg === 'PS256') throw new Error('forge signs RS256, ES256 and EdDSA only');
  return { kid: 'unused', alg: key.alg, privateKey: key.privateKey, publicJwk: key.jwk };
}

/** RFC 7638 §3, written out independently of jose: the required members, sorted, no whitespace. */
function rfc7638Thumbprint(jwk: Record<string, unknown>): string {
  const required =
    jwk['kty'] === 'EC'
      ? { crv: jwk['crv'], kty: jwk['kty'], x: jwk['x'], y: jwk['y'] }
      : jwk['kty'] === 'RSA'
        ? { e: jwk['e'], kty: jwk['kty'], n: jwk['n'] }
        : { crv: jwk['crv'], kty: jwk['kty'], x: jwk['x'] };
  return createHash('sha256').update(JSON.stringify(required)).digest('base64url');
}

function claims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { jti: randomUUID(), htm: 'GET', htu: HTU, iat: NOW_S, ...overrides };
}

/** A proof minted by jose; `undefined` in an override removes that member. */
function mint(key: ProofKey, claimOverrides: Record<string, unknown> = {}, headerOverrides: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(claims(claimOverrides)).setProtectedHeader({ alg: key.alg, typ: 'dpop+jwt', jwk: key.jwk, ...headerOverrides } as { alg: string }).sign(key.privateKey);
}

let dir: string;
let store: StateStore;
let keys: Record<Alg, ProofKey>;
const ALL_ALGORITHMS: ReadonlySet<string> = new Set(SIGNING_ALGORITHMS);
const SETTINGS: DpopSettings = { algorithms: new Set(['ES256', 'EdDSA', 'PS256', 'RS256']), proofLifetimeMs: LIFETIME_MS, nonce: null };

function verify(proof: string | readonly string[], overrides: Partial<DpopProofInput> = {}): Promise<DpopResult> {
  return verifyDpopProof({
    headerValues: typeof proof === 'string' ? [proof] : proof,
    method: 'GET',
    htu: HTU,
    accessToken: null,
    nowMs: NOW_MS,
    settings: SETTINGS,
    replay: (key, ttlMs) => store.setIfAbsent(key, ttlMs),
    ...overrides,
  });
}

function assertRefused(result: DpopResult, reason: DpopReason, detail?: RegExp, label = ''): void {
  assert.equal(result.ok, false, `${label} expected ${reason}, the proof was accepted`);
  if (result.ok) return;
  assert.equal(result.reason, reason, `${label} ${result.detail}`);
  if (detail !== undefined) assert.match(result.detail, detail);
}

function assertAccepted(result: DpopResult): string {
  assert.equal(result.ok, true, result.ok ? '' : `${result.reason}: ${result.detail}`);
  return result.ok ? result.jkt : '';
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'portcullis-dpop-'));
  store = await openEmbeddedStore({ path: join(dir, 'state.sqlite'), propagationTimeoutMs: 1000 });
  keys = { ES256: newKey('ES256'), EdDSA: newKey('EdDSA'), RS256: newKey('RS256'), PS256: newKey('PS256') };
});

after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('DP-01: exactly one DPoP header holding one compact JWS', () => {
  it('accepts one well-formed proof', async () => {
    assertAccepted(await verify(await mint(keys.ES256)));
  });

  it('refuses a request without a DPoP header (dpop.missing)', async () => {
    assertRefused(await verify([]), 'dpop.missing');
  });

  it('refuses two DPoP header fields, even when both are valid (dpop.multiple)', async () => {
    assertRefused(await verify([await mint(keys.ES256), await mint(keys.ES256)]), 'dpop.multiple');
  });

  it('refuses one field holding two proofs (dpop.malformed)', async () => {
    assertRefused(await verify(`${await mint(keys.ES256)}, ${await mint(keys.ES256)}`), 'dpop.malformed');
  });

  it('refuses values that are not one compact JWS (dpop.malformed)', async () => {
    const good = await mint(keys.ES256);
    const [h, p, s] = good.split('.') as [string, string, string];
    const cases: Record<string, string> = {
      empty: '',
      'not a JWT': 'not-a-jwt',
      'two segments': `${h}.${p}`,
      'five segments (JWE shape)': `${h}.${p}.${s}.${s}.${s}`,
      'JSON serialisation': JSON.stringify({ protected: h, payload: p, signature: s }),
      'padding in a segment': `${h}.${p}=.${s}`,
      'a character outside base64url': `${h}.${p}.${s.slice(0, -1)}+`,
      'non-canonical final character': `${h}.${p}.${s.slice(0, -1)}${nonCanonicalLast(s)}`,
      'surrounding whitespace': ` ${good}`,
      'empty signature': `${h}.${p}.`,
      'empty payload': `${h}..${s}`,
    };
    for (const [name, value] of Object.entries(cases)) assertRefused(await verify(value), 'dpop.malformed', undefined, name);
  });

  it('refuses a proof longer than the limit before decoding it (dpop.malformed)', async () => {
    const huge = await mint(keys.ES256, { padding: 'x'.repeat(MAX_PROOF_LENGTH) });
    assertRefused(await verify(huge), 'dpop.malformed', /characters, the limit is/);
  });

  it('refuses duplicate members in the header or payload, however spelled (dpop.malformed)', async () => {
    const key = asTestKey(keys.ES256);
    const jwk = JSON.stringify(keys.ES256.jwk);
    const duplicateHeader = forge(key, `{"typ":"dpop+jwt","alg":"ES256","jwk":${jwk},"\\u0061lg":"ES256"}`, claims());
    assertRefused(await verify(duplicateHeader), 'dpop.malformed', /duplicate member "alg"/);
    const duplicatePayload = forge(key, { typ: 'dpop+jwt', alg: 'ES256', jwk: keys.ES256.jwk }, `{"jti":"${randomUUID()}","htm":"GET","htm":"POST","htu":"${HTU}","iat":${NOW_S}}`);
    assertRefused(await verify(duplicatePayload), 'dpop.malformed', /duplicate member "htm"/);
  });

  it('refuses a payload that is not a JSON object, or not UTF-8 (dpop.malformed)', async () => {
    const key = asTestKey(keys.ES256);
    const header = { typ: 'dpop+jwt', alg: 'ES256', jwk: keys.ES256.jwk };
    assertRefused(await verify(forge(key, header, '[1,2]')), 'dpop.malformed', /not a JSON object/);
    const latin1 = `${b64url(JSON.stringify(header))}.${Buffer.from('{"jti":"\xe9"}', 'latin1').toString('base64url')}`;
    const signed = `${latin1}.${nodeSign('sha256', Buffer.from(latin1), { key: keys.ES256.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
    assertRefused(await verify(signed), 'dpop.malformed', /not valid UTF-8/);
  });
});

/**
 * The last character of a 64-byte signature's encoding with an unused bit set: the same bytes
 * for a lenient decoder. 86 characters carry 516 bits for 512, so the canonical last character
 * has its 4 low bits zero (RFC 4648 §3.5).
 */
function nonCanonicalLast(segment: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  assert.equal(segment.length, 86);
  return alphabet[alphabet.indexOf(segment.at(-1)!) + 1]!;
}

describe('DP-02: typ, alg, jwk and signature', () => {
  for (const alg of ['ES256', 'EdDSA', 'RS256', 'PS256'] as const) {
    it(`accepts a ${alg} proof and returns the RFC 7638 thumbprint of its key`, async () => {
      const jkt = assertAccepted(await verify(await mint(keys[alg])));
      assert.equal(jkt, rfc7638Thumbprint(keys[alg].jwk));
    });
  }

  it('the thumbprint ignores optional JWK members (kid, alg, use)', async () => {
    const decorated = { ...keys.ES256.jwk, kid: 'client-key-1', alg: 'ES256', use: 'sig' };
    assert.equal(assertAccepted(await verify(await mint(keys.ES256, {}, { jwk: decorated }))), rfc7638Thumbprint(keys.ES256.jwk));
  });

  it('refuses a proof whose typ is missing or another type (dpop.typ_invalid)', async () => {
    for (const typ of [undefined, 'JWT', 'at+jwt', 'dpop', 'dpop+jwt ', 'application/jwt', 'dpop+jwt\u212a']) {
      assertRefused(await verify(await mint(keys.ES256, {}, { typ })), 'dpop.typ_invalid');
    }
  });

  it('accepts typ written as a media type (case-insensitive, application/ prefix; RFC 7515 §4.1.9)', async () => {
    for (const typ of ['DPoP+JWT', 'application/dpop+jwt']) assertAccepted(await verify(await mint(keys.ES256, {}, { typ })));
  });

  it('refuses none, MAC and unlisted algorithms before looking at the key (dpop.alg_not_allowed)', async () => {
    const key = asTestKey(keys.ES256);
    for (const alg of ['none', 'NONE', 'HS256', 'ES256K', 'RS1']) {
      const proof = forge(key, { typ: 'dpop+jwt', alg, jwk: keys.ES256.jwk }, claims());
      assertRefused(await verify(proof), 'dpop.alg_not_allowed');
    }
    // alg:none with an empty signature, the classic shape.
    const unsigned = `${signingInput({ typ: 'dpop+jwt', alg: 'none', jwk: keys.ES256.jwk }, claims())}.`;
    assertRefused(await verify(unsigned), 'dpop.malformed');
  });

  it('refuses a real algorithm that the configuration does not list (dpop.alg_not_allowed)', async () => {
    const onlyEs256: DpopSettings = { ...SETTINGS, algorithms: new Set(['ES256']) };
    assertRefused(await verify(await mint(keys.EdDSA), { settings: onlyEs256 }), 'dpop.alg_not_allowed', /"EdDSA" is not allowed/);
    assertRefused(await verify(await mint(keys.RS256), { settings: onlyEs256 }), 'dpop.alg_not_allowed');
    assertAccepted(await verify(await mint(keys.ES256), { settings: onlyEs256 }));
    // A configured name the gateway does not implement never makes a MAC acceptable.
    const confused: DpopSettings = { ...SETTINGS, algorithms: new Set(['HS256', 'ES256']) };
    assertRefused(await verify(forge(asTestKey(keys.ES256), { typ: 'dpop+jwt', alg: 'HS256', jwk: keys.ES256.jwk }, claims()), { settings: confused }), 'dpop.alg_not_allowed');
  });

  it('refuses a proof without jwk, or with a private, symmetric or malformed one (dpop.jwk_invalid)', async () => {
    const privateJwk = keys.ES256.privateKey.export({ format: 'jwk' });
    const cases: Array<[string, unknown]> = [
      ['no jwk', undefined],
      ['private EC key (d)', privateJwk],
      ['private RSA key', keys.RS256.privateKey.export({ format: 'jwk' })],
      ['symmetric key', { kty: 'oct', k: b64url(Buffer.alloc(32, 7)) }],
      ['not an object', 'eyJrdHkiOiJFQyJ9'],
      ['an array', [keys.ES256.jwk]],
      ['unknown kty', { ...keys.ES256.jwk, kty: 'XYZ' }],
      ['X25519 (key agreement)', { kty: 'OKP', crv: 'X25519', x: keys.EdDSA.jwk['x'] }],
      ['use enc', { ...keys.ES256.jwk, use: 'enc' }],
      ['key_ops without verify', { ...keys.ES256.jwk, key_ops: ['encrypt'] }],
    ];
    for (const [name, jwk] of cases) {
      const result = await verify(await mint(keys.ES256, {}, { jwk }));
      assert.equal(result.ok, false, name);
      if (!result.ok) assert.equal(result.reason, 'dpop.jwk_invalid', `${name}: ${result.detail}`);
    }
  });

  it('refuses a jwk that does not fit alg (dpop.jwk_invalid), so the proof never picks the algorithm for a key', async () => {
    // An RSA key with an ES256 header, an EC key with an RS256 header, and an RSA key declared for RS256 used with PS256.
    assertRefused(await verify(forge(asTestKey(keys.ES256), { typ: 'dpop+jwt', alg: 'ES256', jwk: keys.RS256.jwk }, claims())), 'dpop.jwk_invalid');
    assertRefused(await verify(forge(asTestKey(keys.RS256), { typ: 'dpop+jwt', alg: 'RS256', jwk: keys.ES256.jwk }, claims())), 'dpop.jwk_invalid');
    assertRefused(await verify(await mint(keys.PS256, {}, { jwk: { ...keys.PS256.jwk, alg: 'RS256' } })), 'dpop.jwk_invalid', /does not fit|not one of/);
  });

  it('refuses a weak RSA key (1024 bits) even with a valid signature (dpop.jwk_invalid)', async () => {
    const weak = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const key: ProofKey = { alg: 'RS256', privateKey: weak.privateKey, jwk: weak.publicKey.export({ format: 'jwk' }) as Record<string, unknown> };
    // jose refuses to sign with it, so the proof is made by hand.
    const proof = forge(asTestKey(key), { typ: 'dpop+jwt', alg: 'RS256', jwk: key.jwk }, claims());
    assertRefused(await verify(proof), 'dpop.jwk_invalid', /1024 bits/);
  });

  it('refuses header parameters that name another key or change the signing input (dpop.malformed)', async () => {
    const key = asTestKey(keys.ES256);
    for (const [name, value] of [
      ['jku', 'https://attacker.example/jwks'],
      ['x5u', 'https://attacker.example/cert'],
      ['x5c', ['MIIB']],
      ['x5t#S256', 'abc'],
      ['crit', ['exp']],
      ['b64', false],
      ['enc', 'A256GCM'],
    ] as const) {
      const proof = forge(key, { typ: 'dpop+jwt', alg: 'ES256', jwk: keys.ES256.jwk, [name]: value }, claims());
      assertRefused(await verify(proof), 'dpop.malformed', new RegExp(`"${name}"`));
    }
  });

  it('refuses a signature made by another key than jwk (dpop.signature_invalid)', async () => {
    const other = newKey('ES256');
    const proof = forge(asTestKey(other), { typ: 'dpop+jwt', alg: 'ES256', jwk: keys.ES256.jwk }, claims());
    assertRefused(await verify(proof), 'dpop.signature_invalid');
  });

  it('refuses a proof whose payload was changed after signing (dpop.signature_invalid)', async () => {
    const [h, , s] = (await mint(keys.EdDSA)).split('.') as [string, string, string];
    const changed = `${h}.${b64url(JSON.stringify(claims({ htm: 'DELETE' })))}.${s}`;
    assertRefused(await verify(changed, { method: 'DELETE' }), 'dpop.signature_invalid');
  });

  it('refuses an ES256 signature in DER instead of R‖S (dpop.signature_invalid; RFC 7518 §3.4)', async () => {
    const input = signingInput({ typ: 'dpop+jwt', alg: 'ES256', jwk: keys.ES256.jwk }, claims());
    const der = nodeSign('sha256', Buffer.from(input), keys.ES256.privateKey);
    assertRefused(await verify(`${input}.${der.toString('base64url')}`), 'dpop.signature_invalid');
  });

  it('checks no claim of a proof whose signature fails (no claim oracle)', async () => {
    const other = newKey('ES256');
    const expired = forge(asTestKey(other), { typ: 'dpop+jwt', alg: 'ES256', jwk: keys.ES256.jwk }, claims({ iat: NOW_S - 3600, htm: 'POST' }));
    assertRefused(await verify(expired), 'dpop.signature_invalid');
  });
});

describe('DP-02 against Wycheproof', () => {
  interface JwsVector { readonly tcId: number; readonly comment: string; readonly jws: string; readonly result: string }
  interface JwsGroup { readonly comment: string; readonly public?: Record<string, unknown>; readonly private?: Record<string, unknown>; readonly tests: readonly JwsVector[] }
  const signatures = JSON.parse(readFileSync(join(WYCHEPROOF, 'json_web_signature_test.json'), 'utf8')) as { testGroups: JwsGroup[] };
  const special = signatures.testGroups.find((group) => group.comment === 'SpecialCaseEs256')!;

  it('the SpecialCaseEs256 key signs a proof that verifies (tcId 378\'s key)', async () => {
    const privateKey = await importJWK(special.private!, 'ES256');
    const jwk = { ...special.public! };
    const proof = await new SignJWT(claims()).setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk }).sign(privateKey);
    assert.equal(assertAccepted(await verify(proof)), rfc7638Thumbprint(jwk));
  });

  // r or s of 0, 1, n−1, n, too long, trailing zeros: each signature bytes transplanted onto a
  // proof carrying the vector's public key. r = s = 0 ("psychic signatures", CVE-2022-21449)
  // verifies any message in a broken implementation, so the message being ours is the point.
  for (const vector of special.tests.filter((test) => test.result === 'invalid')) {
    it(`tcId ${vector.tcId} ${vector.comment}: refused`, async () => {
      const signature = vector.jws.split('.')[2] ?? '';
      const proof = `${signingInput({ typ: 'dpop+jwt', alg: 'ES256', jwk: special.public }, claims())}.${signature}`;
      const result = await verify(proof);
      assert.equal(result.ok, false);
      if (!result.ok) assert.ok(result.reason === 'dpop.signature_invalid' || result.reason === 'dpop.malformed', `${result.reason}: ${result.detail}`);
    });
  }

  interface JwkGroup { readonly comment: string; readonly public?: { keys: Record<string, unknown>[] }; readonly private?: { keys: Record<string, unknown>[] }; readonly tests: readonly { tcId: number; comment: string }[] }
  const jwkFile = JSON.parse(readFileSync(join(WYCHEPROOF, 'json_web_key_test.json'), 'utf8')) as { testGroups: JwkGroup[] };
  /** Keys that are sound on their own (the vector is about the set): they pass the jwk checks and reach the signature. */
  const SOUND_KEYS = new Set(['5:0', '1:1']);

  for (const group of jwkFile.testGroups) {
    for (const vector of group.tests) {
      const set = (group.public ?? group.private!).keys;
      set.forEach((jwk, index) => {
        const sound = SOUND_KEYS.has(`${vector.tcId}:${index}`);
        it(`json_web_key tcId ${vector.tcId} (${group.comment}) key ${index} as a proof's jwk: ${sound ? 'reaches the signature check' : 'dpop.jwk_invalid'}`, async () => {
          // The header alg is one we allow and the key's type suggests, so the jwk check decides.
          const alg = typeof jwk['alg'] === 'string' && ALL_ALGORITHMS.has(jwk['alg']) ? jwk['alg'] : jwk['kty'] === 'RSA' ? 'RS256' : 'ES256';
          const signer = asTestKey(alg === 'RS256' ? keys.RS256 : keys.ES256);
          const proof = forge(signer, { typ: 'dpop+jwt', alg, jwk }, claims());
          assertRefused(await verify(proof, { settings: { ...SETTINGS, algorithms: ALL_ALGORITHMS } }), sound ? 'dpop.signature_invalid' : 'dpop.jwk_invalid');
        });
      });
    }
  }
});

describe('RFC 9449 examples (Figures 2 and 13)', () => {
  const JWK_HEADER =
    'eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19';
  const FIGURE_2 = `${JWK_HEADER}.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg`;
  const FIGURE_13 = `${JWK_HEADER}.eyJqdGkiOiJlMWozVl9iS2ljOC1MQUVCIiwiaHRtIjoiR0VUIiwiaHR1IjoiaHR0cHM6Ly9yZXNvdXJjZS5leGFtcGxlLm9yZy9wcm90ZWN0ZWRyZXNvdXJjZSIsImlhdCI6MTU2MjI2MjYxOCwiYXRoIjoiZlVIeU8ycjJaM0RaNTNFc05yV0JiMHhXWG9hTnk1OUlpS0NBcWtzbVFFbyJ9.2oW9RP35yRqzhrtNP86L-Ey71EOptxRimPPToA1plemAgR6pxHF8y6-yqyVnmcw6Fy1dqd-jfxSYoMxhAJpLjA`;
  const ACCESS_TOKEN = 'Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU';
  /** RFC 9449 §6.1 Figure 8: the `jkt` of the example key. */
  const JKT = '0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I';

  it('ath of the example access token is the RFC\'s (§4.2, Figure 14)', () => {
    assert.equal(accessTokenHash(ACCESS_TOKEN), 'fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo');
  });

  it('Figure 13 verifies at its time with its access token, and its jkt is the RFC\'s', async () => {
    const result = await verify(FIGURE_13, { htu: 'https://resource.example.org/protectedresource', nowMs: 1562262618_000, accessToken: ACCESS_TOKEN });
    assert.equal(assertAccepted(result), JKT);
  });

  it('Figure 2 (token endpoint, no access token) verifies at its time', async () => {
    const result = await verify(FIGURE_2, { method: 'POST', htu: 'https://server.example.com/token', nowMs: 1562262616_000 });
    assert.equal(assertAccepted(result), JKT);
  });

  it('Figure 13 is refused today (iat), with another access token (ath), and for another method (htm)', async () => {
    const at = { htu: 'https://resource.example.org/protectedresource', accessToken: ACCESS_TOKEN };
    assertRefused(await verify(FIGURE_13, { ...at }), 'dpop.iat_invalid');
    assertRefused(await verify(FIGURE_13, { ...at, nowMs: 1562262618_000, accessToken: `${ACCESS_TOKEN}x` }), 'dpop.ath_mismatch');
    assertRefused(await verify(FIGURE_13, { ...at, nowMs: 1562262618_000, method: 'POST' }), 'dpop.htm_mismatch');
  });
});

describe('DP-03: htm and htu', () => {
  it('refuses another method, and methods are case-sensitive (dpop.htm_mismatch)', async () => {
    assertRefused(await verify(await mint(keys.ES256, { htm: 'POST' })), 'dpop.htm_mismatch');
    assertRefused(await verify(await mint(keys.ES256, { htm: 'get' })), 'dpop.htm_mismatch');
    assertAccepted(await verify(await mint(keys.ES256, { htm: 'POST' }), { method: 'POST' }));
  });

  it('refuses a proof for another URI (dpop.htu_mismatch)', async () => {
    for (const htu of [
      'https://api.example.com/orders/43',
      'https://api.example.com/orders/42/',
      'https://api.example.com/orders',
      'http://api.example.com/orders/42',
      'https://api.example.com:8443/orders/42',
      'https://evil.example/orders/42',
      'https://api.example.com.evil.example/orders/42',
      'https://api.example.com/orders%2F42',
      'https://api.example.com/ORDERS/42',
      // The upstream URI is not what the client used (DP-03).
      'http://127.0.0.1:8080/orders/42',
    ]) {
      assertRefused(await verify(await mint(keys.ES256, { htu })), 'dpop.htu_mismatch', undefined, htu);
    }
  });

  it('refuses an htu that is no normalisable http(s) URI (dpop.htu_mismatch)', async () => {
    for (const htu of ['https://user@api.example.com/orders/42', '/orders/42', 'ftp://api.example.com/orders/42', 'https://api.example.com/orders/%zz']) {
      assertRefused(await verify(await mint(keys.ES256, { htu })), 'dpop.htu_mismatch', /cannot be normalised|can be normalised/);
    }
  });

  it('accepts the same URI written differently (RFC 3986 §6.2.2, §6.2.3), ignoring query and fragment', async () => {
    for (const htu of [
      'HTTPS://API.EXAMPLE.COM/orders/42',
      'https://api.example.com:443/orders/42',
      'https://api.example.com:/orders/42',
      'https://api.example.com/orders/42?page=2',
      'https://api.example.com/orders/42#top',
      'https://api.example.com/%6Frders/%34%32',
      'https://api.example.com/orders/./42',
      'https://api.example.com/x/../orders/42',
    ]) {
      const result = await verify(await mint(keys.ES256, { htu }));
      assert.ok(result.ok, `${htu}: ${result.ok ? '' : result.detail}`);
    }
  });

  it('normalises the request URI the caller passes the same way', async () => {
    assertAccepted(await verify(await mint(keys.ES256), { htu: 'HTTPS://api.example.com:443/orders/42?expand=items' }));
    assertRefused(await verify(await mint(keys.ES256), { htu: 'not a uri' }), 'dpop.htu_mismatch', /request URI cannot be normalised/);
  });

  it('refuses a proof without htm, htu, jti or iat (dpop.malformed; RFC 9449 §4.2)', async () => {
    for (const claim of ['htm', 'htu', 'jti', 'iat']) {
      assertRefused(await verify(await mint(keys.ES256, { [claim]: undefined })), 'dpop.malformed', new RegExp(`no "${claim}"`));
    }
    assertRefused(await verify(await mint(keys.ES256, { htu: ['https://api.example.com/orders/42'] })), 'dpop.malformed');
    assertRefused(await verify(await mint(keys.ES256, { htm: 1 })), 'dpop.malformed');
  });
});

describe('normalizeHtu', () => {
  const EQUIVALENT: Array<[string, string]> = [
    ['HTTP://Example.COM/a', 'http://example.com/a'],
    ['http://example.com:80/a', 'http://example.com/a'],
    ['https://example.com:443/a', 'https://example.com/a'],
    ['http://example.com:443/a', 'http://example.com:443/a'],
    ['https://example.com:0443/a', 'https://example.com/a'],
    ['https://example.com', 'https://example.com/'],
    ['https://example.com?q', 'https://example.com/'],
    ['https://example.com/a?b#c', 'https://example.com/a'],
    ['https://example.com/a#c?d', 'https://example.com/a'],
    ['https://example.com/%7euser/%41%2d%2E', 'https://example.com/~user/A-.'],
    ['https://example.com/a%2fb%3a', 'https://example.com/a%2Fb%3A'],
    ['https://example.com/a/./b/../c', 'https://example.com/a/c'],
    ['https://example.com/a/%2E%2E/c', 'https://example.com/c'],
    ['https://example.com/../../a', 'https://example.com/a'],
    ['https://example.com/a/b/..', 'https://example.com/a/'],
    ['https://example.com/a//b', 'https://example.com/a//b'],
    ['https://[2001:DB8::1]:8443/x', 'https://[2001:db8::1]:8443/x'],
    ['https://192.0.2.1/x', 'https://192.0.2.1/x'],
    ["https://example.com/a;b=c/@:!$&'()*+,=", "https://example.com/a;b=c/@:!$&'()*+,="],
  ];
  for (const [input, expected] of EQUIVALENT) {
    it(`${input} → ${expected}`, () => {
      assert.equal(normalizeHtu(input), expected);
      assert.equal(normalizeHtu(expected), expected, 'normalisation is idempotent');
    });
  }

  const REFUSED = [
    '',
    '/relative/path',
    'api.example.com/x',
    'ftp://example.com/x',
    'https:example.com/x',
    'https:///x',
    'https://user:pass@example.com/x',
    'https://example.com:65536/x',
    'https://example.com:0/x',
    'https://example.com:http/x',
    'https://exa%6Dple.com/x',
    'https://exämple.com/x',
    'https://example.com/ä',
    'https://example.com/a b',
    'https://example.com/a\\b',
    'https://example.com\\@evil.example/x',
    'https://example.com/%',
    'https://example.com/%4',
    'https://example.com/%GG',
    'https://[v1.fe]/x',
    'https://[fe80::1%25eth0]/x',
    'https://[::1/x',
    'https://example.com/\u0000',
    `https://example.com/${'a'.repeat(5000)}`,
  ];
  for (const input of REFUSED) {
    it(`refuses ${JSON.stringify(input.length > 60 ? `${input.slice(0, 40)}…` : input)}`, () => {
      assert.equal(normalizeHtu(input), null);
    });
  }
});

describe('DP-04: iat window and jti single use', () => {
  it('accepts iat within the window either way, refuses it beyond (dpop.iat_invalid)', async () => {
    const window = LIFETIME_MS / 1000;
    assertAccepted(await verify(await mint(keys.ES256, { iat: NOW_S - window + 1 })));
    assertAccepted(await verify(await mint(keys.ES256, { iat: NOW_S + window - 1 })));
    assertAccepted(await verify(await mint(keys.ES256, { iat: NOW_S + 0.5 })));
    assertRefused(await verify(await mint(keys.ES256, { iat: NOW_S - window - 2 })), 'dpop.iat_invalid', /in the past/);
    assertRefused(await verify(await mint(keys.ES256, { iat: NOW_S + window + 2 })), 'dpop.iat_invalid', /in the future/);
  });

  it('refuses an iat that is not a number (dpop.iat_invalid)', async () => {
    for (const iat of [String(NOW_S), null, true, { at: NOW_S }]) {
      assertRefused(await verify(await mint(keys.ES256, { iat })), 'dpop.iat_invalid');
    }
  });

  it('refuses a jti that is empty, not a string, too long or holds control characters (dpop.malformed)', async () => {
    for (const jti of ['', 42, 'x'.repeat(257), 'a\nb']) {
      assertRefused(await verify(await mint(keys.ES256, { jti })), 'dpop.malformed', /"jti"/);
    }
  });

  it('refuses a proof used twice (dpop.replayed), also when a second worker sees it', async () => {
    const proof = await mint(keys.ES256);
    assertAccepted(await verify(proof));
    assertRefused(await verify(proof), 'dpop.replayed');
    const otherWorker = await openEmbeddedStore({ path: join(dir, 'state.sqlite'), propagationTimeoutMs: 1000 });
    try {
      assertRefused(await verify(proof, { replay: (key, ttlMs) => otherWorker.setIfAbsent(key, ttlMs) }), 'dpop.replayed');
    } finally {
      await otherWorker.close();
    }
  });

  it('a new proof with the same jti is refused for the same key, accepted for another key', async () => {
    const jti = randomUUID();
    assertAccepted(await verify(await mint(keys.ES256, { jti })));
    assertRefused(await verify(await mint(keys.ES256, { jti, iat: NOW_S - 1 })), 'dpop.replayed');
    assertAccepted(await verify(await mint(keys.EdDSA, { jti })));
  });

  it('keys the replay cache dpop:<jkt>:<jti> for at least twice the proof lifetime', async () => {
    const jti = randomUUID();
    const recorded: Array<[string, number]> = [];
    const jkt = assertAccepted(
      await verify(await mint(keys.PS256, { jti }), {
        replay: (key, ttlMs) => {
          recorded.push([key, ttlMs]);
          return store.setIfAbsent(key, ttlMs);
        },
      }),
    );
    assert.equal(recorded.length, 1);
    assert.equal(recorded[0]![0], `dpop:${jkt}:${jti}`);
    assert.ok(recorded[0]![1] >= 2 * LIFETIME_MS, `ttl ${recorded[0]![1]}`);
    // The entry is really in the store under that key.
    assert.equal(await store.setIfAbsent(`dpop:${jkt}:${jti}`, 1000), false);
  });

  it('a refused proof does not use up its jti', async () => {
    const jti = randomUUID();
    assertRefused(await verify(await mint(keys.ES256, { jti, htm: 'POST' })), 'dpop.htm_mismatch');
    assertAccepted(await verify(await mint(keys.ES256, { jti })));
  });

  it('fails closed when the replay cache is unavailable (rejects; the caller answers 503)', async () => {
    const closed = await openEmbeddedStore({ path: join(dir, 'closed.sqlite'), propagationTimeoutMs: 1000 });
    await closed.close();
    await assert.rejects(verify(await mint(keys.ES256), { replay: (key, ttlMs) => closed.setIfAbsent(key, ttlMs) }));
  });
});

describe('DP-05: ath binds the proof to the access token', () => {
  const token = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJwYXJ0bmVyIn0.c2lnbmF0dXJl';

  it('accepts ath = base64url(SHA-256(token))', async () => {
    const ath = createHash('sha256').update(token).digest('base64url');
    assertAccepted(await verify(await mint(keys.ES256, { ath }), { accessToken: token }));
  });

  it('refuses a proof without ath, or with the hash of another token (dpop.ath_mismatch)', async () => {
    assertRefused(await verify(await mint(keys.ES256), { accessToken: token }), 'dpop.ath_mismatch', /no "ath"/);
    assertRefused(await verify(await mint(keys.ES256, { ath: accessTokenHash(`${token}x`) }), { accessToken: token }), 'dpop.ath_mismatch');
    assertRefused(await verify(await mint(keys.ES256, { ath: `${accessTokenHash(token)}=` }), { accessToken: token }), 'dpop.ath_mismatch');
    assertRefused(await verify(await mint(keys.ES256, { ath: createHash('sha256').update(token).digest('hex') }), { accessToken: token }), 'dpop.ath_mismatch');
    assertRefused(await verify(await mint(keys.ES256, { ath: 1 }), { accessToken: token }), 'dpop.ath_mismatch');
  });

  it('refuses a non-ASCII access token (no ASCII hash exists)', async () => {
    const odd = 'Łtoken';
    assertRefused(await verify(await mint(keys.ES256, { ath: accessTokenHash(odd) }), { accessToken: odd }), 'dpop.ath_mismatch');
  });
});

describe('DP-07: challenges and server nonces', () => {
  it('builds the DPoP challenge with the error and the algorithms (RFC 9449 §7.1)', () => {
    assert.equal(dpopChallenge('invalid_dpop_proof', ['ES256', 'EdDSA']), 'DPoP error="invalid_dpop_proof", algs="ES256 EdDSA"');
    assert.equal(dpopChallenge('use_dpop_nonce', new Set(['ES256'])), 'DPoP error="use_dpop_nonce", algs="ES256"');
    assert.equal(dpopChallenge('invalid_token', ['PS256'], 'portcullis'), 'DPoP realm="portcullis", error="invalid_token", algs="PS256"');
    assert.equal(dpopChallenge(null, ['ES256', 'RS256'], 'portcullis'), 'DPoP realm="portcullis", algs="ES256 RS256"');
    assert.equal(dpopChallenge(null, []), 'DPoP');
    assert.equal(dpopChallenge(null, ['ES256', 'bad"alg', 'x y']), 'DPoP algs="ES256"');
    assert.equal(dpopChallenge(null, [], 'a"b\\c'), 'DPoP realm="a\\"b\\\\c"');
    assert.throws(() => dpopChallenge(null, [], 'a\r\nb'), TypeError);
  });

  it('asks for a nonce, accepts the proof that carries it, refuses foreign and expired ones', async () => {
    let clock = NOW_MS;
    const nonce = createNonceSource({ lifetimeMs: 300_000, now: () => clock });
    const settings: DpopSettings = { ...SETTINGS, nonce };

    const first = await verify(await mint(keys.ES256), { settings });
    assertRefused(first, 'dpop.nonce_required');
    const issued = first.ok ? '' : first.useNonce;
    assert.ok(issued !== undefined && /^[A-Za-z0-9_-]+$/.test(issued), 'a DPoP-Nonce value is offered');

    assertAccepted(await verify(await mint(keys.ES256, { nonce: issued }), { settings }));

    // A nonce this gateway never issued, one from another secret, or a non-string.
    const foreign = createNonceSource({ lifetimeMs: 300_000, now: () => clock }).current();
    for (const bad of ['not-a-nonce', foreign, `${issued}A`, issued!.slice(0, -1) + (issued!.endsWith('A') ? 'B' : 'A'), 42]) {
      const result = await verify(await mint(keys.ES256, { nonce: bad }), { settings });
      assertRefused(result, 'dpop.nonce_invalid');
      assert.equal(result.ok ? undefined : result.useNonce, nonce.current(), 'a fresh nonce is offered with the refusal');
    }

    // Old: past its lifetime (DP-07 "an old nonce → 401"); a new one is offered.
    clock += 300_001;
    const old = await verify(await mint(keys.ES256, { nonce: issued }), { settings });
    assertRefused(old, 'dpop.nonce_invalid');
    const renewed = old.ok ? undefined : old.useNonce;
    assert.notEqual(renewed, issued);
    assertAccepted(await verify(await mint(keys.ES256, { nonce: renewed }), { settings }));
  });

  it('a nonce source rotates at half its lifetime, and every nonce handed out stays valid at least that long', () => {
    let clock = 1_000_000;
    const nonce = createNonceSource({ lifetimeMs: 10_000, now: () => clock });
    const first = nonce.current();
    clock += 4_999;
    assert.equal(nonce.current(), first, 'clients can reuse a nonce for a while');
    clock += 1;
    const second = nonce.current();
    assert.notEqual(second, first);
    assert.ok(nonce.accepts(first), 'the previous nonce is still accepted');
    clock += 5_000;
    assert.ok(nonce.accepts(first), 'accepted until the end of its lifetime');
    clock += 1;
    assert.equal(nonce.accepts(first), false);
    assert.ok(nonce.accepts(second));
  });

  it('instances that share the secret accept each other\'s nonces; others do not', () => {
    const secret = Buffer.alloc(32, 9);
    const a = createNonceSource({ lifetimeMs: 60_000, secret });
    const b = createNonceSource({ lifetimeMs: 60_000, secret });
    const c = createNonceSource({ lifetimeMs: 60_000, secret: Buffer.alloc(32, 8) });
    assert.ok(b.accepts(a.current()));
    assert.equal(c.accepts(a.current()), false);
    assert.throws(() => createNonceSource({ lifetimeMs: 60_000, secret: Buffer.alloc(16) }), TypeError);
    assert.throws(() => createNonceSource({ lifetimeMs: 0 }), TypeError);
  });

  it('checks the nonce only for a proof that is otherwise sound (a forged proof gets no nonce)', async () => {
    const settings: DpopSettings = { ...SETTINGS, nonce: createNonceSource({ lifetimeMs: 60_000 }) };
    const forged = forge(asTestKey(newKey('ES256')), { typ: 'dpop+jwt', alg: 'ES256', jwk: keys.ES256.jwk }, claims());
    const result = await verify(forged, { settings });
    assertRefused(result, 'dpop.signature_invalid');
    assert.equal(result.ok ? undefined : result.useNonce, undefined);
  });
});
