/**
 * The duplicate-refusing, bounded JSON parser under the JOSE header and claims parse
 * (`src/authn/strict-json.ts`; SECURITY.md §1.8, JWT-13, JWT-17, JWT-20).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_STRICT_JSON_LIMITS, parseStrictJson } from '../../../src/authn/strict-json.ts';
import type { StrictJsonError } from '../../../src/authn/strict-json.ts';

const WIDE = { maxDepth: 64, maxMembers: 10_000 };

function error(text: string, limits = WIDE): StrictJsonError {
  const result = parseStrictJson(text, limits);
  assert.equal(result.ok, false, `expected ${JSON.stringify(text)} to be refused`);
  return result.ok ? ('syntax' as const) : result.error;
}

function value(text: string, limits = WIDE): unknown {
  const result = parseStrictJson(text, limits);
  if (!result.ok) assert.fail(`${JSON.stringify(text)} refused: ${result.detail}`);
  return result.value;
}

describe('parseStrictJson', () => {
  it('JWT-13: refuses duplicate members, compared after unescaping', () => {
    for (const text of [
      '{"alg":"RS256","alg":"none"}',
      '{"alg":"RS256","\\u0061lg":"none"}',
      '{"\\u0061\\u006c\\u0067":"RS256","alg":"none"}',
      '{"a\\/b":1,"a/b":2}',
      '{"\\ud83d\\ude00":1,"😀":2}',
      '{"x":{"k":1,"k":1}}',
      '[{"k":1},{"k":1,"k":2}]',
    ]) {
      assert.equal(error(text), 'duplicate_member', text);
    }
    // names that differ only by Unicode normalisation are different names (exact comparison)
    assert.deepEqual(Object.keys(value('{"\u00e9":1,"e\u0301":2}') as object), ['\u00e9', 'e\u0301']);
    // the same name in sibling objects is fine
    assert.ok(value('[{"k":1},{"k":2}]'));
  });

  it('JWT-13: names the duplicate member in the detail, bounded and quoted', () => {
    const result = parseStrictJson(`{"${'n'.repeat(300)}":1,"${'n'.repeat(300)}":2}`, WIDE);
    assert.ok(!result.ok);
    assert.ok(result.detail.length < 120, result.detail);
    const controls = parseStrictJson('{"a\\nb":1,"a\\nb":2}', WIDE);
    assert.ok(!controls.ok && !controls.detail.includes('\n'));
  });

  it('JWT-17: bounds depth (default 8) and members per object or array (default 64)', () => {
    assert.deepEqual(DEFAULT_STRICT_JSON_LIMITS, { maxDepth: 8, maxMembers: 64 });
    assert.ok(parseStrictJson('[[[[[[[[1]]]]]]]]').ok);
    assert.equal(error('[[[[[[[[[1]]]]]]]]]', DEFAULT_STRICT_JSON_LIMITS), 'too_deep');
    assert.equal(error(`{"a":${'{"a":'.repeat(8)}1${'}'.repeat(8)}}`, DEFAULT_STRICT_JSON_LIMITS), 'too_deep');
    const members = (n: number) => `{${Array.from({ length: n }, (_, i) => `"m${i}":${i}`).join(',')}}`;
    const elements = (n: number) => `[${Array.from({ length: n }, (_, i) => i).join(',')}]`;
    assert.ok(parseStrictJson(members(64)).ok);
    assert.ok(parseStrictJson(elements(64)).ok);
    assert.equal(error(members(65), DEFAULT_STRICT_JSON_LIMITS), 'too_many_members');
    assert.equal(error(elements(65), DEFAULT_STRICT_JSON_LIMITS), 'too_many_members');
    // a deep document is refused without recursing through all of it
    assert.equal(error('['.repeat(100_000), DEFAULT_STRICT_JSON_LIMITS), 'too_deep');
  });

  it('JWT-20: objects have a null prototype; __proto__ is an ordinary own member', () => {
    const parsed = value('{"__proto__":{"admin":true},"constructor":1,"toString":"x"}') as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(parsed), null);
    assert.deepEqual(Object.keys(parsed), ['__proto__', 'constructor', 'toString']);
    assert.equal(parsed['admin'], undefined);
    assert.equal(Object.getPrototypeOf(parsed['__proto__']), null);
    assert.equal(({} as Record<string, unknown>)['admin'], undefined);
    assert.equal(error('{"__proto__":1,"__proto__":2}'), 'duplicate_member');
  });

  it('follows the RFC 8259 grammar and nothing more', () => {
    for (const text of [
      '', ' ', '{', '{"a":1,}', '[1,]', "{'a':1}", '{a:1}', '{"a":01}', '{"a":+1}', '{"a":.5}', '{"a":1.}', '{"a":1e}', '{"a":0x10}',
      '{"a":NaN}', '{"a":Infinity}', '{"a":-}', '{"a":tru}', '{"a":nul}', '{"a":1}/*c*/', '{"a":1} x', '{"a":"\u0001"}', '{"a":"\\x41"}',
      '{"a":"\\u00"}', '{"a":"\\u00zz"}', '{"a":"unterminated}', '{"a":1}\u00a0', '\ufeff{}', '{"a"\u000b:1}', '{"a":1 "b":2}',
    ]) {
      assert.equal(error(text), 'syntax', JSON.stringify(text));
    }
    assert.deepEqual(value(' \t\r\n{ "a" : [ 1 , -0.5e+2 , 1E-2 , true , false , null , "\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9" ] } \n'), {
      __proto__: null,
      a: [1, -50, 0.01, true, false, null, '"\\/\b\f\n\r\té'],
    });
  });

  it('refuses numbers that are not finite doubles and strings that are not well-formed UTF-16', () => {
    assert.equal(error('{"exp":1e400}'), 'syntax');
    assert.equal(error('[-1e400]'), 'syntax');
    assert.equal(value('[1e308]')!.toString(), '1e+308');
    for (const text of ['"\\ud800"', '"\\udc00"', '"\\ud800\\u0041"', '"\\ud800x"', '"\ud800"', '"\udc00\ud800"']) assert.equal(error(text), 'syntax', text);
    assert.equal(value('"\\ud83d\\ude00"'), '😀');
    assert.equal(value('"😀"'), '😀');
  });

  it('reads back exactly what JSON.stringify wrote (round trip over generated documents)', () => {
    let seed = 42;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const leaves = [0, -0.5, 1e21, 123456789.25, 'plain', 'é😀\u2028"\\\t\u0000', '', true, false, null];
    const build = (depth: number): unknown => {
      const r = random();
      if (depth > 5 || r < 0.4) return leaves[Math.floor(random() * leaves.length)];
      if (r < 0.7) return Array.from({ length: Math.floor(random() * 5) }, () => build(depth + 1));
      return Object.fromEntries(Array.from({ length: Math.floor(random() * 5) }, (_, i) => [`k${i}${String.fromCharCode(32 + Math.floor(random() * 200))}`, build(depth + 1)]));
    };
    // Compared with the source text, not with JSON.parse: see the next test.
    for (let i = 0; i < 2000; i++) {
      const indent = i % 2 === 0 ? undefined : 2;
      const text = JSON.stringify(build(0), null, indent);
      assert.equal(JSON.stringify(value(text), null, indent), text);
    }
  });

  it('decodes escaped member names exactly, also where JSON.parse of Node 24.21 does not', () => {
    // Found by the round-trip test above. On Node 24.21.0 (V8), once JSON.parse has read the JSON
    // text {"k1\\":1} (member name k1\), the JSON text {"k1\"":1} comes back with the name k1\
    // instead of k1" (likewise {"k1\n":1}, {"k1\/":1}). Node 20 reads them right. Our parser
    // decodes names itself, so a name means the same to it whatever was parsed before.
    const first = value('{"k1\\\\":1}') as Record<string, unknown>;
    const second = value('{"k1\\"":1}') as Record<string, unknown>;
    assert.deepEqual(Object.keys(first), ['k1\\']);
    assert.deepEqual(Object.keys(second), ['k1"']);
    JSON.parse('{"k2\\\\":1}');
    assert.deepEqual(Object.keys(value('{"k2\\"":1}') as object), ['k2"']);
    assert.deepEqual(Object.keys(value('{"k2\\n":1}') as object), ['k2\n']);
  });
});
