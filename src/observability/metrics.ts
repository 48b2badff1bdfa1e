/**
 * Prometheus metrics of the gateway, served as text on the ops listener (`GET /metrics`), never
 * on a data-plane port (ECOSYSTEM.md §2.7).
 *
 * `METRICS` is the one list of what the gateway exports (STYLE.md item 14): name, type, help,
 * labels. Names follow ECOSYSTEM.md §4.3 and the Prometheus naming rules (one prefix, base units,
 * `_total` on counters only, `_info` for metadata); `test/observability/metrics.test.ts` checks
 * every entry. Labels are bounded by the configuration (route, upstream, issuer and listener
 * ids) or by closed sets (method, status class, stage, result, reason); a credential id, a
 * subject or a token is never a label — the audit record has those.
 *
 * What is not built yet has no metric yet (tokens issued, rate-limit decisions, fail-open: no
 * stage can fail open today); each comes with its feature.
 *
 * Who records what:
 * - the pipeline's `finish()` calls `observeRequest` once per request, from the data the
 *   decision record already has (no clock read, no allocation beyond the label lookups);
 * - the gateway calls `requestStarted`/`requestEnded` and `configReloaded`;
 * - JWKS fetches, token-cache lookups and audit write cycles arrive on `node:diagnostics_channel` channels
 *   (`channels.ts`), so those modules do not depend on prom-client;
 * - gauges that describe state (audit queue, certificate expiry) are read when scraped.
 */
import { HotCounter, HotGauge, HotHistogram } from './hot-series.ts';
import type { HotCounterSeries, HotGaugeSeries, HotHistogramSeries } from './hot-series.ts';
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Snapshot } from '../config/snapshot.ts';
import type { Outcome } from '../pipeline/audit.ts';
import type { DecisionInput } from '../pipeline/context.ts';
import { certificateInventory, earliestExpiries } from '../pki/inventory.ts';
import { log } from '../log.ts';
import { jwksFetchChannel, tokenCacheLookupChannel } from './channels.ts';
import { auditSinkFailureChannel, auditWriteChannel } from './channels.ts';
import type { AuditSinkFailureMessage, AuditWriteMessage } from './channels.ts';
import type { JwksFetchMessage, TokenCacheLookupMessage } from './channels.ts';
import { methodLabel, protocolLabel, stageOfReason, statusClass } from './request-labels.ts';

export const METRIC_PREFIX = 'portcullis_';

/** Buckets of OTel's `http.server.request.duration` (semconv HTTP, ECOSYSTEM.md §4.4), in seconds. */
export const HTTP_DURATION_BUCKETS: readonly number[] = Object.freeze([0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]);

/** A write+fdatasync cycle of the audit trail: sub-millisecond on a fast disk, up to seconds on a struggling one. */
export const AUDIT_WRITE_BUCKETS: readonly number[] = Object.freeze([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]);

export type MetricType = 'counter' | 'gauge' | 'histogram';

export interface MetricDefinition {
  readonly name: string;
  readonly type: MetricType;
  readonly help: string;
  readonly labels: readonly string[];
  readonly buckets?: readonly number[];
}

/** Every metric the gateway declares (the process and Node.js defaults of prom-client aside). */
export const METRICS = {
  requestDuration: {
    name: 'portcullis_http_server_request_duration_seconds',
    type: 'histogram',
    help: 'Time from the request head to the end of the exchange (response sent or connection gone), by route (`none` when unrouted), method (`other` outside the configurable methods), status class sent (`none` when nothing was sent) and HTTP version.',
    labels: ['route', 'method', 'status_class', 'protocol'],
    buckets: HTTP_DURATION_BUCKETS,
  },
  requestsInFlight: {
    name: 'portcullis_http_server_requests_in_flight',
    type: 'gauge',
    help: 'Requests received on a data-plane listener whose exchange has not ended yet.',
    labels: ['listener'],
  },
  decisions: {
    name: 'portcullis_decisions_total',
    type: 'counter',
    help: 'Decisions, one per request, by the stage that decided (`all` when every stage allowed), the decision of the record (allow, deny, error) and its stable reason.',
    labels: ['stage', 'result', 'reason'],
  },
  upstreamDuration: {
    name: 'portcullis_upstream_request_duration_seconds',
    type: 'histogram',
    help: 'Time from sending the request to the upstream until its response head arrived (or the attempt ended), by upstream id and status class (`none` when it never answered).',
    labels: ['upstream', 'status_class'],
    buckets: HTTP_DURATION_BUCKETS,
  },
  upstreamErrors: {
    name: 'portcullis_upstream_errors_total',
    type: 'counter',
    help: 'Requests the gateway let through that failed at the upstream (unreachable, timeout, unavailable, bad response), by upstream id and reason.',
    labels: ['upstream', 'reason'],
  },
  jwksFetches: {
    name: 'portcullis_jwks_fetches_total',
    type: 'counter',
    help: 'Fetches of an issuer\'s JWKS by issuer id and result: success (valid set served), error (fetch failed), invalid (set refused, previous kept).',
    labels: ['issuer', 'result'],
  },
  tokenCacheLookups: {
    name: 'portcullis_token_cache_lookups_total',
    type: 'counter',
    help: 'Lookups in the verified-token cache: hit, miss, or stale (an entry that could no longer be served and was dropped).',
    labels: ['result'],
  },
  configReloads: {
    name: 'portcullis_config_reloads_total',
    type: 'counter',
    help: 'Configuration reloads after start, by result: success (new or unchanged configuration serving) or failure (the previous one kept serving).',
    labels: ['result'],
  },
  configLastReloadSuccessful: {
    name: 'portcullis_config_last_reload_successful',
    type: 'gauge',
    help: '1 if the last configuration load (the start, or the last reload) succeeded, 0 if it failed and an older configuration is serving.',
    labels: [],
  },
  configLastReloadSuccessTimestamp: {
    name: 'portcullis_config_last_reload_success_timestamp_seconds',
    type: 'gauge',
    help: 'Unix time of the last successful configuration load (the start, or a reload).',
    labels: [],
  },
  tlsCertNotAfter: {
    name: 'portcullis_tls_cert_not_after_timestamp_seconds',
    type: 'gauge',
    help: 'Expiry (notAfter, Unix time) of the certificate each TLS listener serves, by listener and the certificate subject\'s common name.',
    labels: ['listener', 'name'],
  },
  certificateNotAfter: {
    name: 'portcullis_certificate_not_after_timestamp_seconds',
    type: 'gauge',
    help: 'Earliest expiry (notAfter, Unix time) among the certificates the configuration names, by kind (listener_certificate, partner_ca, upstream_client_certificate, issuer_ca, …) and owner (listener name, partner, upstream, issuer or introspection endpoint id).',
    labels: ['kind', 'owner'],
  },
  revocationSoftFails: {
    name: 'portcullis_revocation_soft_fail_total',
    type: 'counter',
    help: 'Requests let through although the revocation status of their client certificate could not be established (acknowledged soft-fail, `on_unavailable: allow`), by partner id.',
    labels: ['partner'],
  },
  auditQueueDepth: {
    name: 'portcullis_audit_queue_depth',
    type: 'gauge',
    help: 'Decision records accepted by the audit trail and not yet written (queued or being written).',
    labels: [],
  },
  auditRecordsWritten: {
    name: 'portcullis_audit_records_written_total',
    type: 'counter',
    help: 'Decision records written to the audit trail.',
    labels: [],
  },
  auditWriteDuration: {
    name: 'portcullis_audit_write_duration_seconds',
    type: 'histogram',
    help: 'Time of one write cycle of the audit trail: the batch written to every stream it touches and, unless `audit.flush` is `os`, fdatasync\'ed. With `every-record` a response waits for the cycle that holds its record.',
    labels: [],
    buckets: AUDIT_WRITE_BUCKETS,
  },
  tokensIssued: {
    name: 'portcullis_tokens_issued_total',
    type: 'counter',
    help: 'Token requests answered by the token service, by API (configured ids, or none), client authentication method and result (issued, refused).',
    labels: ['api', 'auth_method', 'result'],
  },
  auditSinkFailures: {
    name: 'portcullis_audit_sink_failures_total',
    type: 'counter',
    help: 'Audit records a copy sink (stdout, otlp) could not deliver; the trail\'s file still has them.',
    labels: ['sink'],
  },
  auditWriteFailures: {
    name: 'portcullis_audit_write_failures_total',
    type: 'counter',
    help: 'Failed writes of the audit trail (while failing, requests that need a record are refused with 503 audit_unavailable).',
    labels: [],
  },
  buildInfo: {
    name: 'portcullis_build_info',
    type: 'gauge',
    help: 'Always 1; the labels name the running version and Node.js version.',
    labels: ['version', 'node_version'],
  },
} as const satisfies Record<string, MetricDefinition>;

/** What the audit trail reports (`AuditTrail.stats()`). */
export interface AuditTrailStats {
  readonly queued: number;
  readonly written: number;
  readonly failedWrites: number;
}

export interface GatewayMetricsOptions {
  /** The configuration serving now (read when scraped: certificate expiry). */
  readonly snapshot: () => Snapshot;
  readonly auditStats: () => AuditTrailStats;
  /** Clock for the reload timestamp, ms since the epoch (default `Date.now`). */
  readonly now?: () => number;
  /** prom-client's process and Node.js metrics (default true). */
  readonly defaultMetrics?: boolean;
}

/** What a request's observation needs: the decision record's input. */
export type ObservedRequest = Pick<
  DecisionInput,
  'route' | 'method' | 'httpVersion' | 'startedAt' | 'upstreamStartedAt' | 'upstreamHeadersAt' | 'upstreamStatus' | 'flags' | 'clientCertificate' | 'principal'
>;

/** The decision-record flag the transport-identity stage sets on a soft-failed revocation check. */
export const REVOCATION_SOFT_FAIL_FLAG = 'revocation_soft_fail';

export interface GatewayMetrics {
  readonly registry: Registry;
  /** `text/plain; version=0.0.4; charset=utf-8`: the Prometheus text format. */
  readonly contentType: string;
  /** The exposition text of every metric. */
  scrape(): Promise<string>;
  requestStarted(listener: string): void;
  requestEnded(listener: string): void;
  /** Once per request, with the outcome of its decision record and when it ended (`process.hrtime.bigint()`). */
  observeRequest(request: ObservedRequest, outcome: Outcome, endedAt: bigint): void;
  /** After the initial load (`initial: true`, not counted as a reload) and after every reload. */
  configLoaded(ok: boolean, initial?: boolean): void;
  /** One answer of the token endpoint (from its audit record). */
  tokenRequest(result: 'issued' | 'refused', api: string | null, clientAuthMethod: string | null): void;
  /** Unsubscribes from the diagnostics channels. The registry stays readable. */
  close(): void;
}

const NS_PER_SECOND = 1e9;

export function createMetrics(options: GatewayMetricsOptions): GatewayMetrics {
  const now = options.now ?? Date.now;
  const registry = new Registry();
  const def = METRICS;

  // The four series every request updates: hot-series.ts (no label parsing per observation).
  const requestDuration = new HotHistogram({ ...def.requestDuration, buckets: def.requestDuration.buckets }, registry);
  const requestsInFlight = new HotGauge(def.requestsInFlight, registry);
  const decisions = new HotCounter(def.decisions, registry);
  const upstreamDuration = new HotHistogram({ ...def.upstreamDuration, buckets: def.upstreamDuration.buckets }, registry);
  const upstreamErrors = new Counter({ ...labelled(def.upstreamErrors), registers: [registry] });
  const jwksFetches = new Counter({ ...labelled(def.jwksFetches), registers: [registry] });
  const tokenCacheLookups = new Counter({ ...labelled(def.tokenCacheLookups), registers: [registry] });
  const configReloads = new Counter({ ...labelled(def.configReloads), registers: [registry] });
  const configLastReloadSuccessful = new Gauge({ ...labelled(def.configLastReloadSuccessful), registers: [registry] });
  const configLastReloadSuccessTimestamp = new Gauge({ ...labelled(def.configLastReloadSuccessTimestamp), registers: [registry] });

  const certificateExpiries = new WeakMap<Snapshot, readonly ListenerCertificateExpiry[]>();
  new Gauge({
    ...labelled(def.tlsCertNotAfter),
    registers: [registry],
    collect() {
      const snapshot = options.snapshot();
      let expiries = certificateExpiries.get(snapshot);
      if (expiries === undefined) {
        expiries = listenerCertificateExpiries(snapshot);
        certificateExpiries.set(snapshot, expiries);
      }
      // Listeners removed by a reload disappear from the scrape.
      this.reset();
      for (const expiry of expiries) this.set({ listener: expiry.listener, name: expiry.name }, expiry.notAfterSeconds);
    },
  });

  const inventoryExpiries = new WeakMap<Snapshot, ReturnType<typeof earliestExpiries>>();
  new Gauge({
    ...labelled(def.certificateNotAfter),
    registers: [registry],
    collect() {
      const snapshot = options.snapshot();
      let expiries = inventoryExpiries.get(snapshot);
      if (expiries === undefined) {
        try {
          // One series per (kind, owner), the earliest expiry of its certificates: bounded by the
          // configuration however many certificates a CA bundle holds.
          expiries = earliestExpiries(certificateInventory(snapshot));
        } catch (error) {
          // A scrape must not fail because of one gauge; say why this one is empty, once per configuration.
          log('warn', 'metrics.certificate_inventory_failed', { error: error instanceof Error ? error.message : String(error) });
          expiries = [];
        }
        inventoryExpiries.set(snapshot, expiries);
      }
      this.reset();
      for (const expiry of expiries) this.set({ kind: expiry.kind, owner: expiry.owner }, expiry.notAfterSeconds);
    },
  });

  // Partners that accept soft-fail are known from the configuration: their series start at 0.
  const softFailSeeded = new WeakSet<Snapshot>();
  const revocationSoftFails = new Counter({
    ...labelled(def.revocationSoftFails),
    registers: [registry],
    collect() {
      const snapshot = options.snapshot();
      if (softFailSeeded.has(snapshot)) return;
      softFailSeeded.add(snapshot);
      for (const trust of snapshot.partnerTrusts ?? []) if (trust.revocation?.softFail) this.inc({ partner: trust.partnerId }, 0);
    },
  });

  new Gauge({
    ...labelled(def.auditQueueDepth),
    registers: [registry],
    collect() {
      this.set(options.auditStats().queued);
    },
  });
  // The trail keeps its own totals; the counters follow them by the difference at each scrape.
  let writtenSeen = 0;
  new Counter({
    ...labelled(def.auditRecordsWritten),
    registers: [registry],
    collect() {
      const { written } = options.auditStats();
      if (written > writtenSeen) this.inc(written - writtenSeen);
      writtenSeen = written;
    },
  });
  let failuresSeen = 0;
  new Counter({
    ...labelled(def.auditWriteFailures),
    registers: [registry],
    collect() {
      const { failedWrites } = options.auditStats();
      if (failedWrites > failuresSeen) this.inc(failedWrites - failuresSeen);
      failuresSeen = failedWrites;
    },
  });

  const auditWriteDuration = new Histogram({ ...labelled(def.auditWriteDuration), buckets: [...def.auditWriteDuration.buckets], registers: [registry] });

  new Gauge({ ...labelled(def.buildInfo), registers: [registry] }).set({ version: packageVersion(), node_version: process.version }, 1);
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX });

  // Series whose label values are known in advance start at 0, so rate() and alerts see them
  // before the first event.
  for (const result of ['success', 'failure']) configReloads.inc({ result }, 0);
  for (const result of ['hit', 'miss', 'stale']) tokenCacheLookups.inc({ result }, 0);

  const onJwksFetch = (message: unknown): void => {
    const { issuer, result } = message as JwksFetchMessage;
    jwksFetches.inc({ issuer, result });
  };
  const onTokenCacheLookup = (message: unknown): void => {
    tokenCacheLookups.inc({ result: (message as TokenCacheLookupMessage).result });
  };
  const onAuditWrite = (message: unknown): void => {
    auditWriteDuration.observe((message as AuditWriteMessage).durationSeconds);
  };
  const auditSinkFailures = new Counter({ ...labelled(def.auditSinkFailures), registers: [registry] });
  const tokensIssued = new Counter({ ...labelled(def.tokensIssued), registers: [registry] });
  const onAuditSinkFailure = (message: unknown): void => {
    const { sink, records } = message as AuditSinkFailureMessage;
    auditSinkFailures.inc({ sink }, records);
  };
  auditSinkFailureChannel.subscribe(onAuditSinkFailure);
  jwksFetchChannel.subscribe(onJwksFetch);
  auditWriteChannel.subscribe(onAuditWrite);
  tokenCacheLookupChannel.subscribe(onTokenCacheLookup);

  // Label children per combination, built on first use: the request path then pays a Map
  // lookup instead of prom-client's label-object parsing. Every key is built from bounded
  // label values, so these maps are bounded too.
  const durationChildren = new Map<string, HotHistogramSeries>();
  const decisionChildren = new Map<string, HotCounterSeries>();
  const upstreamDurationChildren = new Map<string, HotHistogramSeries>();
  const inFlightChildren = new Map<string, HotGaugeSeries>();

  function inFlightChild(listener: string): HotGaugeSeries {
    let child = inFlightChildren.get(listener);
    if (child === undefined) {
      child = requestsInFlight.of(listener);
      inFlightChildren.set(listener, child);
    }
    return child;
  }

  return {
    registry,
    contentType: registry.contentType,
    scrape: () => registry.metrics(),
    requestStarted(listener) {
      inFlightChild(listener).inc();
    },
    requestEnded(listener) {
      inFlightChild(listener).dec();
    },
    observeRequest(request, outcome, endedAt) {
      const route = request.route;
      const status = statusClass(outcome.status);
      const method = methodLabel(request.method);
      const protocol = protocolLabel(request.httpVersion);
      const routeId = route?.id ?? 'none';

      const durationKey = `${routeId}\n${method}\n${status}\n${protocol}`;
      let duration = durationChildren.get(durationKey);
      if (duration === undefined) {
        duration = requestDuration.of(routeId, method, status, protocol);
        durationChildren.set(durationKey, duration);
      }
      duration.observe(Number(endedAt - request.startedAt) / NS_PER_SECOND);

      const decisionKey = `${outcome.reason}\n${outcome.decision}`;
      let decision = decisionChildren.get(decisionKey);
      if (decision === undefined) {
        decision = decisions.of(stageOfReason(outcome.reason), outcome.decision, outcome.reason);
        decisionChildren.set(decisionKey, decision);
      }
      decision.inc();

      if (request.flags.length > 0 && request.flags.includes(REVOCATION_SOFT_FAIL_FLAG)) {
        // The flag is set only once a partner's trust accepted the certificate: a configured id.
        const partner = request.clientCertificate?.partnerId ?? request.principal?.partner.id;
        if (partner !== undefined && partner !== null) revocationSoftFails.inc({ partner });
      }

      if (route === null) return;
      const upstream = route.upstream.id;
      if (request.upstreamStartedAt !== null) {
        // Same span as the record's `latency.upstream_ms`: until the response head, or the end.
        const upstreamStatus = statusClass(request.upstreamStatus);
        const upstreamKey = `${upstream}\n${upstreamStatus}`;
        let upstreamChild = upstreamDurationChildren.get(upstreamKey);
        if (upstreamChild === undefined) {
          upstreamChild = upstreamDuration.of(upstream, upstreamStatus);
          upstreamDurationChildren.set(upstreamKey, upstreamChild);
        }
        upstreamChild.observe(Number((request.upstreamHeadersAt ?? endedAt) - request.upstreamStartedAt) / NS_PER_SECOND);
      }
      if (stageOfReason(outcome.reason) === 'proxy') upstreamErrors.inc({ upstream, reason: outcome.reason });
    },
    tokenRequest(result, api, clientAuthMethod) {
      // Bounded labels: API ids come from the configuration, methods from a fixed list.
      const knownApi = api !== null && options.snapshot().apis.has(api) ? api : 'none';
      const method = clientAuthMethod !== null && CLIENT_AUTH_METHODS.has(clientAuthMethod) ? clientAuthMethod : 'none';
      tokensIssued.inc({ api: knownApi, auth_method: method, result });
    },
    configLoaded(ok, initial = false) {
      if (!initial) configReloads.inc({ result: ok ? 'success' : 'failure' });
      configLastReloadSuccessful.set(ok ? 1 : 0);
      if (ok) configLastReloadSuccessTimestamp.set(now() / 1000);
    },
    close() {
      jwksFetchChannel.unsubscribe(onJwksFetch);
      tokenCacheLookupChannel.unsubscribe(onTokenCacheLookup);
      auditWriteChannel.unsubscribe(onAuditWrite);
      auditSinkFailureChannel.unsubscribe(onAuditSinkFailure);
    },
  };
}

function labelled(definition: MetricDefinition): { name: string; help: string; labelNames: string[] } {
  return { name: definition.name, help: definition.help, labelNames: [...definition.labels] };
}

interface ListenerCertificateExpiry {
  readonly listener: string;
  readonly name: string;
  readonly notAfterSeconds: number;
}

/** The leaf certificate of every TLS listener (the first in its PEM file) and its notAfter. */
function listenerCertificateExpiries(snapshot: Snapshot): readonly ListenerCertificateExpiry[] {
  const expiries: ListenerCertificateExpiry[] = [];
  for (const listener of snapshot.listeners) {
    if (listener.tls === null) continue;
    let certificate: X509Certificate;
    try {
      certificate = new X509Certificate(listener.tls.cert);
    } catch {
      // The listener could not have bound with it; nothing to report rather than a wrong date.
      continue;
    }
    expiries.push({ listener: listener.name, name: commonName(certificate.subject), notAfterSeconds: certificate.validToDate.getTime() / 1000 });
  }
  return expiries;
}

function commonName(subject: string): string {
  for (const line of subject.split('\n')) if (line.startsWith('CN=')) return line.slice(3);
  return '';
}

const CLIENT_AUTH_METHODS: ReadonlySet<string> = new Set(['private_key_jwt', 'tls_client_auth', 'self_signed_tls_client_auth', 'client_secret_basic']);

let cachedVersion: string | undefined;

/** The version in package.json, read once per process. */
function packageVersion(): string {
  cachedVersion ??= (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  return cachedVersion;
}
