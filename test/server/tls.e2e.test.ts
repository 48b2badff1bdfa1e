// TLS listeners with certificates generated per run: HTTP/2 and HTTP/1.1 on one port (ALPN),
// SNI agreement with Host (421), and certificate rotation on reload without a restart.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http2 from 'node:http2';
import https from 'node:https';
import tls from 'node:tls';
import { createCa, issueServerCertificate } from '../../src/pki/dev-ca.ts';
import type { CertificateAuthority } from '../../src/pki/dev-ca.ts';
import { startHarness } from '../helpers/harness.ts';
import type { Harness } from '../helpers/harness.ts';

let h: Harness;
let ca: CertificateAuthority;
let port: number;

const config = (h2: boolean) => `
version: 1
listeners:
  - name: partner
    zone: public
    port: 0
    hostnames: [api.example.test, other.example.test]
    tls:
      cert: {{DIR}}/server.crt
      key: {{DIR}}/server.key
      http2: ${h2}
upstreams:
  - id: sample
    url: {{UPSTREAM}}
routes:
  - id: status
    zone: public
    methods: [GET, POST]
    path: /status
    upstream: sample
    auth: none
  - id: bytes
    zone: public
    methods: [GET]
    path: /bytes/{n}
    upstream: sample
    auth: none
  - id: late
    zone: public
    methods: [GET]
    path: /late/{ms}
    upstream: sample
    auth: none
`;

before(async () => {
  ca = await createCa({ commonName: 'Test CA' });
  const server = await issueServerCertificate(ca, { dnsNames: ['api.example.test', 'other.example.test'] });
  h = await startHarness(config(true), { files: { 'server.crt': server.certPem, 'server.key': server.keyPem } });
  port = Number(new URL(h.url('partner')).port);
});
after(async () => h?.close());

function h2Get(servername: string, authority: string, path = '/status'): Promise<{ status: number; body: string; alpn: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://127.0.0.1:${port}`, { ca: ca.certPem, servername });
    session.on('error', reject);
    const stream = session.request({ ':path': path, ':method': 'GET', ':authority': authority });
    let body = '';
    let status = 0;
    stream.on('response', (headers) => {
      status = Number(headers[':status']);
    });
    stream.setEncoding('utf8');
    stream.on('data', (chunk) => (body += chunk));
    stream.on('end', () => {
      const alpn = (session.socket as tls.TLSSocket).alpnProtocol || '';
      session.close();
      resolve({ status, body, alpn });
    });
    stream.on('error', reject);
  });
}

function h1Get(servername: string, host: string): Promise<{ status: number; body: string; alpn: string; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, path: '/status', servername, headers: { host }, ca: ca.certPem, ALPNProtocols: ['http/1.1'], agent: false } as https.RequestOptions,
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => (body += chunk));
        res.on('end', () => {
          const socket = res.socket as tls.TLSSocket;
          resolve({ status: res.statusCode!, body, alpn: socket.alpnProtocol || '', fingerprint: socket.getPeerCertificate().fingerprint256 });
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}

test('HTTP/2 over TLS is served (ALPN h2) and the upstream sees an HTTP/1.1 request with the gateway headers', async () => {
  const result = await h2Get('api.example.test', 'api.example.test');
  assert.equal(result.alpn, 'h2');
  assert.equal(result.status, 200);
  const seen = JSON.parse(result.body);
  assert.equal(seen.path, '/status');
  assert.equal(seen.headers['x-forwarded-proto'], 'https');
  // Host is the upstream's own authority; the client's host travels in X-Forwarded-Host.
  assert.equal(seen.headers['x-forwarded-host'], 'api.example.test');
  assert.equal(seen.headers['via'], '2 portcullis');
  const records = await h.waitForRecords(1);
  const record = records.at(-1)!;
  assert.equal(record.http.version, '2.0');
  assert.equal(record.tls.next_protocol, 'h2');
  assert.equal(record.tls.client.server_name, 'api.example.test');
});

test('a large response over HTTP/2 arrives whole, also to a client that stops reading for a while (flow control)', { timeout: 20_000 }, async () => {
  const total = 8 * 1024 * 1024;
  const session = http2.connect(`https://127.0.0.1:${port}`, { ca: ca.certPem, servername: 'api.example.test' });
  try {
    const stream = session.request({ ':path': `/bytes/${total}`, ':method': 'GET', ':authority': 'api.example.test' });
    const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
    assert.equal(headers[':status'], 200);
    // Not reading: the stream's window closes, the gateway's writes report backpressure and it
    // pauses the upstream; reading again must resume it.
    stream.pause();
    await new Promise((resolve) => setTimeout(resolve, 300));
    let received = 0;
    let wrongByte = false;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      received += chunk.length;
      if (chunk.some((byte) => byte !== 0x61)) wrongByte = true;
    }
    assert.equal(received, total);
    assert.equal(wrongByte, false);
  } finally {
    session.close();
  }
});

test('over HTTP/2 too, a head whose body comes late reaches the client long before the body does', async () => {
  const session = http2.connect(`https://127.0.0.1:${port}`, { ca: ca.certPem, servername: 'api.example.test' });
  try {
    const started = performance.now();
    const stream = session.request({ ':path': '/late/1500', ':method': 'GET', ':authority': 'api.example.test' });
    const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
    const headAfter = performance.now() - started;
    assert.equal(headers[':status'], 200);
    let body = '';
    for await (const chunk of stream as AsyncIterable<Buffer>) body += String(chunk);
    assert.equal(body, 'late body');
    assert.ok(headAfter < 1000, `the head took ${Math.round(headAfter)} ms`);
  } finally {
    session.close();
  }
});

test('HTTP/1.1 fallback on the same port', async () => {
  const result = await h1Get('api.example.test', 'api.example.test');
  assert.equal(result.alpn, 'http/1.1');
  assert.equal(result.status, 200);
});

test('a Host that differs from the SNI is misdirected: 421, on HTTP/2 and HTTP/1.1', async () => {
  const before = h.upstream.seen.length;
  assert.equal((await h2Get('api.example.test', 'other.example.test')).status, 421);
  assert.equal((await h1Get('api.example.test', 'other.example.test')).status, 421);
  assert.equal(h.upstream.seen.length, before);
});

test('an HTTP/2 request to a host that is not listed: 421', async () => {
  const result = await h2Get('unlisted.example.test', 'unlisted.example.test').catch((error: Error) => ({ status: -1, body: error.message, alpn: '' }));
  // The certificate does not cover the name, so a verifying client stops at the handshake; with
  // verification on the listed SNI and an unlisted :authority, the gateway answers 421.
  assert.ok(result.status === -1 || result.status === 421, result.body);
  assert.equal((await h2Get('api.example.test', 'unlisted.example.test')).status, 421);
});

test('a rotated certificate is served after reload, without a restart', async () => {
  const first = await h1Get('api.example.test', 'api.example.test');
  const rotated = await issueServerCertificate(ca, { dnsNames: ['api.example.test', 'other.example.test'] });
  const { writeFile } = await import('node:fs/promises');
  await writeFile(`${h.dir}/server.crt`, rotated.certPem);
  await writeFile(`${h.dir}/server.key`, rotated.keyPem);
  const result = await h.gateway.reload();
  assert.equal(result.ok, true);
  const second = await h1Get('api.example.test', 'api.example.test');
  assert.notEqual(second.fingerprint, first.fingerprint);
  assert.equal(second.fingerprint, rotated.certificate.fingerprint256);
  assert.equal(second.status, 200);
});
