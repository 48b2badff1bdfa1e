// End-to-end over loopback: routing, 404/405/421, zones, header stripping, path canonicalisation,
// limits and decision records, through a real gateway and a real upstream.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { startHarness } from '../helpers/harness.ts';
import { generateTestKey, jwks } from '../helpers/tokens.ts';
import type { Harness } from '../helpers/harness.ts';
import { firstBody, rawRequest } from '../helpers/raw-http.ts';

const CONFIG = `
version: 1
listeners:
  - name: public
    zone: public
    port: 0
    hostnames: [localhost, api.example.test, "*.apps.example.test"]
    limits:
      max_body_bytes: 4KiB
  - name: partner
    zone: partner
    port: 0
    hostnames: [partner.example.test]
upstreams:
  - id: sample
    url: {{UPSTREAM}}
  - id: sample-keep-host
    url: {{UPSTREAM}}
    preserve_host: true
issuers:
  - id: idp
    issuer: https://idp.example.test
    jwks_file: idp.jwks.json
    algorithms: [ES256]
apis:
  - id: orders
    audience: https://api.example.test/orders
partners:
  - id: acme
    grants: [{ api: orders }]
routes:
  - id: status
    zone: public
    methods: [GET, HEAD]
    path: /status
    upstream: sample
    auth: none
  - id: items
    zone: public
    methods: [GET, POST]
    path: /items/{id}
    upstream: sample
    auth: none
    max_body_bytes: 1KiB
  - id: items-new
    zone: public
    methods: [GET]
    path: /items/new
    upstream: sample
    auth: none
  - id: keep-host
    zone: public
    methods: [GET]
    path: /keep-host
    upstream: sample-keep-host
    auth: none
  - id: files
    zone: public
    methods: [GET]
    path: /files/{rest*}
    upstream: sample
    auth: none
  - id: private
    zone: public
    methods: [GET]
    path: /private
    upstream: sample
    api: orders
  - id: orders
    zone: partner
    methods: [GET]
    path: /orders
    upstream: sample
    api: orders
`;

let h: Harness;
let publicPort: number;

before(async () => {
  h = await startHarness(CONFIG, { files: { 'idp.jwks.json': jwks(generateTestKey('ES256')) } });
  publicPort = Number(new URL(h.url('public')).port);
});
after(async () => h?.close());

async function get(path: string, headers: Record<string, string> = {}, listener = 'public') {
  const response = await request(`${h.url(listener)}${path}`, { headers: { host: 'localhost', ...headers } });
  const text = await response.body.text();
  return { status: response.statusCode, headers: response.headers, text, json: () => JSON.parse(text) };
}

async function recordFor(requestId: string): Promise<Record<string, any>> {
  for (let i = 0; i < 50; i++) {
    const found = (await h.records()).filter((record) => record.http.request.id === requestId);
    if (found.length > 0) {
      assert.equal(found.length, 1, 'exactly one decision record per request');
      return found[0]!;
    }
  }
  throw new Error(`no decision record for ${requestId}`);
}

function assertProblem(result: { status: number; headers: Record<string, any>; text: string }, status: number, code: string) {
  assert.equal(result.status, status);
  assert.equal(result.headers['content-type'], 'application/problem+json');
  const body = JSON.parse(result.text);
  assert.equal(body.status, status);
  assert.equal(body.code, code);
  assert.equal(body.type, `urn:portcullis:problem:${code}`);
  assert.equal(body.request_id, result.headers['x-request-id']);
  return body;
}

describe('routing', () => {
  test('an allowed request reaches the upstream with the canonical path and is recorded', async () => {
    const before = h.upstream.seen.length;
    const result = await get('/items/42?q=1');
    assert.equal(result.status, 200);
    assert.equal(result.json().path, '/items/42?q=1');
    assert.equal(h.upstream.seen.length, before + 1);
    const record = await recordFor(result.headers['x-request-id'] as string);
    assert.equal(record.event.reason, 'allowed');
    assert.equal(record.portcullis.decision, 'allow');
    assert.equal(record.portcullis.route, 'items');
    assert.equal(record.portcullis.listener, 'public');
    assert.equal(record.portcullis.upstream.called, true);
    assert.equal(record.portcullis.upstream.status, 200);
    assert.equal(record.http.response.status_code, 200);
    assert.equal(record.url.path, '/items/42');
    assert.equal(record.portcullis.config_hash, h.gateway.snapshot.hash);
    assert.equal(JSON.stringify(record).includes('q=1'), false, 'query strings stay out of the record');
  });

  test('a literal segment beats a parameter; a rest parameter takes the remaining segments', async () => {
    assert.equal((await get('/items/new')).status, 200);
    const record = await recordFor((await get('/items/new')).headers['x-request-id'] as string);
    assert.equal(record.portcullis.route, 'items-new');
    const files = await get('/files/a/b/c.txt');
    assert.equal(files.json().path, '/files/a/b/c.txt');
  });

  test('no route: 404 problem, never forwarded', async () => {
    const before = h.upstream.seen.length;
    const result = await get('/nothing-here');
    assertProblem(result, 404, 'route_not_found');
    assert.equal(h.upstream.seen.length, before);
    const record = await recordFor(result.headers['x-request-id'] as string);
    assert.equal(record.event.reason, 'route.not_found');
    assert.equal(record.portcullis.decision, 'deny');
    assert.equal(record.portcullis.upstream.called, false);
  });

  test('route without that method: 405 with Allow, never forwarded', async () => {
    const before = h.upstream.seen.length;
    const response = await request(`${h.url('public')}/status`, { method: 'DELETE', headers: { host: 'localhost' } });
    const result = { status: response.statusCode, headers: response.headers, text: await response.body.text() };
    assertProblem(result, 405, 'method_not_allowed');
    assert.equal(result.headers['allow'], 'GET, HEAD');
    assert.equal(h.upstream.seen.length, before);
  });

  test('a host not listed on the listener: 421, never routed', async () => {
    const before = h.upstream.seen.length;
    const result = await get('/status', { host: 'unknown.example' });
    assertProblem(result, 421, 'host_not_allowed');
    assert.equal(h.upstream.seen.length, before);
    // A wildcard covers exactly one label.
    assert.equal((await get('/status', { host: 'x.apps.example.test' })).status, 200);
    assert.equal((await get('/status', { host: 'a.b.apps.example.test' })).status, 421);
    assert.equal((await get('/status', { host: 'apps.example.test' })).status, 421);
    // The port in Host does not matter; the name does, case-insensitively.
    assert.equal((await get('/status', { host: `LOCALHOST:${publicPort}` })).status, 200);
  });

  test('a route belongs to its zone: partner routes are not reachable from the public listener and vice versa', async () => {
    const before = h.upstream.seen.length;
    assertProblem(await get('/orders'), 404, 'route_not_found');
    assertProblem(await get('/status', { host: 'partner.example.test' }, 'partner'), 404, 'route_not_found');
    // The public listener's hostnames are not the partner listener's.
    assertProblem(await get('/orders', { host: 'localhost' }, 'partner'), 421, 'host_not_allowed');
    assert.equal(h.upstream.seen.length, before);
  });

  test('a route that requires authentication refuses every request with 401 (fail closed)', async () => {
    const before = h.upstream.seen.length;
    const missing = await get('/orders', { host: 'partner.example.test' }, 'partner');
    assertProblem(missing, 401, 'credential_missing');
    // RFC 6750 §3: no credential, no error code in the challenge.
    assert.match(String(missing.headers['www-authenticate']), /^Bearer realm="portcullis"(, resource_metadata="[^"]+")?, DPoP algs="[A-Za-z0-9 ]+"$/);
    const bearer = await get('/orders', { host: 'partner.example.test', authorization: 'Bearer abc.def.ghi' }, 'partner');
    assertProblem(bearer, 401, 'invalid_token');
    assert.match(bearer.headers['www-authenticate'] as string, /^Bearer realm="portcullis", error="invalid_token"/);
    // auth defaults to required, also in the public zone.
    assertProblem(await get('/private'), 401, 'credential_missing');
    assert.equal(h.upstream.seen.length, before);
    const record = await recordFor(bearer.headers['x-request-id'] as string);
    assert.match(record.event.reason, /^token\./);
    assert.equal(JSON.stringify(record).includes('abc.def.ghi'), false, 'no token in the record');
  });
});

describe('header hygiene', () => {
  test('the upstream sees none of the spoofed identity, forwarding or hop-by-hop headers, and the gateway\'s own', async () => {
    const spoofed: Record<string, string> = {
      'x-forwarded-for': '10.6.6.6',
      'x-forwarded-host': 'evil.example',
      'x-forwarded-proto': 'https',
      forwarded: 'for=10.6.6.6;proto=https',
      'x-real-ip': '10.6.6.6',
      'x-client-ip': '10.6.6.6',
      'true-client-ip': '10.6.6.6',
      'x-original-url': '/admin',
      'x-rewrite-url': '/admin',
      'x-http-method-override': 'DELETE',
      'x-client-cert': 'MIIB...',
      'x-ssl-client-cert': 'MIIB...',
      'x-forwarded-client-cert': 'Hash=abc',
      'x-partner-id': 'acme',
      'x-consumer-id': 'acme',
      'x-portcullis-partner': 'acme',
      'x-authenticated-userid': 'root',
      'x-request-id': 'spoofed-request-id',
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      'x-custom-hop': 'drop me',
      'x-keep': 'keep me',
      connection: 'x-custom-hop, x-forwarded-for',
      'keep-alive': 'timeout=5',
      te: 'trailers',
    };
    // Raw bytes: client libraries refuse to send some of these.
    const head = Object.entries(spoofed).map(([name, value]) => `${name}: ${value}\r\n`).join('');
    const exchange = await rawRequest(publicPort, `GET /status HTTP/1.1\r\nHost: localhost\r\n${head}\r\n`);
    assert.equal(exchange.statuses[0], 200, exchange.text);
    const requestId = /x-request-id: ([^\r]+)/i.exec(exchange.text)![1];
    const result = { headers: { 'x-request-id': requestId } };
    const seen = firstBody(exchange).headers as Record<string, string>;
    for (const name of Object.keys(spoofed)) {
      if (['x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'forwarded', 'x-request-id', 'traceparent', 'x-keep', 'connection'].includes(name)) continue;
      assert.equal(seen[name], undefined, `${name} must not reach the upstream`);
    }
    assert.equal(seen['x-keep'], 'keep me');
    // The upstream hop has its own connection management, never the client's.
    assert.ok(seen['connection'] === undefined || seen['connection'] === 'keep-alive', seen['connection']);
    // Set by the gateway, not taken from the client; a Connection-named header cannot remove them.
    assert.equal(seen['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen['x-forwarded-host'], 'localhost');
    assert.equal(seen['x-forwarded-proto'], 'http');
    assert.match(seen['forwarded']!, /^for=127\.0\.0\.1;proto=http;host=/);
    assert.equal(seen['x-request-id'], result.headers['x-request-id']);
    assert.notEqual(seen['x-request-id'], 'spoofed-request-id');
    // W3C trace context: the trace id continues, the span id is the gateway's own.
    assert.match(seen['traceparent']!, /^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-0[01]$/);
    assert.notEqual(seen['traceparent'], spoofed['traceparent']);
    // Host is the upstream's own authority unless the upstream sets preserve_host.
    assert.equal(seen['host'], new URL(h.upstream.url).host);
  });

  test('Host is the upstream\'s authority by default, the client\'s with preserve_host', async () => {
    const upstreamHost = new URL(h.upstream.url).host;
    assert.equal((await get('/status', { host: 'api.example.test' })).json().headers['host'], upstreamHost);
    const kept = (await get('/keep-host', { host: 'api.example.test' })).json().headers;
    assert.equal(kept['host'], 'api.example.test');
    assert.equal(kept['x-forwarded-host'], 'api.example.test');
  });

  test('hop-by-hop headers of the upstream response do not reach the client', async () => {
    const result = await get('/status');
    assert.equal(result.headers['keep-alive'] === undefined || result.headers['keep-alive'] !== 'upstream', true);
    assert.ok(result.headers['x-request-id']);
  });
});

describe('canonical path (raw requests, as a client library would normalise them)', () => {
  const refused = [
    '/items/a%2fb',
    '/items/a%2Fb',
    '/items/..%2fstatus',
    '/items/%2e%2e/status',
    '/items/.%2E/status',
    '/items/a\\b',
    '/items/a;b',
    '/items/..;/status',
    '//status',
    '/items//1',
    '/items/./1',
    '/items/../status',
    '/items/%00',
    '/items/%25%32%66',
    '/items/%zz',
    '/items/%C3%28',
  ];
  for (const path of refused) {
    test(`${path} → 400 path_not_canonical or bad_request, never forwarded`, async () => {
      const before = h.upstream.seen.length;
      const exchange = await rawRequest(publicPort, `GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
      assert.equal(exchange.statuses[0], 400, exchange.text);
      assert.match(firstBody(exchange).code, /^(path_not_canonical|bad_request)$/);
      assert.equal(h.upstream.seen.length, before);
    });
  }

  test('unreserved escapes are decoded and the routed path is exactly the forwarded path', async () => {
    const exchange = await rawRequest(publicPort, 'GET /items/%7euser%41?x=%2f HTTP/1.1\r\nHost: localhost\r\n\r\n');
    assert.equal(exchange.statuses[0], 200);
    assert.equal(firstBody(exchange).path, '/items/~userA?x=%2f');
    const escaped = await rawRequest(publicPort, 'GET /items/a%3ab HTTP/1.1\r\nHost: localhost\r\n\r\n');
    assert.equal(firstBody(escaped).path, '/items/a%3Ab');
  });
});

describe('limits', () => {
  test('a declared body over the route limit: 413 before the upstream is called', async () => {
    const before = h.upstream.seen.length;
    const response = await request(`${h.url('public')}/items/1`, { method: 'POST', headers: { host: 'localhost' }, body: 'x'.repeat(2048) });
    const result = { status: response.statusCode, headers: response.headers, text: await response.body.text() };
    assertProblem(result, 413, 'body_too_large');
    assert.equal(h.upstream.seen.length, before);
  });

  test('a chunked body over the limit: 413', async () => {
    const chunk = 'x'.repeat(600);
    const payload =
      'POST /items/1 HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n' +
      `${(600).toString(16)}\r\n${chunk}\r\n${(600).toString(16)}\r\n${chunk}\r\n0\r\n\r\n`;
    const exchange = await rawRequest(publicPort, payload);
    assert.equal(exchange.statuses[0], 413, exchange.text);
  });

  test('a body within the limit is streamed to the upstream', async () => {
    const response = await request(`${h.url('public')}/items/1`, { method: 'POST', headers: { host: 'localhost' }, body: 'y'.repeat(900) });
    assert.equal(response.statusCode, 200);
    assert.equal((await response.body.json() as { bodyBytes: number }).bodyBytes, 900);
  });

  test('a header section over 16 KiB: 431 and a decision record', async () => {
    const exchange = await rawRequest(publicPort, `GET /status HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(17 * 1024)}\r\n\r\n`, { untilClose: true });
    assert.equal(exchange.statuses[0], 431);
    assert.equal(firstBody(exchange).code, 'header_too_large');
    assert.equal(exchange.closed, true);
    const id = firstBody(exchange).request_id;
    const record = await recordFor(id);
    assert.equal(record.event.reason, 'http.header_too_large');
  });

  test('more header fields than allowed: 431', async () => {
    const many = Array.from({ length: 120 }, (_, i) => `X-H${i}: v`).join('\r\n');
    const exchange = await rawRequest(publicPort, `GET /status HTTP/1.1\r\nHost: localhost\r\n${many}\r\n\r\n`);
    assert.equal(exchange.statuses[0], 431, exchange.text.slice(0, 200));
  });
});
