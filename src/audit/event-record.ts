/**
 * Audit records for what is not a request: revocations, partner status changes, configuration
 * reloads (applied or refused), token issuance. Same trail, same chain, same ECS conventions as
 * the decision record (`src/pipeline/audit.ts`); `event.kind` is `event` and `event.action`
 * names what happened. `docs/audit.md` lists every field ("Event record fields").
 */

export type EventAction =
  | 'revocation.created'
  | 'revocation.removed'
  | 'partner.suspended'
  | 'partner.resumed'
  | 'partner.offboarded'
  | 'config.reload_applied'
  | 'config.reload_refused'
  | 'admin.refused'
  | 'token.issued'
  | 'token.exchanged'
  | 'token.refused';

/** `token.*`: what the token service issued or refused (never the token or the client's assertion). */
export interface TokenEventFields {
  readonly clientId: string | null;
  readonly credentialId: string | null;
  readonly clientAuthMethod: string | null;
  readonly apiId: string | null;
  readonly scopes: readonly string[];
  readonly lifetimeMs: number | null;
  /** `x5t#S256` (RFC 8705 §3.1) or `jkt` (RFC 9449 §6.1); null for a bearer token or a refusal before binding. */
  readonly cnfType: 'x5t#S256' | 'jkt' | null;
  readonly cnfThumbprint: string | null;
  readonly jti: string | null;
}

/** `token.exchanged`, and `token.refused` of an exchange (RFC 8693; SECURITY.md TX-06). */
export interface ExchangeEventFields {
  /** `jti` of the subject token, null when it did not verify. */
  readonly subjectJti: string | null;
  /** `sub` of the subject token (and of the exchanged token). */
  readonly subject: string | null;
  /** Client ids of the actors (`act` chain), the current one first. */
  readonly actors: readonly string[];
  readonly purpose: string | null;
}

export interface EventInput {
  readonly action: EventAction;
  readonly outcome: 'success' | 'failure';
  /** Stable machine reason of the outcome (`applied`, `unauthenticated`, `invalid_request`, …). */
  readonly reason: string;
  /** Who did it: an admin token id, `cli`, `file-watch`, `signal`; null when unknown. */
  readonly actor: string | null;
  /** The partner concerned, when there is one: the record also goes to that partner's stream. */
  readonly partnerId: string | null;
  readonly configHash: string;
  /** Why, as the actor wrote it (bounded). */
  readonly note?: string | null;
  /** `revocation.*`: what was revoked. */
  readonly revocation?: { readonly kind: string; readonly key: string; readonly expiresAt: number | null } | null;
  /** `config.*`: the hash before the change, and issues of a refused reload. */
  readonly previousConfigHash?: string | null;
  readonly issues?: readonly string[];
  /** How far a change reached before the call returned. */
  readonly propagation?: { readonly instances: number; readonly acknowledged: number; readonly elapsedMs: number } | null;
  readonly sourceIp?: string | null;
  /** `token.*`: the issuance (or what was known of it when it was refused). */
  readonly token?: TokenEventFields | null;
  /** `token.exchanged` (or an exchange refused): subject and actors. */
  readonly exchange?: ExchangeEventFields | null;
}

const MAX_TEXT = 512;
const MAX_ISSUES = 20;

function bounded(text: string): string {
  return text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT)}…` : text;
}

export function eventRecord(input: EventInput, now: Date = new Date()): object {
  const category = input.action.startsWith('config.') ? 'configuration' : 'iam';
  const type =
    input.action === 'token.refused'
      ? 'denied'
      : input.action.endsWith('.removed') || input.action === 'partner.resumed'
        ? 'deletion'
        : input.action.startsWith('revocation.') || input.action === 'token.issued' || input.action === 'token.exchanged'
          ? 'creation'
          : 'change';
  return {
    '@timestamp': now.toISOString(),
    event: {
      kind: 'event',
      category: [category],
      type: [type],
      action: input.action,
      outcome: input.outcome,
      reason: input.reason,
    },
    user: { id: input.actor },
    ...(input.sourceIp ? { source: { ip: input.sourceIp } } : {}),
    portcullis: {
      partner: { id: input.partnerId },
      config_hash: input.configHash,
      ...(input.note ? { note: bounded(input.note) } : {}),
      ...(input.revocation
        ? {
            revocation: {
              kind: input.revocation.kind,
              key: bounded(input.revocation.key),
              expires_at: input.revocation.expiresAt === null ? null : new Date(input.revocation.expiresAt).toISOString(),
            },
          }
        : {}),
      ...(input.previousConfigHash !== undefined ? { previous_config_hash: input.previousConfigHash } : {}),
      ...(input.issues ? { issues: input.issues.slice(0, MAX_ISSUES).map(bounded) } : {}),
      ...(input.propagation
        ? { propagation: { instances: input.propagation.instances, acknowledged: input.propagation.acknowledged, elapsed_ms: input.propagation.elapsedMs } }
        : {}),
      ...(input.token
        ? {
            credential: { id: input.token.credentialId },
            token: {
              client_id: input.token.clientId,
              client_auth_method: input.token.clientAuthMethod,
              api: input.token.apiId,
              scopes: input.token.scopes.slice(0, MAX_ISSUES * 3).map(bounded),
              lifetime_ms: input.token.lifetimeMs,
              cnf_type: input.token.cnfType,
              cnf_thumbprint: input.token.cnfThumbprint,
              jti: input.token.jti,
            },
          }
        : {}),
      ...(input.exchange
        ? {
            exchange: {
              subject_jti: input.exchange.subjectJti,
              subject: input.exchange.subject === null ? null : bounded(input.exchange.subject),
              actors: input.exchange.actors.slice(0, MAX_ISSUES).map(bounded),
              purpose: input.exchange.purpose,
            },
          }
        : {}),
    },
  };
}
