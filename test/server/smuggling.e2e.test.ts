// Request smuggling and framing attacks, as raw bytes (HAProxy VTest style): each must be
// refused with 400, close the connection, and never reach the upstream — including a second
// request hidden behind the first.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness } from '../helpers/harness.ts';
import type { Harness } from '../helpers/harness.ts';
import { rawRequest } from '../helpers/raw-http.ts';

const CONFIG = `
version: 1
listeners:
  - name: public
    zone: public
    port: 0
    hostnames: [localhost]
    limits:
      headers_timeout: 1s
      request_timeout: 2s
upstreams:
  - id: sample
    url: {{UPSTREAM}}
routes:
  - id: any
    zone: public
    methods: [GET, POST]
    path: /{rest*}
    upstream: sample
    auth: none
`;

let h: Harness;
let port: number;
before(async () => {
  h = await startHarness(CONFIG);
  port = Number(new URL(h.url('public')).port);
});
after(async () => h?.close());

const SMUGGLED = 'GET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n';

const CASES: Array<{ name: string; payload: string; reason?: string }> = [
  { name: 'Content-Length and Transfer-Encoding', payload: `POST /a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}` },
  { name: 'Transfer-Encoding: xchunked', payload: `POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n${SMUGGLED}` },
  { name: 'Transfer-Encoding: identity, chunked', payload: `POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n${SMUGGLED}` },
  { name: 'Transfer-Encoding: chunked, identity', payload: `POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${SMUGGLED}` },
  { name: 'two Transfer-Encoding headers', payload: `POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}` },
  { name: 'space before the colon', payload: `POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n${SMUGGLED}` },
  { name: 'obs-fold Transfer-Encoding', payload: `POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n${SMUGGLED}` },
  { name: 'HTTP/1.0 with Transfer-Encoding', payload: `POST /a HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}` },
  { name: 'underscore Transfer_Encoding with Content-Length: 0', payload: `POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer_Encoding: chunked\r\nContent-Length: 0\r\n\r\n${SMUGGLED}` },
  { name: 'two different Content-Length headers', payload: `POST /a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\n${SMUGGLED}` },
  { name: 'Content-Length: +0', payload: `POST /a HTTP/1.1\r\nHost: localhost\r\nContent-Length: +0\r\n\r\n${SMUGGLED}` },
  { name: 'duplicate Host', payload: `GET /a HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n` },
  { name: 'missing Host', payload: `GET /a HTTP/1.1\r\n\r\n` },
  { name: 'absolute-form target for another host', payload: `GET http://evil.example/admin HTTP/1.1\r\nHost: localhost\r\n\r\n` },
  { name: 'fragment in the target', payload: `GET /a#frag HTTP/1.1\r\nHost: localhost\r\n\r\n` },
  { name: 'Upgrade: h2c', payload: `GET /a HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n` },
  { name: 'bare LF line endings', payload: `GET /a HTTP/1.1\nHost: localhost\n\n` },
  { name: 'NUL in a header value', payload: `GET /a HTTP/1.1\r\nHost: localhost\r\nX-A: a\u0000b\r\n\r\n` },
  { name: 'CONNECT', payload: `CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\r\n` },
  { name: 'TRACE', payload: `TRACE /a HTTP/1.1\r\nHost: localhost\r\n\r\n` },
];

for (const { name, payload } of CASES) {
  test(`${name}: 400, connection closed, nothing forwarded`, async () => {
    const before = h.upstream.seen.length;
    const exchange = await rawRequest(port, payload, { untilClose: true, quietMs: 1500 });
    assert.equal(exchange.statuses.length, 1, `one response only:\n${exchange.text}`);
    assert.ok([400, 405].includes(exchange.statuses[0]!), exchange.text);
    assert.equal(exchange.closed, true, 'the connection is closed after a framing error');
    assert.equal(h.upstream.seen.length, before, 'nothing reached the upstream');
  });
}

test('every refused framing attack left exactly one decision record', async () => {
  const records = await h.records();
  const refusals = records.filter((record) => record.portcullis.decision === 'deny');
  assert.ok(refusals.length >= CASES.length, `${refusals.length} deny records for ${CASES.length} attacks`);
  const ids = new Set(records.map((record) => record.http.request.id));
  assert.equal(ids.size, records.length, 'request ids are unique');
  for (const record of refusals) assert.match(record.event.reason, /^(http|route)\./);
});

test('slow headers: 408 within the headers timeout, connection closed', async () => {
  const started = Date.now();
  const exchange = await rawRequest(port, 'GET /a HTTP/1.1\r\nHost: localhost\r\nX-Slow: ', { untilClose: true, quietMs: 4000 });
  assert.equal(exchange.statuses[0], 408, exchange.text);
  assert.equal(exchange.closed, true);
  assert.ok(Date.now() - started < 3900);
});

test('refusals that keep the connection open, pipelined around a forwarded request: answered in order, only that one forwarded', async () => {
  // Refusals and proxied responses are written at the end of the loop's turn (respond.ts,
  // proxy.ts); the order on the connection must still be the order of the requests.
  const before = h.upstream.seen.length;
  const exchange = await rawRequest(
    port,
    'PUT /a HTTP/1.1\r\nHost: localhost\r\n\r\nGET /one HTTP/1.1\r\nHost: localhost\r\n\r\nDELETE /b HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n',
    { untilClose: true, quietMs: 3000 },
  );
  assert.deepEqual(exchange.statuses, [405, 200, 405]);
  assert.deepEqual(h.upstream.seen.slice(before).map((seen) => seen.path), ['/one']);
});

test('a request body that stalls past the request timeout: 408 from the request in flight, connection closed', async () => {
  // The request is in the pipeline (its body streaming to the upstream) when Node's request
  // timeout fires: the gateway answers that request itself, before the socket is ended.
  const started = Date.now();
  const exchange = await rawRequest(port, 'POST /stalled HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\nonly part of it', { untilClose: true, quietMs: 5000 });
  assert.equal(exchange.statuses[0], 408, exchange.text);
  assert.match(exchange.text, /"code":"request_timeout"/);
  assert.equal(exchange.closed, true);
  assert.ok(Date.now() - started < 4900);
  // The decision log is written in batches: look again until the record is there.
  let record: Record<string, any> | undefined;
  for (let i = 0; i < 50 && record === undefined; i++) record = (await h.records()).find((entry) => entry.url.path === '/stalled');
  assert.equal(record?.event.reason, 'http.timeout');
});

test('a valid pipelined pair is answered in order, both forwarded', async () => {
  const before = h.upstream.seen.length;
  const exchange = await rawRequest(port, 'GET /one HTTP/1.1\r\nHost: localhost\r\n\r\nGET /two HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n', { untilClose: true, quietMs: 3000 });
  assert.deepEqual(exchange.statuses, [200, 200]);
  assert.deepEqual(h.upstream.seen.slice(before).map((seen) => seen.path), ['/one', '/two']);
});
