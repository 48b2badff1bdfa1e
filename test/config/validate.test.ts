import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import { loadConfig } from '../../src/config/load.ts';
import type { ConfigIssue } from '../../src/config/load.ts';
import { VALID_CONFIG, tempDir, writeSelfSigned, writeText } from './helpers.ts';

async function load(t: TestContext, text: string, dir?: string) {
  const file = await writeText(dir ?? (await tempDir(t)), 'gateway.yaml', text);
  return loadConfig(file, { env: {} });
}

async function issuesOf(t: TestContext, text: string, dir?: string): Promise<ConfigIssue[]> {
  const result = await load(t, text, dir);
  assert.equal(result.ok, false, 'expected the configuration to be refused');
  return result.ok ? [] : result.issues;
}

const brief = (issues: readonly ConfigIssue[]) => issues.map(({ line, col, code, path }) => `${line}:${col} ${code} ${path}`);

const LISTENER_TLS = (cert: string, key: string) =>
  VALID_CONFIG.replace('hostnames: [api.partner.test]', `hostnames: [api.partner.test]\n    tls:\n      cert: ${cert}\n      key: ${key}`);

describe('semantic validation', () => {
  it('accepts the valid base configuration', async (t) => {
    const result = await load(t, VALID_CONFIG);
    assert.ok(result.ok, JSON.stringify(!result.ok && result.issues));
  });

  describe('duplicates', () => {
    it('reports a duplicate id of every kind at the second occurrence, naming the first line', async (t) => {
      const text = `version: 1
listeners:
  - { name: web, zone: public, port: 8080, hostnames: [localhost] }
  - { name: web, zone: public, port: 8081, hostnames: [localhost] }
upstreams:
  - { id: up, url: "http://127.0.0.1:9000" }
  - { id: up, url: "http://127.0.0.1:9001" }
apis:
  - { id: orders }
  - { id: orders }
partners:
  - { id: acme, grants: [{ api: orders }, { api: orders, environments: [production] }] }
  - { id: acme }
routes:
  - { id: r, zone: public, methods: [GET], path: /a, upstream: up, auth: none }
  - { id: r, zone: public, methods: [GET], path: /b, upstream: up, auth: none }
`;
      const issues = await issuesOf(t, text);
      assert.deepEqual(brief(issues), [
        '4:13 CONFIG_DUPLICATE_ID listeners[1].name',
        '7:11 CONFIG_DUPLICATE_ID upstreams[1].id',
        '10:11 CONFIG_DUPLICATE_ID apis[1].id',
        '13:11 CONFIG_DUPLICATE_ID partners[1].id',
        '16:11 CONFIG_DUPLICATE_ID routes[1].id',
      ]);
      assert.equal(issues[0]!.message, 'duplicate listener name "web": first defined at line 3');
      assert.equal(issues[4]!.message, 'duplicate route id "r": first defined at line 15');
    });

    it('reports two listeners on the same address and port, including a wildcard address', async (t) => {
      const text = VALID_CONFIG.replace('port: 8443', 'port: 8080').replace('address: 127.0.0.1\n    port: 8080\n    hostnames: [api', 'address: 0.0.0.0\n    port: 8080\n    hostnames: [api');
      const issues = await issuesOf(t, text);
      assert.deepEqual(brief(issues), ['11:11 CONFIG_DUPLICATE_ID listeners[1].port']);
      assert.match(issues[0]!.message, /binds 0\.0\.0\.0:8080, which listener "public" \(line 6\) already binds as 127\.0\.0\.1:8080/);
    });

    it('does not treat port 0 (any free port) or different addresses as a clash', async (t) => {
      const ephemeral = VALID_CONFIG.replace('port: 8080', 'port: 0').replace('port: 8443', 'port: 0');
      assert.ok((await load(t, ephemeral)).ok);
      const apart = VALID_CONFIG.replace('port: 8443', 'port: 8080').replace('address: 127.0.0.1\n    port: 8080\n    hostnames: [api', 'address: 127.0.0.2\n    port: 8080\n    hostnames: [api');
      assert.ok((await load(t, apart)).ok);
    });

    it('reports a listener on the ops port', async (t) => {
      const issues = await issuesOf(t, VALID_CONFIG.replace('port: 8443', 'port: 9901'));
      assert.deepEqual(brief(issues), ['11:11 CONFIG_DUPLICATE_ID listeners[1].port']);
      assert.match(issues[0]!.message, /ops listener/);
    });
  });

  describe('references', () => {
    it('reports unknown upstream and api references, listing the known ids', async (t) => {
      const text = VALID_CONFIG.replace('upstream: backend\n    auth: none', 'upstream: backnd\n    auth: none').replace('api: orders\n    methods', 'api: ordres\n    methods').replace('- api: orders', '- api: billing');
      const issues = await issuesOf(t, text);
      assert.deepEqual(brief(issues), [
        '24:14 CONFIG_DANGLING_REF partners[0].grants[0].api',
        '30:15 CONFIG_DANGLING_REF routes[0].upstream',
        '34:10 CONFIG_DANGLING_REF routes[1].api',
      ]);
      assert.equal(issues[0]!.message, 'unknown api "billing" (defined apis: orders)');
      assert.equal(issues[1]!.message, 'unknown upstream "backnd" (defined upstreams: backend)');
    });

    it('does not call a reference unknown when the target list could not be read whole', async (t) => {
      // The upstream's id is invalid, so "backend" may be what was meant: only the id is reported.
      const issues = await issuesOf(t, VALID_CONFIG.replace('- id: backend', '- id: Backend!'));
      assert.deepEqual(brief(issues), ['14:9 CONFIG_INVALID_VALUE upstreams[0].id']);
    });

    it('reports a field that fails the schema once, not again as a dangling reference', async (t) => {
      const issues = await issuesOf(t, VALID_CONFIG.replace('upstream: backend\n    auth: none', 'upstream: "Bad Id"\n    auth: none'));
      assert.deepEqual(brief(issues), ['30:15 CONFIG_INVALID_VALUE routes[0].upstream']);
    });
  });

  describe('zones and hosts', () => {
    it('reports a route in a zone without listeners', async (t) => {
      const issues = await issuesOf(t, VALID_CONFIG.replace('zone: partner\n    api', 'zone: internal\n    api'));
      assert.deepEqual(brief(issues), ['33:11 CONFIG_DANGLING_REF routes[1].zone']);
      assert.match(issues[0]!.message, /no listener is in the "internal" zone/);
    });

    it('reports route hosts that no listener of the zone serves', async (t) => {
      const text = VALID_CONFIG.replace('path: /health', 'path: /health\n    hosts: [localhost, a.example.com, "*.example.com", a.b.example.com, api.partner.test]');
      const issues = await issuesOf(t, text);
      assert.deepEqual(brief(issues), ['30:56 CONFIG_DANGLING_REF routes[0].hosts[3]', '30:73 CONFIG_DANGLING_REF routes[0].hosts[4]']);
      assert.equal(issues[1]!.message, 'host "api.partner.test" is not served by any public-zone listener (served: localhost, *.example.com)');
    });

    it('accepts a wildcard route host that covers a served name', async (t) => {
      const text = VALID_CONFIG.replace('hostnames: [api.partner.test]', 'hostnames: [a.partner.test]').replace('path: /orders/{id}', 'path: /orders/{id}\n    hosts: ["*.partner.test"]');
      assert.ok((await load(t, text)).ok);
    });

    it('refuses auth: none outside the public zone (fail closed)', async (t) => {
      const issues = await issuesOf(t, VALID_CONFIG.replace('path: /orders/{id}', 'path: /orders/{id}\n    auth: none'));
      assert.deepEqual(brief(issues), ['37:11 CONFIG_CONFLICT routes[1].auth']);
      assert.match(issues[0]!.message, /only allowed in the public zone/);
    });

    it('requires an IP address to bind', async (t) => {
      const issues = await issuesOf(t, VALID_CONFIG.replace('address: 127.0.0.1\n    port: 8443', 'address: localhost\n    port: 8443'));
      assert.deepEqual(brief(issues), ['10:14 CONFIG_INVALID_VALUE listeners[1].address']);
    });
  });

  describe('route conflicts', () => {
    it('reports every ambiguous route at the later one, per zone', async (t) => {
      const text = `${VALID_CONFIG}  - { id: health2, zone: public, methods: [GET, HEAD], path: /health, upstream: backend, auth: none }
  - { id: orders-by-id, zone: partner, api: orders, methods: [POST], path: "/orders/{order}", upstream: backend }
  - { id: health-partner, zone: partner, api: orders, methods: [GET], path: /health, upstream: backend }
  - { id: health-other-host, zone: public, hosts: [a.example.com], methods: [GET], path: /health, upstream: backend, auth: none }
`;
      const issues = await issuesOf(t, text);
      assert.deepEqual(brief(issues), ['38:5 CONFIG_CONFLICT routes[2]', '39:5 CONFIG_CONFLICT routes[3]']);
      assert.match(issues[0]!.message, /routes "health" and "health2" are ambiguous: both match GET \/health on any host \(route "health" is at line 26\)/);
      assert.match(issues[1]!.message, /"orders" and "orders-by-id"/);
    });
  });

  describe('upstreams', () => {
    it('reports tls on an http upstream and a client cert without its key', async (t) => {
      const issues = await issuesOf(t, VALID_CONFIG.replace('url: http://127.0.0.1:9000/base/', 'url: http://127.0.0.1:9000\n    tls:\n      cert: client.crt'));
      assert.deepEqual(brief(issues), ['16:5 CONFIG_CONFLICT upstreams[0].tls', '17:13 CONFIG_CONFLICT upstreams[0].tls.cert']);
    });

    it('reports a key without its cert', async (t) => {
      const issues = await issuesOf(t, VALID_CONFIG.replace('url: http://127.0.0.1:9000/base/', 'url: https://127.0.0.1:9000\n    tls:\n      key: client.key'));
      assert.deepEqual(brief(issues), ['17:12 CONFIG_CONFLICT upstreams[0].tls.key']);
    });

    it('refuses credentials and a query in the upstream URL', async (t) => {
      const issues = await issuesOf(t, VALID_CONFIG.replace('url: http://127.0.0.1:9000/base/', 'url: "http://user:pw@127.0.0.1:9000/?a=1"'));
      assert.deepEqual(brief(issues), ['15:10 CONFIG_INVALID_VALUE upstreams[0].url', '15:10 CONFIG_INVALID_VALUE upstreams[0].url']);
    });

    it('checks upstream mTLS and CA files like listener files', async (t) => {
      const dir = await tempDir(t);
      await writeSelfSigned(dir, 'client');
      await writeSelfSigned(dir, 'ca');
      const text = VALID_CONFIG.replace('url: http://127.0.0.1:9000/base/', 'url: https://127.0.0.1:9000\n    tls:\n      ca: ca.crt\n      cert: client.crt\n      key: client.key');
      assert.ok((await load(t, text, dir)).ok);
      const broken = text.replace('ca: ca.crt', 'ca: client.key').replace('key: client.key', 'key: ca.key');
      const issues = await issuesOf(t, broken, dir);
      assert.deepEqual(brief(issues), ['17:11 CONFIG_INVALID_VALUE upstreams[0].tls.ca', '19:12 CONFIG_INVALID_VALUE upstreams[0].tls.key']);
    });
  });

  describe('listener TLS files', () => {
    it('accepts a matching certificate and key, resolved against the config folder', async (t) => {
      const dir = await tempDir(t);
      await mkdir(join(dir, 'tls'));
      await writeSelfSigned(join(dir, 'tls'), 'server', 'api.partner.test');
      // The test runs from the repository root: only resolution against the config folder finds them.
      const result = await load(t, LISTENER_TLS('tls/server.crt', 'tls/server.key'), dir);
      assert.ok(result.ok, JSON.stringify(!result.ok && result.issues));
    });

    it('reports an unreadable file with its resolved path', async (t) => {
      const dir = await tempDir(t);
      const issues = await issuesOf(t, LISTENER_TLS('missing.crt', 'missing.key'), dir);
      assert.deepEqual(brief(issues), ['14:13 CONFIG_FILE_UNREADABLE listeners[1].tls.cert', '15:12 CONFIG_FILE_UNREADABLE listeners[1].tls.key']);
      assert.equal(issues[0]!.message, `cannot read ${join(dir, 'missing.crt')}: no such file (ENOENT)`);
    });

    it('reports files that are not PEM without quoting their contents', async (t) => {
      const dir = await tempDir(t);
      await writeText(dir, 'server.crt', 'hunter2-not-a-certificate\n');
      await writeText(dir, 'server.key', 'hunter2-not-a-key\n');
      const issues = await issuesOf(t, LISTENER_TLS('server.crt', 'server.key'), dir);
      assert.deepEqual(brief(issues), ['14:13 CONFIG_INVALID_VALUE listeners[1].tls.cert', '15:12 CONFIG_INVALID_VALUE listeners[1].tls.key']);
      assert.match(issues[0]!.message, /no PEM certificate/);
      assert.match(issues[1]!.message, /no PEM private key/);
      assert.ok(issues.every((issue) => !issue.message.includes('hunter2')));
    });

    it('reports a key that does not match the certificate', async (t) => {
      const dir = await tempDir(t);
      await writeSelfSigned(dir, 'one');
      await writeSelfSigned(dir, 'two');
      const issues = await issuesOf(t, LISTENER_TLS('one.crt', 'two.key'), dir);
      assert.deepEqual(brief(issues), ['15:12 CONFIG_INVALID_VALUE listeners[1].tls.key']);
      assert.equal(issues[0]!.message, `the private key in ${join(dir, 'two.key')} does not match the certificate in ${join(dir, 'one.crt')}`);
    });

    it('reports a directory given as a file', async (t) => {
      const dir = await tempDir(t);
      await mkdir(join(dir, 'certs'));
      await writeSelfSigned(dir, 'one');
      const issues = await issuesOf(t, LISTENER_TLS('certs', 'one.key'), dir);
      assert.deepEqual(brief(issues), ['14:13 CONFIG_FILE_UNREADABLE listeners[1].tls.cert']);
      assert.match(issues[0]!.message, /not a regular file/);
    });
  });
});
