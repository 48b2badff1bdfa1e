/**
 * The in-memory revocation set both drivers keep current: a map lookup per check, no I/O.
 * Drivers apply pushed events (`apply`) and, after a (re)connection or when another process
 * changed the database, replace the whole content (`replace`).
 */
import type { PartnerStatusChange, Revocation, RevocationKind, RevocationSet, StateEvent } from './store.ts';

function entryKey(kind: RevocationKind, key: string): string {
  return `${kind}\n${key}`;
}

export class MemoryRevocationSet implements RevocationSet {
  #version = 0;
  #entries = new Map<string, Revocation>();
  #partners = new Map<string, PartnerStatusChange>();

  get version(): number {
    return this.#version;
  }

  revoked(kind: RevocationKind, key: string): Revocation | undefined {
    // Fast path: most deployments have few revocations and most requests match none.
    if (this.#entries.size === 0) return undefined;
    return this.#entries.get(entryKey(kind, key));
  }

  partnerStatus(partnerId: string): PartnerStatusChange | undefined {
    if (this.#partners.size === 0) return undefined;
    return this.#partners.get(partnerId);
  }

  get size(): { revocations: number; partners: number } {
    return { revocations: this.#entries.size, partners: this.#partners.size };
  }

  apply(event: StateEvent): void {
    switch (event.type) {
      case 'revoked':
        this.#entries.set(entryKey(event.revocation.kind, event.revocation.key), event.revocation);
        break;
      case 'unrevoked':
        this.#entries.delete(entryKey(event.kind, event.key));
        break;
      case 'partner_status':
        if (event.change === null) this.#partners.delete(event.partnerId);
        else this.#partners.set(event.partnerId, event.change);
        break;
    }
    this.#version++;
  }

  replace(revocations: readonly Revocation[], partners: readonly PartnerStatusChange[]): void {
    this.#entries = new Map(revocations.map((revocation) => [entryKey(revocation.kind, revocation.key), revocation]));
    this.#partners = new Map(partners.map((change) => [change.partnerId, change]));
    this.#version++;
  }

  /** Forgets token revocations whose token has expired anyway (`expiresAt` in the past). */
  prune(nowMs: number): number {
    let removed = 0;
    for (const [key, revocation] of this.#entries) {
      if (revocation.expiresAt !== null && revocation.expiresAt <= nowMs) {
        this.#entries.delete(key);
        removed++;
      }
    }
    if (removed > 0) this.#version++;
    return removed;
  }

  entries(): { revocations: Revocation[]; partners: PartnerStatusChange[] } {
    return {
      revocations: [...this.#entries.values()].sort((a, b) => a.at - b.at),
      partners: [...this.#partners.values()].sort((a, b) => a.at - b.at),
    };
  }
}
