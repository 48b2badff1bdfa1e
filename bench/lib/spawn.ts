/**
 * Child processes that are not pinned (the revocation benchmark lets the scheduler place its
 * three gateways, Redis and the probes, as a deployment would). Pinned ones go through
 * `spawnPinned` in procs.ts; both kinds are stopped by PID with `stop` from there.
 */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import type { Proc } from './procs.ts';
import { spawnPinned, stop } from './procs.ts';

export interface SpawnOptions {
  /** Core to pin to (`taskset -c`); unpinned when undefined. */
  cpu?: number;
  /** File that receives the process's stdout and stderr. */
  logFile: string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

const unpinned = new Set<Proc>();

/** Starts `command args…`, pinned to `options.cpu` if given; its PID is the command's own. */
export function spawnProcess(name: string, command: string, args: readonly string[], options: SpawnOptions): Proc {
  if (options.cpu !== undefined) {
    return spawnPinned(name, command, args, { cpu: options.cpu, logFile: options.logFile, ...(options.cwd ? { cwd: options.cwd } : {}), ...(options.env ? { env: options.env } : {}) });
  }
  const log = createWriteStream(options.logFile, { flags: 'a' });
  const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
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
  unpinned.add(proc);
  void exited.then(() => {
    unpinned.delete(proc);
    log.end();
  });
  return proc;
}

/** Stops every unpinned process this module started that is still running, each by its PID. */
export async function stopUnpinned(): Promise<void> {
  await Promise.all([...unpinned].map((proc) => stop(proc)));
}
