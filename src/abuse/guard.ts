/**
 * Abuse protection of one instance (issue 7; SECURITY.md API2, API4): a source address that
 * piles up authentication failures, or a credential that keeps probing what it is not granted,
 * is refused for a while.
 *
 * Counting is a sliding window, approximated the usual way with two fixed windows (the current
 * one counts fully, the previous one in proportion to how much of it still overlaps): a burst
 * split across a window boundary is caught, and each key costs three numbers. A block starts
 * when the count goes above `max`, lasts `blockMs`, and is not extended by what happens during it.
 *
 * Sources are aggregated by what one attacker controls: an IPv6 client gets a whole /64 (RFC 4291
 * §2.5.4: the interface identifier is the host's to pick), so the key is the /64; an IPv4-mapped
 * IPv6 address (`::ffff:192.0.2.1`, a dual-stack listener) counts as the IPv4 address.
 *
 * Memory is bounded: counters and blocks are kept in separate maps with a cap each, so a flood
 * of failures from fresh addresses can push out old counters but never a block. Entries that no
 * longer matter (window over, block ended) are swept at most once per `sweepIntervalMs`; beyond
 * the cap, the oldest entry goes.
 */
import { isIP } from 'node:net';
import type { AbuseThreshold } from '../config/snapshot.ts';

export interface AbuseGuardOptions {
  /** Most counters (and, separately, most blocks) kept per kind. Default 100 000. */
  readonly maxEntries?: number;
  /** Least time between two sweeps of stale entries. Default 10 s. */
  readonly sweepIntervalMs?: number;
}

export class AbuseGuard {
  readonly #sources: Tracker;
  readonly #credentials: Tracker;

  constructor(options: AbuseGuardOptions = {}) {
    const maxEntries = options.maxEntries ?? 100_000;
    if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new RangeError('maxEntries must be a positive integer');
    const sweepIntervalMs = options.sweepIntervalMs ?? 10_000;
    this.#sources = new Tracker(maxEntries, sweepIntervalMs);
    this.#credentials = new Tracker(maxEntries, sweepIntervalMs);
  }

  sourceBlocked(ip: string, nowMs: number): { untilMs: number } | null {
    return this.#sources.blocked(sourceKey(ip), nowMs);
  }

  credentialBlocked(credentialId: string, nowMs: number): { untilMs: number } | null {
    return this.#credentials.blocked(credentialId, nowMs);
  }

  /** Counts one authentication failure from `ip`; true when it started a block. */
  recordAuthFailure(ip: string, threshold: AbuseThreshold, nowMs: number): boolean {
    return this.#sources.record(sourceKey(ip), threshold, nowMs);
  }

  /** Counts one authorization refusal of `credentialId`; true when it started a block. */
  recordDenial(credentialId: string, threshold: AbuseThreshold, nowMs: number): boolean {
    return this.#credentials.record(credentialId, threshold, nowMs);
  }

  /** Entries held, for tests and metrics. */
  get size(): { readonly sourceCounters: number; readonly sourceBlocks: number; readonly credentialCounters: number; readonly credentialBlocks: number } {
    return {
      sourceCounters: this.#sources.counterCount,
      sourceBlocks: this.#sources.blockCount,
      credentialCounters: this.#credentials.counterCount,
      credentialBlocks: this.#credentials.blockCount,
    };
  }
}

interface Counter {
  /** Start of the current fixed window (a multiple of `windowMs`). */
  windowStart: number;
  windowMs: number;
  current: number;
  previous: number;
}

class Tracker {
  readonly #counters = new Map<string, Counter>();
  /** key → end of the block (ms since the epoch). */
  readonly #blocks = new Map<string, number>();
  readonly #maxEntries: number;
  readonly #sweepIntervalMs: number;
  #lastSweepMs = Number.NEGATIVE_INFINITY;

  constructor(maxEntries: number, sweepIntervalMs: number) {
    this.#maxEntries = maxEntries;
    this.#sweepIntervalMs = sweepIntervalMs;
  }

  get counterCount(): number {
    return this.#counters.size;
  }

  get blockCount(): number {
    return this.#blocks.size;
  }

  blocked(key: string, nowMs: number): { untilMs: number } | null {
    const untilMs = this.#blocks.get(key);
    if (untilMs === undefined) return null;
    if (untilMs <= nowMs) {
      this.#blocks.delete(key);
      return null;
    }
    return { untilMs };
  }

  record(key: string, threshold: AbuseThreshold, nowMs: number): boolean {
    if (nowMs - this.#lastSweepMs >= this.#sweepIntervalMs) this.#sweep(nowMs);
    // Already blocked: the block runs its course; failures meanwhile do not prolong it.
    if (this.blocked(key, nowMs) !== null) return false;
    const { windowMs } = threshold;
    const windowStart = Math.floor(nowMs / windowMs) * windowMs;
    let counter = this.#counters.get(key);
    if (counter === undefined) {
      makeRoom(this.#counters, this.#maxEntries);
      counter = { windowStart, windowMs, current: 0, previous: 0 };
      this.#counters.set(key, counter);
    } else if (counter.windowMs !== windowMs || counter.windowStart !== windowStart) {
      // A new window; the one just ended becomes the previous one (a reload that changed the
      // window size starts over).
      const adjacent = counter.windowMs === windowMs && counter.windowStart === windowStart - windowMs;
      counter.previous = adjacent ? counter.current : 0;
      counter.current = 0;
      counter.windowStart = windowStart;
      counter.windowMs = windowMs;
    }
    counter.current += 1;
    const overlap = 1 - (nowMs - windowStart) / windowMs;
    const estimate = counter.current + counter.previous * overlap;
    if (estimate <= threshold.max) return false;
    this.#counters.delete(key);
    makeRoom(this.#blocks, this.#maxEntries);
    this.#blocks.set(key, nowMs + threshold.blockMs);
    return true;
  }

  #sweep(nowMs: number): void {
    this.#lastSweepMs = nowMs;
    for (const [key, counter] of this.#counters) {
      // Two windows on, the counter weighs nothing any more.
      if (counter.windowStart + 2 * counter.windowMs <= nowMs) this.#counters.delete(key);
    }
    for (const [key, untilMs] of this.#blocks) if (untilMs <= nowMs) this.#blocks.delete(key);
  }
}

/** Frees one slot in a full map by dropping its oldest entry (insertion order). */
function makeRoom(map: Map<string, unknown>, maxEntries: number): void {
  while (map.size >= maxEntries) map.delete(map.keys().next().value as string);
}

/**
 * The key of a client address: IPv4 as is; IPv4-mapped IPv6 as the IPv4 address; other IPv6 as
 * its /64 (`2001:db8:1:2::/64`). Anything else (no address known) is used verbatim.
 */
export function sourceKey(ip: string): string {
  const zone = ip.indexOf('%');
  const address = zone >= 0 ? ip.slice(0, zone) : ip;
  const family = isIP(address);
  if (family === 4) return address;
  if (family !== 6) return ip;
  const groups = ipv6Groups(address);
  // ::ffff:0:0/96 (RFC 4291 §2.5.5.2).
  if (groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff) {
    const high = groups[6]!;
    const low = groups[7]!;
    return `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;
  }
  return `${groups.slice(0, 4).map((group) => group.toString(16)).join(':')}::/64`;
}

/** The eight 16-bit groups of a valid IPv6 address (with `::` and an embedded IPv4 tail). */
function ipv6Groups(address: string): number[] {
  let text = address.toLowerCase();
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4 !== null) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const zeros = tail === undefined ? [] : new Array<string>(8 - headGroups.length - tailGroups.length).fill('0');
  return [...headGroups, ...zeros, ...tailGroups].map((group) => parseInt(group, 16));
}
