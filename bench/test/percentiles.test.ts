import { test } from 'node:test';
import assert from 'node:assert/strict';
import { distribution, percentile } from '../lib/percentiles.ts';

test('nearest rank: the p-th percentile is a measured value with at least p % at or below it', () => {
  const values = Array.from({ length: 200 }, (_, i) => 200 - i); // 200 … 1, unsorted on purpose
  assert.equal(percentile(values, 50), 100);
  assert.equal(percentile(values, 90), 180);
  // 99 % of 200 is 198: the p99 of 200 revocations leaves exactly two slower ones above it.
  assert.equal(percentile(values, 99), 198);
  assert.equal(percentile(values, 100), 200);
  assert.equal(percentile([7], 1), 7);
  assert.equal(percentile([1, 2, 3, 4], 50), 2);
  assert.equal(percentile([1, 2, 3, 4], 51), 3);
});

test('percentile does not interpolate and does not reorder its input', () => {
  const values = [10, 0];
  assert.equal(percentile(values, 50), 0);
  assert.deepEqual(values, [10, 0]);
});

test('percentile refuses a p outside (0, 100] and has no answer for no values', () => {
  assert.throws(() => percentile([1], 0), RangeError);
  assert.throws(() => percentile([1], 101), RangeError);
  assert.throws(() => percentile([1], Number.NaN), RangeError);
  assert.ok(Number.isNaN(percentile([], 50)));
});

test('distribution gives p50/p90/p99/min/max/mean; a never-refused Infinity ends up in max and the tail', () => {
  const values = [...Array.from({ length: 99 }, (_, i) => i + 1), Number.POSITIVE_INFINITY];
  const d = distribution(values);
  assert.equal(d.count, 100);
  assert.equal(d.min, 1);
  assert.equal(d.p50, 50);
  assert.equal(d.p90, 90);
  assert.equal(d.p99, 99);
  assert.equal(d.max, Number.POSITIVE_INFINITY);
  assert.equal(distribution([1, 2, 3, 6]).mean, 3);
});

test('distribution of nothing is all NaN; a NaN measurement is refused', () => {
  const d = distribution([]);
  assert.equal(d.count, 0);
  for (const key of ['min', 'p50', 'p90', 'p99', 'max', 'mean'] as const) assert.ok(Number.isNaN(d[key]), key);
  assert.throws(() => distribution([1, Number.NaN]), RangeError);
});
