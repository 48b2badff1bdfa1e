/**
 * `serve --workers N` gives each worker its own trail in `<audit dir>/worker-<slot>` (one chain,
 * one writer). An audit folder then holds trails rather than streams; `audit verify` and
 * `audit query` treat such a folder as the union of its workers' trails.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { COMBINED_STREAM, streamFile } from './chain-format.ts';

const WORKER_TRAIL = /^worker-[1-9][0-9]*$/;

/** The worker sub-folders of `dir` in slot order; empty when `dir` is itself a trail. */
export async function workerTrails(dir: string): Promise<string[]> {
  try {
    if ((await stat(join(dir, streamFile(COMBINED_STREAM)))).isFile()) return [];
  } catch {
    // no combined stream here: maybe a folder of worker trails
  }
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  return names.filter((name) => WORKER_TRAIL.test(name)).sort((a, b) => Number(a.slice('worker-'.length)) - Number(b.slice('worker-'.length)));
}
