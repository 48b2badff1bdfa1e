// Request-head checks for what Node's parser accepts but a proxy must refuse
// (SECURITY.md §1.8 "Accepted and passed to the handler", HT-01…HT-08).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { inspectRequestHead, originFormOf } from '../../src/http/request-head.ts';
import type { RefusalReason } from '../../src/errors.ts';

interface Row {
  readonly name: string;
  readonly headers: readonly string[];
  readonly version?: string;
  readonly method?: string;
  readonly target?: string;
  readonly expect: { host: string; hostHeader: string } | RefusalReason;
}

const ROWS: readonly Row[] = [
  // accepted
  { name: 'plain GET', headers: ['Host', 'api.example.com'], expect: { host: 'api.example.com', hostHeader: 'api.example.com' } },
  { name: 'host is lowercased, port kept in hostHeader', headers: ['Host', 'API.Example.COM:8443'], expect: { host: 'api.example.com', hostHeader: 'api.example.com:8443' } },
  { name: 'IPv4 host', headers: ['Host', '192.0.2.1:80'], expect: { host: '192.0.2.1', hostHeader: '192.0.2.1:80' } },
  { name: 'IPv6 host keeps brackets', headers: ['Host', '[2001:DB8::1]:443'], expect: { host: '[2001:db8::1]', hostHeader: '[2001:db8::1]:443' } },
  { name: 'header names are case-insensitive', headers: ['hOsT', 'a.test'], expect: { host: 'a.test', hostHeader: 'a.test' } },
  { name: 'one Content-Length', headers: ['Host', 'a.test', 'Content-Length', '12'], method: 'POST', expect: { host: 'a.test', hostHeader: 'a.test' } },
  { name: 'TE chunked', headers: ['Host', 'a.test', 'Transfer-Encoding', 'chunked'], method: 'POST', expect: { host: 'a.test', hostHeader: 'a.test' } },
  { name: 'TE CHUNKED (codings are case-insensitive)', headers: ['Host', 'a.test', 'Transfer-Encoding', 'CHUNKED'], method: 'POST', expect: { host: 'a.test', hostHeader: 'a.test' } },
  { name: 'TE with OWS (tab)', headers: ['Host', 'a.test', 'Transfer-Encoding', '\tchunked '], method: 'POST', expect: { host: 'a.test', hostHeader: 'a.test' } },
  { name: 'token characters in names', headers: ['Host', 'a.test', "X-A!#$%&'*+.^`|~1", 'v'], expect: { host: 'a.test', hostHeader: 'a.test' } },
  { name: 'OPTIONS *', headers: ['Host', 'a.test'], method: 'OPTIONS', target: '*', expect: { host: 'a.test', hostHeader: 'a.test' } },
  { name: 'absolute-form with the same authority', headers: ['Host', 'a.test'], target: 'http://A.test/x', expect: { host: 'a.test', hostHeader: 'a.test' } },
  { name: 'absolute-form, default port spelled out', headers: ['Host', 'a.test'], target: 'http://a.test:80/x', expect: { host: 'a.test', hostHeader: 'a.test' } },
  { name: 'absolute-form https, default port in Host', headers: ['Host', 'a.test:443'], target: 'HTTPS://a.test/x', expect: { host: 'a.test', hostHeader: 'a.test:443' } },
  { name: 'HTTP/1.0 with Host', version: '1.0', headers: ['Host', 'a.test'], expect: { host: 'a.test', hostHeader: 'a.test' } },
  { name: 'HTTP/1.0 absolute-form without Host', version: '1.0', headers: [], target: 'http://a.test/x', expect: { host: 'a.test', hostHeader: 'a.test' } },
  { name: 'HTTP/2 :authority', version: '2.0', headers: [':method', 'GET', ':scheme', 'https', ':authority', 'a.test:8443', ':path', '/'], expect: { host: 'a.test', hostHeader: 'a.test:8443' } },
  { name: 'HTTP/2 Host without :authority', version: '2.0', headers: [':method', 'GET', ':path', '/', 'host', 'a.test'], expect: { host: 'a.test', hostHeader: 'a.test' } },
  { name: 'HTTP/2 Host equal to :authority', version: '2.0', headers: [':authority', 'a.test', 'host', 'A.TEST'], expect: { host: 'a.test', hostHeader: 'a.test' } },

  // Host (HT-04)
  { name: 'no Host', headers: ['Accept', '*/*'], expect: 'http.host_missing' },
  { name: 'empty Host', headers: ['Host', ''], expect: 'http.host_missing' },
  { name: 'duplicate Host (§1.8)', headers: ['Host', 'a.test', 'Host', 'evil.test'], expect: 'http.host_duplicate' },
  { name: 'duplicate Host, same value', headers: ['Host', 'a.test', 'host', 'a.test'], expect: 'http.host_duplicate' },
  { name: 'HTTP/1.0 without Host, origin-form', version: '1.0', headers: [], expect: 'http.host_missing' },
  { name: 'HTTP/2 without any authority', version: '2.0', headers: [':method', 'GET', ':path', '/'], expect: 'http.host_missing' },
  { name: 'HTTP/2 two :authority', version: '2.0', headers: [':authority', 'a.test', ':authority', 'b.test'], expect: 'http.host_duplicate' },
  { name: 'HTTP/2 Host differs from :authority', version: '2.0', headers: [':authority', 'a.test', 'host', 'evil.test'], expect: 'http.host_mismatch' },
  { name: 'absolute-form with another authority (§1.8)', headers: ['Host', 'a.test'], target: 'http://evil.example/admin', expect: 'http.host_mismatch' },
  { name: 'absolute-form with another port', headers: ['Host', 'a.test'], target: 'http://a.test:8080/x', expect: 'http.host_mismatch' },
  { name: 'absolute-form https vs Host with port 80', headers: ['Host', 'a.test:80'], target: 'https://a.test/x', expect: 'http.host_mismatch' },
  { name: 'absolute-form with userinfo', headers: ['Host', 'a.test'], target: 'http://user@a.test/x', expect: 'http.target_invalid' },
  { name: 'absolute-form with empty authority', headers: ['Host', 'a.test'], target: 'http:///x', expect: 'http.target_invalid' },
  { name: 'absolute-form of another scheme', headers: ['Host', 'a.test'], target: 'ftp://a.test/x', expect: 'http.target_invalid' },
  { name: 'asterisk-form on GET', headers: ['Host', 'a.test'], target: '*', expect: 'http.target_invalid' },
  { name: 'authority-form target', headers: ['Host', 'a.test'], target: 'a.test:443', expect: 'http.target_invalid' },
  { name: 'empty target', headers: ['Host', 'a.test'], target: '', expect: 'http.target_invalid' },

  // Host values
  { name: 'Host with userinfo', headers: ['Host', 'user@a.test'], expect: 'http.malformed' },
  { name: 'Host with a path', headers: ['Host', 'a.test/x'], expect: 'http.malformed' },
  { name: 'Host with empty port', headers: ['Host', 'a.test:'], expect: 'http.malformed' },
  { name: 'Host with port out of range', headers: ['Host', 'a.test:65536'], expect: 'http.malformed' },
  { name: 'Host with non-digit port', headers: ['Host', 'a.test:8o'], expect: 'http.malformed' },
  { name: 'Host with two ports', headers: ['Host', 'a.test:1:2'], expect: 'http.malformed' },
  { name: 'Host with trailing dot', headers: ['Host', 'a.test.'], expect: 'http.malformed' },
  { name: 'Host with empty label', headers: ['Host', 'a..test'], expect: 'http.malformed' },
  { name: 'Host label starting with "-"', headers: ['Host', '-a.test'], expect: 'http.malformed' },
  { name: 'Host label ending with "-"', headers: ['Host', 'a-.test'], expect: 'http.malformed' },
  { name: 'Host label over 63 characters', headers: ['Host', `${'a'.repeat(64)}.test`], expect: 'http.malformed' },
  { name: 'Host with percent-encoding', headers: ['Host', 'a%2etest'], expect: 'http.malformed' },
  { name: 'Host with underscore', headers: ['Host', 'a_b.test'], expect: 'http.malformed' },
  { name: 'Host with space', headers: ['Host', 'a.test x'], expect: 'http.malformed' },
  { name: 'Host with non-ASCII', headers: ['Host', 'exämple.test'], expect: 'http.malformed' },
  { name: 'unbracketed IPv6 Host', headers: ['Host', '::1'], expect: 'http.malformed' },
  { name: 'IPv6 Host with zone id', headers: ['Host', '[fe80::1%25eth0]'], expect: 'http.malformed' },
  { name: 'IPvFuture Host', headers: ['Host', '[v1.abc]'], expect: 'http.malformed' },
  { name: 'invalid IPv6 Host', headers: ['Host', '[1:2:3]'], expect: 'http.malformed' },
  { name: 'unterminated IPv6 Host', headers: ['Host', '[::1'], expect: 'http.malformed' },
  { name: 'garbage after IPv6 Host', headers: ['Host', '[::1]x'], expect: 'http.malformed' },

  // header names (HT-08)
  { name: 'underscore in a name (§1.8: Transfer_Encoding smuggling)', headers: ['Host', 'a.test', 'Transfer_Encoding', 'chunked', 'Content-Length', '0'], expect: 'http.header_name_invalid' },
  { name: 'underscore anywhere', headers: ['Host', 'a.test', 'X_Forwarded_For', '1.2.3.4'], expect: 'http.header_name_invalid' },
  { name: 'non-token character', headers: ['Host', 'a.test', 'X(y)', 'v'], expect: 'http.header_name_invalid' },
  { name: 'non-ASCII in a name', headers: ['Host', 'a.test', 'X-Ä', 'v'], expect: 'http.header_name_invalid' },
  { name: 'empty name', headers: ['Host', 'a.test', '', 'v'], expect: 'http.header_name_invalid' },
  { name: 'pseudo-header on HTTP/1.1', headers: ['Host', 'a.test', ':authority', 'evil.test'], expect: 'http.header_name_invalid' },
  { name: 'unknown pseudo-header on HTTP/2', version: '2.0', headers: [':authority', 'a.test', ':protocol', 'websocket'], expect: 'http.header_name_invalid' },

  // framing (HT-01, HT-02)
  { name: 'CL + TE', headers: ['Host', 'a.test', 'Content-Length', '5', 'Transfer-Encoding', 'chunked'], method: 'POST', expect: 'http.framing_ambiguous' },
  { name: 'TE + CL, TE first', headers: ['Host', 'a.test', 'Transfer-Encoding', 'chunked', 'Content-Length', '5'], method: 'POST', expect: 'http.framing_ambiguous' },
  { name: 'two Content-Length', headers: ['Host', 'a.test', 'Content-Length', '5', 'content-length', '5'], method: 'POST', expect: 'http.framing_ambiguous' },
  { name: 'Content-Length list', headers: ['Host', 'a.test', 'Content-Length', '5, 5'], method: 'POST', expect: 'http.framing_ambiguous' },
  { name: 'signed Content-Length', headers: ['Host', 'a.test', 'Content-Length', '+5'], method: 'POST', expect: 'http.framing_ambiguous' },
  { name: 'empty Content-Length', headers: ['Host', 'a.test', 'Content-Length', ''], method: 'POST', expect: 'http.framing_ambiguous' },
  { name: 'hex Content-Length', headers: ['Host', 'a.test', 'Content-Length', '0x5'], method: 'POST', expect: 'http.framing_ambiguous' },
  { name: 'TE identity, chunked (§1.8)', headers: ['Host', 'a.test', 'Transfer-Encoding', 'identity, chunked'], method: 'POST', expect: 'http.transfer_encoding_invalid' },
  { name: 'TE chunked, chunked', headers: ['Host', 'a.test', 'Transfer-Encoding', 'chunked, chunked'], method: 'POST', expect: 'http.transfer_encoding_invalid' },
  { name: 'TE gzip', headers: ['Host', 'a.test', 'Transfer-Encoding', 'gzip'], method: 'POST', expect: 'http.transfer_encoding_invalid' },
  { name: 'TE xchunked', headers: ['Host', 'a.test', 'Transfer-Encoding', 'xchunked'], method: 'POST', expect: 'http.transfer_encoding_invalid' },
  { name: 'TE chunked with a parameter', headers: ['Host', 'a.test', 'Transfer-Encoding', 'chunked;q=1'], method: 'POST', expect: 'http.transfer_encoding_invalid' },
  { name: 'TE with vertical tab', headers: ['Host', 'a.test', 'Transfer-Encoding', '\u000bchunked'], method: 'POST', expect: 'http.transfer_encoding_invalid' },
  { name: 'two TE fields', headers: ['Host', 'a.test', 'Transfer-Encoding', 'chunked', 'Transfer-Encoding', 'chunked'], method: 'POST', expect: 'http.transfer_encoding_invalid' },
  { name: 'HTTP/1.0 with TE chunked (§1.8)', version: '1.0', headers: ['Host', 'a.test', 'Transfer-Encoding', 'chunked'], method: 'POST', expect: 'http.transfer_encoding_invalid' },
  { name: 'HTTP/2 with TE', version: '2.0', headers: [':authority', 'a.test', 'transfer-encoding', 'chunked'], method: 'POST', expect: 'http.transfer_encoding_invalid' },
  { name: 'framing is checked before Host', headers: ['Content-Length', '1', 'Transfer-Encoding', 'chunked'], method: 'POST', expect: 'http.framing_ambiguous' },

  // upgrade (HT-06)
  { name: 'Upgrade: websocket', headers: ['Host', 'a.test', 'Connection', 'Upgrade', 'Upgrade', 'websocket'], expect: 'http.upgrade_refused' },
  { name: 'Upgrade: h2c', headers: ['Host', 'a.test', 'Connection', 'Upgrade, HTTP2-Settings', 'Upgrade', 'h2c', 'HTTP2-Settings', 'AAMAAABkAAQAAP__'], expect: 'http.upgrade_refused' },
  { name: 'empty Upgrade still refused', headers: ['Host', 'a.test', 'UPGRADE', ''], expect: 'http.upgrade_refused' },

  // methods and versions
  { name: 'CONNECT', headers: ['Host', 'a.test:443'], method: 'CONNECT', target: 'a.test:443', expect: 'http.malformed' },
  { name: 'TRACE', headers: ['Host', 'a.test'], method: 'TRACE', expect: 'http.malformed' },
  { name: 'HTTP/0.9', version: '0.9', headers: ['Host', 'a.test'], expect: 'http.malformed' },
  { name: 'HTTP/1.2', version: '1.2', headers: ['Host', 'a.test'], expect: 'http.malformed' },
];

describe('inspectRequestHead', () => {
  for (const row of ROWS) {
    test(row.name, () => {
      const result = inspectRequestHead(row.headers, row.version ?? '1.1', row.method ?? 'GET', row.target ?? '/');
      const expected = typeof row.expect === 'string' ? { ok: false, reason: row.expect } : { ok: true, ...row.expect };
      assert.deepEqual(result, expected);
    });
  }

  test('every refusal reason used is in the catalogue', async () => {
    const { REASONS } = await import('../../src/errors.ts');
    for (const row of ROWS) if (typeof row.expect === 'string') assert.ok(row.expect in REASONS, row.expect);
  });
});

describe('originFormOf', () => {
  const rows: readonly [string, string | null][] = [
    ['/a?b', '/a?b'],
    ['http://a.test/x/y?q=1', '/x/y?q=1'],
    ['http://a.test', '/'],
    ['http://a.test?q', '/?q'],
    ['HTTPS://a.test:8443/x', '/x'],
    ['http:///x', null],
    ['ftp://a.test/x', null],
    ['*', null],
  ];
  for (const [target, expected] of rows) {
    test(JSON.stringify(target), () => assert.equal(originFormOf(target), expected));
  }
});
