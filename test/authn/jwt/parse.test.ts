/**
 * The strict compact-JWS parse that runs before any crypto (SECURITY.md JWT-04, -06, -13, -14,
 * -15, -17). Signatures here are arbitrary bytes: nothing in this layer checks them.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_JWS_PARSE_LIMITS, decodeStrictBase64url, parseJws, parseJwt } from '../../../src/authn/jwt/parse.ts';

const b64url = (data: string | Uint8Array): string => Buffer.from(data).toString('base64url');
const part = (value: object | string): string => b64url(typeof value === 'string' ? value : JSON.stringify(value));
const SIGNATURE = b64url(new Uint8Array(64).fill(7));
const compact = (header: object | string, payload: object | string, signature = SIGNATURE): string => `${part(header)}.${part(payload)}.${signature}`;

function refusal(result: ReturnType<typeof parseJws>): string {
  assert.equal(result.ok, false, 'expected a refusal');
  return result.ok ? '' : result.reason;
}

describe('parseJwt', () => {
  it('returns the header and payload as null-prototype objects, the signing input and the signature bytes', () => {
    const token = compact({ alg: 'ES256', typ: 'at+jwt', kid: 'key 1' }, { iss: 'https://i.example', n: [1, { m: null }] });
    const parsed = parseJwt(token);
    assert.ok(parsed.ok);
    assert.equal(parsed.alg, 'ES256');
    assert.equal(parsed.kid, 'key 1');
    assert.equal(Object.getPrototypeOf(parsed.header), null);
    assert.equal(Object.getPrototypeOf(parsed.payload), null);
    assert.equal(Object.getPrototypeOf((parsed.payload['n'] as unknown[])[1]), null);
    assert.equal(parsed.payload['iss'], 'https://i.example');
    assert.equal(parsed.signingInput, token.slice(0, token.lastIndexOf('.')));
    assert.deepEqual(Buffer.from(parsed.signature), Buffer.alloc(64, 7));
    assert.deepEqual(parsed.encoded, { header: token.split('.')[0], payload: token.split('.')[1], signature: SIGNATURE });
  });

  it('JWT-17: checks the length first: a token of exactly the limit passes, one more character does not', () => {
    const token = compact({ alg: 'ES256' }, { pad: 'x'.repeat(100) });
    const atLimit = { ...DEFAULT_JWS_PARSE_LIMITS, maxTokenLength: token.length };
    assert.ok(parseJwt(token, atLimit).ok);
    assert.equal(refusal(parseJwt(token, { ...atLimit, maxTokenLength: token.length - 1 })), 'token.too_large');
    // the size is judged before the shape
    assert.equal(refusal(parseJwt('$'.repeat(8193))), 'token.too_large');
    assert.equal(refusal(parseJwt('$'.repeat(8192))), 'token.malformed');
    assert.equal(DEFAULT_JWS_PARSE_LIMITS.maxTokenLength, 8192);
  });

  it('JWT-15 / JWT-04: counts segments exactly (five is a JWE)', () => {
    assert.equal(refusal(parseJwt('a.b.c.d.e')), 'token.jwe_unsupported');
    for (const token of ['abc', 'a.b', 'a.b.c.d', 'a.b.c.d.e.f', '.'.repeat(40)]) assert.equal(refusal(parseJwt(token)), 'token.malformed');
    const detail = parseJwt('.'.repeat(40));
    assert.ok(!detail.ok && /41 segments/.test(detail.detail));
  });

  it('JWT-15: the header and signature must not be empty; an empty payload is a JWS but not a JWT', () => {
    assert.equal(refusal(parseJwt(`.${part({})}.${SIGNATURE}`)), 'token.malformed');
    assert.equal(refusal(parseJwt(`${part({ alg: 'ES256' })}.${part({})}.`)), 'token.malformed');
    const emptyPayload = `${part({ alg: 'ES256' })}..${SIGNATURE}`;
    assert.ok(parseJws(emptyPayload).ok);
    assert.equal(refusal(parseJwt(emptyPayload)), 'token.malformed');
  });

  it('JWT-06 / JWT-13: the payload must be a UTF-8 JSON object without duplicate members', () => {
    const header = { alg: 'ES256' };
    for (const payload of ['[]', '"text"', '42', 'null', '{"a":1}{}', '{"a":1', 'It\u2019s a dangerous business']) {
      assert.equal(refusal(parseJwt(compact(header, payload))), 'token.malformed', payload);
    }
    assert.equal(refusal(parseJwt(compact(header, '{"a":1,"a":1}'))), 'token.duplicate_member');
    assert.equal(refusal(parseJwt(`${part(header)}.${b64url(new Uint8Array([0x7b, 0xff, 0x7d]))}.${SIGNATURE}`)), 'token.encoding');
  });

  it('the header must be a JSON object with a non-empty "alg" string', () => {
    for (const header of ['[]', '"ES256"', 'null', '{}', '{"alg":null}', '{"alg":""}', '{"alg":["ES256"]}', '{"alg":256}']) {
      assert.equal(refusal(parseJwt(compact(header, {}))), 'token.malformed', header);
    }
  });

  it('JWT-02: kid is printable ASCII of 1 to 256 characters', () => {
    for (const kid of [' ', '~', 'a b', 'k'.repeat(256), 'urn:x:y/z?q=1#f']) assert.ok(parseJwt(compact({ alg: 'ES256', kid }, {})).ok, kid);
    for (const kid of ['', '\u007f', '\u0000', 'a\u200bb', 'k'.repeat(257), 1, null, ['k'], { k: 1 }]) {
      assert.equal(refusal(parseJwt(compact({ alg: 'ES256', kid }, {}))), 'token.malformed', JSON.stringify(kid));
    }
  });

  it('JWT-03 / JWT-14: forbidden header parameters are refused whatever their value', () => {
    for (const name of ['jku', 'x5u', 'jwk', 'x5c', 'b64']) {
      for (const value of [null, false, '', 'https://attacker.example/']) {
        assert.equal(refusal(parseJwt(compact({ alg: 'ES256', [name]: value }, {}))), 'token.header_param_forbidden', `${name}: ${value}`);
      }
    }
    for (const crit of [null, [], ['exp'], 'exp']) assert.equal(refusal(parseJwt(compact({ alg: 'ES256', crit }, {}))), 'token.crit_unsupported');
  });

  it('JWT-20: a "__proto__" header member is an own member, never a prototype that supplies "jku"', () => {
    const parsed = parseJwt(compact('{"alg":"ES256","__proto__":{"jku":"https://attacker.example/"}}', {}));
    assert.ok(parsed.ok);
    assert.equal(Object.getPrototypeOf(parsed.header), null);
    assert.equal(parsed.header['jku'], undefined);
  });

  it('cty other than JWT is allowed; cty JWT in any case is a nested token', () => {
    assert.ok(parseJwt(compact({ alg: 'ES256', cty: 'json' }, {})).ok);
    for (const cty of ['JWT', 'Jwt', 'APPLICATION/JWT']) assert.equal(refusal(parseJwt(compact({ alg: 'ES256', cty }, {}))), 'token.nested_unsupported');
  });

  it('honours custom depth and member limits', () => {
    const limits = { maxTokenLength: 8192, maxDepth: 2, maxMembers: 3 };
    assert.ok(parseJwt(compact({ alg: 'ES256' }, { a: { b: 1 } }), limits).ok);
    assert.equal(refusal(parseJwt(compact({ alg: 'ES256' }, { a: { b: [1] } }), limits)), 'token.malformed');
    assert.equal(refusal(parseJwt(compact({ alg: 'ES256' }, { a: 1, b: 2, c: 3, d: 4 }), limits)), 'token.malformed');
  });
});

describe('decodeStrictBase64url', () => {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

  it('JWT-15: accepts exactly one spelling of every byte string (exhaustive over 1 and 2 bytes)', () => {
    let twoChar = 0;
    for (const a of alphabet) {
      for (const b of alphabet) {
        const decoded = decodeStrictBase64url(a + b);
        if (decoded === null) continue;
        twoChar++;
        assert.equal(b64url(decoded), a + b);
      }
    }
    assert.equal(twoChar, 256);
    let threeChar = 0;
    for (const a of alphabet) {
      for (const b of alphabet) {
        for (const c of alphabet) if (decodeStrictBase64url(a + b + c) !== null) threeChar++;
      }
    }
    assert.equal(threeChar, 65536);
  });

  it('JWT-15: refuses what Buffer.from(…, "base64url") would silently accept', () => {
    for (const lenient of ['YWJj$ZGVm', 'YW=Jj', 'YWJj+ZGV', 'YWJj/ZGV', 'YWJjZA==', 'YWJj ZGVm', 'YWJjZ', 'A', 'AAAAA', '', '\u0100AAA']) {
      assert.equal(decodeStrictBase64url(lenient), null, JSON.stringify(lenient));
    }
    assert.deepEqual(Buffer.from(decodeStrictBase64url('YWJjZGVm')!), Buffer.from('abcdef'));
  });
});
