/**
 * Client authentication at the token endpoint (src/tokens/client-auth.ts), against a
 * configuration through the real loader and a real embedded state store: private_key_jwt with
 * keys from a file and from a jwks_uri served over loopback HTTP, self_signed_tls_client_auth,
 * client_secret_basic, and the one-method rule (RFC 6749 §2.3).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createHash, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { INSECURE_ACKS } from '../../src/config/schema.ts';
import { loadConfig } from '../../src/config/load.ts';
import type { Snapshot } from '../../src/config/snapshot.ts';
import { openEmbeddedStore } from '../../src/state/embedded.ts';
import type { StateStore } from '../../src/state/store.ts';
import { JWT_BEARER_ASSERTION_TYPE, authenticateClient, createRemoteClientKeys } from '../../src/tokens/client-auth.ts';
import type { ClientAuthDeps, ClientAuthRequest, RemoteClientKeys } from '../../src/tokens/client-auth.ts';
import { writeSelfSigned } from '../config/helpers.ts';
import { forge, generateTestKey } from '../helpers/tokens.ts';
import type { TestKey } from '../helpers/tokens.ts';

const ISSUER = 'https://tokens.example.test';
const SECRET = 'correct horse battery staple';

let dir: string;
let snapshot: Snapshot;
let store: StateStore;
let fileKey: TestKey;
let remoteKey: TestKey;
let jwksServer: Server;
let jwksRequests = 0;
let remoteKeys: RemoteClientKeys;
let selfSigned: X509Certificate;
let otherSelfSigned: X509Certificate;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portcullis-client-auth-'));
  fileKey = generateTestKey('ES256', 'file-key');
  remoteKey = generateTestKey('EdDSA', 'remote-key');
  jwksServer = createServer((_req, res) => {
    jwksRequests++;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: [remoteKey.publicJwk] }));
  });
  await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
  const jwksUri = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/jwks`;

  const self = await writeSelfSigned(dir, 'self', 'self-client');
  const other = await writeSelfSigned(dir, 'other', 'other-client');
  selfSigned = new X509Certificate(await readFile(self.cert));
  otherSelfSigned = new X509Certificate(await readFile(other.cert));
  await writeFile(join(dir, 'file.jwks'), JSON.stringify({ keys: [fileKey.publicJwk] }));
  await writeFile(join(dir, 'self.jwks'), JSON.stringify({ keys: [{ ...selfSigned.publicKey.export({ format: 'jwk' }), use: 'sig' }] }));
  await writeFile(
    join(dir, 'gateway.yaml'),
    `version: 1
listeners:
  - { name: tokens, zone: partner, port: 8443, hostnames: [tokens.example.test] }
upstreams:
  - { id: backend, url: "http://127.0.0.1:9000" }
apis:
  - { id: orders, audience: "https://api.example.test/orders" }
token_service: { issuer: "${ISSUER}", listener: tokens, assertion_max_lifetime: 2m }
partners:
  - id: acme
    agreement: { id: AGR-7, expires: 2099-12-31 }
    credentials:
      - { id: acme-file, type: client, client_id: acme-file, auth: private_key_jwt, jwks_file: file.jwks }
      - { id: acme-remote, type: client, client_id: acme-remote, auth: private_key_jwt, jwks_uri: "${jwksUri}" }
      - { id: acme-self, type: client, client_id: acme-self, auth: self_signed_tls_client_auth, jwks_file: self.jwks }
      - id: acme-legacy
        type: client
        client_id: acme-legacy
        auth: client_secret_basic
        secret_sha256: ${createHash('sha256').update(SECRET).digest('hex')}
        insecure_shared_secret: "${INSECURE_ACKS.clientSecret}"
    grants: [{ api: orders, scopes: ["orders:read"] }]
`,
  );
  const loaded = await loadConfig(join(dir, 'gateway.yaml'), { offline: true });
  assert.ok(loaded.ok, JSON.stringify(!loaded.ok && loaded.issues));
  snapshot = loaded.snapshot;
  store = await openEmbeddedStore({ path: join(dir, 'state.sqlite'), propagationTimeoutMs: 1000 });
  remoteKeys = createRemoteClientKeys({ ttlMs: 60_000, timeoutMs: 2_000 });
});

after(async () => {
  await remoteKeys.close();
  jwksServer.closeAllConnections();
  await new Promise((resolve) => jwksServer.close(resolve));
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

function deps(): ClientAuthDeps {
  return { snapshot, store, remoteKeys };
}

function request(params: Record<string, string>, extra: Partial<ClientAuthRequest> = {}): ClientAuthRequest {
  return { params: new Map(Object.entries(params)), authorization: [], certificate: null, nowMs: Date.now(), ...extra };
}

function assertionParams(key: TestKey, clientId: string, claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}): Record<string, string> {
  const now = Math.floor(Date.now() / 1000);
  return {
    client_assertion_type: JWT_BEARER_ASSERTION_TYPE,
    client_assertion: forge(key, { alg: key.alg, kid: key.kid, ...header }, { iss: clientId, sub: clientId, aud: ISSUER, iat: now, exp: now + 60, jti: randomUUID(), ...claims }),
  };
}

function certificate(leaf: X509Certificate): NonNullable<ClientAuthRequest['certificate']> {
  return {
    leaf,
    x5t: createHash('sha256').update(leaf.raw).digest('base64url'),
    identity: { ok: false, reason: 'tls.untrusted_ca', detail: 'no partner trusts it', facts: null },
  };
}

describe('private_key_jwt', () => {
  it('accepts a fresh assertion signed by a key of the jwks_file, once', async () => {
    const params = assertionParams(fileKey, 'acme-file');
    const first = await authenticateClient(request(params), deps());
    assert.ok(first.ok, JSON.stringify(first));
    assert.equal(first.client.id, 'acme-file');
    assert.equal(first.method, 'private_key_jwt');
    const replay = await authenticateClient(request(params), deps());
    assert.ok(!replay.ok);
    assert.equal(replay.reason, 'assertion.replayed');
    assert.equal(replay.error, 'invalid_client');
  });

  it('fetches a jwks_uri once and caches it', async () => {
    const before = jwksRequests;
    for (let i = 0; i < 3; i++) {
      const result = await authenticateClient(request(assertionParams(remoteKey, 'acme-remote')), deps());
      assert.ok(result.ok, JSON.stringify(result));
    }
    assert.equal(jwksRequests - before, 1);
    // The file client's key is not the remote client's.
    const foreign = await authenticateClient(request(assertionParams(fileKey, 'acme-remote')), deps());
    assert.ok(!foreign.ok);
    assert.equal(foreign.reason, 'assertion.key_unknown');
  });

  const refusals: Array<[string, () => Record<string, string>, string, string]> = [
    ['exp beyond assertion_max_lifetime (2m)', () => assertionParams(fileKey, 'acme-file', { exp: Math.floor(Date.now() / 1000) + 180 }), 'invalid_client', 'assertion.exp_too_far'],
    ['exp - iat beyond it', () => assertionParams(fileKey, 'acme-file', { iat: Math.floor(Date.now() / 1000) - 170, exp: Math.floor(Date.now() / 1000) + 60 }), 'invalid_client', 'assertion.exp_too_far'],
    ['iat in the future', () => assertionParams(fileKey, 'acme-file', { iat: Math.floor(Date.now() / 1000) + 60 }), 'invalid_client', 'assertion.iat_invalid'],
    ['nbf in the future', () => assertionParams(fileKey, 'acme-file', { nbf: Math.floor(Date.now() / 1000) + 60 }), 'invalid_client', 'assertion.nbf_invalid'],
    ['no exp', () => assertionParams(fileKey, 'acme-file', { exp: undefined }), 'invalid_client', 'assertion.exp_invalid'],
    ['an access token presented as an assertion', () => assertionParams(fileKey, 'acme-file', {}, { typ: 'at+jwt' }), 'invalid_client', 'assertion.typ_invalid'],
    ['an unknown client', () => assertionParams(fileKey, 'nobody'), 'invalid_client', 'client.unknown'],
    ['a client registered for another method', () => assertionParams(fileKey, 'acme-self'), 'invalid_client', 'client_auth.method_not_registered'],
    ['a client_id parameter naming another client', () => ({ ...assertionParams(fileKey, 'acme-file'), client_id: 'acme-remote' }), 'invalid_client', 'client.id_mismatch'],
    ['another assertion type', () => ({ ...assertionParams(fileKey, 'acme-file'), client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:saml2-bearer' }), 'invalid_request', 'assertion.type_invalid'],
    ['a client_secret in the body', () => ({ client_id: 'acme-legacy', client_secret: SECRET }), 'invalid_client', 'client_auth.method_unsupported'],
    ['no authentication at all', () => ({ grant_type: 'client_credentials' }), 'invalid_client', 'client_auth.missing'],
  ];
  for (const [name, params, error, reason] of refusals) {
    it(`refuses ${name}`, async () => {
      const result = await authenticateClient(request(params()), deps());
      assert.ok(!result.ok, JSON.stringify(result));
      assert.equal(result.error, error);
      assert.equal(result.reason, reason);
      assert.ok(!result.detail.includes('eyJ'), 'the detail never holds the assertion');
    });
  }
});

describe('self_signed_tls_client_auth (RFC 8705 §2.2)', () => {
  it('accepts the certificate whose key is registered, and returns its x5t#S256', async () => {
    const result = await authenticateClient(request({ client_id: 'acme-self' }, { certificate: certificate(selfSigned) }), deps());
    assert.ok(result.ok, JSON.stringify(result));
    assert.equal(result.method, 'self_signed_tls_client_auth');
    assert.equal(result.x5t, createHash('sha256').update(selfSigned.raw).digest('base64url'));
  });

  it('refuses another certificate, and no certificate', async () => {
    const other = await authenticateClient(request({ client_id: 'acme-self' }, { certificate: certificate(otherSelfSigned) }), deps());
    assert.ok(!other.ok);
    assert.equal(other.reason, 'tls.key_not_registered');
    const none = await authenticateClient(request({ client_id: 'acme-self' }), deps());
    assert.ok(!none.ok);
    assert.equal(none.reason, 'tls.certificate_missing');
  });

  it('a certificate never authenticates a private_key_jwt client', async () => {
    const result = await authenticateClient(request({ client_id: 'acme-file' }, { certificate: certificate(selfSigned) }), deps());
    assert.ok(!result.ok);
    assert.equal(result.reason, 'client_auth.method_not_registered');
  });
});

describe('client_secret_basic (legacy)', () => {
  const basic = (id: string, secret: string): string => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

  it('accepts the right secret and refuses a wrong one', async () => {
    const good = await authenticateClient(request({}, { authorization: [basic('acme-legacy', SECRET)] }), deps());
    assert.ok(good.ok, JSON.stringify(good));
    assert.equal(good.method, 'client_secret_basic');
    const bad = await authenticateClient(request({}, { authorization: [basic('acme-legacy', `${SECRET}!`)] }), deps());
    assert.ok(!bad.ok);
    assert.equal(bad.reason, 'client_secret.mismatch');
    assert.equal(bad.usedAuthorizationHeader, true);
  });

  it('refuses Basic together with an assertion (RFC 6749 §2.3), and two Authorization headers', async () => {
    const both = await authenticateClient(request(assertionParams(fileKey, 'acme-file'), { authorization: [basic('acme-legacy', SECRET)] }), deps());
    assert.ok(!both.ok);
    assert.equal(both.error, 'invalid_request');
    const twice = await authenticateClient(request({}, { authorization: [basic('acme-legacy', SECRET), basic('acme-legacy', SECRET)] }), deps());
    assert.ok(!twice.ok);
    assert.equal(twice.error, 'invalid_request');
  });

  it('a secret never authenticates a private_key_jwt client', async () => {
    const result = await authenticateClient(request({}, { authorization: [basic('acme-file', SECRET)] }), deps());
    assert.ok(!result.ok);
    assert.equal(result.reason, 'client_auth.method_not_registered');
  });
});
