// CEL rules: load-time parse, type check and cost bounds; per-request evaluation, where an
// evaluation error denies for both kinds of rule.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import type { PolicyRuleConfig } from '../../src/config/schema.ts';
import { compileRule, policyContext } from '../../src/policy/rules.ts';
import type { PolicyContext, PolicyVariables, RuleOutcome } from '../../src/policy/types.ts';
import { rule } from './fixtures.ts';

function variables(overrides: { token?: Record<string, unknown>; attributes?: Record<string, string | number | boolean> } = {}): PolicyVariables {
  return {
    partner: { id: 'acme', tier: 'premium', status: 'active', attributes: overrides.attributes ?? { region: 'eu', max_amount: 5000, trusted: true, ratio: 0.25 }, agreement_id: 'MSA-17' },
    credential: { id: 'acme-jwt', type: 'jwt', long_lived: false },
    token: overrides.token ?? Object.assign(Object.create(null) as Record<string, unknown>, { sub: 'acme-client', iat: 1749211200, groups: ['ops', 'billing'], act: { sub: 'agent-7' } }),
    request: {
      method: 'POST',
      path: '/partners/acme/orders/42',
      host: 'api.partner.test',
      params: { pid: 'acme', id: '42' },
      purpose: 'fraud_check',
      source_ip: '10.1.2.3',
      time: new Date('2025-06-06T17:12:00Z'),
      environment: 'production',
      scopes: ['orders:read', 'orders:write'],
    },
    route: { id: 'create-order', api: 'orders', sensitivity: 'confidential', transaction_type: 'write' },
  };
}

const context: PolicyContext = policyContext(variables());

function compileMessage(config: Partial<PolicyRuleConfig>): string {
  const result = compileRule({ id: 'r1', ...config }, 'policies');
  assert.equal(result.ok, false, 'expected a compile error');
  assert.ok(!result.ok);
  return result.message;
}

function evaluate(expression: string, kind: 'require' | 'deny' = 'require', on: PolicyContext = context): RuleOutcome {
  return rule({ id: 'r1', [kind]: expression }).evaluate(on);
}

describe('compileRule: load-time errors', () => {
  test('exactly one of require / deny', () => {
    assert.match(compileMessage({}), /exactly one of "require" or "deny"/);
    assert.match(compileMessage({ require: 'true', deny: 'false' }), /exactly one of "require" or "deny" \(it has both\)/);
  });

  test('an unknown variable', () => {
    assert.equal(compileMessage({ require: 'user.role == "admin"' }), 'Unknown variable: user (at column 1)');
  });

  test('an unknown field of a declared type', () => {
    assert.match(compileMessage({ require: 'partner.country == "de"' }), /No such key: country \(at column 9\)/);
  });

  test('a type mismatch', () => {
    assert.match(compileMessage({ require: 'partner.tier + 1 == 2' }), /no such overload: string \+ int/);
    assert.match(compileMessage({ require: 'request.time > 5' }), /no such overload/);
  });

  test('a result that is not a bool, dyn included', () => {
    assert.equal(compileMessage({ require: 'partner.tier' }), 'require expression must be a bool, but it is of type string');
    assert.equal(compileMessage({ deny: 'token.admin' }), 'deny expression must be a bool, but it is of type dyn');
  });

  test('a syntax error, with its position', () => {
    assert.equal(compileMessage({ require: 'partner.tier ==' }), 'Unexpected token: EOF (at column 16)');
    assert.match(compileMessage({ require: 'true &&\n  partner.tier == ' }), /\(at line 2, column 19\)/);
  });

  test('structural limits: source length, nesting depth, AST size', () => {
    assert.match(compileMessage({ require: `partner.tier == "${'x'.repeat(5000)}"` }), /at most 4096 are allowed/);
    assert.match(compileMessage({ require: `${'('.repeat(40)}true${')'.repeat(40)}` }), /Exceeded maxDepth/);
    const manyClauses = Array.from({ length: 400 }, () => '1 < 2').join(' && ');
    assert.ok(manyClauses.length <= 4096);
    assert.match(compileMessage({ require: manyClauses }), /Exceeded maxAstNodes/);
  });

  test('matches() needs a literal pattern of a shape that cannot backtrack exponentially', () => {
    assert.match(compileMessage({ require: 'request.path.matches(token.pattern)' }), /needs a string literal pattern/);
    assert.match(compileMessage({ require: 'request.path.matches("^(a+)+$")' }), /repeats .* and is repeated again/);
    assert.match(compileMessage({ require: 'request.path.matches("(a|ab)*c")' }), /repeated again/);
    assert.match(compileMessage({ require: 'request.path.matches("(x)\\\\1")' }), /backreferences are not allowed/);
    assert.match(compileMessage({ require: 'request.path.matches("(?=a)")' }), /lookaround/);
    assert.match(compileMessage({ require: 'request.path.matches("(")' }), /invalid regular expression/);
    assert.equal(evaluate('request.path.matches("^/partners/[a-z]+/orders/[0-9]+$")').outcome, 'pass');
    assert.equal(evaluate('request.path.matches("^/(orders|invoices)/")').outcome, 'deny');
  });

  test('a comprehension inside another comprehension is refused; one after another is fine', () => {
    assert.match(
      compileMessage({ require: 'request.path.split("/").all(a, request.path.split("/").exists(b, a == b))' }),
      /exists\(\) inside another comprehension is not allowed/,
    );
    assert.equal(evaluate('token.groups.filter(g, g != "ops").exists(g, g == "billing")').outcome, 'pass');
  });

  test('reason defaults to the rule id; scope and source are kept', () => {
    const compiled = rule({ id: 'eu-only', require: 'partner.attributes.region == "eu"' }, 'partners[acme]');
    assert.equal(compiled.reason, 'eu-only');
    assert.equal(compiled.scope, 'partners[acme]');
    assert.equal(compiled.source, 'partner.attributes.region == "eu"');
    assert.equal(compiled.kind, 'require');
    assert.equal(rule({ id: 'x', deny: 'false', reason: 'weekend_writes' }).reason, 'weekend_writes');
  });
});

test('every rule example in docs/policy.md compiles', () => {
  const doc = readFileSync(new URL('../../docs/policy.md', import.meta.url), 'utf8');
  const examples = [...doc.matchAll(/^\s+(require|deny): (.+?)(?:\s+#.*)?$/gm)].map(([, kind, text]) => ({ kind: kind!, text: text!.replace(/^'(.*)'$/, '$1') }));
  assert.ok(examples.length >= 4, `found ${examples.length} examples`);
  for (const { kind, text } of examples) {
    const result = compileRule({ id: 'doc', [kind]: text }, 'docs');
    assert.ok(result.ok, `${kind}: ${text}: ${!result.ok ? result.message : ''}`);
  }
});

describe('CompiledRule.evaluate', () => {
  test('require: true passes, false denies', () => {
    assert.deepEqual(evaluate('partner.tier == "premium"'), { outcome: 'pass', value: true });
    assert.deepEqual(evaluate('partner.tier == "standard"'), { outcome: 'deny', value: false });
  });

  test('deny: true denies, false passes', () => {
    assert.deepEqual(evaluate('request.method == "POST"', 'deny'), { outcome: 'deny', value: true });
    assert.deepEqual(evaluate('request.method == "GET"', 'deny'), { outcome: 'pass', value: false });
  });

  test('an evaluation error denies for both kinds, including a negated lookup', () => {
    for (const kind of ['require', 'deny'] as const) {
      const missingKey = evaluate('token.department == "sales"', kind);
      assert.equal(missingKey.outcome, 'error', kind);
      assert.ok(missingKey.outcome === 'error');
      assert.match(missingKey.message, /No such key: department/);
      // `!(error)` is still an error, not true.
      assert.equal(evaluate('!(token.department == "sales")', kind).outcome, 'error', kind);
      assert.equal(evaluate('int(request.params.pid) > 3', kind).outcome, 'error', kind);
    }
  });

  test('integers are CEL ints (BigInt), other numbers doubles', () => {
    assert.equal(evaluate('partner.attributes.max_amount == 5000').outcome, 'pass');
    assert.equal(evaluate('partner.attributes.max_amount + 1 == 5001').outcome, 'pass');
    assert.equal(evaluate('partner.attributes.ratio < 0.5').outcome, 'pass');
    assert.equal(evaluate('token.iat > 1700000000').outcome, 'pass');
    assert.equal(evaluate('partner.attributes.trusted == true').outcome, 'pass');
    // A dyn value (attributes, claims) compares across int and double; two literals do not type-check.
    assert.equal(evaluate('partner.attributes.max_amount == 5000.0 && partner.attributes.ratio == 0.25').outcome, 'pass');
    assert.match(compileMessage({ require: '1 == 1.0' }), /no such overload: int == double/);
  });

  test('request.time is a timestamp; its accessors take a time zone', () => {
    assert.equal(evaluate('request.time > timestamp("2025-01-01T00:00:00Z")').outcome, 'pass');
    assert.equal(evaluate('request.time.getHours("Europe/Berlin") == 19').outcome, 'pass');
    assert.equal(evaluate('request.time.getHours() == 17').outcome, 'pass');
  });

  test('maps, lists and nested claims', () => {
    assert.equal(evaluate('request.params.pid == partner.id').outcome, 'pass');
    assert.equal(evaluate('"orders:write" in request.scopes').outcome, 'pass');
    assert.equal(evaluate('"billing" in token.groups && token.act.sub == "agent-7"').outcome, 'pass');
    assert.equal(evaluate('has(token.act.sub) && !has(token.act.iss)').outcome, 'pass');
    assert.equal(evaluate('route.sensitivity == "confidential" && route.transaction_type == "write"').outcome, 'pass');
    assert.equal(evaluate('credential.type == "jwt" && !credential.long_lived').outcome, 'pass');
  });

  test('one compiled rule evaluates many contexts independently', () => {
    const other = policyContext({ ...variables(), partner: { ...variables().partner, tier: 'standard' } });
    const premium = rule({ id: 'premium', require: 'partner.tier == "premium"' });
    assert.equal(premium.evaluate(context).outcome, 'pass');
    assert.equal(premium.evaluate(other).outcome, 'deny');
    assert.equal(premium.evaluate(context).outcome, 'pass');
  });
});

describe('prototype safety (SECURITY.md JWT-20)', () => {
  // JSON.parse makes `__proto__` an own member, as a token's claims set would.
  const hostile = JSON.parse('{"__proto__":"admin","constructor":"admin","toString":"admin","hasOwnProperty":"admin","role":"user"}') as Record<string, unknown>;
  const hostileContext = policyContext(variables({ token: hostile, attributes: { constructor: 'x', region: 'eu' } }));

  test('claims named like Object.prototype members are not there for rules', () => {
    assert.equal(Object.keys(hostile).length, 5);
    for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      assert.deepEqual(evaluate(`has(token.${name})`, 'require', hostileContext), { outcome: 'deny', value: false }, name);
      assert.equal(evaluate(`token["${name}"] == "admin"`, 'require', hostileContext).outcome, 'error', name);
      assert.equal(evaluate(`"${name}" in token`, 'deny', hostileContext).outcome, 'pass', name);
    }
    assert.equal(evaluate('token.role == "user"', 'require', hostileContext).outcome, 'pass');
  });

  test('an empty token does not inherit members either', () => {
    const empty = policyContext(variables({ token: {} }));
    assert.equal(evaluate('has(token.constructor)', 'deny', empty).outcome, 'pass');
    assert.equal(evaluate('token.toString == "x"', 'require', empty).outcome, 'error');
  });

  test('partner attributes named constructor are left out', () => {
    assert.equal(evaluate('has(partner.attributes.constructor)', 'deny', hostileContext).outcome, 'pass');
    assert.equal(evaluate('partner.attributes.region == "eu"', 'require', hostileContext).outcome, 'pass');
  });

  test('a token nested deeper than the bound is left out whole: rules reading it deny', () => {
    let deep: Record<string, unknown> = { leaf: true };
    for (let i = 0; i < 20; i++) deep = { next: deep };
    const deepContext = policyContext(variables({ token: { sub: 'acme-client', deep } }));
    assert.equal(evaluate('token.sub == "acme-client"', 'require', deepContext).outcome, 'error');
    assert.equal(evaluate('has(token.deep)', 'deny', deepContext).outcome, 'error');
    // Rules that do not read the token are unaffected.
    assert.equal(evaluate('partner.id == "acme"', 'require', deepContext).outcome, 'pass');
  });
});
