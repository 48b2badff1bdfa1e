/**
 * The certificate inventory of a real configuration: files generated per run, loaded with
 * `loadConfig` as `serve` would, then listed from the snapshot alone.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.ts';
import type { Snapshot } from '../../src/config/snapshot.ts';
import { createCa, issueClientCertificate, issueServerCertificate } from '../../src/pki/dev-ca.ts';
import type { IssuedCertificate } from '../../src/pki/dev-ca.ts';
import { certificateInventory, earliestExpiries, INVENTORY_KINDS } from '../../src/pki/inventory.ts';
import type { InventoryEntry } from '../../src/pki/inventory.ts';

const DAY_MS = 86_400_000;
const PIN = 'c0ffee'.padEnd(64, '0');

function fingerprintOf(issued: IssuedCertificate): string {
  return createHash('sha256').update(issued.certificate.raw).digest('hex');
}

function serialOf(issued: IssuedCertificate): string {
  return issued.certificate.serialNumber.toLowerCase().replace(/^0+(?=.)/, '');
}

describe('certificateInventory', () => {
  let dir: string;
  let snapshot: Snapshot;
  const issued: Record<string, IssuedCertificate> = {};

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-inventory-'));
    const serverCa = await createCa({ commonName: 'Server CA' });
    // Two CAs for acme in one file, expiring at different times: the gauge takes the earlier.
    const acmeCa = await createCa({ commonName: 'Acme Partner CA', validityDays: 200 });
    const acmeCaNext = await createCa({ commonName: 'Acme Partner CA 2', validityDays: 400 });
    const upstreamCa = await createCa({ commonName: 'Billing CA', validityDays: 100 });
    const idpCa = await createCa({ commonName: 'IdP CA', validityDays: 300 });
    Object.assign(issued, {
      serverCa,
      acmeCa,
      acmeCaNext,
      upstreamCa,
      idpCa,
      server: await issueServerCertificate(serverCa, { dnsNames: ['api.partner.test'], validityDays: 60 }),
      upstreamClient: await issueClientCertificate(serverCa, { commonName: 'gateway-to-billing', validityDays: 20 }),
      introspectionClient: await issueClientCertificate(serverCa, { commonName: 'gateway-to-as', validityDays: 30 }),
    });
    const files: Record<string, string> = {
      // A served chain: leaf first, then the CA the listener sends along.
      'server.crt': issued['server']!.certPem + serverCa.certPem,
      'server.key': issued['server']!.keyPem,
      'acme-ca.crt': acmeCa.certPem + acmeCaNext.certPem,
      'billing-ca.crt': upstreamCa.certPem,
      'billing-client.crt': issued['upstreamClient']!.certPem + serverCa.certPem,
      'billing-client.key': issued['upstreamClient']!.keyPem,
      'idp-ca.crt': idpCa.certPem,
      'as-client.crt': issued['introspectionClient']!.certPem,
      'as-client.key': issued['introspectionClient']!.keyPem,
      'gateway.yaml': `version: 1
listeners:
  - name: public
    zone: public
    port: 8080
    hostnames: [localhost]
  - name: partner-tls
    zone: partner
    port: 8443
    hostnames: [api.partner.test]
    tls: { cert: server.crt, key: server.key, client_certificates: request }
upstreams:
  - { id: plain, url: "http://127.0.0.1:9000" }
  - id: billing
    url: https://billing.internal.test
    tls: { ca: billing-ca.crt, cert: billing-client.crt, key: billing-client.key }
issuers:
  - id: idp
    issuer: https://idp.test
    discovery: https://idp.test/.well-known/openid-configuration
    ca: idp-ca.crt
    algorithms: [ES256]
introspection:
  - id: as
    url: https://as.test/introspect
    ca: idp-ca.crt
    client_id: gateway
    auth: { method: tls_client_auth, cert: as-client.crt, key: as-client.key }
apis:
  - { id: orders, audience: "https://api.partner.test/orders" }
partners:
  - id: acme
    mtls:
      ca: [acme-ca.crt]
      pinned: ["sha256:${PIN}"]
    grants: [{ api: orders }]
  - id: globex
    grants: [{ api: orders }]
routes:
  - { id: orders, zone: partner, api: orders, methods: [GET], path: /orders, upstream: billing }
`,
    };
    for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
    const result = await loadConfig(join(dir, 'gateway.yaml'), { env: {}, offline: true });
    assert.ok(result.ok, JSON.stringify(!result.ok && result.issues, null, 2));
    snapshot = result.snapshot;
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('lists every certificate the configuration names, in configuration order, with its kind and owner', () => {
    const entries = certificateInventory(snapshot);
    const summary = entries.map((entry) => [entry.kind, entry.owner, entry.fingerprintSha256]);
    const fp = (name: string): string => fingerprintOf(issued[name]!);
    assert.deepEqual(summary, [
      ['listener_certificate', 'partner-tls', fp('server')],
      ['listener_chain', 'partner-tls', fp('serverCa')],
      ['partner_ca', 'acme', fp('acmeCa')],
      ['partner_ca', 'acme', fp('acmeCaNext')],
      ['partner_pin', 'acme', PIN],
      ['upstream_ca', 'billing', fp('upstreamCa')],
      ['upstream_client_certificate', 'billing', fp('upstreamClient')],
      ['upstream_client_chain', 'billing', fp('serverCa')],
      ['issuer_ca', 'idp', fp('idpCa')],
      ['introspection_ca', 'as', fp('idpCa')],
      ['introspection_client_certificate', 'as', fp('introspectionClient')],
    ]);
    for (const entry of entries) assert.ok((INVENTORY_KINDS as readonly string[]).includes(entry.kind));
  });

  it('gives names, serial and validity as the transport-identity stage records them', () => {
    const byFingerprint = new Map(certificateInventory(snapshot).map((entry) => [`${entry.kind}/${entry.fingerprintSha256}`, entry]));
    const upstreamClient = issued['upstreamClient']!;
    const entry = byFingerprint.get(`upstream_client_certificate/${fingerprintOf(upstreamClient)}`)!;
    assert.deepEqual(entry, {
      kind: 'upstream_client_certificate',
      owner: 'billing',
      // RFC 4514: most specific RDN first.
      subject: 'CN=gateway-to-billing,O=Portcullis development PKI',
      issuer: 'CN=Server CA,O=Portcullis development PKI',
      serial: serialOf(upstreamClient),
      fingerprintSha256: fingerprintOf(upstreamClient),
      notBefore: upstreamClient.certificate.validFromDate.toISOString(),
      notAfter: upstreamClient.certificate.validToDate.toISOString(),
    } satisfies InventoryEntry);
    const daysLeft = (Date.parse(entry.notAfter!) - Date.now()) / DAY_MS;
    assert.ok(daysLeft > 19 && daysLeft <= 20, `about 20 days left, got ${daysLeft}`);
  });

  it('lists a pin with no certificate: no names, no dates', () => {
    const pin = certificateInventory(snapshot).find((entry) => entry.kind === 'partner_pin')!;
    assert.deepEqual(pin, { kind: 'partner_pin', owner: 'acme', subject: null, issuer: null, serial: null, fingerprintSha256: PIN, notBefore: null, notAfter: null });
  });

  it('reads the snapshot only: the files can be gone', async () => {
    const before = certificateInventory(snapshot);
    const away = await mkdtemp(join(tmpdir(), 'portcullis-inventory-gone-'));
    await rm(away, { recursive: true, force: true });
    // The folder the snapshot was loaded from is not read again.
    assert.deepEqual(certificateInventory({ ...snapshot, baseDir: away, sourcePath: join(away, 'gateway.yaml') }), before);
  });

  it('earliestExpiries keeps one series per (kind, owner): the earliest notAfter, pins left out', () => {
    const series = earliestExpiries(certificateInventory(snapshot));
    const seconds = (name: string): number => issued[name]!.certificate.validToDate.getTime() / 1000;
    assert.deepEqual(
      series.map(({ kind, owner, notAfterSeconds }) => [kind, owner, notAfterSeconds]),
      [
        ['listener_certificate', 'partner-tls', seconds('server')],
        ['listener_chain', 'partner-tls', seconds('serverCa')],
        // 200 days, not the second CA's 400.
        ['partner_ca', 'acme', seconds('acmeCa')],
        ['upstream_ca', 'billing', seconds('upstreamCa')],
        ['upstream_client_certificate', 'billing', seconds('upstreamClient')],
        ['upstream_client_chain', 'billing', seconds('serverCa')],
        ['issuer_ca', 'idp', seconds('idpCa')],
        ['introspection_ca', 'as', seconds('idpCa')],
        ['introspection_client_certificate', 'as', seconds('introspectionClient')],
      ],
    );
    assert.ok(seconds('acmeCa') < seconds('acmeCaNext'));
  });

  it('a configuration without TLS names no certificate', async () => {
    const plain = join(dir, 'plain.yaml');
    await writeFile(plain, 'version: 1\nlisteners:\n  - { name: public, zone: public, port: 8080, hostnames: [localhost] }\n');
    const result = await loadConfig(plain, { env: {}, offline: true });
    assert.ok(result.ok, JSON.stringify(!result.ok && result.issues));
    assert.deepEqual(certificateInventory(result.snapshot), []);
  });

  it('skips a PEM block that does not parse rather than inventing dates for it', () => {
    const server = issued['server']!;
    const broken = Buffer.from(`${server.certPem}-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n`);
    const listener = snapshot.listeners.find((candidate) => candidate.tls !== null)!;
    const patched = { ...snapshot, listeners: [{ ...listener, tls: { ...listener.tls!, cert: broken } }], partners: new Map(), upstreams: new Map(), issuers: new Map(), introspection: new Map() } as unknown as Snapshot;
    const entries = certificateInventory(patched);
    assert.deepEqual(entries.map((entry) => [entry.kind, entry.fingerprintSha256]), [['listener_certificate', fingerprintOf(server)]]);
  });
});
