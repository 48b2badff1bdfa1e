/**
 * Issue 6: what the tamper-evident audit trail costs on the full authorization path. Three rows,
 * each `portcullis-jwt-rs256` (cached RS256 token, partner route, scope, CEL rule) with one
 * difference, the trail:
 *
 * - `-audit-off`: no trail at all (`audit.disabled_for_benchmark` with PORTCULLIS_BENCHMARK=1,
 *   the only way to run without one; the gateway then never reports ready). The decision log
 *   (`gateway.decision_log`, a file in every JWT row) is still written, so the rows differ by the
 *   trail alone: hashing, chaining into the combined and the partner stream, checkpoints, writes
 *   and fsyncs;
 * - `-audit-interval`: the product's default trail settings (`flush: interval`, 100 ms, fsync
 *   per interval), i.e. exactly `portcullis-jwt-rs256`'s config; a row of its own so its goal
 *   is against `-audit-off` while `portcullis-jwt-rs256` keeps issue 3's goal;
 * - `-audit-every-record`: `audit.flush: every-record` (no response before its record is
 *   synced), reported against `-audit-off` without a target.
 *
 * After each measured run a row proves the trail was what it claims: absent (no trail folder,
 * `/readyz` 503, nothing counted as written) or written (the gateway's count of records written
 * grew by at least the requests the decision log saw). When the gateway exports
 * `portcullis_audit_write_duration_seconds`, the note gives the write latency too.
 */
import { existsSync, openSync, closeSync, fstatSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { AUDIT_DISABLED_FOR_BENCHMARK_ACK, config as configSchema } from '../../src/config/schema.ts';
import type { BenchContext, RunningTarget, Target } from '../lib/target.ts';
import { httpGet } from '../lib/procs.ts';
import { portcullisPaths, serveUnavailable } from './portcullis.ts';
import { startJwtTarget } from './jwt.ts';

export type AuditMode = 'off' | 'interval' | 'every-record';

/** Issue 6: the chain with `interval` flushing may cost at most 10 % of the throughput without a trail. */
const AUDIT_GOAL = { against: 'portcullis-jwt-rs256-audit-off', minThroughputRatio: 0.9, lowerP99: false } as const;

const WRITE_DURATION = 'portcullis_audit_write_duration_seconds';
const RECORDS_WRITTEN = 'portcullis_audit_records_written_total';

/** Why this checkout's gateway cannot run `mode`, or undefined. */
function modeUnavailable(mode: AuditMode): string | undefined {
  if (mode !== 'every-record') return undefined;
  const audit = configSchema.shape.audit.unwrap();
  return audit.safeParse({ flush: 'every-record' }).success ? undefined : 'audit.flush: every-record is not in src/config/schema.ts yet';
}

export function auditTarget(mode: AuditMode): Target {
  const name = `portcullis-jwt-rs256-audit-${mode}`;
  const descriptions: Record<AuditMode, string> = {
    off: 'as portcullis-jwt-rs256, without the audit trail (audit.disabled_for_benchmark, PORTCULLIS_BENCHMARK=1; the decision log is still written)',
    interval: 'portcullis-jwt-rs256 itself: the default trail (hash chain, combined + partner stream, checkpoints; flush: interval, fsync every 100 ms)',
    'every-record': 'as portcullis-jwt-rs256, with audit.flush: every-record (a response waits for its record to be synced)',
  };
  return {
    name,
    description: descriptions[mode],
    ...(mode === 'interval' ? { goal: AUDIT_GOAL } : mode === 'every-record' ? { compare: AUDIT_GOAL.against } : {}),
    unavailable: (ctx) => serveUnavailable(ctx) ?? modeUnavailable(mode),
    start: (ctx) => startAuditTarget(ctx, name, mode),
  };
}

async function startAuditTarget(ctx: BenchContext, name: string, mode: AuditMode): Promise<RunningTarget> {
  const extraConfig =
    mode === 'off'
      ? `audit:\n  disabled_for_benchmark: ${JSON.stringify(AUDIT_DISABLED_FOR_BENCHMARK_ACK)}\n`
      : mode === 'every-record'
        ? 'audit:\n  flush: every-record\n'
        : '';
  const { opsPort, ...target } = await startJwtTarget(ctx, name, 'RS256', true, { extraConfig, ...(mode === 'off' ? { env: { PORTCULLIS_BENCHMARK: '1' } } : {}) });
  const ops = `http://127.0.0.1:${opsPort!}`;
  const paths = portcullisPaths(ctx, name);
  const trailDir = join(paths.stateDir, 'data', 'audit');
  let previous = await readAuditMetrics(ops);
  let decisionLogOffset = existsSync(paths.decisionLog) ? fstatSizeOf(paths.decisionLog) : 0;
  const baseAfterRun = target.afterRun!;

  if (mode === 'off') {
    // A switch that did not take would measure the trail and call it "off".
    const ready = await httpGet(`${ops}/readyz?verbose`, {});
    if (ready.status !== 503 || !ready.body.includes('[-]audit')) {
      await target.stop();
      throw new Error(`${name}: /readyz answered ${ready.status} (${ready.body.trim().replaceAll('\n', ', ')}): the gateway did not start without its trail`);
    }
  }

  return {
    ...target,
    async afterRun(run) {
      const base = await baseAfterRun(run);
      // The trail writes every 100 ms at most (interval): let the last batch land.
      await new Promise((resolve) => setTimeout(resolve, 300));
      const now = await readAuditMetrics(ops);
      const size = fstatSizeOf(paths.decisionLog);
      const decided = countLines(paths.decisionLog, decisionLogOffset, size);
      decisionLogOffset = size;
      const written = now.written - previous.written;
      const notes = [base];
      if (mode === 'off') {
        if (existsSync(trailDir)) throw new Error(`${trailDir} exists: the audit-off row wrote a trail`);
        if (now.written !== 0) throw new Error(`${RECORDS_WRITTEN} is ${now.written}: the audit-off row wrote records`);
        notes.push(`no trail: ${decided.toLocaleString('en-US')} decisions, 0 audit records`);
      } else {
        if (written < decided) {
          throw new Error(`the trail wrote ${written.toLocaleString('en-US')} records for ${decided.toLocaleString('en-US')} decisions since the last check`);
        }
        notes.push(`trail: ${written.toLocaleString('en-US')} records written for ${decided.toLocaleString('en-US')} decisions`);
        const latency = writeLatency(previous, now);
        if (latency) notes.push(latency);
      }
      previous = now;
      return notes.join('; ');
    },
  };
}

interface AuditMetrics {
  written: number;
  /** `portcullis_audit_write_duration_seconds`, when exported: sum (s), count, cumulative buckets by `le`. */
  duration: { sum: number; count: number; buckets: Map<number, number> } | null;
}

async function readAuditMetrics(ops: string): Promise<AuditMetrics> {
  const { status, body } = await httpGet(`${ops}/metrics`, {});
  if (status !== 200) throw new Error(`${ops}/metrics answered ${status}`);
  const total = (metric: string): number => {
    let sum = 0;
    for (const match of body.matchAll(new RegExp(`^${metric}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))) sum += Number(match[1]);
    return sum;
  };
  let duration: AuditMetrics['duration'] = null;
  if (body.includes(`${WRITE_DURATION}_count`)) {
    const buckets = new Map<number, number>();
    // Summed over any labels (e.g. one series per stream or sink).
    for (const match of body.matchAll(new RegExp(`^${WRITE_DURATION}_bucket\\{(?:[^}]*,)?le="([^"]+)"[^}]*\\} (\\S+)$`, 'gm'))) {
      const le = match[1] === '+Inf' ? Number.POSITIVE_INFINITY : Number(match[1]);
      buckets.set(le, (buckets.get(le) ?? 0) + Number(match[2]));
    }
    duration = { sum: total(`${WRITE_DURATION}_sum`), count: total(`${WRITE_DURATION}_count`), buckets };
  }
  return { written: total(RECORDS_WRITTEN), duration };
}

/** `audit write: n writes, mean x ms, p99 ≤ y ms` over the warm-up and measured run, or null. */
function writeLatency(before: AuditMetrics, after: AuditMetrics): string | null {
  if (!after.duration) return null;
  const count = after.duration.count - (before.duration?.count ?? 0);
  if (count <= 0) return `${WRITE_DURATION}: no write observed`;
  const mean = ((after.duration.sum - (before.duration?.sum ?? 0)) / count) * 1000;
  // The smallest bucket bound that holds 99 % of the writes: an upper bound on the p99.
  let p99 = Number.POSITIVE_INFINITY;
  for (const le of [...after.duration.buckets.keys()].sort((a, b) => a - b)) {
    const inBucket = after.duration.buckets.get(le)! - (before.duration?.buckets.get(le) ?? 0);
    if (inBucket >= 0.99 * count) {
      p99 = le;
      break;
    }
  }
  return `audit write: ${count.toLocaleString('en-US')} writes, mean ${mean.toFixed(2)} ms, p99 ≤ ${Number.isFinite(p99) ? `${(p99 * 1000).toFixed(1)} ms` : '+Inf'}`;
}

function fstatSizeOf(file: string): number {
  const fd = openSync(file, 'r');
  try {
    return fstatSync(fd).size;
  } finally {
    closeSync(fd);
  }
}

/** Newlines (complete records) in `file` between two byte offsets. */
function countLines(file: string, from: number, to: number): number {
  if (to <= from) return 0;
  const fd = openSync(file, 'r');
  try {
    const buffer = Buffer.alloc(to - from);
    const length = readSync(fd, buffer, 0, buffer.length, from);
    let lines = 0;
    for (let i = 0; i < length; i++) if (buffer[i] === 10) lines++;
    return lines;
  } finally {
    closeSync(fd);
  }
}
