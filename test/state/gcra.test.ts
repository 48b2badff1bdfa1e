// gcraStep (src/state/gcra.ts): the one GCRA arithmetic the local limiter, the embedded driver
// and the Redis script share (ECOSYSTEM.md §2.19). Edge cases: first request, stale TAT, burst 0,
// the tolerance boundary, rounding of the times it reports, fractional intervals.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gcraStep } from '../../src/state/gcra.ts';
import type { GcraLimit } from '../../src/state/store.ts';

/** Runs `count` requests at `nowMs`, threading the TAT; returns the results and the final TAT. */
function burstAt(nowMs: number, count: number, limit: GcraLimit, storedTat: number | null = null) {
  let tat = storedTat;
  const results = [];
  for (let n = 0; n < count; n++) {
    const step = gcraStep(tat, nowMs, limit);
    if (step.newTat !== null) tat = step.newTat;
    results.push(step.result);
  }
  return { results, tat };
}

test('the first request is allowed with the whole burst left', () => {
  const { result, newTat } = gcraStep(null, 10_000, { emissionIntervalMs: 100, burst: 4 });
  assert.deepEqual(result, { allowed: true, retryAfterMs: 0, remaining: 4, resetMs: 100 });
  assert.equal(newTat, 10_100);
});

test('a TAT in the past counts as a full bucket (as if absent)', () => {
  const limit = { emissionIntervalMs: 100, burst: 4 };
  assert.deepEqual(gcraStep(5_000, 10_000, limit), gcraStep(null, 10_000, limit));
});

test('at one instant exactly burst + 1 are allowed, remaining counts down to 0, then refusals change nothing', () => {
  const limit = { emissionIntervalMs: 100, burst: 4 };
  const { results, tat } = burstAt(0, 8, limit);
  assert.deepEqual(results.map((result) => result.allowed), [true, true, true, true, true, false, false, false]);
  assert.deepEqual(results.map((result) => result.remaining), [4, 3, 2, 1, 0, 0, 0, 0]);
  assert.deepEqual(results.map((result) => result.resetMs), [100, 200, 300, 400, 500, 500, 500, 500]);
  assert.equal(tat, 500);
  const refused = gcraStep(tat, 0, limit);
  assert.equal(refused.newTat, null, 'a refusal leaves the TAT alone');
  assert.equal(refused.result.retryAfterMs, 100);
});

test('burst 0: one request per interval, never two at once', () => {
  const limit = { emissionIntervalMs: 1000, burst: 0 };
  const first = gcraStep(null, 0, limit);
  assert.deepEqual(first.result, { allowed: true, retryAfterMs: 0, remaining: 0, resetMs: 1000 });
  assert.deepEqual(gcraStep(first.newTat, 0, limit).result, { allowed: false, retryAfterMs: 1000, remaining: 0, resetMs: 1000 });
  assert.equal(gcraStep(first.newTat, 999, limit).result.retryAfterMs, 1);
  assert.equal(gcraStep(first.newTat, 1000, limit).result.allowed, true);
});

test('the tolerance boundary is inclusive: a TAT exactly burst intervals ahead is allowed, 1 µs more is not', () => {
  const limit = { emissionIntervalMs: 100, burst: 2 };
  assert.equal(gcraStep(200, 0, limit).result.allowed, true);
  assert.equal(gcraStep(200.001, 0, limit).result.allowed, false);
});

test('retryAfterMs is rounded up and at least 1 ms', () => {
  const limit = { emissionIntervalMs: 2.5, burst: 0 };
  assert.equal(gcraStep(2.5, 0, limit).result.retryAfterMs, 3, 'ceil(2.5)');
  assert.equal(gcraStep(2.5, 0.9, limit).result.retryAfterMs, 2, 'ceil(1.6)');
  assert.equal(gcraStep(2.5, 2.499, limit).result.retryAfterMs, 1, 'a microsecond still says 1 ms, never 0');
  assert.equal(gcraStep(2.5, 2.499, limit).result.resetMs, 1);
});

test('sub-millisecond intervals (thousands per second) allow exactly burst + 1 at once', () => {
  const limit = { emissionIntervalMs: 0.25, burst: 7 };
  const { results } = burstAt(1_000_000, 20, limit);
  assert.equal(results.filter((result) => result.allowed).length, 8);
  for (const refused of results.filter((result) => !result.allowed)) assert.equal(refused.retryAfterMs, 1);
});

test('fractional intervals do not drift: exact burst + 1 and remaining down to 0 for awkward rates', () => {
  for (const emissionIntervalMs of [0.1, 1000 / 3, 1000 / 7, 16.666666666666668, 60_000 / 13]) {
    for (const burst of [0, 1, 2, 3, 9, 99]) {
      const limit = { emissionIntervalMs, burst };
      const { results } = burstAt(1_700_000_000_000, burst + 3, limit);
      const allowed = results.filter((result) => result.allowed);
      assert.equal(allowed.length, burst + 1, `T=${emissionIntervalMs} burst=${burst}`);
      assert.deepEqual(allowed.map((result) => result.remaining), Array.from({ length: burst + 1 }, (_, n) => burst - n), `T=${emissionIntervalMs} burst=${burst}`);
      for (const result of results) assert.ok(result.remaining >= 0 && Number.isInteger(result.remaining));
    }
  }
});

test('a steady rate of one per interval is sustained once the burst is spent; 1 ms early is refused', () => {
  const limit = { emissionIntervalMs: 1000 / 3, burst: 2 };
  let { tat } = burstAt(0, 3, limit);
  for (let n = 1; n <= 300; n++) {
    const now = n * limit.emissionIntervalMs;
    const early = gcraStep(tat, now - 1, limit);
    assert.equal(early.result.allowed, false, `a little early at step ${n}`);
    const onTime = gcraStep(tat, now, limit);
    assert.equal(onTime.result.allowed, true, `on time at step ${n}`);
    tat = onTime.newTat;
  }
});

test('after a refusal, waiting retryAfterMs is enough', () => {
  const limit = { emissionIntervalMs: 1000 / 7, burst: 3 };
  const { tat } = burstAt(5_000, 4, limit);
  for (const now of [5_000, 5_010.5, 5_100]) {
    const refused = gcraStep(tat, now, limit);
    assert.equal(refused.result.allowed, false);
    assert.equal(gcraStep(tat, now + refused.result.retryAfterMs, limit).result.allowed, true, `retry after ${refused.result.retryAfterMs} ms from ${now}`);
    assert.equal(gcraStep(tat, now + refused.result.retryAfterMs - 1, limit).result.allowed, false, 'and not a full ms sooner');
  }
});
