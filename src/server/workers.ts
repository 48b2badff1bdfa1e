/**
 * `portcullis serve --workers N`: one primary process and N worker processes (node:cluster), so
 * one host uses all its cores. The workers share the listening sockets (the primary hands
 * connections out) and the state store: the embedded driver's SQLite file, or Redis. A
 * revocation made through any worker bites on the next request in every other one, because each
 * request checks SQLite's `data_version` (src/state/embedded.ts) or receives Redis's push.
 *
 * Each worker writes its own audit trail in `<audit dir>/worker-<slot>`: one chain has one
 * writer. Slots are stable (a restarted worker continues its slot's chain), so
 * `portcullis audit verify <audit dir>` checks every worker's trail.
 *
 * The primary serves no traffic. It creates what workers must not race to create (the audit
 * signing key, the state database), restarts a worker that died (with backoff), forwards SIGHUP
 * (reload) and, on SIGTERM/SIGINT, lets every worker drain and exit.
 */
import cluster from 'node:cluster';
import type { Worker } from 'node:cluster';
import { loadConfigOffThread } from '../config/load-off-thread.ts';
import { formatIssue } from '../config/issues.ts';
import { loadCheckpointSigner } from '../audit/signing-key.ts';
import { openStateStore } from '../state/open.ts';
import { log } from '../log.ts';

export const WORKER_SLOT_ENV = 'PORTCULLIS_WORKER_SLOT';
const RESTART_MIN_MS = 100;
const RESTART_MAX_MS = 10_000;
/** A worker that lived this long before dying gets restarted without accumulated backoff. */
const HEALTHY_UPTIME_MS = 30_000;

/** The slot of this process when it is a worker, else null. */
export function workerSlot(): number | null {
  if (cluster.isPrimary) return null;
  const slot = Number(process.env[WORKER_SLOT_ENV]);
  return Number.isInteger(slot) && slot > 0 ? slot : null;
}

/** The audit sub-folder of a worker's trail. */
export function workerAuditFolder(slot: number): string {
  return `worker-${slot}`;
}

/**
 * Runs the primary: prepares shared files, forks `count` workers, supervises them. Resolves
 * with the exit code once every worker has stopped after SIGTERM/SIGINT, or 1 when the
 * configuration cannot be loaded.
 */
export async function runPrimary(configPath: string, count: number): Promise<number> {
  const loaded = await loadConfigOffThread(configPath, { env: process.env });
  if (!loaded.ok) {
    for (const issue of loaded.issues) process.stderr.write(`${formatIssue(issue)}\n`);
    return 1;
  }
  const { snapshot } = loaded;
  // Created once here, so N workers starting together never generate two keys or two schemas.
  await loadCheckpointSigner({ signingKeyPath: snapshot.audit.signingKeyPath, keyDir: snapshot.audit.keyDir });
  if (snapshot.state.driver === 'embedded') await (await openStateStore(snapshot.state)).close();

  const bySlot = new Map<number, Worker>();
  const backoff = new Map<number, number>();
  let stopping = false;
  let firstStart = true;
  let readyCount = 0;

  const fork = (slot: number): void => {
    const startedAt = Date.now();
    const worker = cluster.fork({ [WORKER_SLOT_ENV]: String(slot) });
    bySlot.set(slot, worker);
    worker.on('message', (message: unknown) => {
      if (message === 'ready' && firstStart && ++readyCount === count) {
        firstStart = false;
        log('info', 'workers.ready', { workers: count });
      }
    });
    worker.on('exit', (code, signal) => {
      bySlot.delete(slot);
      if (stopping) return;
      if (firstStart) {
        // A worker that cannot start (a port in use, a bad key) would fail the same way again.
        log('error', 'workers.start_failed', { slot, code, signal });
        void stopAll('worker-start-failed');
        return;
      }
      const lived = Date.now() - startedAt;
      const wait = lived > HEALTHY_UPTIME_MS ? RESTART_MIN_MS : Math.min(RESTART_MAX_MS, (backoff.get(slot) ?? RESTART_MIN_MS / 2) * 2);
      backoff.set(slot, wait);
      log('error', 'workers.worker_died', { slot, code, signal, restart_in_ms: wait });
      setTimeout(() => {
        if (!stopping) fork(slot);
      }, wait).unref();
    });
  };

  let resolveExit: (code: number) => void = () => undefined;
  const exited = new Promise<number>((resolve) => {
    resolveExit = resolve;
  });
  let exitCode = 0;

  async function stopAll(reason: string): Promise<void> {
    if (stopping) return;
    stopping = true;
    if (reason === 'worker-start-failed') exitCode = 1;
    log('info', 'workers.stopping', { reason, workers: bySlot.size });
    const waits = [...bySlot.values()].map(
      (worker) =>
        new Promise<void>((resolve) => {
          if (worker.isDead()) return resolve();
          worker.once('exit', () => resolve());
          worker.process.kill('SIGTERM');
        }),
    );
    await Promise.all(waits);
    log('info', 'workers.stopped', {});
    resolveExit(exitCode);
  }

  cluster.setupPrimary({ silent: false });
  for (let slot = 1; slot <= count; slot++) fork(slot);

  process.on('SIGHUP', () => {
    log('info', 'config.reload_requested', { signal: 'SIGHUP', workers: bySlot.size });
    for (const worker of bySlot.values()) worker.process.kill('SIGHUP');
  });
  let signals = 0;
  const onStop = (signal: string): void => {
    if (++signals > 1) {
      log('warn', 'gateway.forced_exit', { signal });
      for (const worker of bySlot.values()) worker.process.kill('SIGKILL');
      process.exit(1);
    }
    void stopAll(signal);
  };
  process.on('SIGTERM', () => onStop('SIGTERM'));
  process.on('SIGINT', () => onStop('SIGINT'));
  return exited;
}
