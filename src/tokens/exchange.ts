/**
 * Token exchange (RFC 8693) for just-in-time task credentials (issue 5; SECURITY.md §2.9
 * TX-01…TX-05). A client holding a token of THIS token service exchanges it for a narrower one:
 * one audience the subject token already covers, scopes within the subject token's (and the
 * partner's current grants), a lifetime within the subject token's remaining one, an optional
 * `purpose`, and an `act` claim naming the client that asked (RFC 8693 §4.1).
 *
 * This module decides the grant; `token-endpoint.ts` authenticates the client, checks the
 * partner's standing, applies the sender constraint, signs, records and answers, exactly as for
 * client credentials. Nothing here widens: every value of the new token is the subject token's
 * value or a subset of it.
 *
 * Deliberately unsupported (fail closed): `actor_token` (the authenticated client IS the actor),
 * any token type other than our own access tokens, and chains deeper than MAX_ACTOR_DEPTH.
 */
import { compactVerify, decodeProtectedHeader } from 'jose';
import type { ClientCredential, CompiledApi, CompiledPartner, Snapshot } from '../config/snapshot.ts';
import type { TokenServiceDeps } from './types.ts';

export const TOKEN_EXCHANGE_GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:token-exchange';
/** RFC 8693 §3: the only token type exchanged and issued here. */
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
/** Actors in a chain (the new `act` included): an unbounded chain is unbounded token size (TX-04). */
export const MAX_ACTOR_DEPTH = 3;
/** Ours are well below; anything longer is not ours (SECURITY.md JWT-17). */
const MAX_SUBJECT_TOKEN_LENGTH = 8 * 1024;
/** `purpose`: a short task name, printable ASCII, no leading or trailing space. */
const PURPOSE_PATTERN = /^[\x21-\x7e](?:[\x20-\x7e]{0,126}[\x21-\x7e])?$/;

export type ExchangeError = 'invalid_request' | 'invalid_grant' | 'invalid_scope' | 'invalid_target' | 'temporarily_unavailable';

/** What the audit record says of an exchange (TX-06): known parts as far as the request got. */
export interface ExchangeFacts {
  /** `jti` of the subject token, once it verified. */
  subjectJti: string | null;
  /** `sub` of the subject token (and of the new token). */
  subject: string | null;
  /** The new token's actor chain, outermost (the caller) first. */
  actors: string[];
  purpose: string | null;
}

/** An RFC 8693 §4.1 actor: `sub`, and the previous actor nested in `act`. */
export interface ActClaim {
  readonly sub: string;
  readonly act?: ActClaim;
}

export interface ExchangeRequest {
  readonly params: ReadonlyMap<string, string>;
  /** The authenticated caller (the actor). */
  readonly client: ClientCredential;
  readonly partner: CompiledPartner;
  readonly snapshot: Snapshot;
  readonly deps: TokenServiceDeps;
  readonly nowMs: number;
  /** Filled as the request proceeds, so a refusal records what was known. */
  readonly facts: ExchangeFacts;
  /** RFC 6749 §3.3 scope parsing, shared with the client credentials grant. */
  readonly parseScope: (value: string) => string[] | null;
  /** The lifetime the configuration gives this client for `api` (already under the ceiling). */
  readonly configuredLifetimeMs: (api: CompiledApi) => number;
}

export type ExchangeDecision =
  | {
      readonly ok: true;
      readonly api: CompiledApi;
      readonly scopes: readonly string[];
      readonly lifetimeSeconds: number;
      /** Claims the new token takes from the exchange: `sub`, `act`, and `purpose` when there is one. */
      readonly claims: { readonly sub: string; readonly act: ActClaim; readonly purpose?: string };
    }
  | { readonly ok: false; readonly error: ExchangeError; readonly reason: string; readonly detail: string; readonly api: CompiledApi | null; readonly scopes: readonly string[] };

/** A verified subject token of this service: only the members the exchange relies on. */
interface SubjectToken {
  readonly jti: string;
  readonly sub: string;
  readonly clientId: string;
  readonly partnerId: string;
  readonly exp: number;
  readonly aud: readonly string[];
  readonly scopes: readonly string[];
  readonly act: ActClaim | null;
  readonly mayAct: unknown;
  readonly purpose: string | null;
}

type Refusal = Extract<ExchangeDecision, { ok: false }>;

/** Decides a token exchange request after client authentication and the partner's standing. */
export async function decideExchange(request: ExchangeRequest): Promise<ExchangeDecision> {
  const { params, client, partner, snapshot, deps, nowMs, facts } = request;
  let api: CompiledApi | null = null;
  let scopes: readonly string[] = [];
  const refuse = (error: ExchangeError, reason: string, detail: string): Refusal => ({ ok: false, error, reason, detail, api, scopes });

  // TX-01 (RFC 8693 §2.1): the parameters and their types.
  const subjectToken = params.get('subject_token');
  const subjectTokenType = params.get('subject_token_type');
  if (subjectToken === undefined) return refuse('invalid_request', 'exchange.subject_token_missing', 'subject_token is missing');
  if (subjectTokenType === undefined) return refuse('invalid_request', 'exchange.subject_token_type_missing', 'subject_token_type is missing');
  if (subjectTokenType !== ACCESS_TOKEN_TYPE) return refuse('invalid_request', 'exchange.subject_token_type_unsupported', `subject_token_type ${JSON.stringify(subjectTokenType.slice(0, 128))} (only ${ACCESS_TOKEN_TYPE})`);
  if (params.has('actor_token') || params.has('actor_token_type')) {
    // The client that authenticated is the actor; a second actor credential is not accepted.
    return refuse('invalid_request', 'exchange.actor_token_unsupported', 'actor_token / actor_token_type are not supported: the authenticated client is the actor');
  }
  const requestedType = params.get('requested_token_type');
  if (requestedType !== undefined && requestedType !== ACCESS_TOKEN_TYPE) return refuse('invalid_request', 'exchange.requested_token_type_unsupported', `requested_token_type ${JSON.stringify(requestedType.slice(0, 128))}`);
  const purposeParameter = params.get('purpose');
  if (purposeParameter !== undefined && !PURPOSE_PATTERN.test(purposeParameter)) return refuse('invalid_request', 'exchange.purpose_invalid', 'purpose is not 1–128 printable ASCII characters');
  const requestedLifetime = params.get('expires_in');
  if (requestedLifetime !== undefined && !/^[1-9][0-9]{0,6}$/.test(requestedLifetime)) return refuse('invalid_request', 'exchange.lifetime_invalid', 'expires_in is not a positive whole number of seconds');

  // TX-02: the subject token is fully validated as one of ours.
  const verified = await verifySubjectToken(subjectToken, snapshot, deps);
  if (!verified.ok) return refuse(verified.error, verified.reason, verified.detail);
  const subject = verified.token;
  facts.subjectJti = subject.jti;
  facts.subject = subject.sub;
  if (!(subject.exp * 1000 > nowMs)) return refuse('invalid_grant', 'subject_token.expired', `the subject token expired at ${new Date(subject.exp * 1000).toISOString()}`);
  const view = deps.store.revocations.current();
  if ('unavailable' in view) return refuse('temporarily_unavailable', 'state.unavailable', view.unavailable);
  if (view.revoked('token', subject.jti)) return refuse('invalid_grant', 'subject_token.revoked', `the subject token ${subject.jti} is revoked`);
  const subjectCredential = snapshot.credentials.clients.get(subject.clientId);
  if (subjectCredential !== undefined && view.revoked('credential', subjectCredential.id)) {
    return refuse('invalid_grant', 'subject_token.credential_revoked', `the subject token's credential ${subjectCredential.id} is revoked`);
  }
  // A partner exchanges only its own tokens: another partner's token grants it nothing.
  if (subject.partnerId !== partner.id) return refuse('invalid_grant', 'subject_token.partner_mismatch', `the subject token belongs to partner ${subject.partnerId}, the client to ${partner.id}`);

  // TX-04 (RFC 8693 §4.4): a `may_act` in the subject token names who may act for it.
  if (subject.mayAct !== undefined && !mayActAllows(subject.mayAct, client.clientId)) {
    return refuse('invalid_grant', 'subject_token.may_act_denied', `the subject token's may_act does not name ${client.clientId}`);
  }
  const act: ActClaim = subject.act === null ? { sub: client.clientId } : { sub: client.clientId, act: subject.act };
  facts.actors = actorChain(act);
  if (facts.actors.length > MAX_ACTOR_DEPTH) return refuse('invalid_grant', 'exchange.actor_chain_too_deep', `the actor chain would have ${facts.actors.length} actors (at most ${MAX_ACTOR_DEPTH})`);

  // A task token stays on its task: the purpose is kept, never replaced.
  const purpose = purposeParameter ?? subject.purpose;
  if (subject.purpose !== null && purpose !== subject.purpose) return refuse('invalid_request', 'exchange.purpose_conflict', 'the subject token already has another purpose');
  facts.purpose = purpose;

  // TX-03: one audience, which the subject token already covers (RFC 8693 §2.1, RFC 8707).
  const resource = params.get('resource');
  const audience = params.get('audience');
  if (resource !== undefined && audience !== undefined && resource !== audience) return refuse('invalid_request', 'request.target_conflict', 'resource and audience name different APIs');
  const target = resource ?? audience ?? (subject.aud.length === 1 ? subject.aud[0]! : undefined);
  if (target === undefined) return refuse('invalid_request', 'request.target_missing', 'the subject token has several audiences and the request names none');
  if (!subject.aud.includes(target)) return refuse('invalid_target', 'target.not_in_subject', `the subject token's aud does not cover ${JSON.stringify(target.slice(0, 256))}`);
  api = [...snapshot.apis.values()].find((candidate) => candidate.audience === target) ?? null;
  if (api === null) return refuse('invalid_target', 'target.unknown', `no API has the audience ${JSON.stringify(target.slice(0, 256))}`);
  const grants = partner.grants.get(api.id) ?? [];
  if (grants.length === 0) return refuse('invalid_target', 'grant.missing', `partner ${partner.id} has no grant for API ${api.id}`);

  // TX-03: scopes ⊆ subject token's ∩ the partner's current grants; asking for more is an error.
  const granted = new Set<string>();
  for (const grant of grants) for (const scope of grant.scopes) granted.add(scope);
  const allowed = subject.scopes.filter((scope) => granted.has(scope));
  const requested = params.get('scope');
  if (requested === undefined) {
    if (allowed.length === 0) return refuse('invalid_scope', 'scope.none_left', `none of the subject token's scopes is still granted for API ${api.id}`);
    scopes = allowed;
  } else {
    const parsed = request.parseScope(requested);
    if (parsed === null) return refuse('invalid_scope', 'scope.malformed', 'scope is not a space-separated list of scope tokens (RFC 6749 §3.3)');
    const beyondSubject = parsed.filter((scope) => !subject.scopes.includes(scope));
    if (beyondSubject.length > 0) return refuse('invalid_scope', 'scope.exceeds_subject', `not in the subject token: ${beyondSubject.slice(0, 10).join(' ')}`);
    const notGranted = parsed.filter((scope) => !granted.has(scope));
    if (notGranted.length > 0) return refuse('invalid_scope', 'scope.not_granted', `no longer granted to partner ${partner.id} for API ${api.id}: ${notGranted.slice(0, 10).join(' ')}`);
    scopes = parsed;
  }

  // TX-04: exp ≤ the subject token's exp, and within the configured lifetime.
  const remainingSeconds = subject.exp - Math.floor(nowMs / 1000);
  const configuredSeconds = Math.max(1, Math.floor(request.configuredLifetimeMs(api) / 1000));
  let lifetimeSeconds = Math.min(remainingSeconds, configuredSeconds);
  if (requestedLifetime !== undefined) {
    const wanted = Number(requestedLifetime);
    if (wanted > lifetimeSeconds) return refuse('invalid_request', 'exchange.lifetime_too_long', `expires_in ${wanted} s exceeds ${lifetimeSeconds} s (subject token remaining ${remainingSeconds} s, configured ${configuredSeconds} s)`);
    lifetimeSeconds = wanted;
  }
  if (lifetimeSeconds < 1) return refuse('invalid_grant', 'subject_token.expired', 'the subject token expires within the second');

  return { ok: true, api, scopes, lifetimeSeconds, claims: { sub: subject.sub, act, ...(purpose !== null ? { purpose } : {}) } };
}

type Verification = { readonly ok: true; readonly token: SubjectToken } | { readonly ok: false; readonly error: ExchangeError; readonly reason: string; readonly detail: string };

/**
 * The subject token as an access token of this service: `typ: at+jwt`, a key of ours by `kid` with
 * that key's own algorithm, our `iss` exactly, and the RFC 9068 claims the exchange needs. The
 * signature is checked before any claim (SECURITY.md JWT-16).
 */
async function verifySubjectToken(token: string, snapshot: Snapshot, deps: TokenServiceDeps): Promise<Verification> {
  const invalid = (reason: string, detail: string): Verification => ({ ok: false, error: 'invalid_grant', reason, detail });
  const service = snapshot.tokenService;
  if (service === null) return invalid('subject_token.issuer_unknown', 'no token service is configured');
  if (token.length > MAX_SUBJECT_TOKEN_LENGTH) return invalid('subject_token.malformed', `longer than ${MAX_SUBJECT_TOKEN_LENGTH} characters`);
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    return invalid('subject_token.malformed', 'not a compact JWS');
  }
  const { kid, alg, typ } = header;
  // TX-02/TX-05: declared an access token, but a DPoP proof, a client assertion, an ID token or a
  // gateway assertion is another kind of token (RFC 8725 §3.11).
  if (typeof typ !== 'string' || typ.toLowerCase().replace(/^application\//, '') !== 'at+jwt') {
    return { ok: false, error: 'invalid_request', reason: 'subject_token.type_mismatch', detail: `the subject token's typ is ${JSON.stringify(typeof typ === 'string' ? typ.slice(0, 64) : typ ?? null)}, not at+jwt` };
  }
  if (typeof kid !== 'string' || typeof alg !== 'string') return invalid('subject_token.key_unknown', 'no kid or alg');
  const key = deps.keys.publicKey(kid);
  const published = deps.keys.list().find((candidate) => candidate.kid === kid);
  if (key === undefined || published === undefined) return invalid('subject_token.key_unknown', 'not signed by a key of this token service');
  if (published.alg !== alg) return invalid('subject_token.signature_invalid', `alg ${alg.slice(0, 16)} is not the key's ${published.alg}`);
  let payload: Uint8Array;
  try {
    // The algorithm is the key's own, never the token's choice (RFC 8725 §3.1).
    ({ payload } = await compactVerify(token, key, { algorithms: [published.alg] }));
  } catch {
    return invalid('subject_token.signature_invalid', 'the signature does not verify');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
  } catch {
    return invalid('subject_token.malformed', 'the payload is not UTF-8 JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return invalid('subject_token.malformed', 'the payload is not a JSON object');
  const claims = parsed as Record<string, unknown>;
  const own = (name: string): unknown => (Object.hasOwn(claims, name) ? claims[name] : undefined);
  if (own('iss') !== service.issuer) return invalid('subject_token.iss_invalid', 'iss is not this token service');
  const jti = own('jti');
  const sub = own('sub');
  const clientId = own('client_id');
  const partnerId = own('partner_id');
  const exp = own('exp');
  const scope = own('scope');
  const aud = own('aud');
  if (typeof jti !== 'string' || jti === '' || typeof sub !== 'string' || sub === '' || typeof clientId !== 'string' || typeof partnerId !== 'string') {
    return invalid('subject_token.claims_invalid', 'jti, sub, client_id or partner_id missing');
  }
  if (typeof exp !== 'number' || !Number.isFinite(exp)) return invalid('subject_token.claims_invalid', 'exp missing or not a number');
  if (typeof scope !== 'string') return invalid('subject_token.claims_invalid', 'scope missing');
  const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) && aud.length > 0 && aud.every((value) => typeof value === 'string') ? (aud as string[]) : null;
  if (audiences === null) return invalid('subject_token.claims_invalid', 'aud missing or malformed');
  const act = own('act');
  const actClaim = act === undefined ? null : copyAct(act, MAX_ACTOR_DEPTH);
  if (act !== undefined && actClaim === null) return invalid('subject_token.claims_invalid', `act is malformed or deeper than ${MAX_ACTOR_DEPTH}`);
  const purpose = own('purpose');
  if (purpose !== undefined && typeof purpose !== 'string') return invalid('subject_token.claims_invalid', 'purpose is not a string');
  return {
    ok: true,
    token: { jti, sub, clientId, partnerId, exp, aud: audiences, scopes: scope === '' ? [] : scope.split(' '), act: actClaim, mayAct: own('may_act'), purpose: purpose ?? null },
  };
}

/** A fresh copy of an `act` chain holding only `sub` and `act` (RFC 8693 §4.1), or null when malformed. */
function copyAct(value: unknown, depthLeft: number): ActClaim | null {
  if (depthLeft < 1 || typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const sub = Object.hasOwn(value, 'sub') ? (value as Record<string, unknown>)['sub'] : undefined;
  if (typeof sub !== 'string' || sub === '') return null;
  if (!Object.hasOwn(value, 'act')) return { sub };
  const inner = copyAct((value as Record<string, unknown>)['act'], depthLeft - 1);
  return inner === null ? null : { sub, act: inner };
}

/** `sub` of every actor, outermost (the current one) first. */
export function actorChain(act: ActClaim): string[] {
  const chain: string[] = [];
  for (let current: ActClaim | undefined = act; current !== undefined; current = current.act) chain.push(current.sub);
  return chain;
}

/** RFC 8693 §4.4: `may_act` is an object whose `sub` names the party allowed to act. */
function mayActAllows(mayAct: unknown, clientId: string): boolean {
  if (typeof mayAct !== 'object' || mayAct === null || Array.isArray(mayAct)) return false;
  return Object.hasOwn(mayAct, 'sub') && (mayAct as Record<string, unknown>)['sub'] === clientId;
}
