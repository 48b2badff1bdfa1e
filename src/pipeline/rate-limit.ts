/**
 * Stage 5 — rate limit, after authorization allowed the request and before it is forwarded.
 * In order, each cheaper than the next and each a reason of its own:
 *
 * 1. the partner's source networks: a credential used from outside them is refused (403) and the
 *    decision record flagged, since it suggests the credential left the partner's hands;
 * 2. a credential blocked for probing what it is not granted (429);
 * 3. the partner's requests in flight on this instance (429);
 * 4. rate limits and quotas (429), or 503 when the state store cannot answer.
 *
 * Every 429 carries `Retry-After` (RFC 6585 §4, RFC 9110 §10.2.3). Local rate limiting answers
 * synchronously; only the state store (shared mode, quotas) makes this stage wait.
 */
import { inNetworks } from '../policy/grants.ts';
import { log } from '../log.ts';
import type { RateDecision } from '../ratelimit/limiter.ts';
import type { RequestContext, StageOutcome } from './context.ts';

/** What a caller refused for concurrency is told: slots free up as soon as a request ends. */
const CONCURRENCY_RETRY_SECONDS = 1;

export function rateLimit(ctx: RequestContext): StageOutcome | Promise<StageOutcome> {
  const route = ctx.route;
  const principal = ctx.principal;
  // Anonymous routes: no authenticated identity to key a limit on (and never a header instead).
  if (route === null || principal === null) return undefined;
  const { partner, credential } = principal;

  if (partner.sourceNetworks !== null && !inNetworks(partner.sourceNetworks, ctx.clientIp)) {
    ctx.flags.push('source_network_violation');
    log('warn', 'partner.source_network_violation', {
      request_id: ctx.requestId,
      partner: partner.id,
      credential: credential.id,
      client_ip: ctx.clientIp,
      route: route.id,
    });
    return { reason: 'partner.source_network', detail: `credential ${credential.id} of partner ${partner.id} used from ${ctx.clientIp}, outside the partner's source networks` };
  }

  if (ctx.snapshot.abuse.perCredential !== null) {
    const nowMs = Date.now();
    const block = ctx.services.abuse.credentialBlocked(credential.id, nowMs);
    if (block !== null) {
      return {
        reason: 'abuse.credential_blocked',
        detail: `credential ${credential.id} blocked until ${new Date(block.untilMs).toISOString()} after repeated authorization refusals`,
        headers: { 'retry-after': String(Math.max(1, Math.ceil((block.untilMs - nowMs) / 1000))) },
      };
    }
  }

  const release = ctx.services.concurrency.acquire(partner.id, partner.limits.maxConcurrent);
  if (release === null) {
    return {
      reason: 'concurrency.exceeded',
      detail: `partner ${partner.id} already has ${partner.limits.maxConcurrent} requests in flight on this instance`,
      headers: { 'retry-after': String(CONCURRENCY_RETRY_SECONDS) },
    };
  }
  // Set before waiting on the limiter: however the request ends from here, finish() frees the slot.
  ctx.releaseConcurrency = release;

  const decision = ctx.services.limiter.check({ snapshot: ctx.snapshot, partner, credential, route });
  return decision instanceof Promise ? decision.then((settled) => apply(ctx, settled, release)) : apply(ctx, decision, release);
}

function apply(ctx: RequestContext, decision: RateDecision, release: () => void): StageOutcome {
  if (decision.allowed) {
    if (decision.headers !== null) ctx.responseHeaders = { ...ctx.responseHeaders, ...decision.headers };
    return undefined;
  }
  // A refused request leaves at once; its slot should not wait for the response to drain.
  release();
  return decision.headers === null
    ? { reason: decision.reason, detail: decision.detail }
    : { reason: decision.reason, detail: decision.detail, headers: decision.headers };
}
