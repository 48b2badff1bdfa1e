// The authorization decision: every refusal reason, the order of the checks, several grants,
// rule order, the explanation, and prototype safety (SECURITY.md JWT-20).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { allowed, decide, explain, grant, partner, route, rule, refused, NOON_FRIDAY, type GrantInput } from './fixtures.ts';

const BERLIN_OFFICE_HOURS = { time_windows: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'] as ('mon' | 'tue' | 'wed' | 'thu' | 'fri')[], from: '08:00', to: '18:00' }], timezone: 'Europe/Berlin' };

describe('authorize: allowed', () => {
  test('an active partner with a current agreement and a covering grant', () => {
    const decision = allowed(decide());
    assert.equal(decision.grant.id, 'partner/acme/grant/orders#0');
    assert.deepEqual(decision.rules, []);
    assert.ok(decision.steps.every((step) => step.stage === 'authorization'));
    assert.equal(
      explain(decision),
      [
        'pass partner.status: partner acme is active',
        'pass partner.agreement: agreement MSA-17 is current (until 2030-01-01T00:00:00.000Z)',
        'pass grant: partner acme has a grant for API orders: partner/acme/grant/orders#0',
        'pass grant.environment: grant partner/acme/grant/orders#0 covers environment production',
        'pass scope.token: token carries orders:read',
        'pass scope.grant: grant partner/acme/grant/orders#0 includes orders:read',
        'skip purpose: route list-orders requires no declared purpose',
        'skip grant.constraints: grant partner/acme/grant/orders#0 has no constraints',
        'skip policy.rule: no policy rules apply to route list-orders and partner acme',
        'pass decision: allowed by grant partner/acme/grant/orders#0',
      ].join('\n'),
    );
  });

  test('a route that requires no scopes needs none from token or grant', () => {
    const decision = allowed(decide({ route: route({ scopes: [] }), partner: partner({ grants: [grant()] }), principal: { scopeList: [] } }));
    assert.match(explain(decision), /skip scope\.token: route list-orders requires no scopes/);
  });

  test('every constraint satisfied, each explained', () => {
    const owner = partner({
      grants: [grant({ scopes: ['orders:read'], constraints: { ...BERLIN_OFFICE_HOURS, transaction_types: ['read'], purposes: ['kyc'], source_networks: ['10.0.0.0/8'] } })],
    });
    const purposeRoute = route({ purpose: { header: 'x-purpose', claim: null, allowed: new Set(['kyc']) } });
    const text = explain(allowed(decide({ partner: owner, route: purposeRoute, request: { purpose: 'kyc' } })));
    assert.match(text, /pass purpose: purpose kyc is allowed on route list-orders/);
    assert.match(text, /pass grant\.time_window: time window mon-fri 08:00-18:00 Europe\/Berlin: 14:00 fri → inside/);
    assert.match(text, /pass grant\.transaction_type: transaction type read is allowed by grant partner\/acme\/grant\/orders#0/);
    assert.match(text, /pass grant\.purpose: purpose kyc is allowed by grant partner\/acme\/grant\/orders#0/);
    assert.match(text, /pass grant\.source_network: source address 10\.1\.2\.3 is inside 10\.0\.0\.0\/8/);
  });
});

describe('authorize: on the request path (no explanation)', () => {
  test('decides exactly as when explaining, writes no steps, and still details a refusal', () => {
    const ok = allowed(decide({ explain: false }));
    assert.deepEqual(ok.steps, []);
    assert.equal(ok.grant.id, allowed(decide()).grant.id);
    assert.deepEqual(ok.rules, allowed(decide()).rules);
    const scenario = { route: route({ scopes: ['orders:write'] }) };
    const quiet = refused(decide({ ...scenario, explain: false }), 'scope.insufficient');
    const explained = refused(decide(scenario), 'scope.insufficient');
    assert.deepEqual(quiet.steps, []);
    assert.equal(quiet.detail, explained.detail);
    assert.equal(quiet.decidedBy, explained.decidedBy);
  });
});

describe('authorize: partner status and agreement', () => {
  test('a suspended partner: partner.suspended, and nothing else is checked', () => {
    const decision = refused(decide({ partner: partner({ status: 'suspended' }) }), 'partner.suspended');
    assert.equal(decision.detail, 'partner acme is suspended');
    assert.equal(decision.decidedBy, null);
    assert.equal(decision.steps.length, 1);
  });

  test('an offboarded partner: partner.offboarded', () => {
    refused(decide({ partner: partner({ status: 'offboarded' }) }), 'partner.offboarded');
  });

  test('status is checked before the agreement', () => {
    refused(decide({ partner: partner({ status: 'suspended', agreement: null }) }), 'partner.suspended');
  });

  test('no agreement: partner.agreement_missing', () => {
    const decision = refused(decide({ partner: partner({ agreement: null }) }), 'partner.agreement_missing');
    assert.equal(decision.detail, 'partner acme has no agreement');
  });

  test('an agreement ends at its expiry instant', () => {
    const expiresAt = Date.parse('2025-06-06T12:00:00Z');
    const owner = partner({ agreement: { id: 'MSA-9', expiresAt } });
    allowed(decide({ partner: owner, request: { now: new Date(expiresAt - 1) } }));
    const decision = refused(decide({ partner: owner, request: { now: new Date(expiresAt) } }), 'partner.agreement_expired');
    assert.equal(decision.detail, 'agreement MSA-9 of partner acme ended at 2025-06-06T12:00:00.000Z');
  });

  test('an invalid clock reads as an expired agreement', () => {
    refused(decide({ request: { now: new Date(Number.NaN) } }), 'partner.agreement_expired');
  });
});

describe('authorize: grants', () => {
  test('no grant for the route\'s API: grant.missing', () => {
    const decision = refused(decide({ partner: partner({ grants: [grant({ api: 'invoices' })] }) }), 'grant.missing');
    assert.equal(decision.detail, 'partner acme has no grant for API orders');
  });

  test('a route of no API can be covered by no grant: grant.missing', () => {
    const decision = refused(decide({ route: route({ api: null, apiId: null }) }), 'grant.missing');
    assert.match(decision.detail, /route list-orders belongs to no API/);
  });

  test('a grant for another environment: grant.environment', () => {
    const owner = partner({ grants: [grant({ environments: ['sandbox'], scopes: ['orders:read'] })] });
    const decision = refused(decide({ partner: owner }), 'grant.environment');
    assert.equal(decision.detail, 'grant partner/acme/grant/orders#0 does not cover environment production (covers sandbox)');
    assert.equal(decision.decidedBy, 'partner/acme/grant/orders#0');
    allowed(decide({ partner: owner, request: { environment: 'sandbox' } }));
  });
});

describe('authorize: scopes (SECURITY.md AT-07)', () => {
  test('the token lacks a required scope: scope.insufficient with the required scopes', () => {
    const decision = refused(decide({ route: route({ scopes: ['orders:read', 'orders:write'] }) }), 'scope.insufficient');
    assert.deepEqual(decision.requiredScopes, ['orders:read', 'orders:write']);
    assert.equal(decision.detail, 'token lacks orders:write (route list-orders requires orders:read orders:write; the jwt credential carries orders:read)');
    assert.equal(decision.decidedBy, null);
  });

  test('exact match only: neither a longer nor a shorter scope, nor another case, satisfies', () => {
    refused(decide({ principal: { scopeList: ['orders:read:all'] } }), 'scope.insufficient');
    refused(decide({ route: route({ scopes: ['orders:read:all'] }), principal: { scopeList: ['orders:read'] } }), 'scope.insufficient');
    refused(decide({ principal: { scopeList: ['Orders:read'] } }), 'scope.insufficient');
  });

  test('a token scope the grant does not include: grant.scope_not_granted', () => {
    const owner = partner({ grants: [grant({ scopes: ['orders:read'] })] });
    const decision = refused(
      decide({ partner: owner, route: route({ scopes: ['orders:read', 'orders:write'] }), principal: { scopeList: ['orders:read', 'orders:write'] } }),
      'grant.scope_not_granted',
    );
    assert.equal(decision.detail, 'grant partner/acme/grant/orders#0 does not include orders:write (it grants orders:read)');
    assert.equal(decision.requiredScopes, undefined);
  });

  test('the token is checked before the grant', () => {
    const owner = partner({ grants: [grant({ scopes: [] })] });
    refused(decide({ partner: owner, principal: { scopeList: [] } }), 'scope.insufficient');
  });

  test('an API key carries no scopes', () => {
    const decision = refused(decide({ principal: { scopeList: [], credentialType: 'api_key', longLived: true } }), 'scope.insufficient');
    assert.match(decision.detail, /the api_key credential carries no scopes/);
  });
});

describe('authorize: purpose', () => {
  const purposeRoute = route({ purpose: { header: 'x-purpose', claim: 'purpose', allowed: new Set(['fraud_check', 'kyc']) } });

  test('none declared: purpose.missing', () => {
    const decision = refused(decide({ route: purposeRoute }), 'purpose.missing');
    assert.equal(decision.detail, 'no purpose declared (header x-purpose or claim purpose); route list-orders allows fraud_check, kyc');
  });

  test('one the route does not allow: purpose.not_allowed', () => {
    const decision = refused(decide({ route: purposeRoute, request: { purpose: 'marketing' } }), 'purpose.not_allowed');
    assert.equal(decision.detail, 'purpose marketing is not allowed on route list-orders (allows fraud_check, kyc)');
  });

  test('scopes are checked before the purpose', () => {
    refused(decide({ route: route({ ...purposeRoute, scopes: ['orders:admin'] }) }), 'scope.insufficient');
  });
});

describe('authorize: grant constraints', () => {
  const constrained = (constraints: GrantInput['constraints']) => partner({ grants: [grant({ scopes: ['orders:read'], constraints })] });

  test('outside the time window: grant.time_window, explained in the grant\'s zone', () => {
    const decision = refused(decide({ partner: constrained(BERLIN_OFFICE_HOURS), request: { now: new Date('2025-06-06T17:12:00Z') } }), 'grant.time_window');
    assert.equal(decision.detail, 'time window mon-fri 08:00-18:00 Europe/Berlin: 19:12 fri → outside');
    assert.equal(decision.decidedBy, 'partner/acme/grant/orders#0');
  });

  test('a transaction type the grant does not allow: grant.transaction_type', () => {
    const decision = refused(decide({ partner: constrained({ transaction_types: ['read'] }), route: route({ transactionType: 'write' }) }), 'grant.transaction_type');
    assert.equal(decision.detail, 'transaction type write is not allowed by grant partner/acme/grant/orders#0 (allows read)');
  });

  test('a route without a transaction type fails a grant that restricts them', () => {
    const decision = refused(decide({ partner: constrained({ transaction_types: ['read'] }), route: route({ transactionType: null }) }), 'grant.transaction_type');
    assert.match(decision.detail, /route list-orders declares no transaction type/);
  });

  test('a purpose the grant does not allow, or none: grant.purpose', () => {
    const owner = constrained({ purposes: ['kyc'] });
    assert.equal(refused(decide({ partner: owner, request: { purpose: 'fraud_check' } }), 'grant.purpose').detail, 'purpose fraud_check is not allowed by grant partner/acme/grant/orders#0 (allows kyc)');
    assert.equal(refused(decide({ partner: owner }), 'grant.purpose').detail, 'no purpose declared; grant partner/acme/grant/orders#0 allows only kyc');
    allowed(decide({ partner: owner, request: { purpose: 'kyc' } }));
  });

  test('a source address outside the grant\'s networks: grant.source_network', () => {
    const owner = constrained({ source_networks: ['10.0.0.0/8', '2001:db8::/32'] });
    const decision = refused(decide({ partner: owner, request: { sourceIp: '203.0.113.9' } }), 'grant.source_network');
    assert.equal(decision.detail, 'source address 203.0.113.9 is outside 10.0.0.0/8, 2001:db8::/32 (grant partner/acme/grant/orders#0)');
    allowed(decide({ partner: owner, request: { sourceIp: '::ffff:10.9.8.7' } }));
    allowed(decide({ partner: owner, request: { sourceIp: '2001:db8::7' } }));
  });

  test('constraints are checked in order: time window, transaction type, purpose, source network', () => {
    const all = { ...BERLIN_OFFICE_HOURS, transaction_types: ['read'], purposes: ['kyc'], source_networks: ['192.0.2.0/24'] };
    const evening = new Date('2025-06-06T17:12:00Z');
    refused(decide({ partner: constrained(all), route: route({ transactionType: 'write' }), request: { now: evening } }), 'grant.time_window');
    refused(decide({ partner: constrained(all), route: route({ transactionType: 'write' }) }), 'grant.transaction_type');
    refused(decide({ partner: constrained(all) }), 'grant.purpose');
    refused(decide({ partner: constrained(all), request: { purpose: 'kyc' } }), 'grant.source_network');
    allowed(decide({ partner: constrained(all), request: { purpose: 'kyc', sourceIp: '192.0.2.1' } }));
  });

  test('the route purpose is checked before the grant constraints', () => {
    const purposeRoute = route({ purpose: { header: 'x-purpose', claim: null, allowed: new Set(['kyc']) } });
    refused(decide({ partner: constrained(BERLIN_OFFICE_HOURS), route: purposeRoute, request: { now: new Date('2025-06-07T12:00:00Z') } }), 'purpose.missing');
  });
});

describe('authorize: several grants for one API', () => {
  const sandbox = grant({ environments: ['sandbox'], scopes: ['orders:read'] }, 'acme', 0);
  const officeHours = grant({ scopes: ['orders:read'], constraints: BERLIN_OFFICE_HOURS }, 'acme', 1);
  const weekend = grant({ scopes: ['orders:read'], constraints: { time_windows: [{ days: ['sat', 'sun'], from: '00:00', to: '00:00' }] } }, 'acme', 2);

  test('allowed when any grant passes; the decision names that grant', () => {
    const decision = allowed(decide({ partner: partner({ grants: [sandbox, officeHours] }) }));
    assert.equal(decision.grant.id, 'partner/acme/grant/orders#1');
    const text = explain(decision);
    assert.match(text, /fail grant\.environment: grant partner\/acme\/grant\/orders#0 does not cover environment production/);
    assert.match(text, /pass grant\.environment: grant partner\/acme\/grant\/orders#1 covers environment production/);
  });

  test('when none passes, the first grant\'s failure is reported', () => {
    const evening = new Date('2025-06-06T17:12:00Z');
    const decision = refused(decide({ partner: partner({ grants: [sandbox, officeHours] }), request: { now: evening } }), 'grant.environment');
    assert.equal(decision.decidedBy, 'partner/acme/grant/orders#0');
    // The second grant was tried too, and the explanation says why it failed.
    assert.match(explain(decision), /fail grant\.time_window: time window mon-fri 08:00-18:00 Europe\/Berlin: 19:12 fri → outside/);
    const reversed = refused(decide({ partner: partner({ grants: [officeHours, weekend] }), request: { now: evening } }), 'grant.time_window');
    assert.equal(reversed.decidedBy, 'partner/acme/grant/orders#1');
  });

  test('the grant-independent checks are explained once', () => {
    const decision = allowed(decide({ partner: partner({ grants: [officeHours, weekend] }), request: { now: new Date('2025-06-07T12:00:00Z') } }));
    assert.equal(decision.grant.id, 'partner/acme/grant/orders#2');
    assert.equal(decision.steps.filter((step) => step.check === 'scope.token').length, 1);
    assert.equal(decision.steps.filter((step) => step.check === 'grant.environment').length, 2);
  });
});

describe('authorize: policy rules', () => {
  test('a deny rule that matches: policy.denied, decided by the rule, detail policy.<reason>', () => {
    const noWrites = rule({ id: 'no-weekend-writes', deny: 'request.method == "GET"', reason: 'weekend_writes' });
    const decision = refused(decide({ route: route({ policies: [noWrites] }) }), 'policy.denied');
    assert.equal(decision.decidedBy, 'no-weekend-writes');
    assert.equal(decision.detail, 'policy.weekend_writes');
    assert.equal(decision.steps.at(-1)!.detail, 'rule no-weekend-writes (deny, policies): true → deny (policy.weekend_writes)');
  });

  test('a require rule that is false denies', () => {
    const premium = rule({ id: 'premium-only', require: 'partner.tier == "premium"' }, 'apis[orders]');
    const decision = refused(decide({ route: route({ policies: [premium] }) }), 'policy.denied');
    assert.equal(decision.detail, 'policy.premium-only');
    allowed(decide({ route: route({ policies: [premium] }), partner: partner({ tier: 'premium' }) }));
  });

  test('an evaluation error denies, for a require and for a deny rule', () => {
    for (const kind of ['require', 'deny'] as const) {
      const broken = rule({ id: `broken-${kind}`, [kind]: 'token.department == "sales"' });
      const decision = refused(decide({ route: route({ policies: [broken] }) }), 'policy.denied');
      assert.equal(decision.decidedBy, `broken-${kind}`);
      assert.match(decision.detail, /^policy\.broken-\w+ \(evaluation error: No such key: department/);
      assert.match(decision.steps.at(-1)!.detail, /evaluation error: No such key: department .*→ deny/);
    }
  });

  test('route rules run before the partner\'s; the first rule that denies decides', () => {
    const routeRule = rule({ id: 'route-rule', deny: 'request.method == "GET"' }, 'routes[list-orders]');
    const partnerRule = rule({ id: 'partner-rule', deny: 'true' }, 'partners[acme]');
    const decision = refused(decide({ route: route({ policies: [routeRule] }), partner: partner({ policies: [partnerRule] }) }), 'policy.denied');
    assert.equal(decision.decidedBy, 'route-rule');
    assert.equal(decision.steps.filter((step) => step.check === 'policy.rule').length, 1);

    const passing = rule({ id: 'route-ok', require: 'true' }, 'routes[list-orders]');
    const second = refused(decide({ route: route({ policies: [passing, routeRule] }), partner: partner({ policies: [partnerRule] }) }), 'policy.denied');
    assert.equal(second.decidedBy, 'route-rule');
    const third = refused(decide({ route: route({ policies: [passing] }), partner: partner({ policies: [partnerRule] }) }), 'policy.denied');
    assert.equal(third.decidedBy, 'partner-rule');
  });

  test('rules run only after a grant passed', () => {
    const denyAll = rule({ id: 'deny-all', deny: 'true' });
    refused(decide({ route: route({ policies: [denyAll] }), principal: { scopeList: [] } }), 'scope.insufficient');
  });

  test('all rules pass: their ids are on the decision, in order', () => {
    const rules = [rule({ id: 'a', require: 'true' }), rule({ id: 'b', deny: 'false' })];
    const decision = allowed(decide({ route: route({ policies: rules }), partner: partner({ policies: [rule({ id: 'c', require: 'partner.id == "acme"' })] }) }));
    assert.deepEqual(decision.rules, ['a', 'b', 'c']);
    assert.equal(decision.steps.at(-1)!.detail, 'allowed by grant partner/acme/grant/orders#0 and 3 policy rules');
  });

  test('rules see the request: path params, time, purpose, environment', () => {
    const ownOrders = rule({ id: 'own', require: 'request.params.id == "42" && request.environment == "production" && request.time == timestamp("2025-06-06T12:00:00Z")' });
    allowed(decide({ route: route({ policies: [ownOrders] }) }));
    refused(decide({ route: route({ policies: [ownOrders] }), request: { params: { id: '43' } } }), 'policy.denied');
    const purposeRule = rule({ id: 'purpose', require: 'request.purpose == ""' });
    allowed(decide({ route: route({ policies: [purposeRule] }) }));
    assert.equal(NOON_FRIDAY.toISOString(), '2025-06-06T12:00:00.000Z');
  });

  test('request.scopes holds only scopes the grant includes: an ungranted token scope gains nothing', () => {
    const adminOnly = rule({ id: 'admin', require: '"orders:admin" in request.scopes' });
    const owner = partner({ grants: [grant({ scopes: ['orders:read'] })] });
    refused(decide({ partner: owner, route: route({ policies: [adminOnly] }), principal: { scopeList: ['orders:read', 'orders:admin'] } }), 'policy.denied');
    const granted = partner({ grants: [grant({ scopes: ['orders:read', 'orders:admin'] })] });
    allowed(decide({ partner: granted, route: route({ policies: [adminOnly] }), principal: { scopeList: ['orders:read', 'orders:admin'] } }));
  });
});

describe('authorize: prototype safety (SECURITY.md JWT-20)', () => {
  for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
    test(`a scope named ${name} never satisfies, even when token and grant both carry it`, () => {
      const owner = partner({ grants: [grant({ scopes: [name] })] });
      refused(decide({ partner: owner, route: route({ scopes: [name] }), principal: { scopeList: [name] } }), 'scope.insufficient');
    });
  }

  test('a route scope named like a prototype member is not found on an empty scope set', () => {
    refused(decide({ route: route({ scopes: ['toString'] }), principal: { scopeList: [] } }), 'scope.insufficient');
  });

  test('a token whose claims are named like prototype members satisfies no rule through them', () => {
    const claims = JSON.parse('{"__proto__":{"admin":true},"constructor":"admin","toString":"admin","sub":"acme-client"}') as Record<string, unknown>;
    const adminRule = rule({ id: 'admin', require: 'has(token.constructor) || has(token.toString) || has(token.__proto__)' });
    refused(decide({ route: route({ policies: [adminRule] }), principal: { claims } }), 'policy.denied');
    allowed(decide({ route: route({ policies: [rule({ id: 'sub', require: 'token.sub == "acme-client"' })] }), principal: { claims } }));
  });

  test('a partner attribute named constructor is not visible to rules', () => {
    const owner = partner({ attributes: JSON.parse('{"constructor":"gold","region":"eu"}') as Record<string, string> });
    refused(decide({ partner: owner, route: route({ policies: [rule({ id: 'x', require: 'has(partner.attributes.constructor)' })] }) }), 'policy.denied');
    allowed(decide({ partner: owner, route: route({ policies: [rule({ id: 'y', require: 'partner.attributes.region == "eu"' })] }) }));
  });
});
