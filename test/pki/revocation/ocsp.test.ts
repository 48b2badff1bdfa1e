/**
 * OCSP against real `openssl ocsp` responders (test/helpers/ocsp-responder.ts): a delegated
 * responder, the CA answering itself, and two signers that must not be believed.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { RevocationChecker } from '../../../src/pki/revocation/checker.ts';
import type { RevocationPolicy, RevocationStatus } from '../../../src/pki/types.ts';
import { setLogListener } from '../../../src/log.ts';
import { startOcspResponder } from '../../helpers/ocsp-responder.ts';
import type { OcspResponder } from '../../helpers/ocsp-responder.ts';
import { createTestCa, issueCertificate, manualClock, policy } from './fixtures.ts';
import type { CertificateAuthority, IssuedCertificate } from './fixtures.ts';

let ca: CertificateAuthority;
let good: IssuedCertificate;
let revoked: IssuedCertificate;
let unknown: IssuedCertificate;
let revokedLater: IssuedCertificate;
let withAia: IssuedCertificate;
let withForeignAia: IssuedCertificate;
let delegated: OcspResponder;
let direct: OcspResponder;
let unauthorised: OcspResponder;
let foreign: OcspResponder;
const checkers: RevocationChecker[] = [];

function checker(clock?: { read: () => number }): RevocationChecker {
  const created = new RevocationChecker(clock ? { now: clock.read } : {});
  checkers.push(created);
  return created;
}

function ocsp(responder: OcspResponder | string, options: { maxCacheMs?: number } = {}): RevocationPolicy {
  return policy({ ocsp: { url: typeof responder === 'string' ? responder : responder.url, timeoutMs: 2_000, ...options } });
}

function now(result: RevocationStatus | Promise<RevocationStatus>): RevocationStatus {
  assert.ok(!(result instanceof Promise), 'expected an answer from the cache');
  return result;
}

async function later(result: RevocationStatus | Promise<RevocationStatus>): Promise<RevocationStatus> {
  assert.ok(result instanceof Promise, 'expected a query to the responder');
  return result;
}

function check(instance: RevocationChecker, cert: IssuedCertificate, revocation: RevocationPolicy): RevocationStatus | Promise<RevocationStatus> {
  return instance.check(cert.certificate, ca.certificate, revocation);
}

function assertUnavailable(status: RevocationStatus, pattern: RegExp): void {
  assert.equal(status.status, 'unavailable', JSON.stringify(status));
  assert.match((status as { detail: string }).detail, pattern);
}

before(async () => {
  setLogListener(null, { quiet: true });
  ca = await createTestCa('OCSP test CA');
  const otherCa = await createTestCa('Another partner CA');
  const responderCert = await issueCertificate(ca, { commonName: 'ocsp responder', extendedKeyUsage: ['ocspSigning'] });
  const notAResponder = await issueCertificate(ca, { commonName: 'just a client', extendedKeyUsage: ['clientAuth'] });
  const otherCasResponder = await issueCertificate(otherCa, { commonName: 'ocsp responder', extendedKeyUsage: ['ocspSigning'] });
  good = await issueCertificate(ca, { commonName: 'good' });
  revoked = await issueCertificate(ca, { commonName: 'revoked' });
  unknown = await issueCertificate(ca, { commonName: 'not in the index' });
  revokedLater = await issueCertificate(ca, { commonName: 'revoked later' });
  const entries = [
    { certificate: good.certificate, status: 'valid' as const },
    { certificate: revoked.certificate, status: 'revoked' as const },
    { certificate: revokedLater.certificate, status: 'valid' as const },
  ];
  const signer = (cert: IssuedCertificate): { signerCertPem: string; signerKeyPem: string } => ({ signerCertPem: cert.certPem, signerKeyPem: cert.keyPem });
  [delegated, direct, unauthorised, foreign] = await Promise.all([
    startOcspResponder({ caCertPem: ca.certPem, ...signer(responderCert), entries }),
    startOcspResponder({ caCertPem: ca.certPem, ...signer(ca), entries, responderKeyId: true }),
    startOcspResponder({ caCertPem: ca.certPem, ...signer(notAResponder), entries }),
    startOcspResponder({ caCertPem: ca.certPem, ...signer(otherCasResponder), entries }),
  ]);
  withAia = await issueCertificate(ca, { commonName: 'names its responder', ocspUrls: [delegated.url] });
  withForeignAia = await issueCertificate(ca, { commonName: 'names localhost', ocspUrls: [delegated.url.replace('127.0.0.1', 'localhost')] });
  await delegated.setEntries([...entries, { certificate: withAia.certificate, status: 'valid' }, { certificate: withForeignAia.certificate, status: 'valid' }]);
});

after(async () => {
  for (const instance of checkers) instance.close();
  setLogListener(null, { quiet: false });
  await Promise.all([delegated, direct, unauthorised, foreign].map((responder) => responder?.stop()));
});

describe('answers of a delegated responder', () => {
  test('good: one query, then answered synchronously from the cache', async () => {
    const instance = checker();
    const before = delegated.requests;
    assert.deepEqual(await later(check(instance, good, ocsp(delegated))), { status: 'good', source: 'ocsp' });
    assert.deepEqual(now(check(instance, good, ocsp(delegated))), { status: 'good', source: 'ocsp' });
    assert.equal(delegated.requests, before + 1);
    assert.equal(instance.stats().ocsp.cacheHits, 1);
  });

  test('revoked, and cached too', async () => {
    const instance = checker();
    const status = await later(check(instance, revoked, ocsp(delegated)));
    assert.equal(status.status, 'revoked');
    assert.equal((status as { source: string }).source, 'ocsp');
    assert.match((status as { detail: string }).detail, /answered "revoked" for serial [0-9a-f]+ \(revoked \d{4}-/);
    assert.equal(now(check(instance, revoked, ocsp(delegated))).status, 'revoked');
  });

  test('unknown is unavailable, and never cached', async () => {
    const instance = checker();
    const before = delegated.requests;
    assertUnavailable(await later(check(instance, unknown, ocsp(delegated))), /answered "unknown"/);
    assertUnavailable(await later(check(instance, unknown, ocsp(delegated))), /answered "unknown"/);
    assert.equal(delegated.requests, before + 2);
  });

  test('concurrent checks of one certificate share one query', async () => {
    const instance = checker();
    const before = delegated.requests;
    const answers = await Promise.all(Array.from({ length: 6 }, () => check(instance, good, ocsp(delegated))));
    assert.deepEqual(new Set(answers.map((answer) => answer.status)), new Set(['good']));
    assert.equal(delegated.requests, before + 1);
  });
});

describe('who may sign an answer', () => {
  test('the issuing CA itself (responder identified by key hash)', async () => {
    assert.deepEqual(await later(check(checker(), good, ocsp(direct))), { status: 'good', source: 'ocsp' });
  });

  test('a certificate of the CA without id-kp-OCSPSigning is not authorised', async () => {
    assertUnavailable(await later(check(checker(), good, ocsp(unauthorised))), /not authorised to answer for this CA: it lacks the id-kp-OCSPSigning/);
  });

  test('an OCSP signing certificate of another CA is not authorised', async () => {
    assertUnavailable(await later(check(checker(), revoked, ocsp(foreign))), /not authorised to answer for this CA: it is not issued by the CA/);
  });
});

describe('freshness and caching', () => {
  test('after the cache expires (maxCacheMs), a certificate revoked meanwhile is detected', async () => {
    const clock = manualClock();
    const instance = checker(clock);
    const revocation = ocsp(delegated, { maxCacheMs: 10_000 });
    assert.equal((await later(check(instance, revokedLater, revocation))).status, 'good');
    await delegated.revoke(revokedLater.certificate);
    const before = delegated.requests;
    clock.advance(9_999);
    assert.equal(now(check(instance, revokedLater, revocation)).status, 'good');
    assert.equal(delegated.requests, before);
    clock.advance(1);
    assert.equal((await later(check(instance, revokedLater, revocation))).status, 'revoked');
    assert.equal(delegated.requests, before + 1);
  });

  test('a good answer is never cached beyond its nextUpdate, and an answer past nextUpdate is not trusted', async () => {
    const clock = manualClock();
    const instance = checker(clock);
    const revocation = ocsp(delegated, { maxCacheMs: 3_600_000 });
    assert.equal((await later(check(instance, good, revocation))).status, 'good');
    // The responder runs with -nmin 1: nextUpdate is a minute after its thisUpdate.
    clock.advance(55_000);
    assert.equal(now(check(instance, good, revocation)).status, 'good');
    clock.advance(6_000);
    // Our clock is now ahead of the responder's by a minute: its fresh answer looks expired.
    assertUnavailable(await later(check(instance, good, revocation)), /nextUpdate .* already passed/);
  });

  test('an answer from the future (thisUpdate beyond the clock skew) is not trusted', async () => {
    const clock = manualClock();
    clock.advance(-10 * 60_000);
    assertUnavailable(await later(check(checker(clock), good, ocsp(delegated))), /thisUpdate .* in the future/);
  });
});

describe('responder failures', () => {
  test('a responder that is down is unavailable; errors are not cached', async () => {
    const instance = checker();
    await delegated.stopResponder();
    try {
      assertUnavailable(await later(check(instance, good, ocsp(delegated))), /answered 502/);
    } finally {
      await delegated.startResponder();
    }
    assert.equal((await later(check(instance, good, ocsp(delegated)))).status, 'good');
  });

  test('nothing listening is unavailable', async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const { port } = probe.address() as AddressInfo;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    assertUnavailable(await later(check(checker(), good, ocsp(`http://127.0.0.1:${port}/`))), /ECONNREFUSED/);
  });
});

describe('the responder named by the certificate (AIA)', () => {
  test('asked when its host is allowed', async () => {
    const revocation = policy({ ocsp: { fromCertificate: true }, allowedHosts: ['127.0.0.1'] });
    const before = delegated.requests;
    assert.deepEqual(await later(check(checker(), withAia, revocation)), { status: 'good', source: 'ocsp' });
    assert.equal(delegated.requests, before + 1);
  });

  test('never asked when its host is not allowed', async () => {
    const revocation = policy({ ocsp: { fromCertificate: true }, allowedHosts: ['127.0.0.1'] });
    const before = delegated.requests;
    assertUnavailable(now(check(checker(), withForeignAia, revocation)), /localhost.*not in allowed_hosts/);
    assert.equal(delegated.requests, before);
  });

  test('a certificate without AIA has no responder to ask', () => {
    assertUnavailable(now(check(checker(), good, policy({ ocsp: { fromCertificate: true }, allowedHosts: ['127.0.0.1'] }))), /names no http\(s\) OCSP responder/);
  });
});
