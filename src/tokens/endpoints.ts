/**
 * The token service's read and housekeeping endpoints (issue 5 "Metadata, introspection,
 * revocation"): JWKS, RFC 8414 metadata, RFC 7662 introspection and RFC 7009 revocation. The
 * token endpoint itself is `token-endpoint.ts`; the pipeline routes the paths below to these
 * functions on the token service's listener.
 *
 * Introspection and revocation authenticate the caller exactly like the token endpoint
 * (`authenticateClient`: private_key_jwt, tls_client_auth, self_signed_tls_client_auth), and a
 * client only ever learns about, or revokes, its OWN tokens: another partner's token is
 * `{"active": false}` to it (RFC 7662 §4 lets the server decide what a caller may see, and a
 * partner has no business reading another partner's scopes).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { TLSSocket } from 'node:tls';
import { compactVerify, decodeProtectedHeader } from 'jose';
import type { Snapshot } from '../config/snapshot.ts';
import { SIGNING_ALGORITHMS } from '../config/schema.ts';
import { eventRecord } from '../audit/event-record.ts';
import { connectionIdentity } from '../pipeline/transport-identity.ts';
import { authenticateClient } from './client-auth.ts';
import type { ClientAuthRequest, ClientAuthResult } from './client-auth.ts';
import { TOKEN_ENDPOINT_PATH, parseForm, tokenEndpointUrl } from './token-endpoint.ts';
import type { TokenServiceDeps } from './types.ts';

export const JWKS_PATH = '/oauth2/jwks';
export const INTROSPECTION_PATH = '/oauth2/introspect';
export const REVOCATION_PATH = '/oauth2/revoke';
export const METADATA_PATH = '/.well-known/oauth-authorization-server';

/** A form with one token and a hint is tiny; a client assertion adds a few kB. */
const MAX_FORM_BYTES = 16 * 1024;
/** Longest token looked at: ours are well below; anything longer is not ours. */
const MAX_TOKEN_LENGTH = 8 * 1024;
/** JWKS caches may keep the set this long; a rotation's publish delay must exceed it (docs/tokens.md). */
export const JWKS_MAX_AGE_SECONDS = 300;

function base(issuer: string): string {
  return issuer.replace(/\/+$/, '');
}

/** `GET /oauth2/jwks`: the public keys, active and overlapping (RFC 7517 §5). */
export function serveTokenServiceJwks(req: IncomingMessage, res: ServerResponse, deps: TokenServiceDeps, _url: URL): void {
  if (!onlyGet(req, res)) return;
  if (deps.snapshot().tokenService === null) return sendJson(res, 404, { error: 'not_found' }, { 'cache-control': 'no-store' });
  sendJson(res, 200, deps.keys.jwks(), { 'content-type': 'application/jwk-set+json', 'cache-control': `public, max-age=${JWKS_MAX_AGE_SECONDS}` }, req.method === 'HEAD');
}

/** The RFC 8414 §2 metadata document for `service`. */
export function tokenServiceMetadata(snapshot: Snapshot): Record<string, unknown> | null {
  const service = snapshot.tokenService;
  if (service === null) return null;
  const issuer = base(service.issuer);
  const methods = new Set<string>();
  const assertionAlgorithms = new Set<string>();
  for (const client of snapshot.credentials.clients.values()) methods.add(client.auth);
  // RFC 8414 §2: the algorithms the token endpoint accepts for private_key_jwt assertions.
  if (methods.has('private_key_jwt')) for (const alg of SIGNING_ALGORITHMS) assertionAlgorithms.add(alg);
  return {
    issuer: service.issuer,
    token_endpoint: tokenEndpointUrl(service),
    jwks_uri: `${issuer}${JWKS_PATH}`,
    introspection_endpoint: `${issuer}${INTROSPECTION_PATH}`,
    revocation_endpoint: `${issuer}${REVOCATION_PATH}`,
    grant_types_supported: ['client_credentials', 'urn:ietf:params:oauth:grant-type:token-exchange'],
    // Sorted: the document is stable whatever the order of the clients in the configuration.
    token_endpoint_auth_methods_supported: [...methods].sort(),
    ...(assertionAlgorithms.size > 0 ? { token_endpoint_auth_signing_alg_values_supported: [...assertionAlgorithms] } : {}),
    introspection_endpoint_auth_methods_supported: [...methods].sort(),
    revocation_endpoint_auth_methods_supported: [...methods].sort(),
    // RFC 8705 §3.3.
    tls_client_certificate_bound_access_tokens: true,
    // RFC 9449 §5.1.
    dpop_signing_alg_values_supported: [...snapshot.dpop.algorithms],
    // RFC 8414 §2 marks it REQUIRED; no authorization endpoint, so no response type.
    response_types_supported: [],
  };
}

/** `GET /.well-known/oauth-authorization-server` (RFC 8414 §3). */
export function serveTokenServiceMetadata(req: IncomingMessage, res: ServerResponse, deps: TokenServiceDeps, _url: URL): void {
  if (!onlyGet(req, res)) return;
  const metadata = tokenServiceMetadata(deps.snapshot());
  if (metadata === null) return sendJson(res, 404, { error: 'not_found' }, { 'cache-control': 'no-store' });
  sendJson(res, 200, metadata, { 'cache-control': `public, max-age=${JWKS_MAX_AGE_SECONDS}` }, req.method === 'HEAD');
}

/** What a verified token of this service says (signature, `iss` and `typ` checked; not yet time or revocation). */
interface OwnToken {
  readonly claims: Record<string, unknown>;
  readonly jti: string;
  readonly exp: number;
  readonly clientId: string;
}

/** Verifies `token` as one of ours: our key by kid, our `iss`, `typ: at+jwt`. Null for anything else. */
async function verifyOwnToken(token: string, deps: TokenServiceDeps): Promise<OwnToken | null> {
  const service = deps.snapshot().tokenService;
  if (service === null || token.length > MAX_TOKEN_LENGTH) return null;
  let kid: unknown;
  let alg: unknown;
  let typ: unknown;
  try {
    ({ kid, alg, typ } = decodeProtectedHeader(token));
  } catch {
    return null;
  }
  if (typeof kid !== 'string' || typeof alg !== 'string' || typeof typ !== 'string' || typ.toLowerCase() !== 'at+jwt') return null;
  const key = deps.keys.publicKey(kid);
  const published = deps.keys.list().find((candidate) => candidate.kid === kid);
  if (key === undefined || published === undefined || published.alg !== alg) return null;
  let payload: Uint8Array;
  try {
    // The algorithm is the key's own, never the token's choice (RFC 8725 §3.1).
    ({ payload } = await compactVerify(token, key, { algorithms: [published.alg] }));
  } catch {
    return null;
  }
  let claims: unknown;
  try {
    claims = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
  } catch {
    return null;
  }
  if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) return null;
  const fields = claims as Record<string, unknown>;
  if (fields['iss'] !== service.issuer) return null;
  const { jti, exp, client_id: clientId } = fields;
  if (typeof jti !== 'string' || jti === '' || typeof clientId !== 'string' || typeof exp !== 'number' || !Number.isFinite(exp)) return null;
  return { claims: fields, jti, exp, clientId };
}

/** Members of an active introspection answer (RFC 7662 §2.2), copied from the token. */
const INTROSPECTION_MEMBERS = ['scope', 'client_id', 'sub', 'aud', 'exp', 'iat', 'nbf', 'jti', 'iss', 'cnf', 'act'] as const;

/** `POST /oauth2/introspect` (RFC 7662). */
export async function serveTokenIntrospection(req: IncomingMessage, res: ServerResponse, deps: TokenServiceDeps, _url: URL): Promise<void> {
  const caller = await authenticatedForm(req, res, deps);
  if (caller === null) return;
  const token = caller.params.get('token');
  if (token === undefined || token === '') return sendJson(res, 400, { error: 'invalid_request', error_description: 'The token parameter is missing.' });
  const inactive = (): void => sendJson(res, 200, { active: false });
  const own = await verifyOwnToken(token, deps);
  if (own === null || own.clientId !== caller.clientId) return inactive();
  if (own.exp * 1000 <= caller.nowMs) return inactive();
  const view = deps.store.revocations.current();
  // Unknown revocation state: we cannot say it is active (fail closed, RFC 7662 §2.2 allows "false" for any reason).
  if ('unavailable' in view || view.revoked('token', own.jti)) return inactive();
  const answer: Record<string, unknown> = { active: true };
  for (const member of INTROSPECTION_MEMBERS) if (Object.hasOwn(own.claims, member)) answer[member] = own.claims[member];
  // RFC 7662 §2.2 token_type: how it must be presented (RFC 9449 §7.1: DPoP for a jkt-bound token).
  const cnf = own.claims['cnf'];
  answer['token_type'] = typeof cnf === 'object' && cnf !== null && Object.hasOwn(cnf, 'jkt') ? 'DPoP' : 'Bearer';
  sendJson(res, 200, answer);
}

/** `POST /oauth2/revoke` (RFC 7009): the client revokes one of its own tokens. Always 200 for a token (RFC 7009 §2.2). */
export async function serveTokenRevocation(req: IncomingMessage, res: ServerResponse, deps: TokenServiceDeps, _url: URL): Promise<void> {
  const caller = await authenticatedForm(req, res, deps);
  if (caller === null) return;
  const token = caller.params.get('token');
  if (token === undefined || token === '') return sendJson(res, 400, { error: 'invalid_request', error_description: 'The token parameter is missing.' });
  const own = await verifyOwnToken(token, deps);
  // RFC 7009 §2.2: an invalid token, or one not ours, is answered 200 too (nothing to revoke);
  // another client's token is not revoked: the caller is not its owner (§2.1).
  if (own === null || own.clientId !== caller.clientId || own.exp * 1000 <= caller.nowMs) return sendJson(res, 200, {});
  const view = deps.store.revocations.current();
  if (!('unavailable' in view) && view.revoked('token', own.jti)) return sendJson(res, 200, {});
  const snapshot = deps.snapshot();
  const revocation = { kind: 'token' as const, key: own.jti, reason: 'revoked by its client (RFC 7009)', actor: `client:${caller.clientId}`, at: caller.nowMs, expiresAt: own.exp * 1000 };
  const recordOf = (outcome: 'success' | 'failure', reason: string): object =>
    eventRecord(
      {
        action: 'revocation.created',
        outcome,
        reason,
        actor: revocation.actor,
        partnerId: caller.partnerId,
        configHash: snapshot.hash,
        revocation: { kind: 'token', key: own.jti, expiresAt: revocation.expiresAt },
        sourceIp: req.socket.remoteAddress ?? null,
      },
      new Date(caller.nowMs),
    );
  // The record comes first: a revocation nobody can account for is not made (SECURITY.md §2.13).
  if (!deps.audit(recordOf('success', 'applied'), caller.partnerId)) {
    return sendJson(res, 503, { error: 'temporarily_unavailable', error_description: 'The revocation could not be recorded; retry.' }, { 'retry-after': '5' });
  }
  try {
    await deps.store.revoke(revocation);
  } catch {
    deps.audit(recordOf('failure', 'state_unavailable'), caller.partnerId);
    // RFC 7009 §2.2.1: 503 tells the client to retry.
    return sendJson(res, 503, { error: 'temporarily_unavailable', error_description: 'The revocation could not be stored; retry.' }, { 'retry-after': '5' });
  }
  sendJson(res, 200, {});
}

interface AuthenticatedCaller {
  readonly params: ReadonlyMap<string, string>;
  readonly clientId: string;
  readonly partnerId: string;
  readonly nowMs: number;
}

/**
 * The POST form of an introspection or revocation request and the client that sent it, or null
 * after answering with the error (RFC 6749 §5.2 format, as RFC 7662 §2.3 and RFC 7009 §2.2.1 say).
 */
async function authenticatedForm(req: IncomingMessage, res: ServerResponse, deps: TokenServiceDeps): Promise<AuthenticatedCaller | null> {
  const snapshot = deps.snapshot();
  const nowMs = Date.now();
  if (snapshot.tokenService === null) {
    req.resume();
    sendJson(res, 404, { error: 'not_found' });
    return null;
  }
  if (req.method !== 'POST') {
    req.resume();
    sendJson(res, 405, { error: 'invalid_request', error_description: 'Only POST is allowed.' }, { allow: 'POST' });
    return null;
  }
  const contentType = req.headers['content-type'];
  if (typeof contentType !== 'string' || contentType.split(';', 1)[0]!.trim().toLowerCase() !== 'application/x-www-form-urlencoded') {
    req.resume();
    sendJson(res, 400, { error: 'invalid_request', error_description: 'The body must be application/x-www-form-urlencoded.' });
    return null;
  }
  const body = await readForm(req);
  const form = body === null ? null : parseForm(body);
  if (form === null || !form.ok) {
    sendJson(res, 400, { error: 'invalid_request', error_description: 'The body is not a valid form (size, encoding or a repeated parameter).' });
    return null;
  }
  const socket = req.socket instanceof TLSSocket ? req.socket : null;
  const authRequest: ClientAuthRequest = { params: form.params, authorization: headerValues(req, 'authorization'), certificate: clientCertificate(socket, snapshot), nowMs };
  let auth: ClientAuthResult;
  try {
    auth = await authenticateClient(authRequest, { snapshot, store: deps.store });
  } catch {
    sendJson(res, 503, { error: 'temporarily_unavailable' }, { 'retry-after': '5' });
    return null;
  }
  if (!auth.ok) {
    const status = auth.error === 'invalid_client' ? 401 : auth.error === 'temporarily_unavailable' ? 503 : 400;
    const realm = snapshot.tokenService.issuer.replace(/["\\\x00-\x1f\x7f]/g, '');
    sendJson(res, status, { error: auth.error }, status === 401 ? { 'www-authenticate': `Basic realm="${realm}"` } : {});
    return null;
  }
  const view = deps.store.revocations.current();
  if (!('unavailable' in view) && view.revoked('credential', auth.client.id)) {
    sendJson(res, 401, { error: 'invalid_client' });
    return null;
  }
  return { params: form.params, clientId: auth.client.clientId, partnerId: auth.client.partnerId, nowMs };
}

/** The TLS client certificate as `authenticateClient` expects it (same judgement as the data plane). */
function clientCertificate(socket: TLSSocket | null, snapshot: Snapshot): ClientAuthRequest['certificate'] {
  if (socket === null) return null;
  const peer = socket.getPeerX509Certificate();
  if (peer === undefined) return null;
  const identity = connectionIdentity(socket, snapshot).result ?? { ok: false as const, reason: 'tls.untrusted_ca' as const, detail: 'no partner trusts this certificate', facts: null };
  return { leaf: peer, x5t: Buffer.from(peer.fingerprint256.replace(/:/g, ''), 'hex').toString('base64url'), identity };
}

function headerValues(req: IncomingMessage, name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]!.toLowerCase() === name) values.push(req.rawHeaders[i + 1]!);
  return values;
}

async function readForm(req: IncomingMessage): Promise<string | null> {
  if (Number(req.headers['content-length'] ?? 0) > MAX_FORM_BYTES) {
    req.resume();
    return null;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_FORM_BYTES) {
        req.resume();
        return null;
      }
      chunks.push(chunk);
    }
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks));
  } catch {
    return null;
  }
}

function onlyGet(req: IncomingMessage, res: ServerResponse): boolean {
  if (req.method === 'GET' || req.method === 'HEAD') return true;
  req.resume();
  sendJson(res, 405, { error: 'invalid_request' }, { allow: 'GET, HEAD' });
  return false;
}

function sendJson(res: ServerResponse, status: number, body: object, headers: Readonly<Record<string, string>> = {}, headOnly = false): void {
  if (res.headersSent) return;
  const payload = JSON.stringify(body);
  // RFC 7662 §2.2 and RFC 6749 §5.1: answers about tokens are not cached (the JWKS and metadata override this).
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers, 'content-length': Buffer.byteLength(payload) });
  res.end(headOnly ? undefined : payload);
}

export { TOKEN_ENDPOINT_PATH };
