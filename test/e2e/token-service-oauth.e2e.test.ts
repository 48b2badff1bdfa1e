// Issue 5 "Real parts": a real OAuth client library (openid-client) against the gateway's own
// token service on an HTTPS listener that requests client certificates. One partner client
// authenticates with private_key_jwt (RFC 7523, DPoP-bound token), another with tls_client_auth
// (RFC 8705 §2.1, certificate-bound token); each token is then used on a protected route through
// the gateway. Every refusal is checked against its RFC 6749 §5.2 error code.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { webcrypto } from 'node:crypto';
import { Agent, buildConnector, fetch as undiciFetch } from 'undici';
import * as oidc from 'openid-client';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import type { CryptoKey, JWK } from 'jose';
import { createCa, issueClientCertificate, issueServerCertificate } from '../../src/pki/dev-ca.ts';
import type { CertificateAuthority, IssuedCertificate } from '../../src/pki/dev-ca.ts';
import { JWT_BEARER_ASSERTION_TYPE } from '../../src/tokens/client-auth.ts';
import { startHarness } from '../helpers/harness.ts';
import type { Harness } from '../helpers/harness.ts';

/** The server certificate of the test PKI names this host; the issuer lives there. */
const HOST = 'api.example.test';
const ISSUER = `https://${HOST}`;
const ORDERS = 'https://api.example.test/orders';
const BILLING = 'https://api.example.test/billing';

let h: Harness;
let serverCa: CertificateAuthority;
let boltCert: IssuedCertificate;
let clientKey: CryptoKey;
let clientJwk: JWK;
const dispatchers: Agent[] = [];
/** token.refused records already read from the audit trail. */
let refusalsSeen = 0;

before(async () => {
  serverCa = await createCa({ commonName: 'Token service e2e server CA' });
  const server = await issueServerCertificate(serverCa, { dnsNames: [HOST], ipAddresses: ['127.0.0.1'] });
  const boltCa = await createCa({ commonName: 'Bolt Partner CA' });
  boltCert = await issueClientCertificate(boltCa, { commonName: 'bolt-orders-client' });
  const pair = await generateKeyPair('ES256', { extractable: true });
  clientKey = pair.privateKey;
  clientJwk = { ...(await exportJWK(pair.publicKey)), kid: 'acme-key-1', alg: 'ES256', use: 'sig' };

  h = await startHarness(
    `
version: 1
abuse: { auth_failures_per_source: off, denials_per_credential: off }
audit: { dir: "{{DIR}}/audit", flush_interval: 10ms }
listeners:
  - name: api
    zone: partner
    port: 0
    hostnames: [${HOST}]
    tls: { cert: server.crt, key: server.key, http2: false, client_certificates: request }
upstreams:
  - { id: sample, url: "{{UPSTREAM}}" }
token_service: { issuer: "${ISSUER}", listener: api }
apis:
  - { id: orders, audience: "${ORDERS}" }
  - { id: billing, audience: "${BILLING}" }
routes:
  - { id: orders, zone: partner, methods: [GET], path: /orders, upstream: sample, api: orders, scopes: ["orders:read"] }
  - { id: billing, zone: partner, methods: [GET], path: /billing, upstream: sample, api: billing }
partners:
  - id: acme
    agreement: { id: MSA-acme, expires: 2099-12-31 }
    credentials:
      - { id: acme-app, type: client, client_id: acme-app, auth: private_key_jwt, jwks_file: client.jwks }
    grants:
      - { api: orders, scopes: ["orders:read"] }
      - { api: billing }
  - id: bolt
    agreement: { id: MSA-bolt, expires: 2099-12-31 }
    mtls: { ca: [bolt-ca.crt] }
    credentials:
      - { id: bolt-app, type: client, client_id: bolt-app, auth: tls_client_auth }
    grants:
      - { api: orders, scopes: ["orders:read"] }
  - id: lapsed
    agreement: { id: MSA-lapsed, expires: 2020-01-01 }
    credentials:
      - { id: lapsed-app, type: client, client_id: lapsed-app, auth: private_key_jwt, jwks_file: client.jwks }
    grants:
      - { api: orders, scopes: ["orders:read"] }
`,
    {
      files: {
        'server.crt': server.certPem,
        'server.key': server.keyPem,
        'bolt-ca.crt': boltCa.certPem,
        'client.jwks': JSON.stringify({ keys: [clientJwk] }),
      },
    },
  );
});

after(async () => {
  await Promise.all(dispatchers.map((dispatcher) => dispatcher.close()));
  await h?.close();
});

/**
 * What openid-client fetches with: `https://api.example.test/...` is dialled on the harness's
 * loopback listener (a resolver for a name that has no DNS), with SNI and certificate checks
 * for the real name, presenting `certificate` when given. One keep-alive pool per client, so
 * the mTLS client's token request and its API call go over the same certificate.
 */
function fetchFor(certificate?: IssuedCertificate): oidc.CustomFetch {
  const listener = new URL(h.url('api'));
  const connect = buildConnector({ ca: serverCa.certPem, ...(certificate ? { cert: certificate.certPem, key: certificate.keyPem } : {}) });
  const dispatcher = new Agent({ connect: (options, callback) => connect({ ...options, hostname: listener.hostname, port: listener.port, servername: HOST }, callback) });
  dispatchers.push(dispatcher);
  return (url, options) => undiciFetch(url, { ...options, dispatcher }) as unknown as Promise<Response>;
}

async function discover(clientId: string, clientAuth: oidc.ClientAuth, certificate?: IssuedCertificate): Promise<oidc.Configuration> {
  // RFC 8414 metadata at /.well-known/oauth-authorization-server ('oauth2' discovery).
  return oidc.discovery(new URL(ISSUER), clientId, {}, clientAuth, { algorithm: 'oauth2', [oidc.customFetch]: fetchFor(certificate) });
}

const privateKeyJwt = () => oidc.PrivateKeyJwt({ key: clientKey as webcrypto.CryptoKey, kid: 'acme-key-1' });

/** A client authentication that sends exactly `assertion` (replays, wrong claims). */
function fixedAssertion(assertion: string): oidc.ClientAuth {
  return (_as, _client, body) => {
    body.set('client_assertion_type', JWT_BEARER_ASSERTION_TYPE);
    body.set('client_assertion', assertion);
  };
}

function assertion(claims: { aud?: string; expIn?: number } = {}, clientId = 'acme-app'): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid: 'acme-key-1' })
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(claims.aud ?? ISSUER)
    .setIssuedAt(now)
    .setExpirationTime(now + (claims.expIn ?? 60))
    .setJti(randomUUID())
    .sign(clientKey);
}

/** The RFC 6749 §5.2 error of a refused token request, however openid-client surfaces it. */
async function refusal(attempt: Promise<unknown>): Promise<{ status: number; error: string }> {
  try {
    await attempt;
  } catch (error) {
    if (error instanceof oidc.ResponseBodyError) return { status: error.status, error: error.error };
    // A 401 with WWW-Authenticate (invalid_client, RFC 6749 §5.2) is raised before the body is read.
    if (error instanceof oidc.WWWAuthenticateChallengeError) {
      const body = (await error.response.json()) as { error: string };
      return { status: error.status, error: body.error };
    }
    throw error;
  }
  assert.fail('the token request was not refused');
}

/** A protected-resource call through the gateway with openid-client (DPoP proof when `dpop` is given). */
async function callApi(config: oidc.Configuration, path: string, accessToken: string, dpop?: oidc.DPoPHandle): Promise<{ status: number; code: string | undefined }> {
  let response: Response;
  try {
    response = await oidc.fetchProtectedResource(config, accessToken, new URL(`${ISSUER}${path}`), 'GET', undefined, undefined, dpop ? { DPoP: dpop } : undefined);
  } catch (error) {
    if (!(error instanceof oidc.WWWAuthenticateChallengeError)) throw error;
    response = error.response;
  }
  const text = await response.text();
  return { status: response.status, code: text.startsWith('{') ? (JSON.parse(text) as { code?: string }).code : undefined };
}

/** The reason the audit trail (combined stream) gave for the latest token-service refusal. */
async function lastRefusalReason(): Promise<string> {
  const file = join(h.dir, 'audit', 'combined.jsonl');
  for (let i = 0; i < 100; i++) {
    const text = existsSync(file) ? await readFile(file, 'utf8') : '';
    // The trail is written while this reads it: a read can end inside a line still being
    // written (the file grows a page at a time), so only complete lines count.
    const lines = text.slice(0, text.lastIndexOf('\n') + 1).split('\n').filter(Boolean);
    const refused = lines.map((line) => JSON.parse(line) as Record<string, any>).filter((record) => record['event']?.['action'] === 'token.refused');
    if (refused.length > refusalsSeen) {
      refusalsSeen = refused.length;
      return String(refused.at(-1)!['event']['reason']);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return 'no new token.refused record';
}

function claimsOf(token: string): Record<string, any> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, any>;
}

describe('private_key_jwt with openid-client (discovery, DPoP-bound token)', () => {
  let config: oidc.Configuration;
  let dpop: oidc.DPoPHandle;
  before(async () => {
    config = await discover('acme-app', privateKeyJwt());
    dpop = oidc.getDPoPHandle(config, await oidc.randomDPoPKeyPair('ES256'));
  });

  test('discovery reads our RFC 8414 metadata', () => {
    const metadata = config.serverMetadata();
    assert.equal(metadata.issuer, ISSUER);
    assert.equal(metadata.token_endpoint, `${ISSUER}/oauth2/token`);
    assert.equal(metadata.tls_client_certificate_bound_access_tokens, true);
    assert.deepEqual([...(metadata.token_endpoint_auth_methods_supported ?? [])].sort(), ['private_key_jwt', 'tls_client_auth']);
  });

  test('obtains a token for one API and calls its route; the same token is 401 on another API', async () => {
    const issued = await oidc.clientCredentialsGrant(config, { resource: ORDERS, scope: 'orders:read' }, { DPoP: dpop });
    assert.equal(issued.token_type.toLowerCase(), 'dpop');
    const claims = claimsOf(issued.access_token);
    assert.equal(claims['aud'], ORDERS);
    assert.equal(claims['client_id'], 'acme-app');
    assert.ok(claims['cnf']?.['jkt']);
    const seen = h.upstream.seen.length;
    assert.deepEqual(await callApi(config, '/orders', issued.access_token, dpop), { status: 200, code: undefined });
    assert.equal(h.upstream.seen.length, seen + 1);
    assert.equal(h.upstream.seen.at(-1)!.headers['x-portcullis-credential'], 'acme-app');
    assert.deepEqual(await callApi(config, '/billing', issued.access_token, dpop), { status: 401, code: 'invalid_token' });
    assert.equal(h.upstream.seen.length, seen + 1, 'nothing forwarded for API B');
  });

  test('a replayed client assertion is invalid_client', async () => {
    const once = await assertion();
    const replaying = await discover('acme-app', fixedAssertion(once));
    const first = await oidc.clientCredentialsGrant(replaying, { resource: ORDERS }, { DPoP: dpop });
    assert.ok(first.access_token);
    assert.deepEqual(await refusal(oidc.clientCredentialsGrant(replaying, { resource: ORDERS }, { DPoP: dpop })), { status: 401, error: 'invalid_client' });
    assert.equal(await lastRefusalReason(), 'assertion.replayed');
  });

  test('an assertion whose audience is the token endpoint URL, not the issuer, is invalid_client', async () => {
    const wrong = await discover('acme-app', fixedAssertion(await assertion({ aud: `${ISSUER}/oauth2/token` })));
    assert.deepEqual(await refusal(oidc.clientCredentialsGrant(wrong, { resource: ORDERS }, { DPoP: dpop })), { status: 401, error: 'invalid_client' });
    assert.equal(await lastRefusalReason(), 'assertion.aud_invalid');
  });

  test('an assertion that lives an hour (above assertion_max_lifetime) is invalid_client', async () => {
    const longLived = await discover('acme-app', fixedAssertion(await assertion({ expIn: 3600 })));
    assert.deepEqual(await refusal(oidc.clientCredentialsGrant(longLived, { resource: ORDERS }, { DPoP: dpop })), { status: 401, error: 'invalid_client' });
    assert.equal(await lastRefusalReason(), 'assertion.exp_too_far');
  });

  test('a scope the grant does not give is invalid_scope', async () => {
    assert.deepEqual(await refusal(oidc.clientCredentialsGrant(config, { resource: ORDERS, scope: 'orders:read orders:write' }, { DPoP: dpop })), { status: 400, error: 'invalid_scope' });
    assert.equal(await lastRefusalReason(), 'scope.not_granted');
  });

  test('a partner whose agreement ended gets unauthorized_client', async () => {
    const lapsed = await discover('lapsed-app', privateKeyJwt());
    assert.deepEqual(await refusal(oidc.clientCredentialsGrant(lapsed, { resource: ORDERS }, { DPoP: dpop })), { status: 400, error: 'unauthorized_client' });
    assert.equal(await lastRefusalReason(), 'partner.agreement_expired');
  });

  test('a token revoked through /oauth2/revoke (RFC 7009) is refused on its next use', async () => {
    const issued = await oidc.clientCredentialsGrant(config, { resource: ORDERS, scope: 'orders:read' }, { DPoP: dpop });
    assert.equal((await callApi(config, '/orders', issued.access_token, dpop)).status, 200);
    await oidc.tokenRevocation(config, issued.access_token);
    assert.deepEqual(await callApi(config, '/orders', issued.access_token, dpop), { status: 401, code: 'invalid_token' });
  });
});

describe('tls_client_auth with openid-client (certificate-bound token)', () => {
  let config: oidc.Configuration;
  before(async () => {
    config = await discover('bolt-app', oidc.TlsClientAuth(), boltCert);
  });

  test('obtains a token bound to the certificate and calls the route over the same certificate', async () => {
    const issued = await oidc.clientCredentialsGrant(config, { resource: ORDERS });
    assert.equal(issued.token_type.toLowerCase(), 'bearer');
    const claims = claimsOf(issued.access_token);
    // RFC 8705 §3.1: base64url SHA-256 of the certificate's DER.
    const der = Buffer.from(boltCert.certPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    assert.deepEqual(claims['cnf'], { 'x5t#S256': createHash('sha256').update(der).digest('base64url') });
    assert.equal(claims['partner_id'], 'bolt');
    assert.equal(claims['scope'], 'orders:read');
    assert.deepEqual(await callApi(config, '/orders', issued.access_token), { status: 200, code: undefined });
    assert.equal(h.upstream.seen.at(-1)!.headers['x-portcullis-credential'], 'bolt-app');
  });

  test('the certificate-bound token is refused without its certificate', async () => {
    const issued = await oidc.clientCredentialsGrant(config, { resource: ORDERS });
    const noCertificate = await discover('bolt-app', oidc.TlsClientAuth());
    assert.equal((await callApi(noCertificate, '/orders', issued.access_token)).status, 401);
  });

  test('without the certificate, tls_client_auth is invalid_client', async () => {
    const noCertificate = await discover('bolt-app', oidc.TlsClientAuth());
    assert.deepEqual(await refusal(oidc.clientCredentialsGrant(noCertificate, { resource: ORDERS })), { status: 401, error: 'invalid_client' });
    assert.equal(await lastRefusalReason(), 'tls.certificate_missing');
  });

  test('a suspended partner gets no new token (unauthorized_client), and gets them again once resumed', async () => {
    await h.gateway.state.setPartnerStatus('bolt', { partnerId: 'bolt', status: 'suspended', reason: 'e2e: suspension', actor: 'e2e', at: Date.now() }, 'e2e');
    try {
      assert.deepEqual(await refusal(oidc.clientCredentialsGrant(config, { resource: ORDERS })), { status: 400, error: 'unauthorized_client' });
      assert.equal(await lastRefusalReason(), 'partner.suspended');
    } finally {
      await h.gateway.state.setPartnerStatus('bolt', null, 'e2e');
    }
    assert.ok((await oidc.clientCredentialsGrant(config, { resource: ORDERS })).access_token);
  });

  test('the token is revoked over mTLS client authentication and refused on its next use', async () => {
    const issued = await oidc.clientCredentialsGrant(config, { resource: ORDERS });
    assert.equal((await callApi(config, '/orders', issued.access_token)).status, 200);
    await oidc.tokenRevocation(config, issued.access_token);
    assert.deepEqual(await callApi(config, '/orders', issued.access_token), { status: 401, code: 'invalid_token' });
  });
});
