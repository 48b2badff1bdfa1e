/**
 * Stage 4 — authorization. Deny by default: a route that requires authentication is forwarded
 * only with a principal from stage 3 and an allowing decision of the policy module — partner
 * status, agreement, a grant for the route's API in this environment, scopes (token and grant),
 * purpose, grant constraints, then the CEL rules. The decision names the grant or rule that
 * decided, and goes to the record with the config hash.
 */
import { authorize } from '../policy/authorize.ts';
import { declaredPurpose } from '../policy/purpose.ts';
import { bearerChallenge } from './challenge.ts';
import type { RequestContext, StageOutcome } from './context.ts';

export function authorization(ctx: RequestContext): StageOutcome {
  const route = ctx.route;
  if (route === null) return { reason: 'route.not_found' };
  if (route.auth === 'none' && route.zone === 'public') return undefined;
  const principal = ctx.principal;
  // A second, independent lock behind stage 3: no principal, no forwarding.
  if (principal === null) return { reason: 'token.missing', detail: 'route requires authentication and no principal was established' };

  ctx.purpose = declaredPurpose(route, ctx.req.headers, principal.claims);
  const decision = authorize({
    principal,
    route,
    request: {
      method: ctx.method,
      path: ctx.path,
      host: ctx.host,
      params: ctx.params,
      sourceIp: ctx.clientIp,
      environment: ctx.listener.environment,
      purpose: ctx.purpose,
      now: new Date(),
    },
  });
  if (decision.allowed) {
    ctx.decidedBy = decision.grant.id;
    ctx.rules = decision.rules;
    // A token cannot widen a grant: scopes it carries beyond the grant mean nothing downstream.
    const granted = new Set<string>();
    for (const scope of principal.scopes) if (decision.grant.scopes.has(scope)) granted.add(scope);
    ctx.grantedScopes = granted;
    return undefined;
  }
  ctx.decidedBy = decision.decidedBy;
  if (decision.reason === 'scope.insufficient') {
    // RFC 6750 §3.1: 403 with the scopes the operation needs.
    return {
      reason: decision.reason,
      detail: decision.detail,
      headers: { 'www-authenticate': bearerChallenge(ctx, 'insufficient_scope', decision.requiredScopes ?? route.scopes) },
    };
  }
  return { reason: decision.reason, detail: decision.detail };
}
