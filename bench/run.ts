/**
 * Portcullis benchmark: one command, one run.
 *
 *   cd bench && npm install && npm run bench            # 3 rounds × 10 s per target
 *   npm run bench -- --quick                            # smoke run: 1 round × 2 s
 *
 * The load generator (wrk) is pinned to one core, every server (targets and the nginx upstream)
 * to the other. Targets are started once, then measured in interleaved rounds; each measured
 * run follows a warm-up run. See README.md for how to read the output.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import type { BenchContext, RunningTarget, Target } from './lib/target.ts';
import type { Row, Sample } from './lib/report.ts';
import { coresTable, goalsOf, resultsTable, summarise, verdicts } from './lib/report.ts';
import { clkTck, httpGet, onInterrupt, stopAll } from './lib/procs.ts';
import { measure, waitForQuiet } from './lib/measure.ts';
import { measureTls } from './lib/measure-tls.ts';
import { tlsGet } from './lib/tls-load.ts';
import { ensureTool, gitCommit, machine, versionOf } from './lib/system.ts';
import { SUITES } from './targets/index.ts';
import type { Suite } from './targets/index.ts';
import { haproxyVersion } from './targets/haproxy.ts';
import { startUpstream } from './targets/upstream.ts';
import { findNode24 } from './lib/options.ts';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = dirname(BENCH_DIR);

const USAGE = `Usage: node run.ts [options]      (npm run bench -- [options])

Measures req/s, p50/p99 latency, CPU µs per request and RSS of each target, with wrk pinned
to one core and the targets + nginx upstream pinned to another. The TLS / mTLS rows are driven
by a Node TLS load generator (lib/tls-load.ts) on the same core with the same --connections:
wrk cannot present a client certificate.

Options:
  --suite NAME          default: the per-issue rows (ratios to fastify-proxy);
                        peers: issue 8, Portcullis against HAProxy + jwt_verify and fastify +
                        fast-jwt (ratios to haproxy-jwt-rs256; npm run bench:peers)
  --rounds N            measured rounds per target, interleaved (default 3)
  --duration SECONDS    length of each measured run (default 10)
  --warmup SECONDS      unmeasured run before each measured one (default 3; 0 to skip)
  --connections N       wrk connections (default 50)
  --threads N           wrk threads (default 1; the TLS load generator is one thread)
  --quick               smoke run: 1 round, 2 s, 1 s warm-up
  --targets A,B         only these targets of the suite (plus its baseline and the rows they
                        are compared with); default all of the suite's
  --load-cpu N          core for wrk (default 0)
  --server-cpu N        core for the targets and the upstream (default 1)
  --quiet-wait SECONDS  before each measured run, wait up to this long for both cores to be
                        idle (≤ 15 % busy) if other processes are using them (default 60; 0: off)
  --retries N           measure a run again (up to N times) when other processes took > 10 % of
                        a pinned core during it; the least noisy is kept (default 2; --quick 0)
  --keep-tmp            keep the temp dir (configs and logs) for inspection
  --list                print the suite's targets and exit
  -h, --help            this text

Targets (default suite): ${SUITES.default.selectable.map((t) => t.name).join(', ')}
Targets (peers suite): ${SUITES.peers.targets.map((t) => t.name).join(', ')}
`;

interface Settings {
  suite: keyof typeof SUITES;
  rounds: number;
  duration: number;
  warmup: number;
  connections: number;
  threads: number;
  loadCpu: number;
  serverCpu: number;
  targets: readonly Target[];
  keepTmp: boolean;
  quietWait: number;
  retries: number;
}

/** A core busier than this (in %) before a run, with nothing of ours loaded, counts as busy. */
const QUIET_THRESHOLD = 15;
/** A measured run in which others took more than this (in %) of a pinned core is measured again. */
const NOISE_LIMIT = 10;

function seconds(text: string, flag: string): number {
  const match = /^(\d+)s?$/.exec(text);
  if (!match) throw new Error(`${flag} expects whole seconds, e.g. 10 or 10s (got "${text}")`);
  return Number(match[1]);
}

function count(text: string, flag: string, min: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min) throw new Error(`${flag} expects an integer ≥ ${min} (got "${text}")`);
  return value;
}

function parseSettings(argv: string[]): Settings | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      rounds: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string', default: '50' },
      threads: { type: 'string', default: '1' },
      quick: { type: 'boolean', default: false },
      suite: { type: 'string', default: 'default' },
      targets: { type: 'string' },
      'load-cpu': { type: 'string', default: '0' },
      'server-cpu': { type: 'string', default: '1' },
      'keep-tmp': { type: 'boolean', default: false },
      'quiet-wait': { type: 'string', default: '60' },
      retries: { type: 'string' },
      list: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return undefined;
  }
  if (!Object.hasOwn(SUITES, values.suite)) throw new Error(`unknown suite "${values.suite}"; known: ${Object.keys(SUITES).join(', ')}`);
  const suiteName = values.suite as keyof typeof SUITES;
  const suite: Suite = SUITES[suiteName];
  if (values.list) {
    for (const t of suite.selectable) {
      const extra = suite.targets.includes(t) ? '' : '(with --targets only) ';
      process.stdout.write(`${t.name.padEnd(28)} ${t.baseline ? '(baseline) ' : ''}${extra}${t.description}\n`);
    }
    return undefined;
  }
  let targets: readonly Target[] = suite.targets;
  if (values.targets) {
    const known = suite.selectable;
    const wanted = values.targets.split(',').map((name) => name.trim()).filter(Boolean);
    for (const name of wanted) if (!known.some((t) => t.name === name)) throw new Error(`unknown target "${name}" in the ${suiteName} suite; known: ${known.map((t) => t.name).join(', ')}`);
    // A row's goal or comparison needs the other row in the same run.
    // Transitively: a row's comparison may itself be compared with another.
    for (let i = 0; i < wanted.length; i++) {
      const t = known.find((candidate) => candidate.name === wanted[i]);
      const others = [...(t ? goalsOf(t).map((goal) => goal.against) : []), t?.compare];
      for (const other of others) if (other !== undefined && !wanted.includes(other)) wanted.push(other);
    }
    targets = known.filter((t) => t.baseline || wanted.includes(t.name));
  }
  const settings: Settings = {
    suite: suiteName,
    rounds: count(values.rounds ?? (values.quick ? '1' : '3'), '--rounds', 1),
    duration: seconds(values.duration ?? (values.quick ? '2' : '10'), '--duration'),
    warmup: seconds(values.warmup ?? (values.quick ? '1' : '3'), '--warmup'),
    connections: count(values.connections, '--connections', 1),
    threads: count(values.threads, '--threads', 1),
    loadCpu: count(values['load-cpu'], '--load-cpu', 0),
    serverCpu: count(values['server-cpu'], '--server-cpu', 0),
    targets,
    keepTmp: values['keep-tmp'],
    quietWait: seconds(values['quiet-wait'], '--quiet-wait'),
    retries: count(values.retries ?? (values.quick ? '0' : '2'), '--retries', 0),
  };
  if (settings.duration < 1) throw new Error('--duration must be at least 1 second');
  if (settings.threads > settings.connections) throw new Error('--threads cannot exceed --connections');
  if (settings.loadCpu === settings.serverCpu) throw new Error('--load-cpu and --server-cpu must be different cores');
  return settings;
}


/**
 * The longest the run can take, in seconds: every measured run retried as often as allowed,
 * each after the longest quiet-wait, plus start-up. Tokens a target mints must outlive it.
 */
function maxRunSeconds(settings: Pick<Settings, 'targets' | 'rounds' | 'retries' | 'quietWait' | 'warmup' | 'duration'>): number {
  // A quiet-wait looks in 1-second steps; wrk itself takes up to a second or two beyond -d.
  const perRun = settings.quietWait + 1 + settings.warmup + settings.duration + 4;
  return settings.targets.length * settings.rounds * (settings.retries + 1) * perRun + 600;
}

/** Set on SIGINT/SIGTERM: the run is being torn down, so a failing wrk is not news. */
let interrupted = false;

const log = (line: string) => process.stdout.write(`${line}\n`);

/** Share (%) of a pinned core that other processes or the hypervisor took during a run. */
const noise = (sample: Sample) => Math.max(sample.loadCoreOther, sample.serverCoreOther, sample.steal);

function progressLine(target: string, sample: Sample, rounds: number): string {
  const errors = sample.non2xx3xx + Object.values(sample.socketErrors).reduce((a, b) => a + b, 0);
  return (
    `round ${sample.round}/${rounds}  ${target.padEnd(26)} ${Math.round(sample.requestsPerSecond).toString().padStart(7)} req/s  ` +
    `p50 ${sample.latencyMs['50']!.toFixed(2)} ms  p99 ${sample.latencyMs['99']!.toFixed(2)} ms  ` +
    `${(sample.cpuMicros / Math.max(1, sample.requests)).toFixed(1)} CPU µs/req  ` +
    `cores ${sample.loadCoreBusy.toFixed(0)}%/${sample.serverCoreBusy.toFixed(0)}% (others ${sample.loadCoreOther.toFixed(0)}%/${sample.serverCoreOther.toFixed(0)}%)` +
    (errors ? `  ${errors} ERRORS (non-2xx ${sample.non2xx3xx}, socket ${JSON.stringify(sample.socketErrors)})` : '')
  );
}

async function main(argv: string[]): Promise<number> {
  const settings = parseSettings(argv);
  if (!settings) return 0;
  if (process.platform !== 'linux') throw new Error('the benchmark reads /proc and pins with taskset: Linux only');
  const { cores } = machine();
  if (cores < 2 || Math.max(settings.loadCpu, settings.serverCpu) >= cores) {
    throw new Error(`needs cores ${settings.loadCpu} and ${settings.serverCpu}; this machine has ${cores}`);
  }

  ensureTool('taskset', ['util-linux']);
  const wrk = ensureTool('wrk', ['wrk']);
  const nginx = ensureTool('nginx', ['nginx-light', 'nginx']);
  const node = findNode24();
  const versions: Record<string, string> = {
    node: execFileSync(node, ['--version'], { encoding: 'utf8' }).trim(),
    wrk: versionOf(wrk, ['-v']),
    nginx: versionOf(nginx, ['-v']),
  };
  // Installs haproxy with apt-get when missing, as for nginx and wrk.
  if (settings.targets.some((t) => t.name.startsWith('haproxy-'))) versions.haproxy = haproxyVersion();
  log(
    `bench: portcullis ${gitCommit(REPO_ROOT) ?? '(no git)'} | ${versions.wrk!.replace(/ \[.*$/, '')} | ${versions.nginx} | ` +
      `${versions.haproxy ? `${versions.haproxy} | ` : ''}node ${versions.node} (${node})`,
  );
  if (settings.suite !== 'default') log(`bench: suite ${settings.suite}: ${SUITES[settings.suite].description}`);
  log(
    `bench: wrk -t${settings.threads} -c${settings.connections} on core ${settings.loadCpu}; targets + upstream on core ${settings.serverCpu}; ` +
      `${settings.rounds} round(s) × ${settings.duration} s measured, ${settings.warmup} s warm-up before each`,
  );

  const tmpDir = mkdtempSync(join(tmpdir(), 'portcullis-bench-'));
  const abort = new AbortController();
  const running = new Map<string, RunningTarget>();
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    abort.abort();
    for (const target of running.values()) await target.stop();
    await stopAll();
    if (settings.keepTmp) log(`bench: kept ${tmpDir}`);
    else rmSync(tmpDir, { recursive: true, force: true });
  };
  const removeHandlers = onInterrupt(async () => {
    interrupted = true;
    await cleanup();
  });

  const rows: Row[] = settings.targets.map((t) => ({
    target: t.name,
    description: t.description,
    status: 'ok',
    baseline: t.baseline === true,
    ...(t.goal ? { goal: t.goal } : {}),
    ...(t.compare ? { compare: t.compare } : {}),
    samples: [],
  }));
  const startedAt = new Date();
  let failures = 0;
  try {
    const upstream = await startUpstream(nginx, tmpDir, settings.serverCpu);
    const ctx: BenchContext = {
      tmpDir,
      repoRoot: REPO_ROOT,
      benchDir: BENCH_DIR,
      node,
      serverCpu: settings.serverCpu,
      upstream,
      path: '/bench/hello',
      host: 'localhost',
      maxRunSeconds: maxRunSeconds(settings),
      wrkThreads: settings.threads,
    };
    const headersOf = (target: RunningTarget): Record<string, string> => ({ Host: ctx.host, ...target.headers });
    log(`bench: upstream nginx pid ${upstream.proc.pid} on ${upstream.origin}`);

    for (const [i, target] of settings.targets.entries()) {
      const row = rows[i]!;
      const reason = target.unavailable?.(ctx);
      if (reason) {
        row.status = 'skipped';
        row.reason = reason;
        log(`bench: ${target.name}: skipped: ${reason}`);
        continue;
      }
      try {
        const started = await target.start(ctx);
        running.set(target.name, started);
        row.cpuOf = started.cpuOf;
        row.loadGenerator = started.tlsLoad ? 'tls-load' : 'wrk';
        const checks = started.checkRequests ?? [{}];
        for (const extra of checks) {
          const headers = { ...headersOf(started), ...extra };
          const check = started.tlsLoad ? await tlsGet(started.url, headers, started.tlsLoad) : await httpGet(started.url, headers);
          if (check.status !== 200 || check.body !== upstream.body) {
            // The decision record is written when the exchange is over: give it a moment.
            if (check.status !== 200 && started.diagnose) await new Promise((resolve) => setTimeout(resolve, 300));
            const why = check.status !== 200 ? started.diagnose?.() : undefined;
            throw new Error(`GET ${started.url} answered ${check.status} ${JSON.stringify(check.body.slice(0, 200))}, not 200 with the upstream body${why ? `; ${why}` : ''}`);
          }
        }
        const requests = checks.length === 1 ? '' : ` (${checks.length} requests)`;
        log(`bench: ${target.name}: pid ${started.measured.pid}, ${started.url} answers 200 with the upstream body${requests}`);
      } catch (error) {
        row.status = 'failed';
        row.reason = (error as Error).message;
        failures++;
        log(`bench: ${target.name}: FAILED to start: ${row.reason}`);
        await running.get(target.name)?.stop();
        running.delete(target.name);
      }
    }

    const active = rows.filter((row) => running.has(row.target));
    if (active.length === 0) throw new Error('no target could be started');
    const cores = { load: settings.loadCpu, server: settings.serverCpu };
    const fail = async (row: Row, reason: string) => {
      row.status = 'failed';
      row.reason = reason;
      failures++;
      log(`bench: ${row.target}: FAILED: ${reason}`);
      await running.get(row.target)?.stop();
      running.delete(row.target);
    };
    for (let round = 1; round <= settings.rounds; round++) {
      // Rotate the order every round so no target always runs first or last.
      const order = active.map((_, i) => active[(i + round - 1) % active.length]!);
      for (const row of order) {
        const target = running.get(row.target);
        if (!target) continue;
        if (target.measured.hasExited()) {
          await fail(row, `process ${target.measured.pid} exited during the run`);
          continue;
        }
        // A measured run during which other processes (or the hypervisor) took a noticeable
        // share of a pinned core is measured again, up to --retries times; the least noisy is kept.
        let sample: Sample | undefined;
        for (let attempt = 0; attempt <= settings.retries; attempt++) {
          if (settings.quietWait > 0) {
            const quiet = await waitForQuiet(cores, settings.quietWait, QUIET_THRESHOLD, abort.signal);
            const busy = Object.entries(quiet.busy).map(([core, value]) => `core ${core} ${value.toFixed(0)}%`).join(', ');
            if (!quiet.quiet) log(`bench: the machine is busy with other processes (${busy}) after waiting ${quiet.waitedSeconds.toFixed(0)} s; measuring anyway`);
            else if (quiet.waitedSeconds > 1.5) log(`bench: waited ${quiet.waitedSeconds.toFixed(0)} s for other processes to quiet down`);
          }
          const timing = { round, warmup: settings.warmup, duration: settings.duration };
          const next = target.tlsLoad
            ? await measureTls(
                target,
                upstream,
                { node: ctx.node, url: target.url, headers: headersOf(target), tls: target.tlsLoad, cpu: settings.loadCpu, connections: settings.connections },
                timing,
                cores,
                abort.signal,
              )
            : await measure(
                target,
                upstream,
                {
                  url: target.url,
                  headers: headersOf(target),
                  ...(target.wrkScript ? { script: target.wrkScript } : {}),
                  cpu: settings.loadCpu,
                  threads: settings.threads,
                  connections: settings.connections,
                },
                timing,
                cores,
                abort.signal,
              );
          next.attempt = attempt + 1;
          log(progressLine(row.target, next, settings.rounds));
          if ('firstSocketError' in next) log(`bench: ${row.target}: first socket error: ${next.firstSocketError}`);
          if (!sample || noise(next) < noise(sample)) sample = next;
          if (noise(sample) <= NOISE_LIMIT) break;
          if (attempt < settings.retries) log(`bench: ${row.target}: other processes took ${noise(next).toFixed(0)}% of a pinned core; measuring again`);
        }
        row.samples.push(sample!);
        // A refused request is not a measurement of the path the row names: fail the row.
        const refused = sample!.non2xx3xx + (sample!.warmupNon2xx3xx ?? 0);
        if (refused > 0) {
          const why = target.diagnose?.();
          await fail(row, `${refused} non-2xx/3xx responses in round ${round} (${sample!.non2xx3xx} measured, ${sample!.warmupNon2xx3xx ?? 0} warm-up)${why ? `; ${why}` : ''}`);
          continue;
        }
        if (target.afterRun) {
          try {
            log(`bench: ${row.target}: ${await target.afterRun(sample!)}`);
          } catch (error) {
            await fail(row, (error as Error).message);
          }
        }
      }
    }
  } finally {
    await cleanup();
    removeHandlers();
  }

  summarise(rows);
  log('');
  log(resultsTable(rows));
  log('');
  log(coresTable(rows, settings.loadCpu, settings.serverCpu));
  log('');
  for (const row of rows) {
    const note = row.reason ? ` — ${row.status}: ${row.reason}` : '';
    log(`  ${row.target}: ${row.description}${note}`);
  }
  if (rows.some((row) => (row.summary?.errors ?? 0) > 0)) log('  (!) socket errors (connect, read, write or timeout) in that row: it is not a valid measurement');
  const noisy = rows.filter((row) => row.summary && Math.max(row.summary.serverCoreOther, row.summary.loadCoreOther, row.summary.steal) > 5);
  if (noisy.length) {
    log(`  note: other processes or the hypervisor took > 5% of a pinned core during ${noisy.map((r) => r.target).join(', ')}: those figures are noisy; run again on a quiet machine`);
  }
  log('');
  for (const line of verdicts(rows)) log(line);
  const failed = rows.filter((row) => row.status === 'failed');
  if (failed.length) {
    log('');
    for (const row of failed) log(`bench: FAILED: ${row.target}: ${row.reason}`);
  }

  const resultsDir = join(BENCH_DIR, 'results');
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  const record = {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    commit: gitCommit(REPO_ROOT),
    machine: { ...machine(), clkTck: clkTck() },
    versions,
    settings: { ...settings, targets: settings.targets.map((t) => t.name) },
    rows,
    verdicts: verdicts(rows),
  };
  writeFileSync(file, `${JSON.stringify(record, null, 2)}\n`);
  log(`\nbench: results written to ${file}`);
  return failures > 0 ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  async (error: unknown) => {
    if (interrupted) return;
    process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n`);
    await stopAll();
    process.exitCode = 1;
  },
);
