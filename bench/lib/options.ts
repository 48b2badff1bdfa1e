/** What every benchmark script needs before it measures: its numeric options, and the Node 24 to run targets on. */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH_DIR = dirname(dirname(fileURLToPath(import.meta.url)));
export const REPO_ROOT = dirname(BENCH_DIR);

/** An integer option within [min, max], or an error naming the flag. */
export function integerOption(text: string, flag: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(max === Number.MAX_SAFE_INTEGER ? `${flag} expects an integer ≥ ${min} (got "${text}")` : `${flag} expects an integer in [${min}, ${max}] (got "${text}")`);
  }
  return value;
}

/** The Node 24 every Node target runs on: the project's own (npm package `node`), else this one. */
export function findNode24(): string {
  for (const candidate of [join(REPO_ROOT, 'node_modules', '.bin', 'node'), join(BENCH_DIR, 'node_modules', '.bin', 'node'), process.execPath]) {
    if (!existsSync(candidate)) continue;
    const version = execFileSync(candidate, ['--version'], { encoding: 'utf8' }).trim();
    if (Number(/^v(\d+)/.exec(version)?.[1]) >= 24) return candidate;
  }
  throw new Error('no Node 24 found: run "npm install" in the repository root (and in bench/)');
}
