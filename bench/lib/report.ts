/**
 * Turning the rounds into the report: medians per target, ratios to the baseline (per round,
 * then their median), the table, the verdict lines of targets that have a goal.
 */
import type { Goal } from './target.ts';
import type { WrkResult } from './wrk.ts';

/** One measured wrk run of one target. */
export interface Sample {
  round: number;
  /** 1 for the first try; higher when a noisy run was measured again. */
  attempt?: number;
  requests: number;
  seconds: number;
  requestsPerSecond: number;
  latencyMs: Record<string, number>;
  socketErrors: WrkResult['socketErrors'];
  non2xx3xx: number;
  /** Non-2xx/3xx responses during the warm-up run before it (not measured, but just as wrong). */
  warmupNon2xx3xx?: number;
  /** CPU time of the measured process during the run, µs. */
  cpuMicros: number;
  /** CPU time of the upstream nginx during the run, µs (same as cpuMicros for `direct`). */
  upstreamCpuMicros: number;
  /** CPU time of wrk during the run, µs. */
  loadGenCpuMicros: number;
  /** Wall time between the CPU readings, s. */
  windowSeconds: number;
  /** Busy share of the load generator's core and of the server core during the run, 0–100. */
  loadCoreBusy: number;
  /** Load core time not spent in wrk (other processes), 0–100. */
  loadCoreOther: number;
  serverCoreBusy: number;
  /** Server core time not spent in the target or the upstream (other processes), 0–100. */
  serverCoreOther: number;
  /** Share of both cores' time stolen by the hypervisor (a noisy-neighbour sign), 0–100. */
  steal: number;
  /** VmRSS of the measured process right after the run, bytes. */
  rssBytes: number;
}

export interface Row {
  target: string;
  description: string;
  status: 'ok' | 'skipped' | 'failed';
  reason?: string;
  baseline: boolean;
  /** One goal or several (see `Target.goal`). */
  goal?: Goal | readonly Goal[];
  /** Target this row is reported against without a goal (see `Target.compare`). */
  compare?: string;
  cpuOf?: string;
  /**
   * What drove the row: wrk, or the TLS load generator (rows wrk cannot drive: mTLS). A ratio
   * between rows driven by different generators mixes two clients' costs and is labelled so.
   */
  loadGenerator?: LoadGenerator;
  samples: Sample[];
  summary?: Summary;
}

export type LoadGenerator = 'wrk' | 'tls-load';

const GENERATOR_NAMES: Record<LoadGenerator, string> = { wrk: 'wrk', 'tls-load': 'the TLS load generator' };

/** A row's goals as a list (none, one or several). */
export function goalsOf(row: Pick<Row, 'goal'>): readonly Goal[] {
  if (row.goal === undefined) return [];
  return Array.isArray(row.goal) ? row.goal : [row.goal as Goal];
}

/** Whether two rows were driven by different load generators (unknown counts as wrk). */
function acrossGenerators(a: Pick<Row, 'loadGenerator'>, b: Pick<Row, 'loadGenerator'>): boolean {
  return (a.loadGenerator ?? 'wrk') !== (b.loadGenerator ?? 'wrk');
}

/** Marks a ratio cell whose two rows had different load generators (explained under the table). */
const ACROSS_MARK = ' †';

export interface Summary {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  cpuMicrosPerRequest: number;
  upstreamCpuMicrosPerRequest: number;
  loadGenCpuMicrosPerRequest: number;
  rssMB: number;
  loadCoreBusy: number;
  loadCoreOther: number;
  serverCoreBusy: number;
  serverCoreOther: number;
  steal: number;
  errors: number;
  /** req/s divided by the baseline's. */
  throughputRatio?: number;
  /** p99 divided by the baseline's. */
  p99Ratio?: number;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Medians over the rounds, then ratios against the baseline row. */
export function summarise(rows: Row[]): void {
  for (const row of rows) {
    if (row.status !== 'ok' || row.samples.length === 0) continue;
    const s = row.samples;
    row.summary = {
      requestsPerSecond: median(s.map((x) => x.requestsPerSecond)),
      p50Ms: median(s.map((x) => x.latencyMs['50']!)),
      p99Ms: median(s.map((x) => x.latencyMs['99']!)),
      cpuMicrosPerRequest: median(s.map((x) => x.cpuMicros / Math.max(1, x.requests))),
      upstreamCpuMicrosPerRequest: median(s.map((x) => x.upstreamCpuMicros / Math.max(1, x.requests))),
      loadGenCpuMicrosPerRequest: median(s.map((x) => x.loadGenCpuMicros / Math.max(1, x.requests))),
      rssMB: s[s.length - 1]!.rssBytes / 2 ** 20,
      loadCoreBusy: median(s.map((x) => x.loadCoreBusy)),
      loadCoreOther: median(s.map((x) => x.loadCoreOther)),
      serverCoreBusy: median(s.map((x) => x.serverCoreBusy)),
      serverCoreOther: median(s.map((x) => x.serverCoreOther)),
      steal: median(s.map((x) => x.steal)),
      errors: s.reduce((sum, x) => sum + x.non2xx3xx + Object.values(x.socketErrors).reduce((a, b) => a + b, 0), 0),
    };
  }
  const base = rows.find((row) => row.baseline);
  if (!base?.summary) return;
  for (const row of rows) {
    if (!row.summary) continue;
    row.summary.throughputRatio = pairedRatio(row, base, (x) => x.requestsPerSecond);
    row.summary.p99Ratio = pairedRatio(row, base, (x) => x.latencyMs['99']!);
  }
}

/**
 * `row` ÷ `base` for one figure: the median of the ratios within each round both were measured
 * in (interleaved rounds run the two close together, so a machine whose speed drifts during the
 * run — a busy host, a CPU clocked down — shifts both sides of a round's ratio alike), or the
 * ratio of the medians when they share no round.
 */
export function pairedRatio(row: Pick<Row, 'samples'>, base: Pick<Row, 'samples'>, figure: (sample: Sample) => number): number {
  const baseByRound = new Map(base.samples.map((sample) => [sample.round, sample]));
  const ratios = row.samples.flatMap((sample) => {
    const other = baseByRound.get(sample.round);
    return other === undefined ? [] : [figure(sample) / figure(other)];
  });
  return ratios.length > 0 ? median(ratios) : median(row.samples.map(figure)) / median(base.samples.map(figure));
}

const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const fixed = (value: number, digits: number) => (Number.isFinite(value) ? value.toFixed(digits) : '–');
const ratio = (value: number | undefined) => (value === undefined ? '–' : `${value.toFixed(2)}×`);

function table(header: readonly string[], body: readonly (readonly string[])[], alignLeft: readonly number[] = [0]): string {
  const widths = header.map((cell, i) => Math.max(cell.length, ...body.map((line) => line[i]!.length)));
  const cell = (text: string, i: number) => (alignLeft.includes(i) ? text.padEnd(widths[i]!) : text.padStart(widths[i]!));
  const line = (cells: readonly string[]) => `| ${cells.map(cell).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (alignLeft.includes(i) ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(header), rule, ...body.map(line)].join('\n');
}

/**
 * The main table (Markdown, so it can be pasted into docs/benchmarks.md as is). Ratios between a
 * row and a baseline driven by a different load generator are marked `†`, with a note under the
 * table.
 */
export function resultsTable(rows: readonly Row[]): string {
  const baselineRow = rows.find((row) => row.baseline);
  const baseline = baselineRow?.target ?? 'baseline';
  let marked: Row | undefined;
  const header = ['target', 'req/s', 'p50 ms', 'p99 ms', 'CPU µs/req', 'RSS MB', `req/s ÷ ${baseline}`, `p99 ÷ ${baseline}`];
  const body = rows.map((row) => {
    const s = row.summary;
    if (!s) return [row.target, row.status === 'skipped' ? 'skipped' : 'failed', '', '', '', '', '', ''];
    const across = baselineRow !== undefined && s.throughputRatio !== undefined && acrossGenerators(row, baselineRow);
    if (across) marked ??= row;
    const mark = across ? ACROSS_MARK : '';
    return [
      s.errors > 0 ? `${row.target} (!)` : row.target,
      int.format(s.requestsPerSecond),
      fixed(s.p50Ms, 2),
      fixed(s.p99Ms, 2),
      `${fixed(s.cpuMicrosPerRequest, 1)}${row.cpuOf && row.cpuOf !== 'gateway' && row.cpuOf !== 'proxy' ? ` (${row.cpuOf})` : ''}`,
      fixed(s.rssMB, 1),
      `${ratio(s.throughputRatio)}${mark}`,
      `${ratio(s.p99Ratio)}${mark}`,
    ];
  });
  const text = table(header, body);
  if (!marked || !baselineRow) return text;
  return (
    `${text}\n\n† across load generators: the row was driven by ${GENERATOR_NAMES[marked.loadGenerator ?? 'wrk']}, ` +
    `${baseline} by ${GENERATOR_NAMES[baselineRow.loadGenerator ?? 'wrk']}; each client's own cost and behaviour differ, so the ratio says less than the others`
  );
}

/**
 * Where the cores went: shows which side was the limit (a core near 100 % busy) and how much of
 * it other processes ("others": not wrk on the load core, not the target or nginx on the server
 * core) or the hypervisor ("steal") took; if those are high the figures are noise.
 */
export function coresTable(rows: readonly Row[], loadCpu: number, serverCpu: number): string {
  const header = [
    'target',
    `core ${loadCpu} busy %`,
    'of it others %',
    `core ${serverCpu} busy %`,
    'of it others %',
    'steal %',
    'wrk CPU µs/req',
    'nginx CPU µs/req',
  ];
  const body = rows
    .filter((row) => row.summary)
    .map((row) => {
      const s = row.summary!;
      return [
        row.target,
        fixed(s.loadCoreBusy, 0),
        fixed(s.loadCoreOther, 0),
        fixed(s.serverCoreBusy, 0),
        fixed(s.serverCoreOther, 0),
        fixed(s.steal, 1),
        fixed(s.loadGenCpuMicrosPerRequest, 1),
        fixed(s.upstreamCpuMicrosPerRequest, 1),
      ];
    });
  return table(header, body);
}

/**
 * One line per goal of each target (the measured ratios and MET / NOT MET), and one per target
 * reported against another without a goal (`compare`: the ratios only). A line comparing rows
 * driven by different load generators says so.
 */
export function verdicts(rows: readonly Row[]): string[] {
  const lines: string[] = [];
  for (const row of rows) {
    const goals = goalsOf(row);
    const checks: Array<{ against: string; goal?: Goal }> = goals.length ? goals.map((goal) => ({ against: goal.against, goal })) : row.compare !== undefined ? [{ against: row.compare }] : [];
    if (checks.length === 0) continue;
    if (!row.summary) {
      // One line for the row, not one per goal.
      lines.push(`${row.target}: not measured: ${row.target} ${row.status}${row.reason ? ` (${row.reason})` : ''}`);
      continue;
    }
    for (const { against, goal } of checks) lines.push(verdict(rows, row, against, goal));
  }
  return lines;
}

function verdict(rows: readonly Row[], row: Row, against: string, goal: Goal | undefined): string {
  const base = rows.find((other) => other.target === against);
  if (!row.summary || !base?.summary) return `${row.target}: not measured: ${against} ${base?.status ?? 'missing'}`;
  const throughput = pairedRatio(row, base, (x) => x.requestsPerSecond);
  const clean = row.summary.errors === 0;
  const errors = clean ? '' : `, ${row.summary.errors} errors`;
  const across = acrossGenerators(row, base)
    ? ` [across load generators: ${GENERATOR_NAMES[row.loadGenerator ?? 'wrk']} vs ${GENERATOR_NAMES[base.loadGenerator ?? 'wrk']}]`
    : '';
  if (!goal) {
    return (
      `${row.target}: ${throughput.toFixed(2)}× ${against} throughput (${costText(throughput)}), ` +
      `CPU ${fixed(row.summary.cpuMicrosPerRequest, 1)} vs ${fixed(base.summary.cpuMicrosPerRequest, 1)} µs/req, ` +
      `p99 ${fixed(row.summary.p99Ms, 2)} ms vs ${fixed(base.summary.p99Ms, 2)} ms${errors}${across}: no target, reported only`
    );
  }
  const throughputOk = throughput >= goal.minThroughputRatio;
  const p99Ok = !goal.lowerP99 || pairedRatio(row, base, (x) => x.latencyMs['99']!) < 1;
  const met = throughputOk && p99Ok && clean;
  const p99 = `p99 ${fixed(row.summary.p99Ms, 2)} ms vs ${fixed(base.summary.p99Ms, 2)} ms${goal.lowerP99 ? ' (target: lower)' : ''}`;
  if (goal.minThroughputRatio < 1) {
    // A cost budget: the row does more work than the one it is compared with, and may lose
    // at most (1 − ratio) of its throughput doing it.
    const budget = Math.round((1 - goal.minThroughputRatio) * 100);
    return (
      `${row.target}: ${throughput.toFixed(2)}× ${against} throughput (${costText(throughput)}; target ≥ ${goal.minThroughputRatio}×, a cost of at most ${budget}%), ` +
      `CPU ${fixed(row.summary.cpuMicrosPerRequest, 1)} vs ${fixed(base.summary.cpuMicrosPerRequest, 1)} µs/req, ${p99}${errors}${across}: ${met ? 'MET' : 'NOT MET'}`
    );
  }
  return `${row.target}: ${throughput.toFixed(2)}× ${against} throughput (target ≥ ${goal.minThroughputRatio}×), ${p99}${errors}${across}: ${met ? 'MET' : 'NOT MET'}`;
}

/** `costs 18%` of the other's throughput, or `faster` when it is not slower. */
function costText(ratio: number): string {
  return ratio < 1 ? `costs ${Math.round((1 - ratio) * 100)}%` : `no cost: ${Math.round((ratio - 1) * 100)}% faster`;
}
