/**
 * Wycheproof `json_web_key_test.json` (SECURITY.md JWT-05) through the same path a configured
 * key file takes: `validateJwks`, then a key set that imports the keys, then a JWS verification
 * with the key the set finds. Every invalid set must be refused at load; the one valid
 * asymmetric set must load and verify its JWS.
 *
 * Our expectations differ from upstream on purpose in one way: the sets of HMAC (`oct`) keys that
 * Wycheproof marks `valid` (tcIds 2, 13, 14, 15) are refused, because an asymmetric issuer's key
 * set never carries a symmetric key (RFC 8725 §2.1; SECURITY.md JWT-05).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compactVerify, decodeProtectedHeader } from 'jose';
import { validateJwks } from '../../../src/authn/jwks/validate.ts';
import { createKeySet } from '../../../src/authn/jwks/key-set.ts';
import { SIGNING_ALGORITHMS } from '../../../src/config/schema.ts';
import type { CompiledIssuer } from '../../../src/config/snapshot.ts';
import { setLogListener } from '../../../src/log.ts';
import { WYCHEPROOF } from './vectors.ts';

interface TestVector {
  readonly tcId: number;
  readonly comment: string;
  readonly jws: string;
  readonly result: 'valid' | 'invalid' | 'acceptable';
  readonly flags: readonly string[];
}

interface TestGroup {
  readonly comment: string;
  readonly public?: { keys: unknown[] };
  readonly private?: { keys: unknown[] };
  readonly tests: readonly TestVector[];
}

const file = JSON.parse(readFileSync(join(WYCHEPROOF, 'json_web_key_test.json'), 'utf8')) as { numberOfTests: number; testGroups: TestGroup[] };
const everyAlgorithm = new Set<string>(SIGNING_ALGORITHMS);

/** Why each invalid set is refused: the problem we expect to see, by tcId. */
const EXPECTED_PROBLEM: Readonly<Record<number, RegExp>> = {
  1: /symmetric key \(kty "oct"\)/,
  2: /symmetric key/,
  3: /symmetric key/,
  4: /keys 0 and 1 share "kid" "kid-aes-sign"/,
  6: /"use" is "enc", not "sig"/,
  7: /ROCA fingerprint/,
  8: /1024 bits; at least 2048/,
  9: /public exponent 1 is not an odd integer/,
  10: /symmetric key/,
  11: /symmetric key/,
  12: /symmetric key/,
  13: /symmetric key/,
  14: /symmetric key/,
  15: /symmetric key/,
  16: /symmetric key/,
  17: /symmetric key/,
  18: /symmetric key/,
  19: /"alg" "ES521" does not fit an EC P-256 key/,
  20: /"alg" "ES224" does not fit an EC P-256 key/,
  21: /"use" is "enc", not "sig"/,
  22: /the point is not on curve P-256/,
  23: /coordinates of a P-384 point are 48 bytes/,
  24: /"n" is missing/,
  25: /symmetric key/,
  26: /symmetric key/,
};

/** The only set that must load: an RS256 public key, tcId 5 ("acceptsValid"). */
const LOADS = new Set([5]);

function issuerWithFile(jwks: unknown): CompiledIssuer {
  return {
    id: 'wycheproof',
    issuer: 'https://wycheproof.example',
    source: { kind: 'file', path: 'json_web_key_test.json', jwks },
    ca: null,
    algorithms: new Set(SIGNING_ALGORITHMS),
    typ: 'at+jwt',
    leewayMs: 30_000,
    maxLifetimeMs: 3_600_000,
    partnerClaim: 'client_id',
    refreshIntervalMs: 600_000,
    unknownKidCooldownMs: 30_000,
    fetchTimeoutMs: 5_000,
  };
}

test('the vector file is the one the README describes', () => {
  assert.equal(file.numberOfTests, 26);
  const ids = file.testGroups.flatMap((group) => group.tests.map((vector) => vector.tcId));
  assert.deepEqual([...ids].sort((a, b) => a - b), Array.from({ length: 26 }, (_, i) => i + 1));
  assert.deepEqual(Object.keys(EXPECTED_PROBLEM).length + LOADS.size, 26);
});

for (const group of file.testGroups) {
  for (const vector of group.tests) {
    // The published half when there is one: a private member would be refused for that alone,
    // and the vector is about something else. Sets of symmetric keys only have `private`.
    const keySet = group.public ?? group.private!;
    test(`tcId ${vector.tcId} ${vector.comment} (${group.comment}, upstream ${vector.result})`, async () => {
      const validation = validateJwks(keySet, everyAlgorithm);
      if (!LOADS.has(vector.tcId)) {
        assert.equal(validation.ok, false, 'an invalid key set must be refused at load');
        if (validation.ok) return;
        assert.ok(
          validation.problems.some((problem) => EXPECTED_PROBLEM[vector.tcId]!.test(problem)),
          `expected ${EXPECTED_PROBLEM[vector.tcId]}, got: ${validation.problems.join(' | ')}`,
        );
        return;
      }
      assert.equal(vector.result, 'valid');
      assert.ok(validation.ok, validation.ok ? '' : validation.problems.join(' | '));
      setLogListener(null, { quiet: true });
      const dataDir = mkdtempSync(join(tmpdir(), 'portcullis-wycheproof-'));
      const set = createKeySet(issuerWithFile(keySet), { dataDir });
      await set.start();
      assert.equal(set.ready(), true);
      const header = decodeProtectedHeader(vector.jws);
      const key = set.find(header.kid, header.alg!);
      assert.ok(key, 'the key named by the JWS is found for its alg');
      const { payload } = await compactVerify(vector.jws, key.key, { algorithms: [key.alg] });
      assert.equal(Buffer.from(payload).toString(), 'foo');
      // Altering the signature must fail with the same key: the key really is what verified it.
      const tampered = vector.jws.slice(0, -4) + (vector.jws.endsWith('AAAA') ? 'BBBB' : 'AAAA');
      await assert.rejects(compactVerify(tampered, key.key, { algorithms: [key.alg] }));
      set.close();
      rmSync(dataDir, { recursive: true, force: true });
    });
  }
}
