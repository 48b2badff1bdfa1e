/**
 * Semantic checks of what decides access: routes that could never be satisfied, grants for
 * environments nobody serves, and CEL policy rules (compiled by the policy module at load).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { brief, issuesOf, loadText } from './helpers.ts';

/** Lines 1–16; routes follow from line 17. */
const HEAD = `version: 1
listeners:
  - { name: public, zone: public, port: 8080, hostnames: [localhost] }
  - { name: partner, zone: partner, port: 8443, hostnames: [api.partner.test] }
upstreams:
  - { id: backend, url: "http://127.0.0.1:9000" }
issuers:
  - { id: idp, issuer: "https://idp.test", jwks_uri: "https://idp.test/jwks", algorithms: [ES256] }
apis:
  - { id: orders, audience: "https://api.partner.test/orders" }
  - { id: legacy }
partners:
  - id: acme
    grants:
      - api: orders
routes:
`;

describe('routes', () => {
  it('accepts an authenticated route of an API with an audience, and an API-key route of an API without one', async (t) => {
    const text = `${HEAD}  - { id: orders, zone: partner, api: orders, methods: [GET], path: /orders, upstream: backend, scopes: [orders.read] }
  - { id: legacy, zone: partner, api: legacy, methods: [GET], path: /legacy, upstream: backend, credentials: [api_key] }
`;
    const result = await loadText(t, text);
    assert.ok(result.ok, JSON.stringify(!result.ok && result.issues));
  });

  it('requires an API on every authenticated route: grants are per API', async (t) => {
    const text = `${HEAD}  - { id: a, zone: partner, methods: [GET], path: /a, upstream: backend }
  - { id: b, zone: partner, methods: [GET], path: /b, upstream: backend, auth: required }
`;
    const issues = await issuesOf(t, text);
    assert.deepEqual(brief(issues), ['17:5 CONFIG_CONFLICT routes[0]', '18:80 CONFIG_CONFLICT routes[1].auth']);
    assert.equal(issues[0]!.message, 'a route with "auth: required" must name an "api": partners are granted APIs, so no grant could ever allow this route');
  });

  it('reports an API without audience once, naming every route that accepts tokens for it', async (t) => {
    const text = `${HEAD}  - { id: a, zone: partner, api: legacy, methods: [GET], path: /a, upstream: backend }
  - { id: b, zone: partner, api: legacy, methods: [GET], path: /b, upstream: backend, credentials: [api_key, jwt] }
  - { id: c, zone: partner, api: legacy, methods: [GET], path: /c, upstream: backend, credentials: [api_key] }
`;
    const issues = await issuesOf(t, text);
    assert.deepEqual(brief(issues), ['11:5 CONFIG_CONFLICT apis[1].audience']);
    assert.match(issues[0]!.message, /^api "legacy" has no "audience", but routes a, b accept tokens: a token must name the API it is meant for in "aud"/);
  });

  it('needs an API to name its introspection endpoint when several exist, and the name to exist', async (t) => {
    const endpoint = (id: string) =>
      `  - { id: ${id}, url: "https://as.test/${id}", client_id: gw, auth: { method: client_secret_basic, secret: s, insecure_shared_secret: "I understand a shared client secret is a long-lived credential" } }\n`;
    const withEndpoints = HEAD.replace('apis:\n', `introspection:\n${endpoint('as1')}${endpoint('as2')}apis:\n`);
    const ambiguous = await issuesOf(t, `${withEndpoints}  - { id: a, zone: partner, api: orders, methods: [GET], path: /a, upstream: backend, credentials: [introspection] }\n`);
    assert.deepEqual(brief(ambiguous).map((line) => line.replace(/^\d+:\d+ /, '')), ['CONFIG_CONFLICT apis[0]']);
    assert.match(ambiguous[0]!.message, /name the one that knows its tokens in "introspection"/);
    const dangling = await issuesOf(t, `${withEndpoints.replace('{ id: orders,', '{ id: orders, introspection: as9,')}  - { id: a, zone: partner, api: orders, methods: [GET], path: /a, upstream: backend, credentials: [introspection] }\n`);
    assert.deepEqual(brief(dangling).map((line) => line.replace(/^\d+:\d+ /, '')), ['CONFIG_DANGLING_REF apis[0].introspection']);
    const named = await loadText(t, `${withEndpoints.replace('{ id: orders,', '{ id: orders, introspection: as2,')}  - { id: a, zone: partner, api: orders, methods: [GET], path: /a, upstream: backend, credentials: [introspection] }\n`);
    assert.ok(named.ok, JSON.stringify(!named.ok && named.issues));
    assert.equal(named.ok && named.snapshot.apis.get('orders')!.introspection, 'as2');
  });

  it('reports a token type no issuer or endpoint could ever check', async (t) => {
    const noIssuers = HEAD.replace(/issuers:\n.*\n/, '');
    const text = `${noIssuers}  - { id: a, zone: partner, api: orders, methods: [GET], path: /a, upstream: backend }
  - { id: b, zone: partner, api: orders, methods: [GET], path: /b, upstream: backend, credentials: [api_key, jwt, introspection] }
`;
    const issues = await issuesOf(t, text);
    assert.deepEqual(brief(issues), ['15:5 CONFIG_CONFLICT routes[0]', '16:110 CONFIG_CONFLICT routes[1].credentials[1]', '16:115 CONFIG_CONFLICT routes[1].credentials[2]']);
    assert.equal(issues[0]!.message, 'the route accepts jwt tokens (the default of "credentials"), but no issuers are configured: every token would be refused');
    assert.equal(issues[2]!.message, 'the route accepts introspection tokens, but no introspection endpoints are configured: every token would be refused');
  });

  it('needs a header or a claim to read a purpose from', async (t) => {
    const text = `${HEAD}  - id: a
    zone: partner
    api: orders
    methods: [GET]
    path: /a
    upstream: backend
    purpose: { allowed: [fraud_check] }
`;
    const issues = await issuesOf(t, text);
    assert.deepEqual(brief(issues), ['23:5 CONFIG_INVALID_TYPE routes[0].purpose']);
    assert.match(issues[0]!.message, /"purpose" needs "header" or "claim"/);
  });

  it('refuses settings that would silently do nothing on an anonymous route, and only those', async (t) => {
    const text = `${HEAD}  - id: open
    zone: public
    api: orders
    methods: [GET]
    path: /open
    upstream: backend
    auth: none
    transaction_type: read
    credentials: [jwt]
    scopes: [orders.read]
    purpose: { header: x-purpose, allowed: [support] }
    policies:
      - { id: broken, require: "this is not CEL (" }
`;
    const issues = await issuesOf(t, text);
    // The rule inside is not compiled: the list itself is the mistake, reported once.
    assert.deepEqual(brief(issues), [
      '25:5 CONFIG_CONFLICT routes[0].credentials',
      '26:5 CONFIG_CONFLICT routes[0].scopes',
      '27:5 CONFIG_CONFLICT routes[0].purpose',
      '28:5 CONFIG_CONFLICT routes[0].policies',
    ]);
    assert.equal(issues[1]!.message, '"scopes" does nothing on a route with "auth: none": no credential is checked there, so nothing can be required of one');
  });
});

describe('grants', () => {
  const grants = (listenerEnv: string, grant: string) =>
    `${HEAD.replace('hostnames: [api.partner.test] }', `hostnames: [api.partner.test]${listenerEnv} }`).replace('      - api: orders\n', `      - ${grant}\n`)}  - { id: a, zone: partner, api: orders, methods: [GET], path: /a, upstream: backend }
`;

  it('accepts environments that a listener serves', async (t) => {
    assert.ok((await loadText(t, grants(', environment: sandbox', '{ api: orders, environments: [sandbox] }'))).ok);
    assert.ok((await loadText(t, grants('', '{ api: orders }'))).ok);
  });

  it('reports an environment no listener serves, listing those served', async (t) => {
    const issues = await issuesOf(t, grants(', environment: sandbox', '{ api: orders, environments: [sandbox, staging] }'));
    assert.deepEqual(brief(issues), ['15:48 CONFIG_DANGLING_REF partners[0].grants[0].environments[1]']);
    assert.equal(issues[0]!.message, 'no listener serves environment "staging", so this grant could never apply (served environments: production, sandbox)');
  });

  it('reports the default environment when no listener serves production', async (t) => {
    const text = grants(', environment: sandbox', '{ api: orders }').replace('hostnames: [localhost] }', 'hostnames: [localhost], environment: sandbox }');
    const issues = await issuesOf(t, text);
    assert.deepEqual(brief(issues), ['15:9 CONFIG_DANGLING_REF partners[0].grants[0].environments']);
    assert.match(issues[0]!.message, /^no listener serves environment "production" \(the default of "environments"\)/);
  });

  it('reports what the policy module refuses in a grant at its own path', async (t) => {
    const badZone = await issuesOf(t, grants('', '{ api: orders, constraints: { timezone: Mars/Olympus_Mons } }'));
    assert.deepEqual(brief(badZone), ['15:49 CONFIG_INVALID_VALUE partners[0].grants[0].constraints.timezone']);
    assert.match(badZone[0]!.message, /"Mars\/Olympus_Mons" is not an IANA time zone/);

    const badNetwork = await issuesOf(t, grants('', '{ api: orders, constraints: { source_networks: [10.0.0.0/8, 10.0.0.0/99] } }'));
    assert.deepEqual(brief(badNetwork), ['15:69 CONFIG_INVALID_VALUE partners[0].grants[0].constraints.source_networks[1]']);
  });
});

describe('policy rules', () => {
  const route = `  - { id: a, zone: partner, api: orders, methods: [GET], path: /a, upstream: backend }\n`;

  it('compiles every list: global, API, route and partner rules', async (t) => {
    const text = `${HEAD.replace('  - { id: orders, audience: "https://api.partner.test/orders" }', `  - id: orders
    audience: https://api.partner.test/orders
    policies:
      - { id: api-rule, require: "partner.tier == 'gold'" }`)
      .replace('      - api: orders\n', `      - api: orders
    policies:
      - { id: partner-rule, deny: "request.method == 'DELETE'" }
`)}  - id: a
    zone: partner
    api: orders
    methods: [GET]
    path: /a
    upstream: backend
    policies:
      - { id: route-rule, require: "route.sensitivity != 'restricted'" }
policies:
  - { id: global-rule, require: "credential.type != 'api_key'" }
`;
    const result = await loadText(t, text);
    assert.ok(result.ok, JSON.stringify(!result.ok && result.issues));
  });

  it('reports a rule that does not compile at its expression, with the compiler message', async (t) => {
    const text = `${HEAD}${route}policies:
  - { id: typo, require: "partner.tier == " }
  - { id: not-bool, deny: "partner.tier" }
  - { id: unknown-var, require: "nobody.knows == 1" }
`;
    const issues = await issuesOf(t, text);
    assert.deepEqual(brief(issues), ['19:26 CONFIG_INVALID_VALUE policies[0].require', '20:27 CONFIG_INVALID_VALUE policies[1].deny', '21:33 CONFIG_INVALID_VALUE policies[2].require']);
    assert.ok(issues.every((issue) => !issue.message.includes('\n')));
    assert.match(issues[1]!.message, /must be a bool/);
  });

  it('needs exactly one of require and deny', async (t) => {
    const text = `${HEAD}${route}policies:
  - { id: both, require: "true", deny: "false" }
  - { id: neither, reason: nothing }
`;
    const issues = await issuesOf(t, text);
    assert.deepEqual(brief(issues), ['19:40 CONFIG_CONFLICT policies[0].deny', '20:5 CONFIG_INVALID_TYPE policies[1]']);
    assert.equal(issues[0]!.message, '"require" and "deny" are both set: a rule is one or the other');
  });

  it('wants rule ids unique within a list, not across lists', async (t) => {
    const text = `${HEAD.replace('      - api: orders\n', '      - api: orders\n    policies:\n      - { id: r, require: "true" }\n')}${route}policies:
  - { id: r, require: "true" }
  - { id: r, deny: "false" }
`;
    const issues = await issuesOf(t, text);
    assert.deepEqual(brief(issues), ['22:11 CONFIG_DUPLICATE_ID policies[1].id']);
    assert.equal(issues[0]!.message, 'duplicate rule id "r": first defined at line 21');
  });
});
