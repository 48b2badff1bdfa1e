/**
 * `POST /oauth2/token`: the client credentials grant (RFC 6749 §4.4) of the gateway's token
 * service (issue 5; SECURITY.md §2.3 OA-03/04/05/08/09, §2.4 MT-01…MT-05, §2.5 DP-08, §2.8).
 *
 * One request, in this order, the first failure deciding the answer:
 * 1. POST, `application/x-www-form-urlencoded`, bounded body, no repeated parameter (TK-08);
 * 2. client authentication (`client-auth.ts`): exactly one method, the registered one;
 * 3. the partner may still get tokens: active (configured status and run-time override), not
 *    revoked as a credential, with a current agreement — otherwise `unauthorized_client`;
 * 4. `grant_type=client_credentials`, or token exchange (RFC 8693, `exchange.ts`: steps 5 and 6
 *    are then decided against the subject token, and can only narrow it) — anything else
 *    `unsupported_grant_type` (no password grant, no refresh tokens: OA-04, OA-08);
 * 5. one API, named by `resource` (RFC 8707) or `audience`: the token's `aud` is that API alone;
 * 6. scopes: the requested ones must all be granted (`invalid_scope` otherwise — never a silent
 *    cut, OA-03); none requested means every scope the partner's grants give for the API;
 * 7. sender constraint: a `DPoP` proof (RFC 9449 §5, DP-08) gives `cnf.jkt` and `token_type`
 *    DPoP; a client certificate of the client's partner gives `cnf.x5t#S256` (RFC 8705 §3,
 *    MT-05); neither is refused unless bearer tokens were acknowledged;
 * 8. the record is written, then the token signed and returned. A token whose issuance cannot be
 *    recorded is not issued.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { ClientCredential, CompiledApi, CompiledPartner, CompiledTokenService, Snapshot } from '../config/snapshot.ts';
import { verifyDpopProof } from '../authn/dpop.ts';
import { eventRecord } from '../audit/event-record.ts';
import type { EventInput } from '../audit/event-record.ts';
import { connectionIdentity } from '../pipeline/transport-identity.ts';
import { authenticateClient } from './client-auth.ts';
import { ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT_TYPE, decideExchange } from './exchange.ts';
import type { ExchangeDecision, ExchangeFacts } from './exchange.ts';
import type { ClientAuthMethod, ClientAuthRequest, RemoteClientKeys } from './client-auth.ts';
import type { TokenServiceDeps } from './types.ts';

export const TOKEN_ENDPOINT_PATH = '/oauth2/token';
/** Largest form body accepted: an assertion is at most 8 KiB, the rest is short. */
export const MAX_TOKEN_REQUEST_BYTES = 16 * 1024;
const MAX_PARAMETERS = 32;
const MAX_SCOPES = 64;

export type TokenError =
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_grant'
  | 'invalid_scope'
  | 'invalid_target'
  | 'unauthorized_client'
  | 'unsupported_grant_type'
  | 'invalid_dpop_proof'
  | 'use_dpop_nonce'
  | 'temporarily_unavailable';

const ERROR_STATUS: Readonly<Record<TokenError, number>> = {
  invalid_request: 400,
  invalid_client: 401,
  invalid_grant: 400,
  invalid_scope: 400,
  invalid_target: 400,
  unauthorized_client: 400,
  unsupported_grant_type: 400,
  invalid_dpop_proof: 400,
  use_dpop_nonce: 400,
  temporarily_unavailable: 503,
};

/** Client-facing descriptions: fixed text, never a detail (SECURITY.md ER-06). */
const ERROR_DESCRIPTION: Readonly<Record<TokenError, string>> = {
  invalid_request: 'The request is missing a parameter, repeats one, or is malformed.',
  invalid_client: 'Client authentication failed.',
  invalid_grant: 'The grant is invalid.',
  invalid_scope: 'A requested scope is not granted to this client for this resource.',
  invalid_target: 'The requested resource is unknown or not granted to this client.',
  unauthorized_client: 'This client may not obtain tokens at this time.',
  unsupported_grant_type: 'Only the client_credentials and token exchange grants are supported.',
  invalid_dpop_proof: 'The DPoP proof is invalid.',
  use_dpop_nonce: 'A DPoP proof with the server nonce is required.',
  temporarily_unavailable: 'The token service is temporarily unavailable.',
};

/** What the listener knows about the request beyond the HTTP message. */
export interface TokenRequestFacts {
  /** The TLS connection, when the listener is TLS (its client certificate authenticates or binds). */
  readonly tlsSocket: TLSSocket | null;
  readonly sourceIp: string | null;
  /**
   * The token endpoint's URL as clients address it (DPoP `htu`, RFC 9449 §4.3 check 9). Default:
   * `tokenEndpointUrl(service)`, the URL the metadata advertises.
   */
  readonly endpointUrl?: string;
  /** ms since the epoch; default `Date.now()`. */
  readonly nowMs?: number;
}

export interface TokenEndpointOptions {
  /** Key sets of `jwks_uri` clients (default: a module-wide cache). */
  readonly remoteKeys?: RemoteClientKeys;
}

/** `<issuer>/oauth2/token`: the token endpoint the metadata (RFC 8414) names. */
export function tokenEndpointUrl(service: CompiledTokenService): string {
  return `${service.issuer.replace(/\/+$/, '')}${TOKEN_ENDPOINT_PATH}`;
}

interface Issuance {
  client: ClientCredential | null;
  method: ClientAuthMethod | null;
  api: CompiledApi | null;
  scopes: readonly string[];
  lifetimeMs: number | null;
  cnfType: 'x5t#S256' | 'jkt' | null;
  cnfThumbprint: string | null;
  jti: string | null;
  /** Token exchange (RFC 8693): what is known of the subject token and the actors. */
  exchange: ExchangeFacts | null;
}

interface Refusal {
  readonly error: TokenError;
  readonly reason: string;
  readonly detail: string;
  readonly headers?: Readonly<Record<string, string>>;
}

/** Handles one request to `/oauth2/token`; always answers and never rejects (an internal fault is a 500). */
export async function handleTokenRequest(req: IncomingMessage, res: ServerResponse, facts: TokenRequestFacts, deps: TokenServiceDeps, options: TokenEndpointOptions = {}): Promise<void> {
  try {
    await handle(req, res, facts, deps, options);
  } catch {
    // Fail closed: no token, no detail to the client.
    send(res, 500, { error: 'server_error', error_description: 'The token service failed to process the request.' });
  }
}

async function handle(req: IncomingMessage, res: ServerResponse, facts: TokenRequestFacts, deps: TokenServiceDeps, options: TokenEndpointOptions): Promise<void> {
  const snapshot = deps.snapshot();
  const nowMs = facts.nowMs ?? Date.now();
  const issuance: Issuance = { client: null, method: null, api: null, scopes: [], lifetimeMs: null, cnfType: null, cnfThumbprint: null, jti: null, exchange: null };
  let usedAuthorizationHeader = false;

  const refuse = (refusal: Refusal): void => {
    const status = ERROR_STATUS[refusal.error];
    const headers: Record<string, string> = { ...refusal.headers };
    // RFC 6749 §5.2: 401 for a failed client authentication, with a challenge (RFC 9110 §15.5.2).
    if (refusal.error === 'invalid_client') headers['www-authenticate'] = usedAuthorizationHeader ? `Basic realm="${realm(snapshot)}", error="invalid_client"` : `Basic realm="${realm(snapshot)}"`;
    record(deps, snapshot, facts, issuance, { action: 'token.refused', outcome: 'failure', reason: refusal.reason, note: `${refusal.error}: ${refusal.detail}` }, nowMs);
    send(res, status, { error: refusal.error, error_description: ERROR_DESCRIPTION[refusal.error] }, headers);
  };

  const service = snapshot.tokenService;
  if (service === null) {
    send(res, 404, { error: 'invalid_request', error_description: 'No token service is configured.' });
    return;
  }
  if (req.method !== 'POST') {
    drain(req);
    return refuse({ error: 'invalid_request', reason: 'request.method', detail: `method ${req.method ?? '?'} (only POST)`, headers: { allow: 'POST' } });
  }
  if (!deps.auditHealthy()) {
    drain(req);
    return refuse({ error: 'temporarily_unavailable', reason: 'audit.unavailable', detail: 'the audit trail is not accepting records', headers: { 'retry-after': '5' } });
  }
  const contentType = req.headers['content-type'];
  if (typeof contentType !== 'string' || contentType.split(';', 1)[0]!.trim().toLowerCase() !== 'application/x-www-form-urlencoded') {
    drain(req);
    return refuse({ error: 'invalid_request', reason: 'request.content_type', detail: 'the body is not application/x-www-form-urlencoded' });
  }
  const body = await readBody(req, MAX_TOKEN_REQUEST_BYTES);
  if (!body.ok) return refuse({ error: 'invalid_request', reason: 'request.body', detail: body.detail });
  const form = parseForm(body.text);
  if (!form.ok) return refuse({ error: 'invalid_request', reason: 'request.form', detail: form.detail });
  const params = form.params;

  // 2. Client authentication.
  const authorization = headerValues(req, 'authorization');
  usedAuthorizationHeader = authorization.length > 0;
  const certificate = clientCertificate(facts.tlsSocket, snapshot);
  const authRequest: ClientAuthRequest = { params, authorization, certificate, nowMs };
  const auth = await authenticateClient(authRequest, { snapshot, store: deps.store, ...(options.remoteKeys ? { remoteKeys: options.remoteKeys } : {}) });
  if (!auth.ok) {
    issuance.client = auth.client;
    return refuse({ error: auth.error, reason: auth.reason, detail: auth.detail, ...(auth.error === 'temporarily_unavailable' ? { headers: { 'retry-after': '5' } } : {}) });
  }
  const { client } = auth;
  issuance.client = client;
  issuance.method = auth.method;

  // 3. Renewal is re-authentication: a partner that may not call may not get a token either.
  const view = deps.store.revocations.current();
  if ('unavailable' in view) return refuse({ error: 'temporarily_unavailable', reason: 'state.unavailable', detail: view.unavailable, headers: { 'retry-after': '5' } });
  if (view.revoked('credential', client.id)) return refuse({ error: 'invalid_client', reason: 'credential.revoked', detail: `credential ${client.id} is revoked` });
  if (auth.x5t !== null && certificate !== null && certificateRevoked(view, certificate)) {
    return refuse({ error: 'invalid_client', reason: 'tls.revoked_gateway', detail: 'the client certificate is revoked through the gateway' });
  }
  const partner = snapshot.partners.get(client.partnerId);
  if (partner === undefined) return refuse({ error: 'invalid_client', reason: 'partner.unknown', detail: `partner ${client.partnerId} is not configured` });
  const standing = partnerStanding(partner, view.partnerStatus(partner.id)?.status ?? null, nowMs);
  if (standing !== null) return refuse({ error: 'unauthorized_client', reason: standing.reason, detail: standing.detail });

  // 4. The grant type.
  const grantType = params.get('grant_type');
  if (grantType === undefined) return refuse({ error: 'invalid_request', reason: 'request.grant_type_missing', detail: 'grant_type is missing' });
  if (grantType !== 'client_credentials' && grantType !== TOKEN_EXCHANGE_GRANT_TYPE) return refuse({ error: 'unsupported_grant_type', reason: 'request.grant_type_unsupported', detail: `grant_type ${JSON.stringify(grantType.slice(0, 64))}` });
  // SECURITY.md TX-06: exchange is off unless the client is allowed it.
  if (grantType === TOKEN_EXCHANGE_GRANT_TYPE && !client.tokenExchange) {
    return refuse({ error: 'unauthorized_client', reason: 'exchange.not_allowed', detail: `client ${client.clientId} may not use token exchange` });
  }

  // Lifetime: the most specific configured value (client, then API, the shorter of both), the
  // service default otherwise, never above the ceiling (OA-09).
  const configuredLifetimeMs = (forApi: CompiledApi): number => {
    const specific = [client.tokenLifetimeMs, forApi.tokenLifetimeMs].filter((value): value is number => value !== null);
    return Math.min(specific.length > 0 ? Math.min(...specific) : service.tokenLifetimeMs, service.maxTokenLifetimeMs);
  };

  let api: CompiledApi;
  let scopes: readonly string[];
  let lifetimeSeconds: number;
  let exchanged: Extract<ExchangeDecision, { ok: true }> | null = null;
  if (grantType === TOKEN_EXCHANGE_GRANT_TYPE) {
    // RFC 8693: steps 5, 6 and the lifetime are decided against the subject token (exchange.ts).
    const facts: ExchangeFacts = { subjectJti: null, subject: null, actors: [], purpose: null };
    issuance.exchange = facts;
    const decision = await decideExchange({ params, client, partner, snapshot, deps, nowMs, facts, parseScope: parseScopeParameter, configuredLifetimeMs });
    if (!decision.ok) {
      issuance.api = decision.api;
      issuance.scopes = decision.scopes;
      return refuse({ error: decision.error, reason: decision.reason, detail: decision.detail, ...(decision.error === 'temporarily_unavailable' ? { headers: { 'retry-after': '5' } } : {}) });
    }
    exchanged = decision;
    api = decision.api;
    scopes = decision.scopes;
    lifetimeSeconds = decision.lifetimeSeconds;
    issuance.api = api;
    issuance.scopes = scopes;
  } else {
    // 5. One API, by its audience.
    const resource = params.get('resource');
    const audience = params.get('audience');
    if (resource !== undefined && audience !== undefined && resource !== audience) return refuse({ error: 'invalid_request', reason: 'request.target_conflict', detail: 'resource and audience name different APIs' });
    const target = resource ?? audience;
    if (target === undefined) return refuse({ error: 'invalid_request', reason: 'request.target_missing', detail: 'the request names no API (resource or audience)' });
    const found = [...snapshot.apis.values()].find((candidate) => candidate.audience === target) ?? null;
    if (found === null) return refuse({ error: 'invalid_target', reason: 'target.unknown', detail: `no API has the audience ${JSON.stringify(target.slice(0, 256))}` });
    api = found;
    issuance.api = api;
    const grants = partner.grants.get(api.id) ?? [];
    if (grants.length === 0) return refuse({ error: 'invalid_target', reason: 'grant.missing', detail: `partner ${partner.id} has no grant for API ${api.id}` });

    // 6. Scopes: requested ∩ granted, where asking for more is an error (OA-03).
    const granted: string[] = [];
    for (const grant of grants) for (const scope of grant.scopes) if (!granted.includes(scope)) granted.push(scope);
    const requested = params.get('scope');
    if (requested === undefined) {
      scopes = granted;
    } else {
      const parsed = parseScopeParameter(requested);
      if (parsed === null) return refuse({ error: 'invalid_scope', reason: 'scope.malformed', detail: 'scope is not a space-separated list of scope tokens (RFC 6749 §3.3)' });
      const missing = parsed.filter((scope) => !granted.includes(scope));
      if (missing.length > 0) return refuse({ error: 'invalid_scope', reason: 'scope.not_granted', detail: `not granted to partner ${partner.id} for API ${api.id}: ${missing.slice(0, 10).join(' ')}` });
      scopes = parsed;
    }
    issuance.scopes = scopes;
    lifetimeSeconds = Math.max(1, Math.floor(configuredLifetimeMs(api) / 1000));
  }

  // 7. Sender constraint.
  const cnf: Record<string, string> = {};
  let tokenType: 'DPoP' | 'Bearer' = 'Bearer';
  const dpopHeaders = headerValues(req, 'dpop');
  if (dpopHeaders.length > 0) {
    const result = await verifyDpopProofSafely(dpopHeaders, facts.endpointUrl ?? tokenEndpointUrl(service), nowMs, snapshot, deps);
    if ('unavailable' in result) return refuse({ error: 'temporarily_unavailable', reason: 'state.unavailable', detail: result.unavailable, headers: { 'retry-after': '5' } });
    if (!result.ok) {
      // RFC 9449 §8: a missing or stale nonce is answered with a fresh one.
      const nonce = result.useNonce;
      return refuse({ error: nonce !== undefined ? 'use_dpop_nonce' : 'invalid_dpop_proof', reason: result.reason, detail: result.detail, ...(nonce !== undefined ? { headers: { 'dpop-nonce': nonce } } : {}) });
    }
    cnf['jkt'] = result.jkt;
    tokenType = 'DPoP';
  }
  const boundCertificate = auth.x5t ?? partnerCertificate(certificate, partner.id);
  if (boundCertificate === 'foreign') return refuse({ error: 'invalid_client', reason: 'tls.partner_mismatch', detail: `the client certificate authenticates another partner than ${partner.id}` });
  if (boundCertificate !== null) cnf['x5t#S256'] = boundCertificate;
  if (Object.keys(cnf).length === 0 && !service.allowBearer) {
    return refuse({ error: 'invalid_request', reason: 'sender_constraint.missing', detail: 'the request has neither a client certificate nor a DPoP proof, and bearer tokens are not issued' });
  }
  issuance.cnfType = cnf['jkt'] !== undefined ? 'jkt' : cnf['x5t#S256'] !== undefined ? 'x5t#S256' : null;
  issuance.cnfThumbprint = cnf['jkt'] ?? cnf['x5t#S256'] ?? null;

  // 8. Issuance.
  const iat = Math.floor(nowMs / 1000);
  const jti = randomUUID();
  issuance.lifetimeMs = lifetimeSeconds * 1000;
  issuance.jti = jti;

  // RFC 9068 §2.2, plus the partner and its agreement for the gateway's records. An exchanged
  // token keeps the subject token's `sub` and names the caller in `act` (RFC 8693 §4.1); its
  // `client_id` is the caller, to whom it is issued (RFC 9068 §2.2).
  const claims: Record<string, unknown> = {
    iss: service.issuer,
    sub: exchanged?.claims.sub ?? client.clientId,
    aud: api.audience,
    client_id: client.clientId,
    iat,
    exp: iat + lifetimeSeconds,
    jti,
    scope: scopes.join(' '),
    ...(Object.keys(cnf).length > 0 ? { cnf } : {}),
    partner_id: partner.id,
    agreement_id: partner.agreement?.id ?? null,
    ...(exchanged !== null ? { act: exchanged.claims.act, ...(exchanged.claims.purpose !== undefined ? { purpose: exchanged.claims.purpose } : {}) } : {}),
  };

  let accessToken: string;
  try {
    accessToken = await deps.keys.sign(claims, 'at+jwt');
  } catch (error) {
    return refuse({ error: 'temporarily_unavailable', reason: 'keys.unavailable', detail: `signing failed: ${error instanceof Error ? error.message : String(error)}`, headers: { 'retry-after': '5' } });
  }
  // The record first: a token that cannot be recorded is not handed out.
  const action = exchanged !== null ? 'token.exchanged' : 'token.issued';
  if (!record(deps, snapshot, facts, issuance, { action, outcome: 'success', reason: exchanged !== null ? 'exchanged' : 'issued' }, nowMs)) {
    send(res, 503, { error: 'temporarily_unavailable', error_description: ERROR_DESCRIPTION.temporarily_unavailable }, { 'retry-after': '5' });
    return;
  }
  // RFC 6749 §5.1 (no refresh_token: §4.4.3); an exchange adds issued_token_type (RFC 8693 §2.2.1).
  send(res, 200, {
    access_token: accessToken,
    ...(exchanged !== null ? { issued_token_type: ACCESS_TOKEN_TYPE } : {}),
    token_type: tokenType,
    expires_in: lifetimeSeconds,
    scope: scopes.join(' '),
  });
}

// ---------------------------------------------------------------------------------------------

function partnerStanding(partner: CompiledPartner, override: CompiledPartner['status'] | null, nowMs: number): { reason: string; detail: string } | null {
  const rank = { active: 0, suspended: 1, offboarded: 2 } as const;
  // A run-time status only ever restricts (as on the data plane, src/pipeline/credential.ts).
  const status = override !== null && rank[override] > rank[partner.status] ? override : partner.status;
  if (status !== 'active') return { reason: `partner.${status}`, detail: `partner ${partner.id} is ${status}` };
  if (partner.agreement === null) return { reason: 'partner.agreement_missing', detail: `partner ${partner.id} has no agreement` };
  // Written `!(now < expiry)` so an invalid clock reads as expired (as src/policy/authorize.ts).
  if (!(nowMs < partner.agreement.expiresAt)) return { reason: 'partner.agreement_expired', detail: `agreement ${partner.agreement.id} of partner ${partner.id} ended at ${new Date(partner.agreement.expiresAt).toISOString()}` };
  return null;
}

function clientCertificate(socket: TLSSocket | null, snapshot: Snapshot): ClientAuthRequest['certificate'] {
  if (socket === null) return null;
  const identity = connectionIdentity(socket, snapshot);
  const peer = socket.getPeerX509Certificate();
  if (peer === undefined) return null;
  const x5t = Buffer.from(peer.fingerprint256.replace(/:/g, ''), 'hex').toString('base64url');
  // connectionIdentity judged the same leaf; an unjudged one (no partner trust at all) is untrusted.
  const judged = identity.result ?? { ok: false as const, reason: 'tls.untrusted_ca' as const, detail: 'no partner trusts this certificate', facts: null };
  return { leaf: peer, x5t, identity: judged };
}

/** With private_key_jwt (or a secret), a certificate binds only if it authenticates the same partner. */
function partnerCertificate(certificate: ClientAuthRequest['certificate'], partnerId: string): string | 'foreign' | null {
  if (certificate === null || !certificate.identity.ok) return null;
  return certificate.identity.partnerId === partnerId ? certificate.x5t : 'foreign';
}

function certificateRevoked(view: { revoked(kind: 'certificate', key: string): unknown }, certificate: NonNullable<ClientAuthRequest['certificate']>): boolean {
  const fingerprint = certificate.leaf.fingerprint256.replace(/:/g, '').toLowerCase();
  if (view.revoked('certificate', `sha256:${fingerprint}`)) return true;
  const serial = certificate.leaf.serialNumber.toLowerCase().replace(/^0+(?=.)/, '');
  return Boolean(view.revoked('certificate', `serial:${serial}@${certificate.leaf.issuer}`));
}

async function verifyDpopProofSafely(
  headers: readonly string[],
  htu: string,
  nowMs: number,
  snapshot: Snapshot,
  deps: TokenServiceDeps,
): Promise<Awaited<ReturnType<typeof verifyDpopProof>> | { readonly unavailable: string }> {
  try {
    return await verifyDpopProof({
      headerValues: headers,
      method: 'POST',
      htu,
      accessToken: null,
      nowMs,
      settings: { algorithms: snapshot.dpop.algorithms, proofLifetimeMs: snapshot.dpop.proofLifetimeMs, nonce: snapshot.dpop.nonce ? deps.dpopNonces : null },
      replay: (key, ttlMs) => deps.store.setIfAbsent(key, ttlMs),
    });
  } catch (error) {
    return { unavailable: `the DPoP replay cache is unavailable: ${error instanceof Error ? error.message : String(error)}` };
  }
}

function record(
  deps: TokenServiceDeps,
  snapshot: Snapshot,
  facts: TokenRequestFacts,
  issuance: Issuance,
  event: Pick<EventInput, 'action' | 'outcome' | 'reason' | 'note'>,
  nowMs: number,
): boolean {
  const partnerId = issuance.client?.partnerId ?? null;
  const input: EventInput = {
    ...event,
    actor: issuance.client?.clientId ?? null,
    partnerId,
    configHash: snapshot.hash,
    sourceIp: facts.sourceIp,
    token: {
      clientId: issuance.client?.clientId ?? null,
      credentialId: issuance.client?.id ?? null,
      clientAuthMethod: issuance.method,
      apiId: issuance.api?.id ?? null,
      scopes: issuance.scopes,
      lifetimeMs: issuance.lifetimeMs,
      cnfType: issuance.cnfType,
      cnfThumbprint: issuance.cnfThumbprint,
      jti: issuance.jti,
    },
    ...(issuance.exchange !== null
      ? { exchange: { subjectJti: issuance.exchange.subjectJti, subject: issuance.exchange.subject, actors: issuance.exchange.actors, purpose: issuance.exchange.purpose } }
      : {}),
  };
  try {
    return deps.audit(eventRecord(input, new Date(nowMs)), partnerId);
  } catch {
    return false;
  }
}

function send(res: ServerResponse, status: number, body: object, headers: Readonly<Record<string, string>> = {}): void {
  if (res.headersSent) return;
  const payload = JSON.stringify(body);
  // RFC 6749 §5.1: tokens and errors are never cached.
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'cache-control': 'no-store', pragma: 'no-cache', 'content-length': Buffer.byteLength(payload) });
  res.end(payload);
}

function realm(snapshot: Snapshot): string {
  return (snapshot.tokenService?.issuer ?? 'portcullis').replace(/["\\\x00-\x1f\x7f]/g, '');
}

function headerValues(req: IncomingMessage, name: string): string[] {
  const values: string[] = [];
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) values.push(raw[i + 1]!);
  return values;
}

function drain(req: IncomingMessage): void {
  req.resume();
}

async function readBody(req: IncomingMessage, limit: number): Promise<{ ok: true; text: string } | { ok: false; detail: string }> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) {
    drain(req);
    return { ok: false, detail: `the body is ${declared} bytes, the limit is ${limit}` };
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > limit) {
        drain(req);
        return { ok: false, detail: `the body exceeds ${limit} bytes` };
      }
      chunks.push(chunk);
    }
  } catch (error) {
    return { ok: false, detail: `the body could not be read: ${error instanceof Error ? error.message : String(error)}` };
  }
  try {
    return { ok: true, text: new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks)) };
  } catch {
    return { ok: false, detail: 'the body is not UTF-8' };
  }
}

/**
 * `application/x-www-form-urlencoded` (RFC 6749 Appendix B), strictly: a malformed escape is an
 * error rather than kept as text, a repeated parameter is refused (RFC 6749 §3.2, TK-08), and an
 * empty value counts as absent (RFC 6749 §3.1).
 */
export function parseForm(text: string): { ok: true; params: ReadonlyMap<string, string> } | { ok: false; detail: string } {
  const params = new Map<string, string>();
  if (text === '') return { ok: true, params };
  const pairs = text.split('&');
  if (pairs.length > MAX_PARAMETERS) return { ok: false, detail: `more than ${MAX_PARAMETERS} parameters` };
  const seen = new Set<string>();
  for (const pair of pairs) {
    if (pair === '') continue;
    const equals = pair.indexOf('=');
    let name: string;
    let value: string;
    try {
      name = decodeURIComponent((equals === -1 ? pair : pair.slice(0, equals)).replace(/\+/g, ' '));
      value = equals === -1 ? '' : decodeURIComponent(pair.slice(equals + 1).replace(/\+/g, ' '));
    } catch {
      return { ok: false, detail: 'a parameter has an invalid percent-encoding' };
    }
    if (seen.has(name)) return { ok: false, detail: `parameter ${JSON.stringify(name.slice(0, 64))} is repeated` };
    seen.add(name);
    if (value !== '') params.set(name, value);
  }
  return { ok: true, params };
}

/** RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), separated by single spaces. */
function parseScopeParameter(value: string): string[] | null {
  if (!/^[\x21\x23-\x5b\x5d-\x7e]+( [\x21\x23-\x5b\x5d-\x7e]+)*$/.test(value)) return null;
  const scopes = [...new Set(value.split(' '))];
  return scopes.length > MAX_SCOPES ? null : scopes;
}
