/**
 * The TLS load generator: what wrk is for the other rows, for rows wrk cannot drive — wrk
 * presents no client certificate. A Node process (`tls-load-worker.ts`) pinned to the load core
 * like wrk, with N connections and one request in flight on each (a closed loop, as wrk does),
 * either kept alive or a new connection with a full handshake per request. It reports what
 * wrk's parser gives (requests, req/s, latency percentiles, socket errors, non-2xx/3xx) plus
 * its own CPU time and the connections it opened.
 *
 * Unlike wrk it starts, reports ready, and waits for `go` on stdin before sending anything, so
 * the CPU readings around a measured run do not include Node's start-up.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { percentile } from './percentiles.ts';
import type { ConnectionCounts, TlsLoad } from './target.ts';
import type { WrkResult } from './wrk.ts';

const WORKER = join(dirname(fileURLToPath(import.meta.url)), 'tls-load-worker.ts');

/** wrk's own default: a request not answered in 2 s counts as a timeout. */
export const DEFAULT_TIMEOUT_MS = 2000;

/** Latency percentiles reported, as wrk's `--latency` prints them. */
export const PERCENTILES = [50, 75, 90, 99] as const;

/** What the parent hands the worker (argv, JSON). */
export interface WorkerOptions {
  host: string;
  port: number;
  path: string;
  /** Every header of the request, `Host` included, in order. */
  headers: Record<string, string>;
  servername: string;
  /** PEM files. */
  ca: string;
  cert?: string;
  key?: string;
  connections: number;
  seconds: number;
  newConnectionPerRequest: boolean;
  timeoutMs: number;
}

export type SocketErrors = WrkResult['socketErrors'];

/** What the worker counted during the run (before summarising). */
export interface RawRun {
  /** Latency of each completed request, ms. */
  latenciesMs: number[];
  /** Length of the run, ms (from `go` to the deadline). */
  elapsedMs: number;
  /** Responses by status code. */
  statuses: Record<string, number>;
  socketErrors: SocketErrors;
  /** CPU time of the worker process during the run (user + system, all threads), µs. */
  cpuMicros: number;
  connections: ConnectionCounts;
  /** The first socket error, for the report (e.g. a refused handshake). */
  firstError?: string;
}

export interface TlsLoadResult extends Omit<WrkResult, 'raw'> {
  statuses: Record<string, number>;
  cpuMicros: number;
  connections: ConnectionCounts;
  firstError?: string;
}

/** Turns a run's counts into wrk's figures: req/s over the run's length, nearest-rank percentiles. */
export function summariseRun(raw: RawRun): TlsLoadResult {
  const requests = raw.latenciesMs.length;
  const seconds = raw.elapsedMs / 1000;
  const latencyMs: Record<string, number> = {};
  for (const p of PERCENTILES) latencyMs[String(p)] = requests === 0 ? Number.NaN : percentile(raw.latenciesMs, p);
  let non2xx3xx = 0;
  for (const [status, count] of Object.entries(raw.statuses)) if (!/^[23]\d\d$/.test(status)) non2xx3xx += count;
  return {
    requests,
    seconds,
    requestsPerSecond: seconds > 0 ? requests / seconds : 0,
    latencyMs,
    socketErrors: { ...raw.socketErrors },
    non2xx3xx,
    statuses: { ...raw.statuses },
    cpuMicros: raw.cpuMicros,
    connections: { ...raw.connections },
    ...(raw.firstError !== undefined ? { firstError: raw.firstError } : {}),
  };
}

/** The worker's options for a run against `url` (`https://<ip>:<port><path>`). */
export function workerOptions(
  url: string,
  headers: Record<string, string>,
  tls: TlsLoad,
  run: { connections: number; seconds: number; timeoutMs?: number },
): WorkerOptions {
  const target = new URL(url);
  if (target.protocol !== 'https:') throw new Error(`the TLS load generator needs an https URL, not ${url}`);
  for (const [name, value] of Object.entries(headers)) {
    // The request is written by hand: a header must not be able to end it early.
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name) || /[\r\n\0]/.test(value)) throw new Error(`header ${JSON.stringify(name)} is not a valid HTTP field`);
  }
  if (!Object.keys(headers).some((name) => name.toLowerCase() === 'host')) throw new Error('the request needs a Host header');
  return {
    host: target.hostname.replace(/^\[|\]$/g, ''),
    port: Number(target.port || 443),
    path: `${target.pathname}${target.search}`,
    headers,
    servername: tls.servername,
    ca: tls.ca,
    ...(tls.clientCertificate ? { cert: tls.clientCertificate.cert, key: tls.clientCertificate.key } : {}),
    connections: run.connections,
    seconds: run.seconds,
    newConnectionPerRequest: tls.newConnectionPerRequest === true,
    timeoutMs: run.timeoutMs ?? DEFAULT_TIMEOUT_MS,
  };
}

export interface TlsLoadRun {
  /** PID of the worker (Node itself: taskset execs it). */
  readonly pid: number;
  /** Starts the load; resolves with the figures when the run is over and the worker has exited. */
  go(): Promise<TlsLoadResult>;
}

/**
 * Starts the worker pinned to `cpu` (`taskset -c`) and resolves once it is ready to send. The
 * worker is killed by PID if it has not finished 30 s after its run should have, or as soon as
 * `signal` aborts.
 */
export function startTlsLoad(node: string, cpu: number, options: WorkerOptions, signal?: AbortSignal): Promise<TlsLoadRun> {
  return new Promise((resolveReady, rejectReady) => {
    const child = spawn('taskset', ['-c', String(cpu), node, WORKER, JSON.stringify(options)], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let ready = false;
    let settleRun: { resolve: (value: TlsLoadResult) => void; reject: (error: Error) => void } | undefined;
    const kill = () => {
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    };
    // Start-up, then the run, then writing the result: all bounded.
    const guard = setTimeout(kill, (options.seconds + 30) * 1000);
    signal?.addEventListener('abort', kill, { once: true });
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      if (!ready && /^@@ready\n/m.test(out)) {
        ready = true;
        resolveReady({
          pid: child.pid!,
          go: () =>
            new Promise<TlsLoadResult>((resolve, reject) => {
              settleRun = { resolve, reject };
              child.stdin.end('go\n');
            }),
        });
      }
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      if (err.length < 16_384) err += chunk;
    });
    child.on('error', (error) => {
      clearTimeout(guard);
      if (!ready) rejectReady(error);
      else settleRun?.reject(error);
    });
    // 'close', not 'exit': all of its output has been read by then.
    child.on('close', (code, sig) => {
      clearTimeout(guard);
      signal?.removeEventListener('abort', kill);
      const failure = new Error(`the TLS load generator exited with ${sig ?? code}${err.trim() ? `: ${err.trim()}` : ''}`);
      if (!ready) {
        rejectReady(failure);
        return;
      }
      const line = /^@@result (.*)\n/m.exec(out);
      if (code !== 0 || !line) {
        settleRun?.reject(code === 0 ? new Error('the TLS load generator exited without its result') : failure);
        return;
      }
      try {
        const result = JSON.parse(line[1]!) as TlsLoadResult;
        // JSON has no NaN (the percentiles of a run without a single response): it came as null.
        for (const p of PERCENTILES) result.latencyMs[String(p)] ??= Number.NaN;
        settleRun?.resolve(result);
      } catch (error) {
        settleRun?.reject(new Error(`the TLS load generator's result is not JSON: ${(error as Error).message}`));
      }
    });
  });
}

/**
 * One GET over a new TLS connection with the row's certificates (the start-up check and the
 * rows' probes): the status and the body. Bounded by `timeoutMs`.
 */
export function tlsGet(url: string, headers: Record<string, string>, tls: TlsLoad, timeoutMs = 5000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'GET',
        headers,
        agent: false,
        timeout: timeoutMs,
        ca: readFileSync(tls.ca),
        servername: tls.servername,
        ...(tls.clientCertificate ? { cert: readFileSync(tls.clientCertificate.cert), key: readFileSync(tls.clientCertificate.key) } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}
