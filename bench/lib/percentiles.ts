/**
 * Percentiles of a set of measurements (the revocation benchmark's timings), by the
 * nearest-rank method: the p-th percentile is a value that was actually measured, the smallest
 * one with at least p % of the measurements at or below it. No interpolation: a p99 of 200
 * revocations is the 198th fastest, and says "two were slower", not a blend of two samples.
 */

export interface Distribution {
  count: number;
  min: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentile (0 < p ≤ 100) of `values`; NaN when there are none. */
export function percentile(values: readonly number[], p: number): number {
  if (!(p > 0 && p <= 100)) throw new RangeError(`a percentile is in (0, 100], not ${p}`);
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.ceil((p / 100) * sorted.length) - 1]!;
}

/** p50, p90, p99, min, max and mean of `values` (all NaN when there are none). */
export function distribution(values: readonly number[]): Distribution {
  if (values.some((value) => Number.isNaN(value))) throw new RangeError('a measurement is NaN');
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p: number) => (sorted.length === 0 ? Number.NaN : sorted[Math.ceil((p / 100) * sorted.length) - 1]!);
  return {
    count: sorted.length,
    min: sorted.length ? sorted[0]! : Number.NaN,
    p50: rank(50),
    p90: rank(90),
    p99: rank(99),
    max: sorted.length ? sorted[sorted.length - 1]! : Number.NaN,
    mean: sorted.length ? sorted.reduce((sum, value) => sum + value, 0) / sorted.length : Number.NaN,
  };
}
