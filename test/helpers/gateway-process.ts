/**
 * A gateway as an operator runs it: `portcullis serve` in its own process, ready when it logs
 * `gateway.started` (or, with `--workers`, `workers.ready`), stopped by PID.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';

const NODE = process.execPath;
const MAIN = new URL('../../src/cli/main.ts', import.meta.url).pathname;

export interface GatewayProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Data-plane listener URLs by listener name (from the first `gateway.started` line). */
  readonly listeners: Record<string, string>;
  readonly ops: string;
  stderr(): string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code. */
  stop(graceMs?: number): Promise<number | null>;
}

export async function startGatewayProcess(configPath: string, extraArgs: readonly string[] = [], timeoutMs = 20_000): Promise<GatewayProcess> {
  const child = spawn(NODE, [MAIN, 'serve', '-c', configPath, '--no-watch', ...extraArgs], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const workers = extraArgs.includes('--workers');
  const started = await new Promise<{ listeners: Record<string, string>; ops: string }>((resolve, reject) => {
    let first: { listeners: Record<string, string>; ops: string } | null = null;
    const timer = setTimeout(() => reject(new Error(`gateway did not start within ${timeoutMs} ms:\n${stderr}`)), timeoutMs);
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      for (const line of stderr.split('\n')) {
        if (!line.startsWith('{')) continue;
        let entry: { event?: string; listeners?: Array<{ name: string; url: string }>; ops?: string };
        try {
          entry = JSON.parse(line);
        } catch {
          continue;
        }
        if (entry.event === 'gateway.started' && first === null) {
          first = { listeners: Object.fromEntries((entry.listeners ?? []).map((l) => [l.name, l.url])), ops: entry.ops ?? '' };
        }
        if (first && (!workers || entry.event === 'workers.ready')) {
          clearTimeout(timer);
          resolve(first);
          return;
        }
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited with ${code} before it was ready:\n${stderr}`));
    });
  });
  return {
    child,
    pid: child.pid!,
    listeners: started.listeners,
    ops: started.ops,
    stderr: () => stderr,
    async stop(graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}
