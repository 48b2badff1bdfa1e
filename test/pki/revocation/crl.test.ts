import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RevocationChecker } from '../../../src/pki/revocation/checker.ts';
import { FILE_CHECK_INTERVAL_MS, MAX_CRL_BYTES, parseCrl, revocationDate } from '../../../src/pki/revocation/crl.ts';
import { DerError, readElement } from '../../../src/pki/revocation/der.ts';
import type { RevocationPolicy, RevocationStatus } from '../../../src/pki/types.ts';
import { setLogListener } from '../../../src/log.ts';
import { startCrlServer } from '../../helpers/crl-server.ts';
import type { CrlServer } from '../../helpers/crl-server.ts';
import { createCrl, createTestCa, issueCertificate, manualClock, policy, toPem } from './fixtures.ts';
import type { CertificateAuthority, IssuedCertificate } from './fixtures.ts';

const MINUTE = 60_000;

let server: CrlServer;
let dir: string;
let ca: CertificateAuthority;
/** Same subject name as `ca`, another key: what an attacker who can serve a CRL but not sign one has. */
let impostor: CertificateAuthority;
let otherCa: CertificateAuthority;
let good: IssuedCertificate;
let revoked: IssuedCertificate;
let fromLocalhost: IssuedCertificate;
let checkers: RevocationChecker[] = [];

function checker(clock?: { read: () => number }): RevocationChecker {
  const created = new RevocationChecker(clock ? { now: clock.read } : {});
  checkers.push(created);
  return created;
}

/** A check that must be answered without waiting. */
function now(result: RevocationStatus | Promise<RevocationStatus>): RevocationStatus {
  assert.ok(!(result instanceof Promise), 'expected a synchronous answer');
  return result;
}

/** A check that must wait for a fetch or a file read. */
async function later(result: RevocationStatus | Promise<RevocationStatus>): Promise<RevocationStatus> {
  assert.ok(result instanceof Promise, 'expected the check to wait for a (re)load');
  return result;
}

function check(instance: RevocationChecker, cert: IssuedCertificate, revocation: RevocationPolicy, issuer = ca): RevocationStatus | Promise<RevocationStatus> {
  return instance.check(cert.certificate, issuer.certificate, revocation);
}

function assertUnavailable(status: RevocationStatus, pattern: RegExp): void {
  assert.equal(status.status, 'unavailable', JSON.stringify(status));
  assert.match((status as { detail: string }).detail, pattern);
}

before(async () => {
  setLogListener(null, { quiet: true });
  server = await startCrlServer();
  dir = await mkdtemp(join(tmpdir(), 'portcullis-crl-'));
  ca = await createTestCa('Revocation test CA');
  impostor = await createTestCa('Revocation test CA');
  otherCa = await createTestCa('Another partner CA');
  good = await issueCertificate(ca, { commonName: 'good', crlUrls: [server.url('/cdp.crl')] });
  revoked = await issueCertificate(ca, { commonName: 'revoked', crlUrls: [server.url('/cdp.crl')] });
  fromLocalhost = await issueCertificate(ca, { commonName: 'names localhost', crlUrls: [`http://localhost:${server.port}/elsewhere.crl`] });
});

after(async () => {
  for (const instance of checkers) instance.close();
  checkers = [];
  setLogListener(null, { quiet: false });
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

describe('CRL from a file', () => {
  test('good and revoked, answered synchronously from the contents read at load time', async () => {
    const der = await createCrl(ca, { revoked: [revoked.certificate] });
    const path = join(dir, 'load-time.crl');
    await writeFile(path, der);
    const revocation = policy({ crl: { file: { path, contents: Buffer.from(toPem(der)) } } });
    const instance = checker();
    assert.deepEqual(now(check(instance, good, revocation)), { status: 'good', source: 'crl' });
    const status = now(check(instance, revoked, revocation));
    assert.equal(status.status, 'revoked');
    assert.equal((status as { source: string }).source, 'crl');
    assert.match((status as { detail: string }).detail, new RegExp(revoked.certificate.serialNumber.toLowerCase().replace(/^0+/, '')));
  });

  test('a changed file is re-read (its mtime changed) and a new revocation applies without a restart', async () => {
    const clock = manualClock();
    const path = join(dir, 'swapped.crl');
    const first = await createCrl(ca, { revoked: [] });
    await writeFile(path, first);
    const revocation = policy({ crl: { file: { path, contents: first } } });
    const instance = checker(clock);
    assert.equal(now(check(instance, good, revocation)).status, 'good');

    await writeFile(path, await createCrl(ca, { revoked: [good.certificate] }));
    // Within the check interval the file is not looked at.
    assert.equal(now(check(instance, good, revocation)).status, 'good');
    clock.advance(FILE_CHECK_INTERVAL_MS);
    assert.equal((await later(check(instance, good, revocation))).status, 'revoked');
    assert.equal(now(check(instance, good, revocation)).status, 'revoked');
  });

  test('a configuration reload that read a newer file applies it at once', async () => {
    const path = join(dir, 'reloaded.crl');
    const first = await createCrl(ca, { revoked: [] });
    await writeFile(path, first);
    const instance = checker(manualClock());
    assert.equal(now(check(instance, good, policy({ crl: { file: { path, contents: first } } }))).status, 'good');
    const second = await createCrl(ca, { revoked: [good.certificate] });
    await writeFile(path, second);
    assert.equal(now(check(instance, good, policy({ crl: { file: { path, contents: second } } }))).status, 'revoked');
  });

  test('a CRL signed by another key under the CA\'s name is not trusted', async () => {
    const der = await createCrl(ca, { revoked: [], signedBy: impostor });
    const path = join(dir, 'impostor.crl');
    await writeFile(path, der);
    const instance = checker();
    // The contents read at load time are refused, so the file is read again on first use.
    assertUnavailable(await later(check(instance, good, policy({ crl: { file: { path, contents: der } } }))), /signature does not verify with the issuer's key/);
    assert.equal(instance.stats().crl.sources[0]!.loaded, false);
  });

  test('a wrongly signed file never replaces the CRL in use', async () => {
    const clock = manualClock();
    const path = join(dir, 'tampered.crl');
    const genuine = await createCrl(ca, { revoked: [revoked.certificate] });
    await writeFile(path, genuine);
    const revocation = policy({ crl: { file: { path, contents: genuine } } });
    const instance = checker(clock);
    assert.equal(now(check(instance, revoked, revocation)).status, 'revoked');
    // Someone who can write the file but not sign: an empty CRL under the CA's name.
    await writeFile(path, await createCrl(ca, { revoked: [], signedBy: impostor }));
    clock.advance(FILE_CHECK_INTERVAL_MS);
    assert.equal((await later(check(instance, revoked, revocation))).status, 'revoked');
    assert.match(String(instance.stats().crl.sources[0]!.lastError), /signature does not verify/);
  });

  test('a CRL past its nextUpdate is not trusted', async () => {
    const stale = await createCrl(ca, { revoked: [], thisUpdate: new Date(Date.now() - 20 * MINUTE), nextUpdate: new Date(Date.now() - MINUTE) });
    const path = join(dir, 'stale.crl');
    await writeFile(path, stale);
    const instance = checker();
    assertUnavailable(await later(check(instance, good, policy({ crl: { file: { path, contents: stale } } }))), /past its nextUpdate/);
  });

  test('a CRL without nextUpdate is not trusted', async () => {
    const open = await createCrl(ca, { revoked: [], nextUpdate: null });
    const path = join(dir, 'open-ended.crl');
    await writeFile(path, open);
    assertUnavailable(await later(check(checker(), good, policy({ crl: { file: { path, contents: open } } }))), /no nextUpdate/);
  });

  test('a CRL that was good becomes unavailable once its nextUpdate passes', async () => {
    const clock = manualClock();
    const der = await createCrl(ca, { revoked: [], nextUpdate: new Date(clock.now + 5 * MINUTE) });
    const path = join(dir, 'expiring.crl');
    await writeFile(path, der);
    const revocation = policy({ crl: { file: { path, contents: der } } });
    const instance = checker(clock);
    assert.equal(now(check(instance, good, revocation)).status, 'good');
    clock.advance(5 * MINUTE);
    assertUnavailable(await later(check(instance, good, revocation)), /past its nextUpdate/);
  });

  test('another CA\'s CRL does not cover the certificate', async () => {
    const foreign = await createCrl(otherCa, { revoked: [] });
    const path = join(dir, 'foreign.crl');
    await writeFile(path, foreign);
    assertUnavailable(now(check(checker(), good, policy({ crl: { file: { path, contents: foreign } } }))), /no CRL covers the certificate's issuer/);
  });

  test('a file that is not a CRL is refused', async () => {
    const path = join(dir, 'garbage.crl');
    await writeFile(path, 'not a CRL at all');
    assertUnavailable(await later(check(checker(), good, policy({ crl: { file: { path, contents: Buffer.from('not a CRL at all') } } }))), /not a CRL/);
  });
});

describe('CRL from a URL', () => {
  test('fetched once, then answered synchronously; good and revoked', async () => {
    server.serve('/configured.crl', await createCrl(ca, { revoked: [revoked.certificate] }));
    const revocation = policy({ crl: { url: server.url('/configured.crl') } });
    const instance = checker();
    assert.deepEqual(await later(check(instance, good, revocation)), { status: 'good', source: 'crl' });
    assert.equal(now(check(instance, revoked, revocation)).status, 'revoked');
    assert.equal(now(check(instance, good, revocation)).status, 'good');
    assert.equal(server.requests('/configured.crl'), 1);
  });

  test('concurrent first checks share one fetch', async () => {
    server.serve('/coalesced.crl', await createCrl(ca, { revoked: [revoked.certificate] }));
    const revocation = policy({ crl: { url: server.url('/coalesced.crl') } });
    const instance = checker();
    const answers = await Promise.all([good, revoked, good, revoked, good].map((cert) => check(instance, cert, revocation)));
    assert.deepEqual(answers.map((answer) => answer.status), ['good', 'revoked', 'good', 'revoked', 'good']);
    assert.equal(server.requests('/coalesced.crl'), 1);
  });

  test('a new CRL is fetched when the refresh is due, and a new revocation applies on the first check after it', async () => {
    const clock = manualClock();
    server.serve('/swap.crl', await createCrl(ca, { revoked: [] }));
    const revocation = policy({ crl: { url: server.url('/swap.crl'), refreshMs: 30_000 } });
    const instance = checker(clock);
    assert.equal((await later(check(instance, good, revocation))).status, 'good');

    server.serve('/swap.crl', await createCrl(ca, { revoked: [good.certificate] }));
    clock.advance(29_000);
    assert.equal(now(check(instance, good, revocation)).status, 'good');
    assert.equal(server.requests('/swap.crl'), 1);
    clock.advance(1_000);
    assert.equal((await later(check(instance, good, revocation))).status, 'revoked');
    assert.equal(now(check(instance, good, revocation)).status, 'revoked');
    assert.equal(server.requests('/swap.crl'), 2);
  });

  test('the refresh comes before nextUpdate even when refreshMs is longer', async () => {
    const clock = manualClock();
    // Valid for 10 minutes: refreshed a minute (a tenth) before it expires, not after the hour.
    server.serve('/short-lived.crl', await createCrl(ca, { thisUpdate: new Date(clock.now), nextUpdate: new Date(clock.now + 10 * MINUTE) }));
    const revocation = policy({ crl: { url: server.url('/short-lived.crl'), refreshMs: 3_600_000 } });
    const instance = checker(clock);
    assert.equal((await later(check(instance, good, revocation))).status, 'good');
    server.serve('/short-lived.crl', await createCrl(ca, { thisUpdate: new Date(clock.now + 9 * MINUTE), nextUpdate: new Date(clock.now + 19 * MINUTE) }));
    clock.advance(9 * MINUTE - 1_000);
    assert.equal(now(check(instance, good, revocation)).status, 'good');
    clock.advance(1_000);
    assert.equal((await later(check(instance, good, revocation))).status, 'good');
    assert.equal(server.requests('/short-lived.crl'), 2);
    clock.advance(5 * MINUTE);
    // The new CRL (nextUpdate +19 min) is the one in use: still good after the first one's nextUpdate.
    assert.equal(now(check(instance, good, revocation)).status, 'good');
  });

  test('a failing refresh keeps the CRL in use until its nextUpdate, then the status is unavailable', async () => {
    const clock = manualClock();
    server.serve('/flaky.crl', await createCrl(ca, { revoked: [revoked.certificate], nextUpdate: new Date(clock.now + 5 * MINUTE) }));
    const revocation = policy({ crl: { url: server.url('/flaky.crl'), refreshMs: 60_000 } });
    const instance = checker(clock);
    assert.equal((await later(check(instance, revoked, revocation))).status, 'revoked');

    server.serve('/flaky.crl', 'down for maintenance', { status: 503, contentType: 'text/plain' });
    clock.advance(60_000);
    assert.equal((await later(check(instance, revoked, revocation))).status, 'revoked');
    assert.equal((await Promise.resolve(check(instance, good, revocation))).status, 'good');
    assert.match(String(instance.stats().crl.sources[0]!.lastError), /answered 503/);
    const fetches = server.requests('/flaky.crl');
    // Failed refreshes are retried after a back-off, not on every check.
    assert.equal(now(check(instance, good, revocation)).status, 'good');
    assert.equal(server.requests('/flaky.crl'), fetches);

    clock.advance(4 * MINUTE);
    assertUnavailable(await Promise.resolve(check(instance, good, revocation)), /past its nextUpdate[\s\S]*last refresh failed: .*answered 503/);
  });

  test('an older CRL served after a newer one is refused (no rollback)', async () => {
    const clock = manualClock();
    const older = await createCrl(ca, { revoked: [], thisUpdate: new Date(clock.now - 2 * MINUTE) });
    server.serve('/rollback.crl', await createCrl(ca, { revoked: [good.certificate], thisUpdate: new Date(clock.now - MINUTE) }));
    const revocation = policy({ crl: { url: server.url('/rollback.crl'), refreshMs: 1_000 } });
    const instance = checker(clock);
    assert.equal((await later(check(instance, good, revocation))).status, 'revoked');
    server.serve('/rollback.crl', older);
    clock.advance(1_000);
    assert.equal((await later(check(instance, good, revocation))).status, 'revoked');
    assert.match(String(instance.stats().crl.sources[0]!.lastError), /older than the CRL in use/);
  });

  test('redirects are not followed', async () => {
    server.serve('/target.crl', await createCrl(ca, { revoked: [] }));
    server.serve('/moved.crl', '', { status: 302, headers: { location: server.url('/target.crl') } });
    assertUnavailable(await later(check(checker(), good, policy({ crl: { url: server.url('/moved.crl') } }))), /answered 302.*redirects are not followed/);
    assert.equal(server.requests('/target.crl'), 0);
  });

  test('a responder slower than the timeout is unavailable', async () => {
    server.serve('/slow.crl', await createCrl(ca, { revoked: [] }), { delayMs: 1_000 });
    const started = Date.now();
    assertUnavailable(await later(check(checker(), good, policy({ crl: { url: server.url('/slow.crl'), timeoutMs: 150 } }))), /no answer within 150 ms/);
    assert.ok(Date.now() - started < 900, 'the timeout, not the server, ended the fetch');
  });

  test('a CRL larger than the cap is refused', async () => {
    server.serve('/huge.crl', Buffer.alloc(MAX_CRL_BYTES + 1));
    assertUnavailable(await later(check(checker(), good, policy({ crl: { url: server.url('/huge.crl') } }))), /larger than 10485760 bytes/);
  });

  test('a wrongly signed CRL from a URL is unavailable', async () => {
    server.serve('/impostor.crl', await createCrl(ca, { revoked: [], signedBy: impostor }));
    assertUnavailable(await later(check(checker(), revoked, policy({ crl: { url: server.url('/impostor.crl') } }))), /signature does not verify with the issuer's key/);
  });
});

describe('CRL from the certificate\'s distribution point', () => {
  test('fetched when its host is allowed', async () => {
    server.serve('/cdp.crl', await createCrl(ca, { revoked: [revoked.certificate] }));
    const revocation = policy({ crl: { fromCertificate: true }, allowedHosts: ['127.0.0.1'] });
    const instance = checker();
    const before = server.requests('/cdp.crl');
    assert.equal((await later(check(instance, good, revocation))).status, 'good');
    assert.equal(now(check(instance, revoked, revocation)).status, 'revoked');
    assert.equal(server.requests('/cdp.crl'), before + 1);
  });

  test('never fetched when its host is not allowed: unavailable', async () => {
    server.serve('/elsewhere.crl', await createCrl(ca, { revoked: [] }));
    const revocation = policy({ crl: { fromCertificate: true }, allowedHosts: ['127.0.0.1'] });
    assertUnavailable(now(check(checker(), fromLocalhost, revocation)), /localhost.*not in allowed_hosts/);
    assert.equal(server.requests('/elsewhere.crl'), 0);
  });

  test('a certificate without a distribution point is unavailable when that is the only source', async () => {
    const bare = await issueCertificate(ca, { commonName: 'no cdp' });
    assertUnavailable(now(check(checker(), bare, policy({ crl: { fromCertificate: true }, allowedHosts: ['127.0.0.1'] }))), /names no http\(s\) CRL distribution point/);
  });
});

describe('what a CRL may contain', () => {
  test('a critical CRL extension that is not processed (issuing distribution point) makes the CRL unusable', async () => {
    // IssuingDistributionPoint ::= SEQUENCE { onlyContainsUserCerts [1] BOOLEAN TRUE }: a partitioned CRL.
    const der = await createCrl(ca, { revoked: [revoked.certificate], extensions: [{ oid: '2.5.29.28', critical: true, value: Uint8Array.from([0x30, 0x03, 0x81, 0x01, 0xff]) }] });
    const path = join(dir, 'partitioned.crl');
    await writeFile(path, der);
    assertUnavailable(await later(check(checker(), good, policy({ crl: { file: { path, contents: der } } }))), /critical extension 2\.5\.29\.28 that is not supported/);
  });

  test('a critical entry extension (indirect CRL certificateIssuer) makes the CRL unusable', async () => {
    // GeneralNames with one dNSName "ca.example".
    const names = Uint8Array.from([0x30, 0x0c, 0x82, 0x0a, ...Buffer.from('ca.example')]);
    const der = await createCrl(ca, { revoked: [revoked.certificate], entryExtensions: [{ oid: '2.5.29.29', critical: true, value: names }] });
    const path = join(dir, 'indirect.crl');
    await writeFile(path, der);
    assertUnavailable(await later(check(checker(), good, policy({ crl: { file: { path, contents: der } } }))), /entry has a critical extension 2\.5\.29\.29/);
  });

  test('a CRL of 50,000 entries written by `openssl ca -gencrl` (beyond what asn1js parses)', async () => {
    const work = await mkdtemp(join(dir, 'openssl-ca-'));
    const serials = Array.from({ length: 50_000 }, (_, index) => (0x7a000000 + index).toString(16).toUpperCase());
    serials.push(revoked.certificate.serialNumber);
    const index = serials.map((serial) => `R\t301231000000Z\t250101000000Z\t${serial}\tunknown\t/CN=${serial}\n`).join('');
    await writeFile(join(work, 'index.txt'), index);
    await writeFile(join(work, 'index.txt.attr'), 'unique_subject = no\n');
    await writeFile(join(work, 'crlnumber'), '01\n');
    await writeFile(join(work, 'ca.pem'), ca.certPem);
    await writeFile(join(work, 'ca.key'), ca.keyPem, { mode: 0o600 });
    await writeFile(join(work, 'ca.cnf'), '[ca]\ndefault_ca = test\n[test]\ndatabase = index.txt\ncrlnumber = crlnumber\ndefault_md = sha256\ndefault_crl_days = 1\n');
    const made = spawnSync('openssl', ['ca', '-gencrl', '-config', 'ca.cnf', '-keyfile', 'ca.key', '-cert', 'ca.pem', '-out', 'ca.crl'], { cwd: work, encoding: 'utf8' });
    assert.equal(made.status, 0, made.stderr);
    const pem = await readFile(join(work, 'ca.crl'));
    const started = performance.now();
    const instance = checker();
    assert.equal(now(check(instance, revoked, policy({ crl: { file: { path: join(work, 'ca.crl'), contents: pem } } }))).status, 'revoked');
    assert.equal(now(check(instance, good, policy({ crl: { file: { path: join(work, 'ca.crl'), contents: pem } } }))).status, 'good');
    assert.equal(instance.stats().crl.sources[0]!.entries, 50_001);
    assert.ok(performance.now() - started < 2_000, 'read in well under a second or two');
  });
});

test('the DER reader refuses what DER does not allow', () => {
  assert.throws(() => readElement(Uint8Array.from([0x30, 0x80, 0x00, 0x00]), 0, 4), DerError, 'indefinite length');
  assert.throws(() => readElement(Uint8Array.from([0x04, 0x81, 0x05, 1, 2, 3, 4, 5]), 0, 8), DerError, 'long form for a short length');
  assert.throws(() => readElement(Uint8Array.from([0x04, 0x82, 0x00, 0x81, ...new Uint8Array(0x81)]), 0, 0x85), DerError, 'leading zero length octet');
  assert.throws(() => readElement(Uint8Array.from([0x04, 0x05, 1, 2]), 0, 4), DerError, 'runs past its container');
  assert.throws(() => readElement(Uint8Array.from([0x1f, 0x81, 0x01, 0x00]), 0, 4), DerError, 'multi-octet tag');
  assert.deepEqual(readElement(Uint8Array.from([0x04, 0x81, 0x80, ...new Uint8Array(0x80)]), 0, 0x83), { tag: 0x04, start: 0, contentStart: 3, end: 0x83 });
});

test('a CRL with trailing bytes or a malformed time is refused', async () => {
  const der = await createCrl(ca, { revoked: [] });
  assert.throws(() => parseCrl(Buffer.concat([der, Buffer.from([0])])), /trailing data/);
  const text = der.toString('latin1');
  const time = /\d{12}Z/.exec(text)!;
  const broken = Buffer.from(text.slice(0, time.index) + '991399999999Z' + text.slice(time.index + 13), 'latin1');
  assert.throws(() => parseCrl(broken), /impossible date|malformed/);
});

test('parseCrl reads PEM and DER alike and indexes serials without leading zeros', async () => {
  const der = await createCrl(ca, { revoked: ['00ff01', revoked.certificate] });
  const fromDer = parseCrl(der);
  const fromPem = parseCrl(Buffer.from(toPem(der)));
  assert.deepEqual([...fromPem.revoked.keys()], [...fromDer.revoked.keys()]);
  assert.ok(fromDer.revoked.has('ff01'));
  assert.ok(fromDer.revoked.has(revoked.certificate.serialNumber.toLowerCase().replace(/^0+/, '')));
  const revokedAt = revocationDate(fromDer, 'ff01');
  assert.ok(revokedAt !== null && Math.abs(revokedAt - (Date.now() - 2 * 60_000)) < 60_000, 'revocationDate decodes the entry\'s date');
  assert.equal(revocationDate(fromDer, 'abcdef'), null);
});
