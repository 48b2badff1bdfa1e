/**
 * The compiled identity side of the snapshot: issuers and their key sources, introspection
 * endpoints, partners (agreement, grants, rules) and the credential index.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { expiryInstant, normalizeTyp } from '../../src/config/compile-identity.ts';
import { generateTestKey, jwks } from '../helpers/tokens.ts';
import { BASE, snapshotOf, tempDir, writeSelfSigned, writeText } from './helpers.ts';

const SHA = 'ab'.repeat(32);

async function identityConfig(dir: string): Promise<string> {
  await writeText(dir, 'jwks.json', jwks(generateTestKey('ES256', 'key-1')));
  await writeSelfSigned(dir, 'ca');
  await writeSelfSigned(dir, 'client');
  await writeText(dir, 'assertion.pem', generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString());
  return `${BASE}issuers:
  - id: local
    issuer: https://local.test
    jwks_file: jwks.json
    algorithms: [ES256, EdDSA]
    typ: Application/AT+JWT
    leeway: 5s
  - id: remote
    issuer: https://idp.test/
    discovery: https://idp.test/.well-known/openid-configuration
    ca: ca.crt
    algorithms: [RS256]
    partner_claim: sub
introspection:
  - id: as
    url: https://as.test/introspect
    ca: ca.crt
    client_id: gateway
    auth: { method: private_key_jwt, key: assertion.pem, alg: ES256 }
  - id: as-mtls
    url: https://as.test/mtls/introspect
    client_id: gateway
    auth: { method: tls_client_auth, cert: client.crt, key: client.key }
    cache_ttl: 30s
apis:
  - { id: orders, audience: "https://api.test/orders" }
  - { id: billing, audience: "https://api.test/billing" }
partners:
  - id: acme
    name: Acme Corp
    owner: team-partnerships
    contact: security@acme.test
    tier: gold
    attributes: { region: eu, max_orders: 10, beta: true }
    agreement: { id: MSA-2025-01, expires: 2027-01-31 }
    credentials:
      - { id: acme-jwt, type: jwt, issuer: local, client_id: acme-client }
      - { id: acme-sub, type: jwt, issuer: remote, client_id: "svc|acme" }
      - { id: acme-opaque, type: introspection, endpoint: as, client_id: acme-rs }
      - { id: acme-key, type: api_key, key_id: abcdefghijkl, sha256: ${SHA}, expires: "2026-06-30T12:00:00+02:00" }
    grants:
      - { api: orders, scopes: [orders.read] }
      - { api: billing, environments: [production], constraints: { source_networks: [10.0.0.0/8] } }
    policies:
      - { id: eu-only, require: "partner.attributes.region == 'eu'" }
  - id: globex
    status: suspended
    credentials:
      - { id: globex-jwt, type: jwt, issuer: local, client_id: globex-client }
`;
}

describe('compiled issuers and introspection endpoints', () => {
  it('compiles key sources, reads the JWKS and CA files, and normalises typ', async (t) => {
    const dir = await tempDir(t);
    const snapshot = await snapshotOf(t, await identityConfig(dir), dir);
    const local = snapshot.issuers.get('local')!;
    assert.equal(local.source.kind, 'file');
    assert.deepEqual(local.source, { kind: 'file', path: join(dir, 'jwks.json'), jwks: JSON.parse(await readFile(join(dir, 'jwks.json'), 'utf8')) });
    assert.equal(local.typ, 'at+jwt');
    assert.deepEqual([...local.algorithms], ['ES256', 'EdDSA']);
    assert.deepEqual(
      { leeway: local.leewayMs, lifetime: local.maxLifetimeMs, claim: local.partnerClaim, refresh: local.refreshIntervalMs, cooldown: local.unknownKidCooldownMs, timeout: local.fetchTimeoutMs, ca: local.ca },
      { leeway: 5000, lifetime: 3_600_000, claim: 'client_id', refresh: 600_000, cooldown: 30_000, timeout: 5000, ca: null },
    );
    const remote = snapshot.issuers.get('remote')!;
    assert.deepEqual(remote.source, { kind: 'discovery', url: 'https://idp.test/.well-known/openid-configuration' });
    assert.deepEqual(remote.ca, await readFile(join(dir, 'ca.crt')));
    assert.equal(remote.partnerClaim, 'sub');
    // Exact iss, trailing slash and all (RFC 8725 §3.8 via SECURITY.md JWT-07).
    assert.equal(snapshot.issuersByIss.get('https://idp.test/'), remote);
    assert.equal(snapshot.issuersByIss.get('https://idp.test'), undefined);
    assert.equal(snapshot.issuersByIss.get('https://local.test'), local);
  });

  it('reads introspection client keys and certificates into buffers', async (t) => {
    const dir = await tempDir(t);
    const snapshot = await snapshotOf(t, await identityConfig(dir), dir);
    const as = snapshot.introspection.get('as')!;
    assert.deepEqual(as.auth, { method: 'private_key_jwt', key: await readFile(join(dir, 'assertion.pem')), alg: 'ES256', kid: null });
    assert.deepEqual(as.ca, await readFile(join(dir, 'ca.crt')));
    assert.deepEqual(
      { url: as.url, issuer: as.issuer, clientId: as.clientId, cache: as.cacheTtlMs, negative: as.negativeCacheTtlMs, timeout: as.timeoutMs, rate: as.maxRequestsPerSecond },
      { url: 'https://as.test/introspect', issuer: null, clientId: 'gateway', cache: 60_000, negative: 5000, timeout: 2000, rate: 100 },
    );
    const mtls = snapshot.introspection.get('as-mtls')!;
    assert.deepEqual(mtls.auth, { method: 'tls_client_auth', cert: await readFile(join(dir, 'client.crt')), key: await readFile(join(dir, 'client.key')) });
    assert.equal(mtls.cacheTtlMs, 30_000);
    assert.equal(mtls.ca, null);
  });

  it('normalises typ as RFC 7515 §4.1.9 compares it', () => {
    assert.equal(normalizeTyp('at+jwt'), 'at+jwt');
    assert.equal(normalizeTyp('APPLICATION/at+JWT'), 'at+jwt');
    assert.equal(normalizeTyp('application/example;part="1/2"'), 'example;part="1/2"');
  });
});

describe('compiled partners and the credential index', () => {
  it('compiles partner details, with attributes that have no prototype', async (t) => {
    const dir = await tempDir(t);
    const snapshot = await snapshotOf(t, await identityConfig(dir), dir);
    const acme = snapshot.partners.get('acme')!;
    assert.deepEqual(
      { name: acme.name, owner: acme.owner, contact: acme.contact, tier: acme.tier, status: acme.status },
      { name: 'Acme Corp', owner: 'team-partnerships', contact: 'security@acme.test', tier: 'gold', status: 'active' },
    );
    assert.deepEqual({ ...acme.attributes }, { region: 'eu', max_orders: 10, beta: true });
    assert.equal(Object.getPrototypeOf(acme.attributes), null);
    assert.equal((acme.attributes as Record<string, unknown>)['constructor'], undefined);
    const globex = snapshot.partners.get('globex')!;
    assert.deepEqual({ name: globex.name, tier: globex.tier, status: globex.status, agreement: globex.agreement }, { name: null, tier: 'standard', status: 'suspended', agreement: null });
  });

  it('ends a bare agreement date at the end of that day, UTC', async (t) => {
    const dir = await tempDir(t);
    const acme = (await snapshotOf(t, await identityConfig(dir), dir)).partners.get('acme')!;
    assert.deepEqual(acme.agreement, { id: 'MSA-2025-01', expiresAt: Date.parse('2027-02-01T00:00:00Z') });
    // Still current in the last millisecond of the day, over from midnight on.
    assert.ok(Date.parse('2027-01-31T23:59:59.999Z') < acme.agreement!.expiresAt);
    assert.equal(expiryInstant('2027-01-31T18:30:00+01:00'), Date.parse('2027-01-31T17:30:00Z'));
    assert.equal(expiryInstant('2024-02-29'), Date.parse('2024-03-01T00:00:00Z'));
  });

  it('groups grants by API, compiled by the policy module', async (t) => {
    const dir = await tempDir(t);
    const acme = (await snapshotOf(t, await identityConfig(dir), dir)).partners.get('acme')!;
    assert.deepEqual([...acme.grants.keys()], ['orders', 'billing']);
    const [orders] = acme.grants.get('orders')!;
    assert.equal(orders!.id, 'partner/acme/grant/orders#0');
    assert.deepEqual([...orders!.scopes], ['orders.read']);
    assert.deepEqual([...orders!.environments], ['production']);
    assert.equal(orders!.constraints, null);
    const [billing] = acme.grants.get('billing')!;
    assert.equal(billing!.id, 'partner/acme/grant/billing#1');
    assert.equal(billing!.constraints!.sourceNetworks!.check('10.1.2.3'), true);
    assert.deepEqual(acme.policies.map((rule) => [rule.id, rule.scope, rule.kind]), [['eu-only', 'partners[acme]', 'require']]);
  });

  it('keeps several grants for one API, in configuration order', async (t) => {
    const text = `${BASE.replace('hostnames: [api.partner.test] }', 'hostnames: [api.partner.test] }\n  - { name: sandbox, zone: partner, port: 8444, hostnames: [sandbox.partner.test], environment: sandbox }')}apis:
  - { id: orders }
partners:
  - id: acme
    grants:
      - { api: orders, environments: [sandbox], scopes: [orders:read, orders:write] }
      - { api: orders, scopes: [orders:read], constraints: { time_windows: [{ from: "08:00", to: "18:00" }] } }
`;
    const grants = (await snapshotOf(t, text)).partners.get('acme')!.grants.get('orders')!;
    assert.deepEqual(grants.map((grant) => [grant.id, [...grant.environments], [...grant.scopes]]), [
      ['partner/acme/grant/orders#0', ['sandbox'], ['orders:read', 'orders:write']],
      ['partner/acme/grant/orders#1', ['production'], ['orders:read']],
    ]);
  });

  it('finds the partner of a verified credential in one lookup', async (t) => {
    const dir = await tempDir(t);
    const { credentials, partners } = await snapshotOf(t, await identityConfig(dir), dir);
    assert.deepEqual(credentials.jwt.get('local')!.get('acme-client'), { id: 'acme-jwt', type: 'jwt', partnerId: 'acme', issuerId: 'local', clientId: 'acme-client', rateLimit: null });
    assert.equal(credentials.jwt.get('local')!.get('globex-client')!.partnerId, 'globex');
    assert.equal(credentials.jwt.get('remote')!.get('svc|acme')!.id, 'acme-sub');
    // A client id is only known at its own issuer.
    assert.equal(credentials.jwt.get('remote')!.get('acme-client'), undefined);
    assert.deepEqual(credentials.introspection.get('as')!.get('acme-rs'), { id: 'acme-opaque', type: 'introspection', partnerId: 'acme', endpointId: 'as', clientId: 'acme-rs', rateLimit: null });
    assert.equal(credentials.introspection.get('as-mtls'), undefined);
    const key = credentials.apiKeys.get('abcdefghijkl')!;
    assert.equal(partners.get(key.partnerId)!.id, 'acme');
    assert.deepEqual(key, { id: 'acme-key', type: 'api_key', partnerId: 'acme', keyId: 'abcdefghijkl', sha256: Buffer.from(SHA, 'hex'), expiresAt: Date.parse('2026-06-30T10:00:00Z'), rateLimit: null });
  });

  it('freezes sets, maps and credential entries', async (t) => {
    const dir = await tempDir(t);
    const snapshot = await snapshotOf(t, await identityConfig(dir), dir);
    assert.throws(() => (snapshot.issuers.get('local')!.algorithms as Set<string>).add('RS256'), TypeError);
    assert.throws(() => (snapshot.credentials.jwt.get('local') as Map<string, unknown>).set('evil', {}), TypeError);
    assert.throws(() => {
      (snapshot.credentials.apiKeys.get('abcdefghijkl') as { partnerId: string }).partnerId = 'globex';
    }, TypeError);
    assert.throws(() => {
      (snapshot.partners.get('acme')!.attributes as Record<string, unknown>)['region'] = 'us';
    }, TypeError);
    assert.ok(Object.isFrozen(snapshot.partners.get('acme')!.grants.get('orders')![0]));
    assert.ok(Object.isFrozen(snapshot.partners.get('acme')!.policies[0]));
    assert.equal(snapshot.issuers.get('local')!.algorithms.has('RS256'), false);
  });
});

describe('files of the identity sections', () => {
  it('watches and hashes every referenced file: a rotated JWKS is a new configuration version', async (t) => {
    const dir = await tempDir(t);
    const text = await identityConfig(dir);
    const before = await snapshotOf(t, text, dir);
    for (const name of ['jwks.json', 'ca.crt', 'assertion.pem', 'client.crt', 'client.key']) assert.ok(before.watchedFiles.includes(join(dir, name)), name);
    assert.equal(new Set(before.watchedFiles).size, before.watchedFiles.length, 'each file is watched once');

    const same = await snapshotOf(t, text, dir);
    assert.equal(same.hash, before.hash);
    await writeText(dir, 'jwks.json', jwks(generateTestKey('ES256', 'key-2')));
    const rotated = await snapshotOf(t, text, dir);
    assert.notEqual(rotated.hash, before.hash);
    assert.equal((rotated.issuers.get('local')!.source as { jwks: { keys: { kid: string }[] } }).jwks.keys[0]!.kid, 'key-2');
  });
});
