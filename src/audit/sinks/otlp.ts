/**
 * The OTLP logs sink: each line of the combined stream exported as an OpenTelemetry log record
 * over OTLP/HTTP (JSON) — body: the line as written (the JSON record with its chain fields);
 * attributes: `event.action`, `portcullis.reason`, `portcullis.partner.id` when present, for
 * routing and search on the collector side.
 *
 * The SDK and exporter are imported only when `audit.sinks` names `otlp` (like tracing,
 * src/observability/tracing.ts). Export is batched and off the trail's path; a failing or slow
 * collector never blocks or fails the trail (the file is authoritative): records in flight are
 * bounded by `MAX_QUEUE`, beyond which they are dropped, and every record not exported is counted
 * (`failures()`, the `portcullis:audit:sink-failure` channel) and logged once per episode.
 */
import type { LogRecordExporter, ReadableLogRecord } from '@opentelemetry/sdk-logs';
import { log } from '../../log.ts';
import { publishSinkFailure } from './sink.ts';
import type { AuditSink } from './sink.ts';

export interface OtlpSinkSettings {
  /** The full OTLP/HTTP logs endpoint, e.g. http://127.0.0.1:4318/v1/logs (nothing is appended). */
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
  /** Longest time a record waits before its batch is sent. */
  readonly exportIntervalMs?: number;
}

const MAX_QUEUE = 8192;
const MAX_BATCH = 512;
/** OTel severity INFO (logs data model, SeverityNumber 9): an audit record is not an error report. */
const SEVERITY_INFO = 9;

export async function openOtlpSink(settings: OtlpSinkSettings): Promise<AuditSink> {
  const [logsSdk, otlp, resources] = await Promise.all([
    import('@opentelemetry/sdk-logs'),
    import('@opentelemetry/exporter-logs-otlp-http'),
    import('@opentelemetry/resources'),
  ]);
  let failed = 0;
  /** Records emitted whose export has not ended yet: bounds what a dead collector can make us hold. */
  let inFlight = 0;
  let failing = false;

  const noteFailure = (records: number, reason: string): void => {
    failed += records;
    publishSinkFailure('otlp', records);
    if (!failing) {
      failing = true;
      // The URL may carry credentials in its userinfo; the headers (API keys) are never logged.
      log('error', 'audit.sink_failed', { sink: 'otlp', url: redactUrl(settings.url), error: reason });
    }
  };

  const inner = new otlp.OTLPLogExporter({ url: settings.url, headers: { ...settings.headers }, timeoutMillis: settings.timeoutMs });
  // Wraps the exporter to learn the outcome of every batch, which the batch processor keeps to itself.
  const exporter: LogRecordExporter = {
    export(records: ReadableLogRecord[], resultCallback) {
      inner.export(records, (result) => {
        inFlight -= records.length;
        if (result.code !== 0) {
          noteFailure(records.length, result.error?.message ?? 'export failed');
        } else if (failing) {
          failing = false;
          log('info', 'audit.sink_recovered', { sink: 'otlp', failed_total: failed });
        }
        resultCallback(result);
      });
    },
    shutdown: () => inner.shutdown(),
    forceFlush: () => inner.forceFlush(),
  };
  const provider = new logsSdk.LoggerProvider({
    resource: resources.resourceFromAttributes({ 'service.name': 'portcullis' }),
    processors: [
      new logsSdk.BatchLogRecordProcessor({
        exporter,
        maxQueueSize: MAX_QUEUE,
        maxExportBatchSize: MAX_BATCH,
        scheduledDelayMillis: settings.exportIntervalMs ?? 1000,
        exportTimeoutMillis: settings.timeoutMs,
      }),
    ],
  });
  const logger = provider.getLogger('portcullis.audit');
  log('info', 'audit.sink_started', { sink: 'otlp', url: redactUrl(settings.url) });

  let closed: Promise<void> | null = null;
  return {
    name: 'otlp',
    write(line, record) {
      if (closed !== null) return;
      if (inFlight >= MAX_QUEUE) {
        noteFailure(1, `more than ${MAX_QUEUE} records waiting for the collector`);
        return;
      }
      inFlight += 1;
      try {
        const at = Date.parse(String(record['@timestamp']));
        logger.emit({
          body: line.toString('utf8', 0, line.length - 1),
          severityNumber: SEVERITY_INFO,
          severityText: 'INFO',
          ...(Number.isNaN(at) ? {} : { timestamp: at }),
          attributes: attributesOf(record),
        });
      } catch (error) {
        inFlight -= 1;
        noteFailure(1, String(error));
      }
    },
    failures: () => failed,
    close() {
      closed ??= provider.shutdown().catch((error: unknown) => {
        log('warn', 'audit.sink_flush_failed', { sink: 'otlp', error: String(error) });
      });
      return closed;
    },
  };
}

function attributesOf(record: Record<string, unknown>): Record<string, string> {
  const attributes: Record<string, string> = {};
  const action = field(record, 'event', 'action');
  const reason = field(record, 'portcullis', 'reason');
  const partner = field(field(record, 'portcullis', 'partner'), 'id');
  if (typeof action === 'string') attributes['event.action'] = action;
  if (typeof reason === 'string') attributes['portcullis.reason'] = reason;
  if (typeof partner === 'string') attributes['portcullis.partner.id'] = partner;
  return attributes;
}

function field(value: unknown, ...path: string[]): unknown {
  let current = value;
  for (const key of path) {
    if (current === null || typeof current !== 'object' || !Object.hasOwn(current, key)) return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}

function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.username = '';
    parsed.password = '';
    return parsed.toString();
  } catch {
    return '(invalid url)';
  }
}
