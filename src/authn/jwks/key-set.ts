/**
 * The key set of one issuer: the keys that may verify that issuer's tokens, and only those
 * (SECURITY.md JWT-07: a key from issuer B never verifies a token of issuer A, because the
 * verifier looks keys up in the set of the token's own issuer).
 *
 * A `jwks_file` set is the file's content, validated. A remote set (`jwks_uri`, `discovery`) is
 * fetched with the discipline of jose's remote JWKS (STYLE.md item 12):
 * - at start, the on-disk copy (if fresh) serves until the first fetch answers, so a restart
 *   while the issuer is down keeps serving;
 * - refreshed every `refreshIntervalMs`; a failed or refused refresh keeps the last good set;
 * - an unknown `kid` triggers at most one fetch per `unknownKidCooldownMs`, shared by every
 *   concurrent caller: a flood of made-up kids costs the issuer one request per cooldown;
 * - a set that fails validation is refused whole and the previous one kept;
 * - keys the issuer has not confirmed for `MAX_KEY_SET_AGE_MS` stop being served (fail closed).
 *
 * Rotation never causes an outage: the new set replaces the old one in one synchronous swap,
 * so every lookup sees either the old keys or the new ones, and a new `kid` is fetched on first
 * sight (after the cooldown) instead of waiting for the next scheduled refresh.
 */
import type { KeyObject } from 'node:crypto';
import type { CryptoKey } from 'jose';
import type { Agent } from 'undici';
import type { CompiledIssuer } from '../../config/snapshot.ts';
import { log } from '../../log.ts';
import { KeyIndex } from './key-index.ts';
import { createKeyFetchAgent, fetchIssuerKeySet } from './fetch.ts';
import type { FetchedKeySet } from './fetch.ts';
import { MAX_KEY_SET_AGE_MS, cacheFilePath, readCachedKeySet, writeCachedKeySet } from './disk-cache.ts';
import { validateJwks } from './validate.ts';
import type { JwksValidation } from './validate.ts';
import { jwksFetchChannel } from '../../observability/channels.ts';
import type { JwksFetchMessage } from '../../observability/channels.ts';

export interface VerificationKey { readonly kid: string | undefined; readonly alg: string; readonly key: CryptoKey | KeyObject }

export interface KeySet {
  readonly issuerId: string;
  /** Increases whenever the set of keys changes (rotation): cached verifications of older generations are dropped. */
  readonly generation: number;
  ready(): boolean;
  /** The key with this kid usable with this alg (a key without kid matches only a token without kid), or undefined. Synchronous. */
  find(kid: string | undefined, alg: string): VerificationKey | undefined;
  /** After an unknown kid: refetch at most once per cooldown (concurrent callers share one fetch). */
  refreshForUnknownKid(): Promise<void>;
}

/** Where the keys being served came from. */
export type KeySetOrigin = 'none' | 'file' | 'disk_cache' | 'issuer' | 'token_service';

export interface KeySetStatus {
  /** Number of keys (JWKs) served. */
  readonly keys: number;
  readonly generation: number;
  /** When the issuer last answered with a valid set (ms since the epoch), null before that. */
  readonly lastFetchAt: number | null;
  /** Why the last fetch or load failed; null after a success. */
  readonly lastError: string | null;
  readonly source: KeySetOrigin;
}

export interface ManagedKeySet extends KeySet {
  /** Re-reads a local key source (the token service's keys) at once; a no-op for other sources. */
  reloadLocal(): Promise<void>;
  /** Loads the keys: the file, or the disk cache and a first fetch. Never rejects; `ready()` tells. */
  start(): Promise<void>;
  /** Stops refreshing; a fetch in flight is abandoned and its result dropped. */
  close(): void;
  status(): KeySetStatus;
}

export interface KeySetOptions {
  /** The gateway's data folder; remote sets keep their copy under `<dataDir>/jwks/`. */
  readonly dataDir: string;
  /** Clock (ms since the epoch) for the cooldown and the age of keys. Default `Date.now`. */
  readonly now?: () => number;
  /**
   * The token service's current JWKS (src/tokens/keys.ts), for an issuer whose source is
   * `token_service`: in memory, so the gateway trusts its own tokens with no network round trip.
   * Null while the keys are not open yet.
   */
  readonly tokenServiceJwks?: () => unknown;
}

/**
 * A local set is re-read at least this often: keys the token service removed after their overlap
 * stop verifying within this delay even if nobody calls `reloadLocal()`.
 */
export const LOCAL_RELOAD_INTERVAL_MS = 5_000;

/**
 * Whatever the configuration says, two fetches caused by the schedule or by unknown kids are at
 * least this far apart: a `0ms` interval or cooldown must not turn into a loop on the issuer.
 */
export const MIN_FETCH_SPACING_MS = 1_000;
/**
 * Refreshes come at least twice within `MAX_KEY_SET_AGE_MS`, so a reachable issuer's keys never
 * age out between two refreshes (this also stays below setTimeout's 2^31−1 ms limit, past which
 * Node fires after 1 ms).
 */
export const MAX_REFRESH_INTERVAL_MS = MAX_KEY_SET_AGE_MS / 2;

/**
 * Generations are unique in the process, not per key set: a key set replaced on reload starts
 * above every generation its predecessor handed out, so no cache entry can outlive a change.
 */
let lastGeneration = 0;

export function createKeySet(issuer: CompiledIssuer, options: KeySetOptions): ManagedKeySet {
  return new IssuerKeySet(issuer, options);
}

class IssuerKeySet implements ManagedKeySet {
  readonly issuerId: string;
  readonly #issuer: CompiledIssuer;
  readonly #now: () => number;
  /** The configured jwks_uri or discovery URL; null for a key file. */
  readonly #sourceUrl: string | null;
  readonly #cachePath: string | null;
  readonly #refreshIntervalMs: number;
  readonly #unknownKidCooldownMs: number;
  readonly #localJwks: (() => unknown) | null;
  #agent: Agent | null = null;

  #index: KeyIndex | null = null;
  #generation = 0;
  #origin: KeySetOrigin = 'none';
  /** When the issuer last confirmed the keys being served (null for a file: it never ages). */
  #confirmedAt: number | null = null;
  #lastFetchAt: number | null = null;
  #lastError: string | null = null;

  #inFlight: Promise<void> | null = null;
  #lastUnknownKidFetchAt = Number.NEGATIVE_INFINITY;
  #timer: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(issuer: CompiledIssuer, options: KeySetOptions) {
    this.issuerId = issuer.id;
    this.#issuer = issuer;
    this.#now = options.now ?? Date.now;
    this.#sourceUrl = issuer.source.kind === 'file' || issuer.source.kind === 'token_service' ? null : issuer.source.url;
    this.#localJwks = issuer.source.kind === 'token_service' ? (options.tokenServiceJwks ?? (() => null)) : null;
    this.#cachePath = this.#sourceUrl === null ? null : cacheFilePath(options.dataDir, issuer);
    this.#refreshIntervalMs = Math.min(Math.max(issuer.refreshIntervalMs, MIN_FETCH_SPACING_MS), MAX_REFRESH_INTERVAL_MS);
    this.#unknownKidCooldownMs = Math.max(issuer.unknownKidCooldownMs, MIN_FETCH_SPACING_MS);
  }

  get generation(): number {
    return this.#generation;
  }

  ready(): boolean {
    if (this.#index === null) return false;
    return this.#confirmedAt === null || this.#now() - this.#confirmedAt < MAX_KEY_SET_AGE_MS;
  }

  find(kid: string | undefined, alg: string): VerificationKey | undefined {
    // Stale keys are not served even to a caller that skipped ready(): fail closed.
    return this.ready() ? this.#index!.find(kid, alg) : undefined;
  }

  refreshForUnknownKid(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#localJwks !== null) {
      // A new kid right after a rotation elsewhere: the keys may have been refreshed since.
      const now = this.#now();
      if (now - this.#lastUnknownKidFetchAt < MIN_FETCH_SPACING_MS) return Promise.resolve();
      this.#lastUnknownKidFetchAt = now;
      return this.reloadLocal();
    }
    if (this.#sourceUrl === null) return Promise.resolve();
    if (this.#inFlight) return this.#inFlight;
    const now = this.#now();
    // SECURITY.md JWT-02 (RFC 8725 §3.10): the kid comes from an unauthenticated token, so it
    // may cost the issuer at most one request per cooldown, whatever the number of callers.
    if (now - this.#lastUnknownKidFetchAt < this.#unknownKidCooldownMs) return Promise.resolve();
    this.#lastUnknownKidFetchAt = now;
    return this.#refresh();
  }

  async start(): Promise<void> {
    if (this.#closed) return;
    const source = this.#issuer.source;
    if (source.kind === 'file') {
      await this.#install(validateJwks(source.jwks, this.#issuer.algorithms), 'file', null, source.path);
      return;
    }
    if (source.kind === 'token_service') {
      await this.reloadLocal();
      return;
    }
    await this.#loadDiskCache();
    await this.#refresh();
  }

  async reloadLocal(): Promise<void> {
    if (this.#localJwks === null || this.#closed) return;
    let jwks: unknown;
    try {
      jwks = this.#localJwks();
    } catch (error) {
      this.#fail(`token service keys unavailable: ${(error as Error).message}`, {});
      return;
    }
    // Not open yet (the state store opens after the first snapshot is prepared): no keys, no error.
    if (jwks !== null && jwks !== undefined) {
      // Validated like any issuer's set: the token service's own keys get no special trust.
      await this.#install(validateJwks(jwks, this.#issuer.algorithms), 'token_service', null, 'token service keys');
    }
    if (this.#closed) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.reloadLocal(), Math.min(this.#refreshIntervalMs, LOCAL_RELOAD_INTERVAL_MS));
    this.#timer.unref();
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    // destroy, not close: a fetch hanging on a dead issuer must not hold the process open.
    void this.#agent?.destroy().catch(() => undefined);
    this.#agent = null;
  }

  status(): KeySetStatus {
    return {
      keys: this.#index?.size ?? 0,
      generation: this.#generation,
      lastFetchAt: this.#lastFetchAt,
      lastError: this.#lastError,
      source: this.#origin,
    };
  }

  /** One fetch at a time: whoever asks while one runs gets that one. Reschedules the next refresh. */
  #refresh(): Promise<void> {
    if (this.#inFlight) return this.#inFlight;
    const run = this.#fetchAndInstall().finally(() => {
      this.#inFlight = null;
      this.#schedule();
    });
    this.#inFlight = run;
    return run;
  }

  /**
   * The next refresh after `refreshIntervalMs`; without keys, after the unknown-kid cooldown
   * (if shorter), so an issuer that was down at start is retried soon but never hammered.
   */
  #schedule(): void {
    if (this.#closed) return;
    if (this.#timer) clearTimeout(this.#timer);
    const delay = this.ready() ? this.#refreshIntervalMs : Math.min(this.#refreshIntervalMs, this.#unknownKidCooldownMs);
    this.#timer = setTimeout(() => void this.#refresh(), delay);
    // A refresh never keeps the process alive on its own.
    this.#timer.unref();
  }

  async #fetchAndInstall(): Promise<void> {
    this.#agent ??= createKeyFetchAgent(this.#issuer);
    let fetched: FetchedKeySet;
    try {
      fetched = await fetchIssuerKeySet(this.#issuer, this.#agent);
    } catch (error) {
      if (this.#closed) return;
      this.#published('error');
      this.#fail(error instanceof Error ? error.message : String(error), {});
      return;
    }
    if (this.#closed) return;
    const fetchedAt = this.#now();
    const installed = await this.#install(validateJwks(fetched.jwks, this.#issuer.algorithms), 'issuer', fetchedAt, fetched.url);
    if (this.#closed) return;
    this.#published(installed ? 'success' : 'invalid');
    if (!installed) return;
    this.#lastFetchAt = fetchedAt;
    this.#lastError = null;
    try {
      await writeCachedKeySet(this.#cachePath!, { issuer: this.#issuer.issuer, source: this.#sourceUrl!, url: fetched.url, fetchedAt, jwks: fetched.jwks });
    } catch (error) {
      // The keys are served either way; only the next restart with the issuer down loses them.
      log('warn', 'jwks.cache_write_failed', { issuer: this.issuerId, path: this.#cachePath, error: (error as Error).message });
    }
  }

  async #loadDiskCache(): Promise<void> {
    const read = await readCachedKeySet(this.#cachePath!, { issuer: this.#issuer.issuer, source: this.#sourceUrl! }, this.#now());
    if (!read.ok) {
      if (!read.missing) log('warn', 'jwks.cache_ignored', { issuer: this.issuerId, path: this.#cachePath, reason: read.reason });
      return;
    }
    const validation = validateJwks(read.entry.jwks, this.#issuer.algorithms);
    if (!validation.ok) {
      log('warn', 'jwks.cache_ignored', { issuer: this.issuerId, path: this.#cachePath, reason: 'invalid key set', problems: validation.problems });
      return;
    }
    await this.#install(validation, 'disk_cache', read.entry.fetchedAt, this.#cachePath!);
  }

  /**
   * Serves a validated set: one synchronous swap, and a new generation only when the (kid, alg,
   * key) triples changed. A refused set changes nothing. Returns whether the set is now served.
   */
  async #install(validation: JwksValidation, origin: Exclude<KeySetOrigin, 'none'>, confirmedAt: number | null, from: string): Promise<boolean> {
    if (!validation.ok) {
      this.#fail(`key set from ${from} refused: ${validation.problems.join('; ')}`, { problems: validation.problems });
      return false;
    }
    if (this.#index !== null && this.#index.identity === KeyIndex.identityOf(validation.keys)) {
      this.#origin = origin;
      this.#confirmedAt = confirmedAt;
      return true;
    }
    let index: KeyIndex;
    try {
      index = await KeyIndex.build(validation.keys);
    } catch (error) {
      this.#fail(`key set from ${from} refused: ${(error as Error).message}`, {});
      return false;
    }
    if (this.#closed) return false;
    const previousKids = this.#index?.kids ?? [];
    this.#index = index;
    this.#origin = origin;
    this.#confirmedAt = confirmedAt;
    this.#generation = ++lastGeneration;
    log('info', 'jwks.keys_changed', {
      issuer: this.issuerId,
      from,
      origin,
      generation: this.#generation,
      keys: index.size,
      added: index.kids.filter((kid) => !previousKids.includes(kid)),
      removed: previousKids.filter((kid) => !index.kids.includes(kid)),
    });
    return true;
  }

  /** Tells `portcullis:jwks:fetch` subscribers (metrics) how a fetch from the issuer ended. */
  #published(result: JwksFetchMessage['result']): void {
    if (jwksFetchChannel.hasSubscribers) jwksFetchChannel.publish({ issuer: this.issuerId, result } satisfies JwksFetchMessage);
  }

  #fail(message: string, fields: Record<string, unknown>): void {
    this.#lastError = message;
    const serving = this.ready();
    // Without keys every token of this issuer gets 503: that is an error, not a warning.
    log(serving ? 'warn' : 'error', this.#localJwks !== null ? 'jwks.token_service_refused' : this.#sourceUrl === null ? 'jwks.file_refused' : 'jwks.refresh_failed', {
      issuer: this.issuerId,
      error: message,
      ...fields,
      serving: serving ? `previous keys (generation ${this.#generation})` : 'no keys: tokens of this issuer are refused with 503',
    });
  }
}
