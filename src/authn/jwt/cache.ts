/**
 * Verified-token cache (ECOSYSTEM.md §2.1): a signature check costs 50–270 µs, a hit 2–5 µs.
 *
 * What may be cached, and for how long, is the security question, so:
 * - only successes are cached; a refusal is always recomputed (no negative cache to poison);
 * - the key is SHA-256 of the token (base64url), never the token itself, so bearer secrets do
 *   not sit in the heap as map keys (STYLE.md §4) — plus the audience it was verified for: a
 *   token verified for API A is not a hit for API B (JWT-11);
 * - an entry lives at most `min(exp − now, maxTtlMs)`, and on every hit `exp` and `nbf` are
 *   checked again with the issuer's leeway (time moves on; clocks can step back);
 * - an entry remembers the generation of its issuer's key set: after a rotation it is dropped
 *   and the token is verified again against the current keys;
 * - bounded: a Map in insertion order is the LRU (a hit moves the entry to the end, the oldest
 *   entry is evicted), and tokens longer than `maxTokenLength` are never cached.
 *
 * Caching never delays a revocation: revocation is checked on every request after this stage
 * (DESIGN.md, Scale).
 */
import { hash } from 'node:crypto';
import type { VerifiedToken } from './verify.ts';
import { TOKEN_CACHE_LOOKUP, tokenCacheLookupChannel } from '../../observability/channels.ts';

export interface VerifiedTokenCacheOptions {
  /** Most entries kept (default 10,000). */
  readonly maxEntries?: number;
  /** Longest an entry lives, in ms (default 60 s). */
  readonly maxTtlMs?: number;
  /** Tokens longer than this many characters are not cached (default 8 KiB). */
  readonly maxTokenLength?: number;
}

interface Entry {
  /** The outcome to return on a hit (`cached: true`, frozen). */
  readonly outcome: VerifiedToken;
  /** Key-set generation of the issuer when the signature was checked. */
  readonly generation: number;
  /** ms since the epoch: the entry is gone from then on. */
  readonly deadlineMs: number;
  /** ms since the epoch: `exp` and `nbf` (or -Infinity), re-checked with leeway on each hit. */
  readonly expMs: number;
  readonly nbfMs: number;
}

export class VerifiedTokenCache {
  readonly maxEntries: number;
  readonly maxTtlMs: number;
  readonly maxTokenLength: number;
  readonly #entries = new Map<string, Entry>();

  constructor(options: VerifiedTokenCacheOptions = {}) {
    this.maxEntries = positiveInteger(options.maxEntries ?? 10_000, 'maxEntries');
    this.maxTtlMs = positiveInteger(options.maxTtlMs ?? 60_000, 'maxTtlMs');
    this.maxTokenLength = positiveInteger(options.maxTokenLength ?? 8192, 'maxTokenLength');
  }

  get size(): number {
    return this.#entries.size;
  }

  /**
   * The cache key of `token` verified for `audience`, or undefined when the token is not
   * cacheable (too long). The digest has a fixed length, so `digest + audience` is unambiguous.
   */
  keyFor(token: string, audience: string): string | undefined {
    if (token.length > this.maxTokenLength) return undefined;
    return hash('sha256', token, 'base64url') + audience;
  }

  /**
   * The cached outcome under `key` if it is still good at `nowMs`: within its lifetime, `exp`
   * and `nbf` still hold with the issuer's leeway, and the issuer's key set is still at the
   * generation it was verified under (`currentGeneration` returns undefined when the key set
   * is gone). A stale entry is dropped and the caller verifies afresh.
   */
  get(key: string, nowMs: number, currentGeneration: (issuerId: string) => number | undefined): VerifiedToken | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) {
      if (tokenCacheLookupChannel.hasSubscribers) tokenCacheLookupChannel.publish(TOKEN_CACHE_LOOKUP.miss);
      return undefined;
    }
    const leewayMs = entry.outcome.issuer.leewayMs;
    const fresh =
      nowMs < entry.deadlineMs &&
      nowMs < entry.expMs + leewayMs &&
      entry.nbfMs <= nowMs + leewayMs &&
      currentGeneration(entry.outcome.issuer.id) === entry.generation;
    this.#entries.delete(key);
    if (tokenCacheLookupChannel.hasSubscribers) tokenCacheLookupChannel.publish(fresh ? TOKEN_CACHE_LOOKUP.hit : TOKEN_CACHE_LOOKUP.stale);
    if (!fresh) return undefined;
    this.#entries.set(key, entry); // most recently used goes last
    return entry.outcome;
  }

  /**
   * Remembers a successful verification made at `nowMs` under key-set `generation`. `outcome`
   * must be the frozen `cached: true` form (what a hit returns). Tokens that expire before
   * `nowMs` (accepted within leeway) are not cached.
   */
  set(key: string, outcome: VerifiedToken, generation: number, nowMs: number, nbf: number | undefined): void {
    const expMs = outcome.exp * 1000;
    const deadlineMs = Math.min(expMs, nowMs + this.maxTtlMs);
    if (deadlineMs <= nowMs) return;
    this.#entries.delete(key);
    this.#entries.set(key, { outcome, generation, deadlineMs, expMs, nbfMs: nbf === undefined ? -Infinity : nbf * 1000 });
    if (this.#entries.size > this.maxEntries) {
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
  }

  clear(): void {
    this.#entries.clear();
  }
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value <= 0) throw new RangeError(`VerifiedTokenCache: ${name} must be a positive integer`);
  return value;
}
