// SECURITY.md §2.1 (RFC 8725), §2.2 (RFC 9068) and §2.6 (RFC 6750), item by item, through HTTP:
// a real gateway, an issuer whose JWKS file holds keys generated for this run, tokens forged
// byte by byte. Every refusal is checked for its status, public code, RFC 6750 challenge and the
// precise reason on the decision record; nothing refused reaches the upstream.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { request } from 'undici';
import { startHarness } from '../helpers/harness.ts';
import type { Harness } from '../helpers/harness.ts';
import { accessToken, b64url, forge, generateTestKey, jwks, signRaw, signingInput, standardClaims } from '../helpers/tokens.ts';
import type { TestKey } from '../helpers/tokens.ts';

const ISS = 'https://idp.example.test';
const OTHER_ISS = 'https://other-idp.example.test';
const AUD = 'https://api.example.test/orders';
const BILLING_AUD = 'https://api.example.test/billing';

let h: Harness;
let rsa: TestKey;
let ec: TestKey;
let otherEc: TestKey;
let jkuHits = 0;
let jkuServer: ReturnType<typeof createServer>;
let jkuUrl: string;

const config = () => `
version: 1
listeners:
  - name: api
    zone: partner
    port: 0
    hostnames: [api.example.test]
upstreams:
  - id: sample
    url: {{UPSTREAM}}
issuers:
  - id: idp
    issuer: ${ISS}
    jwks_file: idp.jwks.json
    algorithms: [RS256, ES256]
    max_token_lifetime: 1h
  - id: other
    issuer: ${OTHER_ISS}
    jwks_file: other.jwks.json
    algorithms: [ES256]
apis:
  - id: orders
    audience: ${AUD}
  - id: billing
    audience: ${BILLING_AUD}
routes:
  - id: orders
    zone: partner
    methods: [GET, POST]
    path: /orders
    upstream: sample
    api: orders
    scopes: [orders:read]
  - id: orders-admin
    zone: partner
    methods: [GET]
    path: /orders/admin
    upstream: sample
    api: orders
    scopes: [orders:admin]
  - id: billing
    zone: partner
    methods: [GET]
    path: /billing
    upstream: sample
    api: billing
    scopes: [billing:read]
partners:
  - id: acme
    agreement: { id: AGR-ACME-1, expires: 2099-12-31 }
    credentials:
      - { id: acme-idp, type: jwt, issuer: idp, client_id: acme }
    grants:
      - { api: orders, scopes: [orders:read, orders:write] }
      - { api: billing, scopes: [billing:read] }
  - id: globex
    status: suspended
    agreement: { id: AGR-GLOBEX-1, expires: 2099-12-31 }
    credentials:
      - { id: globex-idp, type: jwt, issuer: idp, client_id: globex }
    grants:
      - { api: orders, scopes: [orders:read] }
  - id: initech
    agreement: { id: AGR-INITECH-1, expires: 2020-01-31 }
    credentials:
      - { id: initech-idp, type: jwt, issuer: idp, client_id: initech }
    grants:
      - { api: orders, scopes: [orders:read] }
  - id: other-partner
    agreement: { id: AGR-OTHER, expires: 2099-12-31 }
    credentials:
      - { id: other-cred, type: jwt, issuer: other, client_id: acme }
    grants:
      - { api: orders, scopes: [orders:read] }
`;

before(async () => {
  rsa = generateTestKey('RS256');
  ec = generateTestKey('ES256');
  otherEc = generateTestKey('ES256');
  jkuServer = createServer((_req, res) => {
    jkuHits++;
    res.end(jwks(rsa));
  });
  await new Promise<void>((resolve) => jkuServer.listen(0, '127.0.0.1', resolve));
  jkuUrl = `http://127.0.0.1:${(jkuServer.address() as AddressInfo).port}/jwks`;
  h = await startHarness(config(), { files: { 'idp.jwks.json': jwks(rsa, ec), 'other.jwks.json': jwks(otherEc) } });
});
after(async () => {
  await h?.close();
  jkuServer.close();
});

const good = (overrides: Partial<Parameters<typeof standardClaims>[0]> = {}) => ({ iss: ISS, aud: AUD, clientId: 'acme', scope: 'orders:read', ...overrides });

interface Result {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: any;
  reason: string;
}

async function call(headers: Record<string, string | string[]>, path = '/orders', method = 'GET', body?: string): Promise<Result> {
  const response = await request(`${h.url('api')}${path}`, { method, headers: { host: 'api.example.test', ...headers }, ...(body !== undefined ? { body } : {}) });
  const text = await response.body.text();
  const requestId = response.headers['x-request-id'] as string;
  let reason = '';
  for (let i = 0; i < 60 && reason === ''; i++) {
    reason = (await h.records()).find((record) => record.http.request.id === requestId)?.event.reason ?? '';
  }
  return { status: response.statusCode, headers: response.headers as Result['headers'], body: text.startsWith('{') ? JSON.parse(text) : text, reason };
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

async function expectRefused(result: Result, status: number, code: string, reason: string | RegExp): Promise<void> {
  assert.equal(result.status, status, JSON.stringify(result.body));
  assert.equal(result.body.code, code);
  if (typeof reason === 'string') assert.equal(result.reason, reason);
  else assert.match(result.reason, reason);
  assert.equal(result.headers['cache-control'], 'no-store', 'ER-08: refusals are never cached');
  if (status === 401 && code === 'invalid_token') {
    assert.match(String(result.headers['www-authenticate']), /^Bearer realm="portcullis", error="invalid_token"/);
  }
}

async function invalidToken(token: string, reason: string | RegExp, path = '/orders'): Promise<void> {
  const before = h.upstream.seen.length;
  await expectRefused(await call(bearer(token), path), 401, 'invalid_token', reason);
  assert.equal(h.upstream.seen.length, before, 'never forwarded');
}

describe('accepted tokens', () => {
  test('an RS256 and an ES256 at+jwt with the scope, for this audience, of a bound partner: 200, recorded with partner, agreement, credential, jti', async () => {
    for (const key of [rsa, ec]) {
      const result = await call(bearer(accessToken(key, good())));
      assert.equal(result.status, 200, JSON.stringify(result.body));
      assert.equal(result.reason, 'allowed');
    }
    const record = (await h.records()).at(-1)!;
    assert.equal(record.portcullis.partner.id, 'acme');
    assert.equal(record.portcullis.agreement.id, 'AGR-ACME-1');
    assert.equal(record.portcullis.credential.id, 'acme-idp');
    assert.equal(record.portcullis.credential.type, 'jwt');
    assert.equal(record.portcullis.credential.long_lived, false);
    assert.equal(record.portcullis.token.iss, ISS);
    assert.match(record.portcullis.token.jti, /^[0-9a-f-]{36}$/);
    assert.deepEqual(record.portcullis.scopes, ['orders:read']);
    assert.match(record.portcullis.decided_by, /^partner\/acme\/grant\/orders#0$/);
  });

  test('the upstream gets the verified identity, never the partner\'s token', async () => {
    const token = accessToken(rsa, good());
    const result = await call({ ...bearer(token), 'x-portcullis-partner': 'globex' });
    assert.equal(result.status, 200);
    const seen = h.upstream.seen.at(-1)!.headers;
    assert.equal(seen['authorization'], undefined);
    assert.equal(seen['x-portcullis-partner'], 'acme');
    assert.equal(seen['x-portcullis-credential'], 'acme-idp');
    assert.equal(seen['x-portcullis-agreement'], 'AGR-ACME-1');
    assert.equal(seen['x-portcullis-scopes'], 'orders:read');
    // Scopes the token carries beyond the partner's grant are not passed on as if granted.
    const wider = await call(bearer(accessToken(rsa, good({ scope: 'orders:read orders:admin profile' }))));
    assert.equal(wider.status, 200);
    assert.equal(h.upstream.seen.at(-1)!.headers['x-portcullis-scopes'], 'orders:read');
  });

  test('ER-05: the scheme is case-insensitive', async () => {
    for (const scheme of ['bearer', 'BEARER', 'BeArEr']) {
      assert.equal((await call({ authorization: `${scheme} ${accessToken(rsa, good())}` })).status, 200);
    }
  });

  test('AT-01: typ application/at+jwt and AT+JWT are accepted', async () => {
    assert.equal((await call(bearer(accessToken(rsa, good(), { typ: 'application/at+jwt' })))).status, 200);
    assert.equal((await call(bearer(accessToken(rsa, good(), { typ: 'AT+JWT' })))).status, 200);
  });

  test('JWT-18: exp within the leeway is still accepted', async () => {
    const now = Math.floor(Date.now() / 1000);
    assert.equal((await call(bearer(accessToken(rsa, good(), {}, { iat: now - 300, exp: now - 10 })))).status, 200);
  });
});

describe('RFC 6750 (SECURITY.md §2.6)', () => {
  test('ER-01: no credential → 401 with a Bearer challenge and no error', async () => {
    const result = await call({});
    await expectRefused(result, 401, 'credential_missing', 'token.missing');
    // Both schemes are offered (RFC 9449 §7.1, SECURITY.md DP-07), neither with an error.
    assert.match(String(result.headers['www-authenticate']), /^Bearer realm="portcullis"(, resource_metadata="[^"]+")?, DPoP algs="[A-Za-z0-9 ]+"$/);
    assert.doesNotMatch(String(result.headers['www-authenticate']), /error|scope=/);
  });

  test('ER-02: two Authorization headers → 400 invalid_request', async () => {
    const token = accessToken(rsa, good());
    const result = await call({ authorization: [`Bearer ${token}`, `Bearer ${token}`] });
    await expectRefused(result, 400, 'invalid_request', 'request.multiple_credentials');
    assert.match(String(result.headers['www-authenticate']), /error="invalid_request"/);
  });

  test('ER-02 / OA-06: a header token plus access_token in the query → 400', async () => {
    const token = accessToken(rsa, good());
    await expectRefused(await call(bearer(token), `/orders?access_token=${token}`), 400, 'invalid_request', 'request.token_in_query');
  });

  test('OA-06 / ER-07: a query token alone is never accepted', async () => {
    const result = await call({}, `/orders?access_token=${accessToken(rsa, good())}`);
    assert.equal(result.status, 400);
    assert.equal(result.reason, 'request.token_in_query');
  });

  test('ER-07: a form-body access_token is not a credential', async () => {
    const result = await call({ 'content-type': 'application/x-www-form-urlencoded' }, '/orders', 'POST', `access_token=${accessToken(rsa, good())}`);
    await expectRefused(result, 401, 'credential_missing', 'token.missing');
  });

  test('ER-05: malformed Authorization values → 401 invalid_token', async () => {
    const token = accessToken(rsa, good());
    for (const value of [`Bearer  ${token}`, `Bearer ${token} extra`, `Bearer`, `Basic YWxhZGRpbjpvcGVuc2VzYW1l`, `Token ${token}`, 'Bearer a"b']) {
      const result = await call({ authorization: value });
      assert.equal(result.status, 401, value);
      assert.equal(result.body.code, 'invalid_token', value);
    }
  });

  test('ER-04: a valid token without the scope → 403 insufficient_scope with scope', async () => {
    const result = await call(bearer(accessToken(rsa, good({ scope: 'orders:write' }))));
    await expectRefused(result, 403, 'insufficient_scope', 'scope.insufficient');
    assert.match(String(result.headers['www-authenticate']), /error="insufficient_scope", scope="orders:read"/);
  });

  test('ER-06: error responses never echo the token, the kid, or key material', async () => {
    const token = accessToken(rsa, good(), { kid: 'secret-kid-value' });
    const result = await call(bearer(token));
    const everything = JSON.stringify(result.body) + JSON.stringify(result.headers);
    assert.equal(everything.includes('secret-kid-value'), false);
    assert.equal(everything.includes(token.split('.')[1]!), false);
  });
});

describe('RFC 8725 (SECURITY.md §2.1)', () => {
  test('JWT-01: alg none, HS256 with the public key as secret, and an alg other than the key\'s are refused', async () => {
    const claims = standardClaims(good());
    await invalidToken(`${signingInput({ alg: 'none', typ: 'at+jwt', kid: rsa.kid }, claims)}.`, /^token\.(alg_not_allowed|malformed)$/);
    const { createHmac } = await import('node:crypto');
    const input = signingInput({ alg: 'HS256', typ: 'at+jwt', kid: rsa.kid }, claims);
    const hmac = createHmac('sha256', JSON.stringify(rsa.publicJwk)).update(input).digest();
    await invalidToken(`${input}.${b64url(hmac)}`, 'token.alg_not_allowed');
    // ES256 is allowed for the issuer, but the kid names the RSA key.
    const confused = signingInput({ alg: 'ES256', typ: 'at+jwt', kid: rsa.kid }, claims);
    await invalidToken(`${confused}.${b64url(signRaw(ec, 'ES256', confused))}`, /^token\.(alg_not_allowed|kid_unknown|signature_invalid)$/);
    // PS256 is a fine algorithm, but not configured for this issuer.
    await invalidToken(forge(rsa, { alg: 'PS256', typ: 'at+jwt', kid: rsa.kid }, claims), 'token.alg_not_allowed');
  });

  test('JWT-02: kid is an opaque lookup key: traversal strings and oversize kids find nothing', async () => {
    await invalidToken(accessToken(rsa, good(), { kid: '../../../../etc/passwd' }), 'token.kid_unknown');
    await invalidToken(accessToken(rsa, good(), { kid: "x' OR '1'='1" }), 'token.kid_unknown');
    await invalidToken(accessToken(rsa, good(), { kid: 'k'.repeat(300) }), 'token.malformed');
  });

  test('JWT-03: jku, x5u, jwk, x5c are refused and never fetched', async () => {
    await invalidToken(accessToken(rsa, good(), { jku: jkuUrl }), 'token.header_param_forbidden');
    await invalidToken(accessToken(rsa, good(), { x5u: jkuUrl }), 'token.header_param_forbidden');
    await invalidToken(accessToken(rsa, good(), { jwk: rsa.publicJwk }), 'token.header_param_forbidden');
    await invalidToken(accessToken(rsa, good(), { x5c: ['MIIB'] }), 'token.header_param_forbidden');
    assert.equal(jkuHits, 0, 'no outbound request to a URL found in a token');
  });

  test('JWT-04: JWE (five segments) and nested JWTs are refused', async () => {
    await invalidToken('eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d', 'token.jwe_unsupported');
    await invalidToken(accessToken(rsa, good(), { enc: 'A256GCM' }), 'token.jwe_unsupported');
    await invalidToken(accessToken(rsa, good(), { cty: 'JWT' }), 'token.nested_unsupported');
  });

  test('JWT-05: a JWKS with a weak key is refused at reload; the running keys keep serving', async () => {
    const weak = generateTestKey('RS256', 'weak', 1024);
    await writeFile(`${h.dir}/idp.jwks.json`, jwks(rsa, ec, weak));
    const result = await h.gateway.reload();
    assert.equal(result.ok, false);
    if (!result.ok) assert.ok(result.issues.some((issue) => issue.path.includes('jwks_file')), JSON.stringify(result.issues));
    assert.equal((await call(bearer(accessToken(rsa, good())))).status, 200);
    await writeFile(`${h.dir}/idp.jwks.json`, jwks(rsa, ec));
  });

  test('JWT-06: invalid UTF-8 or a BOM in the header or claims is refused', async () => {
    const header = b64url(JSON.stringify({ alg: 'RS256', typ: 'at+jwt', kid: rsa.kid }));
    const badUtf8 = Buffer.concat([Buffer.from('{"iss":"'), Buffer.from([0xc3, 0x28]), Buffer.from(`","x":1}`)]);
    const input1 = `${header}.${b64url(badUtf8)}`;
    await invalidToken(`${input1}.${b64url(signRaw(rsa, 'RS256', input1))}`, 'token.encoding');
    const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(standardClaims(good())))]);
    const input2 = `${header}.${b64url(bom)}`;
    await invalidToken(`${input2}.${b64url(signRaw(rsa, 'RS256', input2))}`, 'token.encoding');
  });

  test('JWT-07: iss is compared exactly, and only the issuer\'s own keys verify its tokens', async () => {
    await invalidToken(accessToken(rsa, good({ iss: 'https://IDP.example.test' })), 'token.issuer_unknown');
    await invalidToken(accessToken(rsa, good({ iss: `${ISS}/` })), 'token.issuer_unknown');
    // iss = idp, but signed with the other issuer's key and its kid.
    await invalidToken(accessToken(otherEc, good()), 'token.kid_unknown');
    // iss = other, signed with idp's EC key under its kid.
    await invalidToken(accessToken(ec, good({ iss: OTHER_ISS })), 'token.kid_unknown');
  });

  test('JWT-08 / AT-04: aud is required and must contain this API\'s audience exactly', async () => {
    const claims = standardClaims(good());
    const { aud: _aud, ...withoutAud } = claims;
    await invalidToken(forge(rsa, { alg: 'RS256', typ: 'at+jwt', kid: rsa.kid }, withoutAud), 'token.claim_missing');
    await invalidToken(accessToken(rsa, good({ aud: [] })), 'token.claim_invalid');
    await invalidToken(accessToken(rsa, good(), {}, { aud: [AUD, 42] }), 'token.claim_invalid');
    await invalidToken(accessToken(rsa, good({ aud: `${AUD}/` })), 'token.aud_mismatch');
    assert.equal((await call(bearer(accessToken(rsa, good({ aud: ['https://elsewhere.test', AUD] }))))).status, 200);
  });

  test('JWT-09 / AT-01 / JWT-10: typ must be at+jwt — JWT, absent, dpop+jwt are refused', async () => {
    await invalidToken(accessToken(rsa, good(), { typ: 'JWT' }), 'token.typ_invalid');
    await invalidToken(forge(rsa, { alg: 'RS256', kid: rsa.kid }, standardClaims(good())), 'token.typ_invalid');
    await invalidToken(accessToken(rsa, good(), { typ: 'dpop+jwt' }), 'token.typ_invalid');
  });

  test('JWT-11: a token minted for another API is refused here', async () => {
    await invalidToken(accessToken(rsa, good({ aud: BILLING_AUD, scope: 'billing:read orders:read' })), 'token.aud_mismatch');
    assert.equal((await call(bearer(accessToken(rsa, good({ aud: BILLING_AUD, scope: 'billing:read' }))), '/billing')).status, 200);
  });

  test('JWT-13: duplicate members in the header or the claims are refused, also when escaped', async () => {
    const header = `{"alg":"RS256","typ":"at+jwt","kid":"${rsa.kid}","\\u0061lg":"none"}`;
    await invalidToken(forge(rsa, header, standardClaims(good())), 'token.duplicate_member');
    const claims = JSON.stringify(standardClaims(good())).replace(/}$/, `,"aud":"${AUD}"}`);
    await invalidToken(forge(rsa, { alg: 'RS256', typ: 'at+jwt', kid: rsa.kid }, claims), 'token.duplicate_member');
  });

  test('JWT-14: crit and b64 are refused', async () => {
    await invalidToken(accessToken(rsa, good(), { crit: ['exp'] }), 'token.crit_unsupported');
    await invalidToken(accessToken(rsa, good(), { crit: [] }), 'token.crit_unsupported');
    await invalidToken(accessToken(rsa, good(), { b64: false }), 'token.header_param_forbidden');
  });

  test('JWT-15: only strict compact base64url with a signature of the right length', async () => {
    const token = accessToken(ec, good());
    const [h1, p1, s1] = token.split('.') as [string, string, string];
    await invalidToken(`${h1}.${p1}.`, /^token\.(malformed|encoding)$/);
    await invalidToken(`${h1}=.${p1}.${s1}`, 'request.authorization_malformed');
    await invalidToken(`${h1}.${p1}.${s1.replaceAll('-', '+')}${s1.includes('-') ? '' : '+'}`, /^(token\.(encoding|malformed)|request\.authorization_malformed)$/);
    await invalidToken(`${h1}.${p1}.${b64url(Buffer.concat([Buffer.from(s1, 'base64url'), Buffer.from([0])]))}`, 'token.signature_invalid');
    await invalidToken(`${h1}.${p1}.${s1}.x`, /^token\.(malformed|jwe_unsupported)$/);
    // Non-canonical trailing bits: the same bytes, another spelling.
    const last = s1.at(-1)!;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const sibling = alphabet[(alphabet.indexOf(last) ^ 1)]!;
    if (Buffer.from(s1.slice(0, -1) + sibling, 'base64url').equals(Buffer.from(s1, 'base64url'))) {
      await invalidToken(`${h1}.${p1}.${s1.slice(0, -1)}${sibling}`, 'token.encoding');
    }
  });

  test('JWT-16: the signature is checked before the claims: a forged, expired token is a signature failure', async () => {
    const now = Math.floor(Date.now() / 1000);
    const forged = accessToken(otherEc, good(), { kid: ec.kid }, { exp: now - 3600, iat: now - 7200 });
    await invalidToken(forged, 'token.signature_invalid');
  });

  test('JWT-17: size and structure are bounded before any crypto', async () => {
    await invalidToken(accessToken(rsa, good(), {}, { padding: 'x'.repeat(9000) }), 'token.too_large');
    let deep: unknown = 1;
    for (let i = 0; i < 20; i++) deep = { d: deep };
    await invalidToken(accessToken(rsa, good(), {}, { deep }), 'token.malformed');
  });

  test('JWT-18: time claims are finite numbers, checked with leeway', async () => {
    const now = Math.floor(Date.now() / 1000);
    await invalidToken(accessToken(rsa, good(), {}, { exp: String(now + 300) }), 'token.claim_invalid');
    await invalidToken(accessToken(rsa, good(), {}, { exp: null }), 'token.claim_invalid');
    await invalidToken(accessToken(rsa, good(), {}, { exp: 2 ** 60 }), /^token\.(claim_invalid|lifetime_too_long)$/);
    await invalidToken(accessToken(rsa, good(), {}, { iat: now - 600, exp: now - 120 }), 'token.expired');
    await invalidToken(accessToken(rsa, good(), {}, { nbf: now + 600 }), 'token.not_yet_valid');
    await invalidToken(accessToken(rsa, good(), {}, { iat: now + 600, exp: now + 900 }), 'token.iat_future');
  });

  test('JWT-19: a lifetime above the issuer\'s maximum is refused', async () => {
    await invalidToken(accessToken(rsa, good({ lifetime: 2 * 3600 })), 'token.lifetime_too_long');
  });

  test('JWT-20: prototype names never satisfy a scope or a claim', async () => {
    const claims = standardClaims(good());
    delete claims['scope'];
    const payload = JSON.stringify(claims).replace(/}$/, ',"__proto__":{"scope":"orders:read"},"constructor":{"scope":"orders:read"}}');
    const result = await call(bearer(forge(rsa, { alg: 'RS256', typ: 'at+jwt', kid: rsa.kid }, payload)));
    await expectRefused(result, 403, 'insufficient_scope', 'scope.insufficient');
    await invalidToken(accessToken(rsa, good({ clientId: '__proto__' })), 'credential.unknown');
  });
});

describe('RFC 9068 (SECURITY.md §2.2)', () => {
  test('AT-02: each required claim is required', async () => {
    for (const claim of ['iss', 'exp', 'aud', 'sub', 'client_id', 'iat', 'jti']) {
      const claims = standardClaims(good());
      delete claims[claim];
      await invalidToken(forge(rsa, { alg: 'RS256', typ: 'at+jwt', kid: rsa.kid }, claims), claim === 'iss' ? 'token.issuer_unknown' : 'token.claim_missing');
    }
  });

  test('AT-03 / AT-05: only keys published for the issuer, never alg none', async () => {
    const stranger = generateTestKey('RS256', rsa.kid);
    await invalidToken(accessToken(stranger, good()), 'token.signature_invalid');
  });

  test('AT-06: now ≥ exp (beyond the leeway) is refused', async () => {
    const now = Math.floor(Date.now() / 1000);
    await invalidToken(accessToken(rsa, good(), {}, { iat: now - 400, exp: now - 60 }), 'token.expired');
  });

  test('AT-07: scope is a space-delimited string with exact tokens', async () => {
    await invalidToken(accessToken(rsa, good(), {}, { scope: ['orders:read'] }), 'token.claim_invalid');
    for (const scope of ['orders:read:all', 'orders:rea', 'Orders:read', 'orders:read,orders:write']) {
      await expectRefused(await call(bearer(accessToken(rsa, good({ scope })))), 403, 'insufficient_scope', 'scope.insufficient');
    }
    assert.equal((await call(bearer(accessToken(rsa, good({ scope: 'profile orders:read other' }))))).status, 200);
  });

  test('AT-08: failures are RFC 6750 errors (one public code for every token problem)', async () => {
    const reasons = new Set<string>();
    for (const token of [accessToken(rsa, good({ aud: 'x' })), accessToken(rsa, good(), { typ: 'JWT' }), accessToken(otherEc, good(), { kid: ec.kid })]) {
      const result = await call(bearer(token));
      assert.equal(result.status, 401);
      assert.equal(result.body.code, 'invalid_token');
      reasons.add(result.reason);
    }
    assert.equal(reasons.size, 3, 'the record keeps the precise reason');
  });
});

describe('RFC 9728 protected-resource metadata', () => {
  test('the API\'s metadata is served at its well-known URL and named in every challenge', async () => {
    const response = await request(`${h.url('api')}/.well-known/oauth-protected-resource/orders`, { headers: { host: 'api.example.test' } });
    assert.equal(response.statusCode, 200);
    const document = (await response.body.json()) as Record<string, unknown>;
    assert.equal(document['resource'], AUD);
    assert.deepEqual(document['authorization_servers'], [ISS, OTHER_ISS]);
    assert.deepEqual(document['scopes_supported'], ['orders:admin', 'orders:read']);
    assert.deepEqual(document['bearer_methods_supported'], ['header']);
    const challenge = String((await call({})).headers['www-authenticate']);
    assert.match(challenge, /resource_metadata="https:\/\/api\.example\.test\/\.well-known\/oauth-protected-resource\/orders"/);
    const record = (await h.records()).find((entry) => entry.url.path === '/.well-known/oauth-protected-resource/orders');
    assert.equal(record?.event.reason, 'gateway.resource_metadata');
    const unknown = await request(`${h.url('api')}/.well-known/oauth-protected-resource/nothing`, { headers: { host: 'api.example.test' } });
    assert.equal(unknown.statusCode, 404);
    await unknown.body.dump();
  });
});

describe('partner binding', () => {
  test('a valid token whose client id belongs to no partner credential → 401', async () => {
    await invalidToken(accessToken(rsa, good({ clientId: 'nobody' })), 'credential.unknown');
  });

  test('the same client id at another issuer is another partner', async () => {
    const result = await call(bearer(accessToken(otherEc, good({ iss: OTHER_ISS }))));
    assert.equal(result.status, 200);
    assert.equal((await h.records()).at(-1)!.portcullis.partner.id, 'other-partner');
  });

  test('a suspended partner and an expired agreement are refused with their own codes', async () => {
    await expectRefused(await call(bearer(accessToken(rsa, good({ clientId: 'globex' })))), 403, 'partner_suspended', 'partner.suspended');
    await expectRefused(await call(bearer(accessToken(rsa, good({ clientId: 'initech' })))), 403, 'agreement_expired', 'partner.agreement_expired');
  });

  test('no grant for the route\'s API → 403 grant_denied', async () => {
    const result = await call(bearer(accessToken(otherEc, good({ iss: OTHER_ISS, aud: BILLING_AUD, scope: 'billing:read' }))), '/billing');
    await expectRefused(result, 403, 'grant_denied', 'grant.missing');
  });

  test('a scope the token carries but the grant does not include → 403 grant_denied (a token cannot widen a grant)', async () => {
    const result = await call(bearer(accessToken(rsa, good({ scope: 'orders:read orders:admin' }))), '/orders/admin');
    await expectRefused(result, 403, 'grant_denied', 'grant.scope_not_granted');
  });
});
