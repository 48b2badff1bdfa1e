/**
 * RFC 9728 protected-resource metadata, answered by the gateway for every API whose audience is
 * an https URL: `GET https://host/.well-known/oauth-protected-resource/<audience path>` (§3.1)
 * returns the resource identifier, the authorization servers whose tokens it accepts, the
 * scopes its operations use, and how tokens may be presented (§2). A client that gets a 401
 * finds this document through the challenge's `resource_metadata` parameter (§5.1).
 */
import type { CompiledApi, Snapshot } from '../config/snapshot.ts';
import type { RequestContext } from './context.ts';

const WELL_KNOWN = '/.well-known/oauth-protected-resource';

/** The metadata URL of an audience, or null when the audience is not an https URL. */
export function resourceMetadataUrl(audience: string): string | null {
  if (!audience.startsWith('https://')) return null;
  let url: URL;
  try {
    url = new URL(audience);
  } catch {
    return null;
  }
  const path = url.pathname === '/' ? '' : url.pathname;
  return `${url.origin}${WELL_KNOWN}${path}`;
}

interface MetadataDocument {
  readonly resource: string;
  readonly authorization_servers: readonly string[];
  readonly scopes_supported: readonly string[];
  readonly bearer_methods_supported: readonly string[];
  readonly resource_name?: string;
}

const documents = new WeakMap<Snapshot, ReadonlyMap<string, string>>();

/** `host + path` → serialized document, built once per snapshot. */
function documentsOf(snapshot: Snapshot): ReadonlyMap<string, string> {
  let built = documents.get(snapshot);
  if (built) return built;
  const map = new Map<string, string>();
  for (const api of snapshot.apis.values()) {
    const metadataUrl = api.audience ? resourceMetadataUrl(api.audience) : null;
    if (!metadataUrl) continue;
    const url = new URL(metadataUrl);
    map.set(`${url.hostname}${url.pathname}`, JSON.stringify(documentFor(api, snapshot)));
  }
  built = map;
  documents.set(snapshot, built);
  return built;
}

function documentFor(api: CompiledApi, snapshot: Snapshot): MetadataDocument {
  const scopes = new Set<string>();
  for (const route of snapshot.routes) if (route.api?.id === api.id) for (const scope of route.scopes) scopes.add(scope);
  return {
    resource: api.audience!,
    authorization_servers: [...snapshot.issuers.values()].map((issuer) => issuer.issuer),
    scopes_supported: [...scopes].sort(),
    bearer_methods_supported: ['header'],
    ...(api.name ? { resource_name: api.name } : {}),
  };
}

/** Answers the request when it asks for a metadata document this gateway publishes. */
export function serveResourceMetadata(ctx: RequestContext): boolean {
  if (!ctx.path.startsWith(WELL_KNOWN) || (ctx.method !== 'GET' && ctx.method !== 'HEAD')) return false;
  const body = documentsOf(ctx.snapshot).get(`${ctx.host}${ctx.path}`);
  if (body === undefined) return false;
  const res = ctx.res as { writeHead(status: number, headers: Record<string, string>): unknown; end(body?: string): unknown };
  res.writeHead(200, {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(body)),
    'cache-control': 'max-age=300',
    'x-request-id': ctx.requestId,
  });
  res.end(ctx.method === 'HEAD' ? '' : body);
  return true;
}
