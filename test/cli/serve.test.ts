// `portcullis serve` as an operator runs it: a real process, signals, ops endpoints.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { startRecordingUpstream } from '../helpers/recording-upstream.ts';
import type { RecordingUpstream } from '../helpers/recording-upstream.ts';

const NODE = process.execPath;
const MAIN = new URL('../../src/cli/main.ts', import.meta.url).pathname;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

let dir: string;
let upstream: RecordingUpstream;
let dataPort: number;
let opsPort: number;

const config = (extra = '') => `
version: 1
gateway:
  decision_log: ${'{{DIR}}'}/decisions.jsonl
  shutdown_delay: 400ms
  drain_timeout: 5s
ops:
  port: {{OPS}}
listeners:
  - name: public
    zone: public
    port: {{PORT}}
    hostnames: [localhost]
upstreams:
  - id: sample
    url: {{UPSTREAM}}
routes:
  - id: slow
    zone: public
    methods: [GET]
    path: /slow/{ms}
    upstream: sample
    auth: none
${extra}`;

async function writeConfig(text: string): Promise<string> {
  const path = join(dir, 'gateway.yaml');
  await writeFile(
    path,
    text.replaceAll('{{DIR}}', dir).replaceAll('{{OPS}}', String(opsPort)).replaceAll('{{PORT}}', String(dataPort)).replaceAll('{{UPSTREAM}}', upstream.url),
  );
  return path;
}

function serve(path: string): { child: ChildProcess; exited: Promise<number | null>; stderr: () => string } {
  const child = spawn(NODE, [MAIN, 'serve', '-c', path, '--no-watch'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, stderr: () => stderr };
}

async function get(port: number, path: string): Promise<number> {
  const response = await request(`http://127.0.0.1:${port}${path}`, { headers: { host: 'localhost' } });
  await response.body.dump();
  return response.statusCode;
}

async function waitReady(): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    try {
      if ((await get(opsPort, '/readyz')) === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('gateway did not become ready');
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portcullis-serve-'));
  upstream = await startRecordingUpstream();
  dataPort = await freePort();
  opsPort = await freePort();
});
after(async () => {
  await upstream.close();
  await rm(dir, { recursive: true, force: true });
});

test('an invalid config: precise errors on stderr, exit 1, nothing listens', async () => {
  const path = await writeConfig(config().replace('path: /slow/{ms}', 'path: /slow/{ms}\n    upstreem: typo'));
  const { exited, stderr } = serve(path);
  assert.equal(await exited, 1);
  assert.match(stderr(), /gateway\.yaml:\d+:\d+ CONFIG_UNKNOWN_KEY routes\[0\]\.upstreem/);
  await assert.rejects(get(dataPort, '/slow/1'));
});

test('SIGHUP reloads; a bad file on SIGHUP is refused and the old config keeps serving', async () => {
  const path = await writeConfig(config());
  const { child, exited, stderr } = serve(path);
  try {
    await waitReady();
    assert.equal(await get(dataPort, '/slow/1'), 200);
    assert.equal(await get(dataPort, '/other'), 404);
    await writeConfig(config(`  - id: other\n    zone: public\n    methods: [GET]\n    path: /other\n    upstream: sample\n    auth: none\n`));
    child.kill('SIGHUP');
    const deadline = Date.now() + 5000;
    while ((await get(dataPort, '/other')) !== 200 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(await get(dataPort, '/other'), 200);
    await writeConfig('version: 1\nlisteners: nope\n');
    child.kill('SIGHUP');
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.match(stderr(), /config\.reload_refused/);
    assert.equal(await get(dataPort, '/other'), 200, 'old config still serving');
  } finally {
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  }
});

test('SIGTERM: not ready at once, in-flight requests finish, exit 0', async () => {
  const path = await writeConfig(config());
  const { child, exited } = serve(path);
  await waitReady();
  const inFlight = request(`http://127.0.0.1:${dataPort}/slow/1200`, { headers: { host: 'localhost' } });
  await new Promise((resolve) => setTimeout(resolve, 150));
  child.kill('SIGTERM');
  await new Promise((resolve) => setTimeout(resolve, 100));
  // During the shutdown delay the ops listener still answers, but not ready.
  assert.equal(await get(opsPort, '/readyz'), 503);
  const response = await inFlight;
  assert.equal(response.statusCode, 200);
  await response.body.dump();
  const drainedAt = Date.now();
  assert.equal(await exited, 0);
  // Regression: a pending drain timer (drain_timeout 5s) kept the process alive after draining.
  assert.ok(Date.now() - drainedAt < 2500, `exited ${Date.now() - drainedAt} ms after the last request`);
  await assert.rejects(get(dataPort, '/slow/1'), 'no longer listening');
});
