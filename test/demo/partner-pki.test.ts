/**
 * The demo partner's PKI: acme's own client CA and its two client certificates, judged by the
 * real certificate identification with acme's trust as examples/demo.yaml configures it.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadOrCreatePartnerPki, PARTNER_PKI_FILES, PARTNER_PKI_NAMES } from '../../src/demo/partner-pki.ts';
import { createDevPki } from '../../src/pki/dev-ca.ts';
import { identifyClient } from '../../src/pki/client-certificate.ts';
import type { PartnerTrust } from '../../src/pki/types.ts';

const DAY_MS = 86_400_000;

async function certificate(path: string): Promise<X509Certificate> {
  return new X509Certificate(await readFile(path));
}

/** acme's trust as examples/demo.yaml writes it: its own CA, SPIFFE IDs under acme.localhost. */
function acmeTrust(ca: X509Certificate): PartnerTrust {
  return { partnerId: 'acme', anchors: [ca], pinned: new Set(), subjects: null, sanDns: null, sanUri: ['spiffe://acme.localhost/*'], revocation: null };
}

describe('loadOrCreatePartnerPki', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'portcullis-partner-pki-'));
  });
  after(() => rm(root, { recursive: true, force: true }));

  it('creates acme\'s CA and two client certificates that acme\'s trust accepts, keys 0600', async () => {
    const dir = join(root, 'fresh');
    const pki = await loadOrCreatePartnerPki(dir);
    assert.equal(pki.reused, false);
    assert.equal(pki.reason, `${PARTNER_PKI_FILES.ca} is missing`);
    const [ca, client, revoked] = await Promise.all([certificate(pki.paths.ca), certificate(pki.paths.clientCert), certificate(pki.paths.revokedCert)]);
    assert.equal(ca.ca, true);
    assert.match(ca.subject, new RegExp(`CN=${PARTNER_PKI_NAMES.caCommonName.replace(/[()]/g, '\\$&')}`));
    assert.equal(pki.caFingerprint, createHash('sha256').update(ca.raw).digest('hex'));
    assert.equal(pki.revokedFingerprint, createHash('sha256').update(revoked.raw).digest('hex'));
    assert.equal(pki.revokedNotAfter.getTime(), revoked.validToDate.getTime());
    assert.notEqual(pki.revokedFingerprint, createHash('sha256').update(client.raw).digest('hex'));

    const now = Date.now();
    for (const [leaf, uri] of [[client, PARTNER_PKI_NAMES.clientUri], [revoked, PARTNER_PKI_NAMES.revokedUri]] as const) {
      const result = identifyClient([leaf], [acmeTrust(ca)], now);
      assert.ok(result.ok, JSON.stringify(result));
      assert.equal(result.partnerId, 'acme');
      assert.deepEqual(result.facts.sanUri, [uri]);
    }
    for (const key of [pki.paths.clientKey, pki.paths.revokedKey]) assert.equal((await stat(key)).mode & 0o777, 0o600);
  });

  it('acme\'s CA is not the gateway\'s dev CA: a dev-CA client certificate does not authenticate acme', async () => {
    const pki = await loadOrCreatePartnerPki(join(root, 'separate'));
    const dev = await createDevPki();
    const result = identifyClient([dev.client.certificate], [acmeTrust(await certificate(pki.paths.ca))], Date.now());
    assert.equal(result.ok, false);
  });

  it('reuses intact files, and creates everything again when one is missing, broken or about to expire', async () => {
    const dir = join(root, 'reuse');
    const first = await loadOrCreatePartnerPki(dir);
    const again = await loadOrCreatePartnerPki(dir);
    assert.equal(again.reused, true);
    assert.equal(again.revokedFingerprint, first.revokedFingerprint);
    assert.deepEqual(await readFile(again.paths.ca), await readFile(first.paths.ca));

    await unlink(first.paths.revokedKey);
    const missing = await loadOrCreatePartnerPki(dir);
    assert.deepEqual([missing.reused, missing.reason], [false, `${PARTNER_PKI_FILES.revokedKey} is missing`]);
    assert.notEqual(missing.caFingerprint, first.caFingerprint, 'a new CA: the old one\'s key is gone');

    // The other certificate's key in place of this one's.
    await writeFile(missing.paths.clientKey, await readFile(missing.paths.revokedKey));
    const mismatched = await loadOrCreatePartnerPki(dir);
    assert.deepEqual([mismatched.reused, mismatched.reason], [false, `${PARTNER_PKI_FILES.clientKey} does not match ${PARTNER_PKI_FILES.clientCert}`]);

    // Leaves last 90 days: seen from 85 days on, they expire within the 7-day renewal margin.
    const late = await loadOrCreatePartnerPki(dir, { now: new Date(Date.now() + 85 * DAY_MS) });
    assert.equal(late.reused, false);
    assert.match(late.reason ?? '', /^acme-client\.crt expires /);
  });
});
