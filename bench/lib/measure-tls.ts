/**
 * One measured run of a row driven by the TLS load generator: what `measure.ts` does with wrk,
 * with the same readings (the target's and the upstream's CPU from /proc, each pinned core's
 * busy and steal time) and the same `Sample`, plus the connections the generator opened.
 *
 * The readings bracket the load itself: the generator is started, reports ready, the "before"
 * readings are taken, then it is told to go (its Node start-up is outside the window; wrk's
 * start-up is too small to matter).
 */
import type { Sample } from './report.ts';
import type { ConnectionCounts, RunningTarget, TlsLoad, Upstream } from './target.ts';
import type { Cores } from './measure.ts';
import { clkTck, coreTimes, cpuMicros, rssBytes } from './procs.ts';
import type { CoreTimes } from './procs.ts';
import { startTlsLoad, workerOptions } from './tls-load.ts';

export interface TlsLoadSettings {
  /** The Node 24 the generator runs on. */
  node: string;
  url: string;
  headers: Record<string, string>;
  tls: TlsLoad;
  /** Core the generator is pinned to. */
  cpu: number;
  connections: number;
}

export type TlsSample = Sample & { connections: ConnectionCounts; firstSocketError?: string };

function delta(before: Map<number, CoreTimes>, after: Map<number, CoreTimes>, core: number): CoreTimes {
  const a = before.get(core)!;
  const b = after.get(core)!;
  return { busy: b.busy - a.busy, steal: b.steal - a.steal, total: Math.max(1, b.total - a.total) };
}

/** Warm-up run (unmeasured), then the measured run with CPU readings around it. */
export async function measureTls(
  target: RunningTarget,
  upstream: Upstream,
  load: TlsLoadSettings,
  timing: { round: number; warmup: number; duration: number },
  cores: Cores,
  signal?: AbortSignal,
): Promise<TlsSample> {
  const runOptions = (seconds: number) => workerOptions(load.url, load.headers, load.tls, { connections: load.connections, seconds });
  const warmup = timing.warmup > 0 ? await (await startTlsLoad(load.node, load.cpu, runOptions(timing.warmup), signal)).go() : undefined;
  const generator = await startTlsLoad(load.node, load.cpu, runOptions(timing.duration), signal);
  const ticks = clkTck();
  const coresBefore = coreTimes([cores.load, cores.server]);
  const targetBefore = cpuMicros(target.measured.pid);
  const upstreamBefore = cpuMicros(upstream.proc.pid);
  const t0 = performance.now();
  const result = await generator.go();
  const windowSeconds = (performance.now() - t0) / 1000;
  const targetCpu = cpuMicros(target.measured.pid) - targetBefore;
  const upstreamCpu = cpuMicros(upstream.proc.pid) - upstreamBefore;
  const coresAfter = coreTimes([cores.load, cores.server]);

  const loadCore = delta(coresBefore, coresAfter, cores.load);
  const server = delta(coresBefore, coresAfter, cores.server);
  const jiffy = 1e6 / ticks;
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
    loadGenCpuMicros: result.cpuMicros,
    windowSeconds,
    loadCoreBusy: percent(loadCore.busy * jiffy, loadCore),
    loadCoreOther: percent(Math.max(0, loadCore.busy * jiffy - result.cpuMicros), loadCore),
    serverCoreBusy: percent(server.busy * jiffy, server),
    serverCoreOther: percent(Math.max(0, server.busy * jiffy - targetCpu - upstreamCpu), server),
    steal: (100 * (loadCore.steal + server.steal)) / (loadCore.total + server.total),
    rssBytes: rssBytes(target.measured.pid),
    connections: result.connections,
    ...(result.firstError !== undefined ? { firstSocketError: result.firstError } : {}),
  };
}
