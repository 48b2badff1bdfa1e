import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { startSampleUpstream, type SampleUpstream } from '../../src/demo/sample-upstream.ts';

interface Echo {
  service: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  raw_headers: Array<[string, string]>;
  body_bytes: number;
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** Milliseconds from sending to the response head, and to the end of the body. */
  headAt: number;
  endAt: number;
}

function request(url: string, options: http.RequestOptions = {}, body?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = http.request(url, options, (res) => {
      const headAt = performance.now() - started;
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text, headAt, endAt: performance.now() - started }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Sends bytes exactly as written (duplicate headers, odd casing) and returns the raw response. */
function rawRequest(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.end(text));
    let received = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
    socket.on('end', () => resolve(received));
    socket.on('error', reject);
  });
}

describe('sample upstream', () => {
  let upstream: SampleUpstream;
  before(async () => {
    upstream = await startSampleUpstream();
  });
  after(() => upstream.close());

  it('listens on 127.0.0.1 on a free port by default', () => {
    assert.equal(upstream.url, `http://127.0.0.1:${upstream.port}`);
    assert.ok(upstream.port > 0);
  });

  it('echoes method, raw target, lowercase headers and body size as JSON', async () => {
    const reply = await request(
      `${upstream.url}/orders/42?x=1&y=%2F`,
      { method: 'POST', headers: { 'X-Partner-Id': 'acme', 'Content-Type': 'text/plain' } },
      'hello wörld',
    );
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['content-type'], 'application/json');
    const echo = JSON.parse(reply.body) as Echo;
    assert.equal(echo.service, 'sample-upstream');
    assert.equal(echo.method, 'POST');
    assert.equal(echo.path, '/orders/42?x=1&y=%2F');
    assert.equal(echo.headers['x-partner-id'], 'acme');
    assert.equal(echo.headers['content-type'], 'text/plain');
    assert.equal(echo.headers['host'], `127.0.0.1:${upstream.port}`);
    assert.equal(echo.body_bytes, Buffer.byteLength('hello wörld'));
  });

  it('reports repeated headers, even those Node would drop, and the raw header list', async () => {
    const response = await rawRequest(
      upstream.port,
      'GET /raw HTTP/1.1\r\nHost: a.example\r\nAuthorization: Bearer one\r\nauthorization: Bearer two\r\nX-Dup: 1\r\nX-Dup: 2\r\n__proto__: p\r\nConnection: close\r\n\r\n',
    );
    const echo = JSON.parse(response.slice(response.indexOf('\r\n\r\n') + 4)) as Echo;
    assert.equal(echo.headers['authorization'], 'Bearer one, Bearer two');
    assert.equal(echo.headers['x-dup'], '1, 2');
    assert.equal(Object.getOwnPropertyDescriptor(echo.headers, '__proto__')?.value, 'p');
    assert.deepEqual(echo.raw_headers.slice(0, 3), [
      ['Host', 'a.example'],
      ['Authorization', 'Bearer one'],
      ['authorization', 'Bearer two'],
    ]);
  });

  it('answers /status/{code} with that status', async () => {
    const reply = await request(`${upstream.url}/status/503`);
    assert.equal(reply.status, 503);
    assert.equal((JSON.parse(reply.body) as Echo).path, '/status/503');
    const noContent = await request(`${upstream.url}/status/204`);
    assert.equal(noContent.status, 204);
    assert.equal(noContent.body, '');
    assert.equal((await request(`${upstream.url}/status/99`)).status, 400);
  });

  it('waits on /slow/{ms} before answering', async () => {
    const reply = await request(`${upstream.url}/slow/150`);
    assert.equal(reply.status, 200);
    assert.ok(reply.headAt >= 140, `head after ${reply.headAt} ms`);
  });

  it('sends the head of /drip/{ms} at once and the body slowly, in pieces', async () => {
    const reply = await request(`${upstream.url}/drip/60?chunks=3`);
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['transfer-encoding'], 'chunked');
    // Three pauses of 60 ms come after the head; measured as a gap, so a slow machine cannot fail it.
    assert.ok(reply.endAt - reply.headAt >= 110, `head after ${reply.headAt} ms, body done after ${reply.endAt} ms`);
    assert.equal((JSON.parse(reply.body) as Echo).path, '/drip/60?chunks=3');
  });

  it('keeps connections alive', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const ports = new Set<number>();
    for (let i = 0; i < 3; i += 1) {
      await new Promise<void>((resolve, reject) => {
        http
          .get(`${upstream.url}/k`, { agent }, (res) => {
            ports.add(res.socket.localPort!);
            res.resume().on('end', resolve);
          })
          .on('error', reject);
      });
    }
    agent.destroy();
    assert.equal(ports.size, 1, 'one connection served all requests');
  });
});

describe('sample upstream lifecycle', () => {
  it('closes at once, even with idle kept-alive and pending slow requests', async () => {
    const upstream = await startSampleUpstream();
    const agent = new http.Agent({ keepAlive: true });
    await request(`${upstream.url}/idle`, { agent });
    const pending = request(`${upstream.url}/slow/10000`).catch((error: Error) => error);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const started = performance.now();
    await upstream.close();
    assert.ok(performance.now() - started < 1000);
    assert.ok((await pending) instanceof Error, 'the slow request was cut');
    agent.destroy();
  });

  it('rejects with EADDRINUSE when the port is taken', async () => {
    const first = await startSampleUpstream();
    await assert.rejects(startSampleUpstream({ port: first.port }), { code: 'EADDRINUSE' });
    await first.close();
  });
});
