/**
 * Stage 3 — credential: find the one credential the request carries, check it with the checker
 * of its type, and bind it to exactly one partner credential of the configuration.
 *
 * RFC 6750: no credential → 401 with a `Bearer` challenge and no error code (§3); a token that
 * cannot be accepted → 401 `invalid_token` (§3.1); more than one credential, or a token in the
 * query string, → 400 `invalid_request` (§2, §3.1; RFC 9700 §4.3.2). A route lists the credential
 * types it accepts; a token is classified by its shape, once (a JWT-shaped token is never sent to
 * introspection, SECURITY.md IN-06).
 */
import type { Principal } from '../authn/principal.ts';
import type { Revocation } from '../state/store.ts';
import { verifyApiKey } from '../authn/api-key.ts';
import { isJoseCompactShaped } from '../authn/introspection.ts';
import type { CompiledCredential, CompiledRoute } from '../config/snapshot.ts';
import type { RefusalReason } from '../errors.ts';
import { bearerChallenge } from './challenge.ts';
import { dpopChallenge, verifyDpopProof } from '../authn/dpop.ts';
import { checkBinding } from '../authn/binding.ts';
import { requestRevocations } from './context.ts';
import type { Refusal, RequestContext, StageOutcome } from './context.ts';

/** RFC 6750 §2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
const API_KEY_HEADER = 'x-api-key';

type Presented =
  | { readonly kind: 'none' }
  | { readonly kind: 'bearer'; readonly token: string; readonly scheme: 'Bearer' | 'DPoP' }
  | { readonly kind: 'api_key'; readonly key: string }
  | { readonly kind: 'refused'; readonly refusal: Refusal };

export function credential(ctx: RequestContext): StageOutcome | Promise<StageOutcome> {
  const route = ctx.route;
  if (route === null || route.auth !== 'required') return undefined;
  const presented = presentedCredential(ctx, route);
  switch (presented.kind) {
    case 'refused':
      return presented.refusal;
    case 'none':
      // A route that accepts the client certificate alone: the partner it authenticated.
      if (route.credentials.includes('mtls') && ctx.clientCertificate?.partnerId) return checkCertificate(ctx, ctx.clientCertificate.partnerId);
      // RFC 9449 §7.1 / SECURITY.md DP-07: both schemes are accepted, so both are offered.
      return { reason: 'token.missing', headers: { 'www-authenticate': `${bearerChallenge(ctx, null)}, ${dpopChallenge(null, ctx.snapshot.dpop.algorithms)}` } };
    case 'api_key':
      return then(checkApiKey(ctx, presented.key), () => senderConstraint(ctx, route, null, 'Bearer'));
    case 'bearer':
      return then(checkToken(ctx, route, presented.token), () => senderConstraint(ctx, route, presented.token, presented.scheme));
  }
}

/** Runs `next` when `outcome` let the request through, without a promise when neither needs one. */
function then(outcome: StageOutcome | Promise<StageOutcome>, next: () => StageOutcome | Promise<StageOutcome>): StageOutcome | Promise<StageOutcome> {
  if (outcome instanceof Promise) return outcome.then((settled) => settled ?? next());
  return outcome ?? next();
}

/** The client certificate is the credential, and its own sender constraint. */
function checkCertificate(ctx: RequestContext, partnerId: string): StageOutcome {
  const bound = ctx.snapshot.credentials.mtls.get(partnerId);
  return bindPrincipal(ctx, bound, {
    credentialType: 'mtls',
    claims: Object.freeze(Object.create(null)),
    scopes: new Set(),
    tokenId: null,
    issuer: null,
    expiresAt: null,
    longLived: false,
    detail: `client certificate of partner ${partnerId}`,
  });
}

/**
 * Sender-constrained tokens: a token bound to a certificate (RFC 8705 §3, `cnf.x5t#S256`) is
 * accepted only over a connection presenting that certificate; one bound to a DPoP key (RFC 9449,
 * `cnf.jkt`) only with the `DPoP` scheme and a valid proof of that key. Checked on every request,
 * after any cache: the binding is to this connection, this request.
 */
function senderConstraint(ctx: RequestContext, route: CompiledRoute, token: string | null, scheme: 'Bearer' | 'DPoP'): StageOutcome | Promise<StageOutcome> {
  const principal = ctx.principal!;
  const required = route.requireSenderConstrained || principal.partner.requireSenderConstrained;
  const certificateX5t = ctx.clientCertificate?.partnerId === principal.partner.id ? ctx.clientCertificate.facts.x5t : null;
  const bind = (dpopJkt: string | null): StageOutcome => {
    const binding = checkBinding({ claims: principal.claims, scheme, certificateX5t, dpopJkt, required });
    if (binding.ok) return undefined;
    return { reason: binding.reason, detail: binding.detail, headers: { 'www-authenticate': schemeChallenge(ctx, scheme, 'invalid_token') } };
  };
  if (scheme === 'Bearer' || token === null) return bind(null);
  const settings = ctx.snapshot.dpop;
  return verifyDpopProof({
    headerValues: headerValues(ctx, 'dpop'),
    method: ctx.method,
    htu: externalUri(ctx),
    accessToken: token,
    nowMs: Date.now(),
    settings: { algorithms: settings.algorithms, proofLifetimeMs: settings.proofLifetimeMs, nonce: settings.nonce ? ctx.services.dpopNonces : null },
    replay: ctx.services.replay,
  }).then(
    (proof): StageOutcome => {
    if (proof.ok) return bind(proof.jkt);
    const error = proof.reason === 'dpop.nonce_required' || proof.reason === 'dpop.nonce_invalid' ? 'use_dpop_nonce' : 'invalid_dpop_proof';
    return {
      reason: proof.reason,
      detail: proof.detail,
      headers: { 'www-authenticate': dpopChallenge(error, settings.algorithms), ...(proof.useNonce ? { 'dpop-nonce': proof.useNonce } : {}) },
    };
    },
    // The replay cache cannot say whether the proof was used before: fail closed.
    (error: unknown): StageOutcome => ({ reason: 'state.unavailable', detail: `DPoP replay cache: ${error instanceof Error ? error.message : String(error)}`, headers: { 'retry-after': '5' } }),
  );
}

/** RFC 9449 §7.1: a DPoP request gets a DPoP challenge; a Bearer one the RFC 6750 challenge. */
function schemeChallenge(ctx: RequestContext, scheme: 'Bearer' | 'DPoP', error: 'invalid_token'): string {
  return scheme === 'DPoP' ? dpopChallenge(error, ctx.snapshot.dpop.algorithms) : bearerChallenge(ctx, error);
}

function headerValues(ctx: RequestContext, lowercaseName: string): string[] {
  const raw = ctx.req.rawHeaders;
  const values: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === lowercaseName.length && raw[i]!.toLowerCase() === lowercaseName) values.push(raw[i + 1]!);
  }
  return values;
}

/** The URI the client used (RFC 9449 §4.3 check 9): scheme and authority as received, the canonical path, no query. */
function externalUri(ctx: RequestContext): string {
  const headers = ctx.req.headers as Record<string, string | string[] | undefined>;
  const authority = headers[':authority'] ?? headers['host'] ?? ctx.host;
  return `${ctx.listener.tls ? 'https' : 'http'}://${String(authority).toLowerCase()}${ctx.path}`;
}

/** Exactly one credential, in a place it may travel, or a precise refusal. */
function presentedCredential(ctx: RequestContext, route: CompiledRoute): Presented {
  const raw = ctx.req.rawHeaders;
  let authorization: string | null = null;
  let apiKey: string | null = null;
  let count = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 13 && name.toLowerCase() === 'authorization') {
      authorization = raw[i + 1]!;
      count++;
    } else if (name.length === API_KEY_HEADER.length && name.toLowerCase() === API_KEY_HEADER) {
      apiKey = raw[i + 1]!;
      count++;
    }
  }
  if (hasQueryToken(ctx.query)) {
    return refused(ctx, 'request.token_in_query', 'access_token in the query string is never accepted', 'invalid_request');
  }
  if (count > 1) return refused(ctx, 'request.multiple_credentials', `${count} credentials presented`, 'invalid_request');
  if (apiKey !== null) {
    if (!route.credentials.includes('api_key')) return refused(ctx, 'api_key.invalid', 'this route does not accept API keys', null, true);
    return { kind: 'api_key', key: apiKey };
  }
  if (authorization === null) return { kind: 'none' };
  // RFC 9110 §11.1: the scheme is case-insensitive; RFC 6750 §2.1 / RFC 9449 §7.1: exactly one
  // space, then b64token.
  const space = authorization.indexOf(' ');
  const schemeName = space > 0 ? authorization.slice(0, space).toLowerCase() : '';
  if (schemeName !== 'bearer' && schemeName !== 'dpop') {
    return refused(ctx, 'request.authorization_malformed', 'Authorization scheme is neither Bearer nor DPoP', 'invalid_token');
  }
  const token = authorization.slice(space + 1);
  if (!B64TOKEN.test(token)) return refused(ctx, 'request.authorization_malformed', `${schemeName === 'dpop' ? 'DPoP' : 'Bearer'} credentials are not a b64token`, 'invalid_token');
  return { kind: 'bearer', token, scheme: schemeName === 'dpop' ? 'DPoP' : 'Bearer' };
}

function hasQueryToken(query: string): boolean {
  if (query === '') return false;
  for (const pair of query.split('&')) {
    const name = pair.split('=', 1)[0]!;
    if (name === 'access_token' || decodeQueryName(name) === 'access_token') return true;
  }
  return false;
}

function decodeQueryName(name: string): string {
  try {
    return decodeURIComponent(name.replaceAll('+', ' '));
  } catch {
    return name;
  }
}

function refused(ctx: RequestContext, reason: RefusalReason, detail: string, error: 'invalid_request' | 'invalid_token' | null, challenge = true): Presented {
  const headers = challenge ? { 'www-authenticate': bearerChallenge(ctx, error) } : undefined;
  return { kind: 'refused', refusal: { reason, detail, ...(headers ? { headers } : {}) } };
}

function invalidToken(ctx: RequestContext, reason: RefusalReason, detail: string): Refusal {
  if (reason.startsWith('dependency.')) return { reason, detail, headers: { 'retry-after': '5' } };
  return { reason, detail, headers: { 'www-authenticate': bearerChallenge(ctx, 'invalid_token') } };
}

function checkToken(ctx: RequestContext, route: CompiledRoute, token: string): StageOutcome | Promise<StageOutcome> {
  const audience = route.api?.audience;
  if (!audience) return invalidToken(ctx, 'token.aud_mismatch', 'the route\'s API has no audience');
  // A JWS (3 segments) or JWE (5) shape goes to JWT validation, which names precisely what is
  // wrong with it; anything else is opaque. One classification, never a retry through the other
  // checker (SECURITY.md IN-06).
  const jwtShaped = isJoseCompactShaped(token);
  if (jwtShaped && route.credentials.includes('jwt')) {
    const outcome = ctx.checkers.jwt.verify(token, audience);
    return outcome instanceof Promise ? outcome.then((result) => afterJwt(ctx, result)) : afterJwt(ctx, outcome);
  }
  if (!jwtShaped && route.credentials.includes('introspection')) {
    // The API names the endpoint that knows its opaque tokens; each token is asked about once.
    const endpointId = route.api?.introspection ?? null;
    const endpoint = endpointId === null ? undefined : ctx.checkers.introspection.get(endpointId);
    if (!endpoint || endpointId === null) return invalidToken(ctx, 'token.issuer_unknown', 'no introspection endpoint for this API');
    const outcome = endpoint.introspect(token, audience);
    const bind = (result: Awaited<typeof outcome>): StageOutcome => {
      if (!result.ok) return invalidToken(ctx, result.reason, result.detail);
      const bound = ctx.snapshot.credentials.introspection.get(endpointId)?.get(result.clientId);
      return bindPrincipal(ctx, bound, {
        credentialType: 'introspection',
        claims: result.claims,
        scopes: result.scopes,
        tokenId: result.jti,
        issuer: typeof result.claims['iss'] === 'string' ? result.claims['iss'] : null,
        expiresAt: result.exp,
        longLived: false,
        detail: `introspection ${endpointId} client_id "${result.clientId}"`,
      });
    };
    return outcome instanceof Promise ? outcome.then(bind) : bind(outcome);
  }
  return invalidToken(ctx, jwtShaped ? 'token.issuer_unknown' : 'token.malformed', jwtShaped ? 'this route does not accept JWTs' : 'not a JWT, and this route does not accept opaque tokens');
}

type JwtResult = ReturnType<RequestContext['checkers']['jwt']['verify']> extends infer R ? Awaited<R> : never;

function afterJwt(ctx: RequestContext, result: JwtResult): StageOutcome {
  if (!result.ok) return invalidToken(ctx, result.reason, result.detail);
  const bound = ctx.snapshot.credentials.jwt.get(result.issuer.id)?.get(result.clientId);
  return bindPrincipal(ctx, bound, {
    credentialType: 'jwt',
    claims: result.claims,
    scopes: result.scopes,
    tokenId: result.jti,
    issuer: result.issuer.issuer,
    expiresAt: result.exp,
    longLived: false,
    detail: `issuer ${result.issuer.id} ${result.issuer.partnerClaim} "${result.clientId}"`,
  });
}

function checkApiKey(ctx: RequestContext, key: string): StageOutcome {
  const result = verifyApiKey(key, ctx.snapshot.credentials.apiKeys, Date.now());
  if (!result.ok) return { reason: result.reason, detail: result.detail };
  return bindPrincipal(ctx, result.credential, {
    credentialType: 'api_key',
    claims: Object.freeze(Object.create(null)),
    scopes: new Set(),
    tokenId: null,
    issuer: null,
    expiresAt: Math.floor(result.credential.expiresAt / 1000),
    longLived: true,
    detail: `api key ${result.credential.keyId}`,
  });
}

interface Verified {
  readonly credentialType: Principal['credentialType'];
  readonly claims: Principal['claims'];
  readonly scopes: Principal['scopes'];
  readonly tokenId: string | null;
  readonly issuer: string | null;
  readonly expiresAt: number | null;
  readonly longLived: boolean;
  readonly detail: string;
}

/**
 * Each credential resolves to exactly one partner credential, or the request ends. Then the
 * revocations made at run time (src/state/) apply: the in-memory set is consulted on every
 * request, after any cache, so no cached verification outlives a revocation (DESIGN.md).
 */
function bindPrincipal(ctx: RequestContext, bound: CompiledCredential | undefined, verified: Verified): StageOutcome {
  let partner = bound ? ctx.snapshot.partners.get(bound.partnerId) : undefined;
  if (!bound || !partner) {
    return invalidToken(ctx, 'credential.unknown', `${verified.detail} belongs to no configured partner credential`);
  }
  const revocations = requestRevocations(ctx);
  if ('unavailable' in revocations) {
    // Fail closed: without a trustworthy revocation set, no credential can be vouched for.
    return { reason: 'state.unavailable', detail: revocations.unavailable, headers: { 'retry-after': '5' } };
  }
  if (verified.tokenId !== null) {
    const revoked = revocations.revoked('token', verified.tokenId);
    if (revoked) return invalidToken(ctx, 'token.revoked', `token ${verified.tokenId} ${revokedBy(revoked)}`);
  }
  const revokedCredential = revocations.revoked('credential', bound.id);
  if (revokedCredential) {
    const detail = `credential ${bound.id} ${revokedBy(revokedCredential)}`;
    return bound.type === 'api_key' ? { reason: 'api_key.revoked', detail } : invalidToken(ctx, 'credential.revoked', detail);
  }
  const override = revocations.partnerStatus(partner.id);
  // A run-time status only ever restricts: offboarded > suspended > active.
  if (override && STATUS_RANK[override.status] > STATUS_RANK[partner.status]) partner = { ...partner, status: override.status };
  // A client certificate and a token must name the same partner (RFC 8705 §3: the certificate of
  // this connection is the holder of record).
  const certificatePartner = ctx.clientCertificate?.partnerId ?? null;
  if (certificatePartner !== null && certificatePartner !== partner.id) {
    return invalidToken(ctx, 'tls.partner_mismatch', `${verified.detail} belongs to partner ${partner.id}, the client certificate to partner ${certificatePartner}`);
  }
  ctx.principal = {
    partner,
    credential: bound,
    credentialType: verified.credentialType,
    longLived: verified.longLived,
    claims: verified.claims,
    scopes: verified.scopes,
    tokenId: verified.tokenId,
    issuer: verified.issuer,
    expiresAt: verified.expiresAt,
  };
  return undefined;
}


const STATUS_RANK = { active: 0, suspended: 1, offboarded: 2 } as const;

function revokedBy(revocation: Revocation): string {
  return `revoked by ${revocation.actor} at ${new Date(revocation.at).toISOString()}: ${revocation.reason}`;
}
