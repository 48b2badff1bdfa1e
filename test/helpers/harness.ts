/**
 * End-to-end harness: a real gateway (in this process) with a real sample upstream, over
 * loopback, with its config written to a temp folder and its decision log read back.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway } from '../../src/server/gateway.ts';
import type { Gateway } from '../../src/server/gateway.ts';
import { startRecordingUpstream } from './recording-upstream.ts';
import type { RecordingUpstream } from './recording-upstream.ts';
import { setLogListener } from '../../src/log.ts';

export interface Harness {
  readonly dir: string;
  readonly configPath: string;
  readonly gateway: Gateway;
  readonly upstream: RecordingUpstream;
  readonly logLines: Array<{ level: string; event: string; [key: string]: unknown }>;
  /** URL of the named listener. */
  url(listener: string): string;
  /** Decision records written so far (flushes the log first). */
  records(): Promise<Array<Record<string, any>>>;
  /** Waits until at least `count` records exist. */
  waitForRecords(count: number, timeoutMs?: number): Promise<Array<Record<string, any>>>;
  writeConfig(yaml: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * `config` is a YAML template: `{{UPSTREAM}}` becomes the sample upstream's URL and
 * `{{DIR}}` the temp folder. The decision log goes to `{{DIR}}/decisions.jsonl` unless the
 * template sets `gateway:` itself. Ops listens on a free port.
 */
export async function startHarness(config: string, options: { upstream?: RecordingUpstream; files?: Record<string, string | Buffer>; watch?: boolean } = {}): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-test-'));
  const upstream = options.upstream ?? (await startRecordingUpstream());
  for (const [name, content] of Object.entries(options.files ?? {})) await writeFile(join(dir, name), content);
  const configPath = join(dir, 'gateway.yaml');
  const render = (yaml: string): string => {
    let text = yaml.replaceAll('{{UPSTREAM}}', upstream.url).replaceAll('{{DIR}}', dir);
    if (!/^gateway:/m.test(text)) text += `\ngateway:\n  decision_log: ${join(dir, 'decisions.jsonl')}\n  drain_timeout: 5s\n`;
    if (!/^ops:/m.test(text)) text += `\nops:\n  port: 0\n`;
    return text;
  };
  await writeFile(configPath, render(config));
  const logLines: Harness['logLines'] = [];
  setLogListener((entry) => logLines.push(entry), { quiet: true });
  let gateway: Awaited<ReturnType<typeof startGateway>>;
  try {
    gateway = await startGateway({ configPath, watch: options.watch ?? false });
  } catch (error) {
    // A gateway that cannot start must not leave the upstream keeping the test process alive.
    if (!options.upstream) await upstream.close();
    setLogListener(null, { quiet: false });
    throw error;
  }
  const decisionLog = gateway.snapshot.decisionLog;

  const records = async (): Promise<Array<Record<string, any>>> => {
    await new Promise((resolve) => setTimeout(resolve, 40));
    if (!existsSync(decisionLog)) return [];
    const text = await readFile(decisionLog, 'utf8');
    return text.split('\n').filter(Boolean).map((line) => JSON.parse(line));
  };

  return {
    dir,
    configPath,
    gateway,
    upstream,
    logLines,
    url(listener) {
      const found = gateway.addresses().listeners.find((entry) => entry.name === listener);
      if (!found) throw new Error(`no listener ${listener}`);
      return found.url;
    },
    records,
    async waitForRecords(count, timeoutMs = 3000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = await records();
        if (found.length >= count || Date.now() > deadline) return found;
      }
    },
    async writeConfig(yaml) {
      await writeFile(configPath, render(yaml));
    },
    async close() {
      await gateway.shutdown();
      if (!options.upstream) await upstream.close();
      if (!process.env.KEEP_TEST_DIRS) await rm(dir, { recursive: true, force: true });
    },
  };
}
