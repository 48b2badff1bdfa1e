/**
 * GCRA buckets of one instance (`rate_limits.mode: local`): one theoretical arrival time per key,
 * in a Map, decided synchronously by `gcraStep` — the same arithmetic as the state drivers, so a
 * limit means the same in both modes (it is only per instance here).
 *
 * Memory is bounded. A key whose TAT has passed is a full bucket, exactly as if it were absent,
 * so dropping it changes no decision: such entries are swept at most once per `sweepIntervalMs`,
 * and before any eviction. Keys come from the configuration (partners, credentials, routes), so
 * the hard cap is a guard, not a working limit; when it is reached anyway, the oldest entry goes.
 */
import { gcraStep } from '../state/gcra.ts';
import type { GcraLimit, GcraResult } from '../state/store.ts';

const FORCED_SWEEP_SPACING_MS = 1000;

export interface LocalGcraOptions {
  /** Most keys held at once. Default 100 000. */
  readonly maxEntries?: number;
  /** Least time between two sweeps of expired entries. Default 10 s. */
  readonly sweepIntervalMs?: number;
}

export class LocalGcra {
  readonly #tats = new Map<string, number>();
  readonly #maxEntries: number;
  readonly #sweepIntervalMs: number;
  #lastSweepMs = Number.NEGATIVE_INFINITY;

  constructor(options: LocalGcraOptions = {}) {
    this.#maxEntries = options.maxEntries ?? 100_000;
    this.#sweepIntervalMs = options.sweepIntervalMs ?? 10_000;
    if (!Number.isInteger(this.#maxEntries) || this.#maxEntries < 1) throw new RangeError('maxEntries must be a positive integer');
  }

  /** Decides one request against `key` and records it when allowed. */
  check(key: string, limit: GcraLimit, nowMs: number): GcraResult {
    if (nowMs - this.#lastSweepMs >= this.#sweepIntervalMs) this.sweep(nowMs);
    const stored = this.#tats.get(key);
    const { result, newTat } = gcraStep(stored ?? null, nowMs, limit);
    if (newTat !== null) {
      if (stored === undefined) this.#makeRoom(nowMs);
      this.#tats.set(key, newTat);
    }
    return result;
  }

  /** Drops every entry whose bucket is full again (TAT at or before now). */
  sweep(nowMs: number): void {
    this.#lastSweepMs = nowMs;
    for (const [key, tat] of this.#tats) if (tat <= nowMs) this.#tats.delete(key);
  }

  get size(): number {
    return this.#tats.size;
  }

  #makeRoom(nowMs: number): void {
    if (this.#tats.size < this.#maxEntries) return;
    // A sweep walks every entry: when the map is full of live buckets, sweeping on every new key
    // would make each request cost O(n), so forced sweeps are spaced too.
    if (nowMs - this.#lastSweepMs >= FORCED_SWEEP_SPACING_MS) this.sweep(nowMs);
    // Still full of live buckets: forget the oldest. That bucket starts full again — at worst
    // one extra burst for one key, which beats refusing every new key.
    while (this.#tats.size >= this.#maxEntries) {
      const oldest = this.#tats.keys().next().value as string;
      this.#tats.delete(oldest);
    }
  }
}
