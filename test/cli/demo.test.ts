/**
 * Runs the real `portcullis demo` CLI and checks that every command it prints does what its
 * explanation promises, by sending the same requests from here.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = join(ROOT, 'src/cli/main.ts');
const STARTUP_TIMEOUT_MS = 30_000;

interface Run {
  readonly child: ChildProcess;
  stdout: string;
  stderr: string;
  readonly exited: Promise<number | null>;
}

function startDemo(args: readonly string[]): Run {
  const child = spawn(process.execPath, [MAIN, 'demo', ...args], {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const run: Run = {
    child,
    stdout: '',
    stderr: '',
    exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))),
  };
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (run.stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (run.stderr += chunk));
  return run;
}

/** Resolves once stdout contains `text`; fails if the demo exits or stays silent too long. */
async function waitFor(run: Run, text: string): Promise<void> {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  while (!run.stdout.includes(text)) {
    if (run.child.exitCode !== null) assert.fail(`demo exited with ${run.child.exitCode} before "${text}"\nstderr:\n${run.stderr}`);
    if (Date.now() > deadline) assert.fail(`no "${text}" after ${STARTUP_TIMEOUT_MS} ms\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function exitCode(run: Run, timeoutMs = STARTUP_TIMEOUT_MS): Promise<number | null> {
  const timer = setTimeout(() => run.child.kill('SIGKILL'), timeoutMs);
  try {
    return await run.exited;
  } finally {
    clearTimeout(timer);
  }
}

/** Free loopback ports, reserved together so they differ, then released for the demo to bind. */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () => new Promise<net.Server>((resolve) => {
      const server = net.createServer();
      server.listen(0, '127.0.0.1', () => resolve(server));
    })),
  );
  const ports = servers.map((server) => (server.address() as net.AddressInfo).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

function portArgs([publicPort, partnerPort, opsPort, upstreamPort]: readonly number[]): string[] {
  return ['--public-port', `${publicPort}`, '--partner-port', `${partnerPort}`, '--ops-port', `${opsPort}`, '--upstream-port', `${upstreamPort}`];
}

/** Splits a printed shell command into words (plain words and '…' quoting, as the demo prints). */
function shellWords(line: string): string[] {
  const words: string[] = [];
  for (const match of line.matchAll(/'((?:[^']|'\\'')*)'|(\S+)/g)) words.push(match[1] !== undefined ? match[1].replaceAll(`'\\''`, "'") : match[2]!);
  return words;
}

interface CurlCall {
  readonly url: string;
  readonly cacert?: string;
  readonly headers: Record<string, string>;
}

function parseCurl(line: string): CurlCall {
  const words = shellWords(line.trim());
  assert.equal(words.shift(), 'curl');
  const headers: Record<string, string> = {};
  let cacert: string | undefined;
  let url: string | undefined;
  while (words.length > 0) {
    const word = words.shift()!;
    if (word === '-i') continue;
    if (word === '--cacert') cacert = words.shift();
    else if (word === '-H') {
      const [name, ...value] = words.shift()!.split(':');
      headers[name!.trim().toLowerCase()] = value.join(':').trim();
    } else if (/^https?:\/\//.test(word)) url = word;
    else assert.fail(`unexpected curl argument ${word} in: ${line}`);
  }
  assert.ok(url, `no URL in: ${line}`);
  return { url, headers, ...(cacert !== undefined && { cacert }) };
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** Performs the request the curl command describes (curl sends `Host` from the URL unless -H overrides it). */
async function perform(call: CurlCall): Promise<Reply> {
  const url = new URL(call.url);
  const ca = call.cacert === undefined ? undefined : await readFile(call.cacert);
  return new Promise((resolve, reject) => {
    const options = { headers: call.headers, agent: false as const, ...(ca && { ca }) };
    const req = (url.protocol === 'https:' ? https : http).request(url, options, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function curlLines(stdout: string): string[] {
  return stdout.split('\n').filter((line) => /^\s*curl /.test(line));
}

describe('portcullis demo', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'portcullis-demo-'));
  });
  after(() => rm(root, { recursive: true, force: true }));

  it('prints curl commands that behave as promised, and stops cleanly on SIGINT', async (t) => {
    const dataDir = join(root, 'data');
    const ports = await freePorts(4);
    const run = startDemo(['--data-dir', dataDir, ...portArgs(ports)]);
    t.after(() => run.child.kill('SIGKILL'));
    await waitFor(run, 'Ctrl-C to stop');

    // Progress went to stderr as plain lines (not a TTY here); stdout holds only instructions.
    assert.match(run.stderr, /^creating dev PKI in .*\nstarting sample upstream on 127\.0\.0\.1:\d+\nloading examples\/demo\.yaml\nstarting gateway\n/);
    assert.ok(!run.stdout.includes('\r'));

    const [allowed, missingCredential, unknownHost, readiness] = curlLines(run.stdout).map(parseCurl);
    assert.ok(allowed && missingCredential && unknownHost && readiness, `four curl commands expected:\n${run.stdout}`);
    assert.equal(allowed.url, `http://localhost:${ports[0]}/status`);
    assert.equal(missingCredential.url, `https://localhost:${ports[1]}/orders`);
    assert.equal(missingCredential.cacert, join(dataDir, 'pki', 'ca.crt'));
    assert.equal(unknownHost.url, `http://localhost:${ports[0]}/status`);
    assert.deepEqual(unknownHost.headers, { host: 'unknown.example' });
    assert.equal(readiness.url, `http://localhost:${ports[2]}/readyz`);

    // 1. allowed: the sample upstream answers.
    const ok = await perform(allowed);
    assert.equal(ok.status, 200, ok.body);
    const echo = JSON.parse(ok.body) as { service: string; method: string; path: string };
    assert.deepEqual({ service: echo.service, method: echo.method, path: echo.path }, { service: 'sample-upstream', method: 'GET', path: '/status' });

    // 2. refused for a missing credential, over TLS verified with the printed CA.
    const refused = await perform(missingCredential);
    assert.equal(refused.status, 401, refused.body);
    assert.equal(refused.headers['content-type'], 'application/problem+json');
    assert.match(String(refused.headers['www-authenticate']), /^Bearer realm="[^"]+"/);
    assert.doesNotMatch(String(refused.headers['www-authenticate']), /error=/, 'no error code when no credential was sent (RFC 6750 §3.1)');
    assert.equal((JSON.parse(refused.body) as { status: number }).status, 401);
    assert.doesNotMatch(refused.body, /sample-upstream/);

    // 3. refused for an unknown host.
    const misdirected = await perform(unknownHost);
    assert.equal(misdirected.status, 421, misdirected.body);

    const ready = await perform(readiness);
    assert.equal(ready.status, 200);

    const decisionLog = /tail -f (\S+)/.exec(run.stdout)?.[1];
    assert.equal(decisionLog, join(dataDir, 'decisions.jsonl'));

    run.child.kill('SIGINT');
    assert.equal(await exitCode(run), 0, run.stderr);
    assert.match(run.stderr, /demo stopped\n$/);
    const records = (await readFile(decisionLog, 'utf8')).split('\n').filter(Boolean);
    assert.equal(records.length, 3, 'one decision record per data-plane request');
  });

  it('reuses the dev PKI on the next start; --no-wait prints everything and exits 0', async () => {
    const dataDir = join(root, 'reuse');
    const first = startDemo(['--data-dir', dataDir, '--no-wait', ...portArgs(await freePorts(4))]);
    assert.equal(await exitCode(first), 0, first.stderr);
    assert.match(first.stderr, /creating dev PKI/);
    assert.match(first.stdout, /Ctrl-C to stop/);
    const caPath = join(dataDir, 'pki', 'ca.crt');
    const ca = await readFile(caPath);
    const { mtimeMs } = await stat(caPath);

    const second = startDemo(['--data-dir', dataDir, '--no-wait', ...portArgs(await freePorts(4))]);
    assert.equal(await exitCode(second), 0, second.stderr);
    assert.match(second.stderr, /reusing dev PKI in /);
    assert.equal(curlLines(second.stdout).length, 4);
    assert.deepEqual(await readFile(caPath), ca);
    assert.equal((await stat(caPath)).mtimeMs, mtimeMs);
  });

  it('exits 1 naming the port and the option when a port is taken', async (t) => {
    const [publicPort, ...rest] = await freePorts(4);
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(publicPort, '127.0.0.1', resolve));
    t.after(() => blocker.close());

    const run = startDemo(['--data-dir', join(root, 'taken'), '--no-wait', ...portArgs([publicPort!, ...rest])]);
    assert.equal(await exitCode(run), 1, run.stderr);
    assert.match(run.stderr, new RegExp(`port ${publicPort} \\(public listener\\) is already in use.*--public-port`));
    assert.equal(run.stdout, '');
  });

  it('exits 1 naming the sample upstream when its port is taken', async (t) => {
    const ports = await freePorts(4);
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(ports[3], '127.0.0.1', resolve));
    t.after(() => blocker.close());

    const run = startDemo(['--data-dir', join(root, 'taken-upstream'), '--no-wait', ...portArgs(ports)]);
    assert.equal(await exitCode(run), 1, run.stderr);
    assert.match(run.stderr, new RegExp(`port ${ports[3]} \\(sample upstream\\) is already in use.*--upstream-port`));
  });

  it('exits 2 with the usage on a bad option', async () => {
    const unknown = startDemo(['--frobnicate']);
    assert.equal(await exitCode(unknown), 2);
    assert.match(unknown.stderr, /Unknown option '--frobnicate'[\s\S]*Usage: portcullis demo/);

    const badPort = startDemo(['--public-port', '70000']);
    assert.equal(await exitCode(badPort), 2);
    assert.match(badPort.stderr, /--public-port must be a port number from 0 to 65535, got "70000"/);
  });
});
