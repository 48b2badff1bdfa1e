/**
 * The JWT access-token verifier, end to end through `createJwtVerifier` with real keys generated
 * per run (RS256, PS256, ES256, EdDSA) and a tiny in-memory key set over them. Each SECURITY.md
 * requirement that this layer implements has a test named after its id.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync, sign as nodeSign } from 'node:crypto';
import { SignJWT, exportSPKI, generateKeyPair } from 'jose';
import type { CryptoKey } from 'jose';
import type { CompiledIssuer } from '../../../src/config/snapshot.ts';
import type { SigningAlgorithm } from '../../../src/config/schema.ts';
import { problemFor } from '../../../src/errors.ts';
import type { KeySet, VerificationKey } from '../../../src/authn/jwks/key-set.ts';
import { createJwtVerifier, verifyJwsSignature } from '../../../src/authn/jwt/verify.ts';
import type { JwtVerifier, VerifyOutcome } from '../../../src/authn/jwt/verify.ts';
import { parseJwt } from '../../../src/authn/jwt/parse.ts';

const ISS_A = 'https://issuer-a.example';
const ISS_B = 'https://issuer-b.example';
const AUDIENCE = 'https://api.example/orders';
const OTHER_AUDIENCE = 'https://api.example/payments';
const START_MS = Date.UTC(2030, 0, 1, 12, 0, 0);

type Alg = 'RS256' | 'PS256' | 'ES256' | 'EdDSA';

interface Signer {
  readonly alg: Alg;
  readonly kid: string | undefined;
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
}

/** WebCrypto parameters of each JWS algorithm (RFC 7518 §3.3–3.5, RFC 8037 §3.1). */
const SIGNING_PARAMS: Record<Alg, Parameters<typeof crypto.subtle.sign>[0]> = {
  RS256: { name: 'RSASSA-PKCS1-v1_5' },
  PS256: { name: 'RSA-PSS', saltLength: 32 },
  ES256: { name: 'ECDSA', hash: 'SHA-256' },
  EdDSA: { name: 'Ed25519' },
};

async function newSigner(alg: Alg, kid: string | undefined): Promise<Signer> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { alg, kid, privateKey, publicKey };
}

function verificationKey(signer: Signer, alg: string = signer.alg): VerificationKey {
  return { kid: signer.kid, alg, key: signer.publicKey };
}

const b64url = (data: string | Uint8Array): string => Buffer.from(data).toString('base64url');
const encodePart = (part: object | string | Uint8Array): string => b64url(part instanceof Uint8Array || typeof part === 'string' ? part : JSON.stringify(part));

/** A compact JWS with exactly these header and payload bytes, signed by `signer`'s private key. */
async function forge(signer: Signer, header: object | string | Uint8Array, payload: object | string | Uint8Array): Promise<string> {
  const input = `${encodePart(header)}.${encodePart(payload)}`;
  const signature = await crypto.subtle.sign(SIGNING_PARAMS[signer.alg], signer.privateKey, Buffer.from(input));
  return `${input}.${b64url(new Uint8Array(signature))}`;
}

const nowSeconds = (clock: Clock): number => Math.floor(clock.ms / 1000);

function claims(clock: Clock, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const now = nowSeconds(clock);
  return {
    iss: ISS_A,
    sub: 'partner-acme',
    client_id: 'acme-client',
    aud: AUDIENCE,
    iat: now,
    exp: now + 300,
    jti: 'jti-0001',
    scope: 'orders:read orders:write',
    ...overrides,
  };
}

function header(signer: Signer, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { alg: signer.alg, typ: 'at+jwt', ...(signer.kid === undefined ? {} : { kid: signer.kid }), ...overrides };
}

function without(object: Record<string, unknown>, name: string): Record<string, unknown> {
  const copy = { ...object };
  delete copy[name];
  return copy;
}

/** A key set over real keys, recording how the verifier uses it. */
class InMemoryKeySet implements KeySet {
  readonly issuerId: string;
  generation = 1;
  loaded = true;
  keys: VerificationKey[];
  findCalls: Array<readonly [string | undefined, string]> = [];
  refreshes = 0;
  /** Keys that appear at the next refresh (a rotation published by the issuer). */
  nextKeys: VerificationKey[] | undefined;
  failRefresh = false;

  constructor(issuerId: string, keys: VerificationKey[]) {
    this.issuerId = issuerId;
    this.keys = keys;
  }

  ready(): boolean {
    return this.loaded;
  }

  find(kid: string | undefined, alg: string): VerificationKey | undefined {
    this.findCalls.push([kid, alg]);
    return this.keys.find((key) => key.kid === kid && key.alg === alg);
  }

  async refreshForUnknownKid(): Promise<void> {
    this.refreshes++;
    if (this.failRefresh) throw new Error('issuer unreachable');
    if (this.nextKeys !== undefined) {
      this.keys = this.nextKeys;
      this.nextKeys = undefined;
      this.generation++;
    }
  }
}

interface Clock {
  ms: number;
}

function compiledIssuer(id: string, issuer: string, algorithms: SigningAlgorithm[], overrides: Partial<CompiledIssuer> = {}): CompiledIssuer {
  return {
    id,
    issuer,
    source: { kind: 'file', path: `${id}.jwks.json`, jwks: { keys: [] } },
    ca: null,
    algorithms: new Set(algorithms),
    typ: 'at+jwt',
    leewayMs: 30_000,
    maxLifetimeMs: 3_600_000,
    partnerClaim: 'client_id',
    refreshIntervalMs: 600_000,
    unknownKidCooldownMs: 30_000,
    fetchTimeoutMs: 5_000,
    ...overrides,
  };
}

interface World {
  readonly clock: Clock;
  readonly verifier: JwtVerifier;
  readonly issuerA: CompiledIssuer;
  readonly issuerB: CompiledIssuer;
  readonly keySetA: InMemoryKeySet;
  readonly keySetB: InMemoryKeySet;
}

const signers = {} as Record<'rs' | 'ps' | 'es' | 'ed' | 'esNoKid' | 'bEs' | 'bShadow' | 'rotated' | 'unpublished', Signer>;

before(async () => {
  const [rs, ps, es, ed, esNoKid, bEs, bShadow, rotated, unpublished] = await Promise.all([
    newSigner('RS256', 'a-rs'),
    newSigner('PS256', 'a-ps'),
    newSigner('ES256', 'a-es'),
    newSigner('EdDSA', 'a-ed'),
    newSigner('ES256', undefined),
    newSigner('ES256', 'b-es'),
    // issuer B publishes a key under the very kid issuer A uses for its ES256 key
    newSigner('ES256', 'a-es'),
    newSigner('ES256', 'a-es-2'),
    newSigner('ES256', 'a-es-unpublished'),
  ]);
  Object.assign(signers, { rs, ps, es, ed, esNoKid, bEs, bShadow, rotated, unpublished });
});

function world(issuerOverrides: Partial<CompiledIssuer> = {}): World {
  const clock: Clock = { ms: START_MS };
  const issuerA = compiledIssuer('issuer-a', ISS_A, ['RS256', 'PS256', 'ES256', 'EdDSA'], issuerOverrides);
  const issuerB = compiledIssuer('issuer-b', ISS_B, ['ES256']);
  const keySetA = new InMemoryKeySet(issuerA.id, [signers.rs, signers.ps, signers.es, signers.ed, signers.esNoKid].map((signer) => verificationKey(signer)));
  const keySetB = new InMemoryKeySet(issuerB.id, [verificationKey(signers.bEs), verificationKey(signers.bShadow)]);
  const keySets = new Map<string, KeySet>([
    [issuerA.id, keySetA],
    [issuerB.id, keySetB],
  ]);
  const verifier = createJwtVerifier({
    issuersByIss: new Map([
      [issuerA.issuer, issuerA],
      [issuerB.issuer, issuerB],
    ]),
    keySets,
    now: () => clock.ms,
  });
  return { clock, verifier, issuerA, issuerB, keySetA, keySetB };
}

async function refused(outcome: VerifyOutcome | Promise<VerifyOutcome>, reason: string): Promise<string> {
  const result = await outcome;
  assert.equal(result.ok, false, `expected ${reason}, the token was accepted`);
  if (result.ok) throw new Error('unreachable');
  assert.equal(result.reason, reason, result.detail);
  return result.detail;
}

async function accepted(outcome: VerifyOutcome | Promise<VerifyOutcome>) {
  const result = await outcome;
  if (!result.ok) assert.fail(`expected acceptance, got ${result.reason}: ${result.detail}`);
  return result;
}

describe('accepting valid access tokens', () => {
  for (const name of ['rs', 'ps', 'es', 'ed'] as const) {
    it(`verifies a ${name === 'rs' ? 'RS256' : name === 'ps' ? 'PS256' : name === 'es' ? 'ES256' : 'EdDSA'} access token and returns its claims`, async () => {
      const w = world();
      const signer = signers[name];
      const token = await forge(signer, header(signer), claims(w.clock));
      const result = await accepted(w.verifier.verify(token, AUDIENCE));
      assert.equal(result.issuer, w.issuerA);
      assert.equal(result.clientId, 'acme-client');
      assert.equal(result.jti, 'jti-0001');
      assert.equal(result.exp, nowSeconds(w.clock) + 300);
      assert.equal(result.cached, false);
      assert.deepEqual([...result.scopes], ['orders:read', 'orders:write']);
      assert.equal(result.claims['sub'], 'partner-acme');
      assert.equal(Object.getPrototypeOf(result.claims), null);
      assert.ok(Object.isFrozen(result.claims));
    });
  }

  it('verifies a token minted by jose SignJWT (interoperability)', async () => {
    const w = world();
    const token = await new SignJWT({ client_id: 'acme-client', scope: 'orders:read', jti: 'jose-1' })
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'a-es' })
      .setIssuer(ISS_A)
      .setSubject('partner-acme')
      .setAudience([OTHER_AUDIENCE, AUDIENCE])
      .setIssuedAt(nowSeconds(w.clock))
      .setExpirationTime(nowSeconds(w.clock) + 600)
      .sign(signers.es.privateKey);
    const result = await accepted(w.verifier.verify(token, AUDIENCE));
    assert.equal(result.jti, 'jose-1');
  });

  it('matches a key without kid only for a token without kid', async () => {
    const w = world();
    const token = await forge(signers.esNoKid, header(signers.esNoKid), claims(w.clock));
    await accepted(w.verifier.verify(token, AUDIENCE));
    // The same key is not found under some kid, and a kid-less token signed by a kid'd key is refused.
    const kidless = await forge(signers.es, { alg: 'ES256', typ: 'at+jwt' }, claims(w.clock));
    await refused(w.verifier.verify(kidless, AUDIENCE), 'token.signature_invalid');
  });

  it('returns the sub claim as clientId when the issuer binds partners by sub', async () => {
    const w = world({ partnerClaim: 'sub' });
    const token = await forge(signers.es, header(signers.es), claims(w.clock));
    assert.equal((await accepted(w.verifier.verify(token, AUDIENCE))).clientId, 'partner-acme');
  });

  it('answers refusals decided before any crypto synchronously', () => {
    const w = world();
    const outcome = w.verifier.verify('not-a-token', AUDIENCE);
    assert.ok(!(outcome instanceof Promise));
    assert.equal(outcome.ok, false);
  });
});

describe('SECURITY.md §2.1 (RFC 8725) and §2.2 (RFC 9068)', () => {
  it('JWT-01 / AT-05: refuses alg "none" (and "NONE") before looking up any key', async () => {
    const w = world();
    const input = `${encodePart({ alg: 'none', typ: 'at+jwt', kid: 'a-es' })}.${encodePart(claims(w.clock))}`;
    await refused(w.verifier.verify(`${input}.${b64url('x')}`, AUDIENCE), 'token.alg_not_allowed');
    const upper = `${encodePart({ alg: 'NONE', typ: 'at+jwt' })}.${encodePart(claims(w.clock))}`;
    await refused(w.verifier.verify(`${upper}.${b64url('x')}`, AUDIENCE), 'token.alg_not_allowed');
    assert.equal(w.keySetA.findCalls.length, 0);
  });

  it('JWT-01: refuses HS256 signed with the issuer\'s public key as the HMAC secret', async () => {
    const w = world();
    const pem = await exportSPKI(signers.rs.publicKey);
    const input = `${encodePart({ alg: 'HS256', typ: 'at+jwt', kid: 'a-rs' })}.${encodePart(claims(w.clock))}`;
    const mac = createHmac('sha256', pem).update(input).digest('base64url');
    await refused(w.verifier.verify(`${input}.${mac}`, AUDIENCE), 'token.alg_not_allowed');
    assert.equal(w.keySetA.findCalls.length, 0);
  });

  it('JWT-01: refuses an algorithm the issuer does not sign with', async () => {
    const w = world();
    // issuer B signs ES256 only; an RS256 token claiming to be from B is refused on alg alone
    const token = await forge(signers.rs, header(signers.rs), claims(w.clock, { iss: ISS_B }));
    await refused(w.verifier.verify(token, AUDIENCE), 'token.alg_not_allowed');
  });

  it('JWT-01: a kid bound to ES256 used with RS256 is an algorithm confusion, refused without refetching keys', async () => {
    const w = world();
    // signed with the RSA key, but naming the kid of the ES256 key
    const token = await forge(signers.rs, header(signers.rs, { kid: 'a-es' }), claims(w.clock));
    const detail = await refused(w.verifier.verify(token, AUDIENCE), 'token.alg_not_allowed');
    assert.match(detail, /"a-es"/);
    assert.equal(w.keySetA.refreshes, 0);
  });

  it('JWT-01: the signature primitive refuses a key whose alg differs from the token\'s', async () => {
    const w = world();
    const token = await forge(signers.ps, header(signers.ps), claims(w.clock));
    const parsed = parseJwt(token);
    assert.ok(parsed.ok);
    const check = await verifyJwsSignature(parsed, verificationKey(signers.ps, 'RS256'));
    assert.deepEqual(check.ok ? 'accepted' : check.reason, 'token.alg_not_allowed');
    assert.equal((await verifyJwsSignature(parsed, verificationKey(signers.ps))).ok, true);
  });

  it('JWT-02: an unknown kid triggers one refresh, then token.kid_unknown naming the kid', async () => {
    const w = world();
    const token = await forge(signers.unpublished, header(signers.unpublished), claims(w.clock));
    const detail = await refused(w.verifier.verify(token, AUDIENCE), 'token.kid_unknown');
    assert.match(detail, /"a-es-unpublished"/);
    assert.equal(w.keySetA.refreshes, 1);
  });

  it('JWT-02: an unknown kid that the refresh brings in (rotation) verifies', async () => {
    const w = world();
    w.keySetA.nextKeys = [...w.keySetA.keys, verificationKey(signers.rotated)];
    const token = await forge(signers.rotated, header(signers.rotated), claims(w.clock));
    await accepted(w.verifier.verify(token, AUDIENCE));
    assert.equal(w.keySetA.refreshes, 1);
  });

  it('JWT-02: a failed refresh still ends in token.kid_unknown (fail closed)', async () => {
    const w = world();
    w.keySetA.failRefresh = true;
    const token = await forge(signers.unpublished, header(signers.unpublished), claims(w.clock));
    const detail = await refused(w.verifier.verify(token, AUDIENCE), 'token.kid_unknown');
    assert.match(detail, /refreshing its keys failed/);
  });

  it('JWT-02: kid is an opaque lookup key: path, URL and SQL shapes are only looked up, control characters and >256 chars are refused', async () => {
    const w = world();
    for (const kid of ['../../../../etc/passwd', 'https://attacker.example/jwks.json', "' OR 1=1 --"]) {
      const token = await forge(signers.es, header(signers.es, { kid }), claims(w.clock));
      await refused(w.verifier.verify(token, AUDIENCE), 'token.kid_unknown');
      assert.deepEqual(w.keySetA.findCalls.at(-1), [kid, 'ES256']);
    }
    for (const kid of ['a\nb', 'é', '', 'k'.repeat(257), 42]) {
      const token = await forge(signers.es, header(signers.es, { kid }), claims(w.clock));
      await refused(w.verifier.verify(token, AUDIENCE), 'token.malformed');
    }
    const longest = await forge(signers.es, header(signers.es, { kid: 'k'.repeat(256) }), claims(w.clock));
    await refused(w.verifier.verify(longest, AUDIENCE), 'token.kid_unknown');
  });

  for (const parameter of ['jku', 'x5u', 'jwk', 'x5c'] as const) {
    it(`JWT-03: refuses "${parameter}" in the header and never looks up a key or fetches anything`, async () => {
      const w = world();
      const values = {
        jku: 'https://attacker.example/jwks.json',
        x5u: 'https://attacker.example/cert.pem',
        jwk: await crypto.subtle.exportKey('jwk', signers.unpublished.publicKey),
        x5c: ['MIIB'],
      };
      const originalFetch = globalThis.fetch;
      let fetched = 0;
      globalThis.fetch = (() => {
        fetched++;
        throw new Error('no outbound request may be made');
      }) as typeof fetch;
      try {
        const token = await forge(signers.unpublished, header(signers.unpublished, { [parameter]: values[parameter] }), claims(w.clock));
        await refused(w.verifier.verify(token, AUDIENCE), 'token.header_param_forbidden');
      } finally {
        globalThis.fetch = originalFetch;
      }
      assert.equal(fetched, 0);
      assert.equal(w.keySetA.findCalls.length, 0);
      assert.equal(w.keySetA.refreshes, 0);
    });
  }

  it('JWT-04: refuses a five-segment JWE before any decryption', async () => {
    const w = world();
    const jwe = [encodePart({ alg: 'RSA-OAEP-256', enc: 'A256GCM' }), 'AAAA', 'AAAA', 'AAAA', 'AAAA'].join('.');
    await refused(w.verifier.verify(jwe, AUDIENCE), 'token.jwe_unsupported');
  });

  it('JWT-04: refuses "enc" in a three-segment header as a JWE', async () => {
    const w = world();
    const token = await forge(signers.es, header(signers.es, { enc: 'A256GCM' }), claims(w.clock));
    await refused(w.verifier.verify(token, AUDIENCE), 'token.jwe_unsupported');
  });

  for (const cty of ['JWT', 'jwt', 'application/jwt']) {
    it(`JWT-04: refuses a nested JWT (cty "${cty}")`, async () => {
      const w = world();
      const token = await forge(signers.es, header(signers.es, { cty }), claims(w.clock));
      await refused(w.verifier.verify(token, AUDIENCE), 'token.nested_unsupported');
    });
  }

  it('JWT-05 (defence in depth): an RSA key under 2048 bits that reached a key set is refused by the signature check', async () => {
    const w = world();
    const weak = generateKeyPairSync('rsa', { modulusLength: 1024 });
    w.keySetA.keys.push({ kid: 'weak-rsa', alg: 'RS256', key: weak.publicKey });
    const input = `${encodePart({ alg: 'RS256', typ: 'at+jwt', kid: 'weak-rsa' })}.${encodePart(claims(w.clock))}`;
    const token = `${input}.${b64url(nodeSign('sha256', Buffer.from(input), weak.privateKey))}`;
    await refused(w.verifier.verify(token, AUDIENCE), 'token.signature_invalid');
  });

  it('JWT-06: refuses invalid UTF-8 in the header or the payload', async () => {
    const w = world();
    const badHeader = Buffer.concat([Buffer.from('{"alg":"ES256","typ":"at+jwt","kid":"a-es","x":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]);
    await refused(w.verifier.verify(await forge(signers.es, new Uint8Array(badHeader), claims(w.clock)), AUDIENCE), 'token.encoding');
    const overlong = Buffer.concat([Buffer.from(JSON.stringify(claims(w.clock)).slice(0, -1) + ',"x":"'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}')]);
    await refused(w.verifier.verify(await forge(signers.es, header(signers.es), new Uint8Array(overlong)), AUDIENCE), 'token.encoding');
    const surrogate = Buffer.concat([Buffer.from(JSON.stringify(claims(w.clock)).slice(0, -1) + ',"x":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}')]);
    await refused(w.verifier.verify(await forge(signers.es, header(signers.es), new Uint8Array(surrogate)), AUDIENCE), 'token.encoding');
  });

  it('JWT-06: refuses a byte order mark before the header or the payload', async () => {
    const w = world();
    const bom = Buffer.from([0xef, 0xbb, 0xbf]);
    const withBom = (json: object) => new Uint8Array(Buffer.concat([bom, Buffer.from(JSON.stringify(json))]));
    await refused(w.verifier.verify(await forge(signers.es, withBom(header(signers.es)), claims(w.clock)), AUDIENCE), 'token.encoding');
    await refused(w.verifier.verify(await forge(signers.es, header(signers.es), withBom(claims(w.clock))), AUDIENCE), 'token.encoding');
  });

  it('JWT-07 / AT-03: compares iss exactly (no case folding, no trailing slash, no normalisation)', async () => {
    const w = world();
    for (const iss of [`${ISS_A}/`, ISS_A.toUpperCase(), 'https://issuer-a.example:443', ` ${ISS_A}`, 'https://issuer-\u0430.example']) {
      const token = await forge(signers.es, header(signers.es), claims(w.clock, { iss }));
      await refused(w.verifier.verify(token, AUDIENCE), 'token.issuer_unknown');
    }
    await refused(w.verifier.verify(await forge(signers.es, header(signers.es), without(claims(w.clock), 'iss')), AUDIENCE), 'token.issuer_unknown');
    await refused(w.verifier.verify(await forge(signers.es, header(signers.es), claims(w.clock, { iss: 7 })), AUDIENCE), 'token.issuer_unknown');
  });

  it('JWT-07 / AT-03: a token of issuer A signed with a key of issuer B is refused', async () => {
    const w = world();
    const token = await forge(signers.bEs, header(signers.bEs), claims(w.clock, { iss: ISS_A }));
    await refused(w.verifier.verify(token, AUDIENCE), 'token.kid_unknown');
    assert.equal(w.keySetB.findCalls.length, 0, 'issuer B\'s keys are never consulted for an issuer A token');
  });

  it('JWT-07: alg/kid confusion across issuers: B\'s key under A\'s kid never verifies an A token', async () => {
    const w = world();
    // issuer B publishes "a-es" too (another key). A token claiming iss=A with kid "a-es" signed
    // by B's key is checked against A's "a-es" only.
    const token = await forge(signers.bShadow, header(signers.bShadow), claims(w.clock, { iss: ISS_A }));
    await refused(w.verifier.verify(token, AUDIENCE), 'token.signature_invalid');
    // and the same key does verify as issuer B, proving the refusal came from key selection
    const asB = await forge(signers.bShadow, header(signers.bShadow), claims(w.clock, { iss: ISS_B }));
    await accepted(w.verifier.verify(asB, AUDIENCE));
  });

  it('JWT-08 / AT-04: aud must be a string or a non-empty array of strings that contains the audience exactly', async () => {
    const w = world();
    const verify = async (aud: unknown) => w.verifier.verify(await forge(signers.es, header(signers.es), claims(w.clock, { aud })), AUDIENCE);
    await accepted(verify(AUDIENCE));
    await accepted(verify([OTHER_AUDIENCE, AUDIENCE]));
    for (const aud of [[], [42], [AUDIENCE, null], 42, null, true, { 0: AUDIENCE }]) await refused(verify(aud), 'token.claim_invalid');
    for (const aud of [OTHER_AUDIENCE, `${AUDIENCE}/`, AUDIENCE.toUpperCase(), [OTHER_AUDIENCE], '']) await refused(verify(aud), 'token.aud_mismatch');
    await refused(w.verifier.verify(await forge(signers.es, header(signers.es), without(claims(w.clock), 'aud')), AUDIENCE), 'token.claim_missing');
  });

  for (const typ of ['at+jwt', 'AT+JWT', 'application/at+jwt', 'Application/AT+JWT']) {
    it(`JWT-09 / AT-01: accepts typ "${typ}"`, async () => {
      const w = world();
      await accepted(w.verifier.verify(await forge(signers.es, header(signers.es, { typ }), claims(w.clock)), AUDIENCE));
    });
  }

  it('JWT-09 / AT-01: refuses typ JWT, a missing typ, and typ values that only look alike', async () => {
    const w = world();
    for (const typ of ['JWT', 'jwt', 'at+jwt ', 'application/application/at+jwt', 'x-at+jwt', 'at+jw\u212a', 42, null]) {
      const token = await forge(signers.es, header(signers.es, { typ }), claims(w.clock));
      await refused(w.verifier.verify(token, AUDIENCE), 'token.typ_invalid');
    }
    await refused(w.verifier.verify(await forge(signers.es, without(header(signers.es), 'typ'), claims(w.clock)), AUDIENCE), 'token.typ_invalid');
  });

  it('JWT-10: a DPoP proof, an ID token or a gateway assertion cannot pass as an access token', async () => {
    const w = world();
    for (const typ of ['dpop+jwt', 'id_token+jwt', 'portcullis-assertion+jwt', 'client-authentication+jwt']) {
      const token = await forge(signers.es, header(signers.es, { typ }), claims(w.clock));
      await refused(w.verifier.verify(token, AUDIENCE), 'token.typ_invalid');
    }
  });

  it('JWT-11: a token minted for one API is refused by another', async () => {
    const w = world();
    const token = await forge(signers.es, header(signers.es), claims(w.clock, { aud: OTHER_AUDIENCE }));
    await accepted(w.verifier.verify(token, OTHER_AUDIENCE));
    await refused(w.verifier.verify(token, AUDIENCE), 'token.aud_mismatch');
  });

  it('JWT-13: refuses duplicate header members, also when one is written with escapes', async () => {
    const w = world();
    const duplicates = [
      '{"alg":"ES256","typ":"at+jwt","kid":"a-es","alg":"none"}',
      '{"alg":"ES256","typ":"at+jwt","kid":"a-es","\\u0061lg":"none"}',
      '{"alg":"ES256","typ":"at+jwt","kid":"a-es","k\\u0069d":"a-rs"}',
    ];
    for (const raw of duplicates) await refused(w.verifier.verify(await forge(signers.es, raw, claims(w.clock)), AUDIENCE), 'token.duplicate_member');
  });

  it('JWT-13: refuses duplicate claims, also when one is written with escapes', async () => {
    const w = world();
    const base = JSON.stringify(claims(w.clock)).slice(0, -1);
    for (const extra of [`,"aud":"${OTHER_AUDIENCE}"`, `,"\\u0061ud":"${OTHER_AUDIENCE}"`, ',"sc\\u006fpe":"admin"', ',"exp":9999999999']) {
      await refused(w.verifier.verify(await forge(signers.es, header(signers.es), `${base}${extra}}`), AUDIENCE), 'token.duplicate_member');
    }
  });

  it('JWT-14: refuses any crit, and b64', async () => {
    const w = world();
    for (const crit of [['exp'], [], 'b64', ['b64'], ['http://example.com/ext']]) {
      await refused(w.verifier.verify(await forge(signers.es, header(signers.es, { crit }), claims(w.clock)), AUDIENCE), 'token.crit_unsupported');
    }
    for (const b64 of [false, true]) {
      await refused(w.verifier.verify(await forge(signers.es, header(signers.es, { b64 }), claims(w.clock)), AUDIENCE), 'token.header_param_forbidden');
    }
  });

  it('JWT-15: refuses base64 characters outside base64url, padding and whitespace in any segment', async () => {
    const w = world();
    const token = await forge(signers.es, header(signers.es), claims(w.clock));
    const [h, p, s] = token.split('.') as [string, string, string];
    const variants = [
      `${h}=.${p}.${s}`,
      `${h}.${p}=.${s}`,
      `${h}.${p}.${s}==`,
      `${h.slice(0, 4)}+${h.slice(5)}.${p}.${s}`,
      `${h}.${p.slice(0, 4)}/${p.slice(5)}.${s}`,
      `${h}.${p}.${s.slice(0, 4)}+${s.slice(5)}`,
      `${h} .${p}.${s}`,
      `${h}.${p}.\t${s}`,
      `${h}.${p}.${s.slice(0, 10)}$${s.slice(10)}`,
    ];
    for (const variant of variants) await refused(w.verifier.verify(variant, AUDIENCE), 'token.encoding');
    await accepted(w.verifier.verify(token, AUDIENCE));
  });

  it('JWT-15: refuses non-canonical trailing bits and impossible lengths', async () => {
    const w = world();
    // a header whose base64url length is 2 mod 4, so its last character carries 4 unused bits
    let hdr = header(signers.es);
    for (let pad = ''; encodePart(hdr).length % 4 !== 2; pad += 'x') hdr = header(signers.es, { pad });
    const token = await forge(signers.es, hdr, claims(w.clock));
    const [h, p, s] = token.split('.') as [string, string, string];
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = alphabet.indexOf(h.at(-1)!);
    assert.equal(last & 0x0f, 0, 'the canonical encoding has zero unused bits');
    const sibling = `${h.slice(0, -1)}${alphabet[last | 0x01]}`;
    assert.equal(Buffer.from(sibling, 'base64url').toString(), Buffer.from(h, 'base64url').toString(), 'Node decodes both to the same bytes');
    await refused(w.verifier.verify(`${sibling}.${p}.${s}`, AUDIENCE), 'token.encoding');
    // a length of 1 mod 4 cannot encode whole bytes (RFC 4648 §5)
    const toOneModFour = (segment: string): string => segment + 'A'.repeat((5 - (segment.length % 4)) % 4 || 4);
    for (const variant of [`${toOneModFour(h)}.${p}.${s}`, `${h}.${toOneModFour(p)}.${s}`, `${h}.${p}.${toOneModFour(s)}`]) {
      await refused(w.verifier.verify(variant, AUDIENCE), 'token.encoding');
    }
    await accepted(w.verifier.verify(token, AUDIENCE));
  });

  it('JWT-15: exactly three segments, with a non-empty header and signature', async () => {
    const w = world();
    const token = await forge(signers.es, header(signers.es), claims(w.clock));
    const [h, p, s] = token.split('.') as [string, string, string];
    for (const variant of [`${h}.${p}`, `${h}.${p}.${s}.`, `${h}.${p}.${s}.${s}`, `${h}.${p}.`, `.${p}.${s}`, `${h}..${s}`, '', '..', token.replaceAll('.', '')]) {
      await refused(w.verifier.verify(variant, AUDIENCE), 'token.malformed');
    }
  });

  it('JWT-15: an ES256 signature must be raw R||S of 64 bytes (DER is refused)', async () => {
    const w = world();
    const input = `${encodePart(header(signers.es))}.${encodePart(claims(w.clock))}`;
    const raw = new Uint8Array(await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, signers.es.privateKey, Buffer.from(input)));
    await accepted(w.verifier.verify(`${input}.${b64url(raw)}`, AUDIENCE));
    const der = derEcdsaSignature(raw);
    const detail = await refused(w.verifier.verify(`${input}.${b64url(der)}`, AUDIENCE), 'token.signature_invalid');
    assert.match(detail, /64/);
    await refused(w.verifier.verify(`${input}.${b64url(Buffer.concat([raw, Buffer.alloc(1)]))}`, AUDIENCE), 'token.signature_invalid');
  });

  it('JWT-15: an RS256 or PS256 signature must be exactly the modulus length', async () => {
    const w = world();
    for (const signer of [signers.rs, signers.ps]) {
      const token = await forge(signer, header(signer), claims(w.clock));
      const [h, p, s] = token.split('.') as [string, string, string];
      const signature = Buffer.from(s, 'base64url');
      assert.equal(signature.length, 256);
      for (const altered of [Buffer.concat([Buffer.alloc(1), signature]), Buffer.concat([signature, Buffer.alloc(1)]), signature.subarray(1)]) {
        await refused(w.verifier.verify(`${h}.${p}.${b64url(altered)}`, AUDIENCE), 'token.signature_invalid');
      }
    }
  });

  it('JWT-16: the signature is checked before the claims: a forged expired token is a bad signature, not an expired one', async () => {
    const w = world();
    const expiredClaims = claims(w.clock, { iat: nowSeconds(w.clock) - 7200, exp: nowSeconds(w.clock) - 3600, aud: 'https://elsewhere.example' });
    const genuine = await forge(signers.es, header(signers.es), expiredClaims);
    await refused(w.verifier.verify(genuine, AUDIENCE), 'token.aud_mismatch');
    // the same claims under a signature that does not verify
    const forged = await forge(signers.unpublished, header(signers.es), expiredClaims);
    await refused(w.verifier.verify(forged, AUDIENCE), 'token.signature_invalid');
  });

  it('JWT-16: flipping a bit in the header, payload or signature breaks the signature', async () => {
    const w = world();
    const token = await forge(signers.ed, header(signers.ed), claims(w.clock));
    const [h, p, s] = token.split('.') as [string, string, string];
    const flip = (segment: string): string => {
      const bytes = Buffer.from(segment, 'base64url');
      bytes[bytes.length - 1]! ^= 0x01;
      return bytes.toString('base64url');
    };
    await refused(w.verifier.verify(`${h}.${p}.${flip(s)}`, AUDIENCE), 'token.signature_invalid');
    const otherClaims = encodePart(claims(w.clock, { scope: 'orders:admin' }));
    await refused(w.verifier.verify(`${h}.${otherClaims}.${s}`, AUDIENCE), 'token.signature_invalid');
    const otherHeader = encodePart(header(signers.ed, { typ: 'application/at+jwt' }));
    await refused(w.verifier.verify(`${otherHeader}.${p}.${s}`, AUDIENCE), 'token.signature_invalid');
  });

  it('JWT-17: refuses a token over 8 KiB before parsing it', async () => {
    const w = world();
    const token = await forge(signers.es, header(signers.es), claims(w.clock, { filler: 'x'.repeat(8192) }));
    await refused(w.verifier.verify(token, AUDIENCE), 'token.too_large');
    await refused(w.verifier.verify('$'.repeat(8193), AUDIENCE), 'token.too_large');
  });

  it('JWT-17: bounds JSON depth (8) and members (64) in header and payload', async () => {
    const w = world();
    const nest = (depth: number): unknown => (depth === 0 ? 1 : { n: nest(depth - 1) });
    await accepted(w.verifier.verify(await forge(signers.es, header(signers.es), claims(w.clock, { deep: nest(7) })), AUDIENCE));
    const deep = await forge(signers.es, header(signers.es), claims(w.clock, { deep: nest(8) }));
    assert.match(await refused(w.verifier.verify(deep, AUDIENCE), 'token.malformed'), /deeper than 8/);
    const wide = Object.fromEntries(Array.from({ length: 57 }, (_, i) => [`c${i}`, i]));
    const tooWide = await forge(signers.es, header(signers.es), claims(w.clock, wide)); // 8 + 57 = 65 members
    assert.match(await refused(w.verifier.verify(tooWide, AUDIENCE), 'token.malformed'), /more than 64/);
    const wideHeader = Object.fromEntries(Array.from({ length: 62 }, (_, i) => [`h${i}`, i]));
    await refused(w.verifier.verify(await forge(signers.es, header(signers.es, wideHeader), claims(w.clock)), AUDIENCE), 'token.malformed');
  });

  it('JWT-18: time claims must be finite JSON numbers within 2^53', async () => {
    const w = world();
    const now = nowSeconds(w.clock);
    for (const name of ['exp', 'iat', 'nbf']) {
      for (const value of [String(now + 60), true, null, [now], { t: now }, 2 ** 53 + 2, -(2 ** 53) - 2, 1e300]) {
        const token = await forge(signers.es, header(signers.es), claims(w.clock, { [name]: value }));
        const detail = await refused(w.verifier.verify(token, AUDIENCE), 'token.claim_invalid');
        assert.match(detail, new RegExp(`"${name}"`));
      }
    }
    await accepted(w.verifier.verify(await forge(signers.es, header(signers.es), claims(w.clock, { exp: now + 60.5, iat: now - 0.25, nbf: now - 1.5 })), AUDIENCE));
  });

  it('JWT-18 / AT-06: exp, with the issuer\'s leeway (30 s)', async () => {
    const w = world();
    const now = nowSeconds(w.clock);
    const token = (exp: number) => forge(signers.es, header(signers.es), claims(w.clock, { iat: now - 600, exp }));
    await accepted(w.verifier.verify(await token(now - 29), AUDIENCE));
    await refused(w.verifier.verify(await token(now - 30), AUDIENCE), 'token.expired');
    await refused(w.verifier.verify(await token(now - 3600), AUDIENCE), 'token.expired');
  });

  it('JWT-18: nbf and iat in the future, with leeway', async () => {
    const w = world();
    const now = nowSeconds(w.clock);
    await accepted(w.verifier.verify(await forge(signers.es, header(signers.es), claims(w.clock, { nbf: now + 30 })), AUDIENCE));
    await refused(w.verifier.verify(await forge(signers.es, header(signers.es), claims(w.clock, { nbf: now + 31 })), AUDIENCE), 'token.not_yet_valid');
    await accepted(w.verifier.verify(await forge(signers.es, header(signers.es), claims(w.clock, { iat: now + 30, exp: now + 330 })), AUDIENCE));
    await refused(w.verifier.verify(await forge(signers.es, header(signers.es), claims(w.clock, { iat: now + 31, exp: now + 331 })), AUDIENCE), 'token.iat_future');
  });

  it('JWT-18: the injected clock decides (the same token expires as time passes)', async () => {
    const w = world();
    const token = await forge(signers.es, header(signers.es), claims(w.clock));
    await accepted(w.verifier.verify(token, AUDIENCE));
    w.clock.ms += 330_000; // exp (300 s) + leeway (30 s)
    await refused(w.verifier.verify(token, AUDIENCE), 'token.expired');
  });

  it('JWT-19: caps the lifetime exp - iat at the issuer\'s maximum', async () => {
    const w = world({ maxLifetimeMs: 600_000 });
    const now = nowSeconds(w.clock);
    await accepted(w.verifier.verify(await forge(signers.es, header(signers.es), claims(w.clock, { iat: now, exp: now + 600 })), AUDIENCE));
    await refused(w.verifier.verify(await forge(signers.es, header(signers.es), claims(w.clock, { iat: now, exp: now + 601 })), AUDIENCE), 'token.lifetime_too_long');
    await refused(w.verifier.verify(await forge(signers.es, header(signers.es), claims(w.clock, { iat: now, exp: now })), AUDIENCE), 'token.claim_invalid');
  });

  it('JWT-20: __proto__, constructor and toString never satisfy a required claim', async () => {
    const w = world();
    const base = claims(w.clock);
    const withoutClientId = JSON.stringify(without(base, 'client_id'));
    const inherited = `${withoutClientId.slice(0, -1)},"__proto__":{"client_id":"acme-client"}}`;
    const detail = await refused(w.verifier.verify(await forge(signers.es, header(signers.es), inherited), AUDIENCE), 'token.claim_missing');
    assert.match(detail, /"client_id"/);
    const withoutSub = JSON.stringify(without(base, 'sub'));
    for (const name of ['constructor', 'toString', 'hasOwnProperty']) {
      const raw = `${withoutSub.slice(0, -1)},"${name}":"partner-acme"}`;
      await refused(w.verifier.verify(await forge(signers.es, header(signers.es), raw), AUDIENCE), 'token.claim_missing');
    }
  });

  it('JWT-20: a verified token\'s __proto__ claim is plain data, not a prototype', async () => {
    const w = world();
    const raw = `${JSON.stringify(claims(w.clock)).slice(0, -1)},"__proto__":{"admin":true,"scope":"orders:admin"}}`;
    const result = await accepted(w.verifier.verify(await forge(signers.es, header(signers.es), raw), AUDIENCE));
    assert.equal(Object.getPrototypeOf(result.claims), null);
    assert.equal((result.claims as Record<string, unknown>)['admin'], undefined);
    assert.ok(Object.hasOwn(result.claims, '__proto__'));
    assert.deepEqual([...result.scopes], ['orders:read', 'orders:write']);
    assert.equal(({} as Record<string, unknown>)['admin'], undefined, 'Object.prototype was not polluted');
  });

  it('AT-02: each of iss, exp, aud, sub, client_id, iat, jti is required', async () => {
    const w = world();
    for (const name of ['exp', 'aud', 'sub', 'client_id', 'iat', 'jti']) {
      const detail = await refused(w.verifier.verify(await forge(signers.es, header(signers.es), without(claims(w.clock), name)), AUDIENCE), 'token.claim_missing');
      assert.match(detail, new RegExp(`"${name}"`));
    }
    // without iss, no issuer (and so no key) can be chosen
    await refused(w.verifier.verify(await forge(signers.es, header(signers.es), without(claims(w.clock), 'iss')), AUDIENCE), 'token.issuer_unknown');
    for (const name of ['sub', 'client_id', 'jti']) {
      for (const value of ['', 42, null, ['x']]) {
        await refused(w.verifier.verify(await forge(signers.es, header(signers.es), claims(w.clock, { [name]: value })), AUDIENCE), 'token.claim_invalid');
      }
    }
  });

  it('AT-07: scope is a space-delimited string of exact tokens; an array or a malformed string is refused', async () => {
    const w = world();
    const verify = async (scope: unknown) => w.verifier.verify(await forge(signers.es, header(signers.es), claims(w.clock, { scope })), AUDIENCE);
    const result = await accepted(verify('orders:read orders:read:all'));
    assert.ok(result.scopes.has('orders:read'));
    assert.ok(result.scopes.has('orders:read:all'));
    assert.ok(!result.scopes.has('orders'));
    assert.ok(!result.scopes.has('orders:read orders:read:all'));
    assert.equal((await accepted(verify(''))).scopes.size, 0);
    assert.equal((await accepted(w.verifier.verify(await forge(signers.es, header(signers.es), without(claims(w.clock), 'scope')), AUDIENCE))).scopes.size, 0);
    for (const scope of [['orders:read'], 'orders:read  orders:write', ' orders:read', 'orders:read ', 'orders:read\torders:write', 'a"b', 'a\\b', 'ordérs', 42, null]) {
      await refused(verify(scope), 'token.claim_invalid');
    }
  });

  it('AT-08: every token refusal maps to 401 invalid_token; an unavailable key set to 503', async () => {
    const w = world();
    const reasons = new Set<string>();
    const collect = async (outcome: VerifyOutcome | Promise<VerifyOutcome>) => {
      const result = await outcome;
      assert.equal(result.ok, false);
      if (!result.ok) reasons.add(result.reason);
    };
    await collect(w.verifier.verify('x.y', AUDIENCE));
    await collect(w.verifier.verify(await forge(signers.es, header(signers.es), claims(w.clock, { aud: OTHER_AUDIENCE })), AUDIENCE));
    await collect(w.verifier.verify(await forge(signers.unpublished, header(signers.es), claims(w.clock)), AUDIENCE));
    await collect(w.verifier.verify(await forge(signers.es, header(signers.es), claims(w.clock, { exp: 1 })), AUDIENCE));
    assert.equal(reasons.size, 4);
    for (const reason of reasons) {
      const problem = problemFor(reason as Parameters<typeof problemFor>[0]);
      assert.equal(problem.code, 'invalid_token');
      assert.equal(problem.status, 401);
    }
    w.keySetA.loaded = false;
    const unavailable = await w.verifier.verify(await forge(signers.es, header(signers.es), claims(w.clock)), AUDIENCE);
    assert.ok(!unavailable.ok);
    assert.equal(unavailable.reason, 'dependency.jwks_unavailable');
    assert.equal(problemFor(unavailable.reason).status, 503);
  });
});

describe('fail closed on the key set', () => {
  it('refuses with dependency.jwks_unavailable when the issuer\'s key set is not ready or missing', async () => {
    const w = world();
    const token = await forge(signers.es, header(signers.es), claims(w.clock));
    w.keySetA.loaded = false;
    await refused(w.verifier.verify(token, AUDIENCE), 'dependency.jwks_unavailable');
    const orphan = createJwtVerifier({ issuersByIss: new Map([[ISS_A, w.issuerA]]), keySets: new Map<string, KeySet>(), now: () => w.clock.ms });
    await refused(orphan.verify(token, AUDIENCE), 'dependency.jwks_unavailable');
  });

  it('refuses when the key set becomes unavailable during an unknown-kid refresh', async () => {
    const w = world();
    const token = await forge(signers.unpublished, header(signers.unpublished), claims(w.clock));
    w.keySetA.refreshForUnknownKid = async () => {
      w.keySetA.loaded = false;
    };
    await refused(w.verifier.verify(token, AUDIENCE), 'dependency.jwks_unavailable');
  });
});

/** DER `SEQUENCE { INTEGER r, INTEGER s }` of a raw P-256 R||S signature (what X.509 uses, JWS does not). */
function derEcdsaSignature(raw: Uint8Array): Uint8Array {
  const integer = (bytes: Uint8Array): Buffer => {
    let start = 0;
    while (start < bytes.length - 1 && bytes[start] === 0) start++;
    let body = Buffer.from(bytes.subarray(start));
    if (body[0]! & 0x80) body = Buffer.concat([Buffer.alloc(1), body]);
    return Buffer.concat([Buffer.from([0x02, body.length]), body]);
  };
  const content = Buffer.concat([integer(raw.subarray(0, 32)), integer(raw.subarray(32))]);
  return new Uint8Array(Buffer.concat([Buffer.from([0x30, content.length]), content]));
}
