/**
 * Machine prerequisites: the tools the benchmark runs (wrk, nginx, taskset), installed with
 * apt-get when missing, and facts about the machine recorded with the results.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';

/** Absolute path of `command` on PATH, or undefined (`command -v`). */
export function which(command: string): string | undefined {
  const result = spawnSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' });
  const path = result.stdout.trim();
  return result.status === 0 && path ? path : undefined;
}

let aptUpdated = false;

function apt(args: readonly string[]): boolean {
  process.stdout.write(`bench: $ apt-get ${args.join(' ')}\n`);
  const result = spawnSync('apt-get', args, {
    stdio: ['ignore', 'inherit', 'inherit'],
    // RUNLEVEL=1 keeps invoke-rc.d from starting the distribution's own nginx service.
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive', RUNLEVEL: '1' },
  });
  return result.status === 0;
}

/**
 * Makes sure `command` is on PATH, installing the first of `packages` that installs if it is
 * not (printing each apt-get command it runs). Returns the command's path.
 */
export function ensureTool(command: string, packages: readonly string[]): string {
  const found = which(command);
  if (found) return found;
  if (!which('apt-get')) throw new Error(`"${command}" is not installed and apt-get is not available; install ${packages.join(' or ')} yourself`);
  process.stdout.write(`bench: "${command}" not found; installing it with apt-get\n`);
  if (!aptUpdated) {
    if (!apt(['update', '-qq'])) throw new Error('apt-get update failed');
    aptUpdated = true;
  }
  for (const pkg of packages) {
    if (apt(['install', '-y', '-qq', '--no-install-recommends', pkg])) {
      const path = which(command);
      if (path) return path;
    }
  }
  throw new Error(`could not install "${command}" (tried ${packages.join(', ')})`);
}

/** First line of `command args…` output (stdout or stderr), for the record. */
export function versionOf(command: string, args: readonly string[]): string {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  return `${result.stdout ?? ''}${result.stderr ?? ''}`.trim().split('\n')[0] ?? '';
}

/** The checkout's commit, with `-dirty` when tracked files have uncommitted changes. */
export function gitCommit(repo: string): string | undefined {
  const git = (...args: string[]) => execFileSync('git', ['-C', repo, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  try {
    const commit = git('rev-parse', '--short', 'HEAD');
    return git('status', '--porcelain', '--untracked-files=no') ? `${commit}-dirty` : commit;
  } catch {
    return undefined;
  }
}

export function machine(): { cpuModel: string; cores: number; loadavg: string } {
  let loadavg = '';
  try {
    loadavg = readFileSync('/proc/loadavg', 'utf8').trim();
  } catch {
    // not Linux
  }
  return { cpuModel: cpus()[0]?.model ?? 'unknown', cores: availableParallelism(), loadavg };
}
