/**
 * Certificate lifecycle metrics (issue 4) from a real loaded configuration: the expiry gauge of
 * every certificate it names (earliest per kind and owner, following reloads) and the
 * revocation soft-fail counter fed by `observeRequest`. Also: docs/observability.md lists every
 * declared metric, so the doc cannot drift from `METRICS`.
 */
import { describe, it, before, after } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.ts';
import type { Snapshot } from '../../src/config/snapshot.ts';
import { REVOCATION_SOFT_FAIL_ACK } from '../../src/config/schema.ts';
import { METRICS, REVOCATION_SOFT_FAIL_FLAG, createMetrics } from '../../src/observability/metrics.ts';
import type { GatewayMetrics, ObservedRequest } from '../../src/observability/metrics.ts';
import type { Outcome } from '../../src/pipeline/audit.ts';
import { createCa, issueServerCertificate } from '../../src/pki/dev-ca.ts';
import type { CertificateAuthority, IssuedCertificate } from '../../src/pki/dev-ca.ts';
import { parseExposition, valueOf } from './scrape.ts';

const GAUGE = METRICS.certificateNotAfter.name;
const COUNTER = METRICS.revocationSoftFails.name;
const ALLOWED: Outcome = { reason: 'allowed', decision: 'allow', status: 200 };

const seconds = (issued: IssuedCertificate): number => issued.certificate.validToDate.getTime() / 1000;

function request(overrides: Partial<ObservedRequest>): ObservedRequest {
  return {
    route: null,
    method: 'GET',
    httpVersion: '1.1',
    startedAt: process.hrtime.bigint(),
    upstreamStartedAt: null,
    upstreamHeadersAt: null,
    upstreamStatus: null,
    flags: [],
    clientCertificate: null,
    principal: null,
    ...overrides,
  };
}

describe('certificate metrics', () => {
  let dir: string;
  let acmeCa: CertificateAuthority;
  let acmeCaLater: CertificateAuthority;
  let globexCa: CertificateAuthority;
  let server: IssuedCertificate;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-cert-metrics-'));
    const serverCa = await createCa({ commonName: 'Server CA' });
    server = await issueServerCertificate(serverCa, { dnsNames: ['api.partner.test'], validityDays: 60 });
    acmeCa = await createCa({ commonName: 'Acme CA', validityDays: 100 });
    acmeCaLater = await createCa({ commonName: 'Acme CA 2', validityDays: 300 });
    globexCa = await createCa({ commonName: 'Globex CA', validityDays: 200 });
    await writeFile(join(dir, 'server.crt'), server.certPem);
    await writeFile(join(dir, 'server.key'), server.keyPem);
    await writeFile(join(dir, 'acme-ca.crt'), acmeCaLater.certPem + acmeCa.certPem);
    await writeFile(join(dir, 'globex-ca.crt'), globexCa.certPem);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  async function load(partners: string): Promise<Snapshot> {
    const path = join(dir, `gateway-${Math.random().toString(36).slice(2)}.yaml`);
    await writeFile(
      path,
      `version: 1
listeners:
  - name: partner
    zone: partner
    port: 8443
    hostnames: [api.partner.test]
    tls: { cert: server.crt, key: server.key, client_certificates: request }
partners:
${partners}`,
    );
    const result = await loadConfig(path, { env: {}, offline: true });
    assert.ok(result.ok, JSON.stringify(!result.ok && result.issues, null, 2));
    return result.snapshot;
  }

  const ACME = `  - id: acme
    mtls: { ca: [acme-ca.crt] }
`;
  const GLOBEX_SOFT_FAIL = `  - id: globex
    mtls:
      ca: [globex-ca.crt]
      revocation:
        ocsp: { url: "http://127.0.0.1:1/ocsp" }
        on_unavailable: allow
        acknowledge: "${REVOCATION_SOFT_FAIL_ACK}"
`;

  function metricsFor(t: TestContext, current: () => Snapshot): GatewayMetrics {
    const metrics = createMetrics({ snapshot: current, auditStats: () => ({ queued: 0, written: 0, failedWrites: 0 }), defaultMetrics: false });
    t.after(() => metrics.close());
    return metrics;
  }

  it('the expiry gauge has one series per kind and owner, the earliest notAfter of its certificates, and follows a reload', async (t) => {
    const first = await load(ACME + GLOBEX_SOFT_FAIL);
    let current = first;
    const metrics = metricsFor(t, () => current);

    const samples = parseExposition(await metrics.scrape()).filter((sample) => sample.name === GAUGE);
    assert.deepEqual(
      samples.map((sample) => [sample.labels['kind'], sample.labels['owner'], sample.value]).sort(),
      [
        ['listener_certificate', 'partner', seconds(server)],
        // Two CAs in acme's file: the one that expires first.
        ['partner_ca', 'acme', seconds(acmeCa)],
        ['partner_ca', 'globex', seconds(globexCa)],
      ].sort(),
    );
    assert.ok(seconds(acmeCa) < seconds(acmeCaLater));

    // A reload that drops globex's mTLS: its series goes with it.
    current = await load(`${ACME}  - id: globex\n`);
    const reloaded = parseExposition(await metrics.scrape());
    assert.equal(valueOf(reloaded, GAUGE, { kind: 'partner_ca', owner: 'globex' }), undefined);
    assert.equal(valueOf(reloaded, GAUGE, { kind: 'partner_ca', owner: 'acme' }), seconds(acmeCa));
  });

  it('the soft-fail counter starts at 0 for partners that allow soft-fail, and counts flagged requests by partner', async (t) => {
    const snapshot = await load(ACME + GLOBEX_SOFT_FAIL);
    const metrics = metricsFor(t, () => snapshot);
    let samples = parseExposition(await metrics.scrape());
    assert.equal(valueOf(samples, COUNTER, { partner: 'globex' }), 0);
    assert.equal(valueOf(samples, COUNTER, { partner: 'acme' }), undefined, 'acme refuses when the status is unknown: no series');

    const facts = { fingerprintSha256: 'ab'.repeat(32) } as never;
    const end = process.hrtime.bigint();
    metrics.observeRequest(request({ flags: [REVOCATION_SOFT_FAIL_FLAG], clientCertificate: { partnerId: 'globex', facts } }), ALLOWED, end);
    metrics.observeRequest(request({ flags: ['long_lived_credential', REVOCATION_SOFT_FAIL_FLAG], clientCertificate: { partnerId: 'globex', facts } }), ALLOWED, end);
    // Not flagged: not counted, certificate or not.
    metrics.observeRequest(request({ clientCertificate: { partnerId: 'globex', facts } }), ALLOWED, end);
    metrics.observeRequest(request({ flags: ['source_network_violation'] }), ALLOWED, end);
    samples = parseExposition(await metrics.scrape());
    assert.equal(valueOf(samples, COUNTER, { partner: 'globex' }), 2);
    assert.equal(REVOCATION_SOFT_FAIL_FLAG, 'revocation_soft_fail', 'the flag the transport-identity stage sets');
  });

  it('docs/observability.md lists every declared metric', async () => {
    const doc = await readFile(new URL('../../docs/observability.md', import.meta.url), 'utf8');
    const missing = Object.values(METRICS)
      .map((definition) => definition.name)
      .filter((name) => !doc.includes(`| \`${name}\` |`));
    assert.deepEqual(missing, [], 'each metric has a row in the table of docs/observability.md');
  });
});
