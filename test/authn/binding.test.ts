/**
 * Sender-constrained tokens (src/authn/binding.ts; SECURITY.md MT-04, MT-07, DP-05, DP-06).
 *
 * Certificate binding is checked against the certificate of a real TLS connection: a loopback
 * TLS server that asks for client certificates computes `x5t#S256` from the peer certificate of
 * each connection, exactly as the gateway must (RFC 8705 §3.1), and runs `checkBinding`. The
 * PKI (a CA, two partners' certificates, a renewal) is generated per run. DPoP binding uses
 * proofs verified by `verifyDpopProof` with keys generated per run and the real embedded store.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, hash, randomUUID } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { SignJWT } from 'jose';
import { checkBinding } from '../../src/authn/binding.ts';
import type { BindingInput, BindingReason, BindingResult } from '../../src/authn/binding.ts';
import { accessTokenHash, verifyDpopProof } from '../../src/authn/dpop.ts';
import { createCa, issueClientCertificate, issueServerCertificate } from '../../src/pki/dev-ca.ts';
import type { CertificateAuthority, IssuedCertificate } from '../../src/pki/dev-ca.ts';
import { openEmbeddedStore } from '../../src/state/embedded.ts';
import type { StateStore } from '../../src/state/store.ts';

/** RFC 8705 §3.1: base64url SHA-256 of the DER certificate, no padding. */
const x5tOf = (cert: IssuedCertificate): string => hash('sha256', cert.certificate.raw, 'base64url');

let ca: CertificateAuthority;
let partnerA: IssuedCertificate;
let partnerARenewed: IssuedCertificate;
let partnerB: IssuedCertificate;
let server: tls.Server;
let port: number;

/** What the test sends over the connection; the server adds the connection's certificate. */
type Presented = Omit<BindingInput, 'certificateX5t'>;

/**
 * Opens a TLS connection (with `clientCert`, or none), sends `presented`, and returns what
 * `checkBinding` decided on the server side with that connection's certificate.
 */
function presentOver(clientCert: IssuedCertificate | null, presented: Presented): Promise<BindingResult & { x5t?: string | null }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      ca: ca.certPem,
      ...(clientCert === null ? {} : { cert: clientCert.certPem, key: clientCert.keyPem }),
    });
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('secureConnect', () => socket.end(`${JSON.stringify(presented)}\n`));
    socket.on('data', (chunk: string) => (answer += chunk));
    socket.on('end', () => {
      try {
        resolve(JSON.parse(answer));
      } catch (error) {
        reject(error);
      }
    });
    socket.on('error', reject);
  });
}

before(async () => {
  ca = await createCa({ commonName: 'Binding test CA' });
  const serverCert = await issueServerCertificate(ca, { ipAddresses: ['127.0.0.1'] });
  partnerA = await issueClientCertificate(ca, { commonName: 'partner-a' });
  partnerARenewed = await issueClientCertificate(ca, { commonName: 'partner-a' });
  partnerB = await issueClientCertificate(ca, { commonName: 'partner-b' });

  // Trust decisions are the transport stage's; this server only reports the connection's certificate.
  server = tls.createServer({ key: serverCert.keyPem, cert: serverCert.certPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: false }, (socket) => {
    let input = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      input += chunk;
      if (!input.includes('\n')) return;
      const presented = JSON.parse(input) as Presented;
      const peer = socket.getPeerX509Certificate();
      const certificateX5t = peer === undefined ? null : hash('sha256', peer.raw, 'base64url');
      const result = checkBinding({ ...presented, certificateX5t });
      socket.end(JSON.stringify({ ...result, x5t: certificateX5t }));
    });
    socket.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

after(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

function assertRefused(result: BindingResult, reason: BindingReason): void {
  assert.equal(result.ok, false, `expected ${reason}, the token was accepted`);
  if (!result.ok) assert.equal(result.reason, reason, result.detail);
}

function bearer(claims: Record<string, unknown>, required = false): Presented {
  return { claims, scheme: 'Bearer', dpopJkt: null, required };
}

describe('MT-04: a certificate-bound token is accepted only over a connection with that certificate', () => {
  it('the server sees the certificate the client presented (the test rig is sound)', async () => {
    const result = await presentOver(partnerA, bearer({}));
    assert.equal(result.x5t, x5tOf(partnerA));
    assert.equal((await presentOver(null, bearer({}))).x5t, null);
  });

  it('accepts the token over a connection presenting the bound certificate', async () => {
    const result = await presentOver(partnerA, bearer({ cnf: { 'x5t#S256': x5tOf(partnerA) } }));
    assert.deepEqual({ ok: result.ok, boundTo: result.ok ? result.boundTo : null }, { ok: true, boundTo: 'certificate' });
  });

  it('refuses it over a connection without a client certificate (binding.cnf_x5t_mismatch)', async () => {
    assertRefused(await presentOver(null, bearer({ cnf: { 'x5t#S256': x5tOf(partnerA) } })), 'binding.cnf_x5t_mismatch');
  });

  it('refuses it over another partner\'s certificate from the same CA (binding.cnf_x5t_mismatch)', async () => {
    assertRefused(await presentOver(partnerB, bearer({ cnf: { 'x5t#S256': x5tOf(partnerA) } })), 'binding.cnf_x5t_mismatch');
  });

  it('the same holds for an introspection response carrying cnf (RFC 8705 §3.2)', async () => {
    const introspected = { active: true, client_id: 'partner-a', token_type: 'Bearer', cnf: { 'x5t#S256': x5tOf(partnerA) } };
    assert.equal((await presentOver(partnerA, bearer(introspected))).ok, true);
    assertRefused(await presentOver(partnerB, bearer(introspected)), 'binding.cnf_x5t_mismatch');
  });

  it('refuses a thumbprint written in another encoding (binding.cnf_invalid)', async () => {
    const cert = partnerA.certificate;
    for (const written of [
      cert.fingerprint256, // hex with colons
      hash('sha256', cert.raw, 'hex'),
      hash('sha256', cert.raw, 'base64'), // padded, and maybe + or /
      `${x5tOf(partnerA)}=`,
      x5tOf(partnerA).slice(0, -1),
      hash('sha1', cert.raw, 'base64url'),
      42,
      null,
    ]) {
      assertRefused(await presentOver(partnerA, bearer({ cnf: { 'x5t#S256': written } })), 'binding.cnf_invalid');
    }
  });
});

describe('MT-07: a renewed certificate needs a re-issued token', () => {
  it('the renewal has another thumbprint', () => {
    assert.notEqual(x5tOf(partnerARenewed), x5tOf(partnerA));
    assert.equal(partnerARenewed.certificate.subject, partnerA.certificate.subject);
  });

  it('refuses the old token over the renewed certificate (binding.cnf_x5t_mismatch)', async () => {
    assertRefused(await presentOver(partnerARenewed, bearer({ cnf: { 'x5t#S256': x5tOf(partnerA) } })), 'binding.cnf_x5t_mismatch');
  });

  it('accepts a token re-issued for the renewed certificate, and refuses that one over the old certificate', async () => {
    const reissued = { cnf: { 'x5t#S256': x5tOf(partnerARenewed) } };
    assert.equal((await presentOver(partnerARenewed, bearer(reissued))).ok, true);
    assertRefused(await presentOver(partnerA, bearer(reissued)), 'binding.cnf_x5t_mismatch');
  });
});

describe('DP-05 / DP-06: DPoP-bound tokens', () => {
  let dir: string;
  let store: StateStore;
  let key: { privateKey: KeyObject; jwk: Record<string, unknown> };
  let otherKey: { privateKey: KeyObject; jwk: Record<string, unknown> };
  const HTU = 'https://api.example.com/orders';

  function newEs256Key(): { privateKey: KeyObject; jwk: Record<string, unknown> } {
    const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    return { privateKey: pair.privateKey, jwk: pair.publicKey.export({ format: 'jwk' }) as Record<string, unknown> };
  }

  /** A proof for `accessToken`, verified as the credential stage would; returns the key's thumbprint. */
  async function verifiedJkt(signer: { privateKey: KeyObject; jwk: Record<string, unknown> }, accessToken: string): Promise<string> {
    const proof = await new SignJWT({ jti: randomUUID(), htm: 'GET', htu: HTU, iat: Math.floor(Date.now() / 1000), ath: accessTokenHash(accessToken) })
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: signer.jwk })
      .sign(signer.privateKey);
    const result = await verifyDpopProof({
      headerValues: [proof],
      method: 'GET',
      htu: HTU,
      accessToken,
      nowMs: Date.now(),
      settings: { algorithms: new Set(['ES256']), proofLifetimeMs: 60_000, nonce: null },
      replay: (replayKey, ttlMs) => store.setIfAbsent(replayKey, ttlMs),
    });
    assert.ok(result.ok, result.ok ? '' : result.detail);
    return result.jkt;
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-binding-'));
    store = await openEmbeddedStore({ path: join(dir, 'state.sqlite'), propagationTimeoutMs: 1000 });
    key = newEs256Key();
    otherKey = newEs256Key();
  });

  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('accepts a token whose cnf.jkt is the key of the verified proof (DP-05)', async () => {
    const jkt = await verifiedJkt(key, 'token-1');
    const result = checkBinding({ claims: { cnf: { jkt } }, scheme: 'DPoP', certificateX5t: null, dpopJkt: jkt, required: true });
    assert.deepEqual(result, { ok: true, boundTo: 'dpop' });
  });

  it('refuses it when the proof is signed by another key (binding.cnf_jkt_mismatch)', async () => {
    const boundTo = await verifiedJkt(key, 'token-2');
    const attacker = await verifiedJkt(otherKey, 'token-2');
    assertRefused(checkBinding({ claims: { cnf: { jkt: boundTo } }, scheme: 'DPoP', certificateX5t: null, dpopJkt: attacker, required: false }), 'binding.cnf_jkt_mismatch');
  });

  it('refuses it with the DPoP scheme but no verified proof (binding.cnf_jkt_mismatch)', async () => {
    const jkt = await verifiedJkt(key, 'token-3');
    assertRefused(checkBinding({ claims: { cnf: { jkt } }, scheme: 'DPoP', certificateX5t: null, dpopJkt: null, required: false }), 'binding.cnf_jkt_mismatch');
  });

  it('refuses a DPoP-bound token presented as Bearer, even with a valid proof alongside (binding.dpop_as_bearer; DP-06)', async () => {
    const jkt = await verifiedJkt(key, 'token-4');
    assertRefused(checkBinding({ claims: { cnf: { jkt } }, scheme: 'Bearer', certificateX5t: null, dpopJkt: null, required: false }), 'binding.dpop_as_bearer');
    assertRefused(checkBinding({ claims: { cnf: { jkt } }, scheme: 'Bearer', certificateX5t: null, dpopJkt: jkt, required: false }), 'binding.dpop_as_bearer');
  });

  it('refuses an unbound or certificate-bound token presented with the DPoP scheme (binding.dpop_unbound)', async () => {
    const jkt = await verifiedJkt(key, 'token-5');
    assertRefused(checkBinding({ claims: {}, scheme: 'DPoP', certificateX5t: null, dpopJkt: jkt, required: false }), 'binding.dpop_unbound');
    assertRefused(checkBinding({ claims: { cnf: { 'x5t#S256': x5tOf(partnerA) } }, scheme: 'DPoP', certificateX5t: x5tOf(partnerA), dpopJkt: jkt, required: false }), 'binding.dpop_unbound');
  });

  it('a token bound to a certificate and a DPoP key needs both', async () => {
    const jkt = await verifiedJkt(key, 'token-6');
    const claims = { cnf: { jkt, 'x5t#S256': x5tOf(partnerA) } };
    assert.deepEqual(await presentOver(partnerA, { claims, scheme: 'DPoP', dpopJkt: jkt, required: false }), { ok: true, boundTo: 'dpop', x5t: x5tOf(partnerA) });
    assertRefused(await presentOver(partnerB, { claims, scheme: 'DPoP', dpopJkt: jkt, required: false }), 'binding.cnf_x5t_mismatch');
    assertRefused(await presentOver(null, { claims, scheme: 'DPoP', dpopJkt: jkt, required: false }), 'binding.cnf_x5t_mismatch');
    assertRefused(await presentOver(partnerA, { claims, scheme: 'Bearer', dpopJkt: null, required: false }), 'binding.dpop_as_bearer');
  });
});

describe('cnf must be readable, and sender constraint can be required', () => {
  const jkt = hash('sha256', 'a key', 'base64url');

  it('refuses a cnf that is not an object, is empty, or names only methods we do not check (binding.cnf_invalid)', () => {
    for (const cnf of ['x5t', ['jkt'], null, 1, {}, { jwk: { kty: 'EC' } }, { kid: 'k1' }, { x5t: 'sha1-thumbprint' }, { jkt: 42 }, { jkt: `${jkt}==` }, { jkt: 'a'.repeat(43) }]) {
      assertRefused(checkBinding({ claims: { cnf }, scheme: 'Bearer', certificateX5t: null, dpopJkt: null, required: false }), 'binding.cnf_invalid');
    }
  });

  it('ignores unknown methods beside a known one (RFC 7800 §3)', () => {
    assert.deepEqual(checkBinding({ claims: { cnf: { jkt, kid: 'k1' } }, scheme: 'DPoP', certificateX5t: null, dpopJkt: jkt, required: false }), { ok: true, boundTo: 'dpop' });
  });

  it('reads cnf from an own member only (a null-prototype claims object as the strict parser makes)', () => {
    const claims = Object.create({ cnf: { jkt } }) as Record<string, unknown>;
    assert.deepEqual(checkBinding({ claims, scheme: 'Bearer', certificateX5t: null, dpopJkt: null, required: false }), { ok: true, boundTo: null });
  });

  it('accepts an unbound bearer token unless a sender constraint is required (binding.sender_constraint_required)', async () => {
    assert.deepEqual(checkBinding({ claims: { sub: 'partner' }, scheme: 'Bearer', certificateX5t: null, dpopJkt: null, required: false }), { ok: true, boundTo: null });
    assertRefused(checkBinding({ claims: { sub: 'partner' }, scheme: 'Bearer', certificateX5t: null, dpopJkt: null, required: true }), 'binding.sender_constraint_required');
    // A client certificate on the connection does not make an unbound token sender-constrained.
    assertRefused(await presentOver(partnerA, bearer({ sub: 'partner' }, true)), 'binding.sender_constraint_required');
    assert.equal((await presentOver(partnerA, bearer({ cnf: { 'x5t#S256': x5tOf(partnerA) } }, true))).ok, true);
  });
});
