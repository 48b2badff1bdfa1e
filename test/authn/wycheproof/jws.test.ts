/**
 * Wycheproof `json_web_signature_test.json` (C2SP/wycheproof, see
 * shared/testdata/wycheproof/README.md) through the gateway's own JWS path:
 *
 *   parseJws (strict shape, encodings, header)  →  the verifier's algorithm allow-list
 *   →  a real issuer key set holding the group's JWK (`createKeySet`, `jwks_file` source:
 *      validateJwks + jose importJWK, exactly as in production)  →  find(kid, alg)
 *   →  verifyJwsSignature (length rule + jose flattenedVerify pinned to the key's alg).
 *
 * The vectors' payloads are not access-token claims (`foo`, RFC 7520's text), so the claims
 * step — tested in test/authn/jwt/verify.test.ts — is not part of this path.
 *
 * Every `invalid` vector must be refused and every `valid` one accepted, except where our
 * requirements are stricter than the vector's label; each such case is listed in OVERRIDES with
 * the requirement that decides it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SIGNING_ALGORITHMS } from '../../../src/config/schema.ts';
import type { CompiledIssuer } from '../../../src/config/snapshot.ts';
import { setLogListener } from '../../../src/log.ts';
import { createKeySet } from '../../../src/authn/jwks/key-set.ts';
import type { ManagedKeySet } from '../../../src/authn/jwks/key-set.ts';
import { parseJws } from '../../../src/authn/jwt/parse.ts';
import { verifyJwsSignature } from '../../../src/authn/jwt/verify.ts';
import { WYCHEPROOF } from './vectors.ts';


interface JwsVector {
  readonly tcId: number;
  readonly comment: string;
  readonly flags: readonly string[];
  readonly jws: unknown;
  readonly result: 'valid' | 'invalid' | 'acceptable';
}

interface JwsGroup {
  readonly comment: string;
  readonly public?: Record<string, unknown>;
  readonly private?: Record<string, unknown>;
  readonly tests: readonly JwsVector[];
}

type Stage = 'parse' | 'key' | 'signature' | 'accepted';

interface Verdict {
  readonly stage: Stage;
  readonly reason: string | null;
  readonly detail: string;
}

/** Vectors whose label our requirements overrule, and why. */
interface Override {
  readonly stage: Stage;
  readonly why: string;
}

const OVERRIDES: ReadonlyMap<number, Override> = new Map<number, Override>([
  // HS256 (groups "hs256", "rfc7520" Figure 35, "base64"): MACs are never accepted for access
  // tokens (SECURITY.md JWT-01) and an "oct" key never enters an issuer's key set (JWT-05).
  ...[1, 348, 352, 357, 358, 359, 376, 377].map((tcId): [number, Override] => [tcId, { stage: 'key', why: 'HS256 is never accepted (JWT-01, JWT-05)' }]),
  // A "?" inside the header or payload segment: labelled valid upstream because the MAC covers
  // the exact ASCII; we require strict base64url (JWT-15; README of the test data).
  [372, { stage: 'parse', why: 'strict base64url (JWT-15)' }],
  [373, { stage: 'parse', why: 'strict base64url (JWT-15)' }],
  // RFC 7520 Figure 20: a PS384 signature checked with a JWK whose "alg" is PS256. Each key has
  // exactly one alg and a token whose alg differs is refused (JWT-01).
  [346, { stage: 'key', why: 'the key is PS256, the token PS384 (JWT-01)' }],
  [350, { stage: 'key', why: 'the key is PS256, the token PS384 (JWT-01)' }],
  // RFC 7520 Figure 27: the JWK says "alg": "ES521", which is no JWS algorithm (RFC 7518 §3.1
  // names ES512); the key set refuses the key (JWT-05). Without the typo it verifies (below).
  [347, { stage: 'key', why: 'the JWK "alg" "ES521" is not a registered algorithm (JWT-05)' }],
  [351, { stage: 'key', why: 'the JWK "alg" "ES521" is not a registered algorithm (JWT-05)' }],
]);

/** The verifier's algorithm allow-list (verify.ts): `none` and HS* are not in it (JWT-01). */
const IMPLEMENTED = new Set<string>(SIGNING_ALGORITHMS);

const file = JSON.parse(readFileSync(join(WYCHEPROOF, 'json_web_signature_test.json'), 'utf8')) as { testGroups: JwsGroup[]; numberOfTests: number };
const keySets = new Map<JwsGroup, ManagedKeySet | null>();
const keyRefusals: string[] = [];

function issuerFor(jwk: Record<string, unknown>, index: number): CompiledIssuer {
  return {
    id: `wycheproof-${index}`,
    issuer: `https://wycheproof.example/${index}`,
    source: { kind: 'file', path: `json_web_signature_test.json#testGroups[${index}]`, jwks: { keys: [jwk] } },
    ca: null,
    algorithms: new Set(SIGNING_ALGORITHMS),
    typ: 'at+jwt',
    leewayMs: 0,
    maxLifetimeMs: 3_600_000,
    partnerClaim: 'client_id',
    refreshIntervalMs: 600_000,
    unknownKidCooldownMs: 30_000,
    fetchTimeoutMs: 5_000,
  };
}

async function loadKeySet(jwk: Record<string, unknown>, index: number): Promise<ManagedKeySet> {
  const keySet = createKeySet(issuerFor(jwk, index), { dataDir: '/nonexistent-portcullis-data' });
  await keySet.start();
  return keySet;
}

before(async () => {
  setLogListener((entry) => {
    if (entry.event === 'jwks.file_refused') keyRefusals.push(String(entry['error']));
  }, { quiet: true });
  let index = 0;
  for (const group of file.testGroups) {
    // Only a group's public key may verify; a group with only a (symmetric) private key has none.
    keySets.set(group, group.public === undefined ? null : await loadKeySet(group.public, index));
    index++;
  }
});

after(() => {
  for (const keySet of keySets.values()) keySet?.close();
  setLogListener(null, { quiet: false });
});

async function judge(jws: unknown, keySet: ManagedKeySet | null): Promise<Verdict> {
  if (typeof jws !== 'string') return { stage: 'parse', reason: 'not a string', detail: '' };
  const parsed = parseJws(jws);
  if (!parsed.ok) return { stage: 'parse', reason: parsed.reason, detail: parsed.detail };
  if (!IMPLEMENTED.has(parsed.alg)) return { stage: 'key', reason: 'token.alg_not_allowed', detail: parsed.alg };
  if (keySet === null || !keySet.ready()) return { stage: 'key', reason: 'dependency.jwks_unavailable', detail: 'no usable key' };
  const key = keySet.find(parsed.kid, parsed.alg);
  if (key === undefined) return { stage: 'key', reason: 'token.kid_unknown', detail: `${parsed.kid} ${parsed.alg}` };
  const signature = await verifyJwsSignature(parsed, key);
  if (!signature.ok) return { stage: 'signature', reason: signature.reason, detail: signature.detail };
  return { stage: 'accepted', reason: null, detail: '' };
}

describe('Wycheproof json_web_signature_test.json', () => {
  it('loads every vector once', () => {
    const count = file.testGroups.reduce((sum, group) => sum + group.tests.length, 0);
    assert.equal(count, file.numberOfTests);
    assert.equal(count, 401);
  });

  it('accepts every valid vector and refuses every invalid one (overrides documented)', async (t) => {
    const stages: Record<Stage, number> = { parse: 0, key: 0, signature: 0, accepted: 0 };
    const failures: string[] = [];
    for (const group of file.testGroups) {
      const keySet = keySets.get(group)!;
      for (const vector of group.tests) {
        const verdict = await judge(vector.jws, keySet);
        stages[verdict.stage]++;
        const override = OVERRIDES.get(vector.tcId);
        const label = `tcId ${vector.tcId} (${group.comment}: ${vector.comment}, ${vector.result})`;
        if (override !== undefined) {
          if (verdict.stage !== override.stage) failures.push(`${label}: expected refusal at ${override.stage} (${override.why}), got ${verdict.stage} ${verdict.reason ?? ''}`);
        } else if (vector.result === 'valid') {
          if (verdict.stage !== 'accepted') failures.push(`${label}: refused at ${verdict.stage}: ${verdict.reason} ${verdict.detail}`);
        } else if (verdict.stage === 'accepted') {
          failures.push(`${label}: accepted`);
        }
      }
    }
    t.diagnostic(`stages: ${JSON.stringify(stages)}; overrides: ${OVERRIDES.size}`);
    assert.deepEqual(failures, []);
    assert.ok(stages.accepted > 0 && stages.signature > 0 && stages.parse > 0 && stages.key > 0);
  });

  it('base64 group: the strict parse alone decides every encoding vector', async () => {
    const group = file.testGroups.find((candidate) => candidate.comment === 'base64')!;
    const byId = new Map(group.tests.map((vector) => [vector.tcId, vector]));
    // 367 and 370 ("invalidBase64Padding…") are byte for byte the valid 357 in this revision of
    // the data: nothing about their encoding is wrong, so they are refused by the HS256 rule
    // (key stage, first test), not here. Should upstream fix them, this assertion says so.
    for (const tcId of [367, 370]) assert.equal(byId.get(tcId)!.jws, byId.get(357)!.jws);
    for (const vector of group.tests) {
      if (vector.tcId === 367 || vector.tcId === 370) continue;
      const parsed = parseJws(vector.jws as string);
      const expectParsed = OVERRIDES.get(vector.tcId)?.stage === 'parse' ? false : vector.result === 'valid';
      assert.equal(parsed.ok, expectParsed, `tcId ${vector.tcId} ${vector.comment}`);
      if (!parsed.ok) assert.ok(parsed.reason === 'token.encoding' || parsed.reason === 'token.malformed', `tcId ${vector.tcId}: ${parsed.reason}`);
    }
  });

  it('ES256 special cases (psychic signatures, r or s = 0, 1, n-1, n; wrong lengths) are refused by the signature check itself', async () => {
    const group = file.testGroups.find((candidate) => candidate.comment === 'SpecialCaseEs256')!;
    const keySet = keySets.get(group)!;
    for (const vector of group.tests) {
      const verdict = await judge(vector.jws, keySet);
      assert.equal(verdict.stage, vector.result === 'valid' ? 'accepted' : 'signature', `tcId ${vector.tcId} ${vector.comment}`);
    }
  });

  it('RSA PKCS#1 padding and PSS modifications are refused by the signature check itself', async () => {
    for (const group of file.testGroups.filter((candidate) => /^(rs|ps)\d+$/.test(candidate.comment))) {
      const keySet = keySets.get(group)!;
      for (const vector of group.tests.filter((candidate) => candidate.flags.includes('ModifiedPadding') || candidate.flags.includes('ModifiedSignature'))) {
        assert.equal((await judge(vector.jws, keySet)).stage, 'signature', `tcId ${vector.tcId} ${vector.comment}`);
      }
    }
  });

  it('keys for encryption ("use": "enc", "key_ops": ["encrypt"]) never enter a key set', () => {
    for (const comment of ['rsa_encryption', 'ec_key_for_encryption']) {
      for (const group of file.testGroups.filter((candidate) => candidate.comment === comment)) assert.equal(keySets.get(group)!.ready(), false);
    }
    assert.ok(keyRefusals.some((message) => message.includes('"use"')));
    assert.ok(keyRefusals.some((message) => message.includes('"key_ops"')));
  });

  it('RFC 7520 Figure 27 (ES512 over P-521) verifies once the JWK\'s "ES521" typo is removed', async () => {
    for (const tcId of [347, 351]) {
      const group = file.testGroups.find((candidate) => candidate.tests.some((vector) => vector.tcId === tcId))!;
      const { alg: _typo, ...jwk } = group.public!;
      const keySet = await loadKeySet(jwk, 1000 + tcId);
      try {
        const verdict = await judge(group.tests.find((vector) => vector.tcId === tcId)!.jws, keySet);
        assert.equal(verdict.stage, 'accepted', `${verdict.reason} ${verdict.detail}`);
      } finally {
        keySet.close();
      }
    }
  });
});
