/**
 * Stage 3 — credential. A route with `auth: required` needs a verified credential. Until
 * credential types (JWT issuers, introspection, API keys) are configured there is nothing that
 * can verify one, so every such request is refused: fail closed.
 *
 * RFC 6750 §3: with no credential the challenge carries no error code; a token that cannot be
 * accepted gets `error="invalid_token"`.
 */
import type { RequestContext, StageOutcome } from './context.ts';

const REALM = 'portcullis';

export function credential(ctx: RequestContext): StageOutcome {
  if (ctx.route?.auth !== 'required') return undefined;
  const authorization = ctx.req.headers['authorization'];
  if (authorization === undefined) {
    return { reason: 'token.missing', headers: { 'www-authenticate': `Bearer realm="${REALM}"` } };
  }
  return {
    reason: 'token.issuer_unknown',
    detail: 'no credential verifier is configured for this route',
    headers: { 'www-authenticate': `Bearer realm="${REALM}", error="invalid_token", error_description="The access token is not valid"` },
  };
}
