/**
 * GCRA (the Generic Cell Rate Algorithm, ECOSYSTEM.md §2.19): one "theoretical arrival time"
 * (TAT) per key. A request is allowed when the TAT is at most `burst` emission intervals ahead
 * of now; allowing it pushes the TAT one interval further. The local limiter, the embedded
 * driver and the Redis Lua script all follow this one function, so every mode agrees.
 *
 * The arithmetic is in whole microseconds: in floating-point milliseconds an interval such as
 * 1000/7 loses a burst slot to rounding.
 */
import type { GcraLimit, GcraResult } from './store.ts';

const US_PER_MS = 1000;

export function gcraStep(storedTat: number | null, nowMs: number, limit: GcraLimit): { result: GcraResult; newTat: number | null } {
  const interval = Math.max(1, Math.round(limit.emissionIntervalMs * US_PER_MS));
  const tolerance = limit.burst * interval;
  const now = Math.round(nowMs * US_PER_MS);
  const stored = storedTat === null ? null : Math.round(storedTat * US_PER_MS);
  const tat = stored === null || stored < now ? now : stored;
  if (tat - now > tolerance) {
    // Refused: nothing changes. Retry when the TAT has come within the tolerance again.
    const retryAfterMs = Math.max(1, Math.ceil((tat - tolerance - now) / US_PER_MS));
    return { result: { allowed: false, retryAfterMs, remaining: 0, resetMs: Math.ceil((tat - now) / US_PER_MS) }, newTat: null };
  }
  const newTat = tat + interval;
  const remaining = Math.max(0, Math.floor((tolerance - (newTat - now)) / interval) + 1);
  return { result: { allowed: true, retryAfterMs: 0, remaining, resetMs: Math.ceil((newTat - now) / US_PER_MS) }, newTat: newTat / US_PER_MS };
}
