/**
 * What both state drivers check and compute the same way: the validation of every value a
 * caller hands the store, and the events that turn one revocation set into another (after a
 * reload, a reconnection, or a missed push).
 */
import type { PartnerStatus, PartnerStatusChange, Revocation, RevocationKind, StateEvent } from './store.ts';

export const MAX_TEXT_LENGTH = 4096;
/** The actor of a removal only a reload noticed: who made it is not known here. */
export const UNKNOWN_ACTOR = 'unknown';
export const KINDS: ReadonlySet<string> = new Set<RevocationKind>(['token', 'credential', 'certificate']);
export const STATUSES: ReadonlySet<string> = new Set<PartnerStatus>(['active', 'suspended', 'offboarded']);

/** The events that turn `before` into `after`, for a reload; a removal carries UNKNOWN_ACTOR (who made it is not known here). */
export function diffEvents(
  before: { revocations: Revocation[]; partners: PartnerStatusChange[] },
  after: { revocations: Revocation[]; partners: PartnerStatusChange[] },
  now: number,
): StateEvent[] {
  const events: StateEvent[] = [];
  const revocationKey = (entry: { kind: RevocationKind; key: string }): string => `${entry.kind}\n${entry.key}`;
  const old = new Map(before.revocations.map((entry) => [revocationKey(entry), entry]));
  for (const entry of after.revocations) {
    const previous = old.get(revocationKey(entry));
    old.delete(revocationKey(entry));
    if (previous === undefined || !sameRevocation(previous, entry)) events.push({ type: 'revoked', revocation: entry });
  }
  for (const gone of old.values()) events.push({ type: 'unrevoked', kind: gone.kind, key: gone.key, actor: UNKNOWN_ACTOR, at: now });
  const oldPartners = new Map(before.partners.map((change) => [change.partnerId, change]));
  for (const change of after.partners) {
    const previous = oldPartners.get(change.partnerId);
    oldPartners.delete(change.partnerId);
    if (previous === undefined || !samePartnerStatus(previous, change)) {
      events.push({ type: 'partner_status', partnerId: change.partnerId, change, actor: change.actor, at: change.at });
    }
  }
  for (const gone of oldPartners.values()) events.push({ type: 'partner_status', partnerId: gone.partnerId, change: null, actor: UNKNOWN_ACTOR, at: now });
  return events;
}

export function sameRevocation(a: Revocation, b: Revocation): boolean {
  return a.kind === b.kind && a.key === b.key && a.reason === b.reason && a.actor === b.actor && a.at === b.at && a.expiresAt === b.expiresAt;
}

export function samePartnerStatus(a: PartnerStatusChange, b: PartnerStatusChange): boolean {
  return a.partnerId === b.partnerId && a.status === b.status && a.reason === b.reason && a.actor === b.actor && a.at === b.at;
}

export function requireText(value: unknown, name: string): asserts value is string {
  if (typeof value !== 'string' || value === '' || value.length > MAX_TEXT_LENGTH) {
    throw new TypeError(`state: ${name} must be a non-empty string of at most ${MAX_TEXT_LENGTH} characters`);
  }
}

export function requireKind(value: unknown): asserts value is RevocationKind {
  if (typeof value !== 'string' || !KINDS.has(value)) throw new TypeError(`state: kind must be one of ${[...KINDS].join(', ')}`);
}

/** ms since the epoch, as an integer (the columns are STRICT INTEGER). */
export function requireEpochMs(value: unknown, name: string): asserts value is number {
  if (!Number.isSafeInteger(value) || (value as number) < 0) throw new TypeError(`state: ${name} must be an integer (ms since the epoch)`);
}

export function requireTime(value: unknown, name: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new TypeError(`state: ${name} must be a time in ms since the epoch`);
}

export function requireTtl(value: unknown): asserts value is number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw new TypeError('state: ttlMs must be a positive number of ms');
}

export function requireReason(value: unknown): asserts value is string {
  if (typeof value !== 'string' || value.length > MAX_TEXT_LENGTH) throw new TypeError(`state: reason must be a string of at most ${MAX_TEXT_LENGTH} characters`);
}

/** A plain copy of a validated revocation (nothing the caller keeps a reference to ends up in the set). */
export function validRevocation(value: Revocation): Revocation {
  if (typeof value !== 'object' || value === null) throw new TypeError('state: revocation must be an object');
  requireKind(value.kind);
  requireText(value.key, 'key');
  requireReason(value.reason);
  requireText(value.actor, 'actor');
  requireEpochMs(value.at, 'at');
  if (value.expiresAt !== null) requireEpochMs(value.expiresAt, 'expiresAt');
  return { kind: value.kind, key: value.key, reason: value.reason, actor: value.actor, at: value.at, expiresAt: value.expiresAt };
}

export function validPartnerStatus(value: PartnerStatusChange): PartnerStatusChange {
  if (typeof value !== 'object' || value === null) throw new TypeError('state: partner status change must be an object');
  requireText(value.partnerId, 'partnerId');
  if (typeof value.status !== 'string' || !STATUSES.has(value.status)) throw new TypeError(`state: status must be one of ${[...STATUSES].join(', ')}`);
  requireReason(value.reason);
  requireText(value.actor, 'actor');
  requireEpochMs(value.at, 'at');
  return { partnerId: value.partnerId, status: value.status, reason: value.reason, actor: value.actor, at: value.at };
}

/** A pushed or logged event, checked field by field; null when it is not one of ours. Throws on a bad field. */
export function validEvent(value: unknown): StateEvent | null {
  if (typeof value !== 'object' || value === null) return null;
  const event = value as StateEvent;
  switch (event.type) {
    case 'revoked':
      return { type: 'revoked', revocation: validRevocation(event.revocation) };
    case 'unrevoked':
      requireKind(event.kind);
      requireText(event.key, 'key');
      requireText(event.actor, 'actor');
      requireTime(event.at, 'at');
      return { type: 'unrevoked', kind: event.kind, key: event.key, actor: event.actor, at: event.at };
    case 'partner_status': {
      requireText(event.partnerId, 'partnerId');
      requireText(event.actor, 'actor');
      requireTime(event.at, 'at');
      const change = event.change === null ? null : validPartnerStatus(event.change);
      return { type: 'partner_status', partnerId: event.partnerId, change, actor: event.actor, at: event.at };
    }
    default:
      return null;
  }
}
