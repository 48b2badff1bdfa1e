/**
 * Loading a configuration without stalling the requests in flight: the file is read, parsed and
 * validated in a child process — for thousands of partners that is seconds of CPU and hundreds of
 * MB of YAML nodes, all returned to the system when it exits — and only the compile, which builds the
 * objects the request path reads, runs on the main thread. The result is the one `loadConfig`
 * gives for the same file.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { stat } from 'node:fs/promises';
import { compileValidated, loadConfig, validateConfigFile } from './load.ts';
import type { LoadOptions, LoadResult, ValidationResult } from './load.ts';
import { log } from '../log.ts';

/**
 * From this size on a file is validated in a child process. Starting one costs ~0.3 s (its own
 * module graph), which a small file's whole load takes a tenth of; a file this large already
 * blocks the event loop for about that long when parsed in place.
 */
export const OFF_THREAD_FROM_BYTES = 512 * 1024;

export interface OffThreadOptions extends LoadOptions {
  /** Files of at least this many bytes are validated in a child process (default `OFF_THREAD_FROM_BYTES`; 0: always). */
  readonly offThreadFromBytes?: number;
}

export async function loadConfigOffThread(path: string, options: OffThreadOptions = {}): Promise<LoadResult> {
  const jobOptions = { env: { ...(options.env ?? process.env) }, ...(options.offline !== undefined ? { offline: options.offline } : {}) };
  const size = await stat(path).then((stats) => stats.size, () => 0);
  // Unreadable: validateConfigFile reports why, with the same issue either way.
  if (size < (options.offThreadFromBytes ?? OFF_THREAD_FROM_BYTES)) return loadConfig(path, options);
  let validated: ValidationResult;
  try {
    validated = await inChildProcess(path, jobOptions);
  } catch (error) {
    // The process could not run (spawn failure, a clone failure): the same validation, here.
    log('warn', 'config.loader_failed', { error: String(error) });
    validated = await validateConfigFile(path, jobOptions);
  }
  return validated.ok ? { ok: true, snapshot: compileValidated(validated, options) } : validated;
}

/**
 * A child process rather than a worker thread: when it exits, every page the parser touched goes
 * back to the system. A worker thread's heap is freed too, but the allocator keeps the pages, and
 * the gateway's resident size would keep the high-water mark of its largest load.
 */
function inChildProcess(path: string, options: Pick<LoadOptions, 'env' | 'offline'>): Promise<ValidationResult> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(new URL('./load-child.ts', import.meta.url)), [], {
      // Structured clone over IPC: the referenced files' bytes arrive as bytes.
      serialization: 'advanced',
      execArgv: [],
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    let result: ValidationResult | null = null;
    child.once('message', (message) => {
      result = message as ValidationResult;
      child.disconnect();
    });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (result !== null) resolve(result);
      else reject(new Error(`the configuration loader process exited (${signal ?? `code ${code}`}) before answering`));
    });
    child.send({ path, options });
  });
}
