/**
 * `POST /oauth2/token` over real HTTP and HTTPS (mutual TLS), with a configuration through the
 * real loader, a real embedded state store, and a real OAuth client library (openid-client) for
 * the private_key_jwt path: audience and scopes, lifetime, sender constraints (cnf.x5t#S256,
 * cnf.jkt), partner standing, RFC 6749 §5.2 errors, and the audit record of every outcome.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { KeyObject, X509Certificate, createHash, randomUUID, webcrypto } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TLSSocket } from 'node:tls';
import * as oidc from 'openid-client';
import { CompactSign, calculateJwkThumbprint, compactVerify, decodeProtectedHeader, exportJWK, generateKeyPair } from 'jose';
import type { CryptoKey as JoseCryptoKey, JWK } from 'jose';
import { loadConfig } from '../../src/config/load.ts';
import type { Snapshot } from '../../src/config/snapshot.ts';
import { createNonceSource } from '../../src/authn/dpop.ts';
import { createCa, issueClientCertificate, issueServerCertificate } from '../../src/pki/dev-ca.ts';
import type { CertificateAuthority, IssuedCertificate } from '../../src/pki/dev-ca.ts';
import { openEmbeddedStore } from '../../src/state/embedded.ts';
import type { StateStore } from '../../src/state/store.ts';
import { JWT_BEARER_ASSERTION_TYPE } from '../../src/tokens/client-auth.ts';
import { handleTokenRequest } from '../../src/tokens/token-endpoint.ts';
import type { TokenKeys, TokenServiceDeps } from '../../src/tokens/types.ts';
import { forge, generateTestKey } from '../helpers/tokens.ts';
import type { TestKey } from '../helpers/tokens.ts';

const ISSUER = 'https://tokens.example.test';
const ORDERS = 'https://api.example.test/orders';
const BILLING = 'https://api.example.test/billing';

let dir: string;
let snapshot: Snapshot;
let store: StateStore;
let keys: TokenKeys & { readonly verifyKey: JoseCryptoKey };
const records: Array<Record<string, any>> = [];
/** Whether the (test) audit trail accepts records. */
let auditAccepts = true;
let httpServer: Server;
let httpsServer: Server;
let httpUrl: string;
let httpsPort: number;
let serverCa: CertificateAuthority;
let acmeClientCert: IssuedCertificate;
let globexClientCert: IssuedCertificate;
/** Key of the private_key_jwt clients (acme-app, and the suspended and lapsed partners' apps). */
let clientKey: TestKey;
/** The same client key as a WebCrypto key for openid-client. */
let clientCryptoKey: JoseCryptoKey;

/** A minimal TokenKeys on jose (the real one lives in src/tokens/keys.ts): one ES256 key. */
async function testTokenKeys(): Promise<typeof keys> {
  const pair = await generateKeyPair('ES256', { extractable: true });
  const kid = 'test-signing-key';
  const publicJwk = { ...(await exportJWK(pair.publicKey)), kid, alg: 'ES256', use: 'sig' };
  return {
    verifyKey: pair.publicKey,
    async sign(payload, typ) {
      return new CompactSign(new TextEncoder().encode(JSON.stringify(payload))).setProtectedHeader({ alg: 'ES256', typ, kid }).sign(pair.privateKey);
    },
    jwks: () => ({ keys: [publicJwk] }),
    publicKey: () => {
      throw new Error('not used');
    },
    list: () => [],
    rotate: () => Promise.reject(new Error('not used')),
    refresh: () => Promise.resolve(),
    close: () => {},
  };
}

function config(httpsPortValue: number): string {
  return `version: 1
listeners:
  - name: tokens
    zone: partner
    port: ${httpsPortValue}
    hostnames: [tokens.example.test]
    tls: { cert: server.crt, key: server.key, client_certificates: request }
upstreams:
  - { id: backend, url: "http://127.0.0.1:9000" }
apis:
  - { id: orders, audience: "${ORDERS}", token_lifetime: 2m }
  - { id: billing, audience: "${BILLING}" }
  - { id: payroll, audience: "https://api.example.test/payroll" }
token_service: { issuer: "${ISSUER}", listener: tokens, max_token_lifetime: 10m }
partners:
  - id: acme
    agreement: { id: AGR-7, expires: 2099-12-31 }
    mtls: { ca: [acme-ca.crt] }
    credentials:
      - { id: acme-jwt, type: client, client_id: acme-app, auth: private_key_jwt, jwks_file: client.jwks }
      - { id: acme-mtls, type: client, client_id: acme-mtls, auth: tls_client_auth, token_lifetime: 8m }
    grants:
      - { api: orders, scopes: ["orders:read", "orders:write"] }
      - { api: billing, scopes: ["billing:read"] }
  - id: globex
    agreement: { id: AGR-9, expires: 2099-12-31 }
    mtls: { ca: [globex-ca.crt] }
    credentials:
      - { id: globex-mtls, type: client, client_id: globex-mtls, auth: tls_client_auth }
    grants: [{ api: orders, scopes: ["orders:read"] }]
  - id: dormant
    status: suspended
    agreement: { id: AGR-3, expires: 2099-12-31 }
    credentials: [{ id: dormant-jwt, type: client, client_id: dormant-app, auth: private_key_jwt, jwks_file: client.jwks }]
    grants: [{ api: orders, scopes: ["orders:read"] }]
  - id: lapsed
    agreement: { id: AGR-1, expires: 2020-01-01 }
    credentials: [{ id: lapsed-jwt, type: client, client_id: lapsed-app, auth: private_key_jwt, jwks_file: client.jwks }]
    grants: [{ api: orders, scopes: ["orders:read"] }]
`;
}

function handler(scheme: 'http' | 'https', port: () => number) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const deps: TokenServiceDeps = {
      snapshot: () => snapshot,
      store,
      keys,
      audit: (record) => {
        if (!auditAccepts) return false;
        records.push(record as Record<string, any>);
        return true;
      },
      auditHealthy: () => true,
      dpopNonces: createNonceSource({ lifetimeMs: 60_000 }),
    };
    const tlsSocket = req.socket instanceof TLSSocket ? req.socket : null;
    void handleTokenRequest(req, res, { tlsSocket, sourceIp: req.socket.remoteAddress ?? null, endpointUrl: `${scheme}://127.0.0.1:${port()}/oauth2/token` }, deps);
  };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portcullis-token-endpoint-'));
  serverCa = await createCa({ commonName: 'Token service test CA' });
  const acmeCa = await createCa({ commonName: 'Acme Partner CA' });
  const globexCa = await createCa({ commonName: 'Globex Partner CA' });
  const server = await issueServerCertificate(serverCa, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  acmeClientCert = await issueClientCertificate(acmeCa, { commonName: 'acme-orders-client' });
  globexClientCert = await issueClientCertificate(globexCa, { commonName: 'globex-client' });

  const pair = await generateKeyPair('ES256', { extractable: true });
  clientCryptoKey = pair.privateKey;
  clientKey = { kid: 'client-key-1', alg: 'ES256', privateKey: KeyObject.from(pair.privateKey as webcrypto.CryptoKey), publicJwk: { ...(await exportJWK(pair.publicKey)), kid: 'client-key-1', alg: 'ES256', use: 'sig' } };

  await writeFile(join(dir, 'server.crt'), server.certPem);
  await writeFile(join(dir, 'server.key'), server.keyPem);
  await writeFile(join(dir, 'acme-ca.crt'), acmeCa.certPem);
  await writeFile(join(dir, 'globex-ca.crt'), globexCa.certPem);
  await writeFile(join(dir, 'client.jwks'), JSON.stringify({ keys: [clientKey.publicJwk] }));

  store = await openEmbeddedStore({ path: join(dir, 'state.sqlite'), propagationTimeoutMs: 1000 });
  keys = await testTokenKeys();

  httpServer = createHttpServer(handler('http', () => (httpServer.address() as AddressInfo).port));
  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  httpUrl = `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}/oauth2/token`;
  httpsServer = createHttpsServer({ cert: server.certPem, key: server.keyPem, requestCert: true, rejectUnauthorized: false }, handler('https', () => httpsPort));
  await new Promise<void>((resolve) => httpsServer.listen(0, '127.0.0.1', resolve));
  httpsPort = (httpsServer.address() as AddressInfo).port;

  await writeFile(join(dir, 'gateway.yaml'), config(httpsPort));
  const loaded = await loadConfig(join(dir, 'gateway.yaml'), { offline: true });
  assert.ok(loaded.ok, JSON.stringify(!loaded.ok && loaded.issues));
  snapshot = loaded.snapshot;
});

after(async () => {
  httpServer.closeAllConnections();
  httpsServer.closeAllConnections();
  await new Promise((resolve) => httpServer.close(resolve));
  await new Promise((resolve) => httpsServer.close(resolve));
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Record<string, any>;
}

function assertion(overrides: Record<string, unknown> = {}, key: TestKey = clientKey, clientId = 'acme-app'): string {
  const now = Math.floor(Date.now() / 1000);
  return forge(key, { alg: key.alg, kid: key.kid }, { iss: clientId, sub: clientId, aud: ISSUER, iat: now, exp: now + 60, jti: randomUUID(), ...overrides });
}

function form(params: Record<string, string> | string): string {
  return typeof params === 'string' ? params : new URLSearchParams(params).toString();
}

async function postHttp(params: Record<string, string> | string, headers: Record<string, string> = {}): Promise<Answer> {
  const response = await fetch(httpUrl, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: form(params) });
  return { status: response.status, headers: Object.fromEntries(response.headers), body: (await response.json()) as Record<string, any> };
}

function postHttps(params: Record<string, string>, certificate: IssuedCertificate | null, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const body = form(params);
    const request = httpsRequest(
      {
        host: '127.0.0.1',
        port: httpsPort,
        path: '/oauth2/token',
        method: 'POST',
        ca: serverCa.certPem,
        ...(certificate ? { cert: certificate.certPem, key: certificate.keyPem } : {}),
        agent: false,
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body), ...headers },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) }));
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

async function claimsOf(token: string): Promise<Record<string, any>> {
  const { payload, protectedHeader } = await compactVerify(token, keys.verifyKey);
  assert.equal(protectedHeader.typ, 'at+jwt');
  return JSON.parse(new TextDecoder().decode(payload)) as Record<string, any>;
}

function lastRecord(): Record<string, any> {
  return records.at(-1)!;
}

/** RFC 8705 §3.1: base64url SHA-256 of the DER, computed independently of the gateway. */
function x5tOf(certificate: IssuedCertificate): string {
  return createHash('sha256').update(new X509Certificate(certificate.certPem).raw).digest('base64url');
}

function assertError(answer: Answer, status: number, error: string): void {
  assert.equal(answer.status, status, JSON.stringify(answer.body));
  assert.equal(answer.body['error'], error);
  assert.equal(answer.headers['cache-control'], 'no-store');
  assert.equal(answer.body['access_token'], undefined);
}

/** A DPoP proof for the plain-HTTP endpoint, made by jose (RFC 9449 §4.2). */
async function dpopProof(overrides: Record<string, unknown> = {}): Promise<{ proof: string; jkt: string }> {
  const pair = await generateKeyPair('ES256', { extractable: true });
  const jwk: JWK = await exportJWK(pair.publicKey);
  const payload = { jti: randomUUID(), htm: 'POST', htu: httpUrl, iat: Math.floor(Date.now() / 1000), ...overrides };
  const proof = await new CompactSign(new TextEncoder().encode(JSON.stringify(payload))).setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk }).sign(pair.privateKey);
  return { proof, jkt: await calculateJwkThumbprint(jwk, 'sha256') };
}

const jwtParams = (extra: Record<string, string> = {}, assertionText = assertion()): Record<string, string> => ({
  grant_type: 'client_credentials',
  client_assertion_type: JWT_BEARER_ASSERTION_TYPE,
  client_assertion: assertionText,
  resource: ORDERS,
  ...extra,
});

// ---------------------------------------------------------------------------------------------

describe('private_key_jwt with openid-client', () => {
  it('obtains a DPoP-bound token for one API, with RFC 9068 claims, the partner and its agreement, and records it', async () => {
    const config = new oidc.Configuration({ issuer: ISSUER, token_endpoint: httpUrl }, 'acme-app', {}, oidc.PrivateKeyJwt({ key: clientCryptoKey as webcrypto.CryptoKey, kid: 'client-key-1' }));
    oidc.allowInsecureRequests(config);
    const dpopKeys = await oidc.randomDPoPKeyPair('ES256');
    const response = await oidc.clientCredentialsGrant(config, { resource: ORDERS, scope: 'orders:read' }, { DPoP: oidc.getDPoPHandle(config, dpopKeys) });
    assert.equal(response.token_type.toLowerCase(), 'dpop');
    assert.equal(response.expires_in, 120, 'the API\'s 2m lifetime');
    assert.equal(response.scope, 'orders:read');
    assert.equal(response.refresh_token, undefined);

    const claims = await claimsOf(response.access_token);
    const jkt = await calculateJwkThumbprint(await exportJWK(dpopKeys.publicKey), 'sha256');
    assert.equal(claims['iss'], ISSUER);
    assert.equal(claims['sub'], 'acme-app');
    assert.equal(claims['client_id'], 'acme-app');
    assert.equal(claims['aud'], ORDERS, 'aud is that API alone');
    assert.equal(claims['scope'], 'orders:read');
    assert.equal(claims['exp'] - claims['iat'], 120);
    assert.match(claims['jti'], /^[0-9a-f-]{36}$/);
    assert.deepEqual(claims['cnf'], { jkt });
    assert.equal(claims['partner_id'], 'acme');
    assert.equal(claims['agreement_id'], 'AGR-7');
    assert.equal(decodeProtectedHeader(response.access_token).kid, 'test-signing-key');

    const record = lastRecord();
    assert.equal(record['event']['action'], 'token.issued');
    assert.equal(record['event']['outcome'], 'success');
    assert.deepEqual(record['portcullis']['token'], {
      client_id: 'acme-app',
      client_auth_method: 'private_key_jwt',
      api: 'orders',
      scopes: ['orders:read'],
      lifetime_ms: 120_000,
      cnf_type: 'jkt',
      cnf_thumbprint: jkt,
      jti: claims['jti'],
    });
    assert.equal(record['portcullis']['credential']['id'], 'acme-jwt');
    assert.equal(record['portcullis']['partner']['id'], 'acme');
    assert.ok(!JSON.stringify(records).includes(response.access_token), 'the token is never recorded');
  });

  it('a replayed assertion is invalid_client (401, WWW-Authenticate), and the record never holds it', async () => {
    const once = assertion();
    const { proof } = await dpopProof();
    const first = await postHttp(jwtParams({}, once), { dpop: proof });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const second = await postHttp(jwtParams({}, once), { dpop: (await dpopProof()).proof });
    assertError(second, 401, 'invalid_client');
    assert.ok(second.headers['www-authenticate']);
    assert.equal(lastRecord()['event']['action'], 'token.refused');
    assert.equal(lastRecord()['event']['reason'], 'assertion.replayed');
    assert.ok(!JSON.stringify(records).includes(once));
  });
});

describe('client assertions refused', () => {
  const cases: Array<[string, () => string, string]> = [
    ['wrong audience (the token endpoint URL)', () => assertion({ aud: `${ISSUER}/oauth2/token` }), 'assertion.aud_invalid'],
    ['audience as an array', () => assertion({ aud: [ISSUER] }), 'assertion.aud_invalid'],
    ['exp too far ahead', () => assertion({ exp: Math.floor(Date.now() / 1000) + 3600 }), 'assertion.exp_too_far'],
    ['expired', () => assertion({ exp: Math.floor(Date.now() / 1000) - 60, iat: Math.floor(Date.now() / 1000) - 120 }), 'assertion.expired'],
    ['no jti', () => assertion({ jti: undefined }), 'assertion.jti_invalid'],
    ['wrong key', () => assertion({}, generateTestKey('ES256', 'client-key-1')), 'assertion.signature_invalid'],
    ['iss differs from sub', () => assertion({ iss: 'someone-else' }), 'assertion.iss_invalid'],
  ];
  for (const [name, make, reason] of cases) {
    it(name, async () => {
      const answer = await postHttp(jwtParams({}, make()), { dpop: (await dpopProof()).proof });
      assertError(answer, 401, 'invalid_client');
      assert.equal(lastRecord()['event']['reason'], reason);
    });
  }

  it('two client authentication methods in one request are invalid_request', async () => {
    const answer = await postHttp(jwtParams(), { authorization: `Basic ${Buffer.from('acme-app:secret').toString('base64')}` });
    assertError(answer, 400, 'invalid_request');
    assert.equal(lastRecord()['event']['reason'], 'client_auth.multiple_methods');
  });
});

describe('the request', () => {
  it('a scope not granted is invalid_scope, never a silent cut', async () => {
    const answer = await postHttp(jwtParams({ scope: 'orders:read orders:admin' }), { dpop: (await dpopProof()).proof });
    assertError(answer, 400, 'invalid_scope');
    assert.equal(lastRecord()['event']['reason'], 'scope.not_granted');
  });

  it('no scope gives every granted scope of that API only; a token for billing has aud billing alone', async () => {
    const orders = await postHttp(jwtParams(), { dpop: (await dpopProof()).proof });
    assert.equal(orders.status, 200, JSON.stringify(orders.body));
    assert.equal(orders.body['scope'], 'orders:read orders:write');
    const billing = await postHttp(jwtParams({ resource: BILLING }), { dpop: (await dpopProof()).proof });
    assert.equal(billing.status, 200, JSON.stringify(billing.body));
    const claims = await claimsOf(billing.body['access_token']);
    assert.equal(claims['aud'], BILLING);
    assert.equal(claims['scope'], 'billing:read');
    assert.equal(billing.body['expires_in'], 300, 'the service default');
  });

  it('an API without a grant, an unknown audience, and no API at all are refused', async () => {
    assertError(await postHttp(jwtParams({ resource: 'https://api.example.test/payroll' }), { dpop: (await dpopProof()).proof }), 400, 'invalid_target');
    assertError(await postHttp(jwtParams({ resource: 'https://elsewhere.test/' }), { dpop: (await dpopProof()).proof }), 400, 'invalid_target');
    const params = jwtParams();
    delete params['resource'];
    assertError(await postHttp(params, { dpop: (await dpopProof()).proof }), 400, 'invalid_request');
  });

  it('a repeated parameter, another grant type, and a JSON body are refused', async () => {
    assertError(await postHttp(`${form(jwtParams())}&scope=orders:read&scope=orders:write`), 400, 'invalid_request');
    assertError(await postHttp(jwtParams({ grant_type: 'password' }), { dpop: (await dpopProof()).proof }), 400, 'unsupported_grant_type');
    const json = await fetch(httpUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(json.status, 400);
    assert.equal(((await json.json()) as Record<string, unknown>)['error'], 'invalid_request');
  });

  it('a token without a sender constraint is refused by default', async () => {
    const answer = await postHttp(jwtParams());
    assertError(answer, 400, 'invalid_request');
    assert.equal(lastRecord()['event']['reason'], 'sender_constraint.missing');
  });

  it('a token whose issuance the audit trail refuses is not issued (503)', async () => {
    auditAccepts = false;
    try {
      const answer = await postHttp(jwtParams(), { dpop: (await dpopProof()).proof });
      assertError(answer, 503, 'temporarily_unavailable');
    } finally {
      auditAccepts = true;
    }
  });

  it('a DPoP proof for another URL is invalid_dpop_proof (400)', async () => {
    const answer = await postHttp(jwtParams(), { dpop: (await dpopProof({ htu: `${ISSUER}/elsewhere` })).proof });
    assertError(answer, 400, 'invalid_dpop_proof');
    assert.equal(lastRecord()['event']['reason'], 'dpop.htu_mismatch');
  });
});

describe('partner standing', () => {
  it('a suspended partner gets no token (unauthorized_client)', async () => {
    const answer = await postHttp(jwtParams({}, assertion({}, clientKey, 'dormant-app')), { dpop: (await dpopProof()).proof });
    assertError(answer, 400, 'unauthorized_client');
    assert.equal(lastRecord()['event']['reason'], 'partner.suspended');
    assert.equal(lastRecord()['portcullis']['partner']['id'], 'dormant');
  });

  it('an expired agreement gets no token', async () => {
    const answer = await postHttp(jwtParams({}, assertion({}, clientKey, 'lapsed-app')), { dpop: (await dpopProof()).proof });
    assertError(answer, 400, 'unauthorized_client');
    assert.equal(lastRecord()['event']['reason'], 'partner.agreement_expired');
  });

  it('a run-time suspension bites on the next token request, and resuming restores it', async () => {
    await store.setPartnerStatus('acme', { partnerId: 'acme', status: 'suspended', reason: 'test', actor: 'test', at: Date.now() }, 'test');
    try {
      assertError(await postHttp(jwtParams(), { dpop: (await dpopProof()).proof }), 400, 'unauthorized_client');
    } finally {
      await store.setPartnerStatus('acme', null, 'test');
    }
    assert.equal((await postHttp(jwtParams(), { dpop: (await dpopProof()).proof })).status, 200);
  });
});

describe('tls_client_auth (RFC 8705)', () => {
  it('issues a certificate-bound token whose cnf.x5t#S256 is the client certificate\'s', async () => {
    const answer = await postHttps({ grant_type: 'client_credentials', client_id: 'acme-mtls', resource: ORDERS, scope: 'orders:write' }, acmeClientCert);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(answer.body['token_type'], 'Bearer');
    assert.equal(answer.headers['cache-control'], 'no-store');
    const claims = await claimsOf(answer.body['access_token']);
    assert.deepEqual(claims['cnf'], { 'x5t#S256': x5tOf(acmeClientCert) });
    assert.equal(claims['client_id'], 'acme-mtls');
    // Client 8m, API 2m: the shorter.
    assert.equal(answer.body['expires_in'], 120);
    assert.equal(lastRecord()['portcullis']['token']['client_auth_method'], 'tls_client_auth');
    assert.equal(lastRecord()['portcullis']['token']['cnf_type'], 'x5t#S256');
  });

  it('the client\'s lifetime applies to an API without one, even above the service default', async () => {
    const answer = await postHttps({ grant_type: 'client_credentials', client_id: 'acme-mtls', resource: BILLING }, acmeClientCert);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(answer.body['expires_in'], 480);
  });

  it('another partner\'s certificate, or none, is invalid_client', async () => {
    const foreign = await postHttps({ grant_type: 'client_credentials', client_id: 'acme-mtls', resource: ORDERS }, globexClientCert);
    assertError(foreign, 401, 'invalid_client');
    assert.equal(lastRecord()['event']['reason'], 'tls.partner_mismatch');
    const none = await postHttps({ grant_type: 'client_credentials', client_id: 'acme-mtls', resource: ORDERS }, null);
    assertError(none, 401, 'invalid_client');
    assert.equal(lastRecord()['event']['reason'], 'tls.certificate_missing');
  });

  it('private_key_jwt over mTLS binds to the partner\'s certificate', async () => {
    const answer = await postHttps(jwtParams(), acmeClientCert);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const claims = await claimsOf(answer.body['access_token']);
    assert.deepEqual(claims['cnf'], { 'x5t#S256': x5tOf(acmeClientCert) });
  });
});
