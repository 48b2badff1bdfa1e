import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ResponseReader } from '../lib/http1-response.ts';
import type { ResponseHead } from '../lib/http1-response.ts';

/** Feeds `bytes` in pieces of `size` and collects the responses. */
function read(bytes: string, size = bytes.length): { responses: ResponseHead[]; reader: ResponseReader } {
  const reader = new ResponseReader();
  const responses: ResponseHead[] = [];
  const buffer = Buffer.from(bytes, 'latin1');
  for (let i = 0; i < buffer.length; i += size) responses.push(...reader.push(buffer.subarray(i, i + size)));
  return { responses, reader };
}

const BODY = '{"ok":true,"service":"bench-upstream","path":"/bench/hello","n":1234567}';
const FIXED = `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length: ${BODY.length}\r\n\r\n${BODY}`;
const CHUNKED = 'HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nx-trailer: yes\r\n\r\n';

test('a Content-Length response completes after exactly its body, whatever the chunking', () => {
  for (const size of [1, 2, 7, 64, FIXED.length]) {
    const { responses, reader } = read(FIXED, size);
    assert.deepEqual(responses, [{ status: 200, keepAlive: true, bodyBytes: BODY.length }], `pieces of ${size}`);
    assert.equal(reader.inResponse, false);
  }
  // One byte short: not complete.
  const { responses, reader } = read(FIXED.slice(0, -1));
  assert.deepEqual(responses, []);
  assert.equal(reader.inResponse, true);
});

test('chunked bodies with extensions and trailers, byte by byte', () => {
  for (const size of [1, 3, CHUNKED.length]) {
    assert.deepEqual(read(CHUNKED, size).responses, [{ status: 401, keepAlive: true, bodyBytes: 15 }]);
  }
});

test('responses one after another on one connection, in one chunk', () => {
  assert.deepEqual(
    read(FIXED + CHUNKED + FIXED).responses.map((r) => r.status),
    [200, 401, 200],
  );
});

test('Connection: close, HTTP/1.0 and bodies without framing end the keep-alive', () => {
  assert.equal(read(FIXED.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n')).responses[0]!.keepAlive, false);
  assert.equal(read(FIXED.replace('HTTP/1.1', 'HTTP/1.0')).responses[0]!.keepAlive, false);
  assert.equal(read(FIXED.replace('HTTP/1.1', 'HTTP/1.0').replace('\r\n\r\n', '\r\nConnection: keep-alive\r\n\r\n')).responses[0]!.keepAlive, true);
  // No Content-Length, no chunked: the body runs to the close, which completes the response.
  const { responses, reader } = read('HTTP/1.1 200 OK\r\n\r\nsome body');
  assert.deepEqual(responses, []);
  assert.deepEqual(reader.end(), { status: 200, keepAlive: false, bodyBytes: 9 });
});

test('204, 304 and Content-Length: 0 have no body; interim 1xx responses are skipped', () => {
  assert.deepEqual(read('HTTP/1.1 204 No Content\r\n\r\n').responses, [{ status: 204, keepAlive: true, bodyBytes: 0 }]);
  assert.deepEqual(read('HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n').responses, [{ status: 304, keepAlive: true, bodyBytes: 0 }]);
  assert.deepEqual(read('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n').responses, [{ status: 200, keepAlive: true, bodyBytes: 0 }]);
  assert.deepEqual(read(`HTTP/1.1 100 Continue\r\n\r\n${FIXED}`).responses.map((r) => r.status), [200]);
});

test('Transfer-Encoding wins over Content-Length', () => {
  const both = CHUNKED.replace('\r\n\r\n', '\r\nContent-Length: 3\r\n\r\n');
  assert.deepEqual(read(both).responses, [{ status: 401, keepAlive: true, bodyBytes: 15 }]);
});

test('a connection closed in the middle of a response is an error; between responses it is not', () => {
  assert.throws(() => read(FIXED.slice(0, 50)).reader.end(), /middle of a response/);
  assert.equal(read(FIXED).reader.end(), undefined);
});

test('malformed responses throw instead of being guessed at', () => {
  assert.throws(() => read('HTTP/2 200\r\n\r\n'), /malformed status line/);
  assert.throws(() => read('HTTP/1.1 20 OK\r\n\r\n'), /malformed status line/);
  assert.throws(() => read('HTTP/1.1 200 OK\r\nno-colon\r\n\r\n'), /malformed header line/);
  assert.throws(() => read('HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n'), /malformed Content-Length/);
  assert.throws(() => read('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n'), /conflicting Content-Length/);
  assert.throws(() => read('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'), /malformed chunk-size/);
  assert.throws(() => read('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n'), /not followed by CRLF/);
  assert.throws(() => read(`HTTP/1.1 200 OK\r\nx: ${'a'.repeat(70_000)}`), /longer than/);
});
