/**
 * A real `redis-server` for tests: a private process on 127.0.0.1 and a free port, without
 * persistence (`--save '' --appendonly no`), its working folder a private temp dir. No stub
 * stands in for Redis: the state driver's scripts, pub/sub and reconnects run against the real
 * server.
 *
 * `stop()` / `kill()` take it down (SIGTERM and wait, or SIGKILL at once) and `restart()` brings
 * a fresh, empty server back on the SAME port, for disconnect and fail-closed tests. Everything is
 * addressed by PID; `stop()` also removes the temp dir.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RedisServer {
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  /** PID of the running process (changes after `restart()`). */
  readonly pid: number;
  /** SIGTERM, wait for the exit (SIGKILL after 3 s), remove the temp dir. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL at once, synchronously (a crash); `restart()` or `stop()` afterwards. */
  kill(): void;
  /** A new, empty server on the same port (after `stop()` or `kill()`, or stopping the running one first). */
  restart(): Promise<void>;
}

const REDIS_SERVER = 'redis-server';
const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 3_000;

let checkedInstalled = false;

function requireRedisServer(): void {
  if (checkedInstalled) return;
  const probe = spawnSync(REDIS_SERVER, ['--version'], { stdio: 'ignore' });
  if (probe.error !== undefined || probe.status !== 0) {
    throw new Error(
      'redis-server is not installed (needed by the Redis state tests): run `scripts/test-prerequisites.sh` as root, ' +
        'or `sudo apt-get install -y redis-server`',
    );
  }
  checkedInstalled = true;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** One inline PING on a fresh connection: true when the server answers +PONG. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    let answer = '';
    const finish = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => finish(false));
    socket.once('error', () => finish(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      answer += chunk.toString('latin1');
      if (answer.includes('\r\n')) finish(answer.startsWith('+PONG'));
    });
  });
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

export async function startRedisServer(): Promise<RedisServer> {
  requireRedisServer();
  const port = await freePort();
  let child: ChildProcess | null = null;
  let dir: string | null = null;

  const launch = async (): Promise<void> => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-redis-'));
    const server = spawn(
      REDIS_SERVER,
      [
        '--port', String(port),
        '--bind', '127.0.0.1',
        '--protected-mode', 'yes',
        '--save', '',
        '--appendonly', 'no',
        '--dir', dir,
        '--daemonize', 'no',
        '--loglevel', 'warning',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child = server;
    let output = '';
    const collect = (chunk: Buffer): void => {
      if (output.length < 8192) output += chunk.toString('utf8');
    };
    server.stdout!.on('data', collect);
    server.stderr!.on('data', collect);
    const spawnFailure: { error: Error | null } = { error: null };
    server.once('error', (error) => {
      spawnFailure.error = error;
    });
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (spawnFailure.error !== null) throw spawnFailure.error;
      if (server.exitCode !== null || server.signalCode !== null) {
        throw new Error(`redis-server on port ${port} exited (${server.exitCode ?? server.signalCode}) before answering PING:\n${output}`);
      }
      if (await ping(port)) return;
      if (Date.now() > deadline) {
        server.kill('SIGKILL');
        throw new Error(`redis-server on port ${port} did not answer PING within ${READY_TIMEOUT_MS} ms:\n${output}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };

  const halt = async (signal: 'SIGTERM' | 'SIGKILL'): Promise<void> => {
    const running = child;
    if (running !== null && running.exitCode === null && running.signalCode === null) {
      running.kill(signal);
      const timer = setTimeout(() => running.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited(running);
      clearTimeout(timer);
    }
    if (dir !== null) {
      await rm(dir, { recursive: true, force: true });
      dir = null;
    }
  };

  await launch();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    get pid(): number {
      return child?.pid ?? -1;
    },
    stop: () => halt('SIGTERM'),
    kill: () => {
      child?.kill('SIGKILL');
    },
    restart: async () => {
      await halt('SIGTERM');
      await launch();
    },
  };
}
