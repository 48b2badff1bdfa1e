/**
 * The mutual TLS configuration of issue 4 through the real loader: listener client certificates,
 * per-partner trust (`mtls`), revocation settings, the `mtls` credential, sender-constrained
 * tokens and `dpop`. Every check of `validate-mtls.ts` with its `line:col CODE path`, the files
 * it reads, and what compiles into the snapshot. Certificates come from a PKI made per run.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import { formatIssue } from '../../src/config/load.ts';
import { REVOCATION_SOFT_FAIL_ACK } from '../../src/config/schema.ts';
import { createCa, issueClientCertificate, issueServerCertificate } from '../../src/pki/dev-ca.ts';
import type { CertificateAuthority, IssuedCertificate } from '../../src/pki/dev-ca.ts';
import { brief, issuesOf, loadText, snapshotOf, tempDir, writeText } from './helpers.ts';

/**
 * Lines 1–11; whatever follows starts at line 12. One TLS listener of the partner zone that
 * asks for client certificates, one upstream, one API.
 */
const HEAD = `version: 1
listeners:
  - name: partner
    zone: partner
    port: 8443
    hostnames: [api.partner.test]
    tls: { cert: server.crt, key: server.key, client_certificates: request }
upstreams:
  - { id: backend, url: "http://127.0.0.1:9000" }
apis:
  - { id: orders, audience: "https://api.partner.test/orders" }
`;

const config = (rest: string): string => `${HEAD}${rest}`;

interface Pki {
  readonly acmeCa: CertificateAuthority;
  readonly acmeIntermediateLike: CertificateAuthority;
  readonly globexCa: CertificateAuthority;
  readonly server: IssuedCertificate;
  readonly pinnedClient: IssuedCertificate;
}

let pki: Pki;

before(async () => {
  const serverCa = await createCa({ commonName: 'Server CA' });
  const acmeCa = await createCa({ commonName: 'Acme Partner CA' });
  pki = {
    acmeCa,
    acmeIntermediateLike: await createCa({ commonName: 'Acme Second CA' }),
    globexCa: await createCa({ commonName: 'Globex Partner CA' }),
    server: await issueServerCertificate(serverCa, { dnsNames: ['api.partner.test'] }),
    pinnedClient: await issueClientCertificate(acmeCa, { commonName: 'acme-batch', uris: ['spiffe://acme.example/batch'] }),
  };
});

/** SHA-256 of the DER, lowercase hex, as the configuration pins it after `sha256:`. */
const fingerprintOf = (certificate: X509Certificate): string => certificate.fingerprint256.replaceAll(':', '').toLowerCase();

/** A fresh folder with the listener's certificate and key and each partner's CA file. */
async function pkiDir(t: TestContext): Promise<string> {
  const dir = await tempDir(t);
  await writeText(dir, 'server.crt', pki.server.certPem);
  await writeText(dir, 'server.key', pki.server.keyPem);
  // A bundle of two CA certificates in one file, and one in another.
  await writeText(dir, 'acme-ca.pem', `${pki.acmeCa.certPem}${pki.acmeIntermediateLike.certPem}`);
  await writeText(dir, 'globex-ca.pem', pki.globexCa.certPem);
  return dir;
}

async function mtlsSnapshot(t: TestContext, rest: string) {
  return snapshotOf(t, config(rest), await pkiDir(t));
}

async function mtlsIssues(t: TestContext, rest: string) {
  return issuesOf(t, config(rest), await pkiDir(t));
}

describe('partner trust (partners[].mtls)', () => {
  it('compiles each partner\'s own anchors (every certificate of every CA file), pins without the prefix, and name patterns', async (t) => {
    const pin = fingerprintOf(pki.pinnedClient.certificate);
    const snapshot = await mtlsSnapshot(
      t,
      `partners:
  - id: acme
    mtls:
      ca: [acme-ca.pem]
      pinned: ["sha256:${pin}"]
      subjects: ["CN=acme-*,O=Portcullis development PKI"]
      san_dns: ["*.acme.example"]
      san_uri: ["spiffe://acme.example/*"]
  - id: globex
    mtls: { ca: [globex-ca.pem] }
  - id: initech
`,
    );
    const acme = snapshot.partners.get('acme')!.mtls!;
    assert.equal(acme.partnerId, 'acme');
    assert.ok(acme.anchors.every((anchor) => anchor instanceof X509Certificate));
    assert.deepEqual(
      acme.anchors.map((anchor) => anchor.fingerprint256),
      [pki.acmeCa.certificate.fingerprint256, pki.acmeIntermediateLike.certificate.fingerprint256],
    );
    assert.deepEqual([...acme.pinned], [pin]);
    assert.deepEqual(acme.subjects, ['CN=acme-*,O=Portcullis development PKI']);
    assert.deepEqual(acme.sanDns, ['*.acme.example']);
    assert.deepEqual(acme.sanUri, ['spiffe://acme.example/*']);
    assert.equal(acme.revocation, null);

    // Trust is per partner: globex's anchors are its own CA only, never acme's.
    const globex = snapshot.partners.get('globex')!.mtls!;
    assert.deepEqual(globex.anchors.map((anchor) => anchor.fingerprint256), [pki.globexCa.certificate.fingerprint256]);
    assert.equal(globex.pinned.size, 0);
    assert.deepEqual([globex.subjects, globex.sanDns, globex.sanUri], [null, null, null]);

    // Only partners with trust are candidates for a client certificate.
    assert.equal(snapshot.partners.get('initech')!.mtls, null);
    assert.deepEqual(snapshot.partnerTrusts.map((trust) => trust.partnerId), ['acme', 'globex']);
    assert.equal(snapshot.partnerTrusts[0], acme);
  });

  it('accepts pins alone (no CA)', async (t) => {
    const pin = fingerprintOf(pki.pinnedClient.certificate);
    const snapshot = await mtlsSnapshot(t, `partners:\n  - id: acme\n    mtls: { pinned: ["sha256:${pin}"] }\n`);
    const trust = snapshot.partners.get('acme')!.mtls!;
    assert.deepEqual(trust.anchors, []);
    assert.deepEqual([...trust.pinned], [pin]);
  });

  it('refuses an mtls section with neither ca nor pinned: it could authenticate no one', async (t) => {
    const issues = await mtlsIssues(t, 'partners:\n  - id: acme\n    mtls:\n      san_dns: ["*.acme.example"]\n');
    assert.deepEqual(brief(issues), ['14:5 CONFIG_INVALID_TYPE partners[0].mtls']);
    assert.match(issues[0]!.message, /mtls needs "ca" \(CA certificates\) or "pinned" \(certificate fingerprints\)/);
    const explicit = await mtlsIssues(t, 'partners:\n  - id: acme\n    mtls: { ca: [], pinned: [] }\n');
    assert.deepEqual(brief(explicit), ['14:5 CONFIG_INVALID_TYPE partners[0].mtls']);
  });

  it('refuses a pin that is not sha256: and 64 lowercase hex digits', async (t) => {
    for (const pin of [`sha1:${'a'.repeat(40)}`, `sha256:${'A'.repeat(64)}`, 'a'.repeat(64), `sha256:${'a'.repeat(63)}`]) {
      const issues = await mtlsIssues(t, `partners:\n  - id: acme\n    mtls: { pinned: ["${pin}"] }\n`);
      assert.deepEqual(brief(issues), ['14:22 CONFIG_INVALID_VALUE partners[0].mtls.pinned[0]'], pin);
      assert.match(issues[0]!.message, /expected sha256: and 64 lowercase hex digits/);
    }
  });

  it('refuses empty name pattern lists (they would match nothing)', async (t) => {
    const issues = await mtlsIssues(t, 'partners:\n  - id: acme\n    mtls: { ca: [acme-ca.pem], san_uri: [] }\n');
    assert.deepEqual(brief(issues), ['14:32 CONFIG_INVALID_VALUE partners[0].mtls.san_uri']);
  });

  it(
    'refuses a name pattern that could never match, at load',
    async (t) => {
      const issues = await mtlsIssues(t, 'partners:\n  - id: acme\n    mtls: { ca: [acme-ca.pem], san_dns: ["acme..example"] }\n');
      assert.deepEqual(brief(issues), ['14:42 CONFIG_INVALID_VALUE partners[0].mtls.san_dns[0]']);
    },
  );
});

describe('CA and CRL files', () => {
  it('refuses a CA file that cannot be read, naming the resolved path', async (t) => {
    const dir = await pkiDir(t);
    const issues = await issuesOf(t, config('partners:\n  - id: acme\n    mtls: { ca: [acme-ca.pem, missing-ca.pem] }\n'), dir);
    assert.deepEqual(brief(issues), ['14:31 CONFIG_FILE_UNREADABLE partners[0].mtls.ca[1]']);
    assert.ok(issues[0]!.message.startsWith(`cannot read ${join(dir, 'missing-ca.pem')}: `), issues[0]!.message);
    // The whole line, as `portcullis validate` prints it.
    assert.equal(formatIssue(issues[0]!), `${join(dir, 'gateway.yaml')}:14:31 CONFIG_FILE_UNREADABLE partners[0].mtls.ca[1]: ${issues[0]!.message}`);
  });

  it('refuses a CA file without a PEM certificate, and one whose certificate cannot be parsed, never quoting it', async (t) => {
    const dir = await pkiDir(t);
    await writeText(dir, 'key-not-cert.pem', pki.server.keyPem);
    const body = pki.acmeCa.certPem.split('\n');
    // A certificate block whose base64 is cut in half: the markers are there, the DER is not.
    await writeText(dir, 'truncated.pem', [body[0], body[1], body[body.length - 2]].join('\n'));
    const issues = await issuesOf(t, config('partners:\n  - id: acme\n    mtls: { ca: [key-not-cert.pem, truncated.pem] }\n'), dir);
    assert.deepEqual(brief(issues), ['14:18 CONFIG_INVALID_VALUE partners[0].mtls.ca[0]', '14:36 CONFIG_INVALID_VALUE partners[0].mtls.ca[1]']);
    assert.match(issues[0]!.message, /key-not-cert\.pem: no PEM certificate \(-----BEGIN CERTIFICATE-----\) found$/);
    assert.match(issues[1]!.message, /truncated\.pem: PEM certificate #1 cannot be parsed$/);
    assert.ok(!issues.some((issue) => issue.message.includes('PRIVATE KEY-----')), 'a file\'s contents are never quoted');
  });

  it('refuses a CRL file that cannot be read', async (t) => {
    const dir = await pkiDir(t);
    const issues = await issuesOf(
      t,
      config('partners:\n  - id: acme\n    mtls:\n      ca: [acme-ca.pem]\n      revocation:\n        crl: { file: crls/acme.crl }\n'),
      dir,
    );
    assert.deepEqual(brief(issues), ['17:22 CONFIG_FILE_UNREADABLE partners[0].mtls.revocation.crl.file']);
    assert.ok(issues[0]!.message.includes(join(dir, 'crls', 'acme.crl')), issues[0]!.message);
  });

  it('changes the configuration hash when a partner CA or CRL file changes, the YAML untouched', async (t) => {
    const dir = await pkiDir(t);
    await writeText(dir, 'acme.crl', 'first CRL bytes');
    const text = config('partners:\n  - id: acme\n    mtls:\n      ca: [globex-ca.pem]\n      revocation: { crl: { file: acme.crl } }\n');
    const first = await snapshotOf(t, text, dir);
    assert.ok(first.watchedFiles.includes(join(dir, 'globex-ca.pem')));
    assert.ok(first.watchedFiles.includes(join(dir, 'acme.crl')));
    assert.equal((await snapshotOf(t, text, dir)).hash, first.hash, 'same files, same hash');

    await writeText(dir, 'globex-ca.pem', (await createCa({ commonName: 'Globex Rotated CA' })).certPem);
    const rotated = await snapshotOf(t, text, dir);
    assert.notEqual(rotated.hash, first.hash);

    await writeText(dir, 'acme.crl', 'next CRL bytes');
    const newCrl = await snapshotOf(t, text, dir);
    assert.notEqual(newCrl.hash, rotated.hash);
    assert.deepEqual(newCrl.partners.get('acme')!.mtls!.revocation!.crl!.file!.contents, Buffer.from('next CRL bytes'));
  });
});

describe('revocation (partners[].mtls.revocation)', () => {
  const partnerWith = (revocation: string): string => `partners:\n  - id: acme\n    mtls:\n      ca: [acme-ca.pem]\n      revocation:\n${revocation}`;

  it('compiles a CRL file (resolved, its bytes read at load) and an OCSP responder, with their defaults, hard-fail', async (t) => {
    const dir = await pkiDir(t);
    await writeText(dir, 'acme.crl', pki.acmeCa.certPem);
    const snapshot = await snapshotOf(t, config(partnerWith('        crl: { file: acme.crl }\n        ocsp: { url: "http://ocsp.acme.example:8080" }\n')), dir);
    assert.deepEqual(snapshot.partners.get('acme')!.mtls!.revocation, {
      crl: { file: { path: join(dir, 'acme.crl'), contents: Buffer.from(pki.acmeCa.certPem) }, url: null, fromCertificate: false, refreshMs: 3_600_000, timeoutMs: 5_000 },
      ocsp: { url: 'http://ocsp.acme.example:8080', fromCertificate: false, timeoutMs: 2_000, maxCacheMs: 3_600_000 },
      allowedHosts: [],
      softFail: false,
    });
  });

  it('compiles URLs named by the certificate, limited to the allowed hosts, and custom timings', async (t) => {
    const snapshot = await mtlsSnapshot(
      t,
      partnerWith(`        crl: { url: "http://crl.acme.example/acme.crl", from_certificate: true, refresh: 10m, timeout: 3s }
        ocsp: { from_certificate: true, timeout: 500ms, max_cache: 5m }
        allowed_hosts: [crl.acme.example, "ocsp.acme.example:8080"]
`),
    );
    assert.deepEqual(snapshot.partners.get('acme')!.mtls!.revocation, {
      crl: { file: null, url: 'http://crl.acme.example/acme.crl', fromCertificate: true, refreshMs: 600_000, timeoutMs: 3_000 },
      ocsp: { url: null, fromCertificate: true, timeoutMs: 500, maxCacheMs: 300_000 },
      allowedHosts: ['crl.acme.example', 'ocsp.acme.example:8080'],
      softFail: false,
    });
  });

  it('refuses a CRL without a source', async (t) => {
    const issues = await mtlsIssues(t, partnerWith('        crl: { refresh: 10m }\n'));
    assert.deepEqual(brief(issues), ['17:9 CONFIG_INVALID_TYPE partners[0].mtls.revocation.crl']);
    assert.match(issues[0]!.message, /a CRL source is needed: "file", "url", or "from_certificate: true"/);
  });

  it('refuses a CRL from both a file and a URL, at the URL', async (t) => {
    const dir = await pkiDir(t);
    await writeText(dir, 'acme.crl', 'x');
    const issues = await issuesOf(t, config(partnerWith('        crl:\n          file: acme.crl\n          url: "http://crl.acme.example/acme.crl"\n')), dir);
    assert.deepEqual(brief(issues), ['19:16 CONFIG_CONFLICT partners[0].mtls.revocation.crl.url']);
    assert.match(issues[0]!.message, /"file" and "url" are both set/);
  });

  it('refuses OCSP without a responder', async (t) => {
    const issues = await mtlsIssues(t, partnerWith('        ocsp: { timeout: 1s }\n'));
    assert.deepEqual(brief(issues), ['17:9 CONFIG_INVALID_TYPE partners[0].mtls.revocation.ocsp']);
    assert.match(issues[0]!.message, /an OCSP responder is needed: "url", or "from_certificate: true"/);
  });

  it('refuses a revocation section with neither crl nor ocsp', async (t) => {
    const issues = await mtlsIssues(t, partnerWith('        allowed_hosts: [crl.acme.example]\n'));
    assert.deepEqual(brief(issues), ['16:7 CONFIG_INVALID_TYPE partners[0].mtls.revocation']);
    assert.match(issues[0]!.message, /revocation needs "crl" or "ocsp" \(or remove the section: revocations made through the gateway apply anyway\)/);
  });

  it('refuses from_certificate without allowed_hosts: the gateway never fetches wherever a certificate points', async (t) => {
    for (const [source, position] of [
      ['        crl: { from_certificate: true }\n', '16:7'],
      ['        ocsp: { from_certificate: true }\n', '16:7'],
    ] as const) {
      const issues = await mtlsIssues(t, partnerWith(source));
      // allowed_hosts is not written: the issue points at the revocation section that lacks it.
      assert.deepEqual(brief(issues), [`${position} CONFIG_INVALID_TYPE partners[0].mtls.revocation.allowed_hosts`], source);
      assert.match(issues[0]!.message, /"from_certificate" needs "allowed_hosts".*\(SSRF\)/);
    }
    const written = await mtlsIssues(t, partnerWith('        ocsp: { from_certificate: true }\n        allowed_hosts: []\n'));
    assert.deepEqual(brief(written), ['18:9 CONFIG_INVALID_TYPE partners[0].mtls.revocation.allowed_hosts']);
    // A configured URL is trusted as written: no allow-list needed.
    await mtlsSnapshot(t, partnerWith('        ocsp: { url: "http://127.0.0.1:8888" }\n'));
  });

  it('refuses a URL that is not http(s)', async (t) => {
    const issues = await mtlsIssues(t, partnerWith('        ocsp: { url: "ldap://ldap.acme.example/cn=ocsp" }\n'));
    assert.deepEqual(brief(issues), ['17:22 CONFIG_INVALID_VALUE partners[0].mtls.revocation.ocsp.url']);
  });

  describe('soft-fail', () => {
    const softFail = (acknowledge: string): string => partnerWith(`        ocsp: { url: "http://127.0.0.1:8888" }\n        on_unavailable: allow\n${acknowledge}`);

    it('is refused without its acknowledgement, at on_unavailable, naming the exact string', async (t) => {
      const issues = await mtlsIssues(t, softFail(''));
      assert.deepEqual(brief(issues), ['18:25 CONFIG_INSECURE_UNACKNOWLEDGED partners[0].mtls.revocation.on_unavailable']);
      assert.ok(issues[0]!.message.includes(REVOCATION_SOFT_FAIL_ACK), issues[0]!.message);
    });

    it('is refused with any other acknowledgement, at the acknowledgement', async (t) => {
      const issues = await mtlsIssues(t, softFail('        acknowledge: "yes"\n'));
      assert.deepEqual(brief(issues), ['19:22 CONFIG_INSECURE_UNACKNOWLEDGED partners[0].mtls.revocation.acknowledge']);
    });

    it('compiles when acknowledged, and is reported as a warning at every load', async (t) => {
      const dir = await pkiDir(t);
      const snapshot = await snapshotOf(t, config(softFail(`        acknowledge: "${REVOCATION_SOFT_FAIL_ACK}"\n`)), dir);
      assert.equal(snapshot.partners.get('acme')!.mtls!.revocation!.softFail, true);
      assert.deepEqual(snapshot.warnings, [
        `${join(dir, 'gateway.yaml')}:18:25 partners[0].mtls.revocation: certificates of partner "acme" are accepted while their revocation status cannot be checked (soft-fail); every such request is marked`,
      ]);
    });

    it('is off by default and with on_unavailable: refuse, without a warning', async (t) => {
      for (const rest of [partnerWith('        ocsp: { url: "http://127.0.0.1:8888" }\n'), softFail('').replace('on_unavailable: allow', 'on_unavailable: refuse')]) {
        const snapshot = await mtlsSnapshot(t, rest);
        assert.equal(snapshot.partners.get('acme')!.mtls!.revocation!.softFail, false);
        assert.deepEqual(snapshot.warnings, []);
      }
    });
  });
});

describe('listener client certificates (listeners[].tls)', () => {
  const partners = 'partners:\n  - id: acme\n    mtls: { ca: [acme-ca.pem] }\n  - id: globex\n    mtls: { ca: [globex-ca.pem] }\n';
  const withTls = (tls: string): string => config(partners).replace('tls: { cert: server.crt, key: server.key, client_certificates: request }', `tls: { cert: server.crt, key: server.key${tls} }`);

  it('asks for no certificate by default', async (t) => {
    const snapshot = await snapshotOf(t, withTls(''), await pkiDir(t));
    const tls = snapshot.listeners[0]!.tls!;
    assert.deepEqual([tls.clientCertificates, tls.refuseAtHandshake], ['none', false]);
  });

  it('compiles the mode, and refuse_at_handshake only where certificates are asked for', async (t) => {
    for (const mode of ['request', 'require'] as const) {
      const tls = (await snapshotOf(t, withTls(`, client_certificates: ${mode}`), await pkiDir(t))).listeners[0]!.tls!;
      assert.deepEqual([tls.clientCertificates, tls.refuseAtHandshake], [mode, false], mode);
      const refusing = (await snapshotOf(t, withTls(`, client_certificates: ${mode}, refuse_at_handshake: true`), await pkiDir(t))).listeners[0]!.tls!;
      assert.deepEqual([refusing.clientCertificates, refusing.refuseAtHandshake], [mode, true], mode);
    }
  });

  it('refuses refuse_at_handshake on a listener that asks for no certificate, written or defaulted', async (t) => {
    const defaulted = await issuesOf(t, withTls(', refuse_at_handshake: true'), await pkiDir(t));
    assert.deepEqual(brief(defaulted), ['7:68 CONFIG_CONFLICT listeners[0].tls.refuse_at_handshake']);
    assert.match(defaulted[0]!.message, /"refuse_at_handshake" needs "client_certificates: request" or "require"/);
    const written = await issuesOf(t, withTls(', client_certificates: none, refuse_at_handshake: true'), await pkiDir(t));
    assert.deepEqual(brief(written), ['7:95 CONFIG_CONFLICT listeners[0].tls.refuse_at_handshake']);
  });

  it('refuses an unknown client_certificates mode', async (t) => {
    const issues = await issuesOf(t, withTls(', client_certificates: optional'), await pkiDir(t));
    assert.deepEqual(brief(issues), ['7:68 CONFIG_INVALID_VALUE listeners[0].tls.client_certificates']);
  });
});

describe('the mtls credential', () => {
  it('is indexed by partner: the client certificate alone names its one mtls credential', async (t) => {
    const snapshot = await mtlsSnapshot(
      t,
      `partners:
  - id: acme
    mtls: { ca: [acme-ca.pem] }
    credentials:
      - { id: acme-cert, type: mtls, rate_limit: { rate: 10/s, burst: 5 } }
  - id: globex
    mtls: { ca: [globex-ca.pem] }
    credentials:
      - { id: globex-cert, type: mtls }
`,
    );
    assert.deepEqual([...snapshot.credentials.mtls.keys()], ['acme', 'globex']);
    assert.deepEqual(snapshot.credentials.mtls.get('acme'), { id: 'acme-cert', type: 'mtls', partnerId: 'acme', rateLimit: { text: '10/s', emissionIntervalMs: 100, burst: 5 } });
    assert.deepEqual(snapshot.credentials.mtls.get('globex'), { id: 'globex-cert', type: 'mtls', partnerId: 'globex', rateLimit: null });
  });

  it('needs the partner\'s mtls section', async (t) => {
    const issues = await mtlsIssues(t, 'partners:\n  - id: acme\n    credentials:\n      - { id: acme-cert, type: mtls }\n');
    assert.deepEqual(brief(issues), ['15:32 CONFIG_DANGLING_REF partners[0].credentials[0].type']);
    assert.match(issues[0]!.message, /an "mtls" credential needs the partner's "mtls" section/);
  });

  it(
    'is not reported as dangling when the partner\'s mtls section is there but has its own mistake',
    async (t) => {
      const issues = await mtlsIssues(t, 'partners:\n  - id: acme\n    mtls: { pinned: ["sha256:nothex"] }\n    credentials:\n      - { id: acme-cert, type: mtls }\n');
      assert.deepEqual(brief(issues), ['14:22 CONFIG_INVALID_VALUE partners[0].mtls.pinned[0]']);
    },
  );

  it('is at most one per partner, reported at the later one', async (t) => {
    const issues = await mtlsIssues(
      t,
      'partners:\n  - id: acme\n    mtls: { ca: [acme-ca.pem] }\n    credentials:\n      - { id: acme-cert, type: mtls }\n      - { id: acme-cert-2, type: mtls }\n',
    );
    assert.deepEqual(brief(issues), ['17:34 CONFIG_DUPLICATE_ID partners[0].credentials[1].type']);
    assert.match(issues[0]!.message, /a partner has at most one "mtls" credential/);
  });

  it('shares the credential id space with every other credential', async (t) => {
    const issues = await mtlsIssues(
      t,
      'partners:\n  - id: acme\n    mtls: { ca: [acme-ca.pem] }\n    credentials:\n      - { id: shared, type: mtls }\n  - id: globex\n    mtls: { ca: [globex-ca.pem] }\n    credentials:\n      - { id: shared, type: mtls }\n',
    );
    assert.deepEqual(brief(issues), ['20:15 CONFIG_DUPLICATE_ID partners[1].credentials[0].id']);
  });

  it('is accepted by a route only where a listener of its zone asks for client certificates', async (t) => {
    const route = 'routes:\n  - { id: orders, zone: partner, api: orders, methods: [GET], path: /orders, upstream: backend, credentials: [mtls, jwt] }\n';
    const issuers = 'issuers:\n  - { id: idp, issuer: "https://idp.test", jwks_uri: "https://idp.test/jwks", algorithms: [ES256] }\n';
    const text = `${issuers}partners:\n  - id: acme\n    mtls: { ca: [acme-ca.pem] }\n    credentials: [{ id: acme-cert, type: mtls }]\n${route}`;
    const snapshot = await mtlsSnapshot(t, text);
    assert.deepEqual(snapshot.routes[0]!.credentials, ['mtls', 'jwt']);

    const issues = await issuesOf(t, config(text).replace(', client_certificates: request', ''), await pkiDir(t));
    assert.deepEqual(brief(issues), ['19:97 CONFIG_CONFLICT routes[0].credentials']);
    assert.match(issues[0]!.message, /route accepts "mtls" but no listener of zone "partner" asks for client certificates/);
  });
});

describe('sender-constrained tokens (require_sender_constrained)', () => {
  const listeners = `version: 1
listeners:
  - { name: public, zone: public, port: 8080, hostnames: [localhost] }
  - name: partner
    zone: partner
    port: 8443
    hostnames: [api.partner.test]
    tls: { cert: server.crt, key: server.key, client_certificates: request }
upstreams:
  - { id: backend, url: "http://127.0.0.1:9000" }
issuers:
  - { id: idp, issuer: "https://idp.test", jwks_uri: "https://idp.test/jwks", algorithms: [ES256] }
`;
  const route = (id: string, api: string, extra = ''): string => `  - { id: ${id}, zone: partner, api: ${api}, methods: [GET], path: /${id}, upstream: backend${extra} }\n`;

  it('defaults to off for partners, APIs and routes; a route inherits its API\'s setting unless it sets its own', async (t) => {
    const snapshot = await snapshotOf(
      t,
      `${listeners}apis:
  - { id: bound, audience: "https://api.partner.test/bound", require_sender_constrained: true }
  - { id: plain, audience: "https://api.partner.test/plain" }
partners:
  - { id: acme, require_sender_constrained: true }
  - { id: globex }
routes:
${route('inherits-on', 'bound')}${route('opts-out', 'bound', ', require_sender_constrained: false')}${route('inherits-off', 'plain')}${route('opts-in', 'plain', ', require_sender_constrained: true')}  - { id: health, zone: public, methods: [GET], path: /health, upstream: backend, auth: none }
`,
      await pkiDir(t),
    );
    assert.equal(snapshot.apis.get('bound')!.requireSenderConstrained, true);
    assert.equal(snapshot.apis.get('plain')!.requireSenderConstrained, false);
    assert.equal(snapshot.partners.get('acme')!.requireSenderConstrained, true);
    assert.equal(snapshot.partners.get('globex')!.requireSenderConstrained, false);
    assert.deepEqual(
      snapshot.routes.map((compiled) => [compiled.id, compiled.requireSenderConstrained]),
      [['inherits-on', true], ['opts-out', false], ['inherits-off', false], ['opts-in', true], ['health', false]],
    );
  });

  it('refuses a value that is not a boolean', async (t) => {
    const issues = await issuesOf(t, `${listeners}partners:\n  - { id: acme, require_sender_constrained: "yes" }\n`, await pkiDir(t));
    assert.deepEqual(brief(issues), ['14:45 CONFIG_INVALID_TYPE partners[0].require_sender_constrained']);
  });
});

describe('dpop', () => {
  it('compiles its defaults: asymmetric algorithms, 60s proofs, no server nonce', async (t) => {
    const snapshot = await mtlsSnapshot(t, '');
    assert.deepEqual(snapshot.dpop, { algorithms: new Set(['ES256', 'EdDSA', 'PS256', 'RS256']), proofLifetimeMs: 60_000, nonce: false, nonceLifetimeMs: 300_000 });
  });

  it('compiles what is written', async (t) => {
    const snapshot = await mtlsSnapshot(t, 'dpop:\n  algorithms: [ES384, EdDSA]\n  proof_lifetime: 30s\n  nonce: true\n  nonce_lifetime: 2m\n');
    assert.deepEqual(snapshot.dpop, { algorithms: new Set(['ES384', 'EdDSA']), proofLifetimeMs: 30_000, nonce: true, nonceLifetimeMs: 120_000 });
  });

  it('never accepts a symmetric algorithm, none, or an empty list', async (t) => {
    for (const alg of ['HS256', 'none']) {
      const issues = await mtlsIssues(t, `dpop:\n  algorithms: [ES256, ${alg}]\n`);
      assert.deepEqual(brief(issues), ['13:23 CONFIG_INVALID_VALUE dpop.algorithms[1]'], alg);
    }
    assert.deepEqual(brief(await mtlsIssues(t, 'dpop:\n  algorithms: []\n')), ['13:3 CONFIG_INVALID_VALUE dpop.algorithms']);
  });

  it('refuses a lifetime without a unit and unknown keys', async (t) => {
    assert.deepEqual(brief(await mtlsIssues(t, 'dpop:\n  proof_lifetime: 60\n')), ['13:19 CONFIG_INVALID_TYPE dpop.proof_lifetime']);
    const unknown = await mtlsIssues(t, 'dpop:\n  nonces: true\n');
    assert.deepEqual(brief(unknown), ['13:3 CONFIG_UNKNOWN_KEY dpop.nonces']);
  });
});

describe('a loaded example', () => {
  it('loads the worked example of docs/mtls.md', async (t) => {
    const dir = await pkiDir(t);
    const markdown = await readFile(join(import.meta.dirname, '../../docs/mtls.md'), 'utf8');
    const example = /<!-- example: mtls -->\n```yaml\n([\s\S]*?)```/.exec(markdown);
    assert.ok(example, 'docs/mtls.md has a yaml block marked <!-- example: mtls -->');
    await writeText(dir, 'acme-root.pem', pki.acmeCa.certPem);
    await writeText(dir, 'acme-issuing.pem', pki.acmeIntermediateLike.certPem);
    const result = await loadText(t, example[1]!.replaceAll('tls/partner.crt', 'server.crt').replaceAll('tls/partner.key', 'server.key').replaceAll('partners/acme/', ''), dir);
    assert.ok(result.ok, JSON.stringify(!result.ok && result.issues, null, 2));
    const { snapshot } = result;
    assert.equal(snapshot.partners.get('acme')!.mtls!.anchors.length, 2);
    assert.equal(snapshot.routes.find((compiled) => compiled.id === 'create-order')!.requireSenderConstrained, true);
    assert.deepEqual(snapshot.credentials.mtls.get('acme')?.id, 'acme-cert');
  });
});
