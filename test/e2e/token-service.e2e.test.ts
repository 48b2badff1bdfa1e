// Issue 5 through a real gateway: a partner client obtains a DPoP-bound token from the
// gateway's own token service with private_key_jwt, calls a route with it, cannot use it on
// another API, revokes it (RFC 7009) and sees it refused on its next use; JWKS and RFC 8414
// metadata are served; the gateway trusts its own tokens with no network round trip.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { request } from 'undici';
import { SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import type { CryptoKey, JWK } from 'jose';
import { startHarness } from '../helpers/harness.ts';
import type { Harness } from '../helpers/harness.ts';

const ISSUER = 'https://gw.example.test';
const HOST = 'gw.example.test';
const ORDERS = 'https://api.example.test/orders';
const BILLING = 'https://api.example.test/billing';

let h: Harness;
let clientKey: CryptoKey;
let clientJwk: JWK;
let dpopKey: CryptoKey;
let dpopJwk: JWK;

before(async () => {
  ({ privateKey: clientKey } = await generateKeyPair('ES256', { extractable: true }).then(async (pair) => {
    clientJwk = { ...(await exportJWK(pair.publicKey)), kid: 'client-1', alg: 'ES256', use: 'sig' };
    return pair;
  }));
  const dpop = await generateKeyPair('ES256');
  dpopKey = dpop.privateKey;
  dpopJwk = await exportJWK(dpop.publicKey);
  h = await startHarness(
    `
version: 1
abuse: { auth_failures_per_source: off, denials_per_credential: off }
listeners:
  - { name: api, zone: partner, port: 0, hostnames: [${HOST}] }
upstreams:
  - { id: sample, url: "{{UPSTREAM}}" }
token_service: { issuer: "${ISSUER}", listener: api }
apis:
  - { id: orders, audience: "${ORDERS}" }
  - { id: billing, audience: "${BILLING}" }
routes:
  - { id: orders, zone: partner, methods: [GET], path: /orders, upstream: sample, api: orders, scopes: [orders:read] }
  - { id: billing, zone: partner, methods: [GET], path: /billing, upstream: sample, api: billing }
partners:
  - id: acme
    agreement: { id: MSA-1, expires: 2099-12-31 }
    credentials:
      - { id: acme-app, type: client, client_id: acme-app, auth: private_key_jwt, jwks_file: client.jwks }
    grants:
      - { api: orders, scopes: [orders:read] }
      - { api: billing }
`,
    { files: { 'client.jwks': JSON.stringify({ keys: [clientJwk] }) } },
  );
});
after(async () => h?.close());

function assertion(): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'client-1' }).setIssuer('acme-app').setSubject('acme-app').setAudience(ISSUER).setIssuedAt(now).setExpirationTime(now + 60).setJti(randomUUID()).sign(clientKey);
}

async function proof(method: string, htu: string, accessToken?: string): Promise<string> {
  const ath = accessToken ? Buffer.from(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(accessToken))).toString('base64url') : undefined;
  return new SignJWT({ htm: method, htu, jti: randomUUID(), ...(ath ? { ath } : {}) }).setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: dpopJwk }).setIssuedAt().sign(dpopKey);
}

async function post(path: string, form: Record<string, string>, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const response = await request(`${h.url('api')}${path}`, {
    method: 'POST',
    headers: { host: HOST, 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form).toString(),
  });
  const text = await response.body.text();
  return { status: response.statusCode, body: text ? JSON.parse(text) : null };
}

async function token(resource: string, scope?: string): Promise<{ status: number; body: any }> {
  return post(
    '/oauth2/token',
    {
      grant_type: 'client_credentials',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: await assertion(),
      resource,
      ...(scope ? { scope } : {}),
    },
    { dpop: await proof('POST', `${ISSUER}/oauth2/token`) },
  );
}

async function call(path: string, accessToken: string): Promise<{ status: number; code: string | undefined }> {
  const response = await request(`${h.url('api')}${path}`, {
    headers: { host: HOST, authorization: `DPoP ${accessToken}`, dpop: await proof('GET', `http://${HOST}${path}`, accessToken) },
  });
  const text = await response.body.text();
  return { status: response.statusCode, code: text.startsWith('{') ? (JSON.parse(text) as { code?: string }).code : undefined };
}

test('metadata and JWKS are served; a DPoP-bound token for one API is issued and accepted there only', async () => {
  const metadata = await request(`${h.url('api')}/.well-known/oauth-authorization-server`, { headers: { host: HOST } });
  const document = (await metadata.body.json()) as Record<string, unknown>;
  assert.equal(document['issuer'], ISSUER);
  assert.equal(document['token_endpoint'], `${ISSUER}/oauth2/token`);
  const jwksResponse = await request(`${h.url('api')}/oauth2/jwks`, { headers: { host: HOST } });
  assert.equal(jwksResponse.statusCode, 200);
  assert.match(String(jwksResponse.headers['cache-control']), /max-age=/);
  assert.ok(((await jwksResponse.body.json()) as { keys: unknown[] }).keys.length >= 1);

  const issued = await token(ORDERS, 'orders:read');
  assert.equal(issued.status, 200, JSON.stringify(issued.body));
  assert.equal(issued.body.token_type, 'DPoP');
  const claims = JSON.parse(Buffer.from(issued.body.access_token.split('.')[1], 'base64url').toString());
  assert.equal(claims.aud, ORDERS);
  assert.equal(claims.cnf.jkt, await calculateJwkThumbprint(dpopJwk));
  assert.equal(claims.partner_id, 'acme');
  assert.ok(claims.exp - claims.iat <= 300);

  assert.equal((await call('/orders', issued.body.access_token)).status, 200);
  assert.equal(h.upstream.seen.at(-1)!.headers['x-portcullis-credential'], 'acme-app');
  assert.deepEqual(await call('/billing', issued.body.access_token), { status: 401, code: 'invalid_token' });
});

test('a scope the grant does not include is invalid_scope, not a silent cut', async () => {
  const refused = await token(ORDERS, 'orders:read orders:write');
  assert.equal(refused.status, 400);
  assert.equal(refused.body.error, 'invalid_scope');
  // Counted from the audit records: issued and refused, by API and client authentication method.
  const metrics = await (await request(`${h.gateway.addresses().ops}/metrics`)).body.text();
  assert.match(metrics, /portcullis_tokens_issued_total\{api="orders",auth_method="private_key_jwt",result="issued"\} [1-9]/);
  assert.match(metrics, /portcullis_tokens_issued_total\{api="orders",auth_method="private_key_jwt",result="refused"\} [1-9]/);
});

test('a token revoked by its client (RFC 7009) is refused on its next use', async () => {
  const issued = await token(ORDERS, 'orders:read');
  assert.equal((await call('/orders', issued.body.access_token)).status, 200);
  const revoked = await post('/oauth2/revoke', {
    token: issued.body.access_token,
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: await assertion(),
  });
  assert.equal(revoked.status, 200);
  assert.deepEqual(await call('/orders', issued.body.access_token), { status: 401, code: 'invalid_token' });
  const records = await h.records();
  assert.ok(records.some((record) => record.event.reason === 'token.revoked'));
  assert.ok(records.some((record) => record.event.reason === 'gateway.token_service'));
});
