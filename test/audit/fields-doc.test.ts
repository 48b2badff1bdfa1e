// docs/audit.md documents every field of a decision record, and nothing else: a full record —
// a principal with a token, TLS facts, an upstream call — is built by the gateway's own
// `decisionRecord()`, and its leaf field paths must be exactly the rows of the doc's table.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.ts';
import type { Snapshot } from '../../src/config/snapshot.ts';
import { decisionRecord } from '../../src/pipeline/audit.ts';
import type { DecisionInput } from '../../src/pipeline/context.ts';
import { generateTestKey, jwks } from '../helpers/tokens.ts';

let dir: string;
let snapshot: Snapshot;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portcullis-fields-doc-'));
  await writeFile(join(dir, 'idp.jwks.json'), jwks(generateTestKey('ES256')));
  await writeFile(
    join(dir, 'gateway.yaml'),
    `version: 1
listeners:
  - { name: api, zone: partner, port: 8443, hostnames: [api.example.test] }
upstreams:
  - { id: backend, url: "http://127.0.0.1:9000" }
issuers:
  - { id: idp, issuer: "https://idp.example.test", jwks_file: idp.jwks.json, algorithms: [ES256] }
apis:
  - { id: orders, audience: https://api.example.test/orders }
routes:
  - { id: list-orders, zone: partner, api: orders, methods: [GET], path: /orders, upstream: backend, scopes: [orders:read] }
partners:
  - id: acme
    tier: gold
    agreement: { id: AGR-7, expires: 2099-12-31 }
    credentials: [{ id: acme-idp, type: jwt, issuer: idp, client_id: acme }]
    grants: [{ api: orders, scopes: [orders:read] }]
`,
  );
  const loaded = await loadConfig(join(dir, 'gateway.yaml'), { offline: true });
  assert.ok(loaded.ok, JSON.stringify(!loaded.ok && loaded.issues));
  snapshot = loaded.snapshot;
});
after(async () => rm(dir, { recursive: true, force: true }));

/** Every field a record can carry: a partner with a token, TLS, an upstream call, a detail. */
function fullRecord(): object {
  const route = snapshot.routes[0]!;
  const partner = snapshot.partners.get('acme')!;
  const credential = snapshot.credentials.jwt.get('idp')!.get('acme')!;
  const startedAt = 1_000_000_000n;
  const input: DecisionInput = {
    requestId: '0b7d2f7c-2f0e-4a8e-9d0b-5f1c5d6f4f1e',
    startedAt,
    receivedAt: new Date('2026-11-28T19:00:00.000Z'),
    snapshot,
    flags: ['source_network_violation'],
    listener: snapshot.listeners[0]!,
    httpVersion: '2.0',
    method: 'GET',
    clientIp: '10.1.2.3',
    clientPort: 51234,
    host: 'api.example.test',
    path: '/orders',
    traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
    spanId: '00f067aa0ba902b7',
    route,
    tls: { protocol: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256', sni: 'api.example.test', alpn: 'h2' },
    clientCertificate: {
      partnerId: 'acme',
      facts: {
        fingerprintSha256: 'ab'.repeat(32),
        x5t: 'q'.repeat(43),
        subject: 'CN=orders-client\nO=Acme',
        issuer: 'CN=Acme Issuing CA',
        serial: '1f',
        notBefore: '2026-01-01T00:00:00.000Z',
        notAfter: '2027-01-01T00:00:00.000Z',
        sanDns: [],
        sanUri: ['spiffe://acme.example/orders-client'],
      },
    },
    principal: {
      partner,
      credential,
      credentialType: 'jwt',
      longLived: false,
      claims: {},
      scopes: new Set(['orders:read']),
      tokenId: 'jti-1',
      issuer: 'https://idp.example.test',
      expiresAt: null,
    },
    decidedBy: 'grant:orders#0',
    purpose: 'fraud-review',
    upstreamCalled: true,
    upstreamStatus: 200,
    upstreamStartedAt: startedAt + 200_000n,
    upstreamHeadersAt: startedAt + 900_000n,
  };
  return decisionRecord(input, { reason: 'allowed', decision: 'allow', status: 200, detail: 'operator-facing note' }, startedAt + 1_000_000n);
}

/** Dotted paths of the leaves: scalars, null, and arrays (a list is one field in ECS). */
function leafPaths(value: unknown, prefix = ''): string[] {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return [prefix];
  return Object.entries(value).flatMap(([key, child]) => leafPaths(child, prefix === '' ? key : `${prefix}.${key}`));
}

async function documentedFields(): Promise<string[]> {
  const doc = await readFile(new URL('../../docs/audit.md', import.meta.url), 'utf8');
  const section = doc.split(/^## /m).find((part) => part.startsWith('Decision record fields'));
  assert.ok(section, 'docs/audit.md has a "## Decision record fields" section');
  return section
    .split('\n')
    .filter((line) => line.startsWith('| `'))
    .map((line) => line.split('|')[1]!.trim().replace(/^`|`$/g, ''));
}

test('every field of a full decision record is documented, and the doc lists no other', async () => {
  const fields = leafPaths(fullRecord()).sort();
  const documented = await documentedFields();
  assert.equal(new Set(documented).size, documented.length, 'no field is documented twice');
  assert.deepEqual(
    { missingFromDoc: fields.filter((field) => !documented.includes(field)), notInRecord: documented.filter((field) => !fields.includes(field)) },
    { missingFromDoc: [], notInRecord: [] },
  );
});

test('the record built here is complete: principal, TLS and upstream fields are all present', () => {
  const fields = leafPaths(fullRecord());
  for (const field of ['portcullis.partner.id', 'portcullis.token.jti', 'tls.client.server_name', 'portcullis.upstream.id', 'portcullis.detail']) {
    assert.ok(fields.includes(field), field);
  }
});

test('every field an event record can carry is documented, and the doc lists no other', async () => {
  const { eventRecord } = await import('../../src/audit/event-record.ts');
  const full = eventRecord({
    action: 'revocation.created',
    outcome: 'success',
    reason: 'applied',
    actor: 'secops',
    partnerId: 'acme',
    configHash: 'a'.repeat(64),
    note: 'leaked in a support ticket',
    revocation: { kind: 'token', key: 'jti-1', expiresAt: 0 },
    previousConfigHash: 'b'.repeat(64),
    issues: ['config.yaml:1:1 CONFIG_UNKNOWN_KEY x: unknown key'],
    propagation: { instances: 3, acknowledged: 3, elapsedMs: 2 },
    sourceIp: '127.0.0.1',
    token: {
      clientId: 'acme-orders',
      credentialId: 'acme-client',
      clientAuthMethod: 'private_key_jwt',
      apiId: 'orders',
      scopes: ['orders:read'],
      lifetimeMs: 300_000,
      cnfType: 'jkt',
      cnfThumbprint: 'q'.repeat(43),
      jti: 'jti-1',
    },
    exchange: { subjectJti: 'jti-0', subject: 'acme-orders', actors: ['acme-agent', 'acme-orders'], purpose: 'nightly-reconciliation' },
  });
  const doc = await readFile(new URL('../../docs/audit.md', import.meta.url), 'utf8');
  const section = doc.split(/^## /m).find((part) => part.startsWith('Event record fields'));
  assert.ok(section, 'docs/audit.md has a "## Event record fields" section');
  const documented = section.split('\n').filter((line) => line.startsWith('| `')).map((line) => line.split('|')[1]!.trim().replace(/^`|`$/g, ''));
  const fields = leafPaths(full).sort();
  assert.deepEqual(
    { missingFromDoc: fields.filter((field) => !documented.includes(field)), notInRecord: documented.filter((field) => !fields.includes(field)) },
    { missingFromDoc: [], notInRecord: [] },
  );
});
