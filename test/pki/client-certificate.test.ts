import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import type { webcrypto } from 'node:crypto';
import { certificateFacts, identifyClient, namePatternProblem } from '../../src/pki/client-certificate.ts';
import type { IdentifyResult, PartnerTrust } from '../../src/pki/types.ts';
import { loadX509 } from '../../src/pki/dev-ca.ts';
import { EKU, createTestCa, createTestCrl, createTestPki, issueTestCertificate, openSslIndex } from '../helpers/pki.ts';
import type { TestCa, TestLeaf, TestPki, TestPkiFiles } from '../helpers/pki.ts';

const DAY_MS = 86_400_000;

interface TrustSpec {
  readonly anchors?: readonly (TestCa | X509Certificate)[];
  readonly pinned?: readonly string[];
  readonly subjects?: readonly string[];
  readonly sanDns?: readonly string[];
  readonly sanUri?: readonly string[];
}

function trust(partnerId: string, spec: TrustSpec): PartnerTrust {
  return {
    partnerId,
    anchors: (spec.anchors ?? []).map((anchor) => ('certificate' in anchor ? anchor.certificate : anchor)),
    pinned: new Set(spec.pinned ?? []),
    subjects: spec.subjects ?? null,
    sanDns: spec.sanDns ?? null,
    sanUri: spec.sanUri ?? null,
    revocation: null,
  };
}

function accepted(result: IdentifyResult, partnerId: string, via: 'chain' | 'pinned' = 'chain'): Extract<IdentifyResult, { ok: true }> {
  assert.ok(result.ok, `expected acceptance by ${partnerId}, got ${result.ok ? '' : `${result.reason}: ${result.detail}`}`);
  assert.equal(result.partnerId, partnerId);
  assert.equal(result.via, via);
  return result;
}

function refused(result: IdentifyResult, reason: string, detail?: RegExp): Extract<IdentifyResult, { ok: false }> {
  assert.ok(!result.ok, `expected ${reason}, got acceptance by ${result.ok ? result.partnerId : ''}`);
  assert.equal(result.reason, reason, result.detail);
  if (detail) assert.match(result.detail, detail);
  return result;
}

function openssl(script: string, input: string): string {
  return execFileSync('sh', ['-c', script], { input }).toString().trim();
}

let pki: TestPki;
before(async () => {
  pki = await createTestPki();
});

describe('certificateFacts', () => {
  it('computes x5t#S256 like openssl (RFC 8705 §3.1) and the hex fingerprint like node', () => {
    for (const leaf of [pki.partnerA.good, pki.selfSigned, pki.partnerB.leaf]) {
      const facts = certificateFacts(leaf.certificate);
      const expected = openssl(`openssl x509 -outform der | openssl dgst -sha256 -binary | openssl base64 -A | tr '+/' '-_' | tr -d '='`, leaf.certPem);
      assert.equal(facts.x5t, expected);
      assert.equal(facts.x5t.length, 43);
      assert.equal(facts.fingerprintSha256, leaf.certificate.fingerprint256.replaceAll(':', '').toLowerCase());
      assert.match(facts.fingerprintSha256, /^[0-9a-f]{64}$/);
    }
  });

  it('gives the serial as lowercase hex without leading zeros', async () => {
    const facts = certificateFacts(pki.partnerA.good.certificate);
    const expected = openssl('openssl x509 -noout -serial', pki.partnerA.good.certPem).replace(/^serial=/, '').toLowerCase().replace(/^0+/, '');
    assert.equal(facts.serial, expected);
    // A serial with a leading zero nibble and one needing a sign octet (0x00 0x80…).
    const x509 = await loadX509();
    const keys = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    for (const [serialNumber, serial] of [
      ['0a0b', 'a0b'],
      ['8001', '8001'],
      ['01', '1'],
    ] as const) {
      const cert = await x509.X509CertificateGenerator.createSelfSigned({
        serialNumber,
        name: 'CN=serial',
        notBefore: new Date(),
        notAfter: new Date(Date.now() + DAY_MS),
        keys,
        signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      });
      assert.equal(certificateFacts(new X509Certificate(cert.toString('pem'))).serial, serial, serialNumber);
    }
  });

  it('writes subject and issuer as RFC 4514 strings and validity as ISO instants', () => {
    const facts = certificateFacts(pki.partnerA.good.certificate);
    assert.equal(facts.subject, 'CN=acme-good,O=Acme');
    assert.equal(facts.issuer, 'CN=Acme Issuing CA,O=Acme');
    assert.equal(facts.notBefore, pki.partnerA.good.certificate.validFromDate.toISOString());
    assert.equal(facts.notAfter, pki.partnerA.good.certificate.validToDate.toISOString());
    assert.deepEqual(facts.sanDns, []);
    assert.deepEqual(facts.sanUri, []);
    assert.deepEqual(certificateFacts(pki.partnerA.spiffe.certificate).sanUri, ['spiffe://acme.example/orders-client']);
    assert.deepEqual(certificateFacts(pki.partnerA.dns.certificate).sanDns, ['client.acme.example']);
  });

  it('keeps SAN values with commas, quotes and look-alike prefixes intact', async () => {
    const uris = ['spiffe://acme.example/a,b', 'https://x.example/"q", DNS:evil.example', 'urn:x:y=1;z'];
    const leaf = await issueTestCertificate(pki.partnerA.intermediate, { name: 'tricky', organization: 'Acme, Inc.', commonName: 'a"b+c=d\ne', uris, dnsNames: ['one.acme.example', 'two.acme.example'] });
    // node quotes such values JSON-style in subjectAltName; the facts hold the values themselves.
    assert.match(leaf.certificate.subjectAltName ?? '', /URI:"/);
    const facts = certificateFacts(leaf.certificate);
    assert.deepEqual(facts.sanUri, uris);
    assert.deepEqual(facts.sanDns, ['one.acme.example', 'two.acme.example']);
    assert.equal(facts.subject, 'CN=a\\"b\\+c\\=d\\0Ae,O=Acme\\, Inc.');
  });
});

describe('identifyClient: success paths', () => {
  it('builds the chain through an intermediate the client sent, up to the partner root', () => {
    const result = accepted(identifyClient(pki.partnerA.good.presented, [trust('acme', { anchors: [pki.partnerA.root] })], Date.now()), 'acme');
    assert.equal(result.issuer?.fingerprint256, pki.partnerA.intermediate.certificate.fingerprint256);
    assert.equal(result.leaf, pki.partnerA.good.certificate);
    assert.equal(result.facts.subject, 'CN=acme-good,O=Acme');
  });

  it('accepts an intermediate configured as the anchor, without the client sending it', () => {
    const result = accepted(identifyClient([pki.partnerA.good.certificate], [trust('acme', { anchors: [pki.partnerA.intermediate] })], Date.now()), 'acme');
    assert.equal(result.issuer?.fingerprint256, pki.partnerA.intermediate.certificate.fingerprint256);
  });

  it('accepts root and intermediate both configured, whatever the client sends', () => {
    const trusts = [trust('acme', { anchors: [pki.partnerA.root, pki.partnerA.intermediate] })];
    accepted(identifyClient([pki.partnerA.good.certificate], trusts, Date.now()), 'acme');
    accepted(identifyClient([pki.partnerA.good.certificate, pki.partnerA.intermediate.certificate, pki.partnerA.root.certificate], trusts, Date.now()), 'acme');
  });

  it('needs the intermediate when only the root is configured', () => {
    refused(identifyClient([pki.partnerA.good.certificate], [trust('acme', { anchors: [pki.partnerA.root] })], Date.now()), 'tls.untrusted_ca');
  });

  it('accepts a pinned self-signed certificate, with no issuer', () => {
    const result = accepted(identifyClient(pki.selfSigned.presented, [trust('pinned', { pinned: [pki.selfSigned.fingerprint] })], Date.now()), 'pinned', 'pinned');
    assert.equal(result.issuer, null);
  });

  it('accepts a pinned CA-issued certificate without trusting its CA, and reports the issuer it sent', () => {
    const result = accepted(identifyClient(pki.partnerA.good.presented, [trust('acme', { pinned: [pki.partnerA.good.fingerprint] })], Date.now()), 'acme', 'pinned');
    assert.equal(result.issuer?.fingerprint256, pki.partnerA.intermediate.certificate.fingerprint256);
    // Another leaf of the same CA is not pinned.
    refused(identifyClient(pki.partnerA.revoked.presented, [trust('acme', { pinned: [pki.partnerA.good.fingerprint] })], Date.now()), 'tls.untrusted_ca');
  });

  it('prefers the chain to the pin when both trust the certificate', () => {
    accepted(identifyClient(pki.partnerA.good.presented, [trust('acme', { anchors: [pki.partnerA.root], pinned: [pki.partnerA.good.fingerprint] })], Date.now()), 'acme', 'chain');
  });

  it('matches SPIFFE IDs with `*` standing for one path segment', async () => {
    const trusts = [trust('acme', { anchors: [pki.partnerA.root], sanUri: ['spiffe://acme.example/*'] })];
    accepted(identifyClient(pki.partnerA.spiffe.presented, trusts, Date.now()), 'acme');
    refused(identifyClient(pki.partnerA.good.presented, trusts, Date.now()), 'tls.name_mismatch', /san_uri/);
    const nested = await issueTestCertificate(pki.partnerA.intermediate, { name: 'nested', uris: ['spiffe://acme.example/ns/orders'] });
    refused(identifyClient(nested.presented, trusts, Date.now()), 'tls.name_mismatch');
    accepted(identifyClient(nested.presented, [trust('acme', { anchors: [pki.partnerA.root], sanUri: ['spiffe://acme.example/ns/*'] })], Date.now()), 'acme');
    const dotDot = await issueTestCertificate(pki.partnerA.intermediate, { name: 'dotdot', uris: ['spiffe://acme.example/..'] });
    refused(identifyClient(dotDot.presented, trusts, Date.now()), 'tls.name_mismatch');
    // Scheme and host compare case-insensitively (RFC 3986 §6.2.2.1), the path exactly.
    accepted(identifyClient(pki.partnerA.spiffe.presented, [trust('acme', { anchors: [pki.partnerA.root], sanUri: ['SPIFFE://Acme.Example/orders-client'] })], Date.now()), 'acme');
    refused(identifyClient(pki.partnerA.spiffe.presented, [trust('acme', { anchors: [pki.partnerA.root], sanUri: ['spiffe://acme.example/Orders-client'] })], Date.now()), 'tls.name_mismatch');
  });

  it('matches DNS names with `*` standing for one label', async () => {
    accepted(identifyClient(pki.partnerA.dns.presented, [trust('acme', { anchors: [pki.partnerA.root], sanDns: ['*.acme.example'] })], Date.now()), 'acme');
    accepted(identifyClient(pki.partnerA.dns.presented, [trust('acme', { anchors: [pki.partnerA.root], sanDns: ['CLIENT.acme.example'] })], Date.now()), 'acme');
    const deeper = await issueTestCertificate(pki.partnerA.intermediate, { name: 'deeper', dnsNames: ['a.client.acme.example'] });
    refused(identifyClient(deeper.presented, [trust('acme', { anchors: [pki.partnerA.root], sanDns: ['*.acme.example'] })], Date.now()), 'tls.name_mismatch', /san_dns/);
  });

  it('matches whole subject DNs, in RFC 4514 or node order, with `*` inside one value', () => {
    const leaf = pki.partnerA.good.presented;
    for (const subjects of [['CN=acme-good,O=Acme'], ['cn=ACME-GOOD, o=acme'], ['O=Acme\nCN=acme-good'], ['CN=acme-*,O=Acme'], ['CN=nope,O=Acme', 'CN=*,O=Acme']]) {
      accepted(identifyClient(leaf, [trust('acme', { anchors: [pki.partnerA.root], subjects })], Date.now()), 'acme');
    }
    for (const subjects of [['CN=acme-good'], ['O=Acme'], ['CN=acme-good,O=Acme,C=US'], ['O=Acme,CN=acme-good'], ['CN=*,O=Evil'], ['CN=acme-good*,O=Acme']]) {
      refused(identifyClient(leaf, [trust('acme', { anchors: [pki.partnerA.root], subjects })], Date.now()), 'tls.name_mismatch', /subject/);
    }
  });

  it('requires every pattern list given to match', () => {
    const trusts = [trust('acme', { anchors: [pki.partnerA.root], subjects: ['CN=orders-client,O=Acme'], sanUri: ['spiffe://acme.example/*'], sanDns: ['*.acme.example'] })];
    refused(identifyClient(pki.partnerA.spiffe.presented, trusts, Date.now()), 'tls.name_mismatch', /san_dns/);
    accepted(identifyClient(pki.partnerA.spiffe.presented, [trust('acme', { anchors: [pki.partnerA.root], subjects: ['CN=orders-client,O=Acme'], sanUri: ['spiffe://acme.example/*'] })], Date.now()), 'acme');
  });
});

describe('identifyClient: trust is per partner', () => {
  it("never lets partner B's CA authenticate partner A's certificate, nor the reverse", () => {
    const trusts = [trust('acme', { anchors: [pki.partnerA.root] }), trust('bolt', { anchors: [pki.partnerB.root] })];
    accepted(identifyClient(pki.partnerA.good.presented, trusts, Date.now()), 'acme');
    accepted(identifyClient(pki.partnerB.leaf.presented, trusts, Date.now()), 'bolt');
    refused(identifyClient(pki.partnerA.good.presented, [trust('bolt', { anchors: [pki.partnerB.root] })], Date.now()), 'tls.untrusted_ca');
    refused(identifyClient(pki.partnerB.leaf.presented, [trust('acme', { anchors: [pki.partnerA.root] })], Date.now()), 'tls.untrusted_ca');
  });

  it('never builds a chain through a CA the client sent that another partner trusts', () => {
    // The client sends A's whole chain, root included, to a gateway where only B is configured.
    const sent = [pki.partnerA.good.certificate, pki.partnerA.intermediate.certificate, pki.partnerA.root.certificate];
    refused(identifyClient(sent, [trust('bolt', { anchors: [pki.partnerB.root] })], Date.now()), 'tls.untrusted_ca');
    // B's certificate plus A's root: A's anchors do not reach it.
    refused(identifyClient([pki.partnerB.leaf.certificate, pki.partnerA.root.certificate], [trust('acme', { anchors: [pki.partnerA.root] })], Date.now()), 'tls.untrusted_ca');
  });

  it('refuses a look-alike CA with the same name but another key', async () => {
    const impostor = await createTestCa({ name: 'impostor', commonName: 'Acme Issuing CA', organization: 'Acme', pathLength: 0 });
    const leaf = await issueTestCertificate(impostor, { name: 'impostor-leaf', commonName: 'acme-good', organization: 'Acme' });
    refused(identifyClient([leaf.certificate, impostor.certificate], [trust('acme', { anchors: [pki.partnerA.root, pki.partnerA.intermediate] })], Date.now()), 'tls.untrusted_ca');
  });

  it("refuses a certificate naming the partner's CA (issuer and key id) but signed with another key", async () => {
    const impostor = await createTestCa({ name: 'impostor-key' });
    const real = pki.partnerA.intermediate;
    // Issuer name and authority key id from the real CA, signature from the impostor's key.
    const forger: TestCa = { ...real, keys: { publicKey: real.keys.publicKey, privateKey: impostor.keys.privateKey } };
    const forged = await issueTestCertificate(forger, { name: 'forged', commonName: 'acme-good', organization: 'Acme' });
    assert.ok(forged.certificate.checkIssued(real.certificate), 'names and key ids match');
    refused(identifyClient(forged.presented, [trust('acme', { anchors: [pki.partnerA.root] })], Date.now()), 'tls.untrusted_ca');
    refused(identifyClient([forged.certificate], [trust('acme', { anchors: [real] })], Date.now()), 'tls.untrusted_ca');
  });

  it('tells apart two partners trusting the same CA by their name patterns', () => {
    const trusts = [
      trust('orders', { anchors: [pki.partnerA.root], sanUri: ['spiffe://acme.example/orders-*'] }),
      trust('edge', { anchors: [pki.partnerA.root], sanDns: ['*.acme.example'] }),
    ];
    accepted(identifyClient(pki.partnerA.spiffe.presented, trusts, Date.now()), 'orders');
    accepted(identifyClient(pki.partnerA.dns.presented, trusts, Date.now()), 'edge');
    refused(identifyClient(pki.partnerA.good.presented, trusts, Date.now()), 'tls.name_mismatch');
  });

  it('refuses a certificate two partners accept (overlapping patterns)', () => {
    const trusts = [
      trust('orders', { anchors: [pki.partnerA.root], sanUri: ['spiffe://acme.example/*'] }),
      trust('acme-all', { anchors: [pki.partnerA.intermediate], subjects: ['CN=*,O=Acme'] }),
    ];
    const result = refused(identifyClient(pki.partnerA.spiffe.presented, trusts, Date.now()), 'tls.partner_ambiguous', /"orders", "acme-all"/);
    assert.equal(result.facts?.fingerprintSha256, pki.partnerA.spiffe.fingerprint);
    refused(identifyClient(pki.partnerA.good.presented, [trust('a', { anchors: [pki.partnerA.root] }), trust('b', { pinned: [pki.partnerA.good.fingerprint] })], Date.now()), 'tls.partner_ambiguous');
  });

  it('reports the specific refusal of the partner whose anchors issued the chain, not untrusted_ca', () => {
    const trusts = [trust('bolt', { anchors: [pki.partnerB.root] }), trust('acme', { anchors: [pki.partnerA.root], sanDns: ['*.acme.example'] })];
    refused(identifyClient(pki.partnerA.expired.presented, trusts, Date.now()), 'tls.cert_expired', /partner "acme"/);
    refused(identifyClient(pki.partnerA.wrongEku.presented, trusts, Date.now()), 'tls.eku');
    refused(identifyClient(pki.partnerA.good.presented, trusts, Date.now()), 'tls.name_mismatch', /partner "acme"/);
    refused(identifyClient(pki.constrained.outside.presented, trusts, Date.now()), 'tls.name_constraints');
  });

  it('prefers the refusal that got furthest, whatever the order of the partners', async () => {
    // Through A's root the path breaks A's intermediate's pathLen 0 (untrusted_ca); anchored lower it only misses the names.
    const subCa = await createTestCa({ name: 'sub-ca', issuer: pki.partnerA.intermediate });
    const leaf = await issueTestCertificate(subCa, { name: 'under-sub-ca', dnsNames: ['x.acme.example'] });
    const viaRoot = trust('via-root', { anchors: [pki.partnerA.root] });
    const viaSub = trust('via-sub', { anchors: [subCa], sanDns: ['*.other.example'] });
    refused(identifyClient(leaf.presented, [viaRoot, viaSub], Date.now()), 'tls.name_mismatch', /partner "via-sub"/);
    refused(identifyClient(leaf.presented, [viaSub, viaRoot], Date.now()), 'tls.name_mismatch', /partner "via-sub"/);
  });
});

describe('identifyClient: refusals', () => {
  const acme = (): PartnerTrust[] => [trust('acme', { anchors: [pki.partnerA.root] })];

  it('tls.certificate_missing without a certificate', () => {
    const result = refused(identifyClient([], acme(), Date.now()), 'tls.certificate_missing');
    assert.equal(result.facts, null);
  });

  it('tls.untrusted_ca for a certificate no partner trusts, with its facts', () => {
    const result = refused(identifyClient(pki.selfSigned.presented, acme(), Date.now()), 'tls.untrusted_ca', /no partner/);
    assert.equal(result.facts?.fingerprintSha256, pki.selfSigned.fingerprint);
    refused(identifyClient(pki.partnerA.good.presented, [], Date.now()), 'tls.untrusted_ca');
  });

  it('tls.cert_expired and tls.cert_not_yet_valid, for the leaf and for any CA of the chain', async () => {
    refused(identifyClient(pki.partnerA.expired.presented, acme(), Date.now()), 'tls.cert_expired', /the certificate expired at/);
    refused(identifyClient(pki.partnerA.notYetValid.presented, acme(), Date.now()), 'tls.cert_not_yet_valid', /not valid before/);
    // The same good certificate, judged at other instants.
    refused(identifyClient(pki.partnerA.good.presented, acme(), Date.now() + 60 * DAY_MS), 'tls.cert_expired');
    refused(identifyClient(pki.partnerA.good.presented, acme(), Date.now() - 2 * DAY_MS), 'tls.cert_not_yet_valid');
    // An expired pin is refused too.
    refused(identifyClient(pki.selfSigned.presented, [trust('p', { pinned: [pki.selfSigned.fingerprint] })], Date.now() + 60 * DAY_MS), 'tls.cert_expired');

    const expiredCa = await createTestCa({ name: 'expired-ca', issuer: pki.partnerA.root, notBefore: new Date(Date.now() - 30 * DAY_MS), notAfter: new Date(Date.now() - DAY_MS) });
    const leaf = await issueTestCertificate(expiredCa, { name: 'under-expired-ca', notBefore: new Date(Date.now() - 10 * DAY_MS) });
    refused(identifyClient(leaf.presented, acme(), Date.now()), 'tls.cert_expired', /CA certificate "CN=expired-ca" expired/);
  });

  it('tls.eku for serverAuth only, no EKU, anyExtendedKeyUsage alone, a signing-incapable key usage, or a CA restricted to other uses', async () => {
    refused(identifyClient(pki.partnerA.wrongEku.presented, acme(), Date.now()), 'tls.eku', /does not include clientAuth/);
    refused(identifyClient(pki.partnerA.noEku.presented, acme(), Date.now()), 'tls.eku', /no extended key usage/);
    const anyEku = await issueTestCertificate(pki.partnerA.intermediate, { name: 'any-eku', extendedKeyUsage: [EKU.any] });
    refused(identifyClient(anyEku.presented, acme(), Date.now()), 'tls.eku');
    const x509 = await loadX509();
    const encipherOnly = await issueTestCertificate(pki.partnerA.intermediate, { name: 'encipher-only', keyUsage: x509.KeyUsageFlags.keyEncipherment });
    refused(identifyClient(encipherOnly.presented, acme(), Date.now()), 'tls.eku', /key usage/);
    const both = await issueTestCertificate(pki.partnerA.intermediate, { name: 'both-eku', extendedKeyUsage: [EKU.serverAuth, EKU.clientAuth] });
    accepted(identifyClient(both.presented, acme(), Date.now()), 'acme');

    const serverOnlyCa = await createTestCa({ name: 'server-only-ca', issuer: pki.partnerA.root, extendedKeyUsage: [EKU.serverAuth] });
    const underIt = await issueTestCertificate(serverOnlyCa, { name: 'under-server-only-ca' });
    refused(identifyClient(underIt.presented, acme(), Date.now()), 'tls.eku', /server-only-ca/);
    const clientCa = await createTestCa({ name: 'client-ca', issuer: pki.partnerA.root, extendedKeyUsage: [EKU.clientAuth] });
    accepted(identifyClient((await issueTestCertificate(clientCa, { name: 'under-client-ca' })).presented, acme(), Date.now()), 'acme');
  });

  it('tls.untrusted_ca when a CA of the chain is not a CA, or its path length is exceeded', async () => {
    // keyCertSign present, so only basicConstraints tells it is no CA.
    for (const ca of [false, null]) {
      const notCa = await createTestCa({ name: `not-a-ca-${ca}`, issuer: pki.partnerA.root, ca });
      const underNotCa = await issueTestCertificate(notCa, { name: 'under-not-a-ca' });
      refused(identifyClient(underNotCa.presented, acme(), Date.now()), 'tls.untrusted_ca', /is not a CA/);
    }
    const x509 = await loadX509();
    const noCertSign = await createTestCa({ name: 'no-cert-sign', issuer: pki.partnerA.root, keyUsage: x509.KeyUsageFlags.cRLSign });
    refused(identifyClient((await issueTestCertificate(noCertSign, { name: 'under-no-cert-sign' })).presented, acme(), Date.now()), 'tls.untrusted_ca');

    // Partner A's intermediate has pathLen 0: it cannot issue another CA.
    const tooDeep = await createTestCa({ name: 'too-deep', issuer: pki.partnerA.intermediate });
    const underTooDeep = await issueTestCertificate(tooDeep, { name: 'under-too-deep' });
    refused(identifyClient(underTooDeep.presented, acme(), Date.now()), 'tls.untrusted_ca', /allows 0 intermediate/);
    // Nor when the intermediate itself is the anchor: its constraints still hold.
    refused(identifyClient(underTooDeep.presented, [trust('acme', { anchors: [pki.partnerA.intermediate] })], Date.now()), 'tls.untrusted_ca', /allows 0 intermediate/);
  });

  it('tls.untrusted_ca for an unrecognised critical extension', async () => {
    const x509 = await loadX509();
    const odd = await issueTestCertificate(pki.partnerA.intermediate, { name: 'odd-critical', extraExtensions: [new x509.Extension('1.3.6.1.4.1.55555.1', true, new Uint8Array([0x05, 0x00]))] });
    refused(identifyClient(odd.presented, acme(), Date.now()), 'tls.untrusted_ca', /1\.3\.6\.1\.4\.1\.55555\.1/);
    const benign = await issueTestCertificate(pki.partnerA.intermediate, { name: 'odd-noncritical', extraExtensions: [new x509.Extension('1.3.6.1.4.1.55555.1', false, new Uint8Array([0x05, 0x00]))] });
    accepted(identifyClient(benign.presented, acme(), Date.now()), 'acme');
  });

  it('tls.name_constraints for a DNS name outside the permitted subtree, also when the constrained CA is the anchor', () => {
    accepted(identifyClient(pki.constrained.inside.presented, acme(), Date.now()), 'acme');
    refused(identifyClient(pki.constrained.outside.presented, acme(), Date.now()), 'tls.name_constraints', /svc\.evil\.example/);
    const constrainedAnchor = [trust('acme', { anchors: [pki.constrained.ca] })];
    accepted(identifyClient([pki.constrained.inside.certificate], constrainedAnchor, Date.now()), 'acme');
    refused(identifyClient([pki.constrained.outside.certificate], constrainedAnchor, Date.now()), 'tls.name_constraints');
  });

  it('tls.name_constraints for excluded DNS, URI hosts, email, IP and directory names', async () => {
    const under = async (name: string, nameConstraints: Parameters<typeof createTestCa>[0]['nameConstraints'], leaves: Array<Parameters<typeof issueTestCertificate>[1]>): Promise<TestLeaf[]> => {
      const ca = await createTestCa({ name, issuer: pki.partnerA.root, organization: 'Acme', nameConstraints });
      return Promise.all(leaves.map((spec) => issueTestCertificate(ca, spec)));
    };
    const judge = (leaf: TestLeaf): IdentifyResult => identifyClient(leaf.presented, acme(), Date.now());

    const [dnsOk, dnsExcluded] = await under('nc-dns-excluded', { excluded: [{ dns: 'secret.acme.example' }] }, [
      { name: 'dns-ok', dnsNames: ['public.acme.example'] },
      { name: 'dns-excluded', dnsNames: ['public.acme.example', 'db.secret.acme.example'] },
    ]);
    accepted(judge(dnsOk!), 'acme');
    refused(judge(dnsExcluded!), 'tls.name_constraints', /excluded/);

    const [uriOk, uriSubdomain, uriOutside, uriNoHost, uriUserinfo] = await under('nc-uri', { permitted: [{ uri: 'acme.example' }, { uri: '.svc.acme.example' }] }, [
      { name: 'uri-ok', uris: ['spiffe://acme.example/orders'] },
      { name: 'uri-subdomain', uris: ['https://a.svc.acme.example/x'] },
      { name: 'uri-outside', uris: ['spiffe://evil.example/acme.example'] },
      { name: 'uri-no-host', uris: ['urn:acme.example:orders'] },
      { name: 'uri-userinfo', uris: ['https://acme.example@evil.example/'] },
    ]);
    accepted(judge(uriOk!), 'acme');
    accepted(judge(uriSubdomain!), 'acme');
    refused(judge(uriOutside!), 'tls.name_constraints', /outside the permitted/);
    refused(judge(uriNoHost!), 'tls.name_constraints', /no host/);
    refused(judge(uriUserinfo!), 'tls.name_constraints');

    const [mailOk, mailOutside] = await under('nc-email', { permitted: [{ email: 'acme.example' }] }, [
      { name: 'mail-ok', emails: ['ops@acme.example'] },
      { name: 'mail-outside', emails: ['ops@evil.example'] },
    ]);
    accepted(judge(mailOk!), 'acme');
    refused(judge(mailOutside!), 'tls.name_constraints');

    const [ipOk, ipOutside] = await under('nc-ip', { permitted: [{ ip: '10.1.0.0/16' }] }, [
      { name: 'ip-ok', ipAddresses: ['10.1.2.3'] },
      { name: 'ip-outside', ipAddresses: ['10.2.0.1'] },
    ]);
    accepted(judge(ipOk!), 'acme');
    refused(judge(ipOutside!), 'tls.name_constraints', /IP address 10\.2\.0\.1/);

    const [dnOk, dnOutside] = await under('nc-dn', { permitted: [{ dn: [{ O: ['Acme'] }] }] }, [
      { name: 'dn-ok', organization: 'Acme', commonName: 'inside' },
      { name: 'dn-outside', organization: 'Evil', commonName: 'outside' },
    ]);
    accepted(judge(dnOk!), 'acme');
    refused(judge(dnOutside!), 'tls.name_constraints', /directory name "CN=outside,O=Evil"/);

    // Without DNS SANs, a host-like common name is checked against DNS constraints (as OpenSSL does).
    const [cnOutside, cnPlain] = await under('nc-cn', { permitted: [{ dns: 'acme.example' }] }, [
      { name: 'cn-outside', commonName: 'www.evil.example' },
      { name: 'cn-plain', commonName: 'orders client' },
    ]);
    refused(judge(cnOutside!), 'tls.name_constraints', /www\.evil\.example/);
    accepted(judge(cnPlain!), 'acme');
  });

  it('tls.name_mismatch when the partner patterns reject an otherwise trusted certificate', () => {
    refused(identifyClient(pki.partnerA.dns.presented, [trust('acme', { anchors: [pki.partnerA.root], sanDns: ['*.other.example'] })], Date.now()), 'tls.name_mismatch');
    refused(identifyClient(pki.selfSigned.presented, [trust('p', { pinned: [pki.selfSigned.fingerprint], subjects: ['CN=someone-else,O=Pinned Ltd'] })], Date.now()), 'tls.name_mismatch');
  });
});

describe('identifyClient: bounds', () => {
  it('follows chains of up to 8 certificates and no longer', async () => {
    const root = await createTestCa({ name: 'deep-root', pathLength: null });
    const intermediates: TestCa[] = [];
    let issuer = root;
    for (let depth = 1; depth <= 7; depth += 1) {
      issuer = await createTestCa({ name: `deep-${depth}`, issuer, pathLength: null });
      intermediates.push(issuer);
    }
    const anchors = [trust('deep', { anchors: [root] })];
    // leaf + 6 intermediates + root = 8.
    const atLimit = await issueTestCertificate(intermediates[5]!, { name: 'at-limit' });
    assert.equal(atLimit.presented.length, 7);
    accepted(identifyClient(atLimit.presented, anchors, Date.now()), 'deep');
    // leaf + 7 intermediates + root = 9.
    const beyond = await issueTestCertificate(intermediates[6]!, { name: 'beyond' });
    assert.equal(beyond.presented.length, 8);
    refused(identifyClient(beyond.presented, anchors, Date.now()), 'tls.untrusted_ca');
  });

  it('considers only the first 8 certificates sent and stays fast with junk among them', async () => {
    const junk = await Promise.all(Array.from({ length: 12 }, (_, index) => createTestCa({ name: `junk-${index}`, commonName: 'Acme Issuing CA', organization: 'Acme' })));
    const sent = [pki.partnerA.good.certificate, ...junk.map((ca) => ca.certificate), pki.partnerA.intermediate.certificate];
    refused(identifyClient(sent, [trust('acme', { anchors: [pki.partnerA.root] })], Date.now()), 'tls.untrusted_ca');
    const early = [pki.partnerA.good.certificate, pki.partnerA.intermediate.certificate, ...junk.map((ca) => ca.certificate)];
    accepted(identifyClient(early, [trust('acme', { anchors: [pki.partnerA.root] })], Date.now()), 'acme');
  });

  it('identifies in well under a millisecond per connection once anchors are parsed', () => {
    const trusts = [
      trust('bolt', { anchors: [pki.partnerB.root] }),
      trust('orders', { anchors: [pki.partnerA.root], sanUri: ['spiffe://acme.example/orders-*'] }),
      trust('edge', { anchors: [pki.partnerA.root], sanDns: ['*.acme.example'] }),
    ];
    const rounds = 200;
    const started = performance.now();
    for (let round = 0; round < rounds; round += 1) {
      // Fresh objects each time, as each connection brings its own certificates.
      const presented = [new X509Certificate(pki.partnerA.spiffe.certificate.raw), new X509Certificate(pki.partnerA.intermediate.certificate.raw)];
      accepted(identifyClient(presented, trusts, Date.now()), 'orders');
    }
    const perCall = (performance.now() - started) / rounds;
    // Generous: the figure is typically ~0.2 ms; this catches accidental re-parsing or unbounded search.
    assert.ok(perCall < 5, `${perCall.toFixed(3)} ms per identification`);
  });
});

describe('namePatternProblem', () => {
  it('accepts the documented pattern forms', () => {
    assert.equal(namePatternProblem('san_dns', '*.acme.example'), null);
    assert.equal(namePatternProblem('san_uri', 'spiffe://acme.example/*'), null);
    assert.equal(namePatternProblem('subject', 'CN=orders-client,O=Acme'), null);
    assert.equal(namePatternProblem('subject', 'CN=Acme\\, Inc.,2.5.4.97=VATDE-1'), null);
  });

  it('names what is wrong with a pattern that could never match', () => {
    assert.match(namePatternProblem('san_dns', 'acme..example') ?? '', /not a DNS name pattern/);
    assert.match(namePatternProblem('san_dns', 'https://acme.example') ?? '', /not a DNS name pattern/);
    assert.match(namePatternProblem('san_uri', 'acme.example/path') ?? '', /not a URI pattern/);
    assert.match(namePatternProblem('san_uri', 'spiffe://acme.example/**') ?? '', /\*\*/);
    assert.match(namePatternProblem('subject', 'Nickname=x') ?? '', /unknown attribute type/);
    assert.match(namePatternProblem('subject', 'CN') ?? '', /not an attribute/);
    assert.match(namePatternProblem('subject', 'CN=a,,O=b') ?? '', /empty/);
  });
});

describe('test PKI (test/helpers/pki.ts)', () => {
  let dir: string;
  let files: TestPkiFiles;
  let pointed: TestPki;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-pki-'));
    files = await pki.writePki(join(dir, 'pki'));
    pointed = await createTestPki({ ocspUrl: 'http://127.0.0.1:39123/', crlUrl: 'http://127.0.0.1:39124/acme.crl', intermediateCrlUrl: 'http://127.0.0.1:39124/root.crl' });
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const verify = (...args: string[]): { ok: boolean; output: string } => {
    try {
      return { ok: true, output: execFileSync('openssl', ['verify', ...args], { stdio: ['ignore', 'pipe', 'pipe'] }).toString() };
    } catch (error) {
      const failure = error as { stdout?: Buffer; stderr?: Buffer };
      return { ok: false, output: `${failure.stdout ?? ''}${failure.stderr ?? ''}` };
    }
  };

  it('writes PEM files OpenSSL verifies for client authentication, keys 0600', async () => {
    const leaves = files.partnerA.leaves;
    const sslClient = (leaf: string, ...trust: string[]): { ok: boolean; output: string } => verify('-purpose', 'sslclient', ...trust, leaf);
    assert.ok(sslClient(leaves.good.cert, '-CAfile', files.partnerA.root, '-untrusted', files.partnerA.intermediate).ok);
    assert.ok(sslClient(leaves.good.cert, '-CAfile', files.partnerA.caBundle).ok);
    assert.match(sslClient(leaves.expired.cert, '-CAfile', files.partnerA.caBundle).output, /expired/);
    assert.match(sslClient(leaves.notYetValid.cert, '-CAfile', files.partnerA.caBundle).output, /not yet valid/);
    assert.match(sslClient(leaves.wrongEku.cert, '-CAfile', files.partnerA.caBundle).output, /unsuitable certificate purpose/);
    assert.ok(sslClient(files.partnerB.leaf.cert, '-CAfile', files.partnerB.root).ok);
    assert.ok(!sslClient(files.partnerB.leaf.cert, '-CAfile', files.partnerA.caBundle).ok, "B's leaf does not chain to A");
    assert.ok(sslClient(files.constrained.inside.cert, '-CAfile', files.partnerA.root, '-untrusted', files.constrained.ca).ok);
    assert.match(sslClient(files.constrained.outside.cert, '-CAfile', files.partnerA.root, '-untrusted', files.constrained.ca).output, /permitted subtree violation/);
    assert.ok(verify('-purpose', 'sslserver', '-CAfile', files.server.ca, files.server.cert).ok);

    const chain = await readFile(leaves.good.chain, 'utf8');
    assert.equal(chain, pki.partnerA.good.certPem + pki.partnerA.intermediate.certPem);
    assert.equal((await stat(leaves.good.key)).mode & 0o777, 0o600);
    assert.equal((await stat(files.server.key)).mode & 0o777, 0o600);
    assert.equal((await stat(leaves.good.cert)).mode & 0o777, 0o644);
    assert.ok(new X509Certificate(await readFile(leaves.good.cert)).checkPrivateKey(createPrivateKey(await readFile(leaves.good.key))));
    assert.ok(pki.server.cert.certificate.checkHost('api.example.test'));
    assert.ok(pki.server.cert.certificate.checkIP('127.0.0.1'));
  });

  it('puts the OCSP responder and CRL URLs it was given into the leaves and the intermediate', () => {
    const good = pointed.partnerA.good.certificate;
    assert.match(good.infoAccess ?? '', /^OCSP - URI:http:\/\/127\.0\.0\.1:39123\/$/m);
    const text = (pem: string): string => openssl('openssl x509 -noout -ext crlDistributionPoints', pem);
    assert.match(text(pointed.partnerA.revoked.certPem), /URI:http:\/\/127\.0\.0\.1:39124\/acme\.crl/);
    assert.match(text(pointed.partnerA.intermediate.certPem), /URI:http:\/\/127\.0\.0\.1:39124\/root\.crl/);
    assert.equal(pki.partnerA.good.certificate.infoAccess, undefined, 'no URL unless asked for');
    assert.equal(pointed.partnerA.ocspSigner.certificate.infoAccess, undefined, 'the responder itself points nowhere');
  });

  it('produces a CRL and an OCSP index that OpenSSL accepts', async () => {
    const a = pki.partnerA;
    const crl = await createTestCrl(a.intermediate, { revoked: [{ certificate: a.revoked.certificate }] });
    const work = await mkdtemp(join(dir, 'ocsp-'));
    const path = (name: string): string => join(work, name);
    await writeFile(path('crl.der'), crl);
    await writeFile(path('ca.crt'), a.intermediate.certPem);
    await writeFile(path('trust.crt'), a.root.certPem + a.intermediate.certPem);
    const crlText = execFileSync('openssl', ['crl', '-inform', 'DER', '-in', path('crl.der'), '-CAfile', path('ca.crt'), '-noout', '-text'], { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
    assert.match(crlText, new RegExp(`Serial Number: ${a.revoked.certificate.serialNumber}`, 'i'));

    await writeFile(path('index.txt'), openSslIndex([{ certificate: a.good.certificate }, { certificate: a.revoked.certificate, revokedAt: new Date(Date.now() - 60_000) }]));
    await writeFile(path('signer.crt'), a.ocspSigner.certPem);
    await writeFile(path('signer.key'), a.ocspSigner.keyPem);
    const status = async (leaf: TestLeaf): Promise<string> => {
      await writeFile(path('leaf.crt'), leaf.certPem);
      const run = (...args: string[]): string => execFileSync('openssl', ['ocsp', ...args], { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
      run('-issuer', path('ca.crt'), '-cert', path('leaf.crt'), '-no_nonce', '-reqout', path('req.der'));
      run('-index', path('index.txt'), '-CA', path('ca.crt'), '-rsigner', path('signer.crt'), '-rkey', path('signer.key'), '-reqin', path('req.der'), '-respout', path('resp.der'));
      return run('-respin', path('resp.der'), '-issuer', path('ca.crt'), '-CAfile', path('trust.crt'), '-cert', path('leaf.crt'));
    };
    assert.match(await status(a.good), /leaf\.crt: good/);
    assert.match(await status(a.revoked), /leaf\.crt: revoked/);
  });

  it('hands identifyClient the chain a real TLS client sends', async () => {
    const server = tls.createServer({ key: pki.server.cert.keyPem, cert: pki.server.cert.certPem, requestCert: true, rejectUnauthorized: false });
    const seen = new Promise<X509Certificate[]>((resolve) => {
      server.once('secureConnection', (socket) => {
        const chain: X509Certificate[] = [];
        let peer: tls.DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
        while (peer?.raw && !chain.some((cert) => cert.raw.equals(peer!.raw))) {
          chain.push(new X509Certificate(peer.raw));
          peer = peer.issuerCertificate;
        }
        socket.end();
        resolve(chain);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const client = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: pki.server.ca.certPem, cert: pki.partnerA.spiffe.chainPem, key: pki.partnerA.spiffe.keyPem });
      client.on('error', () => {});
      const chain = await seen;
      client.destroy();
      assert.equal(chain.length, 2, 'leaf and the intermediate the client sent');
      const result = accepted(identifyClient(chain, [trust('acme', { anchors: [pki.partnerA.root], sanUri: ['spiffe://acme.example/*'] })], Date.now()), 'acme');
      assert.equal(result.facts.x5t, certificateFacts(pki.partnerA.spiffe.certificate).x5t);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
