// The audit trail's sinks besides the file: stdout gets exactly the bytes of the combined stream
// (checked in a child process, whose stdout is a real pipe), OTLP logs reach a real loopback
// collector with the record as body and its routing attributes, the OpenTelemetry SDK is never
// loaded unless the otlp sink is configured, and a failing collector costs the trail nothing but
// a counted failure.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import diagnosticsChannel from 'node:diagnostics_channel';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openAuditTrail } from '../../src/audit/trail.ts';
import type { AuditTrailOptions } from '../../src/audit/trail.ts';
import type { AuditSinkFailureMessage } from '../../src/observability/channels.ts';
import { verifyTrail } from '../../src/audit/verify.ts';
import { setLogListener } from '../../src/log.ts';

let root: string;
let counter = 0;
const logEvents: string[] = [];

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'portcullis-sinks-'));
  setLogListener((entry) => logEvents.push(entry.event), { quiet: true });
});
after(async () => {
  setLogListener(null);
  await rm(root, { recursive: true, force: true });
});

function options(overrides: Partial<AuditTrailOptions> = {}): AuditTrailOptions {
  counter += 1;
  const dir = join(root, `case-${counter}`, 'trail');
  return {
    dir,
    flush: 'interval',
    flushIntervalMs: 10,
    checkpointIntervalMs: 60_000,
    checkpointEvery: 3,
    signingKeyPath: null,
    keyDir: join(dir, '..', 'keys'),
    maxQueue: 10_000,
    ...overrides,
  };
}

function decision(n: number, partner: string | null): Record<string, unknown> {
  return {
    '@timestamp': new Date(Date.UTC(2030, 0, 1, 0, 0, n)).toISOString(),
    event: { kind: 'event', action: 'gateway.request', outcome: n % 2 === 0 ? 'success' : 'failure' },
    http: { request: { id: `req-${n}` } },
    portcullis: { decision: n % 2 === 0 ? 'allow' : 'deny', reason: n % 2 === 0 ? 'allowed' : 'token.expired', partner: partner === null ? null : { id: partner } },
  };
}

/** Runs a trail in a child process; returns its stdout and the @opentelemetry packages it loaded. */
async function runChild(trailOptions: AuditTrailOptions, records: number): Promise<{ stdout: Buffer; loaded: string[] }> {
  const script = join(root, `child-${counter}.ts`);
  await writeFile(
    script,
    `import { registerHooks } from 'node:module';
const loaded = new Set();
registerHooks({ resolve(specifier, context, next) { const result = next(specifier, context); if (result.url.includes('/@opentelemetry/')) loaded.add(result.url.replace(/^.*\\/node_modules\\/@opentelemetry\\/([^/]+)\\/.*$/, '$1')); return result; } });
const { openAuditTrail } = await import(${JSON.stringify(import.meta.resolve('../../src/audit/trail.ts'))});
const trail = await openAuditTrail(${JSON.stringify(trailOptions)});
for (let n = 0; n < ${records}; n++) {
  const partner = n % 3 === 0 ? 'acme' : null;
  trail.append({ '@timestamp': new Date(Date.UTC(2030, 0, 1, 0, 0, n)).toISOString(), event: { kind: 'event', action: 'gateway.request' }, http: { request: { id: 'req-' + n } }, portcullis: { partner: partner === null ? null : { id: partner } } }, partner);
  if (n % 4 === 0) await trail.flush();
}
await trail.close();
process.stderr.write('LOADED ' + JSON.stringify([...loaded].sort()) + '\\n');
`,
  );
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [script],
      { cwd: fileURLToPath(new URL('../..', import.meta.url)), timeout: 20_000, encoding: 'buffer', env: { ...process.env, PORTCULLIS_LOG: 'silent' } },
      (error, stdout, stderr) => {
        if (error !== null) return reject(new Error(`${error.message}\n${stderr.toString()}`));
        const match = /^LOADED (.*)$/m.exec(stderr.toString());
        if (match === null) return reject(new Error(`child printed no LOADED line: ${stderr.toString()}`));
        resolve({ stdout, loaded: JSON.parse(match[1]!) as string[] });
      },
    );
  });
}

test('stdout: every line of the combined stream, byte for byte; the OpenTelemetry SDK is not loaded', async () => {
  const trailOptions = options({ sinks: ['file', 'stdout'] });
  const { stdout, loaded } = await runChild(trailOptions, 10);
  const file = await readFile(join(trailOptions.dir, 'combined.jsonl'));
  assert.ok(file.length > 0);
  assert.equal(stdout.toString('utf8'), file.toString('utf8'));
  // Records and the writer's checkpoints alike: stdout is a copy of the stream.
  assert.ok(stdout.toString('utf8').includes('"audit.checkpoint"'));
  assert.deepEqual(loaded, []);
});

test('file only (the default): nothing on stdout', async () => {
  const { stdout, loaded } = await runChild(options(), 5);
  assert.equal(stdout.length, 0);
  assert.deepEqual(loaded, []);
});

interface OtlpLogRecord {
  body: { stringValue: string };
  severityNumber?: number;
  attributes?: Array<{ key: string; value: { stringValue?: string } }>;
}

interface LogsReceiver {
  readonly url: string;
  readonly records: OtlpLogRecord[];
  readonly headers: Array<Record<string, string | string[] | undefined>>;
  status: number;
  close(): Promise<void>;
}

/** A minimal OTLP/HTTP logs collector on loopback (JSON encoding). */
async function startLogsReceiver(): Promise<LogsReceiver> {
  const receiver: LogsReceiver = {
    url: '',
    records: [],
    headers: [],
    status: 200,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    receiver.headers.push(req.headers);
    if (req.method !== 'POST' || req.url !== '/v1/logs' || !String(req.headers['content-type']).startsWith('application/json')) {
      res.writeHead(415).end();
      return;
    }
    if (receiver.status !== 200) {
      res.writeHead(receiver.status, { 'content-type': 'application/json' }).end('{}');
      return;
    }
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { resourceLogs: Array<{ scopeLogs: Array<{ logRecords: OtlpLogRecord[] }> }> };
    for (const resourceLogs of body.resourceLogs) for (const scope of resourceLogs.scopeLogs) receiver.records.push(...scope.logRecords);
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  (receiver as { url: string }).url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/logs`;
  return receiver;
}

let receiver: LogsReceiver;
before(async () => {
  receiver = await startLogsReceiver();
});
after(async () => {
  await receiver.close();
});

test('otlp: each line of the combined stream is a log record: body the line, attributes action, reason and partner', async () => {
  receiver.status = 200;
  receiver.records.length = 0;
  const trailOptions = options({ sinks: ['file', 'otlp'], otlp: { url: receiver.url, headers: { 'x-collector-key': 'k-123' }, timeoutMs: 2000 } });
  const trail = await openAuditTrail(trailOptions);
  for (let n = 0; n < 4; n++) assert.equal(trail.append(decision(n, n === 1 ? 'acme' : null), n === 1 ? 'acme' : null), true);
  await trail.close(); // flushes the exporter

  const lines = (await readFile(join(trailOptions.dir, 'combined.jsonl'), 'utf8')).trimEnd().split('\n');
  assert.deepEqual(
    receiver.records.map((record) => record.body.stringValue),
    lines,
  );
  const denied = receiver.records.find((record) => record.body.stringValue.includes('"req-1"'))!;
  const attributes = Object.fromEntries((denied.attributes ?? []).map((attribute) => [attribute.key, attribute.value.stringValue]));
  assert.deepEqual(attributes, { 'event.action': 'gateway.request', 'portcullis.reason': 'token.expired', 'portcullis.partner.id': 'acme' });
  assert.equal(denied.severityNumber, 9);
  assert.equal(receiver.headers.at(-1)!['x-collector-key'], 'k-123');
});

test('otlp: a collector that refuses exports never blocks or fails the trail; every lost record is counted', async () => {
  receiver.status = 400;
  let failed = 0;
  const onFailure = (message: unknown): void => {
    if ((message as AuditSinkFailureMessage).sink === 'otlp') failed += (message as AuditSinkFailureMessage).records;
  };
  diagnosticsChannel.subscribe('portcullis:audit:sink-failure', onFailure);
  try {
    logEvents.length = 0;
    const trailOptions = options({ sinks: ['file', 'otlp'], otlp: { url: receiver.url, headers: {}, timeoutMs: 2000 } });
    const trail = await openAuditTrail(trailOptions);
    for (let n = 0; n < 5; n++) assert.equal(trail.append(decision(n, null), null), true);
    await trail.flush();
    assert.equal(trail.healthy(), true);
    await trail.close();
    const lines = (await readFile(join(trailOptions.dir, 'combined.jsonl'), 'utf8')).trimEnd().split('\n');
    assert.equal(failed, lines.length, 'every line sent to the collector and refused is counted');
    assert.ok(logEvents.includes('audit.sink_failed'));
    const report = await verifyTrail(trailOptions.dir, { publicKeyPem: trail.publicKeyPem });
    assert.equal(report.ok, true);
  } finally {
    diagnosticsChannel.unsubscribe('portcullis:audit:sink-failure', onFailure);
    receiver.status = 200;
  }
});
