// Issue 4 end to end: mutual TLS per partner through a real gateway over real TLS, with a PKI
// made for this run, a CRL file, a real `openssl ocsp` responder, Node's TLS client and curl.
// Every refusal is a 401/503 with a precise reason on the record and no upstream call.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import https from 'node:https';
import { Agent, request } from 'undici';
import { SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import { startHarness } from '../helpers/harness.ts';
import type { Harness } from '../helpers/harness.ts';
import { createTestCrl, createTestPki } from '../helpers/pki.ts';
import type { TestLeaf, TestPki, TestPkiFiles } from '../helpers/pki.ts';
import { startOcspResponder } from '../helpers/ocsp-responder.ts';
import type { OcspResponder } from '../helpers/ocsp-responder.ts';
import { accessToken, generateTestKey, jwks } from '../helpers/tokens.ts';

const ISS = 'https://idp.example.test';
const AUD = 'https://api.example.test/orders';
const HOST = 'api.example.test';
const key = generateTestKey('ES256');

let pki: TestPki;
let files: TestPkiFiles;

before(async () => {
  pki = await createTestPki();
});

function config(dir: string, revocation: string, extraPartner = ''): string {
  return `
version: 1
abuse: { auth_failures_per_source: off, denials_per_credential: off }
listeners:
  - name: mtls
    zone: partner
    port: 0
    hostnames: [${HOST}]
    tls: { cert: ${files.server.cert}, key: ${files.server.key}, http2: false, client_certificates: require }
upstreams:
  - { id: sample, url: "{{UPSTREAM}}" }
issuers:
  - { id: idp, issuer: "${ISS}", jwks_file: ${join(dir, 'jwks.json')}, algorithms: [ES256] }
apis:
  - { id: orders, audience: "${AUD}" }
routes:
  - { id: cert-only, zone: partner, methods: [GET], path: /cert-only, upstream: sample, api: orders, credentials: [mtls] }
  - { id: orders, zone: partner, methods: [GET], path: /orders, upstream: sample, api: orders }
  - { id: bound, zone: partner, methods: [GET], path: /bound, upstream: sample, api: orders, require_sender_constrained: true }
partners:
  - id: acme
    agreement: { id: MSA-acme, expires: 2099-12-31 }
    mtls:
      ca: [${files.partnerA.root}]
${revocation}
    credentials:
      - { id: acme-cert, type: mtls }
      - { id: acme-jwt, type: jwt, issuer: idp, client_id: acme-client }
    grants:
      - { api: orders }
  - id: bolt
    agreement: { id: MSA-bolt, expires: 2099-12-31 }
    mtls: { ca: [${files.partnerB.root}] }
    credentials:
      - { id: bolt-cert, type: mtls }
      - { id: bolt-jwt, type: jwt, issuer: idp, client_id: bolt-client }
    grants:
      - { api: orders }
${extraPartner}`;
}

interface Answer {
  readonly status: number;
  readonly code: string | undefined;
  readonly id: string;
  readonly headers: Record<string, string | string[] | undefined>;
}

/** One request on its own TLS connection, presenting `leaf` (its chain) or no certificate. */
async function call(h: Harness, path: string, leaf: TestLeaf | LeafPem | null, headers: Record<string, string> = {}): Promise<Answer> {
  const dispatcher = new Agent({
    connect: { ca: pki.server.ca.certPem, servername: HOST, ...(leaf ? { cert: 'chainPem' in leaf ? leaf.chainPem : leaf.certPem, key: leaf.keyPem } : {}) },
  });
  try {
    const response = await request(`${h.url('mtls')}${path}`, { headers: { host: HOST, ...headers }, dispatcher });
    const text = await response.body.text();
    return { status: response.statusCode, code: text.startsWith('{') ? (JSON.parse(text) as { code?: string }).code : undefined, id: String(response.headers['x-request-id']), headers: response.headers };
  } finally {
    await dispatcher.close();
  }
}

interface LeafPem {
  readonly certPem: string;
  readonly keyPem: string;
}

async function recordOf(h: Harness, id: string): Promise<Record<string, any>> {
  for (let i = 0; i < 50; i++) {
    const record = (await h.records()).find((entry) => entry.http.request.id === id);
    if (record) return record;
  }
  throw new Error(`no record for ${id}`);
}

async function refused(h: Harness, path: string, leaf: TestLeaf | null, expected: { status: number; code: string; reason: string }, headers: Record<string, string> = {}): Promise<Record<string, any>> {
  const before = h.upstream.seen.length;
  const answer = await call(h, path, leaf, headers);
  assert.deepEqual({ status: answer.status, code: answer.code }, { status: expected.status, code: expected.code });
  const record = await recordOf(h, answer.id);
  assert.equal(record.event.reason, expected.reason);
  assert.equal(h.upstream.seen.length, before, 'nothing forwarded');
  return record;
}

function token(clientId: string, extraClaims: Record<string, unknown> = {}): string {
  return accessToken(key, { iss: ISS, aud: AUD, clientId }, {}, extraClaims);
}

/** RFC 8705 §3.1: base64url SHA-256 of the certificate's DER. */
function x5tOf(leaf: TestLeaf): string {
  return createHash('sha256').update(leaf.certificate.raw).digest('base64url');
}

describe('client certificates, a CRL file, and revocation through the gateway', () => {
  let h: Harness;
  let crlFile: string;
  before(async () => {
    const base = await mkdtemp(join(tmpdir(), 'portcullis-mtls-'));
    files = await pki.writePki(join(base, 'pki'));
    crlFile = join(base, 'acme.crl');
    await writeFile(crlFile, await createTestCrl(pki.partnerA.intermediate, { revoked: [{ certificate: pki.partnerA.revoked.certificate }] }));
    await writeFile(join(base, 'jwks.json'), jwks(key));
    const selfSignedPin = `sha256:${pki.selfSigned.fingerprint}`;
    h = await startHarness(
      config(base, `      revocation: { crl: { file: ${crlFile} } }`, `  - id: pinned-co
    agreement: { id: MSA-pin, expires: 2099-12-31 }
    mtls: { pinned: [${selfSignedPin}] }
    credentials:
      - { id: pinned-cert, type: mtls }
    grants:
      - { api: orders }
`),
    );
  });
  after(async () => h?.close());

  test('a partner certificate alone authenticates its partner on an mtls route; the record names the certificate', async () => {
    const answer = await call(h, '/cert-only', pki.partnerA.good);
    assert.equal(answer.status, 200);
    const seen = h.upstream.seen.at(-1)!.headers;
    assert.equal(seen['x-portcullis-partner'], 'acme');
    assert.equal(seen['x-portcullis-credential'], 'acme-cert');
    const record = await recordOf(h, answer.id);
    assert.equal(record.portcullis.credential.type, 'mtls');
    assert.equal(record.tls.client.hash.sha256, pki.partnerA.good.fingerprint);
    assert.equal(record.tls.client.x509.serial_number, pki.partnerA.good.certificate.serialNumber.toLowerCase().replace(/^0+/, ''));
    // Partner B's certificate authenticates partner B, never A.
    const bolt = await call(h, '/cert-only', pki.partnerB.leaf);
    assert.equal(bolt.status, 200);
    assert.equal(h.upstream.seen.at(-1)!.headers['x-portcullis-partner'], 'bolt');
    // A pinned self-signed certificate authenticates the partner that pins it.
    assert.equal((await call(h, '/cert-only', pki.selfSigned)).status, 200);
    assert.equal(h.upstream.seen.at(-1)!.headers['x-portcullis-partner'], 'pinned-co');
  });

  test('every certificate problem is a 401 with its own reason, and nothing is forwarded', async () => {
    await refused(h, '/cert-only', null, { status: 401, code: 'certificate_required', reason: 'tls.certificate_missing' });
    await refused(h, '/cert-only', pki.partnerA.expired, { status: 401, code: 'invalid_client_certificate', reason: 'tls.cert_expired' });
    await refused(h, '/cert-only', pki.partnerA.notYetValid, { status: 401, code: 'invalid_client_certificate', reason: 'tls.cert_not_yet_valid' });
    await refused(h, '/cert-only', pki.partnerA.wrongEku, { status: 401, code: 'invalid_client_certificate', reason: 'tls.eku' });
    await refused(h, '/cert-only', pki.constrained.outside, { status: 401, code: 'invalid_client_certificate', reason: 'tls.name_constraints' });
    await refused(h, '/cert-only', pki.partnerA.revoked, { status: 401, code: 'invalid_client_certificate', reason: 'tls.revoked_crl' });
    // A certificate from a CA no partner trusts (the server CA's own client certificate would do; the
    // pinned partner's certificate re-signed is not needed: the server certificate itself is one).
    const stranger = { certPem: pki.server.cert.certPem, keyPem: pki.server.cert.keyPem };
    const before = h.upstream.seen.length;
    const answer = await call(h, '/cert-only', stranger);
    assert.deepEqual([answer.status, answer.code], [401, 'invalid_client_certificate']);
    assert.match((await recordOf(h, answer.id)).event.reason, /^tls\.(untrusted_ca|eku)$/);
    assert.equal(h.upstream.seen.length, before);
  });

  test('a leaf revoked at its CA (a new CRL file) is refused once the gateway has looked at the file again', async () => {
    assert.equal((await call(h, '/cert-only', pki.partnerA.spiffe)).status, 200);
    await writeFile(
      crlFile,
      await createTestCrl(pki.partnerA.intermediate, { revoked: [{ certificate: pki.partnerA.revoked.certificate }, { certificate: pki.partnerA.spiffe.certificate }] }),
    );
    // The file is looked at (one stat) at most once a second; no reload is involved.
    const deadline = Date.now() + 5000;
    let answer = await call(h, '/cert-only', pki.partnerA.spiffe);
    while (answer.status === 200 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      answer = await call(h, '/cert-only', pki.partnerA.spiffe);
    }
    assert.deepEqual([answer.status, answer.code], [401, 'invalid_client_certificate']);
    assert.equal((await recordOf(h, answer.id)).event.reason, 'tls.revoked_crl');
  });

  test('a token of one partner over another partner\'s certificate is refused', async () => {
    await refused(h, '/orders', pki.partnerB.leaf, { status: 401, code: 'invalid_token', reason: 'tls.partner_mismatch' }, { authorization: `Bearer ${token('acme-client')}` });
    assert.equal((await call(h, '/orders', pki.partnerA.good, { authorization: `Bearer ${token('acme-client')}` })).status, 200);
  });

  test('certificate-bound tokens (RFC 8705): accepted only with that certificate; a route can require binding', async () => {
    const bound = token('acme-client', { cnf: { 'x5t#S256': x5tOf(pki.partnerA.good) } });
    assert.equal((await call(h, '/bound', pki.partnerA.good, { authorization: `Bearer ${bound}` })).status, 200);
    await refused(h, '/bound', pki.partnerA.dns, { status: 401, code: 'invalid_token', reason: 'binding.cnf_x5t_mismatch' }, { authorization: `Bearer ${bound}` });
    await refused(h, '/bound', pki.partnerA.good, { status: 401, code: 'invalid_token', reason: 'binding.sender_constraint_required' }, { authorization: `Bearer ${token('acme-client')}` });
  });

  test('DPoP (RFC 9449): a bound token with a fresh proof passes; as Bearer, replayed or for another URL it is refused', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const jwk = await exportJWK(publicKey);
    const jkt = await calculateJwkThumbprint(jwk);
    const dpopToken = token('acme-client', { cnf: { jkt } });
    const ath = Buffer.from(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(dpopToken))).toString('base64url');
    const proof = (htu: string) =>
      new SignJWT({ htm: 'GET', htu, jti: randomUUID(), ath }).setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk }).setIssuedAt().sign(privateKey);
    const good = await proof(`https://${HOST}/bound`);
    assert.equal((await call(h, '/bound', pki.partnerA.good, { authorization: `DPoP ${dpopToken}`, dpop: good })).status, 200);
    await refused(h, '/bound', pki.partnerA.good, { status: 401, code: 'invalid_dpop_proof', reason: 'dpop.replayed' }, { authorization: `DPoP ${dpopToken}`, dpop: good });
    await refused(h, '/bound', pki.partnerA.good, { status: 401, code: 'invalid_token', reason: 'binding.dpop_as_bearer' }, { authorization: `Bearer ${dpopToken}` });
    const elsewhere = await refused(h, '/bound', pki.partnerA.good, { status: 401, code: 'invalid_dpop_proof', reason: 'dpop.htu_mismatch' }, {
      authorization: `DPoP ${dpopToken}`,
      dpop: await proof(`https://${HOST}/orders`),
    });
    assert.equal(elsewhere.portcullis.partner.id, 'acme');
  });

  test('a certificate revoked through the gateway is refused on the next request of the same connection', async () => {
    const dispatcher = new Agent({ connect: { ca: pki.server.ca.certPem, servername: HOST, cert: pki.partnerA.dns.chainPem, key: pki.partnerA.dns.keyPem } });
    try {
      const get = async () => {
        const response = await request(`${h.url('mtls')}/cert-only`, { headers: { host: HOST }, dispatcher });
        await response.body.dump();
        return { status: response.statusCode, id: String(response.headers['x-request-id']) };
      };
      assert.equal((await get()).status, 200);
      await h.gateway.state.revoke({ kind: 'certificate', key: `sha256:${pki.partnerA.dns.fingerprint}`, reason: 'key compromise', actor: 'test', at: Date.now(), expiresAt: null });
      const refusedAnswer = await get();
      assert.equal(refusedAnswer.status, 401);
      assert.equal((await recordOf(h, refusedAnswer.id)).event.reason, 'tls.revoked_gateway');
    } finally {
      await dispatcher.close();
    }
  });

  test('a client that tries to resume its TLS session is judged on its whole chain again (no resumption)', async () => {
    // node's https.Agent offers the cached session on each new connection.
    const agent = new https.Agent({ keepAlive: false, maxCachedSessions: 10, ca: pki.server.ca.certPem, cert: pki.partnerA.good.chainPem, key: pki.partnerA.good.keyPem, servername: HOST });
    const port = Number(new URL(h.url('mtls')).port);
    const once = () =>
      new Promise<{ status: number; reused: boolean }>((resolve, reject) => {
        const req = https.request({ host: '127.0.0.1', port, path: '/cert-only', headers: { host: HOST }, agent }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: (res.socket as import('node:tls').TLSSocket).isSessionReused() }));
        });
        req.on('error', reject);
        req.end();
      });
    try {
      const answers = [await once(), await once(), await once()];
      assert.deepEqual(answers.map((answer) => answer.status), [200, 200, 200]);
      assert.deepEqual(answers.map((answer) => answer.reused), [false, false, false]);
    } finally {
      agent.destroy();
    }
  });

  test('curl with a client certificate', async () => {
    const { stdout } = await promisify(execFile)('curl', [
      '-sS',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '--cacert',
      files.server.ca,
      '--cert',
      files.partnerA.leaves.good.chain,
      '--key',
      files.partnerA.leaves.good.key,
      '--resolve',
      `${HOST}:${new URL(h.url('mtls')).port}:127.0.0.1`,
      `https://${HOST}:${new URL(h.url('mtls')).port}/cert-only`,
    ]);
    assert.equal(stdout, '200');
  });
});

describe('OCSP with a real openssl responder: hard-fail by default, acknowledged soft-fail', () => {
  let h: Harness;
  let responder: OcspResponder;
  let base: string;
  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'portcullis-ocsp-'));
    files ??= await pki.writePki(join(base, 'pki'));
    await writeFile(join(base, 'jwks.json'), jwks(key));
    responder = await startOcspResponder({
      caCertPem: pki.partnerA.intermediate.certPem,
      signerCertPem: pki.partnerA.ocspSigner.certPem,
      signerKeyPem: pki.partnerA.ocspSigner.keyPem,
      entries: [
        { certificate: pki.partnerA.good.certificate, status: 'valid' },
        { certificate: pki.partnerA.revoked.certificate, status: 'revoked' },
        { certificate: pki.partnerA.spiffe.certificate, status: 'valid' },
        { certificate: pki.partnerA.dns.certificate, status: 'valid' },
      ],
    });
    h = await startHarness(config(base, `      revocation: { ocsp: { url: "${responder.url}" } }`));
  });
  after(async () => {
    await h?.close();
    await responder?.stop();
  });

  test('good is let through (and cached), revoked is refused', async () => {
    assert.equal((await call(h, '/cert-only', pki.partnerA.good)).status, 200);
    const asked = responder.requests;
    assert.equal((await call(h, '/cert-only', pki.partnerA.good)).status, 200);
    assert.equal(responder.requests, asked, 'the second check is answered from the cache');
    await refused(h, '/cert-only', pki.partnerA.revoked, { status: 401, code: 'invalid_client_certificate', reason: 'tls.revoked_ocsp' });
  });

  test('responder down: 503 tls.revocation_unavailable; with acknowledged soft-fail: allowed and marked', async () => {
    await responder.stopResponder();
    const record = await refused(h, '/cert-only', pki.partnerA.spiffe, { status: 503, code: 'dependency_unavailable', reason: 'tls.revocation_unavailable' });
    assert.deepEqual(record.portcullis.flags, []);
    await h.writeConfig(
      config(
        base,
        `      revocation: { ocsp: { url: "${responder.url}" }, on_unavailable: allow, acknowledge: "I understand a revoked certificate is accepted while its revocation status cannot be checked" }`,
      ),
    );
    const reloaded = await h.gateway.reload();
    assert.equal(reloaded.ok, true);
    const answer = await call(h, '/cert-only', pki.partnerA.dns);
    assert.equal(answer.status, 200);
    assert.deepEqual((await recordOf(h, answer.id)).portcullis.flags, ['revocation_soft_fail']);
    await responder.startResponder();
  });
});

describe('name patterns, and a listener that refuses at the handshake', () => {
  let h: Harness;
  before(async () => {
    const base = await mkdtemp(join(tmpdir(), 'portcullis-mtls-names-'));
    files ??= await pki.writePki(join(base, 'pki'));
    h = await startHarness(`
version: 1
abuse: { auth_failures_per_source: off, denials_per_credential: off }
listeners:
  - name: mtls
    zone: partner
    port: 0
    hostnames: [${HOST}]
    tls: { cert: ${files.server.cert}, key: ${files.server.key}, http2: false, client_certificates: require }
  - name: strict
    zone: internal
    port: 0
    hostnames: [${HOST}]
    tls: { cert: ${files.server.cert}, key: ${files.server.key}, http2: false, client_certificates: require, refuse_at_handshake: true }
upstreams:
  - { id: sample, url: "{{UPSTREAM}}" }
apis:
  - { id: orders }
routes:
  - { id: cert-only, zone: partner, methods: [GET], path: /cert-only, upstream: sample, api: orders, credentials: [mtls] }
  - { id: internal-cert-only, zone: internal, methods: [GET], path: /cert-only, upstream: sample, api: orders, credentials: [mtls] }
partners:
  - id: workloads
    agreement: { id: MSA-w, expires: 2099-12-31 }
    mtls: { ca: [${files.partnerA.root}], san_uri: ["spiffe://acme.example/*"] }
    credentials:
      - { id: workload-cert, type: mtls }
    grants:
      - { api: orders, environments: [production] }
`);
  });
  after(async () => h?.close());

  test('a trusted chain whose names match none of the partner\'s patterns is refused (SPIFFE ID pattern)', async () => {
    assert.equal((await call(h, '/cert-only', pki.partnerA.spiffe)).status, 200);
    await refused(h, '/cert-only', pki.partnerA.good, { status: 401, code: 'invalid_client_certificate', reason: 'tls.name_mismatch' });
  });

  test('refuse_at_handshake: an untrusted certificate ends the handshake (no HTTP answer); a trusted one passes', async () => {
    const url = h.url('strict');
    const attempt = async (leaf: TestLeaf | LeafPem) => {
      const dispatcher = new Agent({ connect: { ca: pki.server.ca.certPem, servername: HOST, cert: 'chainPem' in leaf ? leaf.chainPem : leaf.certPem, key: leaf.keyPem } });
      try {
        const response = await request(`${url}/cert-only`, { headers: { host: HOST }, dispatcher });
        await response.body.dump();
        return response.statusCode;
      } finally {
        await dispatcher.close();
      }
    };
    const trusted = await attempt(pki.partnerA.spiffe);
    assert.equal(trusted, 200, JSON.stringify((await h.records()).at(-1)?.portcullis));
    const before = h.upstream.seen.length;
    await assert.rejects(attempt(pki.partnerB.leaf), (error: Error & { code?: string }) => error.code !== undefined, 'the handshake fails: no HTTP status at all');
    assert.equal(h.upstream.seen.length, before);
  });
});
