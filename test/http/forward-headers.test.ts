// Header hygiene towards the upstream and back (SECURITY.md §0.8, HT-01, HT-05, HT-10).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { buildUpstreamHeaders, CLIENT_IDENTITY_HEADERS, HOP_BY_HOP_HEADERS, stripResponseHeaders } from '../../src/http/forward-headers.ts';
import type { ForwardInfo } from '../../src/http/forward-headers.ts';

const INFO: ForwardInfo = {
  clientIp: '192.0.2.7',
  proto: 'https',
  host: 'api.example.com',
  requestId: 'req-1',
  traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
  viaProtocol: '1.1',
};

/** The gateway's own headers, in the order they are appended. */
const GATEWAY = [
  ['host', 'api.example.com'],
  ['x-forwarded-for', '192.0.2.7'],
  ['x-forwarded-proto', 'https'],
  ['x-forwarded-host', 'api.example.com'],
  ['forwarded', 'for=192.0.2.7;proto=https;host=api.example.com'],
  ['x-request-id', 'req-1'],
  ['traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'],
  ['via', '1.1 portcullis'],
];

function pairs(flat: readonly string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
  return out;
}

function forwarded(raw: readonly string[], info: ForwardInfo = INFO): [string, string][] {
  return pairs(buildUpstreamHeaders(raw, info));
}

/** What the client sent that survived, i.e. everything before the gateway's own block. */
function clientPart(raw: readonly string[], info: ForwardInfo = INFO): [string, string][] {
  const all = forwarded(raw, info);
  assert.deepEqual(all.slice(-GATEWAY.length).map(([name]) => name), GATEWAY.map(([name]) => name));
  return all.slice(0, -GATEWAY.length);
}

describe('buildUpstreamHeaders', () => {
  test('ordinary headers pass with lowercase names, then the gateway headers', () => {
    assert.deepEqual(forwarded(['Accept', 'application/json', 'Authorization', 'Bearer x', 'X-Custom', 'a', 'x-custom', 'b']), [
      ['accept', 'application/json'],
      ['authorization', 'Bearer x'],
      ['x-custom', 'a'],
      ['x-custom', 'b'],
      ...GATEWAY,
    ]);
  });

  test('hop-by-hop headers are removed (RFC 9110 §7.6.1)', () => {
    const raw = HOP_BY_HOP_HEADERS.flatMap((name) => [name.toUpperCase(), 'x']).concat(['Accept', '*/*']);
    assert.deepEqual(clientPart(raw), [['accept', '*/*']]);
  });

  test('headers named in Connection are removed, in any case and with OWS', () => {
    const raw = ['Connection', 'keep-alive, X-Secret ,\tX-Other', 'connection', 'close,,x-third', 'X-Secret', '1', 'x-other', '2', 'X-Third', '3', 'X-Kept', '4'];
    assert.deepEqual(clientPart(raw), [['x-kept', '4']]);
  });

  test('Connection: x-forwarded-for cannot remove the gateway header', () => {
    const raw = ['Connection', 'x-forwarded-for, x-request-id, host, forwarded, via, traceparent, x-forwarded-proto, x-forwarded-host', 'X-Forwarded-For', '6.6.6.6'];
    assert.deepEqual(forwarded(raw), GATEWAY);
  });

  test('Host is replaced by the routed host', () => {
    assert.deepEqual(clientPart(['Host', 'evil.test']), []);
  });

  test('Expect is handled by the gateway, not forwarded', () => {
    assert.deepEqual(clientPart(['Expect', '100-continue']), []);
  });

  test('HTTP/2 pseudo-headers are removed', () => {
    assert.deepEqual(clientPart([':method', 'GET', ':path', '/', ':authority', 'a', ':scheme', 'https', 'accept', '*/*']), [['accept', '*/*']]);
  });

  test('Content-Length is kept without Transfer-Encoding', () => {
    assert.deepEqual(clientPart(['Content-Length', '5']), [['content-length', '5']]);
  });

  test('Content-Length is dropped when the client sent Transfer-Encoding (the caller re-frames)', () => {
    assert.deepEqual(clientPart(['Transfer-Encoding', 'chunked', 'Content-Length', '5']), []);
  });

  test('every spoofable identity and forwarding header is gone', () => {
    const spoofed = [
      'Forwarded', 'X-Forwarded-For', 'X-Forwarded-Host', 'X-Forwarded-Proto', 'X-Forwarded-Port', 'X-Forwarded-Prefix',
      'X-Forwarded-User', 'X-Forwarded-Email', 'X-Forwarded-Client-Cert', 'X-Forwarded-Ssl', 'X-Real-IP', 'X-Client-IP',
      'Client-IP', 'True-Client-IP', 'CF-Connecting-IP', 'Fastly-Client-IP', 'X-Cluster-Client-IP', 'X-Original-Forwarded-For',
      'X-Original-Host', 'X-Host', 'X-Scheme', 'X-Url-Scheme', 'Front-End-Https',
      'X-Original-URL', 'X-Rewrite-URL', 'X-Original-URI', 'X-Original-Method', 'X-HTTP-Method-Override', 'X-HTTP-Method',
      'X-Method-Override', 'X-Request-ID', 'Traceparent', 'Tracestate',
      'X-Portcullis-Partner', 'X-Portcullis-Assertion', 'X-Partner-Id', 'X-Consumer-ID', 'X-Consumer-Username',
      'X-Credential-Identifier', 'X-Anonymous-Consumer', 'X-Client-Cert', 'X-Client-Cert-Chain', 'X-Client-Certificate',
      'X-SSL-Client-Cert', 'X-SSL-Client-Verify', 'SSL-Client-Cert', 'SSL-Client-Verify', 'X-Client-DN', 'X-Client-Verify',
      'X-ARR-ClientCert', 'X-Authenticated-User', 'X-Authenticated-Userid', 'X-Auth-Request-User', 'X-Auth-Request-Email',
      'X-User', 'X-User-Id', 'X-Userinfo', 'X-Remote-User', 'X-Remote-Addr', 'Remote-User', 'X-JWT-Assertion',
      'X-Amzn-Oidc-Identity', 'X-Amzn-Oidc-Data', 'X-Amzn-Trace-Id', 'X-MS-Client-Principal', 'X-MS-Client-Principal-Name',
      'X-Goog-Authenticated-User-Email', 'X-Goog-IAP-JWT-Assertion', 'X-Envoy-Original-Path', 'X-Envoy-External-Address',
    ];
    const raw = spoofed.flatMap((name) => [name, 'spoofed']).concat(['X-Kept', 'yes']);
    const result = buildUpstreamHeaders(raw, INFO);
    assert.ok(!result.includes('spoofed'), `survived: ${pairs(result).filter(([, v]) => v === 'spoofed').map(([n]) => n).join(', ')}`);
    assert.deepEqual(clientPart(raw), [['x-kept', 'yes']]);
  });

  test('every listed identity header is removed, exact names and prefixes alike', () => {
    const names = [...CLIENT_IDENTITY_HEADERS.exact, ...CLIENT_IDENTITY_HEADERS.prefixes.map((prefix) => `${prefix}x`)];
    assert.deepEqual(clientPart(names.flatMap((name) => [name, 'v'])), []);
  });

  test('look-alike names that are not identity headers pass', () => {
    const raw = ['X-Forwarded', 'a', 'Forwarded-For', 'b', 'X-Client-Version', 'c', 'X-Requested-With', 'd', 'Server-Timing', 'e'];
    assert.deepEqual(clientPart(raw).map(([name]) => name), ['x-forwarded', 'forwarded-for', 'x-client-version', 'x-requested-with', 'server-timing']);
  });

  test('a client Via stays and ours is appended (RFC 9110 §7.6.3)', () => {
    const result = forwarded(['Via', '1.0 corp-proxy'], { ...INFO, viaProtocol: '2' });
    assert.deepEqual(result[0], ['via', '1.0 corp-proxy']);
    assert.deepEqual(result.at(-1), ['via', '2 portcullis']);
  });

  test('Forwarded quotes and brackets an IPv6 client (RFC 7239 §6)', () => {
    const result = new Map(forwarded([], { ...INFO, clientIp: '2001:db8::1', proto: 'http' }));
    assert.equal(result.get('forwarded'), 'for="[2001:db8::1]";proto=http;host=api.example.com');
    assert.equal(result.get('x-forwarded-for'), '2001:db8::1');
  });

  test('Forwarded quotes a host that is not a token', () => {
    const result = new Map(forwarded([], { ...INFO, host: '[::1]' }));
    assert.equal(result.get('forwarded'), 'for=192.0.2.7;proto=https;host="[::1]"');
  });

  test('Forwarded says unknown when there is no client address (RFC 7239 §6.3)', () => {
    const result = new Map(forwarded([], { ...INFO, clientIp: '' }));
    assert.equal(result.get('forwarded'), 'for=unknown;proto=https;host=api.example.com');
  });

  test('one call does not leak Connection names into the next', () => {
    buildUpstreamHeaders(['Connection', 'x-a'], INFO);
    assert.deepEqual(clientPart(['X-A', '1']), [['x-a', '1']]);
  });
});

describe('stripResponseHeaders', () => {
  test('hop-by-hop and Connection-named headers are removed; the rest pass', () => {
    const result = stripResponseHeaders({
      'content-type': 'application/json',
      'connection': 'keep-alive, x-internal',
      'keep-alive': 'timeout=5',
      'x-internal': 'secret',
      'proxy-authenticate': 'Basic',
      'upgrade': 'h2c',
      'trailer': 'x-checksum',
      'set-cookie': ['a=1', 'b=2'],
      'content-length': '10',
      'cache-control': undefined,
    });
    assert.deepEqual({ ...result }, { 'content-type': 'application/json', 'set-cookie': ['a=1', 'b=2'], 'content-length': '10' });
  });

  test('Connection given as several values', () => {
    const result = stripResponseHeaders({ 'connection': ['x-a', 'X-B'], 'x-a': '1', 'x-b': '2', 'x-c': '3' });
    assert.deepEqual({ ...result }, { 'x-c': '3' });
  });

  test('Content-Length is dropped when the upstream also sent Transfer-Encoding', () => {
    const result = stripResponseHeaders({ 'transfer-encoding': 'chunked', 'content-length': '10', 'etag': '"x"' });
    assert.deepEqual({ ...result }, { 'etag': '"x"' });
  });

  test('pseudo-headers are removed and mixed-case names merged', () => {
    const result = stripResponseHeaders({ ':status': '200', 'X-A': '1', 'x-a': '2' });
    assert.deepEqual({ ...result }, { 'x-a': ['1', '2'] });
  });

  test('the result has no prototype, so "__proto__" is just a name', () => {
    const input = JSON.parse('{"__proto__": "x", "a": "b"}') as Record<string, string>;
    const result = stripResponseHeaders(input);
    assert.equal(Object.getPrototypeOf(result), null);
    assert.equal(result['a'], 'b');
  });
});
