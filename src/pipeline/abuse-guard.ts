/**
 * The abuse guard stage: after routing, before any credential is looked at. An address blocked
 * for repeated authentication failures is refused here, so its requests cost no signature
 * check, no introspection call, no key fetch (SECURITY.md API2, API4). Only routes that require
 * authentication: anonymous routes have no authentication to fail.
 */
import { sourceKey } from '../abuse/guard.ts';
import type { RequestContext, StageOutcome } from './context.ts';

export function abuseGuard(ctx: RequestContext): StageOutcome {
  if (ctx.route === null || ctx.route.auth !== 'required') return undefined;
  return sourceBlock(ctx);
}

/** The refusal for a blocked source address, or undefined (also used before the token service's endpoints). */
export function sourceBlock(ctx: RequestContext): StageOutcome {
  // Switched off (or by a reload): earlier blocks lapse with it.
  if (ctx.snapshot.abuse.perSource === null) return undefined;
  const nowMs = Date.now();
  const block = ctx.services.abuse.sourceBlocked(ctx.clientIp, nowMs);
  if (block === null) return undefined;
  return {
    reason: 'abuse.source_blocked',
    detail: `source ${sourceKey(ctx.clientIp)} blocked until ${new Date(block.untilMs).toISOString()} after repeated authentication failures`,
    // RFC 9110 §10.2.3: whole seconds, at least one.
    headers: { 'retry-after': String(Math.max(1, Math.ceil((block.untilMs - nowMs) / 1000))) },
  };
}
