/**
 * Runs the real `portcullis demo` CLI and checks that every command it prints does what its
 * explanation promises, by sending the same requests (and running the same `explain` commands)
 * from here.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import dns from 'node:dns';
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

type ShellVariables = Readonly<Record<string, string>>;

/**
 * Splits a printed shell command into words as a POSIX shell would for what the demo prints:
 * unquoted text, \x, '…' (literal) and "…" (with $NAME expanded from `variables`), adjacent
 * parts joining into one word. An unknown variable fails the test rather than expanding to nothing.
 */
function shellWords(line: string, variables: ShellVariables = {}): string[] {
  const words: string[] = [];
  let word: string | null = null;
  const expand = (text: string): string =>
    text.replaceAll(/\$([A-Za-z_][A-Za-z0-9_]*)/g, (_, name: string) => variables[name] ?? assert.fail(`$${name} is not set by the printed lines`));
  for (let i = 0; i < line.length; ) {
    const char = line[i]!;
    if (/\s/.test(char)) {
      if (word !== null) words.push(word);
      word = null;
      i += 1;
    } else if (char === "'" || char === '"') {
      const close = line.indexOf(char, i + 1);
      assert.ok(close > i, `unterminated ${char} in: ${line}`);
      const text = line.slice(i + 1, close);
      if (char === '"') assert.doesNotMatch(text, /[\\`]|\$[^A-Za-z_]/, `only plain $NAME expansions are expected in: ${line}`);
      word = (word ?? '') + (char === '"' ? expand(text) : text);
      i = close + 1;
    } else if (char === '\\') {
      // shellQuote writes a quote inside '…' as '\'' : an escaped character outside quotes.
      word = (word ?? '') + (line[i + 1] ?? assert.fail(`trailing \\ in: ${line}`));
      i += 2;
    } else {
      assert.doesNotMatch(char, /[$`;&|<>()]/, `unexpected shell syntax in: ${line}`);
      word = (word ?? '') + char;
      i += 1;
    }
  }
  if (word !== null) words.push(word);
  return words;
}

/** The `NAME=value` lines the demo prints for pasting first (the tokens). */
function shellAssignments(stdout: string): Record<string, string> {
  const variables: Record<string, string> = {};
  for (const match of stdout.matchAll(/^ *([A-Z][A-Z0-9_]*)=(\S+)$/gm)) variables[match[1]!] = match[2]!;
  return variables;
}

interface CurlCall {
  readonly url: string;
  readonly cacert?: string;
  /** Client certificate and key (mutual TLS). */
  readonly cert?: string;
  readonly key?: string;
  readonly headers: Record<string, string>;
  /** `-d` values, in order: curl POSTs them joined by `&` as application/x-www-form-urlencoded. */
  readonly data?: readonly string[];
}

function parseCurl(line: string, variables: ShellVariables = {}): CurlCall {
  const words = shellWords(line.trim(), variables);
  assert.equal(words.shift(), 'curl');
  const headers: Record<string, string> = {};
  let cacert: string | undefined;
  let cert: string | undefined;
  let key: string | undefined;
  let url: string | undefined;
  const data: string[] = [];
  while (words.length > 0) {
    const word = words.shift()!;
    if (word === '-i' || word === '-s') continue;
    if (word === '-d') data.push(words.shift() ?? assert.fail(`-d without a value in: ${line}`));
    else if (word === '--cacert') cacert = words.shift();
    else if (word === '--cert') cert = words.shift();
    else if (word === '--key') key = words.shift();
    else if (word === '-H') {
      const [name, ...value] = words.shift()!.split(':');
      headers[name!.trim().toLowerCase()] = value.join(':').trim();
    } else if (/^https?:\/\//.test(word)) url = word;
    else assert.fail(`unexpected curl argument ${word} in: ${line}`);
  }
  assert.ok(url, `no URL in: ${line}`);
  assert.equal(cert === undefined, key === undefined, `--cert and --key go together in: ${line}`);
  return { url, headers, ...(data.length > 0 && { data }), ...(cacert !== undefined && { cacert }), ...(cert !== undefined && { cert }), ...(key !== undefined && { key }) };
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/**
 * Resolves `localhost` and `*.localhost` to loopback without asking DNS, as curl does (RFC 6761
 * §6.3), so `https://api.localhost:…` works here exactly as in the printed command.
 */
const localhostLookup: typeof dns.lookup = ((hostname: string, options: dns.LookupOptions, callback: (...args: unknown[]) => void) => {
  if (hostname !== 'localhost' && !hostname.endsWith('.localhost')) return dns.lookup(hostname, options, callback as never);
  if (options.all) callback(null, [{ address: '127.0.0.1', family: 4 }]);
  else callback(null, '127.0.0.1', 4);
}) as typeof dns.lookup;

/**
 * Performs the request the curl command describes: curl sends `Host` from the URL unless -H
 * overrides it, and SNI from the URL (Node does the same).
 */
async function perform(call: CurlCall): Promise<Reply> {
  const url = new URL(call.url);
  const ca = call.cacert === undefined ? undefined : await readFile(call.cacert);
  const clientCertificate = call.cert === undefined ? undefined : { cert: await readFile(call.cert), key: await readFile(call.key!) };
  return new Promise((resolve, reject) => {
    const body = call.data?.join('&');
    const headers = body === undefined ? call.headers : { 'content-type': 'application/x-www-form-urlencoded', ...call.headers };
    const options = { method: body === undefined ? 'GET' : 'POST', headers, agent: false as const, lookup: localhostLookup, ...(ca && { ca }), ...clientCertificate };
    const req = (url.protocol === 'https:' ? https : http).request(url, options, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * The printed `NAME=$(curl … | sed …)` line: the curl part as a call, and the sed command, run
 * for real over the answer by `sh` as a shell would (so its quoting and expression are tested).
 */
function tokenRequestLine(stdout: string): { readonly variable: string; readonly curl: string; readonly sed: string } {
  const lines = stdout.split('\n').filter((line) => /^\s*[A-Z_]+=\$\(/.test(line));
  assert.equal(lines.length, 1, `one NAME=$(…) line expected:\n${stdout}`);
  const match = /^\s*([A-Z_]+)=\$\((curl [^|]*) \| (sed [^|]*)\)$/.exec(lines[0]!);
  assert.ok(match, `NAME=$(curl … | sed …) expected: ${lines[0]}`);
  return { variable: match[1]!, curl: match[2]!, sed: match[3]! };
}

async function runShell(command: string, input: string): Promise<Finished> {
  const child = spawn('sh', ['-c', command], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  child.stdin.end(input);
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  return { code, stdout, stderr };
}

function curlLines(stdout: string): string[] {
  return stdout.split('\n').filter((line) => /^\s*curl /.test(line));
}

function explainLines(stdout: string): string[] {
  return stdout.split('\n').filter((line) => / npx portcullis explain /.test(line));
}

interface Finished {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs a printed `[NAME=value ...] npx portcullis explain …` line from the repository root, as a
 * newcomer pasting it would: the assignments become the environment of that one command, and
 * `npx portcullis` is this checkout's CLI. Nothing DEMO_* is inherited from this process.
 */
async function runExplain(line: string): Promise<Finished> {
  const words = shellWords(line.trim());
  const env: Record<string, string | undefined> = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('DEMO_')));
  while (/^[A-Z_][A-Z0-9_]*=/.test(words[0] ?? '')) {
    const [name, ...value] = words.shift()!.split('=');
    env[name!] = value.join('=');
  }
  assert.deepEqual(words.slice(0, 3), ['npx', 'portcullis', 'explain'], line);
  const child = spawn(process.execPath, [MAIN, ...words.slice(2)], { cwd: ROOT, env: { ...env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  return { code, stdout, stderr };
}

/** The JSON payload of a compact JWS (the test reads what the demo signed; the gateway verifies it). */
function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

describe('portcullis demo', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'portcullis-demo-'));
  });
  after(() => rm(root, { recursive: true, force: true }));

  it('prints curl and explain commands that behave as promised, and stops cleanly on SIGINT', async (t) => {
    const dataDir = join(root, 'data');
    const ports = await freePorts(4);
    const run = startDemo(['--data-dir', dataDir, ...portArgs(ports)]);
    t.after(() => run.child.kill('SIGKILL'));
    await waitFor(run, 'Ctrl-C to stop');

    // Progress went to stderr as plain lines (not a TTY here); stdout holds only instructions.
    assert.match(
      run.stderr,
      /^creating dev PKI in .*\ncreating dev token signing key in .*\nstarting sample upstream on 127\.0\.0\.1:\d+\nloading examples\/demo\.yaml\nstarting gateway\n/,
    );
    assert.ok(!run.stdout.includes('\r'));

    const pasted = shellAssignments(run.stdout);
    assert.deepEqual(Object.keys(pasted).sort(), ['ACME_READ', 'ACME_WRITE_ONLY', 'GLOBEX_READ'], run.stdout);

    // 9. acme obtains a token from the gateway's token service over mTLS (RFC 8705 tls_client_auth).
    const tokenLine = tokenRequestLine(run.stdout);
    assert.equal(tokenLine.variable, 'ACME_TOKEN');
    const tokenRequest = parseCurl(tokenLine.curl);
    assert.equal(tokenRequest.url, `https://api.localhost:${ports[1]}/oauth2/token`);
    assert.equal(tokenRequest.cacert, join(dataDir, 'pki', 'ca.crt'));
    assert.deepEqual([tokenRequest.cert, tokenRequest.key], [join(dataDir, 'pki', 'acme-client.crt'), join(dataDir, 'pki', 'acme-client.key')]);
    assert.deepEqual(tokenRequest.data, ['grant_type=client_credentials', 'client_id=acme-orders-client', 'resource=https://api.localhost/orders', 'scope=orders:read']);
    const issued = await perform(tokenRequest);
    assert.equal(issued.status, 200, issued.body);
    assert.equal(issued.headers['cache-control'], 'no-store');
    const extracted = await runShell(tokenLine.sed, issued.body);
    assert.equal(extracted.code, 0, extracted.stderr);
    const acmeToken = extracted.stdout.trim();
    assert.equal(acmeToken, (JSON.parse(issued.body) as { access_token: string }).access_token, 'the printed sed takes out access_token');
    const issuedClaims = claimsOf(acmeToken);
    const clientCertificate = new X509Certificate(await readFile(tokenRequest.cert!));
    assert.deepEqual(
      [issuedClaims['client_id'], issuedClaims['aud'], issuedClaims['scope'], issuedClaims['partner_id'], Number(issuedClaims['exp']) - Number(issuedClaims['iat'])],
      ['acme-orders-client', 'https://api.localhost/orders', 'orders:read', 'acme', 300],
    );
    assert.equal(issuedClaims['iss'], `https://api.localhost:${ports[1]}`);
    assert.deepEqual(issuedClaims['cnf'], { 'x5t#S256': createHash('sha256').update(clientCertificate.raw).digest('base64url') }, 'bound to the certificate it was obtained with');

    const variables: Record<string, string> = { ...pasted, ACME_TOKEN: acmeToken };
    const lines = curlLines(run.stdout);
    assert.equal(lines.length, 11, `eleven curl commands expected:\n${run.stdout}`);
    const [allowed, missingCredential, unknownHost, acmeRead, acmeWriteOnly, globexRead, acmeMtls, acmeRevoked, acmeBound, acmeUnbound, readiness] = lines.map((line) => parseCurl(line, variables)) as [
      CurlCall, CurlCall, CurlCall, CurlCall, CurlCall, CurlCall, CurlCall, CurlCall, CurlCall, CurlCall, CurlCall,
    ];
    assert.equal(allowed.url, `http://localhost:${ports[0]}/status`);
    assert.equal(missingCredential.url, `https://localhost:${ports[1]}/orders`);
    assert.equal(missingCredential.cacert, join(dataDir, 'pki', 'ca.crt'));
    assert.equal(unknownHost.url, `http://localhost:${ports[0]}/status`);
    assert.deepEqual(unknownHost.headers, { host: 'unknown.example' });
    for (const [call, variable] of [[acmeRead, 'ACME_READ'], [acmeWriteOnly, 'ACME_WRITE_ONLY'], [globexRead, 'GLOBEX_READ'], [acmeMtls, 'ACME_READ'], [acmeRevoked, 'ACME_READ'], [acmeBound, 'ACME_TOKEN'], [acmeUnbound, 'ACME_TOKEN']] as const) {
      assert.equal(call.url, `https://api.localhost:${ports[1]}/orders`);
      assert.equal(call.cacert, join(dataDir, 'pki', 'ca.crt'));
      assert.deepEqual(call.headers, { authorization: `Bearer ${variables[variable]}` });
    }
    for (const call of [acmeRead, acmeWriteOnly, globexRead, acmeUnbound]) assert.equal(call.cert, undefined, 'token-only calls send no certificate');
    assert.deepEqual([acmeMtls.cert, acmeMtls.key], [join(dataDir, 'pki', 'acme-client.crt'), join(dataDir, 'pki', 'acme-client.key')]);
    assert.deepEqual([acmeRevoked.cert, acmeRevoked.key], [join(dataDir, 'pki', 'acme-revoked.crt'), join(dataDir, 'pki', 'acme-revoked.key')]);
    assert.deepEqual([acmeBound.cert, acmeBound.key], [tokenRequest.cert, tokenRequest.key]);
    assert.equal(readiness.url, `http://localhost:${ports[2]}/readyz`);

    // The tokens are what the text says they are, and short-lived.
    const tokens = { acmeRead: claimsOf(variables['ACME_READ']!), acmeWriteOnly: claimsOf(variables['ACME_WRITE_ONLY']!), globexRead: claimsOf(variables['GLOBEX_READ']!) };
    assert.deepEqual(
      Object.values(tokens).map((claims) => [claims['client_id'], claims['scope'], claims['aud']]),
      [['acme-orders', 'orders:read', 'https://api.localhost/orders'], ['acme-orders', 'orders:write', 'https://api.localhost/orders'], ['globex-orders', 'orders:read', 'https://api.localhost/orders']],
    );
    for (const claims of Object.values(tokens)) assert.equal(Number(claims['exp']) - Number(claims['iat']), 900);
    assert.match(run.stdout, /tokens expire in 15 minutes — restart the demo for new ones/);

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

    // 4. acme with orders:read: forwarded to the sample upstream.
    const acmeOk = await perform(acmeRead);
    assert.equal(acmeOk.status, 200, acmeOk.body);
    const acmeEcho = JSON.parse(acmeOk.body) as { service: string; method: string; path: string };
    assert.deepEqual({ service: acmeEcho.service, method: acmeEcho.method, path: acmeEcho.path }, { service: 'sample-upstream', method: 'GET', path: '/orders' });

    // 5. acme with only orders:write: 403 naming the missing scope (RFC 6750 §3.1).
    const noScope = await perform(acmeWriteOnly);
    assert.equal(noScope.status, 403, noScope.body);
    assert.equal(noScope.headers['content-type'], 'application/problem+json');
    const challenge = String(noScope.headers['www-authenticate']);
    assert.match(challenge, /^Bearer /);
    assert.match(challenge, /error="insufficient_scope"/);
    assert.match(challenge, /scope="orders:read"/);
    assert.equal((JSON.parse(noScope.body) as { code: string }).code, 'insufficient_scope');
    assert.doesNotMatch(noScope.body, /sample-upstream/);

    // 6. globex outside its grant's time window: 403 grant_denied, no upstream call.
    const closed = await perform(globexRead);
    assert.equal(closed.status, 403, closed.body);
    assert.equal((JSON.parse(closed.body) as { code: string }).code, 'grant_denied');
    assert.doesNotMatch(closed.body, /sample-upstream/);

    // 7. acme's token with acme's client certificate: allowed, and the same token as in 4.
    const mtlsOk = await perform(acmeMtls);
    assert.equal(mtlsOk.status, 200, mtlsOk.body);
    assert.equal((JSON.parse(mtlsOk.body) as { service: string }).service, 'sample-upstream');

    // 8. The same call with the certificate the demo revoked through the gateway: 401, the
    //    upstream never contacted, although the token alone is accepted (4, 7).
    const revoked = await perform(acmeRevoked);
    assert.equal(revoked.status, 401, revoked.body);
    assert.equal(revoked.headers['content-type'], 'application/problem+json');
    assert.equal((JSON.parse(revoked.body) as { code: string }).code, 'invalid_client_certificate');
    assert.doesNotMatch(revoked.body, /sample-upstream|revoked by|demo:/, 'the operator detail stays in the record');

    // 10. The token service's token with the certificate it is bound to: allowed.
    const bound = await perform(acmeBound);
    assert.equal(bound.status, 200, bound.body);
    assert.equal((JSON.parse(bound.body) as { service: string }).service, 'sample-upstream');

    // 11. The same token without its certificate: 401, the upstream never contacted.
    const unbound = await perform(acmeUnbound);
    assert.equal(unbound.status, 401, unbound.body);
    assert.equal((JSON.parse(unbound.body) as { code: string }).code, 'invalid_token');
    assert.doesNotMatch(unbound.body, /sample-upstream/);

    const ready = await perform(readiness);
    assert.equal(ready.status, 200);

    // The explain commands, run as pasted: acme allowed (exit 0) by its grant, globex denied
    // (exit 1) by its grant's time window.
    const [explainAcme, explainGlobex] = explainLines(run.stdout);
    assert.ok(explainAcme && explainGlobex && explainLines(run.stdout).length === 2, `two explain commands expected:\n${run.stdout}`);
    assert.match(explainAcme, /--partner acme --credential acme-jwt --method GET --path \/orders --scope orders:read$/);
    assert.match(explainGlobex, /--partner globex --credential globex-jwt --method GET --path \/orders --scope orders:read$/);
    const [acmeWhy, globexWhy] = await Promise.all([runExplain(explainAcme), runExplain(explainGlobex)]);
    assert.equal(acmeWhy.code, 0, `${acmeWhy.stdout}\n${acmeWhy.stderr}`);
    assert.match(acmeWhy.stdout, /ALLOWED — route list-orders, decided by partner\/acme\/grant\/orders#0/);
    assert.equal(globexWhy.code, 1, `${globexWhy.stdout}\n${globexWhy.stderr}`);
    assert.match(globexWhy.stdout, /✖ authorization\s+grant\.time_window: /);
    assert.match(globexWhy.stdout, /DENIED 403 grant_denied — reason grant\.time_window, decided by partner\/globex\/grant\/orders#0/);

    const decisionLog = /tail -f (\S+)/.exec(run.stdout)?.[1];
    assert.equal(decisionLog, join(dataDir, 'decisions.jsonl'));

    run.child.kill('SIGINT');
    assert.equal(await exitCode(run), 0, run.stderr);
    assert.match(run.stderr, /demo stopped\n$/);
    const records = (await readFile(decisionLog, 'utf8')).split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.equal(records.length, 11, `one decision record per data-plane request, the token request included:\n${records.map((record) => JSON.stringify((record as { event?: unknown }).event)).join('\n')}`);
    // The mTLS calls' records name the certificate that was presented; the refusal says why.
    type CertificateRecord = { event: { reason: string }; tls?: { client?: { hash?: { sha256: string }; subject?: string } } };
    // The token request came first (before call 1), the token service's calls last.
    const [withCertificate, withRevoked, withBoundToken, withoutCertificate] = (records as CertificateRecord[]).slice(7);
    const fingerprintOf = async (file: string): Promise<string> => createHash('sha256').update(new X509Certificate(await readFile(file)).raw).digest('hex');
    assert.equal(withCertificate!.event.reason, 'allowed');
    assert.equal(withCertificate!.tls?.client?.hash?.sha256, await fingerprintOf(acmeMtls.cert!));
    assert.match(withCertificate!.tls?.client?.subject ?? '', /^CN=acme-orders-client,/);
    assert.equal(withRevoked!.event.reason, 'tls.revoked_gateway');
    assert.equal(withRevoked!.tls?.client?.hash?.sha256, await fingerprintOf(acmeRevoked.cert!));
    assert.equal(withBoundToken!.event.reason, 'allowed');
    assert.equal(withBoundToken!.tls?.client?.hash?.sha256, await fingerprintOf(acmeBound.cert!));
    assert.notEqual(withoutCertificate!.event.reason, 'allowed');
    const tokenRecord = records[0] as { url?: { path?: string }; http?: { response?: { status_code?: number } }; portcullis?: { reason?: string } };
    assert.deepEqual([tokenRecord.url?.path, tokenRecord.http?.response?.status_code, tokenRecord.portcullis?.reason], ['/oauth2/token', 200, 'gateway.token_service']);
    const serialized = JSON.stringify(records);
    for (const token of Object.values(variables)) assert.ok(!serialized.includes(token), 'no raw token in a decision record');
  });

  it('reuses the dev PKI and the token signing key on the next start; --no-wait prints everything and exits 0', async () => {
    const dataDir = join(root, 'reuse');
    const first = startDemo(['--data-dir', dataDir, '--no-wait', ...portArgs(await freePorts(4))]);
    assert.equal(await exitCode(first), 0, first.stderr);
    assert.match(first.stderr, /creating dev PKI/);
    assert.match(first.stderr, /creating dev token signing key/);
    assert.match(first.stdout, /Ctrl-C to stop/);
    const caPath = join(dataDir, 'pki', 'ca.crt');
    const jwksPath = join(dataDir, 'pki', 'dev-issuer.jwks.json');
    const partnerCaPath = join(dataDir, 'pki', 'acme-ca.crt');
    const revokedPath = join(dataDir, 'pki', 'acme-revoked.crt');
    const ca = await readFile(caPath);
    const jwks = await readFile(jwksPath);
    const partnerCa = await readFile(partnerCaPath);
    const revokedCertificate = await readFile(revokedPath);
    const { mtimeMs } = await stat(caPath);
    if (process.platform !== 'win32') {
      assert.equal((await stat(join(dataDir, 'pki', 'dev-issuer.key'))).mode & 0o777, 0o600);
      for (const key of ['acme-client.key', 'acme-revoked.key']) assert.equal((await stat(join(dataDir, 'pki', key))).mode & 0o777, 0o600, key);
    }

    const second = startDemo(['--data-dir', dataDir, '--no-wait', ...portArgs(await freePorts(4))]);
    assert.equal(await exitCode(second), 0, second.stderr);
    assert.match(second.stderr, /reusing dev PKI in /);
    assert.match(second.stderr, /reusing dev token signing key in /);
    assert.doesNotMatch(second.stderr, /creating/, 'the partner certificates are reused with the dev PKI');
    assert.equal(curlLines(second.stdout).length, 11);
    tokenRequestLine(second.stdout);
    assert.equal(explainLines(second.stdout).length, 2);
    assert.deepEqual(await readFile(caPath), ca);
    assert.equal((await stat(caPath)).mtimeMs, mtimeMs);
    assert.deepEqual(await readFile(jwksPath), jwks);
    assert.deepEqual(await readFile(partnerCaPath), partnerCa);
    assert.deepEqual(await readFile(revokedPath), revokedCertificate);
    // New tokens each start, signed by the same key.
    const kidOf = (stdout: string): string => JSON.parse(Buffer.from(shellAssignments(stdout)['ACME_READ']!.split('.')[0]!, 'base64url').toString()).kid;
    assert.equal(kidOf(second.stdout), kidOf(first.stdout));
    assert.notEqual(shellAssignments(second.stdout)['ACME_READ'], shellAssignments(first.stdout)['ACME_READ']);
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
