// Upstream failures are their own errors (502/503/504 with upstream_* codes), never a gateway
// refusal's; an upstream response with invalid framing is a 502; the upstream's hop-by-hop
// headers never reach the client.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { startHarness } from '../helpers/harness.ts';
import type { Harness } from '../helpers/harness.ts';

/** A TCP server that answers every request with the given raw bytes (or runs `onData`). */
async function rawUpstream(onData: (socket: Socket) => void): Promise<{ url: string; server: Server }> {
  const server = createServer((socket) => {
    socket.on('error', () => undefined);
    socket.once('data', () => onData(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

const servers: Server[] = [];
let h: Harness;
let closedPort: number;

/** `streamed`: the upstream sends its second chunk only once the client has read the first. */
let clientReadFirstChunk: () => void = () => undefined;
/** `large`: how many body bytes the upstream has handed to its socket so far. */
let largeBytesWritten = 0;
const LARGE_BODY_BYTES = 64 * 1024 * 1024;
const LARGE_CHUNK = Buffer.alloc(1024 * 1024, 0x61);

before(async () => {
  const answer = (bytes: string) => (socket: Socket) => socket.end(bytes);
  const upstreams = {
    smuggling: await rawUpstream(answer('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n')),
    garbage: await rawUpstream(answer('NOT HTTP AT ALL\r\n\r\n')),
    reset: await rawUpstream((socket) => socket.destroy()),
    truncated: await rawUpstream(answer('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nonly a little')),
    // The head and a body that breaks chunked framing arrive together.
    badChunk: await rawUpstream(answer('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nnot a chunk\r\n')),
    streamed: await rawUpstream((socket) => {
      socket.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nfirst\n\r\n');
      const timer = setTimeout(() => socket.destroy(), 5_000);
      clientReadFirstChunk = () => {
        clearTimeout(timer);
        socket.end('7\r\nsecond\n\r\n0\r\n\r\n');
      };
    }),
    large: await rawUpstream((socket) => {
      largeBytesWritten = 0;
      socket.write(`HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${LARGE_BODY_BYTES}\r\n\r\n`);
      const more = (): void => {
        while (largeBytesWritten < LARGE_BODY_BYTES) {
          largeBytesWritten += LARGE_CHUNK.length;
          if (!socket.write(LARGE_CHUNK)) return void socket.once('drain', more);
        }
        socket.end();
      };
      more();
    }),
    hopByHop: await rawUpstream(
      answer('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: x-upstream-secret\r\nX-Upstream-Secret: s3cr3t\r\nKeep-Alive: timeout=99\r\nProxy-Authenticate: Basic\r\nX-Fine: yes\r\n\r\nok'),
    ),
  };
  servers.push(...Object.values(upstreams).map((entry) => entry.server));
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  closedPort = (closed.address() as AddressInfo).port;
  await new Promise((resolve) => closed.close(resolve));

  const routes = ['smuggling', 'garbage', 'reset', 'truncated', 'badChunk', 'streamed', 'large', 'hopByHop']
    .map((name) => `  - id: ${name.toLowerCase()}\n    zone: public\n    methods: [GET]\n    path: /${name}\n    upstream: ${name.toLowerCase()}\n    auth: none\n`)
    .join('');
  const upstreamList = Object.entries(upstreams)
    .map(([name, entry]) => `  - id: ${name.toLowerCase()}\n    url: ${entry.url}\n`)
    .join('');
  h = await startHarness(`
version: 1
listeners:
  - name: public
    zone: public
    port: 0
    hostnames: [localhost]
upstreams:
${upstreamList}  - id: down
    url: http://127.0.0.1:${closedPort}
  - id: sample
    url: {{UPSTREAM}}
    timeouts:
      response_headers: 300ms
routes:
${routes}  - id: down
    zone: public
    methods: [GET]
    path: /down
    upstream: down
    auth: none
  - id: slow
    zone: public
    methods: [GET]
    path: /slow/{ms}
    upstream: sample
    auth: none
  - id: late
    zone: public
    methods: [GET]
    path: /late/{ms}
    upstream: sample
    auth: none
`);
});

after(async () => {
  await h?.close();
  for (const server of servers) server.close();
});

async function get(path: string) {
  const response = await request(`${h.url('public')}${path}`, { headers: { host: 'localhost' } });
  const text = await response.body.text();
  return { status: response.statusCode, headers: response.headers, text };
}

async function reasonOf(requestId: string): Promise<string> {
  for (let i = 0; i < 50; i++) {
    const record = (await h.records()).find((entry) => entry.http.request.id === requestId);
    if (record) return record.event.reason;
  }
  throw new Error('no record');
}

const FAILURES: Array<[path: string, status: number, code: string]> = [
  ['/down', 502, 'upstream_unreachable'],
  ['/slow/2000', 504, 'upstream_timeout'],
  ['/smuggling', 502, 'upstream_bad_response'],
  ['/garbage', 502, 'upstream_bad_response'],
  ['/reset', 502, 'upstream_bad_response'],
];

for (const [path, status, code] of FAILURES) {
  test(`${path}: ${status} ${code}, recorded as an upstream failure of an allowed request`, async () => {
    const result = await get(path);
    assert.equal(result.status, status, result.text);
    assert.equal(result.headers['content-type'], 'application/problem+json');
    const body = JSON.parse(result.text);
    assert.equal(body.code, code);
    assert.equal(JSON.stringify(body).includes('127.0.0.1'), false, 'no upstream address leaks to the caller');
    const reason = await reasonOf(result.headers['x-request-id'] as string);
    assert.equal(reason, `upstream.${code.slice('upstream_'.length)}`);
  });
}

test('a response shorter than its Content-Length: the client connection is cut, the record says bad_response', async () => {
  const response = await request(`${h.url('public')}/truncated`, { headers: { host: 'localhost' } });
  assert.equal(response.statusCode, 200);
  await assert.rejects(response.body.text());
  const records = await h.waitForRecords(FAILURES.length + 1);
  const record = records.find((entry) => entry.portcullis.route === 'truncated')!;
  assert.equal(record.event.reason, 'upstream.bad_response');
  assert.equal(record.portcullis.decision, 'allow');
});

test('hop-by-hop headers from the upstream, and those its Connection names, are removed', async () => {
  const result = await get('/hopByHop');
  assert.equal(result.status, 200);
  assert.equal(result.text, 'ok');
  assert.equal(result.headers['x-upstream-secret'], undefined);
  assert.equal(result.headers['proxy-authenticate'], undefined);
  assert.notEqual(result.headers['keep-alive'], 'timeout=99');
  assert.equal(result.headers['x-fine'], 'yes');
});

// The proxy stage holds what the upstream sends until the end of the loop's turn that parsed it
// (src/http/end-of-turn.ts). These pin down what that may and may not change.

test('a body that breaks its framing in the same packet as the head: a clean 502, nothing of the 200 sent', async () => {
  const result = await get('/badChunk');
  assert.equal(result.status, 502, result.text);
  assert.equal(JSON.parse(result.text).code, 'upstream_bad_response');
  assert.equal(await reasonOf(result.headers['x-request-id'] as string), 'upstream.bad_response');
});

test('a streamed response reaches the client chunk by chunk while the upstream is still sending', async () => {
  const response = await request(`${h.url('public')}/streamed`, { headers: { host: 'localhost' } });
  assert.equal(response.statusCode, 200);
  const chunks: string[] = [];
  for await (const chunk of response.body) {
    chunks.push(String(chunk));
    // The upstream waits for this before it sends the rest: a gateway that held the response
    // until the upstream ended would leave the upstream waiting, and the body would end cut off.
    if (chunks.join('') === 'first\n') clientReadFirstChunk();
  }
  assert.equal(chunks.join(''), 'first\nsecond\n');
});

test('a large response is passed on whole, and a client that does not read holds the upstream back', { timeout: 20_000 }, async () => {
  const response = await request(`${h.url('public')}/large`, { headers: { host: 'localhost' } });
  assert.equal(response.statusCode, 200);
  // The client reads nothing for a while: the gateway must stop reading from the upstream once the
  // socket buffers along the way are full (some MiB on loopback), not hold the whole body itself.
  let before = -1;
  for (let i = 0; i < 50 && before !== largeBytesWritten; i++) {
    before = largeBytesWritten;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.ok(largeBytesWritten < LARGE_BODY_BYTES / 2, `the upstream wrote ${largeBytesWritten} of ${LARGE_BODY_BYTES} bytes to a client that read none`);
  let received = 0;
  let wrongByte = false;
  for await (const chunk of response.body as AsyncIterable<Buffer>) {
    received += chunk.length;
    if (chunk.some((byte) => byte !== 0x61)) wrongByte = true;
  }
  assert.equal(received, LARGE_BODY_BYTES);
  assert.equal(wrongByte, false);
});

test('a head whose body comes late reaches the client long before the body does', async () => {
  const started = performance.now();
  const response = await request(`${h.url('public')}/late/1500`, { headers: { host: 'localhost' } });
  const headAfter = performance.now() - started;
  assert.equal(response.statusCode, 200);
  assert.equal(await response.body.text(), 'late body');
  // Held at most HEAD_ALONE_AFTER_MS (100 ms) for body bytes that do not come; the body takes 1.5 s.
  assert.ok(headAfter < 1000, `the head took ${Math.round(headAfter)} ms`);
  assert.ok(performance.now() - started >= 1400);
});
