/**
 * One measured run of one target, and waiting for a quiet machine before it.
 *
 * CPU figures come from /proc: the target's utime+stime (with its descendants), the upstream's,
 * wrk's (through its wrapper, see wrk.ts), and each pinned core's busy/steal jiffies, read right
 * before and right after the wrk run.
 */
import type { Sample } from './report.ts';
import type { RunningTarget, Upstream } from './target.ts';
import type { WrkOptions } from './wrk.ts';
import { clkTck, coreTimes, cpuMicros, rssBytes } from './procs.ts';
import type { CoreTimes } from './procs.ts';
import { runWrk } from './wrk.ts';

export interface Cores {
  load: number;
  server: number;
}

function delta(before: Map<number, CoreTimes>, after: Map<number, CoreTimes>, core: number): CoreTimes {
  const a = before.get(core)!;
  const b = after.get(core)!;
  return { busy: b.busy - a.busy, steal: b.steal - a.steal, total: Math.max(1, b.total - a.total) };
}

export interface QuietResult {
  quiet: boolean;
  waitedSeconds: number;
  /** Busy % of each core in the last 1-second look. */
  busy: Record<number, number>;
}

/**
 * Waits, in 1-second looks, until neither core is more than `thresholdPercent` busy (nothing of
 * ours is loaded at that point, so that is other processes), for at most `maxSeconds`.
 */
export async function waitForQuiet(cores: Cores, maxSeconds: number, thresholdPercent: number, signal?: AbortSignal): Promise<QuietResult> {
  const list = [cores.load, cores.server];
  const started = performance.now();
  let busy: Record<number, number> = {};
  do {
    const before = coreTimes(list);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const after = coreTimes(list);
    busy = Object.fromEntries(list.map((core) => [core, (100 * delta(before, after, core).busy) / delta(before, after, core).total]));
    if (Object.values(busy).every((value) => value <= thresholdPercent)) {
      return { quiet: true, waitedSeconds: (performance.now() - started) / 1000, busy };
    }
  } while (!signal?.aborted && (performance.now() - started) / 1000 < maxSeconds);
  return { quiet: false, waitedSeconds: (performance.now() - started) / 1000, busy };
}

/** Warm-up run (unmeasured), then the measured run with CPU readings around it. */
export async function measure(
  target: RunningTarget,
  upstream: Upstream,
  wrk: Omit<WrkOptions, 'seconds'>,
  timing: { round: number; warmup: number; duration: number },
  cores: Cores,
  signal?: AbortSignal,
): Promise<Sample> {
  const warmup = timing.warmup > 0 ? await runWrk({ ...wrk, seconds: timing.warmup }, signal) : undefined;
  const ticks = clkTck();
  const coresBefore = coreTimes([cores.load, cores.server]);
  const targetBefore = cpuMicros(target.measured.pid);
  const upstreamBefore = cpuMicros(upstream.proc.pid);
  const t0 = performance.now();
  const result = await runWrk({ ...wrk, seconds: timing.duration }, signal);
  const windowSeconds = (performance.now() - t0) / 1000;
  const targetCpu = cpuMicros(target.measured.pid) - targetBefore;
  const upstreamCpu = cpuMicros(upstream.proc.pid) - upstreamBefore;
  const coresAfter = coreTimes([cores.load, cores.server]);

  const load = delta(coresBefore, coresAfter, cores.load);
  const server = delta(coresBefore, coresAfter, cores.server);
  const jiffy = 1e6 / ticks;
  const wrkCpu = result.cpuTicks * jiffy;
  // Our own CPU on each core; what else the core did was other processes.
  const serverOwn = target.measured.pid === upstream.proc.pid ? targetCpu : targetCpu + upstreamCpu;
  const percent = (part: number, of: CoreTimes) => (100 * part) / (of.total * jiffy);
  return {
    round: timing.round,
    requests: result.requests,
    seconds: result.seconds,
    requestsPerSecond: result.requestsPerSecond,
    latencyMs: result.latencyMs,
    socketErrors: result.socketErrors,
    non2xx3xx: result.non2xx3xx,
    warmupNon2xx3xx: warmup?.non2xx3xx ?? 0,
    cpuMicros: targetCpu,
    upstreamCpuMicros: upstreamCpu,
    loadGenCpuMicros: wrkCpu,
    windowSeconds,
    loadCoreBusy: percent(load.busy * jiffy, load),
    loadCoreOther: Number.isFinite(wrkCpu) ? percent(Math.max(0, load.busy * jiffy - wrkCpu), load) : Number.NaN,
    serverCoreBusy: percent(server.busy * jiffy, server),
    serverCoreOther: percent(Math.max(0, server.busy * jiffy - serverOwn), server),
    steal: (100 * (load.steal + server.steal)) / (load.total + server.total),
    rssBytes: rssBytes(target.measured.pid),
  };
}
