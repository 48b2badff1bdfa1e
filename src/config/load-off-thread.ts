/**
 * Loading a configuration without stalling the requests in flight: the file is read, parsed and
 * validated in a worker thread — for thousands of partners that is seconds of CPU and hundreds of
 * MB of YAML nodes, all released with the worker's heap — and only the compile, which builds the
 * objects the request path reads, runs on the main thread. The result is the one `loadConfig`
 * gives for the same file.
 */
import { Worker } from 'node:worker_threads';
import { stat } from 'node:fs/promises';
import { compileValidated, loadConfig, validateConfigFile } from './load.ts';
import type { LoadOptions, LoadResult, ValidationResult } from './load.ts';
import { log } from '../log.ts';

/**
 * From this size on a file is validated in a worker thread. Starting one costs ~0.3 s (its own
 * module graph), which a small file's whole load takes a tenth of; a file this large already
 * blocks the event loop for about that long when parsed in place.
 */
export const OFF_THREAD_FROM_BYTES = 512 * 1024;

export interface OffThreadOptions extends LoadOptions {
  /** Files of at least this many bytes are validated in a worker thread (default `OFF_THREAD_FROM_BYTES`; 0: always). */
  readonly offThreadFromBytes?: number;
}

export async function loadConfigOffThread(path: string, options: OffThreadOptions = {}): Promise<LoadResult> {
  const jobOptions = { env: { ...(options.env ?? process.env) }, ...(options.offline !== undefined ? { offline: options.offline } : {}) };
  const size = await stat(path).then((stats) => stats.size, () => 0);
  // Unreadable: validateConfigFile reports why, with the same issue either way.
  if (size < (options.offThreadFromBytes ?? OFF_THREAD_FROM_BYTES)) return loadConfig(path, options);
  let validated: ValidationResult;
  try {
    validated = await inWorker(path, jobOptions);
  } catch (error) {
    // The thread could not run (resource limits, a clone failure): the same validation, here.
    log('warn', 'config.worker_failed', { error: String(error) });
    validated = await validateConfigFile(path, jobOptions);
  }
  return validated.ok ? { ok: true, snapshot: compileValidated(validated, options) } : validated;
}

function inWorker(path: string, options: Pick<LoadOptions, 'env' | 'offline'>): Promise<ValidationResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./load-worker.ts', import.meta.url), { workerData: { path, options }, stdout: false, stderr: false });
    let result: ValidationResult | null = null;
    worker.once('message', (message: ValidationResult) => {
      result = message;
    });
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (result !== null) resolve(result);
      else reject(new Error(`the configuration loader thread exited with code ${code} before answering`));
    });
  });
}
