/**
 * Routing: the canonical path, host and method select a route of the listener's zone, or the
 * request ends here with 404 / 405. Neither is ever forwarded. A route of another zone cannot
 * match, because each zone has its own router.
 */
import type { RequestContext, StageOutcome } from './context.ts';
import { declaredBodyTooLarge } from './ingress.ts';

export function routing(ctx: RequestContext): StageOutcome {
  const router = ctx.snapshot.routers.get(ctx.listener.zone);
  if (!router) return { reason: 'route.not_found', detail: `no routes in zone ${ctx.listener.zone}` };
  const match = router.match(ctx.host, ctx.req.method ?? '', ctx.path);
  if (match.kind === 'not_found') return { reason: 'route.not_found' };
  if (match.kind === 'method_not_allowed') {
    // RFC 9110 §15.5.6: a 405 carries Allow.
    return { reason: 'route.method_not_allowed', headers: { allow: match.allow.join(', ') } };
  }
  ctx.route = match.route;
  ctx.params = match.params;
  return declaredBodyTooLarge(ctx, match.route.maxBodyBytes ?? ctx.listener.limits.maxBodyBytes);
}
