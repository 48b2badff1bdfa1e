// Path canonicalisation (SECURITY.md HT-04, HT-07, §1.8 WHATWG URL facts). Every row is a target
// as Node gives it in `req.url`; the canonical path is what is routed AND forwarded.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalizeTarget, isCanonicalPath } from '../../src/http/canonical-path.ts';

type Row = readonly [target: string, expected: { path: string; query?: string } | 'http.path_not_canonical' | 'http.target_invalid', why: string];

const ROWS: readonly Row[] = [
  // accepted unchanged
  ['/', { path: '/' }, 'root'],
  ['/a/b/c', { path: '/a/b/c' }, 'plain'],
  ['/a/', { path: '/a/' }, 'a trailing slash is kept, not merged'],
  ["/a-b_c.d~e!$&'()*+,=:@", { path: "/a-b_c.d~e!$&'()*+,=:@" }, 'every raw pchar'],
  ['/.well-known/jwks.json', { path: '/.well-known/jwks.json' }, 'a dot inside a name'],
  ['/a/.../b', { path: '/a/.../b' }, 'three dots are a name, not a dot segment'],
  ['/a/..b/c.', { path: '/a/..b/c.' }, 'dots next to other characters'],
  ['/a%20b', { path: '/a%20b' }, 'an escaped space stays escaped'],
  ['/caf%C3%A9', { path: '/caf%C3%A9' }, 'valid UTF-8 (2 bytes)'],
  ['/%E2%82%AC/%F0%9F%98%80', { path: '/%E2%82%AC/%F0%9F%98%80' }, 'valid UTF-8 (3 and 4 bytes)'],
  ['/%3B', { path: '/%3B' }, 'an encoded ";" is data, not a parameter delimiter'],
  ['/%3F%23', { path: '/%3F%23' }, 'encoded "?" and "#" are data'],

  // RFC 3986 §6.2.2 normalisation
  ['/%7euser', { path: '/~user' }, 'decode unreserved "~" (lowercase hex)'],
  ['/%7Euser', { path: '/~user' }, 'decode unreserved "~"'],
  ['/%41%62%2D%5F%30', { path: '/Ab-_0' }, 'decode ALPHA, DIGIT, "-", "_"'],
  ['/a%3ab', { path: '/a%3Ab' }, 'uppercase the hex of a reserved escape'],
  ['/caf%c3%a9', { path: '/caf%C3%A9' }, 'uppercase the hex of UTF-8 escapes'],
  ['/x/%7e%3a/%7E', { path: '/x/~%3A/~' }, 'several changes in one path'],
  ['/%61/%62?x=%61', { path: '/a/b', query: 'x=%61' }, 'the query is never touched'],

  // query and fragment
  ['/a?x=%2f', { path: '/a', query: 'x=%2f' }, 'query kept as sent'],
  ['/a?', { path: '/a', query: '' }, 'empty query'],
  ['/a?b?c', { path: '/a', query: 'b?c' }, 'split at the first "?"'],
  ['/a?x=..;/%2e', { path: '/a', query: 'x=..;/%2e' }, 'path rules do not apply to the query'],
  ['/a#frag', 'http.target_invalid', 'fragment (RFC 9112 §3.2)'],
  ['/a?x#frag', 'http.target_invalid', 'fragment after a query'],

  // target forms
  ['*', 'http.target_invalid', 'asterisk-form'],
  ['http://x/y', 'http.target_invalid', 'absolute-form is handled before this'],
  ['x/y', 'http.target_invalid', 'no leading slash'],
  ['', 'http.target_invalid', 'empty'],

  // encoded separators and escapes
  ['/a%2fb', 'http.path_not_canonical', 'encoded slash (lowercase)'],
  ['/a%2Fb', 'http.path_not_canonical', 'encoded slash'],
  ['/..%2f', 'http.path_not_canonical', 'dot-dot with encoded slash (§1.8: URL keeps it, backends decode it)'],
  ['/public/..%2fadmin', 'http.path_not_canonical', 'traversal with encoded slash'],
  ['/a%5Cb', 'http.path_not_canonical', 'encoded backslash'],
  ['/a%5cb', 'http.path_not_canonical', 'encoded backslash (lowercase)'],
  ['/%00', 'http.path_not_canonical', 'encoded NUL'],
  ['/a%0Ab', 'http.path_not_canonical', 'encoded LF'],
  ['/a%0d%0aSet-Cookie:x', 'http.path_not_canonical', 'encoded CRLF (response splitting)'],
  ['/a%1F', 'http.path_not_canonical', 'encoded control'],
  ['/a%7F', 'http.path_not_canonical', 'encoded DEL'],
  ['/%25', 'http.path_not_canonical', 'encoded percent'],
  ['/%25%32%66', 'http.path_not_canonical', 'double-encoded slash'],
  ['/%252e%252e/', 'http.path_not_canonical', 'double-encoded dots'],
  ['/%zz', 'http.path_not_canonical', 'invalid escape'],
  ['/%', 'http.path_not_canonical', 'bare percent at the end'],
  ['/%4', 'http.path_not_canonical', 'one hex digit at the end'],
  ['/%4?x', 'http.path_not_canonical', 'escape cut off by the query'],
  ['/%G1', 'http.path_not_canonical', 'non-hex first digit'],
  ['/%+1', 'http.path_not_canonical', 'sign instead of hex'],

  // encoded dots
  ['/a/%2e%2e/b', 'http.path_not_canonical', 'encoded dot-dot segment'],
  ['/a/.%2E/', 'http.path_not_canonical', 'half-encoded dot-dot (§1.8: URL resolves it)'],
  ['/a/%2e/b', 'http.path_not_canonical', 'encoded dot segment'],
  ['/a%2Eb', 'http.path_not_canonical', 'any encoded dot, even inside a name'],

  // dot segments and empty segments
  ['/a/./b', 'http.path_not_canonical', 'dot segment'],
  ['/a/../b', 'http.path_not_canonical', 'dot-dot segment'],
  ['/..', 'http.path_not_canonical', 'dot-dot at the end'],
  ['/.', 'http.path_not_canonical', 'dot at the end'],
  ['/a/..?x', 'http.path_not_canonical', 'dot-dot before the query'],
  ['/a/../', 'http.path_not_canonical', 'dot-dot then trailing slash'],
  ['//admin', 'http.path_not_canonical', 'leading empty segment (§1.8: URL reads "admin" as a host)'],
  ['/a//b', 'http.path_not_canonical', 'empty segment'],
  ['/a//', 'http.path_not_canonical', 'two trailing slashes'],
  ['//', 'http.path_not_canonical', 'only slashes'],

  // raw characters outside pchar
  ['/a\\b', 'http.path_not_canonical', 'raw backslash'],
  ['/public/..\\admin', 'http.path_not_canonical', 'backslash traversal'],
  ['/a;b', 'http.path_not_canonical', 'semicolon'],
  ['/a/..;/b', 'http.path_not_canonical', 'Tomcat-style "..;/"'],
  ['/a;jsessionid=1', 'http.path_not_canonical', 'path parameter'],
  ['/a b', 'http.path_not_canonical', 'raw space'],
  ['/a\tb', 'http.path_not_canonical', 'raw tab'],
  ['/a\u0000b', 'http.path_not_canonical', 'raw NUL'],
  ['/a\u007fb', 'http.path_not_canonical', 'raw DEL'],
  ['/a"b', 'http.path_not_canonical', 'raw quote'],
  ['/a<b>', 'http.path_not_canonical', 'raw angle brackets'],
  ['/a{b}', 'http.path_not_canonical', 'raw braces'],
  ['/a|b', 'http.path_not_canonical', 'raw pipe'],
  ['/a^b', 'http.path_not_canonical', 'raw caret'],
  ['/a`b', 'http.path_not_canonical', 'raw backtick'],
  ['/a[b]', 'http.path_not_canonical', 'raw square brackets'],
  ['/café', 'http.path_not_canonical', 'raw non-ASCII'],
  ['/caf\u00c3\u00a9', 'http.path_not_canonical', 'raw UTF-8 bytes read as latin1'],
  ['/\u2215etc', 'http.path_not_canonical', 'raw DIVISION SLASH'],

  // percent-encoded bytes that are not UTF-8
  ['/%C3%28', 'http.path_not_canonical', 'invalid continuation byte'],
  ['/%C3', 'http.path_not_canonical', 'truncated sequence at the end'],
  ['/%C3/x', 'http.path_not_canonical', 'truncated sequence before a slash'],
  ['/%C3a', 'http.path_not_canonical', 'truncated sequence before a raw character'],
  ['/%C3%41', 'http.path_not_canonical', 'truncated sequence before an escaped ASCII byte'],
  ['/%A9', 'http.path_not_canonical', 'lone continuation byte'],
  ['/%C0%AF', 'http.path_not_canonical', 'overlong "/" (2 bytes)'],
  ['/%C1%81', 'http.path_not_canonical', 'overlong "A"'],
  ['/%E0%80%AF', 'http.path_not_canonical', 'overlong "/" (3 bytes)'],
  ['/%F0%80%80%AF', 'http.path_not_canonical', 'overlong "/" (4 bytes)'],
  ['/%ED%A0%80', 'http.path_not_canonical', 'UTF-16 surrogate'],
  ['/%F4%90%80%80', 'http.path_not_canonical', 'above U+10FFFF'],
  ['/%F5%80%80%80', 'http.path_not_canonical', 'invalid lead byte'],
  ['/%FF', 'http.path_not_canonical', 'invalid byte'],
  ['/%E2%82', 'http.path_not_canonical', '3-byte sequence cut short'],
  ['/%ED%9F%BF', { path: '/%ED%9F%BF' }, 'U+D7FF, just below the surrogates'],
  ['/%F4%8F%BF%BF', { path: '/%F4%8F%BF%BF' }, 'U+10FFFF, the last code point'],
];

describe('canonicalizeTarget', () => {
  for (const [target, expected, why] of ROWS) {
    test(`${JSON.stringify(target)}: ${why}`, () => {
      const result = canonicalizeTarget(target);
      if (typeof expected === 'string') {
        assert.deepEqual(result, { ok: false, reason: expected });
      } else {
        assert.deepEqual(result, { ok: true, path: expected.path, query: expected.query ?? '' });
      }
    });
  }

  test('a canonical path is returned as the same string', () => {
    const target = '/orders/42/items';
    const result = canonicalizeTarget(target);
    assert.ok(result.ok);
    assert.equal(result.path, target);
  });

  test('canonicalisation is idempotent', () => {
    for (const [target, expected] of ROWS) {
      if (typeof expected === 'string') continue;
      const again = canonicalizeTarget(expected.path);
      assert.deepEqual(again, { ok: true, path: expected.path, query: '' }, target);
    }
  });
});

describe('isCanonicalPath', () => {
  const yes = ['/', '/a/b', '/a/', '/~user', '/a%3Ab', '/caf%C3%A9'];
  const no = ['', 'a', '/%7euser', '/%7Euser', '/a%3ab', '/a?x', '/a#x', '/a//b', '/a/../b', '/a%2Fb', '/a;b'];
  for (const path of yes) test(`${JSON.stringify(path)} is canonical`, () => assert.equal(isCanonicalPath(path), true));
  for (const path of no) test(`${JSON.stringify(path)} is not canonical`, () => assert.equal(isCanonicalPath(path), false));
});
