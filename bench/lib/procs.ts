/**
 * Child processes of the benchmark: started pinned to a core, waited for, measured through
 * /proc, and always stopped by PID (in `finally` and on SIGINT/SIGTERM).
 */
import { spawn, execFileSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync, readdirSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { request } from 'node:http';

export interface Proc {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Resolves when the process has exited (code or signal). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** True once the process has exited. */
  hasExited(): boolean;
}

const running = new Set<Proc>();

export interface SpawnPinnedOptions {
  /** Core to pin to with `taskset -c`; unpinned when undefined (the scheduler places it, as a deployment would). */
  cpu: number | undefined;
  /** File that receives the process's stdout and stderr. */
  logFile: string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

/**
 * Starts `command args…` under `taskset -c <cpu>` (or unpinned without a cpu). taskset execs the
 * command, so the PID is the command's own and every thread it creates inherits the pinning.
 */
export function spawnPinned(name: string, command: string, args: readonly string[], options: SpawnPinnedOptions): Proc {
  const log = createWriteStream(options.logFile, { flags: 'a' });
  const [file, argv] = options.cpu === undefined ? [command, [...args]] : ['taskset', ['-c', String(options.cpu), command, ...args]];
  const child = spawn(file, argv, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.pipe(log, { end: false });
  child.stderr!.pipe(log, { end: false });
  if (child.pid === undefined) throw new Error(`could not start ${name} (${command})`);
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => {
      done = true;
      resolve({ code, signal });
    });
    child.on('error', () => {
      done = true;
      resolve({ code: null, signal: null });
    });
  });
  const proc: Proc = { name, pid: child.pid, child, exited, hasExited: () => done };
  running.add(proc);
  void exited.then(() => {
    running.delete(proc);
    log.end();
  });
  return proc;
}

/** Sends SIGTERM to the process (by PID), then SIGKILL after `graceMs` if it is still there. */
export async function stop(proc: Proc, graceMs = 3000): Promise<void> {
  if (proc.hasExited()) return;
  signal(proc.pid, 'SIGTERM');
  const timer = new Promise<'timeout'>((resolve) => setTimeout(resolve, graceMs, 'timeout').unref());
  if ((await Promise.race([proc.exited, timer])) === 'timeout') {
    signal(proc.pid, 'SIGKILL');
    await Promise.race([proc.exited, new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}

/** Stops every process this module started that is still running, each by its PID. */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((proc) => stop(proc)));
}

/**
 * Runs `cleanup` once on SIGINT/SIGTERM, then exits with 128+signal. Returns a function that
 * removes the handlers.
 */
export function onInterrupt(cleanup: () => Promise<void>): () => void {
  let busy = false;
  const handler = (sig: NodeJS.Signals) => {
    if (busy) return;
    busy = true;
    process.stderr.write(`\nbench: ${sig}, stopping the processes it started…\n`);
    void cleanup().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Polls until 127.0.0.1:`port` accepts a connection; fails early if `proc` exits. */
export async function waitForPort(proc: Proc, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.hasExited()) throw new Error(`${proc.name} (pid ${proc.pid}) exited before listening on port ${port}`);
    if (await canConnect(port)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${proc.name} (pid ${proc.pid}) did not listen on port ${port} within ${timeoutMs} ms`);
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.setTimeout(500);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/** One GET with the given headers; resolves to the status and body. Bounded by `timeoutMs`. */
export function httpGet(url: string, headers: Record<string, string>, timeoutMs = 5000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET', headers, agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

// ---------------------------------------------------------------- /proc measurements

let clockTicks: number | undefined;

/** Clock ticks per second of /proc times (`getconf CLK_TCK`). */
export function clkTck(): number {
  clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  return clockTicks;
}

/** utime + stime of one process (all its threads), in clock ticks; 0 if it is gone. */
function processTicks(pid: number): number {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return 0;
  }
  // The command name (field 2) may contain spaces; the fields after it start past the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); utime is field 14, stime field 15.
  return Number(fields[11]) + Number(fields[12]);
}

function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

/** `pid` and all its descendants (a gateway may fork workers). */
export function processTree(pid: number): number[] {
  const parents = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const parent = parentOf(Number(entry));
    if (parent !== undefined) parents.set(Number(entry), parent);
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) {
    for (const [child, parent] of parents) if (parent === tree[i]) tree.push(child);
  }
  return tree;
}

/** CPU time (user + system) of `pid` and its descendants, in microseconds. */
export function cpuMicros(pid: number): number {
  const ticks = processTree(pid).reduce((sum, each) => sum + processTicks(each), 0);
  return (ticks * 1e6) / clkTck();
}

/** Resident set size of `pid` and its descendants, in bytes (VmRSS). */
export function rssBytes(pid: number): number {
  let total = 0;
  for (const each of processTree(pid)) {
    try {
      const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${each}/status`, 'utf8'));
      if (match) total += Number(match[1]) * 1024;
    } catch {
      // gone
    }
  }
  return total;
}

export interface CoreTimes {
  /** Jiffies spent running something on this core (user, nice, system, irq, softirq). */
  busy: number;
  /** Jiffies the hypervisor gave to another guest while this core wanted to run. */
  steal: number;
  total: number;
}

/** Busy, stolen and total jiffies of each listed core, from /proc/stat. */
export function coreTimes(cores: readonly number[]): Map<number, CoreTimes> {
  const result = new Map<number, CoreTimes>();
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const match = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (!match || !cores.includes(Number(match[1]))) continue;
    const [user, nice, system, idle, iowait, irq, softirq, steal] = match[2]!.split(/\s+/).map(Number);
    const busy = user! + nice! + system! + irq! + softirq!;
    result.set(Number(match[1]), { busy, steal: steal!, total: busy + steal! + idle! + iowait! });
  }
  return result;
}
