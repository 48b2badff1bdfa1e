/**
 * The state contract (DESIGN.md "state"): everything mutable and shared between instances goes
 * through one `StateStore`. Two drivers implement it — `embedded` (in-process, persisted with
 * `node:sqlite` in the data folder; the default) and `redis` (many instances) — and one contract
 * suite (test/state/contract.ts) runs against both.
 *
 * The request path never waits for the store to learn about a revocation: every instance keeps
 * the revocation set in memory (`RevocationView`), kept current by push — Redis publish/subscribe,
 * or, for the embedded driver, SQLite's `data_version`, which tells at the cost of one
 * synchronous pragma whether another process (a worker, the CLI) committed a change.
 */

export type PartnerStatus = 'active' | 'suspended' | 'offboarded';

export type RevocationKind = 'token' | 'credential' | 'certificate';

/**
 * One revocation. Keys by kind:
 * - token: the token's `jti`;
 * - credential: the partner credential id from the configuration;
 * - certificate: `sha256:<64 lowercase hex>` (the certificate's fingerprint), or
 *   `serial:<lowercase hex serial without leading zeros>@<issuer DN as node:crypto prints it>`.
 */
export interface Revocation {
  readonly kind: RevocationKind;
  readonly key: string;
  readonly reason: string;
  /** Who revoked it (admin token id, `cli`, …). */
  readonly actor: string;
  /** When, in ms since the epoch. */
  readonly at: number;
  /** When the entry may be forgotten (a token's `exp`), in ms since the epoch; null = never. */
  readonly expiresAt: number | null;
}

/** A runtime change of a partner's status; it overrides the configured `status`. */
export interface PartnerStatusChange {
  readonly partnerId: string;
  readonly status: PartnerStatus;
  readonly reason: string;
  readonly actor: string;
  readonly at: number;
}

/** What the request path reads: synchronous, in memory. */
export interface RevocationSet {
  /** Monotonic version of the set (changes whenever an entry is added or removed). */
  readonly version: number;
  revoked(kind: RevocationKind, key: string): Revocation | undefined;
  /** The runtime status override of a partner, if any (`resume` removes it). */
  partnerStatus(partnerId: string): PartnerStatusChange | undefined;
}

/**
 * The in-memory view. `current()` is called once per request; for the embedded driver it first
 * checks (synchronously) whether another process changed the database, so a revocation made
 * anywhere bites on the next request. When the view cannot be trusted (Redis unreachable beyond
 * the acknowledged grace), `current()` returns an `unavailable` answer: the caller refuses (503).
 */
export interface RevocationView {
  current(): RevocationSet | { readonly unavailable: string };
}

/** GCRA parameters (ECOSYSTEM.md §2.19): one request per `emissionIntervalMs`, `burst` extra at once. */
export interface GcraLimit {
  readonly emissionIntervalMs: number;
  /** Requests allowed at once beyond the steady rate (≥ 0). The bucket holds burst + 1. */
  readonly burst: number;
}

export interface GcraResult {
  readonly allowed: boolean;
  /** When refused: ms until one request would be allowed (≥ 1). 0 when allowed. */
  readonly retryAfterMs: number;
  /** Requests that could still be made right now after this one. */
  readonly remaining: number;
  /** ms until the bucket is full again. */
  readonly resetMs: number;
}

export interface QuotaResult {
  readonly allowed: boolean;
  /** Count in the window after this call (refused calls are not counted). */
  readonly used: number;
  readonly limit: number;
  /** End of the window, ms since the epoch. */
  readonly resetAt: number;
}

/** Pushed to every instance (including the one that made the change). */
export type StateEvent =
  | { readonly type: 'revoked'; readonly revocation: Revocation }
  | { readonly type: 'unrevoked'; readonly kind: RevocationKind; readonly key: string; readonly actor: string; readonly at: number }
  | { readonly type: 'partner_status'; readonly partnerId: string; readonly change: PartnerStatusChange | null; readonly actor: string; readonly at: number };

export interface StoreHealth {
  readonly ok: boolean;
  /** Human-readable state, e.g. `connected`, `disconnected since …, serving last known state`. */
  readonly detail: string;
}

/** How far a change reached before the call returned (the admin API reports it). */
export interface Propagation {
  /** Instances known to be live when the change was made (this one included). */
  readonly instances: number;
  /** Instances that confirmed they applied it before the call returned. */
  readonly acknowledged: number;
  readonly elapsedMs: number;
}

export interface StateStore {
  readonly driver: 'embedded' | 'redis';
  /** This process's instance id (random per start), as other instances see it. */
  readonly instanceId: string;
  readonly revocations: RevocationView;

  /** Adds (or replaces) a revocation and pushes it to every instance. */
  revoke(revocation: Revocation): Promise<Propagation>;
  /** Removes a revocation (reinstating a credential, cleaning up a self-test). False if absent. */
  unrevoke(kind: RevocationKind, key: string, actor: string): Promise<{ removed: boolean; propagation: Propagation }>;
  /** Sets a partner's status override, or removes it with null (resume). */
  setPartnerStatus(partnerId: string, change: PartnerStatusChange | null, actor: string): Promise<Propagation>;
  /** Every current revocation and status override (admin listing, sorted by `at`). */
  list(): Promise<{ revocations: Revocation[]; partners: PartnerStatusChange[] }>;

  /** Shared GCRA decision for `key` (exact across instances). */
  gcra(key: string, limit: GcraLimit, nowMs?: number): Promise<GcraResult>;
  /** Counts one call against a calendar-window quota; refused calls do not count. Persists. */
  quota(key: string, limit: number, windowEndMs: number, nowMs?: number): Promise<QuotaResult>;
  /** Atomically sets `key` if absent, for `ttlMs` (replay caches: DPoP and assertion `jti`). */
  setIfAbsent(key: string, ttlMs: number): Promise<boolean>;
  get(key: string): Promise<string | null>;
  set(key: string, value: string, ttlMs: number | null): Promise<void>;
  delete(key: string): Promise<void>;

  /** Every state event, from any instance, in the order this instance applied them. */
  subscribe(listener: (event: StateEvent) => void): () => void;
  health(): StoreHealth;
  close(): Promise<void>;
}
