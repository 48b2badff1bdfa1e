import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { MAX_KEYS_PER_SET, validateJwks } from '../../../src/authn/jwks/validate.ts';
import type { JwksValidation } from '../../../src/authn/jwks/validate.ts';

type Jwk = Record<string, unknown>;

const ALL = new Set(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA']);

// Keys are generated per run; RSA generation is the slow part, so the 2048-bit ones are shared.
const rsa2048 = publicJwk(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey);
const rsa2048b = publicJwk(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey);
const p256 = (): Jwk => publicJwk(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey);
const p384 = (): Jwk => publicJwk(generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey);
const p521 = (): Jwk => publicJwk(generateKeyPairSync('ec', { namedCurve: 'P-521' }).publicKey);
const ed25519 = (): Jwk => publicJwk(generateKeyPairSync('ed25519').publicKey);

function publicJwk(key: ReturnType<typeof createPublicKey>): Jwk {
  return key.export({ format: 'jwk' }) as Jwk;
}

function accepted(result: JwksValidation): Extract<JwksValidation, { ok: true }> {
  assert.ok(result.ok, `expected the set to be accepted, got: ${result.ok ? '' : result.problems.join(' | ')}`);
  return result;
}

/** Asserts the set is refused with exactly one problem matching `pattern`. */
function refusedWith(result: JwksValidation, pattern: RegExp): void {
  assert.equal(result.ok, false, 'expected the set to be refused');
  if (result.ok) return;
  assert.equal(result.problems.length, 1, `expected one problem, got: ${result.problems.join(' | ')}`);
  assert.match(result.problems[0]!, pattern);
}

/** Replaces one base64url character in the middle of `value` (keeps it canonical, changes the bytes). */
function flipCharacter(value: string): string {
  const at = Math.floor(value.length / 2);
  return value.slice(0, at) + (value[at] === 'A' ? 'B' : 'A') + value.slice(at + 1);
}

test('accepts RSA, EC P-256/P-384/P-521 and Ed25519 keys with their algorithms', () => {
  const result = accepted(
    validateJwks(
      {
        keys: [
          { ...rsa2048, kid: 'rsa', alg: 'RS256', use: 'sig' },
          { ...rsa2048b, kid: 'pss', alg: 'PS384', key_ops: ['verify'] },
          { ...p256(), kid: 'p256', alg: 'ES256' },
          { ...p384(), kid: 'p384', alg: 'ES384' },
          { ...p521(), kid: 'p521', alg: 'ES512' },
          { ...ed25519(), kid: 'ed', alg: 'EdDSA' },
        ],
        // RFC 7517 §5: members of the set we do not know are ignored.
        extra: true,
      },
      ALL,
    ),
  );
  assert.deepEqual(
    result.keys.map((key) => [key.index, key.kid, key.algorithms]),
    [
      [0, 'rsa', ['RS256']],
      [1, 'pss', ['PS384']],
      [2, 'p256', ['ES256']],
      [3, 'p384', ['ES384']],
      [4, 'p521', ['ES512']],
      [5, 'ed', ['EdDSA']],
    ],
  );
  for (const key of result.keys) {
    assert.equal(key.publicKey.type, 'public');
    assert.match(key.fingerprint, /^[0-9a-f]{64}$/);
  }
});

test('a key without alg may verify exactly the issuer algorithms that fit its type and curve', () => {
  const result = accepted(
    validateJwks({ keys: [{ ...rsa2048, kid: 'rsa' }, { ...p256(), kid: 'ec' }, { ...ed25519(), kid: 'ed' }] }, new Set(['PS256', 'ES256', 'RS256', 'EdDSA'])),
  );
  assert.deepEqual(result.keys[0]!.algorithms, ['RS256', 'PS256']);
  assert.deepEqual(result.keys[1]!.algorithms, ['ES256']);
  assert.deepEqual(result.keys[2]!.algorithms, ['EdDSA']);
});

test('only the public key members are kept for import', () => {
  const ec = p256();
  const result = accepted(validateJwks({ keys: [{ ...ec, kid: 'a', alg: 'ES256', use: 'sig', key_ops: ['verify'], ext: true, x5u: 'https://evil.example/' }] }, ALL));
  assert.deepEqual(result.keys[0]!.jwk, { kty: 'EC', crv: 'P-256', x: ec['x'], y: ec['y'] });
});

test('a modulus with a leading zero octet is the same key (same fingerprint)', () => {
  const padded = Buffer.concat([Buffer.from([0]), Buffer.from(rsa2048['n'] as string, 'base64url')]).toString('base64url');
  const result = accepted(validateJwks({ keys: [{ ...rsa2048, kid: 'a', alg: 'RS256' }, { ...rsa2048, n: padded, kid: 'b', alg: 'RS256' }] }, ALL));
  assert.equal(result.keys[0]!.fingerprint, result.keys[1]!.fingerprint);
});

test('refuses what is not a key set, and an empty or oversized one', () => {
  refusedWith(validateJwks([], ALL), /not a JSON object/);
  refusedWith(validateJwks('{"keys":[]}', ALL), /not a JSON object/);
  refusedWith(validateJwks(null, ALL), /not a JSON object/);
  refusedWith(validateJwks({ keys: {} }, ALL), /no "keys" array/);
  refusedWith(validateJwks({}, ALL), /no "keys" array/);
  refusedWith(validateJwks({ keys: [] }, ALL), /no keys/);
  const many = Array.from({ length: MAX_KEYS_PER_SET + 1 }, (_, i) => ({ ...p256(), kid: `k${i}` }));
  refusedWith(validateJwks({ keys: many }, ALL), new RegExp(`${MAX_KEYS_PER_SET + 1} keys; at most ${MAX_KEYS_PER_SET}`));
});

test('refuses a key that is not an object or has no kty', () => {
  refusedWith(validateJwks({ keys: ['abc'] }, ALL), /^key 0: not a JSON object$/);
  refusedWith(validateJwks({ keys: [null] }, ALL), /^key 0: not a JSON object$/);
  const { kty: _, ...withoutKty } = p256();
  refusedWith(validateJwks({ keys: [{ ...withoutKty, kid: 'x' }] }, ALL), /^key 0 \(kid "x"\): no "kty"/);
});

test('refuses a symmetric (oct) key: HMAC keys never belong in an asymmetric issuer set', () => {
  const hmac = { kty: 'oct', k: Buffer.alloc(32, 7).toString('base64url'), kid: 'hmac', alg: 'HS256' };
  refusedWith(validateJwks({ keys: [{ ...p256(), kid: 'ec' }, hmac] }, ALL), /^key 1 \(kid "hmac"\): a symmetric key \(kty "oct"\)/);
});

test('refuses private key members', () => {
  const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const privateJwk = { ...(pair.privateKey.export({ format: 'jwk' }) as Jwk), kid: 'leak', alg: 'ES256' };
  refusedWith(validateJwks({ keys: [privateJwk] }, ALL), /^key 0 \(kid "leak"\): contains private key members \(d\)/);
  const rsaPrivate = { ...(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }) as Jwk), kid: 'r' };
  refusedWith(validateJwks({ keys: [rsaPrivate] }, ALL), /private key members \(d, p, q, dp, dq, qi\)/);
});

test('refuses an RSA modulus under 2048 bits', () => {
  const small = publicJwk(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey);
  refusedWith(validateJwks({ keys: [{ ...small, kid: 'small', alg: 'RS256' }] }, ALL), /^key 0 \(kid "small"\): the RSA modulus has 1024 bits; at least 2048/);
});

test('refuses RSA public exponents that are not odd integers ≥ 3', () => {
  for (const [e, shown] of [
    ['AQ', '1'],
    ['Ag', '2'],
    ['AAE', '1'],
    ['AQAA', '65536'],
  ] as const) {
    refusedWith(validateJwks({ keys: [{ ...rsa2048, e, kid: 'k' }] }, ALL), new RegExp(`public exponent ${shown} is not an odd integer`));
  }
  // e = 3 is small but sound (RFC 8017 §3.1).
  const e3 = publicJwk(generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 3 }).publicKey);
  assert.equal(e3['e'], 'Aw');
  accepted(validateJwks({ keys: [{ ...e3, kid: 'e3' }] }, ALL));
});

test('refuses an even RSA modulus', () => {
  const bytes = Buffer.from(rsa2048['n'] as string, 'base64url');
  bytes[bytes.length - 1]! &= 0xfe;
  refusedWith(validateJwks({ keys: [{ ...rsa2048, n: bytes.toString('base64url'), kid: 'even' }] }, ALL), /modulus is even/);
});

test('refuses an EC point that is not on the curve', () => {
  const ec = p256();
  refusedWith(validateJwks({ keys: [{ ...ec, y: flipCharacter(ec['y'] as string), kid: 'off', alg: 'ES256' }] }, ALL), /^key 0 \(kid "off"\): the point is not on curve P-256$/);
  // P-256 coordinates declared as P-384 are the wrong size for that curve.
  refusedWith(validateJwks({ keys: [{ ...ec, crv: 'P-384', kid: 'c' }] }, ALL), /coordinates of a P-384 point are 48 bytes each/);
});

test('refuses non-canonical base64url', () => {
  const ec = p256();
  refusedWith(validateJwks({ keys: [{ ...ec, x: `${ec['x']}=`, kid: 'pad' }] }, ALL), /"x" or "y" is missing or not canonical base64url/);
  // The standard alphabet's '+' (Node's decoder would quietly drop it).
  refusedWith(validateJwks({ keys: [{ ...ec, x: `+${(ec['x'] as string).slice(1)}`, kid: 'std' }] }, ALL), /"x" or "y" is missing or not canonical base64url/);
  refusedWith(validateJwks({ keys: [{ ...rsa2048, n: ` ${rsa2048['n']}`, kid: 'ws' }] }, ALL), /"n" is missing or not canonical base64url/);
  // Ed25519 x is 32 bytes: 43 characters whose last one carries 4 unused bits that must be 0.
  const ed = ed25519();
  const x = ed['x'] as string;
  const last = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'.indexOf(x.at(-1)!);
  const nonCanonical = x.slice(0, -1) + 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'[last | 1];
  refusedWith(validateJwks({ keys: [{ ...ed, x: nonCanonical, kid: 'bits' }] }, ALL), /"x" is missing or not canonical base64url/);
});

test('refuses an alg that does not fit the key type or curve', () => {
  refusedWith(validateJwks({ keys: [{ ...p256(), kid: 'a', alg: 'ES384' }] }, ALL), /^key 0 \(kid "a"\): "alg" "ES384" does not fit an EC P-256 key \(ES256 would\)$/);
  refusedWith(validateJwks({ keys: [{ ...p384(), kid: 'b', alg: 'ES256' }] }, ALL), /"alg" "ES256" does not fit an EC P-384 key/);
  refusedWith(validateJwks({ keys: [{ ...rsa2048, kid: 'c', alg: 'ES256' }] }, ALL), /"alg" "ES256" does not fit an RSA key/);
  refusedWith(validateJwks({ keys: [{ ...ed25519(), kid: 'd', alg: 'ES256' }] }, ALL), /does not fit an Ed25519 key \(EdDSA would\)/);
  refusedWith(validateJwks({ keys: [{ ...rsa2048, kid: 'e', alg: 'HS256' }] }, ALL), /"alg" "HS256" does not fit an RSA key/);
  refusedWith(validateJwks({ keys: [{ ...rsa2048, kid: 'f', alg: 'none' }] }, ALL), /"alg" "none" does not fit/);
  refusedWith(validateJwks({ keys: [{ ...rsa2048, kid: 'g', alg: 256 }] }, ALL), /"alg" is not a string/);
});

test('refuses an alg the issuer is not configured for, and a key no issuer algorithm fits', () => {
  refusedWith(validateJwks({ keys: [{ ...p256(), kid: 'ec', alg: 'ES256' }] }, new Set(['RS256'])), /"alg" "ES256" is not one of this issuer's algorithms \(RS256\)/);
  refusedWith(validateJwks({ keys: [{ ...p384(), kid: 'ec' }] }, new Set(['ES256', 'RS256'])), /no algorithm of this issuer \(ES256, RS256\) can be used with an EC P-384 key/);
});

test('refuses a use other than sig, and key_ops without verify', () => {
  refusedWith(validateJwks({ keys: [{ ...p256(), kid: 'enc', use: 'enc' }] }, ALL), /^key 0 \(kid "enc"\): "use" is "enc", not "sig"$/);
  refusedWith(validateJwks({ keys: [{ ...p256(), kid: 'ops', key_ops: ['encrypt'] }] }, ALL), /"key_ops" does not include "verify"/);
  refusedWith(validateJwks({ keys: [{ ...p256(), kid: 'ops', key_ops: 'verify' }] }, ALL), /"key_ops" does not include "verify"/);
});

test('refuses duplicate kids, and two kid-less keys for the same algorithm', () => {
  refusedWith(validateJwks({ keys: [{ ...p256(), kid: 'same' }, { ...ed25519(), kid: 'other' }, { ...p256(), kid: 'same' }] }, ALL), /^keys 0 and 2 share "kid" "same"/);
  refusedWith(validateJwks({ keys: [p256(), p256()] }, ALL), /^keys 0 and 1 both lack "kid" and both verify ES256/);
  // Kid-less keys for different algorithms are unambiguous: the token's alg picks one.
  const result = accepted(validateJwks({ keys: [p256(), ed25519()] }, ALL));
  assert.deepEqual(result.keys.map((key) => key.kid), [undefined, undefined]);
});

test('refuses a kid that is not 1 to 256 printable ASCII characters', () => {
  accepted(validateJwks({ keys: [{ ...p256(), kid: 'k'.repeat(256) }] }, ALL));
  for (const kid of ['k'.repeat(257), '', 'line\nbreak', 'tab\t', 'clé', '\u0000']) {
    refusedWith(validateJwks({ keys: [{ ...p256(), kid }] }, ALL), /"kid" must be 1 to 256 printable ASCII characters/);
  }
  refusedWith(validateJwks({ keys: [{ ...p256(), kid: 7 }] }, ALL), /^key 0 \(no kid\): "kid" is not a string$/);
});

test('refuses key-agreement curves, Ed448, other curves and unknown key types', () => {
  refusedWith(validateJwks({ keys: [{ ...publicJwk(generateKeyPairSync('x25519').publicKey), kid: 'x' }] }, ALL), /curve X25519 is for key agreement/);
  refusedWith(validateJwks({ keys: [{ ...publicJwk(generateKeyPairSync('ed448').publicKey), kid: 'e', alg: 'EdDSA' }] }, ALL), /curve Ed448 is not supported/);
  refusedWith(validateJwks({ keys: [{ ...publicJwk(generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey), kid: 'k' }] }, ALL), /unsupported EC curve "secp256k1"/);
  refusedWith(validateJwks({ keys: [{ kty: 'AKP', alg: 'ML-DSA-44', pub: 'AAAA', kid: 'pq' }] }, ALL), /unsupported "kty" "AKP"/);
});

test('every bad key is reported, each named by index and kid', () => {
  const result = validateJwks(
    { keys: [{ ...p256(), kid: 'good' }, { ...p256(), kid: 'enc', use: 'enc' }, { kty: 'oct', k: 'AAAA' }, { ...rsa2048, e: 'AQ', kid: 'e1' }] },
    ALL,
  );
  assert.equal(result.ok, false);
  if (result.ok) return;
  assert.deepEqual(
    result.problems.map((problem) => problem.split(':')[0]),
    ['key 1 (kid "enc")', 'key 2 (no kid)', 'key 3 (kid "e1")'],
  );
});

test('a hostile kid is quoted and cut short in messages', () => {
  const result = validateJwks({ keys: [{ ...p256(), kid: `${'x'.repeat(300)}"\n` }] }, ALL);
  assert.equal(result.ok, false);
  if (result.ok) return;
  assert.ok(!result.problems[0]!.includes('\n'));
  assert.ok(result.problems[0]!.length < 200);
});
