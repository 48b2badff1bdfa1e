import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:https';
import type { Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { startTlsLoad, summariseRun, tlsGet, workerOptions } from '../lib/tls-load.ts';
import type { RawRun } from '../lib/tls-load.ts';
import type { TlsLoad } from '../lib/target.ts';
import { createTestPki } from '../../test/helpers/pki.ts';
import type { TestPki, TestPkiFiles } from '../../test/helpers/pki.ts';

const RAW: RawRun = {
  latenciesMs: [5, 1, 4, 2, 3, 10, 6, 7, 9, 8],
  elapsedMs: 2000,
  statuses: { '200': 7, '302': 1, '401': 1, '503': 1 },
  socketErrors: { connect: 1, read: 0, write: 0, timeout: 2 },
  cpuMicros: 1234,
  connections: { configured: 2, opened: 3, resumed: 0 },
};

test('a run is summarised as wrk reports it: req/s over the run, nearest-rank percentiles, non-2xx/3xx', () => {
  const result = summariseRun(RAW);
  assert.equal(result.requests, 10);
  assert.equal(result.seconds, 2);
  assert.equal(result.requestsPerSecond, 5);
  assert.deepEqual(result.latencyMs, { '50': 5, '75': 8, '90': 9, '99': 10 });
  assert.equal(result.non2xx3xx, 2);
  assert.deepEqual(result.socketErrors, RAW.socketErrors);
  assert.deepEqual(result.connections, RAW.connections);
  assert.equal(result.cpuMicros, 1234);
  const empty = summariseRun({ ...RAW, latenciesMs: [], statuses: {} });
  assert.equal(empty.requestsPerSecond, 0);
  assert.ok(Number.isNaN(empty.latencyMs['99']));
});

test('the worker options: https only, a Host header, no header that could end the request early', () => {
  const tls: TlsLoad = { ca: '/ca.pem', servername: 'localhost' };
  const options = workerOptions('https://127.0.0.1:8443/bench/hello?x=1', { Host: 'localhost' }, tls, { connections: 3, seconds: 2 });
  assert.deepEqual(
    { host: options.host, port: options.port, path: options.path, connections: options.connections, newConnectionPerRequest: options.newConnectionPerRequest },
    { host: '127.0.0.1', port: 8443, path: '/bench/hello?x=1', connections: 3, newConnectionPerRequest: false },
  );
  assert.throws(() => workerOptions('http://127.0.0.1:80/', { Host: 'localhost' }, tls, { connections: 1, seconds: 1 }), /https URL/);
  assert.throws(() => workerOptions('https://127.0.0.1/', {}, tls, { connections: 1, seconds: 1 }), /Host header/);
  assert.throws(() => workerOptions('https://127.0.0.1/', { Host: 'localhost', x: 'a\r\nEvil: 1' }, tls, { connections: 1, seconds: 1 }), /not a valid HTTP field/);
  assert.throws(() => workerOptions('https://127.0.0.1/', { Host: 'localhost', 'x y': 'a' }, tls, { connections: 1, seconds: 1 }), /not a valid HTTP field/);
});

describe('the generator against a loopback mTLS server', () => {
  let pki: TestPki;
  let files: TestPkiFiles;
  let dir: string;
  let server: Server;
  let url: string;
  /** Connections the server accepted, and the client certificate fingerprint each presented. */
  const accepted: Array<string | undefined> = [];

  before(async () => {
    pki = await createTestPki();
    dir = await mkdtemp(join(tmpdir(), 'portcullis-tls-load-test-'));
    files = await pki.writePki(join(dir, 'pki'));
    server = createServer({ cert: pki.server.cert.certPem, key: pki.server.cert.keyPem, requestCert: true, rejectUnauthorized: false }, (req, res) => {
      // /refuse answers 503, and one request in ten of /flaky: the generator must count them.
      const refuse = req.url === '/refuse' || (req.url === '/flaky' && Math.random() < 0.1);
      res.writeHead(refuse ? 503 : 200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
    server.on('secureConnection', (socket: TLSSocket) => {
      const peer = socket.getPeerX509Certificate();
      accepted.push(peer?.fingerprint256.replaceAll(':', '').toLowerCase());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const run = async (path: string, tls: TlsLoad, connections: number, seconds = 0.5) => {
    const generator = await startTlsLoad(process.execPath, 0, workerOptions(`${url}${path}`, { Host: 'localhost' }, tls, { connections, seconds }));
    assert.ok(generator.pid > 0);
    return generator.go();
  };

  test('keep-alive: N connections, every request answered, the client certificate presented', async () => {
    accepted.length = 0;
    const tls: TlsLoad = { ca: files.server.ca, servername: 'localhost', clientCertificate: { cert: files.partnerA.leaves.good.chain, key: files.partnerA.leaves.good.key } };
    const result = await run('/ok', tls, 4);
    assert.ok(result.requests > 50, `${result.requests} requests`);
    assert.deepEqual(Object.keys(result.statuses), ['200']);
    assert.equal(result.non2xx3xx, 0);
    assert.deepEqual(result.socketErrors, { connect: 0, read: 0, write: 0, timeout: 0 });
    assert.deepEqual(result.connections, { configured: 4, opened: 4, resumed: 0 });
    assert.deepEqual(accepted, Array(4).fill(pki.partnerA.good.fingerprint));
    assert.ok(result.latencyMs['50']! > 0 && result.latencyMs['50']! <= result.latencyMs['99']!);
    assert.ok(result.cpuMicros > 0);
  });

  test('a new connection, with a full handshake, for every request', async () => {
    accepted.length = 0;
    const tls: TlsLoad = {
      ca: files.server.ca,
      servername: 'localhost',
      clientCertificate: { cert: files.partnerA.leaves.good.chain, key: files.partnerA.leaves.good.key },
      newConnectionPerRequest: true,
    };
    const result = await run('/ok', tls, 2);
    assert.ok(result.requests > 10, `${result.requests} requests`);
    assert.equal(result.non2xx3xx, 0);
    assert.equal(result.connections.resumed, 0);
    // Each completed request had its own connection; the ones in flight at the deadline too.
    assert.ok(result.connections.opened >= result.requests && result.connections.opened <= result.requests + 2, JSON.stringify(result.connections));
    assert.ok(accepted.length >= result.requests);
  });

  test('refused responses are counted as non-2xx/3xx; a server that fails the handshake as connect errors', async () => {
    const tls: TlsLoad = { ca: files.server.ca, servername: 'localhost' };
    const refused = await run('/flaky', tls, 2);
    assert.ok(refused.non2xx3xx > 0 && refused.non2xx3xx < refused.requests, `${refused.non2xx3xx} of ${refused.requests}`);
    assert.equal(refused.non2xx3xx, refused.statuses['503']);
    // The server certificate does not chain to partner A's root: every handshake fails.
    const untrusted = await run('/ok', { ca: files.partnerA.root, servername: 'localhost' }, 1, 0.3);
    assert.equal(untrusted.requests, 0);
    assert.ok(Number.isNaN(untrusted.latencyMs['99']), 'no response: no latency (NaN, as the report expects)');
    assert.ok(untrusted.socketErrors.connect > 0);
    assert.match(untrusted.firstError ?? '', /^connect: /);
  });

  test('tlsGet: one request with the same certificates (the start-up check)', async () => {
    const answer = await tlsGet(`${url}/refuse`, { Host: 'localhost' }, { ca: files.server.ca, servername: 'localhost' });
    assert.deepEqual(answer, { status: 503, body: '{"ok":true}' });
  });
});
