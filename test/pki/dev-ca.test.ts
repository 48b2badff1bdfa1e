import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey, hash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import {
  checkDevPki,
  createCa,
  createDevPki,
  issueClientCertificate,
  issueServerCertificate,
  loadOrCreateDevPki,
  writePki,
  DEV_PKI_FILES,
  type CertificateAuthority,
  type IssuedCertificate,
} from '../../src/pki/dev-ca.ts';

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const DAY_MS = 86_400_000;

function days(cert: X509Certificate): number {
  return (cert.validToDate.getTime() - Date.now()) / DAY_MS;
}

describe('createCa', () => {
  it('creates a self-signed EC P-256 CA valid for one year', async () => {
    const ca = await createCa({ commonName: 'Test CA' });
    assert.equal(ca.certificate.ca, true);
    assert.ok(ca.certificate.verify(ca.certificate.publicKey), 'self-signed');
    assert.equal(ca.certificate.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.match(ca.certificate.subject, /CN=Test CA/);
    assert.ok(Math.abs(days(ca.certificate) - 365) < 1);
    assert.ok(ca.certificate.validFromDate.getTime() < Date.now(), 'backdated for clock skew');
    assert.match(ca.keyPem, /^-----BEGIN PRIVATE KEY-----\n/, 'PKCS#8 PEM');
    assert.ok(ca.certificate.checkPrivateKey(createPrivateKey(ca.keyPem)));
  });

  it('gives every certificate a random, positive serial number', async () => {
    const [a, b] = await Promise.all([createCa({ commonName: 'A' }), createCa({ commonName: 'A' })]);
    assert.notEqual(a.certificate.serialNumber, b.certificate.serialNumber);
    for (const serial of [a.certificate.serialNumber, b.certificate.serialNumber]) {
      assert.ok(serial.length >= 30, `at least 120 bits: ${serial}`);
      assert.ok(Number.parseInt(serial.slice(0, 2), 16) < 0x80, 'positive');
    }
  });

  it('keeps a common name with DN metacharacters as one attribute', async () => {
    const ca = await createCa({ commonName: 'Acme, Inc. = CA' });
    assert.match(ca.certificate.subject, /CN=Acme\\, Inc\. = CA/);
  });

  it('creates an RSA CA and RSA leaves on request', async () => {
    const ca = await createCa({ commonName: 'RSA CA', keyAlgorithm: 'rsa' });
    assert.equal(ca.certificate.publicKey.asymmetricKeyType, 'rsa');
    const leaf = await issueServerCertificate(ca, { dnsNames: ['localhost'] });
    assert.equal(leaf.certificate.publicKey.asymmetricKeyType, 'rsa');
    assert.ok(leaf.certificate.verify(ca.certificate.publicKey));
  });
});

describe('issueServerCertificate / issueClientCertificate', () => {
  let ca: CertificateAuthority;
  let server: IssuedCertificate;
  let client: IssuedCertificate;
  before(async () => {
    ca = await createCa({ commonName: 'Issuing CA' });
    server = await issueServerCertificate(ca, { dnsNames: ['localhost', 'api.localhost'], ipAddresses: ['127.0.0.1', '::1'] });
    client = await issueClientCertificate(ca, { commonName: 'acme', uris: ['spiffe://example.test/partner/acme'], dnsNames: ['acme.example'] });
  });

  it('issues a 90-day serverAuth leaf with DNS and IP SANs, signed by the CA', () => {
    const cert = server.certificate;
    assert.equal(cert.ca, false);
    assert.ok(cert.checkIssued(ca.certificate) && cert.verify(ca.certificate.publicKey));
    assert.deepEqual(cert.keyUsage, [SERVER_AUTH]);
    assert.equal(cert.subjectAltName, 'DNS:localhost, DNS:api.localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    assert.equal(cert.checkHost('localhost'), 'localhost');
    assert.equal(cert.checkIP('127.0.0.1'), '127.0.0.1');
    assert.equal(cert.checkHost('other.localhost'), undefined);
    assert.ok(Math.abs(days(cert) - 90) < 1);
    assert.ok(cert.checkPrivateKey(createPrivateKey(server.keyPem)));
  });

  it('issues a clientAuth leaf with URI and DNS SANs', () => {
    const cert = client.certificate;
    assert.deepEqual(cert.keyUsage, [CLIENT_AUTH]);
    assert.equal(cert.subjectAltName, 'URI:spiffe://example.test/partner/acme, DNS:acme.example');
    assert.match(cert.subject, /CN=acme/);
    assert.ok(cert.verify(ca.certificate.publicKey));
    // RFC 8705 x5t#S256 is computable from what the module returns.
    assert.equal(hash('sha256', cert.raw, 'base64url').length, 43);
  });

  it('refuses a server certificate without any name', async () => {
    await assert.rejects(issueServerCertificate(ca, {}), /at least one DNS name or IP address/);
  });

  it('never lets a leaf outlive its CA, and honours explicit validity', async () => {
    const shortCa = await createCa({ commonName: 'Short CA', validityDays: 10 });
    const leaf = await issueServerCertificate(shortCa, { dnsNames: ['localhost'] });
    assert.equal(leaf.certificate.validToDate.getTime(), shortCa.certificate.validToDate.getTime());

    const expired = await issueClientCertificate(ca, { commonName: 'old', notBefore: new Date(Date.now() - 100 * DAY_MS), validityDays: 90 });
    assert.ok(expired.certificate.validToDate.getTime() < Date.now());
  });
});

describe('Node TLS accepts the certificates', () => {
  let ca: CertificateAuthority;
  let server: IssuedCertificate;
  let client: IssuedCertificate;
  let httpsServer: https.Server;
  let port: number;

  before(async () => {
    ca = await createCa({ commonName: 'TLS test CA' });
    server = await issueServerCertificate(ca, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    client = await issueClientCertificate(ca, { commonName: 'acme', uris: ['spiffe://example.test/partner/acme'] });
    httpsServer = https.createServer(
      // Client certificates are requested but optional, so one server covers both cases.
      { cert: server.certPem, key: server.keyPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: false },
      (req, res) => {
        const socket = req.socket as TLSSocket;
        const peer = socket.getPeerCertificate();
        res.end(JSON.stringify({ clientAuthorized: socket.authorized, clientError: socket.authorizationError ?? null, clientCn: peer.subject?.CN ?? null }));
      },
    );
    await new Promise<void>((resolve) => httpsServer.listen(0, '127.0.0.1', resolve));
    port = (httpsServer.address() as AddressInfo).port;
  });
  after(() => new Promise<void>((resolve) => httpsServer.close(() => resolve())));

  function get(options: https.RequestOptions): Promise<{ authorized: boolean; body: Record<string, unknown> }> {
    return new Promise((resolve, reject) => {
      const req = https.get({ host: '127.0.0.1', port, path: '/', agent: false, ...options }, (res) => {
        const authorized = (res.socket as TLSSocket).authorized;
        let text = '';
        res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ authorized, body: JSON.parse(text) as Record<string, unknown> }));
      });
      req.on('error', reject);
    });
  }

  it('verifies the server certificate for SAN localhost', async () => {
    const { authorized } = await get({ servername: 'localhost', ca: ca.certPem });
    assert.equal(authorized, true);
  });

  it('verifies the server certificate for SAN 127.0.0.1', async () => {
    const { authorized } = await get({ ca: ca.certPem });
    assert.equal(authorized, true);
  });

  it('fails for a name the certificate does not carry', async () => {
    await assert.rejects(get({ servername: 'example.com', ca: ca.certPem }), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
  });

  it('fails against another CA', async () => {
    const other = await createCa({ commonName: 'Other CA' });
    // The server also trusts its CA for client certificates, so OpenSSL sends it along in the chain.
    await assert.rejects(get({ servername: 'localhost', ca: other.certPem }), (error: NodeJS.ErrnoException) =>
      ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN'].includes(error.code ?? ''),
    );
  });

  it('accepts the client certificate for mTLS', async () => {
    const { body } = await get({ servername: 'localhost', ca: ca.certPem, cert: client.certPem, key: client.keyPem });
    assert.deepEqual(body, { clientAuthorized: true, clientError: null, clientCn: 'acme' });
  });

  it('rejects a serverAuth-only certificate used as a client certificate (EKU is enforced)', async () => {
    const { body } = await get({ servername: 'localhost', ca: ca.certPem, cert: server.certPem, key: server.keyPem });
    assert.equal(body['clientAuthorized'], false);
    assert.equal(body['clientError'], 'INVALID_PURPOSE');
  });
});

describe('dev PKI on disk', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'portcullis-pki-'));
  });
  after(() => rm(root, { recursive: true, force: true }));

  it('writes the PEM files, keys 0600, and reuses them on the next start', async () => {
    const dir = join(root, 'reuse');
    const first = await loadOrCreateDevPki(dir);
    assert.equal(first.reused, false);
    for (const [file, name] of Object.entries(DEV_PKI_FILES)) {
      assert.equal(first.paths[file as keyof typeof DEV_PKI_FILES], join(dir, name));
      const mode = (await stat(join(dir, name))).mode & 0o777;
      if (name.endsWith('.key')) assert.equal(mode, 0o600, `${name} mode`);
      else assert.equal(mode & 0o077 & ~0o044, 0, `${name} not group/world writable`);
    }
    const server = new X509Certificate(await readFile(first.paths.serverCert));
    for (const name of ['localhost', 'api.localhost', 'public.localhost']) assert.equal(server.checkHost(name), name);
    assert.equal(server.checkIP('127.0.0.1'), '127.0.0.1');
    const client = new X509Certificate(await readFile(first.paths.clientCert));
    assert.deepEqual(client.keyUsage, [CLIENT_AUTH]);

    const caBefore = await readFile(first.paths.ca);
    const second = await loadOrCreateDevPki(dir);
    assert.equal(second.reused, true);
    assert.deepEqual(await readFile(second.paths.ca), caBefore);
    assert.equal(second.expiresAt.getTime(), first.expiresAt.getTime());
  });

  it('regenerates when a certificate expires within 7 days', async () => {
    const dir = join(root, 'expiring');
    await writePki(dir, await createDevPki({ leafValidityDays: 5 }));
    const check = await checkDevPki(dir);
    assert.equal(check.usable, false);
    assert.match(check.usable ? '' : check.reason, /server\.crt expires/);
    const caBefore = await readFile(join(dir, DEV_PKI_FILES.ca));
    const result = await loadOrCreateDevPki(dir);
    assert.equal(result.reused, false);
    assert.notDeepEqual(await readFile(result.paths.ca), caBefore);
    assert.ok(result.expiresAt.getTime() > Date.now() + 80 * DAY_MS);
  });

  it('regenerates as the CA nears its end, judged at the given time', async () => {
    const dir = join(root, 'later');
    await loadOrCreateDevPki(dir);
    const inTwoMonths = await checkDevPki(dir, { now: new Date(Date.now() + 60 * DAY_MS) });
    assert.equal(inTwoMonths.usable, true);
    const nearLeafEnd = await checkDevPki(dir, { now: new Date(Date.now() + 85 * DAY_MS) });
    assert.equal(nearLeafEnd.usable, false);
  });

  it('regenerates when a key does not match its certificate or a file is missing or corrupt', async () => {
    const dir = join(root, 'tampered');
    await loadOrCreateDevPki(dir);
    const stranger = await createCa({ commonName: 'Stranger' });
    await writeFile(join(dir, DEV_PKI_FILES.serverKey), stranger.keyPem);
    assert.deepEqual(await checkDevPki(dir), { usable: false, reason: 'server.key does not match server.crt' });

    await writeFile(join(dir, DEV_PKI_FILES.serverCert), 'not a certificate');
    assert.deepEqual(await checkDevPki(dir), { usable: false, reason: 'a file is not valid PEM' });

    await writeFile(join(dir, DEV_PKI_FILES.ca), stranger.certPem);
    await loadOrCreateDevPki(dir);
    assert.equal((await checkDevPki(dir)).usable, true);

    await rm(join(dir, DEV_PKI_FILES.clientKey));
    assert.deepEqual(await checkDevPki(dir), { usable: false, reason: 'client-acme.key is missing' });
  });

  it('regenerates when the leaves were signed by a different CA', async () => {
    const dir = join(root, 'foreign');
    await loadOrCreateDevPki(dir);
    const stranger = await createCa({ commonName: 'Portcullis development CA' });
    await writeFile(join(dir, DEV_PKI_FILES.ca), stranger.certPem);
    assert.deepEqual(await checkDevPki(dir), { usable: false, reason: 'server.crt is not signed by ca.crt' });
  });
});
