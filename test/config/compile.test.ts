import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import { canonicalJson } from '../../src/config/config-hash.ts';
import { LISTENER_LIMIT_DEFAULTS } from '../../src/config/compile.ts';
import { loadConfig } from '../../src/config/load.ts';
import { INSECURE_ACKS } from '../../src/config/schema.ts';
import type { Snapshot } from '../../src/config/snapshot.ts';
import { VALID_CONFIG, tempDir, writeSelfSigned, writeText } from './helpers.ts';

async function compile(t: TestContext, text: string, dir?: string): Promise<Snapshot> {
  const file = await writeText(dir ?? (await tempDir(t)), 'gateway.yaml', text);
  const result = await loadConfig(file, { env: {} });
  assert.ok(result.ok, JSON.stringify(!result.ok && result.issues));
  return result.snapshot;
}

const WITH_TLS = VALID_CONFIG.replace('hostnames: [api.partner.test]', 'hostnames: [api.partner.test]\n    tls:\n      cert: server.crt\n      key: server.key\n    limits:\n      max_header_bytes: 8KiB\n      headers_timeout: 2s');

describe('compileSnapshot()', () => {
  it('fills in listener limit defaults and keeps explicit limits', async (t) => {
    const dir = await tempDir(t);
    await writeSelfSigned(dir, 'server');
    const snapshot = await compile(t, WITH_TLS, dir);
    const [publicListener, partnerListener] = snapshot.listeners;
    assert.deepEqual(publicListener!.limits, {
      maxHeaderBytes: 16384,
      maxHeaders: 100,
      maxBodyBytes: 1048576,
      headersTimeoutMs: 10000,
      requestTimeoutMs: 30000,
      keepAliveTimeoutMs: 5000,
    });
    assert.deepEqual(partnerListener!.limits, { ...LISTENER_LIMIT_DEFAULTS, maxHeaderBytes: 8192, headersTimeoutMs: 2000 });
  });

  it('reads listener TLS files into buffers, with absolute paths', async (t) => {
    const dir = await tempDir(t);
    const { cert, key } = await writeSelfSigned(dir, 'server');
    const tls = (await compile(t, WITH_TLS, dir)).listeners[1]!.tls!;
    assert.equal(tls.certPath, cert);
    assert.equal(tls.keyPath, key);
    assert.deepEqual(tls.cert, await readFile(cert));
    assert.deepEqual(tls.key, await readFile(key));
    assert.equal(tls.http2, true);
    assert.equal(tls.minVersion, 'TLSv1.2');
  });

  it('matches hosts exactly or by a one-label wildcard', async (t) => {
    const { listeners } = await compile(t, VALID_CONFIG);
    const servesHost = listeners[0]!.servesHost;
    assert.equal(servesHost('localhost'), true);
    assert.equal(servesHost('a.example.com'), true);
    assert.equal(servesHost('example.com'), false);
    assert.equal(servesHost('a.b.example.com'), false);
    assert.equal(servesHost('.example.com'), false);
    assert.equal(servesHost('api.partner.test'), false);
    assert.equal(listeners[1]!.servesHost('api.partner.test'), true);
  });

  it('splits the upstream URL into origin and base path', async (t) => {
    const snapshot = await compile(t, VALID_CONFIG);
    const upstream = snapshot.upstreams.get('backend')!;
    assert.equal(upstream.origin, 'http://127.0.0.1:9000');
    assert.equal(upstream.basePath, '/base');
    assert.deepEqual(
      { connections: upstream.connections, connect: upstream.connectTimeoutMs, headers: upstream.headersTimeoutMs, body: upstream.bodyTimeoutMs, keepAlive: upstream.keepAliveTimeoutMs, tls: upstream.tls },
      { connections: 128, connect: 2000, headers: 15000, body: 30000, keepAlive: 4000, tls: null },
    );
    const bare = await compile(t, VALID_CONFIG.replace('http://127.0.0.1:9000/base/', 'http://127.0.0.1:9000'));
    assert.equal(bare.upstreams.get('backend')!.basePath, '');
  });

  it('builds one router per zone: a route is only matched in its own zone', async (t) => {
    const snapshot = await compile(t, VALID_CONFIG);
    const partner = snapshot.routers.get('partner')!.match('api.partner.test', 'GET', '/orders/42');
    assert.equal(partner.kind, 'matched');
    assert.equal(partner.kind === 'matched' && partner.route, snapshot.routes[1]);
    assert.deepEqual(partner.kind === 'matched' && partner.params, { id: '42' });
    assert.equal(snapshot.routers.get('public')!.match('localhost', 'GET', '/orders/42').kind, 'not_found');
    assert.equal(snapshot.routers.get('internal')!.match('localhost', 'GET', '/health').kind, 'not_found');
    const route = snapshot.routes[1]!;
    assert.equal(route.upstream, snapshot.upstreams.get('backend'));
    assert.deepEqual({ hosts: route.hosts, apiId: route.apiId, auth: route.auth, maxBodyBytes: route.maxBodyBytes }, { hosts: null, apiId: 'orders', auth: 'required', maxBodyBytes: null });
  });

  it('resolves data_dir and decision_log against the config folder; stdout stays stdout', async (t) => {
    const dir = await tempDir(t);
    const defaults = await compile(t, VALID_CONFIG, dir);
    assert.equal(defaults.dataDir, join(dir, '.portcullis'));
    assert.equal(defaults.decisionLog, 'stdout');
    assert.equal(defaults.baseDir, dir);
    assert.equal(defaults.sourcePath, join(dir, 'gateway.yaml'));
    const custom = await compile(t, `${VALID_CONFIG}gateway:\n  data_dir: state\n  decision_log: logs/decisions.jsonl\n  drain_timeout: 5s\n`, dir);
    assert.equal(custom.dataDir, join(dir, 'state'));
    assert.equal(custom.decisionLog, join(dir, 'logs/decisions.jsonl'));
    assert.equal(custom.drainTimeoutMs, 5000);
    assert.deepEqual(custom.ops, { address: '127.0.0.1', port: 9901 });
  });

  it('warns about every acknowledged insecure option, and turns verification off', async (t) => {
    const text = VALID_CONFIG.replace('url: http://127.0.0.1:9000/base/', `url: https://127.0.0.1:9000\n    tls:\n      insecure_skip_verify: "${INSECURE_ACKS.upstreamSkipVerify}"`);
    const snapshot = await compile(t, text);
    assert.equal(snapshot.warnings.length, 1);
    assert.match(snapshot.warnings[0]!, /gateway\.yaml:17:29 upstreams\[0\]\.tls\.insecure_skip_verify: the certificate of upstream "backend" is not verified/);
    assert.equal(snapshot.upstreams.get('backend')!.tls!.rejectUnauthorized, false);
    const verified = await compile(t, VALID_CONFIG.replace('http://127.0.0.1:9000/base/', 'https://127.0.0.1:9000'));
    assert.deepEqual(verified.warnings, []);
    assert.deepEqual(verified.upstreams.get('backend')!.tls, { ca: null, cert: null, key: null, servername: null, rejectUnauthorized: true });
  });

  it('deep-freezes the snapshot and the configuration', async (t) => {
    const snapshot = await compile(t, VALID_CONFIG);
    assert.ok(Object.isFrozen(snapshot));
    assert.ok(Object.isFrozen(snapshot.config));
    assert.ok(Object.isFrozen(snapshot.config.listeners[0]!.hostnames));
    assert.ok(Object.isFrozen(snapshot.routes[0]));
    assert.ok(Object.isFrozen(snapshot.listeners[0]!.limits));
    assert.throws(() => {
      (snapshot.routes as unknown as unknown[]).push({});
    }, TypeError);
    assert.throws(() => {
      (snapshot.upstreams.get('backend') as { origin: string }).origin = 'http://evil.test';
    }, TypeError);
    assert.throws(() => (snapshot.upstreams as Map<string, unknown>).set('x', {}), TypeError);
    assert.throws(() => (snapshot.routers as Map<string, unknown>).delete('public'), TypeError);
    assert.equal(snapshot.upstreams.size, 1);
  });
});

describe('configuration hash', () => {
  it('is the same for the same rules, whatever the key order or formatting', async (t) => {
    const a = await compile(t, VALID_CONFIG);
    const reordered = VALID_CONFIG.replace('  - id: backend\n    url: http://127.0.0.1:9000/base/', '  - url: "http://127.0.0.1:9000/base/"   # same\n    id: backend');
    const b = await compile(t, reordered);
    assert.match(a.hash, /^[0-9a-f]{64}$/);
    assert.equal(a.hash, b.hash);
  });

  it('changes when a rule changes, including a default made explicit differently', async (t) => {
    const a = await compile(t, VALID_CONFIG);
    const b = await compile(t, VALID_CONFIG.replace('methods: [GET, POST]', 'methods: [GET]'));
    assert.notEqual(a.hash, b.hash);
    const explicitDefault = await compile(t, VALID_CONFIG.replace('path: /orders/{id}\n', 'path: /orders/{id}\n    auth: required\n'));
    assert.equal(a.hash, explicitDefault.hash);
  });

  it('changes when a referenced file is rotated, with the YAML untouched', async (t) => {
    const dir = await tempDir(t);
    await writeSelfSigned(dir, 'server');
    const before = await compile(t, WITH_TLS, dir);
    await writeSelfSigned(dir, 'server');
    const after = await compile(t, WITH_TLS, dir);
    assert.notEqual(before.hash, after.hash);
  });

  it('canonical JSON sorts keys at every level', () => {
    assert.equal(canonicalJson({ b: [{ d: 1, c: 2 }], a: 'x', u: undefined }), '{"a":"x","b":[{"c":2,"d":1}]}');
  });
});

describe('compiled APIs and routes', () => {
  const ACCESS = `version: 1
listeners:
  - { name: public, zone: public, port: 8080, hostnames: [localhost] }
  - { name: partner, zone: partner, port: 8443, hostnames: [api.partner.test], environment: sandbox }
upstreams:
  - { id: backend, url: "http://127.0.0.1:9000" }
issuers:
  - { id: idp, issuer: "https://idp.test", jwks_uri: "https://idp.test/jwks", algorithms: [ES256] }
apis:
  - id: orders
    name: Orders API
    audience: https://api.test/orders
    sensitivity: confidential
    policies:
      - { id: api-rule, require: "partner.tier != 'blocked'" }
  - { id: catalog }
routes:
  - id: list
    zone: partner
    api: orders
    methods: [GET]
    path: /orders
    upstream: backend
    credentials: [jwt, api_key]
    scopes: [orders.read, orders.list]
    transaction_type: read
    purpose: { header: x-purpose, claim: purpose, allowed: [support, fraud_check] }
    policies:
      - { id: route-rule, deny: "request.method == 'DELETE'", reason: no_deletes }
  - id: pay
    zone: partner
    api: orders
    methods: [POST]
    path: /orders/{id}/pay
    upstream: backend
    sensitivity: restricted
  - id: browse
    zone: public
    api: catalog
    methods: [GET]
    path: /catalog
    upstream: backend
    auth: none
  - id: health
    zone: public
    methods: [GET]
    path: /health
    upstream: backend
    auth: none
policies:
  - { id: global-rule, require: "partner.status == 'active'" }
`;

  it('compiles each API once and gives routes the same object', async (t) => {
    const snapshot = await compile(t, ACCESS);
    const orders = snapshot.apis.get('orders')!;
    assert.deepEqual(
      { id: orders.id, name: orders.name, audience: orders.audience, sensitivity: orders.sensitivity, rules: orders.policies.map((rule) => rule.scope) },
      { id: 'orders', name: 'Orders API', audience: 'https://api.test/orders', sensitivity: 'confidential', rules: ['apis[orders]'] },
    );
    assert.deepEqual(snapshot.apis.get('catalog'), { id: 'catalog', name: null, audience: null, sensitivity: 'internal', policies: [], introspection: null, requireSenderConstrained: false, tokenLifetimeMs: null });
    const [list, pay, browse, health] = snapshot.routes;
    assert.equal(list!.api, orders);
    assert.equal(pay!.api, orders);
    assert.equal(browse!.api, snapshot.apis.get('catalog'));
    assert.equal(health!.api, null);
  });

  it('fills what a route requires, with its defaults', async (t) => {
    const [list, pay] = (await compile(t, ACCESS)).routes;
    assert.deepEqual(list!.credentials, ['jwt', 'api_key']);
    assert.deepEqual(list!.scopes, ['orders.read', 'orders.list']);
    assert.equal(list!.transactionType, 'read');
    assert.equal(list!.purpose!.header, 'x-purpose');
    assert.equal(list!.purpose!.claim, 'purpose');
    assert.ok(list!.purpose!.allowed instanceof Set);
    assert.deepEqual([...list!.purpose!.allowed], ['support', 'fraud_check']);
    assert.deepEqual(
      { credentials: pay!.credentials, scopes: pay!.scopes, transactionType: pay!.transactionType, purpose: pay!.purpose },
      { credentials: ['jwt'], scopes: [], transactionType: null, purpose: null },
    );
  });

  it('takes sensitivity from the route, else its API, else internal', async (t) => {
    const [list, pay, browse, health] = (await compile(t, ACCESS)).routes;
    assert.deepEqual([list!.sensitivity, pay!.sensitivity, browse!.sensitivity, health!.sensitivity], ['confidential', 'restricted', 'internal', 'internal']);
  });

  it('orders rules global, API, route, and shares each compiled rule between routes', async (t) => {
    const snapshot = await compile(t, ACCESS);
    const [list, pay] = snapshot.routes;
    assert.deepEqual(
      list!.policies.map((rule) => `${rule.scope}/${rule.id}/${rule.kind}/${rule.reason}`),
      ['policies/global-rule/require/global-rule', 'apis[orders]/api-rule/require/api-rule', 'routes[list]/route-rule/deny/no_deletes'],
    );
    assert.deepEqual(pay!.policies.map((rule) => rule.id), ['global-rule', 'api-rule']);
    assert.equal(list!.policies[0], pay!.policies[0]);
    assert.equal(list!.policies[1], snapshot.apis.get('orders')!.policies[0]);
  });

  it('gives an anonymous route no credential types and no rules', async (t) => {
    const [, , browse, health] = (await compile(t, ACCESS)).routes;
    for (const route of [browse!, health!]) {
      assert.deepEqual({ credentials: route.credentials, policies: route.policies, scopes: route.scopes }, { credentials: [], policies: [], scopes: [] });
    }
  });

  it('compiles listener environments, production by default', async (t) => {
    const snapshot = await compile(t, ACCESS);
    assert.deepEqual(snapshot.listeners.map((listener) => listener.environment), ['production', 'sandbox']);
  });
});
