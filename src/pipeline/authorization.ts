/**
 * Stage 4 — authorization. Deny by default: a route that requires authentication is only
 * forwarded with an authenticated principal on the context. Until the credential stage can
 * produce one, this is the second, independent lock behind stage 3 (a change there can never
 * by itself open a protected route). Grants, scopes and policy rules are added here.
 */
import type { RequestContext, StageOutcome } from './context.ts';

export function authorization(ctx: RequestContext): StageOutcome {
  if (ctx.route === null) return { reason: 'route.not_found' };
  if (ctx.route.auth === 'none' && ctx.route.zone === 'public') return undefined;
  return { reason: 'token.missing', detail: 'route requires authentication and no principal was established' };
}
