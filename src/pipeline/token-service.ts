/**
 * The token service's endpoints, answered by the gateway itself on the listener the
 * configuration names (issue 5): `/oauth2/token`, `/oauth2/jwks`, `/oauth2/introspect`,
 * `/oauth2/revoke` and RFC 8414 metadata. They run after ingress and the transport-identity
 * stage (so an mTLS client's certificate has been judged, revocation included) instead of
 * routing: they are not upstream routes. The request still gets its decision record; issuance
 * and refusals add their own event records (src/tokens/token-endpoint.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { JWKS_PATH, INTROSPECTION_PATH, METADATA_PATH, REVOCATION_PATH, serveTokenIntrospection, serveTokenRevocation, serveTokenServiceJwks, serveTokenServiceMetadata } from '../tokens/endpoints.ts';
import { TOKEN_ENDPOINT_PATH, handleTokenRequest, tokenEndpointUrl } from '../tokens/token-endpoint.ts';
import type { RequestContext } from './context.ts';

const PATHS: ReadonlySet<string> = new Set([TOKEN_ENDPOINT_PATH, JWKS_PATH, INTROSPECTION_PATH, REVOCATION_PATH, METADATA_PATH]);

/** True when this request is for the token service (on its listener, one of its paths). */
export function isTokenServiceRequest(ctx: RequestContext): boolean {
  const service = ctx.snapshot.tokenService;
  return service !== null && ctx.listener.name === service.listener && PATHS.has(ctx.path) && ctx.services.tokenService !== null;
}

/** Answers the request; never rejects (each handler answers its own errors). */
export async function serveTokenService(ctx: RequestContext): Promise<void> {
  const deps = ctx.services.tokenService!;
  const service = ctx.snapshot.tokenService!;
  const req = ctx.req as IncomingMessage;
  const res = ctx.res as ServerResponse;
  const url = new URL(`${ctx.path}${ctx.query ? `?${ctx.query}` : ''}`, service.issuer);
  switch (ctx.path) {
    case TOKEN_ENDPOINT_PATH:
      await handleTokenRequest(req, res, { tlsSocket: ctx.tlsSocket, sourceIp: ctx.clientIp, endpointUrl: tokenEndpointUrl(service) }, deps);
      return;
    case JWKS_PATH:
      serveTokenServiceJwks(req, res, deps, url);
      return;
    case METADATA_PATH:
      serveTokenServiceMetadata(req, res, deps, url);
      return;
    case INTROSPECTION_PATH:
      await serveTokenIntrospection(req, res, deps, url);
      return;
    case REVOCATION_PATH:
      await serveTokenRevocation(req, res, deps, url);
      return;
  }
}
