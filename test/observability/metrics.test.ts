// The one list of metrics against the Prometheus naming rules (STYLE.md item 14, ECOSYSTEM.md
// §4.3), the closed label sets of the request metrics, and the diagnostics channels fed by the
// real token cache and the real key set.
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HTTP_DURATION_BUCKETS, METRICS, METRIC_PREFIX, createMetrics } from '../../src/observability/metrics.ts';
import type { GatewayMetrics, MetricDefinition } from '../../src/observability/metrics.ts';
import { STAGE_OF_REASON, methodLabel, protocolLabel, stageOfReason, statusClass } from '../../src/observability/request-labels.ts';
import { jwksFetchChannel, tokenCacheLookupChannel } from '../../src/observability/channels.ts';
import { REASONS } from '../../src/errors.ts';
import type { Reason } from '../../src/errors.ts';
import type { CompiledIssuer, Snapshot } from '../../src/config/snapshot.ts';
import type { SigningAlgorithm } from '../../src/config/schema.ts';
import { VerifiedTokenCache } from '../../src/authn/jwt/cache.ts';
import { createKeySet } from '../../src/authn/jwks/key-set.ts';
import { setLogListener } from '../../src/log.ts';
import { jwksOf, signingKey, startIssuerServer } from '../authn/jwks/issuer-server.ts';
import { parseExposition, valueOf } from './scrape.ts';

/** Label names that would put a caller's identity or secret into a time series. */
const FORBIDDEN_LABEL = /credential|subject|token|user|(^|_)(sub|client|client_id|jti|kid|key|ip|address|email)($|_)/;
const MAX_LABELS = 4;

function violations(name: string, type: string, labels: readonly string[]): string[] {
  const problems: string[] = [];
  if (!name.startsWith(METRIC_PREFIX)) problems.push('no portcullis_ prefix');
  if (!/^[a-z][a-z0-9_]*$/.test(name)) problems.push('not snake_case');
  if (name.endsWith('_total') !== (type === 'counter')) problems.push('_total is for counters, and every counter ends in _total');
  if (/_(milliseconds|ms|microseconds|us|kilobytes|kb|megabytes|mb|minutes|hours)($|_)/.test(name)) problems.push('not a base unit');
  if (type === 'histogram' && !/_(seconds|bytes)$/.test(name)) problems.push('a histogram measures seconds or bytes');
  if (name.endsWith('_info') && type !== 'gauge') problems.push('_info is a gauge');
  if (/_by_|_per_/.test(name)) problems.push('a dimension belongs in a label, not in the name');
  if (labels.length > MAX_LABELS) problems.push(`more than ${MAX_LABELS} labels`);
  for (const label of labels) {
    if (FORBIDDEN_LABEL.test(label)) problems.push(`label "${label}" could hold an identity or a secret`);
    if (label.startsWith('__') || !/^[a-z][a-z0-9_]*$/.test(label)) problems.push(`label "${label}" is not a plain snake_case name`);
  }
  return problems;
}

test('every declared metric follows the naming rules: prefix, _total only on counters, base units, small label sets without identities', () => {
  const definitions: MetricDefinition[] = Object.values(METRICS);
  assert.ok(definitions.length >= 10);
  const names = new Set<string>();
  for (const definition of definitions) {
    assert.deepEqual(violations(definition.name, definition.type, definition.labels), [], definition.name);
    assert.ok(!names.has(definition.name), `${definition.name} declared once`);
    names.add(definition.name);
    assert.ok(definition.help.length > 20, `${definition.name} explains itself`);
    // A gauge of a point in time or an age says so in its unit; other gauges are counts or 0/1.
    if (/timestamp|expiry|not_after/.test(definition.name)) assert.match(definition.name, /_timestamp_seconds$/);
  }
  assert.deepEqual(METRICS.requestDuration.buckets, [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10], 'OTel http.server.request.duration buckets');
  assert.equal(METRICS.upstreamDuration.buckets, HTTP_DURATION_BUCKETS);
});

test('the rule catches what it must: a bad name or label fails', () => {
  assert.ok(violations('gw_requests_total', 'counter', []).length > 0, 'prefix');
  assert.ok(violations('portcullis_requests', 'counter', []).length > 0, 'counter without _total');
  assert.ok(violations('portcullis_queue_total', 'gauge', []).length > 0, 'gauge with _total');
  assert.ok(violations('portcullis_latency_ms', 'histogram', []).length > 0, 'milliseconds');
  assert.ok(violations('portcullis_calls_total', 'counter', ['credential_id']).length > 0);
  assert.ok(violations('portcullis_calls_total', 'counter', ['subject']).length > 0);
  assert.ok(violations('portcullis_calls_total', 'counter', ['sub']).length > 0);
  assert.ok(violations('portcullis_calls_total', 'counter', ['token']).length > 0);
  assert.ok(violations('portcullis_calls_total', 'counter', ['user']).length > 0);
  assert.ok(violations('portcullis_calls_total', 'counter', ['client_ip']).length > 0);
  assert.ok(violations('portcullis_calls_by_route_total', 'counter', []).length > 0);
  assert.deepEqual(violations('portcullis_calls_total', 'counter', ['route', 'upstream', 'partner']), [], 'ids bounded by the configuration are fine');
  assert.ok(violations('portcullis_calls_total', 'counter', ['a', 'b', 'c', 'd', 'e']).length > 0);
});

test('the whole exposition follows the rules, prom-client\'s process and Node.js metrics included', async (t) => {
  const metrics = newMetrics(t, { defaultMetrics: true });
  const all = await metrics.registry.getMetricsAsJSON();
  assert.ok(all.length > Object.keys(METRICS).length, 'the defaults are there');
  const broken: string[] = [];
  for (const metric of all) {
    const labels = [...new Set(metric.values.flatMap((value) => Object.keys(value.labels)))].filter((label) => label !== 'le');
    if (violations(metric.name, String(metric.type), labels).length > 0) broken.push(metric.name);
  }
  // prom-client names these gauges `_total` (its own choice, kept for dashboards that expect
  // them); any other default that breaks a rule fails here.
  assert.deepEqual(broken.sort(), ['portcullis_nodejs_active_handles_total', 'portcullis_nodejs_active_requests_total', 'portcullis_nodejs_active_resources_total']);
});

test('every reason of the catalogue has a stage, as the issue names them', () => {
  assert.equal(STAGE_OF_REASON.size, Object.keys(REASONS).length);
  const expected: Array<[Reason, string]> = [
    ['allowed', 'all'],
    ['http.host_not_allowed', 'ingress'],
    ['http.client_closed', 'ingress'],
    ['route.not_found', 'routing'],
    ['token.expired', 'credential'],
    ['credential.unknown', 'credential'],
    ['api_key.invalid', 'credential'],
    ['request.multiple_credentials', 'credential'],
    ['dependency.jwks_unavailable', 'credential'],
    ['partner.suspended', 'authorization'],
    ['grant.time_window', 'authorization'],
    ['scope.insufficient', 'authorization'],
    ['purpose.missing', 'authorization'],
    ['policy.denied', 'authorization'],
    ['upstream.timeout', 'proxy'],
    ['audit.unavailable', 'audit'],
    ['gateway.internal_error', 'gateway'],
    ['gateway.resource_metadata', 'gateway'],
  ];
  for (const [reason, stage] of expected) assert.equal(stageOfReason(reason), stage, reason);
});

test('request label values come from closed sets, whatever the caller sends', () => {
  for (const method of ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']) assert.equal(methodLabel(method), method);
  for (const method of ['PROPFIND', 'get', 'CONNECT', 'TRACE', '', 'X'.repeat(1000)]) assert.equal(methodLabel(method), 'other');
  assert.equal(statusClass(200), '2xx');
  assert.equal(statusClass(101), '1xx');
  assert.equal(statusClass(308), '3xx');
  assert.equal(statusClass(421), '4xx');
  assert.equal(statusClass(599), '5xx');
  assert.equal(statusClass(null), 'none');
  assert.equal(statusClass(600), 'none');
  assert.equal(statusClass(0), 'none');
  assert.equal(protocolLabel('1.1'), '1.1');
  assert.equal(protocolLabel('1.0'), '1.0');
  assert.equal(protocolLabel('2.0'), '2');
  assert.equal(protocolLabel('3.7'), 'other');
});

test('token-cache lookups of the real cache are counted by result; nothing is published once metrics close', async (t) => {
  const metrics = newMetrics(t);
  const cache = new VerifiedTokenCache();
  const key = cache.keyFor('header.payload.signature', 'https://api.example.test')!;
  assert.equal(cache.get(key, Date.now(), () => 1), undefined);
  const scrape = async (result: string) => valueOf(parseExposition(await metrics.scrape()), 'portcullis_token_cache_lookups_total', { result });
  assert.equal(await scrape('miss'), 1);
  assert.equal(await scrape('hit'), 0, 'known results start at 0');

  metrics.close();
  assert.equal(tokenCacheLookupChannel.hasSubscribers, false, 'the cache skips publishing when nobody listens');
  cache.get(key, Date.now(), () => 1);
  assert.equal(await scrape('miss'), 1);
});

test('JWKS fetches of a real key set are counted by issuer and result: success, error, invalid', async (t) => {
  const server = await startIssuerServer();
  const dataDir = await mkdtemp(join(tmpdir(), 'portcullis-metrics-'));
  setLogListener(() => undefined, { quiet: true });
  const metrics = newMetrics(t);
  const sets: Array<{ close(): void }> = [];
  t.after(async () => {
    for (const set of sets) set.close();
    setLogListener(null);
    await server.close();
    await rm(dataDir, { recursive: true, force: true });
  });
  const issuer = (id: string): CompiledIssuer => ({
    id,
    issuer: `https://${id}.example`,
    source: { kind: 'jwks_uri', url: `${server.origin}/${id}` },
    ca: null,
    algorithms: new Set<SigningAlgorithm>(['ES256']),
    typ: 'at+jwt',
    leewayMs: 30_000,
    maxLifetimeMs: 3_600_000,
    partnerClaim: 'client_id',
    refreshIntervalMs: 600_000,
    unknownKidCooldownMs: 30_000,
    fetchTimeoutMs: 1_000,
  });
  server.serve('/good', { body: jwksOf(signingKey('ES256', 'k1')) });
  server.serve('/down', { status: 503, body: {} });
  server.serve('/bad', { body: { keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 'hmac', alg: 'HS256' }] } });
  for (const id of ['good', 'down', 'bad']) {
    const set = createKeySet(issuer(id), { dataDir });
    sets.push(set);
    await set.start();
  }
  const samples = parseExposition(await metrics.scrape());
  assert.equal(valueOf(samples, 'portcullis_jwks_fetches_total', { issuer: 'good', result: 'success' }), 1);
  assert.equal(valueOf(samples, 'portcullis_jwks_fetches_total', { issuer: 'down', result: 'error' }), 1);
  assert.equal(valueOf(samples, 'portcullis_jwks_fetches_total', { issuer: 'bad', result: 'invalid' }), 1);
  assert.equal(valueOf(samples, 'portcullis_jwks_fetches_total', { issuer: 'good', result: 'error' }), undefined);
  assert.ok(!(await metrics.scrape()).includes(server.origin), 'the issuer\'s id, never its URL');
});

test('a published JWKS fetch is not counted by metrics that were closed', async (t) => {
  const metrics = newMetrics(t);
  metrics.close();
  assert.equal(jwksFetchChannel.hasSubscribers, false);
  jwksFetchChannel.publish({ issuer: 'idp', result: 'success' });
  assert.equal(valueOf(parseExposition(await metrics.scrape()), 'portcullis_jwks_fetches_total', { issuer: 'idp', result: 'success' }), undefined);
});

function newMetrics(t: TestContext, options: { defaultMetrics?: boolean } = {}): GatewayMetrics {
  const snapshot = { listeners: [], partners: new Map(), upstreams: new Map(), issuers: new Map(), introspection: new Map(), partnerTrusts: [] } as unknown as Snapshot;
  const metrics = createMetrics({
    snapshot: () => snapshot,
    auditStats: () => ({ queued: 0, written: 0, failedWrites: 0 }),
    defaultMetrics: options.defaultMetrics ?? false,
  });
  t.after(() => metrics.close());
  return metrics;
}
