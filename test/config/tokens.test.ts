/**
 * The token service's configuration (issue 5) through the real loader: where it listens, its
 * lifetimes, and client credentials that can authenticate the way they say — `line:col CODE path`.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TOKEN_SERVICE_ISSUER_ID } from '../../src/config/snapshot.ts';
import { INSECURE_ACKS } from '../../src/config/schema.ts';
import { BASE, brief, issuesOf, loadText, snapshotOf, tempDir, writeText } from './helpers.ts';
import { generateTestKey, jwks } from '../helpers/tokens.ts';

const SERVICE = 'token_service: { issuer: "https://gw.example.test", listener: partner }\n';

const partnerWith = (credential: string, extra = ''): string => `partners:
  - id: acme
${extra}    credentials:
      - ${credential}
`;

describe('token_service', () => {
  it('compiles its defaults and an issuer the gateway trusts without network', async (t) => {
    const snapshot = await snapshotOf(t, `${BASE}${SERVICE}`);
    assert.deepEqual(snapshot.tokenService, {
      issuer: 'https://gw.example.test',
      listener: 'partner',
      algorithm: 'ES256',
      tokenLifetimeMs: 300_000,
      maxTokenLifetimeMs: 900_000,
      assertionMaxLifetimeMs: 300_000,
      keyOverlapMs: 86_400_000,
      allowBearer: false,
    });
    const issuer = snapshot.issuers.get(TOKEN_SERVICE_ISSUER_ID)!;
    assert.deepEqual(issuer.source, { kind: 'token_service' });
    assert.equal(snapshot.issuersByIss.get('https://gw.example.test'), issuer);
  });

  it('refuses an unknown listener, plain http off loopback, a lifetime above the ceiling, a long assertion lifetime, and the reserved issuer id', async (t) => {
    const text = `${BASE}token_service:
  issuer: "http://gw.example.test"
  listener: nowhere
  token_lifetime: 20m
  assertion_max_lifetime: 10m
issuers:
  - { id: ${TOKEN_SERVICE_ISSUER_ID}, issuer: "https://idp.test", jwks_uri: "https://idp.test/jwks", algorithms: [ES256] }
`;
    const codes = brief(await issuesOf(t, text)).map((line) => line.replace(/^\d+:\d+ /, ''));
    assert.deepEqual(codes.sort(), [
      'CONFIG_CONFLICT issuers[0].id',
      'CONFIG_DANGLING_REF token_service.listener',
      'CONFIG_INVALID_VALUE token_service.assertion_max_lifetime',
      'CONFIG_INVALID_VALUE token_service.issuer',
      'CONFIG_INVALID_VALUE token_service.token_lifetime',
    ]);
  });
});

describe('client credentials', () => {
  it('compile into the client index and bind the service\'s tokens on the data plane', async (t) => {
    const dir = await tempDir(t);
    await writeText(dir, 'acme-client.jwks', jwks(generateTestKey('ES256')));
    const snapshot = await snapshotOf(t, `${BASE}${SERVICE}${partnerWith('{ id: acme-client, type: client, client_id: acme-app, auth: private_key_jwt, jwks_file: acme-client.jwks, token_lifetime: 2m }')}`, dir);
    const client = snapshot.credentials.clients.get('acme-app')!;
    assert.equal(client.id, 'acme-client');
    assert.equal(client.auth, 'private_key_jwt');
    assert.equal(client.tokenLifetimeMs, 120_000);
    assert.equal((client.jwks as { keys: unknown[] }).keys.length, 1);
    assert.equal(snapshot.credentials.jwt.get(TOKEN_SERVICE_ISSUER_ID)!.get('acme-app'), client);
  });

  it('each method needs what it uses and nothing it ignores', async (t) => {
    const dir = await tempDir(t);
    await writeText(dir, 'k.jwks', jwks(generateTestKey('ES256')));
    const cases: Array<[string, string[]]> = [
      ['{ id: c, type: client, client_id: a, auth: private_key_jwt }', ['CONFIG_INVALID_TYPE partners[0].credentials[0].auth']],
      ['{ id: c, type: client, client_id: a, auth: private_key_jwt, jwks_file: k.jwks, jwks_uri: "https://x.test/jwks" }', ['CONFIG_INVALID_TYPE partners[0].credentials[0].auth']],
      ['{ id: c, type: client, client_id: a, auth: self_signed_tls_client_auth }', ['CONFIG_INVALID_TYPE partners[0].credentials[0].auth']],
      ['{ id: c, type: client, client_id: a, auth: tls_client_auth }', ['CONFIG_DANGLING_REF partners[0].credentials[0].auth']],
      ['{ id: c, type: client, client_id: a, auth: tls_client_auth, jwks_file: k.jwks }', ['CONFIG_CONFLICT partners[0].credentials[0].jwks_file', 'CONFIG_DANGLING_REF partners[0].credentials[0].auth']],
      [`{ id: c, type: client, client_id: a, auth: client_secret_basic, secret_sha256: ${'a'.repeat(64)} }`, ['CONFIG_INSECURE_UNACKNOWLEDGED partners[0].credentials[0].auth']],
      ['{ id: c, type: client, client_id: a, auth: private_key_jwt, jwks_file: missing.jwks }', ['CONFIG_FILE_UNREADABLE partners[0].credentials[0].jwks_file']],
    ];
    for (const [credential, expected] of cases) {
      const codes = brief(await issuesOf(t, `${BASE}${SERVICE}${partnerWith(credential)}`, dir)).map((line) => line.replace(/^\d+:\d+ /, ''));
      assert.deepEqual(codes.sort(), expected.sort(), credential);
    }
    const acknowledged = `{ id: c, type: client, client_id: a, auth: client_secret_basic, secret_sha256: ${'a'.repeat(64)}, insecure_shared_secret: "${INSECURE_ACKS.clientSecret}" }`;
    const accepted = await loadText(t, `${BASE}${SERVICE}${partnerWith(acknowledged)}`, dir);
    assert.equal(accepted.ok, true, accepted.ok ? '' : brief(accepted.issues).join('\n'));
  });

  it('needs the token service, and a client id used once', async (t) => {
    const dir = await tempDir(t);
    await writeText(dir, 'k.jwks', jwks(generateTestKey('ES256')));
    const withoutService = brief(await issuesOf(t, `${BASE}${partnerWith('{ id: c, type: client, client_id: a, auth: private_key_jwt, jwks_file: k.jwks }')}`, dir));
    assert.deepEqual(withoutService.map((line) => line.replace(/^\d+:\d+ /, '')), ['CONFIG_DANGLING_REF partners[0].credentials[0].type']);
    const twice = `${BASE}${SERVICE}partners:
  - id: acme
    credentials:
      - { id: c1, type: client, client_id: same, auth: private_key_jwt, jwks_file: k.jwks }
  - id: globex
    credentials:
      - { id: c2, type: client, client_id: same, auth: private_key_jwt, jwks_file: k.jwks }
`;
    assert.deepEqual(brief(await issuesOf(t, twice, dir)).map((line) => line.replace(/^\d+:\d+ /, '')), ['CONFIG_DUPLICATE_ID partners[1].credentials[0].client_id']);
  });
});
