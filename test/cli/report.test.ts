/**
 * `portcullis report certificates`, run as a user would (the real CLI as a child process) on
 * configuration files and certificates generated per run: what it flags, how it sorts, its JSON
 * and its exit status.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCa, issueClientCertificate, issueServerCertificate } from '../../src/pki/dev-ca.ts';
import type { IssuedCertificate } from '../../src/pki/dev-ca.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = join(ROOT, 'src/cli/main.ts');
const DAY_MS = 86_400_000;

interface Finished {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function portcullis(args: readonly string[], cwd = ROOT): Promise<Finished> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { cwd, env: { ...process.env, NO_COLOR: '1' } }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr });
    });
  });
}

interface JsonReport {
  within: string;
  expired: number;
  expiring: number;
  certificates: Array<{
    kind: string;
    owner: string;
    status: string;
    days_left: number | null;
    not_after: string | null;
    subject: string | null;
    fingerprint_sha256: string;
  }>;
}

const fingerprintOf = (issued: IssuedCertificate): string => `sha256:${createHash('sha256').update(issued.certificate.raw).digest('hex')}`;

const LISTENERS = `version: 1
listeners:
  - name: partner
    zone: partner
    port: 8443
    hostnames: [api.partner.test]
    tls: { cert: server.crt, key: server.key, client_certificates: request }
`;

describe('portcullis report certificates', () => {
  let dir: string;
  /** Listener certificate (90 days), partner CA expiring in 5 days, a pin. */
  let soonConfig: string;
  /** As above, plus an upstream client certificate that expired 5 days ago. */
  let expiredConfig: string;
  /** Only certificates with a year or more left. */
  let healthyConfig: string;
  const issued: Record<string, IssuedCertificate> = {};
  const pin = `sha256:${'ab'.repeat(32)}`;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-report-'));
    const serverCa = await createCa({ commonName: 'Server CA', validityDays: 730 });
    issued['server'] = await issueServerCertificate(serverCa, { dnsNames: ['api.partner.test'], validityDays: 90 });
    issued['partnerCa'] = await createCa({ commonName: 'Acme Partner CA', validityDays: 5 });
    issued['expired'] = await issueClientCertificate(serverCa, { commonName: 'gateway-to-billing', notBefore: new Date(Date.now() - 10 * DAY_MS), validityDays: 5 });
    issued['longServer'] = await issueServerCertificate(serverCa, { dnsNames: ['api.partner.test'], validityDays: 400 });
    const files: Record<string, string> = {
      'server.crt': issued['server'].certPem,
      'server.key': issued['server'].keyPem,
      'long.crt': issued['longServer'].certPem,
      'long.key': issued['longServer'].keyPem,
      'partner-ca.crt': issued['partnerCa'].certPem,
      'expired.crt': issued['expired'].certPem,
      'expired.key': issued['expired'].keyPem,
      'soon.yaml': `${LISTENERS}partners:
  - id: acme
    mtls: { ca: [partner-ca.crt], pinned: ["${pin}"] }
`,
      'expired.yaml': `${LISTENERS}upstreams:
  - id: billing
    url: https://billing.internal.test
    tls: { cert: expired.crt, key: expired.key }
partners:
  - id: acme
    mtls: { ca: [partner-ca.crt], pinned: ["${pin}"] }
`,
      'healthy.yaml': LISTENERS.replace('server.crt', 'long.crt').replace('server.key', 'long.key'),
    };
    for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
    soonConfig = join(dir, 'soon.yaml');
    expiredConfig = join(dir, 'expired.yaml');
    healthyConfig = join(dir, 'healthy.yaml');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('flags a certificate expiring in 5 days with --within 30d (exit 1), and not with --within 1d (exit 0)', async () => {
    const wide = await portcullis(['report', 'certificates', '-c', soonConfig, '--within', '30d']);
    assert.equal(wide.code, 1, wide.stderr);
    const rows = wide.stdout.split('\n').filter((line) => line.includes('sha256:'));
    assert.equal(rows.length, 3, wide.stdout);
    // Soonest first; the pin, with no date, last.
    assert.match(rows[0]!, /^⚠\s+\d{4}-\d{2}-\d{2}\s+4\s+partner_ca\s+acme\s+CN=Acme Partner CA,O=Portcullis development PKI\s+sha256:[0-9a-f]{64}$/);
    assert.ok(rows[0]!.endsWith(fingerprintOf(issued['partnerCa']!)));
    assert.match(rows[1]!, /^\s+\d{4}-\d{2}-\d{2}\s+89\s+listener_certificate\s+partner\s+CN=api\.partner\.test,O=Portcullis development PKI\s+sha256:/);
    assert.match(rows[2]!, /^\s+unknown\s+-\s+partner_pin\s+acme\s+\(pinned fingerprint\)\s+sha256:a/);
    assert.ok(rows[2]!.endsWith(pin), 'the pin is printed whole, ready to paste');
    assert.match(wide.stdout, /3 certificates, ⚠ 1 expiring within 30d\n$/);
    assert.equal(wide.stderr, '');

    const narrow = await portcullis(['report', 'certificates', '-c', soonConfig, '--within', '1d']);
    assert.equal(narrow.code, 0, narrow.stderr);
    assert.doesNotMatch(narrow.stdout, /^[⚠✖]/m);
    assert.match(narrow.stdout, /3 certificates; none expires within 1d\n$/);
  });

  it('flags an expired certificate whatever the window, first in the list', async () => {
    const result = await portcullis(['report', 'certificates', '-c', expiredConfig, '--within', '1d']);
    assert.equal(result.code, 1, result.stderr);
    const rows = result.stdout.split('\n').filter((line) => line.includes('sha256:'));
    assert.match(rows[0]!, /^✖\s+\d{4}-\d{2}-\d{2}\s+-[56]\s+upstream_client_certificate\s+billing\s+CN=gateway-to-billing,/);
    assert.doesNotMatch(result.stdout, /^⚠/m, 'the 5-day CA is outside a 1-day window');
    assert.match(result.stdout, /4 certificates, ✖ 1 expired\n$/);
  });

  it('--format json: every certificate with its status, days left and fingerprint, soonest first', async () => {
    const result = await portcullis(['report', 'certificates', '-c', expiredConfig, '--format', 'json']);
    assert.equal(result.code, 1, result.stderr);
    const report = JSON.parse(result.stdout) as JsonReport;
    assert.equal(report.within, '30d', 'the default window');
    assert.deepEqual([report.expired, report.expiring], [1, 1]);
    assert.deepEqual(
      report.certificates.map((entry) => [entry.kind, entry.owner, entry.status, entry.fingerprint_sha256]),
      [
        ['upstream_client_certificate', 'billing', 'expired', fingerprintOf(issued['expired']!)],
        ['partner_ca', 'acme', 'expiring', fingerprintOf(issued['partnerCa']!)],
        ['listener_certificate', 'partner', 'valid', fingerprintOf(issued['server']!)],
        ['partner_pin', 'acme', 'unknown', pin],
      ],
    );
    const [expired, soon, listener, pinned] = report.certificates;
    assert.equal(expired!.not_after, issued['expired']!.certificate.validToDate.toISOString());
    assert.ok(expired!.days_left! < 0);
    assert.equal(soon!.days_left, 4);
    assert.equal(listener!.days_left, 89);
    assert.deepEqual([pinned!.days_left, pinned!.not_after, pinned!.subject], [null, null, null]);
  });

  it('exits 0 when nothing expires within the window', async () => {
    const result = await portcullis(['report', 'certificates', '--config', healthyConfig, '--within', '52w', '--format', 'json']);
    assert.equal(result.code, 0, result.stderr);
    const report = JSON.parse(result.stdout) as JsonReport;
    assert.deepEqual(report.certificates.map((entry) => [entry.kind, entry.status, entry.days_left]), [['listener_certificate', 'valid', 399]]);
  });

  it('exits 2 with the configuration problems, as validate prints them, when the file does not load', async () => {
    const broken = join(dir, 'broken.yaml');
    await writeFile(broken, `${LISTENERS}partners:\n  - id: acme\n    mtls: { ca: [missing-ca.crt] }\n`);
    const result = await portcullis(['report', 'certificates', '-c', broken]);
    assert.equal(result.code, 2);
    assert.equal(result.stdout, '');
    assert.match(result.stderr, /broken\.yaml:\d+:\d+ CONFIG_\w+ partners\[0\]\.mtls\.ca\[0\]: .*missing-ca\.crt/);
  });

  it('exits 2 with the usage on a usage error', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['report'], /a report is required: certificates/],
      [['report', 'keys'], /unknown report "keys"/],
      [['report', 'certificates'], /--config is required/],
      [['report', 'certificates', '-c', soonConfig, '--within', 'soon'], /--within must be a whole number of hours, days or weeks/],
      [['report', 'certificates', '-c', soonConfig, '--within', '9999d'], /--within must be/],
      [['report', 'certificates', '-c', soonConfig, '--format', 'xml'], /--format must be "table" or "json"/],
      [['report', 'certificates', '-c', soonConfig, '--frobnicate'], /Unknown option '--frobnicate'/],
    ];
    const results = await Promise.all(cases.map(([args]) => portcullis(args)));
    results.forEach((result, index) => {
      const [args, message] = cases[index]!;
      assert.equal(result.code, 2, args.join(' '));
      assert.match(result.stderr, message, args.join(' '));
      assert.match(result.stderr, /Usage: portcullis report certificates/, args.join(' '));
      assert.equal(result.stdout, '');
    });
  });
});
