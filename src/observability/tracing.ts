/**
 * OpenTelemetry spans for the request path (ECOSYSTEM.md §2.8, HTTP semantic conventions §4.4).
 *
 * Nothing here is loaded unless `tracing.enabled`: the API, the SDK and the exporter are imported
 * dynamically by `startTracing`, and the request path only reads `tracingActive` (one boolean)
 * when tracing is off.
 *
 * The ids are the gateway's own, chosen at ingress (src/http/trace-context.ts): the SERVER span
 * of a request has exactly the trace id and span id of its decision record (`trace.id`,
 * `span.id`), and the `traceparent` sent upstream names that span as the parent. The SDK is made
 * to use them through an IdGenerator that hands out the request's ids for the one `startSpan`
 * call that follows.
 *
 * Spans are built when the exchange is over (from the request context, with the times it
 * recorded): every fact is known then, and a request that is never sampled costs no span object.
 * The sampling decision is made from the trace id alone (and a continued caller's `sampled`
 * flag), so the proxy stage can put it into the upstream's `traceparent` before the spans exist.
 */
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import type * as OtelApi from '@opentelemetry/api';
import type { Span, Tracer } from '@opentelemetry/api';
import type { IdGenerator } from '@opentelemetry/sdk-trace';
import type { CompiledTracing } from '../config/snapshot.ts';
import type { RequestContext, RequestServices } from '../pipeline/context.ts';
import type { Outcome } from '../pipeline/audit.ts';
import { parseTraceparent } from '../http/trace-context.ts';
import type { Traceparent } from '../http/trace-context.ts';
import { log } from '../log.ts';

/**
 * True while a gateway of this process exports spans. The request path checks it before
 * anything else, so tracing that is off costs one boolean read per hook.
 */
export let tracingActive = false;

export interface Tracing {
  /** Exports the spans still queued (bounded by the exporter timeout), then stops. */
  shutdown(): Promise<void>;
}

/** The tracer of each running gateway, found from the request's services (one gateway, one set). */
const tracers = new WeakMap<RequestServices, RequestTracer>();
let activeGateways = 0;
let diagnosticsForwarded = false;

/**
 * Loads the SDK and starts exporting, when the configuration asks for it; null (and nothing
 * imported) otherwise. The settings are read once: a reload that changes them takes effect at the
 * next start.
 */
export async function startTracing(settings: CompiledTracing, services: RequestServices): Promise<Tracing | null> {
  if (!settings.enabled || settings.exporter === null) return null;
  const [api, sdk, resources, otlp] = await Promise.all([
    import('@opentelemetry/api'),
    import('@opentelemetry/sdk-trace'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/exporter-trace-otlp-http'),
  ]);
  forwardDiagnostics(api);
  const ids = new RequestIds();
  const exporter = new otlp.OTLPTraceExporter({
    url: settings.exporter.url,
    headers: { ...settings.exporter.headers },
    timeoutMillis: settings.exporter.timeoutMs,
  });
  const provider = new sdk.TracerProvider({
    resource: resources.resourceFromAttributes({ 'service.name': settings.serviceName, 'service.version': packageVersion() }),
    // Sampling is decided before a span is built (see `sampled`): whatever reaches the SDK is kept.
    sampler: new sdk.AlwaysOnSampler(),
    idGenerator: ids,
    spanProcessors: [
      new sdk.BatchSpanProcessor({
        exporter,
        scheduledDelayMillis: settings.exportIntervalMs,
        maxQueueSize: settings.maxQueue,
        maxExportBatchSize: Math.min(512, settings.maxQueue),
        exportTimeoutMillis: settings.exporter.timeoutMs,
      }),
    ],
  });
  const requestTracer = new RequestTracer(api, provider.getTracer('portcullis', packageVersion()), ids, settings);
  tracers.set(services, requestTracer);
  activeGateways++;
  tracingActive = true;
  log('info', 'tracing.started', { exporter: 'otlp_http', url: redactUrl(settings.exporter.url), sample_ratio: settings.sampleRatio });

  let stopped: Promise<void> | null = null;
  return {
    shutdown() {
      stopped ??= (async () => {
        tracers.delete(services);
        activeGateways--;
        tracingActive = activeGateways > 0;
        try {
          await provider.shutdown();
        } catch (error) {
          log('warn', 'tracing.flush_failed', { error: errorText(error) });
        }
      })();
      return stopped;
    },
  };
}

/**
 * The `traceparent` for the upstream: the gateway's span (the record's `span.id`) as parent, and
 * the `sampled` flag of the gateway's own decision, so the upstream records the traces we do.
 */
export function upstreamTraceparent(ctx: RequestContext): string {
  const tracer = tracers.get(ctx.services);
  if (tracer === undefined || ctx.traceId === '') return ctx.traceparent;
  return `00-${ctx.traceId}-${ctx.spanId}-${tracer.sampled(ctx) ? '01' : '00'}`;
}

/** Records the spans of a finished exchange. Never throws: tracing must not affect a request. */
export function recordRequestSpans(ctx: RequestContext, outcome: Outcome, endedAt: bigint): void {
  const tracer = tracers.get(ctx.services);
  if (tracer === undefined) return;
  try {
    tracer.record(ctx, outcome, endedAt);
  } catch (error) {
    log('warn', 'tracing.span_failed', { request_id: ctx.requestId, error: errorText(error) });
  }
}

/**
 * Hands out the request's own ids to the `startSpan` call that follows `use`, then random ones
 * (the CLIENT span's id, which no record carries).
 */
class RequestIds implements IdGenerator {
  private traceId = '';
  private spanId = '';

  use(traceId: string, spanId: string): void {
    this.traceId = traceId;
    this.spanId = spanId;
  }

  clear(): void {
    this.traceId = '';
    this.spanId = '';
  }

  generateTraceId(): string {
    return this.traceId || randomBytes(16).toString('hex');
  }

  generateSpanId(): string {
    return this.spanId || randomBytes(8).toString('hex');
  }
}

/** RFC 9110 §9 methods and PATCH (RFC 5789); anything else is `_OTHER` (semconv `http.request.method`). */
const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']);
/** 52 bits of the trace id: what a double holds exactly. */
const RATIO_BITS = 2 ** 52;
const USER_AGENT_MAX = 256;

class RequestTracer {
  private readonly api: typeof OtelApi;
  private readonly tracer: Tracer;
  private readonly ids: RequestIds;
  private readonly trustIncoming: boolean;
  private readonly sampleRatio: number;
  /** Converts `process.hrtime.bigint()` readings to wall-clock nanoseconds. */
  private readonly epochOffsetNs: bigint;

  constructor(api: typeof OtelApi, tracer: Tracer, ids: RequestIds, settings: CompiledTracing) {
    this.api = api;
    this.tracer = tracer;
    this.ids = ids;
    this.trustIncoming = settings.trustIncomingTraceparent;
    this.sampleRatio = settings.sampleRatio;
    this.epochOffsetNs = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
  }

  /**
   * Parent-based: a continued trace follows its caller's `sampled` flag (W3C Trace Context
   * #sampled-flag); a new trace is kept when the low 52 bits of its random trace id fall below
   * the ratio, so every instance decides the same for the same trace.
   */
  sampled(ctx: RequestContext): boolean {
    const parent = this.continuedParent(ctx);
    if (parent !== null) return (parseInt(parent.flags, 16) & 1) === 1;
    if (this.sampleRatio >= 1) return true;
    if (this.sampleRatio <= 0) return false;
    return parseInt(ctx.traceId.slice(-13), 16) / RATIO_BITS < this.sampleRatio;
  }

  /** The caller's span, when ingress continued the caller's trace (same trace id). */
  private continuedParent(ctx: RequestContext): Traceparent | null {
    if (!this.trustIncoming) return null;
    const header = ctx.req.headers['traceparent'];
    const incoming = parseTraceparent(typeof header === 'string' ? header : undefined);
    return incoming !== null && incoming.traceId === ctx.traceId ? incoming : null;
  }

  record(ctx: RequestContext, outcome: Outcome, endedAt: bigint): void {
    // Refused before ingress read the head (too many header fields, invalid framing): the
    // record has no trace id either, and a span with other ids would correlate with nothing.
    if (ctx.traceId === '' || !this.sampled(ctx)) return;
    const { api } = this;
    const parent = this.continuedParent(ctx);
    const parentContext = parent === null
      ? api.ROOT_CONTEXT
      : api.trace.setSpanContext(api.ROOT_CONTEXT, {
          traceId: parent.traceId,
          spanId: parent.parentId,
          traceFlags: parseInt(parent.flags, 16) & 1,
          isRemote: true,
        });

    const method = KNOWN_METHODS.has(ctx.method) ? ctx.method : '_OTHER';
    const routeTemplate = ctx.route?.path ?? null;
    this.ids.use(ctx.traceId, ctx.spanId);
    let server: Span;
    try {
      server = this.tracer.startSpan(routeTemplate === null ? method : `${method} ${routeTemplate}`, {
        kind: api.SpanKind.SERVER,
        startTime: this.hrTime(ctx.startedAt),
        attributes: this.serverAttributes(ctx, method, routeTemplate, outcome),
      }, parentContext);
    } finally {
      this.ids.clear();
    }
    const errorType = serverErrorType(outcome);
    if (errorType !== null) server.setAttribute('error.type', errorType);
    // Semconv: a server span is an error only for 5xx (a 4xx is the caller's mistake), or when
    // the gateway failed before it could answer.
    if ((outcome.status !== null && outcome.status >= 500) || (outcome.status === null && outcome.decision === 'error')) {
      server.setStatus({ code: api.SpanStatusCode.ERROR, message: outcome.reason });
    }

    if (ctx.upstreamCalled && ctx.upstreamStartedAt !== null && ctx.route !== null) {
      this.recordUpstreamSpan(ctx, server, endedAt);
    }
    server.end(this.hrTime(endedAt));
  }

  private serverAttributes(ctx: RequestContext, method: string, routeTemplate: string | null, outcome: Outcome): OtelApi.Attributes {
    const attributes: OtelApi.Attributes = {
      'http.request.method': method,
      'url.scheme': ctx.tlsSocket ? 'https' : 'http',
      'network.protocol.version': ctx.httpVersion === '2.0' ? '2' : ctx.httpVersion,
      'client.address': ctx.clientIp,
      'portcullis.request.id': ctx.requestId,
      'portcullis.decision': outcome.decision,
      'portcullis.reason': outcome.reason,
    };
    if (method === '_OTHER') attributes['http.request.method_original'] = ctx.method.slice(0, 32);
    if (ctx.path !== '') attributes['url.path'] = ctx.path;
    if (routeTemplate !== null) {
      attributes['http.route'] = routeTemplate;
      attributes['portcullis.route.id'] = ctx.route!.id;
    }
    if (ctx.host !== '') attributes['server.address'] = ctx.host;
    const localPort = (ctx.tlsSocket ?? (ctx.req.socket as Socket | undefined))?.localPort;
    if (localPort !== undefined) attributes['server.port'] = localPort;
    if (outcome.status !== null) attributes['http.response.status_code'] = outcome.status;
    const userAgent = ctx.req.headers['user-agent'];
    if (typeof userAgent === 'string') attributes['user_agent.original'] = userAgent.slice(0, USER_AGENT_MAX);
    if (ctx.principal !== null) {
      attributes['portcullis.partner.id'] = ctx.principal.partner.id;
      attributes['portcullis.credential.type'] = ctx.principal.credentialType;
    }
    return attributes;
  }

  /** The CLIENT span of the upstream exchange: a child of the gateway's SERVER span. */
  private recordUpstreamSpan(ctx: RequestContext, server: Span, endedAt: bigint): void {
    const { api } = this;
    const upstream = ctx.route!.upstream;
    const origin = new URL(upstream.origin);
    const method = KNOWN_METHODS.has(ctx.method) ? ctx.method : '_OTHER';
    const client = this.tracer.startSpan(method, {
      kind: api.SpanKind.CLIENT,
      startTime: this.hrTime(ctx.upstreamStartedAt!),
      attributes: {
        'http.request.method': method,
        'server.address': origin.hostname.replace(/^\[|\]$/g, ''),
        'server.port': origin.port === '' ? (origin.protocol === 'https:' ? 443 : 80) : Number(origin.port),
        'portcullis.upstream.id': upstream.id,
      },
    }, api.trace.setSpan(api.ROOT_CONTEXT, server));
    const status = ctx.upstreamStatus;
    if (status !== null) client.setAttribute('http.response.status_code', status);
    const failure = ctx.lateFailure ?? ctx.refusal;
    // Semconv: a client span is an error for a 4xx or 5xx, or when no valid response came.
    const errorType = failure !== null && failure.reason.startsWith('upstream.')
      ? failure.reason
      : status !== null && status >= 400
        ? String(status)
        : null;
    if (errorType !== null) {
      client.setAttribute('error.type', errorType);
      client.setStatus({ code: api.SpanStatusCode.ERROR, message: errorType });
    }
    // The upstream response is streamed to the client as it arrives: it ends with the exchange.
    client.end(this.hrTime(endedAt));
  }

  private hrTime(monotonic: bigint): OtelApi.HrTime {
    const ns = monotonic + this.epochOffsetNs;
    return [Number(ns / 1_000_000_000n), Number(ns % 1_000_000_000n)];
  }
}

/**
 * `error.type` of the SERVER span: the stable reason of a refusal or failure (low cardinality,
 * the same word as the record's), else the status code of a 5xx; null for a success.
 */
function serverErrorType(outcome: Outcome): string | null {
  if (outcome.reason !== 'allowed' && outcome.reason !== 'gateway.resource_metadata') return outcome.reason;
  if (outcome.status !== null && outcome.status >= 500) return String(outcome.status);
  return null;
}

/** SDK diagnostics (failed exports, dropped spans) go to the application log, once per process. */
function forwardDiagnostics(api: typeof OtelApi): void {
  if (diagnosticsForwarded) return;
  diagnosticsForwarded = true;
  const forward = (level: 'warn' | 'error') => (message: string, ...args: unknown[]) =>
    log(level, 'tracing.diagnostic', { message: String(message).slice(0, 300), ...(args.length > 0 ? { detail: errorText(args[0]) } : {}) });
  const ignore = (): void => undefined;
  api.diag.setLogger({ error: forward('error'), warn: forward('warn'), info: ignore, debug: ignore, verbose: ignore }, api.DiagLogLevel.WARN);
}

/** Only scheme, host and path: a collector URL may carry credentials in its userinfo or query. */
function redactUrl(url: string): string {
  const parsed = new URL(url);
  return `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
}

function errorText(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).slice(0, 300);
}

let cachedVersion: string | undefined;
function packageVersion(): string {
  cachedVersion ??= (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  return cachedVersion;
}
