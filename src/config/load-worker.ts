/**
 * Worker-thread entry of `loadConfigOffThread`: reads, parses and validates one configuration
 * file and posts the `ValidationResult` back. Everything the YAML document and the validators
 * allocate dies with this thread's heap.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { validateConfigFile } from './load.ts';
import type { LoadOptions } from './load.ts';

interface LoadJob {
  readonly path: string;
  readonly options: Pick<LoadOptions, 'env' | 'offline'>;
}

const job = workerData as LoadJob;
parentPort!.postMessage(await validateConfigFile(job.path, job.options));
