/**
 * Revocation propagation (issue 7): how long after an operator revokes a token through one
 * instance's admin API the other instances refuse it, with three gateways sharing one Redis.
 *
 *   cd bench && npm run bench:revocation                      # 200 revocations
 *   npm run bench:revocation -- --revocations 1000
 *
 * Set-up (all on loopback, every process stopped by PID at the end or on Ctrl-C): a throwaway
 * redis-server, the nginx upstream of the main suite, and three Portcullis processes A, B, C on
 * the full authorization path of `targets/jwt.ts` (RS256, the same issuer), with
 * `state.driver: redis` on that server and one admin token. Processes are not pinned: the
 * scheduler places them, as in a deployment of several instances on one host.
 *
 * Each revocation: a fresh token (its own `jti`) is minted and must be accepted by A, B and C
 * (which also puts it in each one's verified-token cache: the revocation must bite through a
 * cache hit). Then B and C are probed in tight loops — a keep-alive connection each, one request
 * in flight — while the token is revoked with `POST /admin/revocations` on A. Per instance the
 * time from the start of the admin call to the first 401 received there is recorded, with the
 * admin call's duration and the `propagation` it reported. The loops go on until they have seen
 * the refusal and sent a few more probes after the admin call returned; every probe sent after
 * it returned must be refused (and A, asked once, too): that is the guarantee the admin API
 * gives — when it answers, the revocation holds on every instance that acknowledged it.
 *
 * Figures: p50/p90/p99/max (nearest rank) of each timing; the target is p99 < 50 ms of the time
 * to the first refusal on B and on C. Written to `results/revocation-<timestamp>.json`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { decodeJwt } from 'jose';
import type { Proc } from './lib/procs.ts';
import { freePort, onInterrupt, stop, stopAll, waitForPort, spawnPinned } from './lib/procs.ts';
import type { Distribution } from './lib/percentiles.ts';
import { distribution } from './lib/percentiles.ts';
import type { RedisServer } from './lib/redis.ts';
import { startRedisServer } from './lib/redis.ts';
import { ensureTool, gitCommit, machine, versionOf } from './lib/system.ts';
import type { Upstream } from './lib/target.ts';
import type { Issuer } from './targets/jwt.ts';
import { createIssuer, jwtConfig } from './targets/jwt.ts';
import { startUpstream } from './targets/upstream.ts';
import { findNode24, integerOption } from './lib/options.ts';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = dirname(BENCH_DIR);
const HOST = 'localhost';
const PATH = '/bench/hello';
/** Tokens live this long; the issuer's `max_token_lifetime` is exactly that. */
const TOKEN_LIFETIME_SECONDS = 3600;
/** Probes each loop sends after the admin call returned, all of which must be refused. */
const PROBES_AFTER_RETURN = 3;

const USAGE = `Usage: node revocation.ts [options]      (npm run bench:revocation -- [options])

Revocation propagation across three Portcullis instances sharing one Redis: a token is revoked
through instance A's admin API while B and C are probed in tight loops; reports p50/p90/p99/max
of the admin call, of the time to the first refusal on B and on C, and of the acknowledgement
time the API reported, against the target p99 < 50 ms.

Options:
  --revocations N     measured revocations (default 200)
  --warmup N          revocations before them, not measured (JIT, connections; default 10)
  --timeout MS        give up on an instance that has not refused a revoked token after this
                      long, counting it as a failure (default 5000)
  --target-ms MS      the p99 the time to the first refusal must stay under (default 50)
  --keep-tmp          keep the temp dir (configs, logs, decision logs) for inspection
  -h, --help          this text
`;

interface Settings {
  revocations: number;
  warmup: number;
  timeoutMs: number;
  targetMs: number;
  keepTmp: boolean;
}


function parseSettings(argv: string[]): Settings | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      revocations: { type: 'string', default: '200' },
      warmup: { type: 'string', default: '10' },
      timeout: { type: 'string', default: '5000' },
      'target-ms': { type: 'string', default: '50' },
      'keep-tmp': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return undefined;
  }
  return {
    revocations: integerOption(values.revocations, '--revocations', 1),
    warmup: integerOption(values.warmup, '--warmup', 0),
    timeoutMs: integerOption(values.timeout, '--timeout', 100),
    targetMs: integerOption(values['target-ms'], '--target-ms', 1),
    keepTmp: values['keep-tmp'],
  };
}


const log = (line: string) => process.stdout.write(`${line}\n`);

/** Set on SIGINT/SIGTERM: the run is being torn down. */
let interrupted = false;

// ---------------------------------------------------------------------------------------------
// The instances
// ---------------------------------------------------------------------------------------------

interface Instance {
  name: 'A' | 'B' | 'C';
  proc: Proc;
  port: number;
  opsPort: number;
  decisionLog: string;
  /** One keep-alive connection: probes never wait for a connect. */
  agent: Agent;
}

async function startInstance(
  name: Instance['name'],
  dir: string,
  node: string,
  upstream: Upstream,
  redis: RedisServer,
  issuer: { jwksFile: string },
  adminTokenSha256: string,
): Promise<Instance> {
  const configDir = join(dir, 'config');
  const stateDir = join(dir, 'state');
  mkdirSync(configDir, { recursive: true });
  mkdirSync(stateDir, { recursive: true });
  const ports = { listener: await freePort(), ops: await freePort() };
  const file = join(configDir, 'portcullis.yaml');
  writeFileSync(
    file,
    jwtConfig({ host: HOST, upstream }, ports, stateDir, { alg: 'RS256', jwksFile: issuer.jwksFile, lifetimeSeconds: TOKEN_LIFETIME_SECONDS }, {
      redis: { url: redis.url, keyPrefix: 'bench:' },
      adminTokenSha256,
      // Every revocation makes a few 401s from 127.0.0.1: that is the point, not an attack.
      noSourceBlock: true,
    }),
  );
  const logFile = join(dir, 'portcullis.log');
  const proc = spawnPinned(`portcullis-${name}`, node, [join(REPO_ROOT, 'src', 'cli', 'main.ts'), 'serve', '-c', file], { cpu: undefined, logFile, cwd: dir });
  try {
    await waitForPort(proc, ports.listener, 30_000);
    await waitForPort(proc, ports.ops, 5_000);
  } catch (error) {
    await stop(proc);
    throw new Error(`${(error as Error).message}; see ${logFile}`);
  }
  return { name, proc, port: ports.listener, opsPort: ports.ops, decisionLog: join(stateDir, 'decisions.jsonl'), agent: new Agent({ keepAlive: true, maxSockets: 1 }) };
}

interface Answer {
  status: number;
  body: string;
  /** performance.now() before the request was handed to the socket. */
  sentAt: number;
  /** performance.now() when the response head arrived. */
  receivedAt: number;
  /** performance.now() when the response body was complete. */
  endedAt: number;
}

function call(instance: Instance, port: number, method: string, path: string, headers: Record<string, string>, body?: string, timeoutMs = 10_000): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const sentAt = performance.now();
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent: instance.agent, timeout: timeoutMs }, (res) => {
      const receivedAt = performance.now();
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), sentAt, receivedAt, endedAt: performance.now() }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} on ${instance.name} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

const getWith = (instance: Instance, token: string) => call(instance, instance.port, 'GET', PATH, { host: HOST, authorization: `Bearer ${token}` });

// ---------------------------------------------------------------------------------------------
// One revocation
// ---------------------------------------------------------------------------------------------

/** What the two probe loops share with the admin call. */
interface Round {
  /** performance.now() when the admin call started. */
  startedAt: number;
  /** performance.now() when its response was complete; undefined while it runs. */
  returnedAt: number | undefined;
  deadline: number;
}

interface ProbeResult {
  /** ms from the start of the admin call to the first 401; Infinity if none before the timeout. */
  refusedAfterMs: number;
  probes: number;
  /** Probes sent after the admin call returned that were accepted (the guarantee: 0). */
  acceptedAfterReturn: number;
  /** Probes accepted after this instance had already refused the token (must be 0). */
  acceptedAfterRefusal: number;
  /** Round trips of every probe, ms. */
  roundTrips: number[];
}

async function probeUntilRefused(instance: Instance, token: string, round: Round): Promise<ProbeResult> {
  let refusedAt: number | undefined;
  const result: ProbeResult = { refusedAfterMs: Number.POSITIVE_INFINITY, probes: 0, acceptedAfterReturn: 0, acceptedAfterRefusal: 0, roundTrips: [] };
  let sentAfterReturn = 0;
  for (;;) {
    const answer = await getWith(instance, token);
    result.probes++;
    result.roundTrips.push(answer.receivedAt - answer.sentAt);
    const afterReturn = round.returnedAt !== undefined && answer.sentAt >= round.returnedAt;
    if (afterReturn) sentAfterReturn++;
    if (answer.status === 200) {
      if (afterReturn) result.acceptedAfterReturn++;
      if (refusedAt !== undefined) result.acceptedAfterRefusal++;
    } else if (answer.status === 401) {
      if (answer.receivedAt < round.startedAt) throw new Error(`${instance.name} refused the token before it was revoked: ${answer.body.slice(0, 200)}`);
      if (refusedAt === undefined) {
        refusedAt = answer.receivedAt;
        result.refusedAfterMs = refusedAt - round.startedAt;
      }
    } else {
      throw new Error(`${instance.name} answered ${answer.status} to a probe (expected 200 or 401): ${answer.body.slice(0, 200)}`);
    }
    if (refusedAt !== undefined && sentAfterReturn >= PROBES_AFTER_RETURN) return result;
    if (performance.now() > round.deadline) return result;
  }
}

interface Propagation {
  instances: number;
  acknowledged: number;
  elapsedMs: number;
}

interface RevocationSample {
  jti: string;
  /** Client-side duration of POST /admin/revocations on A, ms. */
  adminMs: number;
  /** What the admin API reported. */
  propagation: Propagation;
  /** ms from the start of the admin call to the first 401 on B / on C. */
  refusedAfterMs: { B: number; C: number };
  probes: { B: number; C: number };
  acceptedAfterReturn: { A: number; B: number; C: number };
  acceptedAfterRefusal: { B: number; C: number };
}

async function revokeOnce(instances: Record<Instance['name'], Instance>, issuer: Issuer, adminToken: string, timeoutMs: number, roundTrips: number[]): Promise<RevocationSample> {
  const [token] = await issuer.mint(1, TOKEN_LIFETIME_SECONDS);
  const claims = decodeJwt(token!);
  const jti = claims.jti!;
  // Accepted everywhere first, which also caches the verified token on each instance.
  for (const instance of Object.values(instances)) {
    const answer = await getWith(instance, token!);
    if (answer.status !== 200) throw new Error(`${instance.name} answered ${answer.status} to a fresh token, not 200: ${answer.body.slice(0, 200)}`);
  }

  const round: Round = { startedAt: 0, returnedAt: undefined, deadline: 0 };
  // The loops issue their first request now; no response can be handled before the admin call
  // below has started (no I/O callback runs in between), so the clock starts there.
  const probes = Promise.allSettled([probeUntilRefused(instances.B, token!, round), probeUntilRefused(instances.C, token!, round)]);
  round.startedAt = performance.now();
  round.deadline = round.startedAt + timeoutMs;
  const body = JSON.stringify({ kind: 'token', key: jti, reason: 'bench: revocation propagation', expires_at: new Date(claims.exp! * 1000).toISOString() });
  let admin: Answer;
  try {
    // `returnedAt` is set in a reaction to the response's end, which runs before any other I/O
    // callback: a probe answer handled after it was sent after it, one handled before was not.
    admin = await call(instances.A, instances.A.opsPort, 'POST', '/admin/revocations', { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }, body).then(
      (answer) => {
        round.returnedAt = answer.endedAt;
        return answer;
      },
      (error: unknown) => {
        round.returnedAt = performance.now();
        throw error;
      },
    );
  } catch (error) {
    await probes; // they stop at the deadline
    throw error;
  }
  const settled = await probes;
  for (const outcome of settled) if (outcome.status === 'rejected') throw outcome.reason;
  const [b, c] = settled.map((outcome) => (outcome as PromiseFulfilledResult<ProbeResult>).value) as [ProbeResult, ProbeResult];
  if (admin.status !== 201) throw new Error(`POST /admin/revocations on A answered ${admin.status}, not 201: ${admin.body.slice(0, 300)}`);
  // The API writes `elapsed_ms` (snake_case, like the rest of its JSON).
  const reported = (JSON.parse(admin.body) as { propagation?: { instances?: unknown; acknowledged?: unknown; elapsed_ms?: unknown } }).propagation;
  if (!reported || typeof reported.elapsed_ms !== 'number' || typeof reported.instances !== 'number' || typeof reported.acknowledged !== 'number') {
    throw new Error(`POST /admin/revocations on A: no propagation { instances, acknowledged, elapsed_ms } in ${admin.body.slice(0, 300)}`);
  }
  const propagation: Propagation = { instances: reported.instances, acknowledged: reported.acknowledged, elapsedMs: reported.elapsed_ms };
  // A itself, once, after its own admin API answered.
  const onA = await getWith(instances.A, token!);
  if (onA.status !== 200 && onA.status !== 401) throw new Error(`A answered ${onA.status} to a probe: ${onA.body.slice(0, 200)}`);
  roundTrips.push(...b.roundTrips, ...c.roundTrips);
  return {
    jti,
    adminMs: admin.endedAt - round.startedAt,
    propagation,
    refusedAfterMs: { B: b.refusedAfterMs, C: c.refusedAfterMs },
    probes: { B: b.probes, C: c.probes },
    acceptedAfterReturn: { A: onA.status === 200 ? 1 : 0, B: b.acceptedAfterReturn, C: c.acceptedAfterReturn },
    acceptedAfterRefusal: { B: b.acceptedAfterRefusal, C: c.acceptedAfterRefusal },
  };
}

// ---------------------------------------------------------------------------------------------
// Checking the decision logs
// ---------------------------------------------------------------------------------------------

/**
 * Every refusal any instance recorded must be `token.revoked` for a token this run revoked: a
 * 401 for another reason (an expired or unparsable token, a 503 from a lost Redis) would make a
 * fast "refusal" that says nothing about revocation.
 */
function auditDecisionLogs(instances: readonly Instance[], revoked: ReadonlySet<string>): string {
  const notes: string[] = [];
  for (const instance of instances) {
    let text: string;
    try {
      text = readFileSync(instance.decisionLog, 'utf8');
    } catch (error) {
      throw new Error(`${instance.name}: cannot read its decision log: ${(error as Error).message}`);
    }
    let refused = 0;
    const wrong = new Map<string, number>();
    for (const line of text.split('\n')) {
      if (line === '') continue;
      let record: { portcullis?: { decision?: string; reason?: string; detail?: string } };
      try {
        record = JSON.parse(line) as typeof record;
      } catch {
        continue; // a last line being written
      }
      const p = record.portcullis;
      if (p?.decision === 'allow') continue;
      refused++;
      // A refused record names no principal; the detail names the token (`token <jti> revoked by …`).
      const jti = /^token (\S+) revoked by /.exec(p?.detail ?? '')?.[1];
      const why = p?.reason === 'token.revoked' && jti !== undefined && revoked.has(jti) ? undefined : `${p?.reason ?? '?'}${p?.reason === 'token.revoked' ? ' (not a token this run revoked)' : ''}`;
      if (why) wrong.set(why, (wrong.get(why) ?? 0) + 1);
    }
    if (wrong.size > 0) throw new Error(`${instance.name}'s decision log has refusals that are not the revocations of this run: ${[...wrong].map(([reason, n]) => `${reason} ×${n}`).join(', ')}`);
    notes.push(`${instance.name} ${refused.toLocaleString('en-US')}`);
  }
  return `refusals in the decision logs, all token.revoked for a token this run revoked: ${notes.join(', ')}`;
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

const ms = (value: number) => (Number.isFinite(value) ? value.toFixed(2) : 'never');

function table(rows: Array<[string, Distribution]>): string {
  const header = ['timing (ms)', 'p50', 'p90', 'p99', 'max'];
  const body = rows.map(([label, d]) => [label, ms(d.p50), ms(d.p90), ms(d.p99), ms(d.max)]);
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
  if (process.platform !== 'linux') throw new Error('the benchmark pins nginx with taskset: Linux only');
  if (!existsSync(join(REPO_ROOT, 'src', 'state', 'redis.ts'))) throw new Error('src/state/redis.ts does not exist yet: this checkout has no Redis state driver');

  ensureTool('taskset', ['util-linux']);
  const nginx = ensureTool('nginx', ['nginx-light', 'nginx']);
  const node = findNode24();
  const { cores } = machine();
  const versions = { node: execFileSync(node, ['--version'], { encoding: 'utf8' }).trim(), nginx: versionOf(nginx, ['-v']), redis: '' };

  const tmpDir = mkdtempSync(join(tmpdir(), 'portcullis-revocation-'));
  const running: Instance[] = [];
  let redis: RedisServer | undefined;
  // One cleanup, however many ask for it: on Ctrl-C the handler starts it, the loop then fails
  // (its instances are gone) and `finally` must wait for the same cleanup, not skip it.
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      for (const instance of running) instance.agent.destroy();
      await Promise.all(running.map((instance) => stop(instance.proc)));
      await redis?.stop();
      await stopAll();
      if (settings.keepTmp) log(`revocation: kept ${tmpDir}`);
      else rmSync(tmpDir, { recursive: true, force: true });
    })());
  const removeHandlers = onInterrupt(async () => {
    interrupted = true;
    await cleanup();
  });

  const startedAt = new Date();
  const samples: RevocationSample[] = [];
  const roundTrips: number[] = [];
  let audit = '';
  try {
    // The upstream is nginx as in the main suite, pinned to the last core; it costs little.
    const upstream = await startUpstream(nginx, tmpDir, cores - 1);
    redis = await startRedisServer('redis', join(tmpDir, 'redis'));
    versions.redis = redis.version;
    const issuer = await createIssuer('RS256');
    const jwksFile = join(tmpDir, 'jwks.json');
    writeFileSync(jwksFile, `${JSON.stringify(issuer.jwks, null, 2)}\n`);
    // Only its SHA-256 goes in the configs; the token itself stays in this process.
    const adminToken = randomBytes(32).toString('base64url');
    const adminTokenSha256 = createHash('sha256').update(adminToken, 'utf8').digest('hex');

    log(`revocation: portcullis ${gitCommit(REPO_ROOT) ?? '(no git)'} | node ${versions.node} | ${versions.redis.replace(/ sha=.*$/, '')} | ${versions.nginx} | ${cores} cores, load average ${machine().loadavg.split(' ').slice(0, 3).join(' ')}`);
    for (const name of ['A', 'B', 'C'] as const) {
      const instance = await startInstance(name, join(tmpDir, name), node, upstream, redis, { jwksFile }, adminTokenSha256);
      running.push(instance);
      log(`revocation: instance ${name}: pid ${instance.proc.pid}, listener 127.0.0.1:${instance.port}, ops 127.0.0.1:${instance.opsPort}`);
    }
    const instances = { A: running[0]!, B: running[1]!, C: running[2]! };
    log(`revocation: redis-server pid ${redis.proc.pid} on ${redis.url}; nginx upstream pid ${upstream.proc.pid}`);
    log(`revocation: ${settings.warmup} warm-up + ${settings.revocations} measured revocations through A's admin API, B and C probed in tight loops`);

    const revoked = new Set<string>();
    for (let i = 0; i < settings.warmup; i++) revoked.add((await revokeOnce(instances, issuer, adminToken, settings.timeoutMs, [])).jti);
    const progressEvery = Math.max(1, Math.floor(settings.revocations / 10));
    for (let i = 0; i < settings.revocations; i++) {
      const sample = await revokeOnce(instances, issuer, adminToken, settings.timeoutMs, roundTrips);
      samples.push(sample);
      revoked.add(sample.jti);
      if ((i + 1) % progressEvery === 0 || i + 1 === settings.revocations) {
        log(
          `revocation: ${String(i + 1).padStart(String(settings.revocations).length)}/${settings.revocations}  ` +
            `admin ${ms(sample.adminMs)} ms, refused on B ${ms(sample.refusedAfterMs.B)} ms, on C ${ms(sample.refusedAfterMs.C)} ms, ` +
            `ack ${ms(sample.propagation.elapsedMs)} ms (${sample.propagation.acknowledged}/${sample.propagation.instances})`,
        );
      }
    }
    // Let the last decision records be written (batched, every 25 ms at most).
    await new Promise((resolve) => setTimeout(resolve, 300));
    audit = auditDecisionLogs(running, revoked);
  } finally {
    await cleanup();
    removeHandlers();
  }

  const d = {
    admin: distribution(samples.map((s) => s.adminMs)),
    refusedB: distribution(samples.map((s) => s.refusedAfterMs.B)),
    refusedC: distribution(samples.map((s) => s.refusedAfterMs.C)),
    refusedSlowest: distribution(samples.map((s) => Math.max(s.refusedAfterMs.B, s.refusedAfterMs.C))),
    acknowledged: distribution(samples.map((s) => s.propagation.elapsedMs)),
    probeRoundTrip: distribution(roundTrips),
  };
  const sum = (pick: (s: RevocationSample) => number) => samples.reduce((total, s) => total + pick(s), 0);
  const acceptedAfterReturn = { A: sum((s) => s.acceptedAfterReturn.A), B: sum((s) => s.acceptedAfterReturn.B), C: sum((s) => s.acceptedAfterReturn.C) };
  const acceptedAfterRefusal = { B: sum((s) => s.acceptedAfterRefusal.B), C: sum((s) => s.acceptedAfterRefusal.C) };
  const probes = sum((s) => s.probes.B + s.probes.C);
  const probesAfterReturn = samples.length * (2 * PROBES_AFTER_RETURN + 1);
  const neverRefused = samples.filter((s) => !Number.isFinite(s.refusedAfterMs.B) || !Number.isFinite(s.refusedAfterMs.C)).length;
  const notAllAcknowledged = samples.filter((s) => s.propagation.instances !== 3 || s.propagation.acknowledged !== s.propagation.instances).length;

  const targetMet = d.refusedB.p99 < settings.targetMs && d.refusedC.p99 < settings.targetMs && neverRefused === 0;
  const guaranteeHeld = acceptedAfterReturn.A + acceptedAfterReturn.B + acceptedAfterReturn.C + acceptedAfterRefusal.B + acceptedAfterRefusal.C === 0 && neverRefused === 0;
  const verdicts = [
    `target: time to the first refusal on the other instances, p99 < ${settings.targetMs} ms: B ${ms(d.refusedB.p99)} ms, C ${ms(d.refusedC.p99)} ms` +
      (neverRefused ? `, ${neverRefused} revocation(s) not refused within ${settings.timeoutMs} ms` : '') +
      `: ${targetMet ? 'MET' : 'NOT MET'}`,
    `guarantee: probes accepted after the admin call returned: A ${acceptedAfterReturn.A}, B ${acceptedAfterReturn.B}, C ${acceptedAfterReturn.C} ` +
      `(of ≥ ${probesAfterReturn.toLocaleString('en-US')} sent after it returned); accepted again after a refusal: B ${acceptedAfterRefusal.B}, C ${acceptedAfterRefusal.C}: ${guaranteeHeld ? 'HELD' : 'BROKEN'}`,
    `acknowledgements: ${samples.length - notAllAcknowledged} of ${samples.length} revocations acknowledged by all 3 instances before the admin call returned` +
      (notAllAcknowledged ? ` (${notAllAcknowledged} NOT: see the JSON record)` : ''),
  ];

  log('');
  log(
    table([
      ['admin call on A (POST /admin/revocations)', d.admin],
      ['first refusal on B', d.refusedB],
      ['first refusal on C', d.refusedC],
      ['first refusal, slower of B and C', d.refusedSlowest],
      ['acknowledged by all (reported elapsed_ms)', d.acknowledged],
    ]),
  );
  log('');
  log(`  ${samples.length} revocations (+${settings.warmup} warm-up), ${probes.toLocaleString('en-US')} probes; probe round trip p50 ${ms(d.probeRoundTrip.p50)} ms, p99 ${ms(d.probeRoundTrip.p99)} ms (the resolution of the refusal times)`);
  log(`  times from the start of the admin call on A; percentiles by nearest rank`);
  log(`  ${audit}`);
  log('');
  for (const line of verdicts) log(line);

  const resultsDir = join(BENCH_DIR, 'results');
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `revocation-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  const record = {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    commit: gitCommit(REPO_ROOT),
    machine: machine(),
    versions,
    settings: { ...settings, probesAfterReturn: PROBES_AFTER_RETURN },
    summary: { ...d, probes, acceptedAfterReturn, acceptedAfterRefusal, neverRefused, notAllAcknowledged, targetMet, guaranteeHeld },
    verdicts,
    decisionLogs: audit,
    samples,
  };
  // Infinity (never refused) is not JSON: written as null.
  writeFileSync(file, `${JSON.stringify(record, (_key, value: unknown) => (typeof value === 'number' && !Number.isFinite(value) ? null : value), 2)}\n`);
  log(`\nrevocation: results written to ${file}`);
  return targetMet && guaranteeHeld && notAllAcknowledged === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    // After Ctrl-C the interrupt handler exits (130/143) once everything is stopped; the loop's
    // failure against the stopped instances is not news.
    if (interrupted) return;
    process.stderr.write(`revocation: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
