// GET /metrics on the ops listener of a real gateway: after allowed and refused requests, a token
// verified then served from the cache, a dead upstream, a JWKS fetched from a live issuer and
// reloads good and bad, every series says what happened — and nothing names a partner's
// credential, subject or token.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { request } from 'undici';
import { createCa, issueServerCertificate } from '../../src/pki/dev-ca.ts';
import { startHarness } from '../helpers/harness.ts';
import type { Harness } from '../helpers/harness.ts';
import { accessToken, generateTestKey, jwks } from '../helpers/tokens.ts';
import type { TestKey } from '../helpers/tokens.ts';
import { parseExposition, sumOf, valueOf } from './scrape.ts';
import { rawRequest } from '../helpers/raw-http.ts';
import type { Sample } from './scrape.ts';

const ISS = 'https://idp.example.test';
const AUD = 'https://api.example.test/orders';
const DAY_MS = 86_400_000;
const PACKAGE_VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

let h: Harness;
let key: TestKey;
let jwksServer: ReturnType<typeof createServer>;
let jwksUrl: string;
/** Whole seconds: X.509 times have no finer precision. */
let certificateNotBefore: Date;

const config = (extraRoute = '') => `
version: 1
listeners:
  - name: public
    zone: public
    port: 0
    hostnames: [localhost]
  - name: partner
    zone: partner
    port: 0
    hostnames: [api.example.test]
  - name: secure
    zone: public
    port: 0
    hostnames: [secure.example.test]
    tls:
      cert: {{DIR}}/server.crt
      key: {{DIR}}/server.key
upstreams:
  - id: sample
    url: {{UPSTREAM}}
  - id: dead
    url: http://127.0.0.1:1
issuers:
  - id: idp
    issuer: ${ISS}
    jwks_uri: ${jwksUrl}
    algorithms: [ES256]
apis:
  - id: orders
    audience: ${AUD}
routes:
  - id: status
    zone: public
    methods: [GET]
    path: /status
    upstream: sample
    auth: none
  - id: slow
    zone: public
    methods: [GET]
    path: /slow/{ms}
    upstream: sample
    auth: none
  - id: dead
    zone: public
    methods: [GET]
    path: /dead
    upstream: dead
    auth: none
  - id: orders
    zone: partner
    methods: [GET]
    path: /orders
    upstream: sample
    api: orders
    scopes: [orders:read]
${extraRoute}partners:
  - id: acme
    agreement: { id: AGR-ACME-1, expires: 2099-12-31 }
    credentials:
      - { id: acme-idp, type: jwt, issuer: idp, client_id: acme }
    grants:
      - { api: orders, scopes: [orders:read] }
`;

before(async () => {
  key = generateTestKey('ES256');
  jwksServer = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(jwks(key)));
  await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
  jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/jwks`;
  const ca = await createCa({ commonName: 'Metrics Test CA' });
  certificateNotBefore = new Date(Math.floor(Date.now() / 1000) * 1000);
  const server = await issueServerCertificate(ca, { dnsNames: ['secure.example.test'], notBefore: certificateNotBefore, validityDays: 10 });
  h = await startHarness(config(), { files: { 'server.crt': server.certPem, 'server.key': server.keyPem } });
});
after(async () => {
  await h?.close();
  jwksServer?.close();
});

async function scrape(): Promise<{ samples: Sample[]; text: string }> {
  const response = await request(`${h.gateway.addresses().ops}/metrics`);
  assert.equal(response.statusCode, 200);
  assert.equal(response.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
  const text = await response.body.text();
  return { samples: parseExposition(text), text };
}

async function call(listener: string, path: string, options: { host?: string; method?: string; token?: string } = {}): Promise<number> {
  const headers: Record<string, string> = { host: options.host ?? (listener === 'partner' ? 'api.example.test' : 'localhost') };
  if (options.token) headers['authorization'] = `Bearer ${options.token}`;
  const response = await request(`${h.url(listener)}${path}`, { method: options.method ?? 'GET', headers });
  await response.body.dump();
  return response.statusCode;
}

test('the ops listener serves Prometheus text: build info, process metrics, the start\'s load, the JWKS fetch, the TLS certificate\'s expiry', async () => {
  const { samples } = await scrape();
  assert.equal(valueOf(samples, 'portcullis_build_info', { version: PACKAGE_VERSION, node_version: process.version }), 1);
  assert.ok((valueOf(samples, 'portcullis_process_cpu_user_seconds_total') ?? -1) >= 0, 'collectDefaultMetrics with the portcullis_ prefix');
  assert.equal(valueOf(samples, 'portcullis_config_last_reload_successful'), 1);
  const loadedAt = valueOf(samples, 'portcullis_config_last_reload_success_timestamp_seconds')!;
  assert.ok(Math.abs(loadedAt - Date.now() / 1000) < 60, `the start counts as the last successful load (${loadedAt})`);
  assert.equal(valueOf(samples, 'portcullis_config_reloads_total', { result: 'success' }), 0, 'the start is not a reload');
  assert.equal(valueOf(samples, 'portcullis_config_reloads_total', { result: 'failure' }), 0);
  assert.equal(valueOf(samples, 'portcullis_jwks_fetches_total', { issuer: 'idp', result: 'success' }), 1);
  assert.equal(
    valueOf(samples, 'portcullis_tls_cert_not_after_timestamp_seconds', { listener: 'secure', name: 'secure.example.test' }),
    (certificateNotBefore.getTime() + 10 * DAY_MS) / 1000,
  );
  assert.equal(valueOf(samples, 'portcullis_tls_cert_not_after_timestamp_seconds', { listener: 'public' }), undefined, 'plain listeners have no certificate');

  const head = await request(`${h.gateway.addresses().ops}/metrics`, { method: 'HEAD' });
  assert.equal(head.statusCode, 200);
  assert.equal(await head.body.text(), '');
});

test('each request is observed once: duration by route/method/status class/protocol, decision by stage/result/reason, upstream time and errors, token cache', async () => {
  const recordsBefore = (await h.records()).length;
  const { samples: before } = await scrape();
  const token = accessToken(key, { iss: ISS, aud: AUD, clientId: 'acme', scope: 'orders:read' });

  assert.equal(await call('public', '/status'), 200);
  assert.equal(await call('public', '/status'), 200);
  assert.equal(await call('public', '/nowhere'), 404);
  assert.equal(await call('public', '/status', { host: 'evil.example.test' }), 421);
  assert.equal(await call('public', '/status', { method: 'PROPFIND' }), 405);
  assert.equal(await call('public', '/dead'), 502);
  assert.equal(await call('partner', '/orders'), 401);
  assert.equal(await call('partner', '/orders', { token }), 200);
  assert.equal(await call('partner', '/orders', { token }), 200);
  const records = await h.waitForRecords(recordsBefore + 9);
  assert.equal(records.length, recordsBefore + 9);

  const { samples, text } = await scrape();
  const count = (labels: Record<string, string>): number | undefined =>
    valueOf(samples, 'portcullis_http_server_request_duration_seconds_count', labels);
  assert.equal(count({ route: 'status', method: 'GET', status_class: '2xx', protocol: '1.1' }), 2);
  assert.equal(count({ route: 'none', method: 'GET', status_class: '4xx', protocol: '1.1' }), 2, '404 and 421 are unrouted');
  assert.equal(count({ route: 'none', method: 'other', status_class: '4xx', protocol: '1.1' }), 1, 'a method no route can have is `other`');
  assert.equal(count({ route: 'dead', method: 'GET', status_class: '5xx', protocol: '1.1' }), 1);
  assert.equal(count({ route: 'orders', method: 'GET', status_class: '4xx', protocol: '1.1' }), 1);
  assert.equal(count({ route: 'orders', method: 'GET', status_class: '2xx', protocol: '1.1' }), 2);
  assert.ok(!samples.some((sample) => sample.labels['method'] === 'PROPFIND'), 'the caller\'s method is never a label value');
  // Buckets are OTel's: the largest finite bound is 10 s.
  assert.equal(valueOf(samples, 'portcullis_http_server_request_duration_seconds_bucket', { route: 'status', method: 'GET', status_class: '2xx', le: '10' }), 2);

  const decisions = (labels: Record<string, string>): number => valueOf(samples, 'portcullis_decisions_total', labels) ?? 0;
  const decisionsBefore = (labels: Record<string, string>): number => valueOf(before, 'portcullis_decisions_total', labels) ?? 0;
  const delta = (labels: Record<string, string>): number => decisions(labels) - decisionsBefore(labels);
  assert.equal(delta({ stage: 'all', result: 'allow', reason: 'allowed' }), 4);
  assert.equal(delta({ stage: 'routing', result: 'deny', reason: 'route.not_found' }), 1);
  assert.equal(delta({ stage: 'routing', result: 'deny', reason: 'route.method_not_allowed' }), 1);
  assert.equal(delta({ stage: 'ingress', result: 'deny', reason: 'http.host_not_allowed' }), 1);
  assert.equal(delta({ stage: 'credential', result: 'deny', reason: 'token.missing' }), 1);
  // Let through by every deciding stage, failed at the upstream: the record's decision is allow.
  assert.equal(delta({ stage: 'proxy', result: 'allow', reason: 'upstream.unreachable' }), 1);
  assert.equal(sumOf(samples, 'portcullis_decisions_total') - sumOf(before, 'portcullis_decisions_total'), 9, 'one decision per record');

  assert.equal(valueOf(samples, 'portcullis_upstream_errors_total', { upstream: 'dead', reason: 'upstream.unreachable' }), 1);
  assert.equal(valueOf(samples, 'portcullis_upstream_request_duration_seconds_count', { upstream: 'dead', status_class: 'none' }), 1);
  assert.equal(valueOf(samples, 'portcullis_upstream_request_duration_seconds_count', { upstream: 'sample', status_class: '2xx' }), 4);

  assert.equal(valueOf(samples, 'portcullis_token_cache_lookups_total', { result: 'miss' }), 1, 'first sight of the token: verified');
  assert.equal(valueOf(samples, 'portcullis_token_cache_lookups_total', { result: 'hit' }), 1, 'second: from the cache');
  assert.equal(valueOf(samples, 'portcullis_http_server_requests_in_flight', { listener: 'public' }), 0);
  assert.equal(valueOf(samples, 'portcullis_http_server_requests_in_flight', { listener: 'partner' }), 0);

  // Requests refused by the HTTP parser itself are decisions too (client-error path).
  const publicPort = Number(new URL(h.url('public')).port);
  const oversized = await rawRequest(publicPort, `GET /status HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(17 * 1024)}\r\n\r\n`, { untilClose: true });
  assert.equal(oversized.statuses[0], 431);
  const { samples: afterParserRefusal } = await scrape();
  assert.equal(
    (valueOf(afterParserRefusal, 'portcullis_decisions_total', { stage: 'ingress', result: 'deny', reason: 'http.header_too_large' }) ?? 0) -
      (valueOf(samples, 'portcullis_decisions_total', { stage: 'ingress', result: 'deny', reason: 'http.header_too_large' }) ?? 0),
    1,
  );

  // Bounded labels (ECOSYSTEM.md §2.7): no partner, credential, client id, subject or token.
  for (const secret of ['acme', 'AGR-ACME-1', token, token.split('.')[1]!, key.kid]) {
    assert.ok(!text.includes(secret), `the scrape does not contain ${secret.slice(0, 20)}`);
  }
});

test('in flight: a request counts on its listener from its head to its end', async () => {
  const pending = call('public', '/slow/400');
  const seenBefore = h.upstream.seen.length;
  for (let i = 0; i < 100 && h.upstream.seen.length === seenBefore; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  const during = (await scrape()).samples;
  assert.equal(valueOf(during, 'portcullis_http_server_requests_in_flight', { listener: 'public' }), 1);
  assert.equal(valueOf(during, 'portcullis_http_server_requests_in_flight', { listener: 'partner' }), 0);
  assert.equal(await pending, 200);
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(valueOf((await scrape()).samples, 'portcullis_http_server_requests_in_flight', { listener: 'public' }), 0);
});

test('reloads: counted by result; a failed one sets last_reload_successful to 0 and keeps the last success time', async () => {
  const { samples: before } = await scrape();
  const startedAt = valueOf(before, 'portcullis_config_last_reload_success_timestamp_seconds')!;
  await new Promise((resolve) => setTimeout(resolve, 20));

  await h.writeConfig(config(`  - { id: fresh, zone: public, methods: [GET], path: /fresh, upstream: sample, auth: none }\n`));
  assert.equal((await h.gateway.reload()).ok, true);
  const afterGood = (await scrape()).samples;
  assert.equal(valueOf(afterGood, 'portcullis_config_reloads_total', { result: 'success' }), 1);
  assert.equal(valueOf(afterGood, 'portcullis_config_last_reload_successful'), 1);
  const reloadedAt = valueOf(afterGood, 'portcullis_config_last_reload_success_timestamp_seconds')!;
  assert.ok(reloadedAt > startedAt, `${reloadedAt} > ${startedAt}`);

  await h.writeConfig(config('  - { id: broken, zone: nowhere }\n'));
  assert.equal((await h.gateway.reload()).ok, false);
  const afterBad = (await scrape()).samples;
  assert.equal(valueOf(afterBad, 'portcullis_config_reloads_total', { result: 'success' }), 1);
  assert.equal(valueOf(afterBad, 'portcullis_config_reloads_total', { result: 'failure' }), 1);
  assert.equal(valueOf(afterBad, 'portcullis_config_last_reload_successful'), 0);
  assert.equal(valueOf(afterBad, 'portcullis_config_last_reload_success_timestamp_seconds'), reloadedAt);

  await h.writeConfig(config());
  assert.equal((await h.gateway.reload()).ok, true);
  const recovered = (await scrape()).samples;
  assert.equal(valueOf(recovered, 'portcullis_config_last_reload_successful'), 1);
  assert.equal(valueOf(recovered, 'portcullis_config_reloads_total', { result: 'success' }), 2);
});

test('audit: queue depth and records written follow the trail', async () => {
  const records = (await h.records()).length;
  let samples: Sample[] = [];
  for (let i = 0; i < 100; i++) {
    samples = (await scrape()).samples;
    if (valueOf(samples, 'portcullis_audit_queue_depth') === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.equal(valueOf(samples, 'portcullis_audit_queue_depth'), 0);
  assert.ok((valueOf(samples, 'portcullis_audit_records_written_total') ?? 0) >= records, 'every decision so far is written to the trail');
  assert.equal(valueOf(samples, 'portcullis_audit_write_failures_total'), 0);
});
