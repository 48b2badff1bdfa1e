/**
 * `WWW-Authenticate: Bearer` challenges (RFC 6750 §3). With no credential the challenge carries
 * only the realm (§3, last paragraph of §3.1); with an error, the error code and, for
 * `insufficient_scope`, the scopes needed. `resource_metadata` points to the RFC 9728 metadata
 * of the route's API when its audience is an https URL (RFC 9728 §5.1).
 */
import type { RequestContext } from './context.ts';
import { resourceMetadataUrl } from './resource-metadata.ts';

export const REALM = 'portcullis';

export type BearerError = 'invalid_request' | 'invalid_token' | 'insufficient_scope';

export function bearerChallenge(ctx: RequestContext, error: BearerError | null, scope?: readonly string[]): string {
  let challenge = `Bearer realm="${REALM}"`;
  if (error !== null) challenge += `, error="${error}"`;
  if (error === 'insufficient_scope' && scope && scope.length > 0) challenge += `, scope="${quoted(scope.join(' '))}"`;
  const audience = ctx.route?.api?.audience;
  if (audience) {
    const metadata = resourceMetadataUrl(audience);
    if (metadata) challenge += `, resource_metadata="${quoted(metadata)}"`;
  }
  return challenge;
}

/** quoted-string content: `"` and `\\` escaped (RFC 9110 §5.6.4); our values never contain CTLs. */
function quoted(text: string): string {
  return text.replace(/["\\]/g, (char) => `\\${char}`);
}
