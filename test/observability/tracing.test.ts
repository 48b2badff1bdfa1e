// OpenTelemetry tracing through a real gateway: a real OTLP/HTTP (JSON) receiver on loopback gets
// the SERVER and CLIENT spans of each request, their ids are the decision record's and the ones
// the upstream saw in `traceparent`, a refusal carries its reason; with tracing off nothing is
// sent and the SDK is never loaded (checked in a child process through a module resolve hook).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { generateApiKey } from '../../src/authn/api-key.ts';
import { startHarness } from '../helpers/harness.ts';
import type { Harness } from '../helpers/harness.ts';

const HOST = 'api.example.test';
const SPAN_KIND_SERVER = 2;
const SPAN_KIND_CLIENT = 3;
const STATUS_ERROR = 2;

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: Array<{ key: string; value: Record<string, unknown> }>;
  status?: { code?: number; message?: string };
}

interface OtlpReceiver {
  readonly url: string;
  readonly spans: OtlpSpan[];
  readonly requests: Array<{ path: string; contentType: string; headers: Record<string, string | string[] | undefined> }>;
  readonly resources: Array<Record<string, unknown>>;
  close(): Promise<void>;
}

/** A minimal OTLP/HTTP collector: accepts JSON export requests on /v1/traces and keeps the spans. */
async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: OtlpSpan[] = [];
  const requests: OtlpReceiver['requests'] = [];
  const resources: Array<Record<string, unknown>> = [];
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    requests.push({ path: req.url ?? '', contentType: req.headers['content-type'] ?? '', headers: req.headers });
    if (req.method !== 'POST' || req.url !== '/v1/traces' || !String(req.headers['content-type']).startsWith('application/json')) {
      res.writeHead(415).end();
      return;
    }
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
      resourceSpans: Array<{ resource: { attributes: OtlpSpan['attributes'] }; scopeSpans: Array<{ spans: OtlpSpan[] }> }>;
    };
    for (const resourceSpans of body.resourceSpans) {
      resources.push(attributesOf(resourceSpans.resource.attributes));
      for (const scope of resourceSpans.scopeSpans) spans.push(...scope.spans);
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1/traces`,
    spans,
    requests,
    resources,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** OTLP JSON attribute list → plain object (ints arrive as strings or numbers). */
function attributesOf(list: OtlpSpan['attributes']): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const { key, value } of list) {
    if ('stringValue' in value) out[key] = value['stringValue'];
    else if ('intValue' in value) out[key] = Number(value['intValue']);
    else if ('boolValue' in value) out[key] = value['boolValue'];
    else out[key] = value;
  }
  return out;
}

async function waitFor<T>(find: () => T | undefined, what: string, timeoutMs = 3000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = find();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const apiKey = generateApiKey();

function gatewayConfig(tracing: string): string {
  return `
version: 1
listeners:
  - { name: api, zone: partner, port: 0, hostnames: [${HOST}] }
upstreams:
  - { id: sample, url: "{{UPSTREAM}}" }
  - { id: dead, url: "http://127.0.0.1:1" }
apis:
  - { id: orders }
partners:
  - id: acme
    agreement: { id: AGR-acme, expires: 2099-12-31 }
    credentials: [{ id: acme-key, type: api_key, key_id: ${apiKey.keyId}, sha256: ${apiKey.sha256}, expires: 2099-01-01 }]
    grants: [{ api: orders }]
routes:
  - { id: orders, zone: partner, methods: [GET, POST], path: "/orders/{id}", upstream: sample, api: orders, credentials: [api_key] }
  - { id: dead, zone: partner, methods: [GET], path: /dead, upstream: dead, api: orders, credentials: [api_key] }
${tracing}
`;
}

async function call(h: Harness, path: string, headers: Record<string, string> = {}): Promise<{ status: number; requestId: string }> {
  const response = await request(`${h.url('api')}${path}`, { headers: { host: HOST, ...headers } });
  await response.body.text();
  return { status: response.statusCode, requestId: String(response.headers['x-request-id']) };
}

async function findRecord(h: Harness, requestId: string): Promise<Record<string, any>> {
  const deadline = Date.now() + 3000;
  for (;;) {
    const record = (await h.records()).find((entry) => entry.http?.request?.id === requestId);
    if (record !== undefined) return record;
    if (Date.now() > deadline) throw new Error(`no decision record for ${requestId}`);
  }
}

describe('tracing enabled', () => {
  let receiver: OtlpReceiver;
  let h: Harness;

  before(async () => {
    receiver = await startOtlpReceiver();
    h = await startHarness(
      gatewayConfig(`tracing:
  enabled: true
  service_name: portcullis-test
  export_interval: 20ms
  exporter:
    otlp_http:
      url: ${receiver.url}
      headers: { x-collector-key: collector-secret }
      timeout: 2s`),
    );
  });

  after(async () => {
    await h?.close();
    await receiver?.close();
  });

  test('an allowed request: SERVER and CLIENT spans whose ids are the record\'s and the upstream\'s traceparent', async () => {
    const incomingTrace = '4bf92f3577b34da6a3ce929d0e0e4736';
    const incomingParent = '00f067aa0ba902b7';
    const { status, requestId } = await call(h, '/orders/42?verbose=1', { 'x-api-key': apiKey.key, traceparent: `00-${incomingTrace}-${incomingParent}-01`, 'user-agent': 'tracing-test/1' });
    assert.equal(status, 200);
    const record = await findRecord(h, requestId);
    assert.equal(record.trace.id, incomingTrace, 'a trusted incoming trace is continued');
    assert.match(record.span.id, /^[0-9a-f]{16}$/);
    assert.notEqual(record.span.id, incomingParent, 'the gateway starts its own span');

    const seen = h.upstream.seen.at(-1)!;
    assert.equal(seen.headers['traceparent'], `00-${incomingTrace}-${record.span.id}-01`, 'the gateway span is the upstream\'s parent');

    const server = await waitFor(() => receiver.spans.find((span) => span.spanId === record.span.id), 'the server span');
    assert.equal(server.traceId, incomingTrace);
    assert.equal(server.parentSpanId, incomingParent, 'the caller\'s span is the parent of the gateway span');
    assert.equal(server.kind, SPAN_KIND_SERVER);
    assert.equal(server.name, 'GET /orders/{id}');
    const attributes = attributesOf(server.attributes);
    assert.equal(attributes['http.request.method'], 'GET');
    assert.equal(attributes['url.scheme'], 'http');
    assert.equal(attributes['url.path'], '/orders/42');
    assert.equal(attributes['http.route'], '/orders/{id}');
    assert.equal(attributes['http.response.status_code'], 200);
    assert.equal(attributes['server.address'], HOST);
    assert.equal(attributes['server.port'], Number(new URL(h.url('api')).port));
    assert.equal(attributes['client.address'], '127.0.0.1');
    assert.equal(attributes['network.protocol.version'], '1.1');
    assert.equal(attributes['user_agent.original'], 'tracing-test/1');
    assert.equal(attributes['portcullis.decision'], 'allow');
    assert.equal(attributes['portcullis.reason'], 'allowed');
    assert.equal(attributes['portcullis.partner.id'], 'acme');
    assert.equal(attributes['portcullis.credential.type'], 'api_key');
    assert.equal(attributes['portcullis.request.id'], requestId);
    assert.equal(attributes['error.type'], undefined);
    assert.notEqual(server.status?.code, STATUS_ERROR);
    // No secret reaches a span: neither the API key nor the query string.
    const serialized = JSON.stringify(server);
    assert.ok(!serialized.includes(apiKey.key) && !serialized.includes(apiKey.sha256) && !serialized.includes('verbose'), serialized);

    const client = await waitFor(() => receiver.spans.find((span) => span.parentSpanId === record.span.id), 'the client span');
    assert.equal(client.traceId, incomingTrace);
    assert.equal(client.kind, SPAN_KIND_CLIENT);
    assert.equal(client.name, 'GET');
    assert.notEqual(client.spanId, record.span.id);
    const clientAttributes = attributesOf(client.attributes);
    assert.equal(clientAttributes['http.request.method'], 'GET');
    assert.equal(clientAttributes['server.address'], '127.0.0.1');
    assert.equal(clientAttributes['server.port'], h.upstream.port);
    assert.equal(clientAttributes['http.response.status_code'], 200);
    assert.ok(BigInt(client.startTimeUnixNano) >= BigInt(server.startTimeUnixNano), 'the upstream call starts within the request');
    assert.ok(BigInt(client.endTimeUnixNano) <= BigInt(server.endTimeUnixNano), 'and ends within it');
    const startedMs = Number(BigInt(server.startTimeUnixNano) / 1_000_000n);
    assert.ok(Math.abs(startedMs - Date.parse(record['@timestamp'])) < 1000, 'span times are wall-clock times');

    const exportRequest = receiver.requests.at(-1)!;
    assert.equal(exportRequest.headers['x-collector-key'], 'collector-secret', 'configured exporter headers are sent');
    assert.equal(receiver.resources.at(-1)!['service.name'], 'portcullis-test');
  });

  test('a new trace is sampled (ratio 1): the upstream sees the sampled flag and the record\'s ids', async () => {
    const { status, requestId } = await call(h, '/orders/7', { 'x-api-key': apiKey.key });
    assert.equal(status, 200);
    const record = await findRecord(h, requestId);
    assert.equal(h.upstream.seen.at(-1)!.headers['traceparent'], `00-${record.trace.id}-${record.span.id}-01`);
    const server = await waitFor(() => receiver.spans.find((span) => span.spanId === record.span.id), 'the server span');
    assert.equal(server.traceId, record.trace.id);
    assert.equal(server.parentSpanId ?? '', '', 'a new trace: the gateway span is the root');
  });

  test('a caller\'s unsampled trace is followed: no span is exported and the flag stays unsampled', async () => {
    const trace = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
    const { status, requestId } = await call(h, '/orders/8', { 'x-api-key': apiKey.key, traceparent: `00-${trace}-bbbbbbbbbbbbbbbb-00` });
    assert.equal(status, 200);
    const record = await findRecord(h, requestId);
    assert.equal(record.trace.id, trace);
    assert.equal(h.upstream.seen.at(-1)!.headers['traceparent'], `00-${trace}-${record.span.id}-00`);
    // A later, sampled request is exported; by then the unsampled one would have been too.
    const { requestId: laterId } = await call(h, '/orders/9', { 'x-api-key': apiKey.key });
    const later = await findRecord(h, laterId);
    await waitFor(() => receiver.spans.find((span) => span.spanId === later.span.id), 'the later span');
    assert.equal(receiver.spans.filter((span) => span.traceId === trace).length, 0);
  });

  test('a refused request: a SERVER span with error.type and the reason, no CLIENT span', async () => {
    const { status, requestId } = await call(h, '/orders/1', { 'x-api-key': 'pck_wrong' });
    assert.equal(status, 401);
    const record = await findRecord(h, requestId);
    const server = await waitFor(() => receiver.spans.find((span) => span.spanId === record.span.id), 'the refused span');
    assert.equal(server.traceId, record.trace.id);
    const attributes = attributesOf(server.attributes);
    assert.equal(attributes['portcullis.decision'], 'deny');
    assert.equal(attributes['portcullis.reason'], record.portcullis.reason);
    assert.equal(attributes['error.type'], record.portcullis.reason);
    assert.equal(attributes['http.response.status_code'], 401);
    assert.equal(attributes['portcullis.partner.id'], undefined);
    assert.notEqual(server.status?.code, STATUS_ERROR, 'a 4xx is not an error of the server span');
    assert.ok(!JSON.stringify(server).includes('pck_wrong'));
    assert.equal(receiver.spans.filter((span) => span.parentSpanId === record.span.id).length, 0);
  });

  test('an unrouted request: the span is named by the method only', async () => {
    const { status, requestId } = await call(h, '/nowhere', { 'x-api-key': apiKey.key });
    assert.equal(status, 404);
    const record = await findRecord(h, requestId);
    const server = await waitFor(() => receiver.spans.find((span) => span.spanId === record.span.id), 'the unrouted span');
    assert.equal(server.name, 'GET');
    assert.equal(attributesOf(server.attributes)['http.route'], undefined);
    assert.equal(attributesOf(server.attributes)['error.type'], record.portcullis.reason);
  });

  test('an unreachable upstream: both spans are errors, the CLIENT span says why', async () => {
    const { status, requestId } = await call(h, '/dead', { 'x-api-key': apiKey.key });
    assert.equal(status, 502);
    const record = await findRecord(h, requestId);
    const server = await waitFor(() => receiver.spans.find((span) => span.spanId === record.span.id), 'the server span');
    assert.equal(server.status?.code, STATUS_ERROR);
    assert.equal(attributesOf(server.attributes)['error.type'], 'upstream.unreachable');
    const client = await waitFor(() => receiver.spans.find((span) => span.parentSpanId === record.span.id), 'the client span');
    assert.equal(client.status?.code, STATUS_ERROR);
    const attributes = attributesOf(client.attributes);
    assert.equal(attributes['error.type'], 'upstream.unreachable');
    assert.equal(attributes['server.port'], 1);
    assert.equal(attributes['http.response.status_code'], undefined);
  });
});

describe('tracing with trust_incoming_traceparent: false and sample_ratio: 0', () => {
  let receiver: OtlpReceiver;
  let h: Harness;

  before(async () => {
    receiver = await startOtlpReceiver();
    h = await startHarness(
      gatewayConfig(`tracing:
  enabled: true
  sample_ratio: 0
  trust_incoming_traceparent: false
  export_interval: 20ms
  exporter:
    otlp_http:
      url: ${receiver.url}`),
    );
  });

  after(async () => {
    await h?.close();
    await receiver?.close();
  });

  test('an incoming traceparent is not trusted: the request gets a trace of its own', async () => {
    const incoming = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const { requestId } = await call(h, '/orders/4', { 'x-api-key': apiKey.key, traceparent: incoming });
    const record = await findRecord(h, requestId);
    assert.notEqual(record.trace.id, '0af7651916cd43dd8448eb211c80319c');
    assert.match(record.trace.id, /^[0-9a-f]{32}$/);
  });

  test('nothing is sampled: no span is exported, the upstream sees the record\'s ids unsampled', async () => {
    const { status, requestId } = await call(h, '/orders/3', { 'x-api-key': apiKey.key });
    assert.equal(status, 200);
    const record = await findRecord(h, requestId);
    assert.equal(h.upstream.seen.at(-1)!.headers['traceparent'], `00-${record.trace.id}-${record.span.id}-00`);
    await h.gateway.shutdown(); // flushes whatever was queued
    assert.equal(receiver.spans.length, 0);
  });
});

describe('tracing disabled', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-tracing-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /**
   * In one fresh Node process with a resolve hook that lists every `@opentelemetry/*` package
   * loaded: a gateway per configuration in turn, one request through each; the packages loaded
   * after each gateway stopped.
   */
  async function packagesLoadedBy(configs: ReadonlyArray<{ tracing: string; receiverUrl: string }>): Promise<Array<{ loaded: string[]; status: number }>> {
    const upstream = createServer((_req, res) => res.writeHead(200).end('ok'));
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    const configPaths: string[] = [];
    for (const [index, { tracing, receiverUrl }] of configs.entries()) {
      const configPath = join(dir, `gateway-${index}.yaml`);
      await writeFile(
        configPath,
        gatewayConfig(tracing.replaceAll('{{RECEIVER}}', receiverUrl)).replaceAll('{{UPSTREAM}}', upstreamUrl) +
          `\ngateway:\n  data_dir: ${join(dir, `data-${index}`)}\n  decision_log: ${join(dir, `decisions-${index}.jsonl`)}\nops:\n  port: 0\n`,
      );
      configPaths.push(configPath);
    }
    const script = join(dir, 'probe.ts');
    await writeFile(
      script,
      `import { registerHooks } from 'node:module';
const loaded = new Set();
registerHooks({ resolve(specifier, context, next) { const result = next(specifier, context); if (result.url.includes('/@opentelemetry/')) loaded.add(result.url.replace(/^.*\\/node_modules\\/@opentelemetry\\/([^/]+)\\/.*$/, '$1')); return result; } });
const { startGateway } = await import(${JSON.stringify(import.meta.resolve('../../src/server/gateway.ts'))});
const { request } = await import(${JSON.stringify(import.meta.resolve('undici'))});
const results = [];
for (const configPath of ${JSON.stringify(configPaths)}) {
  const gateway = await startGateway({ configPath, log: () => {} });
  const response = await request(gateway.addresses().listeners[0].url + '/orders/1', { headers: { host: '${HOST}', 'x-api-key': '${apiKey.key}' } });
  await response.body.text();
  await gateway.shutdown();
  results.push({ loaded: [...loaded].sort(), status: response.statusCode });
}
process.stdout.write(JSON.stringify(results));
`,
    );
    try {
      const stdout = await new Promise<string>((resolve, reject) => {
        execFile(process.execPath, [script], { cwd: fileURLToPath(new URL('../..', import.meta.url)), timeout: 20_000 }, (error, out, err) =>
          error ? reject(new Error(`${error.message}\n${err}`)) : resolve(out),
        );
      });
      return JSON.parse(stdout) as Array<{ loaded: string[]; status: number }>;
    } finally {
      await new Promise<void>((resolve) => upstream.close(() => resolve()));
    }
  }

  test('the SDK and exporter are never loaded, and nothing is exported', async () => {
    const offReceiver = await startOtlpReceiver();
    const receiver = await startOtlpReceiver();
    try {
      const [off, on] = await packagesLoadedBy([
        { tracing: 'tracing: { enabled: false, exporter: { otlp_http: { url: "{{RECEIVER}}" } } }', receiverUrl: offReceiver.url },
        { tracing: 'tracing: { enabled: true, export_interval: 10ms, exporter: { otlp_http: { url: "{{RECEIVER}}" } } }', receiverUrl: receiver.url },
      ]);
      assert.equal(off!.status, 200);
      for (const name of ['sdk-trace', 'resources', 'exporter-trace-otlp-http', 'otlp-exporter-base', 'core']) {
        assert.ok(!off!.loaded.includes(name), `@opentelemetry/${name} loaded with tracing off: ${off!.loaded.join(', ')}`);
      }
      assert.equal(offReceiver.requests.length, 0, 'nothing was exported while tracing was off');

      // The probe sees the packages once they are loaded: the check above can fail.
      assert.equal(on!.status, 200);
      for (const name of ['api', 'sdk-trace', 'resources', 'exporter-trace-otlp-http']) assert.ok(on!.loaded.includes(name), `${name} not seen: ${on!.loaded.join(', ')}`);
      assert.ok(receiver.spans.length >= 2, 'the enabled gateway exported its spans before it stopped');
    } finally {
      await offReceiver.close();
      await receiver.close();
    }
  });
});
