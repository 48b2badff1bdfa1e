// What the trail unit tests open a trail with, and the decision record they append.
import { join } from 'node:path';
import type { AuditTrailOptions } from '../../src/audit/trail.ts';

/** A trail in `dir` with its key generated beside it, intervals far beyond a test's time unless overridden. */
export function trailOptions(dir: string, overrides: Partial<AuditTrailOptions> = {}): AuditTrailOptions {
  return {
    dir,
    flush: 'interval',
    flushIntervalMs: 10,
    checkpointIntervalMs: 60_000,
    checkpointEvery: 1000,
    signingKeyPath: null,
    keyDir: join(dir, '..', 'keys'),
    maxQueue: 10_000,
    ...overrides,
  };
}

/** Decision record n (request id `req-n`, a distinct second of 2030-01-01), for `partner` or none. */
export function decision(n: number, partner: string | null): object {
  return {
    '@timestamp': new Date(Date.UTC(2030, 0, 1, 0, 0, n)).toISOString(),
    event: { kind: 'event', action: 'gateway.request', outcome: 'success', reason: 'allowed' },
    http: { request: { id: `req-${n}` } },
    portcullis: { decision: 'allow', reason: 'allowed', partner: partner === null ? null : { id: partner }, n },
  };
}
