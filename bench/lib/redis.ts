/**
 * A throwaway redis-server for a benchmark: loopback only, a free port, no persistence, its
 * files in the run's temp dir; installed with apt-get when missing, like wrk and nginx. Plus the
 * one thing the harness asks Redis itself: how many commands it has processed (`INFO stats`),
 * to prove a row really made a round trip per request.
 */
import { connect } from 'node:net';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Proc } from './procs.ts';
import { freePort, stop, waitForPort } from './procs.ts';
import { spawnPinned } from './procs.ts';
import { ensureTool, versionOf } from './system.ts';

export interface RedisServer {
  proc: Proc;
  port: number;
  /** `redis://127.0.0.1:<port>` */
  url: string;
  version: string;
  stop(): Promise<void>;
  /** `total_commands_processed` from `INFO stats` (the INFO call itself included). */
  commandsProcessed(): Promise<number>;
}

/** Starts redis-server in `<dir>` (created), pinned to `cpu` if given, and waits for its port. */
export async function startRedisServer(name: string, dir: string, cpu?: number): Promise<RedisServer> {
  const binary = ensureTool('redis-server', ['redis-server']);
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  // Nothing on disk (no RDB snapshots, no AOF): a snapshot fork in the middle of a measured run
  // would take the core from the gateway.
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--protected-mode', 'yes', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', '--loglevel', 'warning'];
  const proc = spawnPinned(name, binary, args, { cpu, logFile: join(dir, 'redis.log') });
  try {
    await waitForPort(proc, port, 10_000);
  } catch (error) {
    await stop(proc);
    throw new Error(`${(error as Error).message}; see ${join(dir, 'redis.log')}`);
  }
  return {
    proc,
    port,
    url: `redis://127.0.0.1:${port}`,
    version: versionOf(binary, ['--version']),
    stop: () => stop(proc),
    async commandsProcessed() {
      const info = await redisCommand(port, ['INFO', 'stats']);
      const match = /^total_commands_processed:(\d+)\r?$/m.exec(String(info));
      if (!match) throw new Error(`redis-server on port ${port}: no total_commands_processed in INFO stats`);
      return Number(match[1]);
    },
  };
}

/**
 * Sends one command (RESP2, RFC-less but documented at redis.io/docs/reference/protocol-spec)
 * and returns its reply: a string (simple or bulk), a number (integer) or null. An error reply
 * rejects. Arrays are not needed here and are refused.
 */
export function redisCommand(port: number, args: readonly string[], timeoutMs = 2000): Promise<string | number | null> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let buffer = Buffer.alloc(0);
    const finish = (error: Error | null, value?: string | number | null) => {
      socket.destroy();
      if (error) reject(error);
      else resolve(value ?? null);
    };
    socket.setTimeout(timeoutMs, () => finish(new Error(`redis on port ${port}: no reply to ${args[0]} within ${timeoutMs} ms`)));
    socket.on('error', (error) => finish(error));
    socket.on('connect', () => {
      const parts = args.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`);
      socket.write(`*${args.length}\r\n${parts.join('')}`);
    });
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      const eol = buffer.indexOf('\r\n');
      if (eol < 0) return;
      const type = String.fromCharCode(buffer[0]!);
      const line = buffer.subarray(1, eol).toString('utf8');
      if (type === '+') return finish(null, line);
      if (type === '-') return finish(new Error(`redis on port ${port}: ${args[0]}: ${line}`));
      if (type === ':') return finish(null, Number(line));
      if (type === '$') {
        const length = Number(line);
        if (length < 0) return finish(null, null);
        if (buffer.length < eol + 2 + length + 2) return; // more to come
        return finish(null, buffer.subarray(eol + 2, eol + 2 + length).toString('utf8'));
      }
      return finish(new Error(`redis on port ${port}: unexpected reply type "${type}" to ${args[0]}`));
    });
  });
}
