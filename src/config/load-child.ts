/**
 * Child-process entry of `loadConfigOffThread`: reads, parses and validates one configuration
 * file and sends the `ValidationResult` back over IPC, then exits. Everything the YAML document
 * and the validators allocate goes back to the system with the process.
 */
import { validateConfigFile } from './load.ts';
import type { LoadOptions } from './load.ts';

interface LoadJob {
  readonly path: string;
  readonly options: Pick<LoadOptions, 'env' | 'offline'>;
}

process.once('message', (job: LoadJob) => {
  void validateConfigFile(job.path, job.options).then((result) => process.send!(result));
});
