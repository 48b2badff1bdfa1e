// Legacy API keys: format and entropy of generated keys, verification against hashes only,
// expiry, and the constant-time comparison on every path.
import { afterEach, describe, mock, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto, { createHash } from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';
import { API_KEY_PREFIX, generateApiKey, verifyApiKey } from '../../src/authn/api-key.ts';
import type { ApiKeyCredential } from '../../src/authn/api-key.ts';

const NOW = Date.parse('2026-06-01T12:00:00Z');
const KEY_FORMAT = /^pcs_[a-z0-9]{12}_[A-Za-z0-9_-]{43}$/;
/** `pcs_` + 12-character key id + `_`. */
const SECRET_START = 17;

/** The index as the configuration compiles it: key id → credential holding only the SHA-256. */
function indexOf(...entries: Array<{ keyId: string; sha256: string; expiresAt: number; id?: string }>): Map<string, ApiKeyCredential> {
  return new Map(
    entries.map((entry) => [
      entry.keyId,
      { id: entry.id ?? `apikey-${entry.keyId}`, type: 'api_key', partnerId: 'acme', keyId: entry.keyId, sha256: Buffer.from(entry.sha256, 'hex'), expiresAt: entry.expiresAt, rateLimit: null },
    ]),
  );
}

describe('generateApiKey', () => {
  test('pcs_<12 [a-z0-9]>_<32 random bytes, base64url>; key id and SHA-256 of the whole key returned', () => {
    const { key, keyId, sha256 } = generateApiKey();
    assert.match(key, KEY_FORMAT);
    assert.ok(key.startsWith(`${API_KEY_PREFIX}${keyId}_`));
    assert.equal(sha256, createHash('sha256').update(key).digest('hex'));
    assert.equal(Buffer.from(key.slice(SECRET_START), 'base64url').length, 32);
  });

  test('entropy: keys and key ids never repeat, secret bits are balanced, key ids use the whole alphabet', () => {
    const generated = Array.from({ length: 2000 }, () => generateApiKey());
    assert.equal(new Set(generated.map((g) => g.key)).size, generated.length);
    assert.equal(new Set(generated.map((g) => g.keyId)).size, generated.length);
    let ones = 0;
    for (const { key } of generated) for (const byte of Buffer.from(key.slice(SECRET_START), 'base64url')) ones += popcount(byte);
    const ratio = ones / (generated.length * 256);
    // 512,000 fair bits: the standard deviation of the ratio is ~0.0007; 0.49–0.51 is > 10 sigma.
    assert.ok(ratio > 0.49 && ratio < 0.51, `ratio of 1 bits ${ratio}`);
    const alphabet = new Set(generated.flatMap((g) => [...g.keyId]));
    assert.equal(alphabet.size, 36);
  });
});

describe('verifyApiKey', () => {
  const good = generateApiKey();
  const index = indexOf({ keyId: good.keyId, sha256: good.sha256, expiresAt: NOW + 86_400_000 });

  test('the right key verifies against the stored hash alone, and returns its credential', () => {
    const result = verifyApiKey(good.key, index, NOW);
    assert.equal(result.ok, true);
    assert.equal(result.ok && result.credential.id, `apikey-${good.keyId}`);
    assert.ok(!JSON.stringify([...index.values()]).includes(good.key.slice(SECRET_START)), 'the index holds no secret');
  });

  test('a wrong secret for a known key id is api_key.invalid', () => {
    const other = generateApiKey();
    const forged = `pcs_${good.keyId}_${other.key.slice(SECRET_START)}`;
    const result = verifyApiKey(forged, index, NOW);
    assert.deepEqual(result.ok ? null : result.reason, 'api_key.invalid');
    assert.match(result.ok ? '' : result.detail, /does not match/);
  });

  test('an unknown key id is api_key.invalid', () => {
    const result = verifyApiKey(generateApiKey().key, index, NOW);
    assert.equal(result.ok ? null : result.reason, 'api_key.invalid');
    assert.match(result.ok ? '' : result.detail, /no API key with id/);
  });

  test('expired at its expiry instant; a wrong secret for an expired key is invalid, not expired', () => {
    const expiring = indexOf({ keyId: good.keyId, sha256: good.sha256, expiresAt: NOW });
    assert.equal(verifyApiKey(good.key, expiring, NOW - 1).ok, true);
    const expired = verifyApiKey(good.key, expiring, NOW);
    assert.equal(expired.ok ? null : expired.reason, 'api_key.expired');
    const wrong = `pcs_${good.keyId}_${generateApiKey().key.slice(SECRET_START)}`;
    assert.equal((verifyApiKey(wrong, expiring, NOW) as { reason: string }).reason, 'api_key.invalid');
  });

  test('malformed keys are api_key.invalid, and no detail ever echoes the presented key', () => {
    const secret = good.key.slice(SECRET_START);
    // 43 base64url characters carry 258 bits: a last character with its spare bits set is non-canonical.
    const lastIndex = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'.indexOf(secret.at(-1)!);
    const nonCanonical = `${good.key.slice(0, -1)}${'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'[lastIndex | 1]}`;
    const malformed = [
      '',
      good.key.slice(4), // no prefix
      `PCS_${good.key.slice(4)}`,
      `pcs_${good.keyId.toUpperCase()}_${secret}`,
      `pcs_${good.keyId}-${secret}`,
      `${good.key}=`,
      `${good.key} `,
      ` ${good.key}`,
      good.key.slice(0, -1),
      `${good.key}A`,
      `pcs_${good.keyId}_${secret.slice(0, -1)}+`,
      nonCanonical,
      `pcs_${good.keyId}_${Buffer.from(secret, 'base64url').toString('base64')}`, // standard base64 (may carry + / =)
    ].filter((candidate) => candidate !== good.key);
    for (const candidate of malformed) {
      const result = verifyApiKey(candidate, index, NOW);
      assert.equal(result.ok, false, JSON.stringify(candidate));
      if (result.ok) continue;
      assert.equal(result.reason, 'api_key.invalid');
      assert.match(result.detail, /not a Portcullis API key/, `refused by its format: ${JSON.stringify(candidate)}`);
      if (candidate.length > 20) assert.ok(!result.detail.includes(candidate.trim().slice(-20)), 'detail echoes the key');
      assert.ok(!result.detail.includes(secret), 'detail echoes the secret');
    }
  });
});

describe('the comparison is constant-time on every path', () => {
  afterEach(() => {
    mock.restoreAll();
    syncBuiltinESMExports();
  });

  test('timingSafeEqual runs exactly once — for a match, a wrong secret and an unknown key id alike', () => {
    const good = generateApiKey();
    const index = indexOf({ keyId: good.keyId, sha256: good.sha256, expiresAt: NOW + 1000 });
    const compare = mock.method(crypto, 'timingSafeEqual');
    syncBuiltinESMExports();
    const presented = [good.key, `pcs_${good.keyId}_${generateApiKey().key.slice(SECRET_START)}`, generateApiKey().key];
    for (const key of presented) verifyApiKey(key, index, NOW);
    assert.equal(compare.mock.callCount(), presented.length);
    for (const call of compare.mock.calls) {
      const [a, b] = call.arguments as [Buffer, Buffer];
      assert.equal(a.length, 32);
      assert.equal(b.length, 32);
    }
    // A malformed key is refused by its format alone, before any hashing.
    verifyApiKey('pcs_short', index, NOW);
    assert.equal(compare.mock.callCount(), presented.length);
  });

  test('a stored hash of the wrong length never verifies (and does not throw)', () => {
    const good = generateApiKey();
    const truncated = indexOf({ keyId: good.keyId, sha256: good.sha256.slice(0, 62), expiresAt: NOW + 1000 });
    const result = verifyApiKey(good.key, truncated, NOW);
    assert.equal(result.ok ? null : result.reason, 'api_key.invalid');
  });
});

function popcount(byte: number): number {
  let count = 0;
  for (let b = byte; b; b >>= 1) count += b & 1;
  return count;
}
