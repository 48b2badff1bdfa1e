// The in-process GCRA buckets: exact counts against the arithmetic of ECOSYSTEM.md §2.19, with a
// frozen clock (times are passed in), and memory that stays bounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LocalGcra } from '../../src/ratelimit/local-gcra.ts';

// 10/s: one request every 100 ms; burst 2 → three at once.
const TEN_PER_SECOND_BURST_2 = { emissionIntervalMs: 100, burst: 2 };

test('a fresh bucket allows burst + 1 at once, then one per emission interval', () => {
  const gcra = new LocalGcra();
  const t0 = 1_000_000;
  const first = [gcra.check('k', TEN_PER_SECOND_BURST_2, t0), gcra.check('k', TEN_PER_SECOND_BURST_2, t0), gcra.check('k', TEN_PER_SECOND_BURST_2, t0)];
  assert.deepEqual(first.map((r) => r.allowed), [true, true, true]);
  assert.deepEqual(first.map((r) => r.remaining), [2, 1, 0]);
  assert.deepEqual(first.map((r) => r.resetMs), [100, 200, 300]);

  const refused = gcra.check('k', TEN_PER_SECOND_BURST_2, t0);
  assert.equal(refused.allowed, false);
  assert.equal(refused.retryAfterMs, 100);
  assert.equal(refused.remaining, 0);
  // A refusal consumes nothing: still refused 1 ms before the interval, allowed exactly at it.
  assert.equal(gcra.check('k', TEN_PER_SECOND_BURST_2, t0 + 99).allowed, false);
  assert.equal(gcra.check('k', TEN_PER_SECOND_BURST_2, t0 + 99).retryAfterMs, 1);
  assert.equal(gcra.check('k', TEN_PER_SECOND_BURST_2, t0 + 100).allowed, true);
  assert.equal(gcra.check('k', TEN_PER_SECOND_BURST_2, t0 + 100).allowed, false);
});

test('over a long run the count allowed is exactly burst + 1 + elapsed / interval', () => {
  const gcra = new LocalGcra();
  const t0 = 5_000_000;
  let allowedCount = 0;
  // A request every millisecond for 10 s: far above the rate.
  for (let t = t0; t < t0 + 10_000; t++) if (gcra.check('hammer', TEN_PER_SECOND_BURST_2, t).allowed) allowedCount++;
  // At t0: 3 (burst + 1); then one at t0+100, +200, … +9900: 99 more.
  assert.equal(allowedCount, 3 + 99);
});

test('a caller at exactly the steady rate is never refused; keys are independent', () => {
  const gcra = new LocalGcra();
  const limit = { emissionIntervalMs: 250, burst: 0 };
  for (let i = 0; i < 100; i++) assert.equal(gcra.check('steady', limit, 10_000 + i * 250).allowed, true, `request ${i}`);
  assert.equal(gcra.check('steady', limit, 10_000 + 99 * 250 + 1).allowed, false);
  assert.equal(gcra.check('other', limit, 10_000 + 99 * 250 + 1).allowed, true);
});

test('full buckets are forgotten and the number of keys never exceeds the cap', () => {
  const gcra = new LocalGcra({ maxEntries: 10, sweepIntervalMs: 1000 });
  const limit = { emissionIntervalMs: 100, burst: 0 };
  for (let i = 0; i < 100; i++) {
    gcra.check(`key-${i}`, limit, 0);
    assert.ok(gcra.size <= 10, `size ${gcra.size} after ${i + 1} keys`);
  }
  // The ten kept are the newest; their TATs are at 100 ms, so after that they are full buckets.
  assert.equal(gcra.size, 10);
  assert.equal(gcra.check('key-99', limit, 50).allowed, false, 'a live bucket is kept');
  gcra.check('late', limit, 5000);
  assert.equal(gcra.size, 1, 'the periodic sweep dropped every full bucket');
});

test('at the cap, expired buckets go before live ones', () => {
  const gcra = new LocalGcra({ maxEntries: 3, sweepIntervalMs: 60_000 });
  const slow = { emissionIntervalMs: 60_000, burst: 0 };
  const fast = { emissionIntervalMs: 10, burst: 0 };
  gcra.check('live', slow, 0); // TAT 60 000
  gcra.check('short-1', fast, 0); // TAT 10
  gcra.check('short-2', fast, 0); // TAT 10
  gcra.check('new', fast, 2000); // full: the forced sweep drops both short buckets, not `live`
  assert.equal(gcra.size, 2);
  assert.equal(gcra.check('live', slow, 2000).allowed, false, 'the live bucket survived');
});
