/**
 * JWKS, RFC 8414 metadata, RFC 7662 introspection and RFC 7009 revocation (src/tokens/endpoints.ts)
 * over real HTTP on loopback, with a snapshot from the real config loader, a real embedded state
 * store and the real token keys. Clients authenticate with private_key_jwt (RFC 7523).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { openEmbeddedStore } from '../../src/state/embedded.ts';
import { openTokenKeys } from '../../src/tokens/keys.ts';
import { INTROSPECTION_PATH, JWKS_PATH, METADATA_PATH, REVOCATION_PATH, serveTokenIntrospection, serveTokenRevocation, serveTokenServiceJwks, serveTokenServiceMetadata } from '../../src/tokens/endpoints.ts';
import type { TokenServiceDeps } from '../../src/tokens/types.ts';
import { createNonceSource } from '../../src/authn/dpop.ts';
import { setLogListener } from '../../src/log.ts';
import { BASE, snapshotOf, tempDir, writeText } from '../config/helpers.ts';
import { generateTestKey, jwks } from '../helpers/tokens.ts';
import type { TestKey } from '../helpers/tokens.ts';

const ISSUER = 'https://gw.example.test';
const AUDIENCE = 'https://api.example.test/orders';

test('token service endpoints', async (t) => {
  setLogListener(null, { quiet: true });
  const dir = await tempDir(t);
  const acmeKey = generateTestKey('ES256');
  const globexKey = generateTestKey('ES256');
  await writeText(dir, 'acme.jwks', jwks(acmeKey));
  await writeText(dir, 'globex.jwks', jwks(globexKey));
  const snapshot = await snapshotOf(
    t,
    `${BASE}token_service: { issuer: "${ISSUER}", listener: partner }
partners:
  - id: acme
    credentials:
      - { id: acme-client, type: client, client_id: acme-app, auth: private_key_jwt, jwks_file: acme.jwks }
  - id: globex
    credentials:
      - { id: globex-client, type: client, client_id: globex-app, auth: private_key_jwt, jwks_file: globex.jwks }
`,
    dir,
  );
  const store = await openEmbeddedStore({ path: join(dir, 'state.sqlite'), propagationTimeoutMs: 1000 });
  t.after(() => store.close());
  const keys = await openTokenKeys({ store, algorithm: 'ES256' });
  const audited: Array<{ record: object; partnerId: string | null }> = [];
  let auditAccepts = true;
  const deps: TokenServiceDeps = {
    snapshot: () => snapshot,
    store,
    keys,
    audit: (record, partnerId) => {
      if (auditAccepts) audited.push({ record, partnerId });
      return auditAccepts;
    },
    auditHealthy: () => auditAccepts,
    dpopNonces: createNonceSource({ lifetimeMs: 60_000, secret: Buffer.alloc(32, 1) }),
  };
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const routes: Record<string, (r: typeof req, s: typeof res, d: TokenServiceDeps, u: URL) => unknown> = {
      [JWKS_PATH]: serveTokenServiceJwks,
      [METADATA_PATH]: serveTokenServiceMetadata,
      [INTROSPECTION_PATH]: serveTokenIntrospection,
      [REVOCATION_PATH]: serveTokenRevocation,
    };
    const route = routes[url.pathname];
    if (!route) return void res.writeHead(404).end();
    void route(req, res, deps, url);
  });
  await new Promise<void>((resolveListen) => server.listen(0, '127.0.0.1', resolveListen));
  t.after(() => new Promise<void>((resolveClose) => server.close(() => resolveClose())));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const assertion = (key: TestKey, clientId: string): Promise<string> =>
    new SignJWT({ jti: randomUUID() })
      .setProtectedHeader({ alg: 'ES256', kid: key.kid })
      .setIssuer(clientId)
      .setSubject(clientId)
      .setAudience(ISSUER)
      .setIssuedAt()
      .setExpirationTime('60s')
      .sign(key.privateKey);
  const post = async (path: string, params: Record<string, string>, as: [TestKey, string] | null): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> => {
    const form = new URLSearchParams(params);
    if (as) {
      form.set('client_assertion_type', 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
      form.set('client_assertion', await assertion(as[0], as[1]));
    }
    const response = await fetch(`${origin}${path}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form.toString() });
    return { status: response.status, body: (await response.json()) as Record<string, unknown>, headers: response.headers };
  };
  const tokenFor = (clientId: string, overrides: Record<string, unknown> = {}): Promise<string> => {
    const iat = Math.floor(Date.now() / 1000);
    return keys.sign({ iss: ISSUER, sub: clientId, client_id: clientId, aud: AUDIENCE, iat, exp: iat + 300, jti: randomUUID(), scope: 'orders:read', cnf: { 'x5t#S256': 'abc' }, ...overrides }, 'at+jwt');
  };

  await t.test('JWKS: the published keys, cacheable, as application/jwk-set+json', async () => {
    const response = await fetch(`${origin}${JWKS_PATH}`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'application/jwk-set+json');
    assert.equal(response.headers.get('cache-control'), 'public, max-age=300');
    const body = (await response.json()) as { keys: Array<Record<string, unknown>> };
    assert.deepEqual(body.keys.map((key) => key['kid']), keys.list().map((key) => key.kid));
    assert.equal(body.keys.some((key) => 'd' in key), false);
    assert.equal((await fetch(`${origin}${JWKS_PATH}`, { method: 'POST' })).status, 405);
  });

  await t.test('metadata (RFC 8414 §2)', async () => {
    const response = await fetch(`${origin}${METADATA_PATH}`);
    assert.equal(response.status, 200);
    const metadata = (await response.json()) as Record<string, unknown>;
    assert.equal(metadata['issuer'], ISSUER);
    assert.equal(metadata['token_endpoint'], `${ISSUER}/oauth2/token`);
    assert.equal(metadata['jwks_uri'], `${ISSUER}/oauth2/jwks`);
    assert.equal(metadata['introspection_endpoint'], `${ISSUER}/oauth2/introspect`);
    assert.equal(metadata['revocation_endpoint'], `${ISSUER}/oauth2/revoke`);
    assert.deepEqual(metadata['grant_types_supported'], ['client_credentials', 'urn:ietf:params:oauth:grant-type:token-exchange']);
    assert.deepEqual(metadata['token_endpoint_auth_methods_supported'], ['private_key_jwt']);
    assert.ok((metadata['token_endpoint_auth_signing_alg_values_supported'] as string[]).includes('ES256'));
    assert.equal(metadata['tls_client_certificate_bound_access_tokens'], true);
    assert.deepEqual(metadata['dpop_signing_alg_values_supported'], [...snapshot.dpop.algorithms]);
    assert.deepEqual(metadata['response_types_supported'], []);
  });

  await t.test('introspection: only for authenticated clients, only their own tokens', async () => {
    const token = await tokenFor('acme-app');
    const unauthenticated = await post(INTROSPECTION_PATH, { token }, null);
    assert.equal(unauthenticated.status, 401);
    assert.equal(unauthenticated.body['error'], 'invalid_client');
    assert.equal(unauthenticated.body['active'], undefined);

    const own = await post(INTROSPECTION_PATH, { token }, [acmeKey, 'acme-app']);
    assert.equal(own.status, 200);
    assert.equal(own.headers.get('cache-control'), 'no-store');
    assert.equal(own.body['active'], true);
    assert.equal(own.body['client_id'], 'acme-app');
    assert.equal(own.body['aud'], AUDIENCE);
    assert.equal(own.body['scope'], 'orders:read');
    assert.equal(own.body['iss'], ISSUER);
    assert.equal(own.body['token_type'], 'Bearer');
    assert.deepEqual(own.body['cnf'], { 'x5t#S256': 'abc' });

    const dpop = await post(INTROSPECTION_PATH, { token: await tokenFor('acme-app', { cnf: { jkt: 'xyz' } }) }, [acmeKey, 'acme-app']);
    assert.equal(dpop.body['token_type'], 'DPoP');
    // Another partner's token, an expired one, a forged one, garbage: all just inactive.
    assert.deepEqual((await post(INTROSPECTION_PATH, { token }, [globexKey, 'globex-app'])).body, { active: false });
    assert.deepEqual((await post(INTROSPECTION_PATH, { token: await tokenFor('acme-app', { exp: Math.floor(Date.now() / 1000) - 1, iat: Math.floor(Date.now() / 1000) - 60 }) }, [acmeKey, 'acme-app'])).body, { active: false });
    assert.deepEqual((await post(INTROSPECTION_PATH, { token: await tokenFor('acme-app', { iss: 'https://other.test' }) }, [acmeKey, 'acme-app'])).body, { active: false });
    const [header, payload, signature] = token.split('.');
    const tampered = `${header}.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload!, 'base64url').toString()), scope: 'orders:write' })).toString('base64url')}.${signature}`;
    assert.deepEqual((await post(INTROSPECTION_PATH, { token: tampered }, [acmeKey, 'acme-app'])).body, { active: false });
    assert.deepEqual((await post(INTROSPECTION_PATH, { token: 'not-a-token' }, [acmeKey, 'acme-app'])).body, { active: false });
    assert.equal((await post(INTROSPECTION_PATH, {}, [acmeKey, 'acme-app'])).status, 400);
  });

  await t.test('revocation: a client revokes its own token, recorded, and introspection then says inactive', async () => {
    const token = await tokenFor('acme-app');
    // Another client cannot revoke it (200, but nothing happens: RFC 7009 §2.1).
    const foreign = await post(REVOCATION_PATH, { token }, [globexKey, 'globex-app']);
    assert.equal(foreign.status, 200);
    assert.equal((await post(INTROSPECTION_PATH, { token }, [acmeKey, 'acme-app'])).body['active'], true);

    assert.equal((await post(REVOCATION_PATH, { token }, null)).status, 401);

    const before = audited.length;
    const revoked = await post(REVOCATION_PATH, { token, token_type_hint: 'access_token' }, [acmeKey, 'acme-app']);
    assert.equal(revoked.status, 200);
    const jti = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).jti as string;
    const view = store.revocations.current();
    assert.ok(!('unavailable' in view));
    const entry = view.revoked('token', jti);
    assert.ok(entry, 'the jti is in the revocation set the gateway checks on every request');
    assert.equal(entry.actor, 'client:acme-app');
    assert.ok(entry.expiresAt !== null && entry.expiresAt > Date.now());
    assert.equal(audited.length, before + 1);
    assert.equal(audited.at(-1)!.partnerId, 'acme');
    assert.doesNotMatch(JSON.stringify(audited.at(-1)!.record), new RegExp(token.split('.')[2]!.slice(0, 20)), 'the record never holds the token');
    assert.deepEqual((await post(INTROSPECTION_PATH, { token }, [acmeKey, 'acme-app'])).body, { active: false });
    // Revoking again, or a token that is not ours: still 200.
    assert.equal((await post(REVOCATION_PATH, { token }, [acmeKey, 'acme-app'])).status, 200);
    assert.equal((await post(REVOCATION_PATH, { token: 'junk' }, [acmeKey, 'acme-app'])).status, 200);
  });

  await t.test('revocation is refused (503) when it cannot be recorded', async () => {
    const token = await tokenFor('acme-app');
    auditAccepts = false;
    try {
      const response = await post(REVOCATION_PATH, { token }, [acmeKey, 'acme-app']);
      assert.equal(response.status, 503);
    } finally {
      auditAccepts = true;
    }
    assert.equal((await post(INTROSPECTION_PATH, { token }, [acmeKey, 'acme-app'])).body['active'], true);
  });

  await t.test('a replayed client assertion is refused', async () => {
    const form = new URLSearchParams({ token: await tokenFor('acme-app'), client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: await assertion(acmeKey, 'acme-app') });
    const send = (): Promise<Response> => fetch(`${origin}${INTROSPECTION_PATH}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form.toString() });
    assert.equal((await send()).status, 200);
    assert.equal((await send()).status, 401);
  });
});
