/**
 * Token issuance (issue 5): how many tokens per second the gateway's own token service issues,
 * and at what latency, per client authentication method.
 *
 *   cd bench && npm run bench:tokens                       # 16 clients × 10 s per row
 *   npm run bench:tokens -- --clients 32 --seconds 20
 *
 * Set-up (all on loopback, every process stopped by PID at the end or on Ctrl-C): one Portcullis
 * process on the project's Node 24, pinned to the last core, with `token_service` on an HTTPS
 * listener that requests client certificates (the embedded state store and the default audit
 * trail: every issuance is a stored `jti` and a chained audit record, as in production). This
 * process is the load generator, pinned to core 0: N clients, each one keep-alive TLS connection
 * with one request in flight (a closed loop, as wrk does), for D seconds per row.
 *
 * Rows:
 * - `private_key_jwt`: a fresh RFC 7523 client assertion on every request (ES256, its own `jti`,
 *   which the gateway stores single-use), bearer token (`allow_bearer_tokens` acknowledged in the
 *   bench config so the row measures client authentication alone);
 * - `private_key_jwt+dpop`: the same plus a fresh DPoP proof (RFC 9449) per request: the
 *   sender-constrained default for a client without a certificate (`cnf.jkt`);
 * - `tls_client_auth`: RFC 8705 §2.1, the client certificate on the kept-alive connection
 *   authenticates the client, and the token is bound to it (`cnf.x5t#S256`).
 *
 * Assertions and proofs are minted before the timed run (never by the timed loop), sized from
 * a warm-up run's rate; a row whose pool ran dry says so. Every answer must be a 200 with an
 * access token; before each row one token is decoded and its `cnf` checked, so a misconfigured
 * row cannot post fast refusals. Figures: tokens/s, latency p50/p90/p99/max (nearest rank), and
 * the gateway's CPU time per token. Written to `results/tokens-<timestamp>.json`.
 */
import { randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { SignJWT, decodeJwt, exportJWK, generateKeyPair } from 'jose';
import type { CryptoKey, JWK } from 'jose';
import { createCa, issueClientCertificate, issueServerCertificate } from '../src/pki/dev-ca.ts';
import type { IssuedCertificate } from '../src/pki/dev-ca.ts';
import type { Proc } from './lib/procs.ts';
import { cpuMicros, freePort, onInterrupt, stop, stopAll, waitForPort, spawnPinned } from './lib/procs.ts';
import type { Distribution } from './lib/percentiles.ts';
import { distribution } from './lib/percentiles.ts';
import { ensureTool, machine } from './lib/system.ts';
import { findNode24, integerOption } from './lib/options.ts';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = dirname(BENCH_DIR);
const HOST = 'tokens.bench.test';
const ISSUER = `https://${HOST}`;
const TOKEN_ENDPOINT = `${ISSUER}/oauth2/token`;
const AUDIENCE = 'https://api.bench.test/orders';
const SCOPE = 'orders:read';
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** Lifetime of a pre-minted assertion: at most the service's `assertion_max_lifetime` (5 min). */
const ASSERTION_LIFETIME_SECONDS = 240;
/** A request not answered in this long fails the row. */
const REQUEST_TIMEOUT_MS = 10_000;

const ROWS = ['private_key_jwt', 'private_key_jwt+dpop', 'tls_client_auth'] as const;
type RowName = (typeof ROWS)[number];

const USAGE = `Usage: node tokens.ts [options]      (npm run bench:tokens -- [options])

Token issuance by the gateway's token service: tokens per second and latency for
private_key_jwt (a fresh assertion per request, bearer and DPoP-bound) and for tls_client_auth
(mTLS, certificate-bound), N keep-alive clients with one request in flight each.

Options:
  --clients N         concurrent clients, one keep-alive TLS connection each (default 16)
  --seconds D         measured seconds per row (default 10; at most 200, so that pre-minted
                      assertions stay within their 4-minute lifetime)
  --warmup S          warm-up seconds per row, not measured; also sizes the pools (default 3)
  --rows LIST         comma-separated rows (default ${ROWS.join(',')})
  --keep-tmp          keep the temp dir (config, logs, state, audit trail) for inspection
  -h, --help          this text
`;

interface Settings {
  clients: number;
  seconds: number;
  warmup: number;
  rows: RowName[];
  keepTmp: boolean;
}


function parseSettings(argv: string[]): Settings | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      clients: { type: 'string', default: '16' },
      seconds: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '3' },
      rows: { type: 'string', default: ROWS.join(',') },
      'keep-tmp': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return undefined;
  }
  const rows = values.rows.split(',').map((row) => row.trim());
  for (const row of rows) if (!(ROWS as readonly string[]).includes(row)) throw new Error(`--rows: unknown row "${row}" (known: ${ROWS.join(', ')})`);
  return {
    clients: integerOption(values.clients, '--clients', 1, 1024),
    seconds: integerOption(values.seconds, '--seconds', 1, 200),
    warmup: integerOption(values.warmup, '--warmup', 1, 60),
    rows: rows as RowName[],
    keepTmp: values['keep-tmp'],
  };
}


/**
 * The checked-out commit, read from `.git` directly: the record names it without running git
 * (which may touch the index while someone else is using the checkout).
 */
function headCommit(repo: string): string | undefined {
  try {
    const head = readFileSync(join(repo, '.git', 'HEAD'), 'utf8').trim();
    const ref = /^ref: (.+)$/.exec(head)?.[1];
    if (ref === undefined) return head.slice(0, 12);
    const loose = join(repo, '.git', ref);
    if (existsSync(loose)) return readFileSync(loose, 'utf8').trim().slice(0, 12);
    const packed = readFileSync(join(repo, '.git', 'packed-refs'), 'utf8');
    return new RegExp(`^([0-9a-f]{40}) ${ref.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm').exec(packed)?.[1]?.slice(0, 12);
  } catch {
    return undefined;
  }
}

const log = (line: string) => process.stdout.write(`${line}\n`);

/** Set on SIGINT/SIGTERM: the run is being torn down. */
let interrupted = false;

// ---------------------------------------------------------------------------------------------
// The gateway
// ---------------------------------------------------------------------------------------------

interface Gateway {
  proc: Proc;
  port: number;
  ca: string;
  clientCertificate: IssuedCertificate;
  clientKey: CryptoKey;
}

function gatewayConfig(dir: string, ports: { listener: number; ops: number }): string {
  return `# generated by bench/tokens.ts — the token service alone
version: 1
gateway:
  data_dir: ${JSON.stringify(join(dir, 'data'))}
  decision_log: ${JSON.stringify(join(dir, 'decisions.jsonl'))}
ops:
  address: 127.0.0.1
  port: ${ports.ops}
# Every token request comes from 127.0.0.1: a load, not an attack.
abuse:
  auth_failures_per_source: off
  denials_per_credential: off
# Pre-minted proofs are up to a few seconds old by the time they are sent.
dpop:
  proof_lifetime: 5m
listeners:
  - name: tokens
    zone: partner
    address: 127.0.0.1
    port: ${ports.listener}
    hostnames: [${HOST}]
    tls: { cert: server.crt, key: server.key, http2: false, client_certificates: request }
upstreams:
  - { id: unused, url: "http://127.0.0.1:9" }
token_service:
  issuer: ${ISSUER}
  listener: tokens
  # The private_key_jwt row measures client authentication alone; the +dpop row binds its tokens.
  allow_bearer_tokens: "I understand tokens issued without mTLS or DPoP can be replayed by whoever holds them"
apis:
  - { id: orders, audience: "${AUDIENCE}" }
partners:
  - id: bench-jwt
    agreement: { id: BENCH-T1, expires: 2099-12-31 }
    credentials:
      - { id: bench-jwt-app, type: client, client_id: bench-jwt-app, auth: private_key_jwt, jwks_file: client.jwks }
    grants:
      - { api: orders, scopes: ["${SCOPE}"] }
  - id: bench-mtls
    agreement: { id: BENCH-T2, expires: 2099-12-31 }
    mtls: { ca: [partner-ca.crt] }
    credentials:
      - { id: bench-mtls-app, type: client, client_id: bench-mtls-app, auth: tls_client_auth }
    grants:
      - { api: orders, scopes: ["${SCOPE}"] }
`;
}

async function startGateway(dir: string, node: string, cpu: number | undefined): Promise<Gateway> {
  const configDir = join(dir, 'config');
  mkdirSync(configDir, { recursive: true });
  const serverCa = await createCa({ commonName: 'Portcullis bench server CA' });
  const server = await issueServerCertificate(serverCa, { dnsNames: [HOST] });
  const partnerCa = await createCa({ commonName: 'Portcullis bench partner CA' });
  const clientCertificate = await issueClientCertificate(partnerCa, { commonName: 'bench-mtls-client' });
  const pair = await generateKeyPair('ES256', { extractable: true });
  const clientJwk: JWK = { ...(await exportJWK(pair.publicKey)), kid: 'bench-key-1', alg: 'ES256', use: 'sig' };
  writeFileSync(join(configDir, 'server.crt'), server.certPem);
  writeFileSync(join(configDir, 'server.key'), server.keyPem, { mode: 0o600 });
  writeFileSync(join(configDir, 'partner-ca.crt'), partnerCa.certPem);
  writeFileSync(join(configDir, 'client.jwks'), JSON.stringify({ keys: [clientJwk] }));
  const ports = { listener: await freePort(), ops: await freePort() };
  const file = join(configDir, 'portcullis.yaml');
  writeFileSync(file, gatewayConfig(dir, ports));
  const logFile = join(dir, 'portcullis.log');
  const proc = spawnPinned('portcullis-tokens', node, [join(REPO_ROOT, 'src', 'cli', 'main.ts'), 'serve', '-c', file], { cpu, logFile, cwd: dir });
  try {
    await waitForPort(proc, ports.listener, 30_000);
  } catch (error) {
    await stop(proc);
    throw new Error(`${(error as Error).message}; see ${logFile}`);
  }
  return { proc, port: ports.listener, ca: serverCa.certPem, clientCertificate, clientKey: pair.privateKey };
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

interface Answer {
  status: number;
  body: string;
}

function postToken(gateway: Gateway, agent: Agent, body: string, headers: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: gateway.port,
        servername: HOST,
        method: 'POST',
        path: '/oauth2/token',
        agent,
        timeout: REQUEST_TIMEOUT_MS,
        headers: { host: HOST, 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(Buffer.byteLength(body)), ...headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`POST /oauth2/token timed out after ${REQUEST_TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** One keep-alive connection per client; the mTLS clients present the partner certificate on it. */
function agentFor(gateway: Gateway, row: RowName): Agent {
  const certificate = row === 'tls_client_auth' ? { cert: gateway.clientCertificate.certPem, key: gateway.clientCertificate.keyPem } : {};
  return new Agent({ keepAlive: true, maxSockets: 1, ca: gateway.ca, servername: HOST, ...certificate });
}

/** What one request of a row sends: body and headers. */
interface Shot {
  body: string;
  headers: Record<string, string>;
}

interface DpopKey {
  privateKey: CryptoKey;
  jwk: JWK;
}

/**
 * Mints `count` requests for `row` (the per-request signing is here, not in the timed loop).
 * The mTLS row's requests need no signing: the same body every time.
 */
async function mint(row: RowName, count: number, gateway: Gateway, dpop: DpopKey): Promise<Shot[]> {
  const resource = `resource=${encodeURIComponent(AUDIENCE)}&scope=${encodeURIComponent(SCOPE)}`;
  if (row === 'tls_client_auth') {
    const shot: Shot = { body: `grant_type=client_credentials&client_id=bench-mtls-app&${resource}`, headers: {} };
    return Array.from({ length: count }, () => shot);
  }
  const shots: Shot[] = [];
  const now = Math.floor(Date.now() / 1000);
  for (let i = 0; i < count; i++) {
    const assertion = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: 'bench-key-1' })
      .setIssuer('bench-jwt-app')
      .setSubject('bench-jwt-app')
      .setAudience(ISSUER)
      .setIssuedAt(now)
      .setExpirationTime(now + ASSERTION_LIFETIME_SECONDS)
      .setJti(randomUUID())
      .sign(gateway.clientKey);
    const headers: Record<string, string> = {};
    if (row === 'private_key_jwt+dpop') {
      // RFC 9449 §4.2: htu is the token endpoint URL the metadata names.
      headers['dpop'] = await new SignJWT({ htm: 'POST', htu: TOKEN_ENDPOINT, jti: randomUUID() })
        .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: dpop.jwk })
        .setIssuedAt(now)
        .sign(dpop.privateKey);
    }
    shots.push({ body: `grant_type=client_credentials&client_assertion_type=${encodeURIComponent(JWT_BEARER)}&client_assertion=${assertion}&${resource}`, headers });
  }
  return shots;
}

/** Decodes one issued token and checks its binding: a row that issues the wrong thing is not measured. */
function checkToken(row: RowName, answer: Answer): void {
  if (answer.status !== 200) throw new Error(`${row}: the token endpoint answered ${answer.status}, not 200: ${answer.body.slice(0, 300)}`);
  const { access_token: token, token_type: type } = JSON.parse(answer.body) as { access_token?: string; token_type?: string };
  if (typeof token !== 'string') throw new Error(`${row}: no access_token in ${answer.body.slice(0, 300)}`);
  const claims = decodeJwt(token) as { aud?: unknown; cnf?: Record<string, unknown> };
  if (claims.aud !== AUDIENCE) throw new Error(`${row}: token aud ${JSON.stringify(claims.aud)}, not ${AUDIENCE}`);
  const cnf = Object.keys(claims.cnf ?? {}).sort().join(',');
  const expected = { private_key_jwt: '', 'private_key_jwt+dpop': 'jkt', tls_client_auth: 'x5t#S256' }[row];
  if (cnf !== expected) throw new Error(`${row}: token cnf [${cnf}], expected [${expected}] (token_type ${type})`);
}

// ---------------------------------------------------------------------------------------------
// The load loop
// ---------------------------------------------------------------------------------------------

interface Run {
  tokens: number;
  elapsedMs: number;
  latenciesMs: number[];
  /** Non-200 answers by status, with the first body seen. */
  failures: Record<string, number>;
  firstFailure?: string;
  /** True if the pre-minted requests ran out before the deadline. */
  exhausted: boolean;
  gatewayCpuMicros: number;
}

async function load(gateway: Gateway, agents: readonly Agent[], shots: readonly Shot[], seconds: number): Promise<Run> {
  let next = 0;
  const run: Run = { tokens: 0, elapsedMs: 0, latenciesMs: [], failures: {}, exhausted: false, gatewayCpuMicros: 0 };
  const cpuBefore = cpuMicros(gateway.proc.pid);
  const startedAt = performance.now();
  const deadline = startedAt + seconds * 1000;
  await Promise.all(
    agents.map(async (agent) => {
      while (performance.now() < deadline) {
        if (next >= shots.length) {
          run.exhausted = true;
          return;
        }
        const shot = shots[next++]!;
        const sentAt = performance.now();
        const answer = await postToken(gateway, agent, shot.body, shot.headers);
        const latency = performance.now() - sentAt;
        // A closed loop: an answer that arrives after the deadline is not counted.
        if (performance.now() > deadline) return;
        if (answer.status === 200) {
          run.tokens++;
          run.latenciesMs.push(latency);
        } else {
          run.failures[answer.status] = (run.failures[answer.status] ?? 0) + 1;
          run.firstFailure ??= answer.body.slice(0, 300);
        }
      }
    }),
  );
  run.elapsedMs = performance.now() - startedAt;
  run.gatewayCpuMicros = cpuMicros(gateway.proc.pid) - cpuBefore;
  return run;
}

interface RowResult {
  row: RowName;
  tokensPerSecond: number;
  latencyMs: Distribution;
  tokens: number;
  elapsedMs: number;
  failures: Record<string, number>;
  firstFailure?: string;
  exhausted: boolean;
  premintedRequests: number;
  gatewayCpuMicrosPerToken: number;
  warmup: { tokensPerSecond: number; tokens: number };
}

async function measureRow(row: RowName, gateway: Gateway, settings: Settings): Promise<RowResult> {
  const dpopPair = await generateKeyPair('ES256', { extractable: true });
  const dpop: DpopKey = { privateKey: dpopPair.privateKey, jwk: await exportJWK(dpopPair.publicKey) };
  const agents = Array.from({ length: settings.clients }, () => agentFor(gateway, row));
  try {
    const [probe] = await mint(row, 1, gateway, dpop);
    checkToken(row, await postToken(gateway, agents[0]!, probe!.body, probe!.headers));

    // Warm-up: JIT, connections, and the rate that sizes the measured run's pool.
    const warmupShots = await mint(row, Math.max(2000, settings.clients * 50), gateway, dpop);
    const warm = await load(gateway, agents, warmupShots, settings.warmup);
    const warmRate = (warm.tokens / warm.elapsedMs) * 1000;
    if (warm.tokens === 0) throw new Error(`${row}: no token issued during the warm-up (${JSON.stringify(warm.failures)}: ${warm.firstFailure ?? ''})`);
    // Twice the warm-up rate, and never fewer than a few per client: the pool must outlast the run.
    const count = Math.ceil(warmRate * settings.seconds * 2) + settings.clients * 20;
    const mintStart = performance.now();
    const shots = await mint(row, count, gateway, dpop);
    const mintMs = performance.now() - mintStart;
    log(`tokens: ${row}: warm-up ${warmRate.toFixed(0)} tokens/s; ${count.toLocaleString('en-US')} requests ${row === 'tls_client_auth' ? 'prepared' : `pre-minted in ${(mintMs / 1000).toFixed(1)} s`}; measuring ${settings.seconds} s`);

    const run = await load(gateway, agents, shots, settings.seconds);
    const result: RowResult = {
      row,
      tokensPerSecond: (run.tokens / run.elapsedMs) * 1000,
      latencyMs: distribution(run.latenciesMs),
      tokens: run.tokens,
      elapsedMs: run.elapsedMs,
      failures: run.failures,
      exhausted: run.exhausted,
      premintedRequests: count,
      gatewayCpuMicrosPerToken: run.tokens > 0 ? run.gatewayCpuMicros / run.tokens : Number.NaN,
      warmup: { tokensPerSecond: warmRate, tokens: warm.tokens },
    };
    if (run.firstFailure !== undefined) result.firstFailure = run.firstFailure;
    return result;
  } finally {
    for (const agent of agents) agent.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

const fixed = (value: number, digits = 2) => (Number.isFinite(value) ? value.toFixed(digits) : '-');

function table(results: readonly RowResult[]): string {
  const header = ['row', 'tokens/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'gateway CPU µs/token', 'non-200'];
  const body = results.map((r) => [
    r.row,
    fixed(r.tokensPerSecond, 0),
    fixed(r.latencyMs.p50),
    fixed(r.latencyMs.p90),
    fixed(r.latencyMs.p99),
    fixed(r.latencyMs.max),
    fixed(r.gatewayCpuMicrosPerToken, 0),
    String(Object.values(r.failures).reduce((sum, n) => sum + n, 0)),
  ]);
  const widths = header.map((cell, i) => Math.max(cell.length, ...body.map((line) => line[i]!.length)));
  const line = (cells: readonly string[]) => `| ${cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i === 0 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(header), rule, ...body.map(line)].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

async function main(argv: string[]): Promise<number> {
  const settings = parseSettings(argv);
  if (!settings) return 0;
  if (process.platform !== 'linux') throw new Error('the benchmark pins with taskset and reads /proc: Linux only');
  const taskset = ensureTool('taskset', ['util-linux']);
  const node = findNode24();
  // Read before this process pins itself: availableParallelism() then says 1.
  const machineAtStart = machine();
  const { cores } = machineAtStart;
  // With two cores or more: the gateway on the last, this load generator on core 0.
  const gatewayCpu = cores >= 2 ? cores - 1 : undefined;
  if (gatewayCpu !== undefined) execFileSync(taskset, ['-a', '-p', '-c', '0', String(process.pid)], { stdio: 'ignore' });
  const versions = { node: execFileSync(node, ['--version'], { encoding: 'utf8' }).trim(), loadGenerator: process.version };

  const tmpDir = mkdtempSync(join(tmpdir(), 'portcullis-tokens-'));
  let gateway: Gateway | undefined;
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      if (gateway) await stop(gateway.proc);
      await stopAll();
      if (settings.keepTmp) log(`tokens: kept ${tmpDir}`);
      else rmSync(tmpDir, { recursive: true, force: true });
    })());
  const removeHandlers = onInterrupt(async () => {
    interrupted = true;
    await cleanup();
  });

  const startedAt = new Date();
  const commit = headCommit(REPO_ROOT);
  const results: RowResult[] = [];
  try {
    gateway = await startGateway(tmpDir, node, gatewayCpu);
    log(
      `tokens: portcullis ${commit ?? '(no git)'} | node ${versions.node} | ${cores} cores, load average ${machineAtStart.loadavg.split(' ').slice(0, 3).join(' ')} | ` +
        `gateway pid ${gateway.proc.pid}${gatewayCpu !== undefined ? ` on core ${gatewayCpu}, load generator on core 0` : ''}`,
    );
    log(`tokens: ${settings.clients} keep-alive TLS clients, ${settings.warmup} s warm-up + ${settings.seconds} s measured per row`);
    for (const row of settings.rows) results.push(await measureRow(row, gateway, settings));
  } finally {
    await cleanup();
    removeHandlers();
  }

  log('');
  log(table(results));
  log('');
  log(`  ${settings.clients} clients, ${settings.seconds} s per row; latency = request written to answer complete, nearest-rank percentiles`);
  const problems: string[] = [];
  for (const r of results) {
    if (r.exhausted) problems.push(`${r.row}: the ${r.premintedRequests.toLocaleString('en-US')} pre-minted requests ran out before the end of the run: its rate is a floor`);
    if (Object.keys(r.failures).length > 0) problems.push(`${r.row}: non-200 answers ${JSON.stringify(r.failures)}, first: ${r.firstFailure ?? ''}`);
  }
  for (const problem of problems) log(`  WARNING ${problem}`);

  const resultsDir = join(BENCH_DIR, 'results');
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `tokens-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  const record = {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    commit,
    machine: { ...machineAtStart, loadavgAtEnd: machine().loadavg },
    versions,
    settings: { ...settings, gatewayCpu, loadGeneratorCpu: gatewayCpu !== undefined ? 0 : undefined, assertionAlgorithm: 'ES256', tokenAlgorithm: 'ES256' },
    results,
    problems,
  };
  writeFileSync(file, `${JSON.stringify(record, (_key, value: unknown) => (typeof value === 'number' && !Number.isFinite(value) ? null : value), 2)}\n`);
  log(`\ntokens: results written to ${file}`);
  return problems.length === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (interrupted) return;
    process.stderr.write(`tokens: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
