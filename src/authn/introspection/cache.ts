/**
 * The introspection result cache: bounded, least-recently-used, each entry with its own expiry.
 * Keys carry a SHA-256 of the token, never the token itself (SECURITY.md IN-05, STYLE.md §4):
 * a heap dump or a debugger on the gateway does not hand out bearer tokens.
 */
import { hash } from 'node:crypto';

/** Most entries kept per endpoint; the least recently used one goes first. */
export const CACHE_MAX_ENTRIES = 10_000;

/** One entry per token and audience: an answer judged for one API says nothing about another. */
export function cacheKey(token: string, audience: string): string {
  return `${hash('sha256', token, 'base64url')} ${audience}`;
}

export class ExpiringLruCache<Value> {
  readonly #maxEntries: number;
  // A Map iterates in insertion order: re-inserting on use keeps the least recently used first.
  readonly #entries = new Map<string, { readonly value: Value; readonly expiresAt: number }>();

  constructor(maxEntries: number) {
    this.#maxEntries = maxEntries;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The value, unless absent or expired at `nowMs` (an expired entry is dropped). */
  get(key: string, nowMs: number): Value | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    this.#entries.delete(key);
    if (nowMs >= entry.expiresAt) return undefined;
    this.#entries.set(key, entry);
    return entry.value;
  }

  set(key: string, value: Value, expiresAt: number): void {
    this.#entries.delete(key);
    this.#entries.set(key, { value, expiresAt });
    if (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next().value!;
      this.#entries.delete(oldest);
    }
  }

  clear(): void {
    this.#entries.clear();
  }
}
