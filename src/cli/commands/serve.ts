/**
 * `portcullis serve -c FILE`: run the gateway. SIGHUP reloads; SIGTERM/SIGINT drain and exit 0;
 * a second SIGTERM/SIGINT exits at once.
 */
import { parseArgs } from 'node:util';
import type { Command } from '../command.ts';
import { usageError } from '../command.ts';
import { ConfigLoadError, startGateway } from '../../server/gateway.ts';
import { formatIssue } from '../../config/issues.ts';
import { log } from '../../log.ts';
import { availableParallelism } from 'node:os';
import { runPrimary, workerAuditFolder, workerSlot } from '../../server/workers.ts';

const USAGE = `Usage: portcullis serve -c FILE [--workers N|auto] [--no-watch]

Run the gateway with the configuration in FILE.

Options:
  -c, --config FILE   configuration file (YAML)
      --workers N     run N worker processes sharing the listeners and the state
                      store (auto: one per core). Default 1: a single process.
      --no-watch      do not reload when files in the config folder change
  -h, --help          show this help

Signals: SIGHUP reloads the configuration (a bad file is refused and the running
configuration keeps serving); SIGTERM or SIGINT stop accepting, drain in-flight
requests and exit 0; a second SIGTERM or SIGINT exits immediately.
`;

export const command: Command = {
  summary: 'Run the gateway with a configuration file',
  usage: USAGE,
  async run(argv) {
    let values;
    try {
      ({ values } = parseArgs({
        args: [...argv],
        options: { config: { type: 'string', short: 'c' }, workers: { type: 'string', default: '1' }, 'no-watch': { type: 'boolean', default: false } },
        strict: true,
        allowPositionals: false,
      }));
    } catch (error) {
      return usageError('serve', USAGE, (error as Error).message);
    }
    if (!values.config) {
      return usageError('serve', USAGE, '--config is required');
    }
    const workers = values.workers === 'auto' ? availableParallelism() : Number(values.workers);
    if (!Number.isInteger(workers) || workers < 1 || workers > 256) {
      return usageError('serve', USAGE, `--workers must be a whole number from 1 to 256, or auto (got "${values.workers}")`);
    }
    const slot = workerSlot();
    if (workers > 1 && slot === null) return runPrimary(values.config, workers);
    let gateway;
    try {
      gateway = await startGateway({
        configPath: values.config,
        // The primary forwards SIGHUP; N watchers would reload N times for one edit, which is harmless.
        watch: !values['no-watch'],
        ...(slot !== null ? { auditFolder: workerAuditFolder(slot) } : {}),
      });
    } catch (error) {
      if (error instanceof ConfigLoadError) {
        for (const issue of error.issues) process.stderr.write(`${formatIssue(issue)}\n`);
        return 1;
      }
      process.stderr.write(`portcullis serve: ${(error as Error).message}\n`);
      return 1;
    }
    const running = gateway;
    if (slot !== null) process.send?.('ready');
    process.on('SIGHUP', () => {
      log('info', 'config.reload_requested', { signal: 'SIGHUP' });
      void running.reload('signal');
    });
    return new Promise<number>((resolveExit) => {
      let stopping = false;
      const stop = (signal: string): void => {
        if (stopping) {
          log('warn', 'gateway.forced_exit', { signal });
          process.exit(1);
        }
        stopping = true;
        log('info', 'gateway.shutdown_requested', { signal });
        running.shutdown().then(
          () => resolveExit(0),
          (error: unknown) => {
            log('error', 'gateway.shutdown_failed', { error: String(error) });
            resolveExit(1);
          },
        );
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      // A worker hears Ctrl-C with the whole process group; its primary coordinates the stop.
      process.on('SIGINT', () => (slot === null ? stop('SIGINT') : undefined));
    });
  },
};
