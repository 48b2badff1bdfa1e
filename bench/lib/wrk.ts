/**
 * The load generator: `taskset -c <cpu> wrk -t<threads> -c<connections> -d<seconds>s --latency`,
 * and a parser for its text report.
 */
import { spawn } from 'node:child_process';
import { processTree } from './procs.ts';
import type { WrkScript } from './target.ts';

export interface WrkOptions {
  url: string;
  headers: Record<string, string>;
  /** Core wrk is pinned to. */
  cpu: number;
  threads: number;
  connections: number;
  /** Length of the run, whole seconds. */
  seconds: number;
  /** A Lua script that builds each request (`-s`), and its arguments (after `--`). */
  script?: WrkScript;
}

export interface WrkResult {
  requests: number;
  /** Measured duration of the run as wrk reports it, in seconds. */
  seconds: number;
  requestsPerSecond: number;
  /** Latency percentiles in milliseconds, keyed by percentile (50, 75, 90, 99). */
  latencyMs: Record<string, number>;
  socketErrors: { connect: number; read: number; write: number; timeout: number };
  /** Responses with a status other than 2xx or 3xx. */
  non2xx3xx: number;
  raw: string;
}

/** The argument vector for `wrk`, without the taskset prefix. */
export function wrkArgs(options: WrkOptions): string[] {
  const args = [`-t${options.threads}`, `-c${options.connections}`, `-d${options.seconds}s`, '--latency'];
  for (const [name, value] of Object.entries(options.headers)) args.push('-H', `${name}: ${value}`);
  if (options.script) args.push('-s', options.script.path);
  args.push(options.url);
  if (options.script) args.push('--', ...options.script.args);
  return args;
}

/**
 * wrk runs under a small `sh` that, once wrk has exited and been reaped, prints its own
 * cutime + cstime (fields 16 and 17 of /proc/<sh>/stat): wrk's CPU time, in clock ticks.
 */
const WRAPPER = 'wrk "$@"; rc=$?; echo "@@wrk-cpu-ticks $(cut -d" " -f16,17 /proc/$$/stat)"; exit $rc';

/**
 * Runs wrk pinned to `options.cpu` and parses its report. The run is bounded by wrk's own `-d`;
 * as a guard, the wrapper and wrk are killed (by PID) if they have not finished 20 s after that,
 * or as soon as `signal` aborts.
 */
export function runWrk(options: WrkOptions, signal?: AbortSignal): Promise<WrkResult & { cpuTicks: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn('taskset', ['-c', String(options.cpu), 'sh', '-c', WRAPPER, 'sh', ...wrkArgs(options)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
    const kill = () => {
      if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
      for (const pid of processTree(child.pid).reverse()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    };
    const guard = setTimeout(kill, (options.seconds + 20) * 1000);
    signal?.addEventListener('abort', kill, { once: true });
    const settle = () => {
      clearTimeout(guard);
      signal?.removeEventListener('abort', kill);
    };
    child.on('error', (error) => {
      settle();
      reject(error);
    });
    child.on('exit', (code, sig) => {
      settle();
      if (code !== 0) {
        reject(new Error(`wrk exited with ${sig ?? code}: ${err.trim() || out.trim()}`));
        return;
      }
      try {
        const ticks = /^@@wrk-cpu-ticks (\d+) (\d+)$/m.exec(out);
        resolve({ ...parseWrk(out), cpuTicks: ticks ? Number(ticks[1]) + Number(ticks[2]) : Number.NaN });
      } catch (error) {
        reject(error);
      }
    });
  });
}

const TIME_UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `1.23ms` / `850.00us` / `1.02s` → milliseconds. */
export function parseDurationMs(text: string): number {
  const match = /^([\d.]+)(us|ms|s|m|h)$/.exec(text.trim());
  if (!match) throw new Error(`unrecognised wrk duration "${text}"`);
  return Number(match[1]) * TIME_UNIT_MS[match[2]!]!;
}

/** Parses wrk's report (run with `--latency`). Throws if the essential lines are missing. */
export function parseWrk(text: string): WrkResult {
  const latencyMs: Record<string, number> = {};
  const distribution = text.split(/Latency Distribution/)[1] ?? '';
  for (const match of distribution.matchAll(/^\s*(\d+(?:\.\d+)?)%\s+([\d.]+(?:us|ms|s|m|h))\s*$/gm)) {
    latencyMs[String(Number(match[1]))] = parseDurationMs(match[2]!);
  }
  const total = /^\s*(\d+) requests in ([\d.]+(?:us|ms|s|m|h)),/m.exec(text);
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(text);
  if (!total || !rps || latencyMs['50'] === undefined || latencyMs['99'] === undefined) {
    throw new Error(`could not parse wrk output:\n${text}`);
  }
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(text);
  return {
    requests: Number(total[1]),
    seconds: parseDurationMs(total[2]!) / 1000,
    requestsPerSecond: Number(rps[1]),
    latencyMs,
    socketErrors: {
      connect: Number(errors?.[1] ?? 0),
      read: Number(errors?.[2] ?? 0),
      write: Number(errors?.[3] ?? 0),
      timeout: Number(errors?.[4] ?? 0),
    },
    non2xx3xx: Number(non2xx?.[1] ?? 0),
    raw: text,
  };
}
