/**
 * How CRL and OCSP combine when a partner configures both: `revoked` from either wins, `good`
 * needs both, anything that cannot answer makes the whole `unavailable`.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { RevocationChecker } from '../../../src/pki/revocation/checker.ts';
import type { RevocationPolicy, RevocationStatus } from '../../../src/pki/types.ts';
import { setLogListener } from '../../../src/log.ts';
import { startCrlServer } from '../../helpers/crl-server.ts';
import type { CrlServer } from '../../helpers/crl-server.ts';
import { startOcspResponder } from '../../helpers/ocsp-responder.ts';
import type { OcspResponder } from '../../helpers/ocsp-responder.ts';
import { createCrl, createTestCa, issueCertificate, policy } from './fixtures.ts';
import type { CertificateAuthority, IssuedCertificate } from './fixtures.ts';

let ca: CertificateAuthority;
let good: IssuedCertificate;
let revokedOnCrl: IssuedCertificate;
let revokedAtResponder: IssuedCertificate;
let crlServer: CrlServer;
let responder: OcspResponder;
const checkers: RevocationChecker[] = [];

function checker(): RevocationChecker {
  const created = new RevocationChecker();
  checkers.push(created);
  return created;
}

function both(overrides: { ocspUrl?: string; crlUrl?: string } = {}): RevocationPolicy {
  return policy({ crl: { url: overrides.crlUrl ?? crlServer.url('/ca.crl') }, ocsp: { url: overrides.ocspUrl ?? responder.url } });
}

async function settle(result: RevocationStatus | Promise<RevocationStatus>): Promise<RevocationStatus> {
  return result;
}

before(async () => {
  setLogListener(null, { quiet: true });
  ca = await createTestCa('Combined checks CA');
  const responderCert = await issueCertificate(ca, { commonName: 'ocsp', extendedKeyUsage: ['ocspSigning'] });
  good = await issueCertificate(ca, { commonName: 'good' });
  revokedOnCrl = await issueCertificate(ca, { commonName: 'revoked on the CRL' });
  revokedAtResponder = await issueCertificate(ca, { commonName: 'revoked at the responder' });
  crlServer = await startCrlServer();
  crlServer.serve('/ca.crl', await createCrl(ca, { revoked: [revokedOnCrl.certificate] }));
  responder = await startOcspResponder({
    caCertPem: ca.certPem,
    signerCertPem: responderCert.certPem,
    signerKeyPem: responderCert.keyPem,
    entries: [
      { certificate: good.certificate, status: 'valid' },
      { certificate: revokedOnCrl.certificate, status: 'valid' },
      { certificate: revokedAtResponder.certificate, status: 'revoked' },
    ],
  });
});

after(async () => {
  for (const instance of checkers) instance.close();
  setLogListener(null, { quiet: false });
  await crlServer?.close();
  await responder?.stop();
});

test('nothing configured: good from source none, synchronously', () => {
  const status = checker().check(good.certificate, ca.certificate, policy({}));
  assert.deepEqual(status, { status: 'good', source: 'none' });
});

test('both say good: good (source ocsp); afterwards answered synchronously', async () => {
  const instance = checker();
  assert.deepEqual(await settle(instance.check(good.certificate, ca.certificate, both())), { status: 'good', source: 'ocsp' });
  const cached = instance.check(good.certificate, ca.certificate, both());
  assert.ok(!(cached instanceof Promise));
  assert.deepEqual(cached, { status: 'good', source: 'ocsp' });
  const stats = instance.stats();
  assert.equal(stats.checks, 2);
  assert.equal(stats.synchronous, 1);
});

test('revoked on the CRL wins, and the responder is not asked once the CRL is loaded', async () => {
  const instance = checker();
  // Loads the CRL (and asks about `good`).
  await settle(instance.check(good.certificate, ca.certificate, both()));
  const before = responder.requests;
  const status = instance.check(revokedOnCrl.certificate, ca.certificate, both());
  assert.ok(!(status instanceof Promise));
  assert.equal(status.status, 'revoked');
  assert.equal((status as { source: string }).source, 'crl');
  assert.equal(responder.requests, before);
});

test('good on the CRL but revoked at the responder: revoked (source ocsp)', async () => {
  const status = await settle(checker().check(revokedAtResponder.certificate, ca.certificate, both()));
  assert.equal(status.status, 'revoked');
  assert.equal((status as { source: string }).source, 'ocsp');
});

test('good on the CRL but the responder cannot answer: unavailable', async () => {
  const status = await settle(checker().check(good.certificate, ca.certificate, both({ ocspUrl: crlServer.url('/no-responder-here') })));
  assert.equal(status.status, 'unavailable');
  assert.match((status as { detail: string }).detail, /OCSP responder .* answered 404/);
});

test('the responder says good but the CRL cannot be had: unavailable', async () => {
  const status = await settle(checker().check(good.certificate, ca.certificate, both({ crlUrl: crlServer.url('/missing.crl') })));
  assert.equal(status.status, 'unavailable');
  assert.match((status as { detail: string }).detail, /CRL .*missing\.crl answered 404/);
});

test('a closed checker answers unavailable and fetches nothing', () => {
  const instance = checker();
  instance.close();
  const before = crlServer.requests('/ca.crl');
  const status = instance.check(good.certificate, ca.certificate, both());
  assert.deepEqual(status, { status: 'unavailable', detail: 'the revocation checker is closed' });
  assert.equal(crlServer.requests('/ca.crl'), before);
});

test('close() during a fetch ends it: the pending check settles unavailable', async () => {
  crlServer.serve('/slow.crl', await createCrl(ca, { revoked: [] }), { delayMs: 5_000 });
  const instance = checker();
  const pending = instance.check(good.certificate, ca.certificate, policy({ crl: { url: crlServer.url('/slow.crl'), timeoutMs: 10_000 } }));
  assert.ok(pending instanceof Promise);
  const started = Date.now();
  setTimeout(() => instance.close(), 50);
  const status = await pending;
  assert.equal(status.status, 'unavailable');
  assert.ok(Date.now() - started < 2_000, 'close() aborted the fetch');
});
