/**
 * The request path: the stages of DESIGN.md in order, the same for every listener. Each stage
 * passes the context on or ends the request with a refusal; whatever happens, the exchange ends
 * in exactly one decision record.
 *
 *   1 ingress → routing → abuse guard → 2 transport identity → 3 credential → 4 authorization
 *   → audit ready → 5 rate limit → 6 proxy → 7 audit
 *
 * The abuse guard runs before any credential is checked, so a blocked address costs no
 * signature verification; the audit-ready check runs before the rate limit, so a request that
 * cannot be recorded consumes no quota.
 */
import { randomUUID } from 'node:crypto';
import type { Http2ServerRequest } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import type { CompiledListener, Snapshot } from '../config/snapshot.ts';
import type { UpstreamPool } from '../upstream/pools.ts';
import type { CredentialCheckers } from '../authn/runtime.ts';
import { serveResourceMetadata } from './resource-metadata.ts';
import { isTokenServiceRequest, serveTokenService } from './token-service.ts';
import type { Reason } from '../errors.ts';
import type { DecisionLog } from '../audit/decision-log.ts';
import type { AuditTrail } from '../audit/trail.ts';
import type { GatewayMetrics } from '../observability/metrics.ts';
import { log } from '../log.ts';
import { recordRequestSpans, tracingActive } from '../observability/tracing.ts';
import { ingress } from './ingress.ts';
import { routing } from './routing.ts';
import { transportIdentity } from './transport-identity.ts';
import { credential } from './credential.ts';
import { authorization } from './authorization.ts';
import { abuseGuard, sourceBlock } from './abuse-guard.ts';
import { rateLimit } from './rate-limit.ts';
import { countAuthenticationFailure, observeOutcome } from '../abuse/observe.ts';
import { proxy } from './proxy.ts';
import { logDecision } from './audit.ts';
import type { Decision, Outcome } from './audit.ts';
import { holdResponseEnd, isClosingConnection, sendRefusal } from './respond.ts';
import type { ReleaseEnd } from './respond.ts';
import type { DownstreamRequest, DownstreamResponse, RequestContext, RequestServices, StageOutcome } from './context.ts';

/** The stages that decide, in order; the proxy stage follows them. A stage answers synchronously
 * whenever it can (a cached token, a refusal), so the common path pays for no promise. */
const NO_RULES: readonly string[] = Object.freeze([]);

const DECIDING_STAGES: ReadonlyArray<(ctx: RequestContext) => StageOutcome | Promise<StageOutcome>> = [
  ingress,
  routing,
  abuseGuard,
  transportIdentity,
  credential,
  authorization,
  auditReady,
  rateLimit,
];

/**
 * AU-04: a request the trail cannot record is not forwarded (the public zone's anonymous routes
 * excepted: they carry no identity to account for).
 */
function auditReady(ctx: RequestContext): StageOutcome {
  if (ctx.route?.auth === 'required' && !ctx.auditHealthy()) {
    return { reason: 'audit.unavailable', detail: 'the audit trail is not accepting records', headers: { 'retry-after': '5' } };
  }
  return undefined;
}

export interface PipelineGeneration {
  readonly snapshot: Snapshot;
  readonly pools: ReadonlyMap<string, UpstreamPool>;
  readonly checkers: CredentialCheckers;
}

export interface PipelineHooks {
  readonly decisionLog: DecisionLog;
  /** The tamper-evident trail: every decision is appended to it as well. */
  readonly auditTrail: AuditTrail;
  /** Observes each request once, from its decision record's data (src/observability/metrics.ts). */
  readonly metrics: Pick<GatewayMetrics, 'observeRequest'>;
  /** Called once per request when it starts and when its record is written (drain tracking). */
  readonly onStart: () => void;
  readonly onEnd: () => void;
  /** True while the gateway drains: responses then close their connection. */
  readonly draining: () => boolean;
  readonly services: RequestServices;
}

export function handleRequest(
  generation: PipelineGeneration,
  listener: CompiledListener,
  req: DownstreamRequest,
  res: DownstreamResponse,
  hooks: PipelineHooks,
): RequestContext {
  const isHttp2 = req.httpVersionMajor === 2;
  const socket = isHttp2 ? (req as Http2ServerRequest).stream.session?.socket : req.socket;
  const tlsSocket = listener.tls && socket ? (socket as TLSSocket) : null;
  const ctx: RequestContext = {
    requestId: randomUUID(),
    startedAt: process.hrtime.bigint(),
    receivedAt: new Date(),
    snapshot: generation.snapshot,
    pools: generation.pools,
    checkers: generation.checkers,
    auditHealthy: () => hooks.auditTrail.healthy(),
    services: hooks.services,
    listener,
    req,
    res,
    httpVersion: req.httpVersion,
    method: req.method ?? '',
    clientIp: socket?.remoteAddress ?? '',
    clientPort: socket?.remotePort ?? 0,
    tlsSocket,
    host: '',
    path: '',
    query: '',
    traceId: '',
    spanId: '',
    traceparent: '',
    route: null,
    params: {},
    tls: null,
    clientCertificate: null,
    principal: null,
    decidedBy: null,
    rules: NO_RULES,
    grantedScopes: null,
    purpose: null,
    servedByGateway: false,
    servedReason: 'gateway.resource_metadata',
    revocations: null,
    flags: [],
    releaseConcurrency: null,
    responseHeaders: null,
    upstreamCalled: false,
    upstreamStatus: null,
    upstreamStartedAt: null,
    upstreamHeadersAt: null,
    refusal: null,
    lateFailure: null,
  };
  hooks.onStart();
  if (hooks.draining() && !isHttp2) res.setHeader('connection', 'close');
  if (hooks.auditTrail.flushPolicy === 'every-record') {
    // A microtask later, what a stage sets right after ending the response (servedByGateway) is known.
    holdResponseEnd(res, (release) => queueMicrotask(() => recordBeforeEnd(ctx, hooks, release)));
  }
  const settled = run(ctx).catch((error: unknown) => {
    log('error', 'pipeline.unexpected_error', { request_id: ctx.requestId, error: error instanceof Error ? error.stack : String(error) });
    refuse(ctx, { reason: 'gateway.internal_error' });
  });
  // The record is written when the response is over AND the stages have settled, so a failure
  // the proxy stage is still classifying is in the record (the close event can come first).
  res.once('close', () => void settled.then(() => finish(ctx, hooks)));
  return ctx;
}

async function run(ctx: RequestContext): Promise<void> {
  if (isClosingConnection(ctx)) {
    // Pipelined behind a request refused for its framing: never processed, connection ends.
    ctx.refusal = { reason: 'http.framing_ambiguous', detail: 'request pipelined after a refused request on a closing connection' };
    ctx.res.destroy();
    return;
  }
  for (const stage of DECIDING_STAGES) {
    let refusal = stage(ctx);
    if (refusal instanceof Promise) refusal = await refusal;
    if (refusal) return refuse(ctx, refusal);
    if (stage === ingress && serveResourceMetadata(ctx)) {
      ctx.servedByGateway = true;
      return;
    }
    if (stage === ingress && isTokenServiceRequest(ctx)) {
      // Not an upstream route: the client's certificate is judged (revocation included), then
      // the token service answers.
      // SECURITY.md API2: failed client authentication at the token endpoint counts against the
      // source address like any 401, and a blocked address is refused before any assertion work.
      let refusal = sourceBlock(ctx) ?? transportIdentity(ctx);
      if (refusal instanceof Promise) refusal = await refusal;
      if (refusal) return refuse(ctx, refusal);
      ctx.servedByGateway = true;
      ctx.servedReason = 'gateway.token_service';
      await serveTokenService(ctx);
      if (ctx.res.statusCode === 401) countAuthenticationFailure(ctx.services.abuse, ctx.snapshot, ctx.clientIp, 'token_endpoint.invalid_client', Date.now());
      return;
    }
  }
  const refusal = await proxy(ctx);
  if (refusal) refuse(ctx, refusal);
}

function refuse(ctx: RequestContext, refusal: NonNullable<StageOutcome>): void {
  ctx.refusal ??= refusal;
  sendRefusal(ctx, refusal);
}

/** Requests whose record was appended before their response ended (audit `every-record`). */
const recordedBeforeEnd = new WeakMap<RequestContext, { readonly outcome: Outcome; readonly endedAt: bigint }>();

/**
 * Audit `every-record`: the response is about to end, so its record can be built (status and
 * upstream status are known); the end is released only once the record is durable. A record
 * that cannot be made durable fails the response: the client never sees a success that has no
 * record. The record states the exchange as the gateway completes it.
 */
function recordBeforeEnd(ctx: RequestContext, hooks: PipelineHooks, release: ReleaseEnd): void {
  // Gone already: nothing to complete; finish() records what happened.
  if (ctx.res.destroyed) return release(false);
  const outcome = outcomeOf(ctx, true);
  const endedAt = process.hrtime.bigint();
  const record = logDecision(hooks.decisionLog, ctx, outcome, endedAt);
  recordedBeforeEnd.set(ctx, { outcome, endedAt });
  const fail = (error: string): void => {
    log('error', 'audit.response_aborted', { request_id: ctx.requestId, error });
    release(false);
  };
  const accepted = hooks.auditTrail.append(record, ctx.principal?.partner.id ?? null, (error) => (error === null ? release(true) : fail(error.message)));
  if (accepted) return;
  log('error', 'audit.record_not_chained', { request_id: ctx.requestId });
  // A refusal still goes out (as with the other policies): it grants nothing, and the 503
  // audit_unavailable that tells the client why could never be recorded while the trail fails.
  if (outcome.decision === 'allow') fail('the audit trail did not accept the record');
  else release(true);
}

/** Runs once per request, when the response is complete or the connection went away. */
function finish(ctx: RequestContext, hooks: PipelineHooks): void {
  ctx.releaseConcurrency?.();
  const early = recordedBeforeEnd.get(ctx);
  const outcome = early?.outcome ?? outcomeOf(ctx);
  const endedAt = early?.endedAt ?? process.hrtime.bigint();
  if (early === undefined) {
    const record = logDecision(hooks.decisionLog, ctx, outcome, endedAt);
    if (!hooks.auditTrail.append(record, ctx.principal?.partner.id ?? null)) {
      // Only reachable when the trail failed after this request was let through; the record is in
      // the decision log, and the operator is told which one is missing from the chain.
      log('error', 'audit.record_not_chained', { request_id: ctx.requestId });
    }
  }
  // After the record is safe: metrics come second to the audit.
  hooks.metrics.observeRequest(ctx, outcome, endedAt);
  if (tracingActive) recordRequestSpans(ctx, outcome, endedAt);
  observeOutcome(
    hooks.services.abuse,
    ctx.snapshot,
    { clientIp: ctx.clientIp, credentialId: ctx.principal?.credential.id ?? null, reason: outcome.reason, status: outcome.status },
    Date.now(),
  );
  hooks.onEnd();
}

/** `ending`: the response is about to end normally (its record is written before it does). */
export function outcomeOf(ctx: RequestContext, ending = false): Outcome {
  const { res } = ctx;
  const sent = res.headersSent || ending ? res.statusCode : null;
  const failure = ctx.refusal ?? ctx.lateFailure;
  if (failure) {
    return { reason: failure.reason, decision: decisionFor(failure.reason, ctx.upstreamCalled), status: sent, ...(failure.detail ? { detail: failure.detail } : {}) };
  }
  if (ctx.servedByGateway) return { reason: ctx.servedReason, decision: 'allow', status: sent };
  if (!res.writableFinished && !ending) {
    return { reason: 'http.client_closed', decision: ctx.upstreamCalled ? 'allow' : 'deny', status: sent };
  }
  return { reason: 'allowed', decision: 'allow', status: sent };
}

/**
 * `allow`: every deciding stage passed (the request was forwarded, whatever the upstream did);
 * `deny`: a stage refused it; `error`: the gateway failed.
 */
function decisionFor(reason: Reason, upstreamCalled: boolean): Decision {
  if (reason === 'gateway.internal_error') return 'error';
  if (reason.startsWith('upstream.')) return 'allow';
  if (reason === 'http.client_closed' && upstreamCalled) return 'allow';
  return 'deny';
}
