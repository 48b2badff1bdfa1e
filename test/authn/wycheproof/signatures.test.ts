/**
 * Wycheproof raw signature vectors for every algorithm family the gateway verifies
 * (shared/testdata/wycheproof/README.md):
 *   ES256  ecdsa_secp256r1_sha256_p1363_test.json (raw R‖S, as in JWS)
 *   RS256  rsa_signature_{2048,3072,4096}_sha256_test.json
 *   PS256  rsa_pss_{2048,3072,4096}_sha256_mgf1_32_test.json
 *   EdDSA  ed25519_test.json
 *
 * The message of a vector is arbitrary bytes, so it cannot travel as a JWS signing input. Each
 * goes through the parts of the token path that touch the signature:
 * - the key: the group's public JWK through `validateJwks` and `KeyIndex` (jose `importJWK`),
 *   exactly as an issuer's key set loads it;
 * - the signature: `expectedSignatureLength` (verify.ts, JWT-15), then WebCrypto
 *   `crypto.subtle.verify` with the parameters jose 6 uses for that JWS algorithm
 *   (jose `lib/jws_algorithms.js`; its `verifySignature` calls `crypto.subtle.verify` with them).
 *
 * `invalid` must be refused and `valid` accepted. `acceptable` is treated as must-refuse (README):
 * the only one is RSA PKCS#1 `MissingNull` (a DigestInfo without the ASN.1 NULL), which WebCrypto
 * refuses.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CryptoKey } from 'jose';
import { KeyIndex } from '../../../src/authn/jwks/key-index.ts';
import { validateJwks } from '../../../src/authn/jwks/validate.ts';
import type { VerificationKey } from '../../../src/authn/jwks/key-set.ts';
import { expectedSignatureLength } from '../../../src/authn/jwt/verify.ts';
import { WYCHEPROOF } from './vectors.ts';


type Alg = 'ES256' | 'RS256' | 'PS256' | 'EdDSA';

/** jose 6 `lib/jws_algorithms.js`: the `signing` parameters of each algorithm. */
const JOSE_SIGNING_PARAMS: Record<Alg, Parameters<typeof crypto.subtle.verify>[0]> = {
  ES256: { name: 'ECDSA', hash: 'SHA-256' },
  RS256: { name: 'RSASSA-PKCS1-v1_5' },
  PS256: { name: 'RSA-PSS', saltLength: 32 },
  EdDSA: { name: 'Ed25519' },
};

interface Vector {
  readonly tcId: number;
  readonly comment: string;
  readonly flags: readonly string[];
  readonly msg: string;
  readonly sig: string;
  readonly result: 'valid' | 'invalid' | 'acceptable';
}

interface Group {
  readonly publicKeyJwk?: Record<string, unknown>;
  readonly keyJwk?: Record<string, unknown>;
  readonly publicKeyPem?: string;
  readonly tests: readonly Vector[];
}

interface Suite {
  readonly file: string;
  readonly alg: Alg;
  /** `acceptable` vectors we expect, by tcId (README: only RSA MissingNull). */
  readonly acceptable: readonly number[];
}

const SUITES: readonly Suite[] = [
  { file: 'ecdsa_secp256r1_sha256_p1363_test.json', alg: 'ES256', acceptable: [] },
  { file: 'rsa_signature_2048_sha256_test.json', alg: 'RS256', acceptable: [8] },
  { file: 'rsa_signature_3072_sha256_test.json', alg: 'RS256', acceptable: [8] },
  { file: 'rsa_signature_4096_sha256_test.json', alg: 'RS256', acceptable: [8] },
  { file: 'rsa_pss_2048_sha256_mgf1_32_test.json', alg: 'PS256', acceptable: [] },
  { file: 'rsa_pss_3072_sha256_mgf1_32_test.json', alg: 'PS256', acceptable: [] },
  { file: 'rsa_pss_4096_sha256_mgf1_32_test.json', alg: 'PS256', acceptable: [] },
  { file: 'ed25519_test.json', alg: 'EdDSA', acceptable: [] },
];

/** A group's key, loaded the way an issuer key set loads it, for `alg`. */
async function loadKey(group: Group, alg: Alg): Promise<VerificationKey> {
  // Some ECDSA groups carry only PEM/DER: their JWK is the same key, written as a JWK.
  const jwk = group.publicKeyJwk ?? group.keyJwk ?? (group.publicKeyPem === undefined ? undefined : (createPublicKey(group.publicKeyPem).export({ format: 'jwk' }) as Record<string, unknown>));
  assert.ok(jwk, 'the group has a public key');
  // kid "none" or a per-file kid: irrelevant here; dropped so that only the key material counts
  const { kid: _kid, ...material } = jwk;
  const validation = validateJwks({ keys: [material] }, new Set([alg]));
  if (!validation.ok) assert.fail(`the key set refuses the group's key: ${validation.problems.join('; ')}`);
  const key = (await KeyIndex.build(validation.keys)).find(undefined, alg);
  assert.ok(key, `the key is usable for ${alg}`);
  return key;
}

/** The signature step of the token path for raw bytes: the JWT-15 length rule, then WebCrypto as jose calls it. */
async function verifies(key: VerificationKey, signature: Uint8Array, message: Uint8Array): Promise<boolean> {
  if (signature.length !== expectedSignatureLength(key)) return false;
  try {
    return await crypto.subtle.verify(JOSE_SIGNING_PARAMS[key.alg as Alg], key.key as CryptoKey, signature, message);
  } catch {
    return false; // jose maps a throwing verify to JWSSignatureVerificationFailed
  }
}

describe('Wycheproof signature vectors through the verifier\'s key import and signature primitive', () => {
  for (const suite of SUITES) {
    it(`${suite.file} (${suite.alg})`, async (t) => {
      const data = JSON.parse(readFileSync(join(WYCHEPROOF, suite.file), 'utf8')) as { numberOfTests: number; testGroups: Group[] };
      const counts = { valid: 0, invalid: 0, acceptable: 0 };
      const failures: string[] = [];
      const acceptable: number[] = [];
      for (const group of data.testGroups) {
        const key = await loadKey(group, suite.alg);
        for (const vector of group.tests) {
          counts[vector.result]++;
          const accepted = await verifies(key, Buffer.from(vector.sig, 'hex'), Buffer.from(vector.msg, 'hex'));
          if (vector.result === 'acceptable') acceptable.push(vector.tcId);
          const expected = vector.result === 'valid';
          if (accepted !== expected) failures.push(`tcId ${vector.tcId} (${vector.result}, ${vector.comment || vector.flags.join(',')}): ${accepted ? 'accepted' : 'refused'}`);
        }
      }
      t.diagnostic(`${JSON.stringify(counts)} of ${data.numberOfTests}`);
      assert.equal(counts.valid + counts.invalid + counts.acceptable, data.numberOfTests);
      assert.ok(counts.valid > 0 && counts.invalid > 0);
      assert.deepEqual(acceptable, suite.acceptable);
      assert.deepEqual(failures, []);
    });
  }
});
