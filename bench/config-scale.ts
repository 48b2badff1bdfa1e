/**
 * Config scale (issue 8): what a large configuration costs — 10,000 partners and 2,000 routes —
 * against a small one (10 partners, 10 routes).
 *
 *   cd bench && npm run bench:config-scale          # ≈ 2–4 min
 *   npm run bench:config-scale -- --quick           # 1,000 partners, 200 routes, short runs
 *
 * 1. Both configurations are generated (`lib/scale-config.ts`) in a private temp dir, with an
 *    ES256 key pair whose public half is the issuer's `jwks_file`; `portcullis validate -c` must
 *    exit 0 on each (its wall time is recorded).
 * 2. Load time, in this process with the project's own functions, median of N: the phases of
 *    `loadConfig` (`src/config/load.ts`) one by one — read + YAML parse + interpolation, schema,
 *    semantic validation, `compileSnapshot` — and `loadConfig` itself, which is what `serve` and
 *    every reload pay.
 * 3. Route lookup: `Router.match` (what the routing stage calls) on the compiled snapshots, for a
 *    route early in the table, one late, one with path parameters and a miss (404); ns per
 *    lookup, median of batches interleaved between the two tables.
 * 4. Memory: `portcullis serve -c … --no-watch` on the project's Node 24, pinned to core 1 with
 *    the nginx upstream (`targets/upstream.ts`); VmRSS once ready and after a wrk run
 *    (`-t1 -c50`, core 0) on `GET /api-000/orders/{id}` with the load partner's token — the full
 *    authorization path (token, partner, grant, scope, one CEL rule, proxy, audit).
 * 5. Reload under load (the large configuration): wrk for ~20 s while every ~2 s the file is
 *    replaced (atomically) by the next generation — a partner's scopes and a route toggled — and
 *    the gateway gets SIGHUP (by PID); each reload is timed from the signal to its
 *    `config.reloaded` log line. Once, the file is invalid: it must be refused
 *    (`config.reload_refused`) while the previous configuration keeps serving. wrk must report no
 *    non-2xx/3xx response and no socket error.
 *
 * Targets (MET / NOT MET): load + validate + compile < 2 s, RSS < 150 MB, no failed request.
 * Every process it starts is stopped by PID (also on Ctrl-C). Results: `results/config-scale-<ts>.json`.
 */
import { randomUUID } from 'node:crypto';
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import { LineCounter, parseDocument } from 'yaml';
import { compileSnapshot } from '../src/config/compile.ts';
import { ReferencedFiles } from '../src/config/files.ts';
import { interpolateDocument } from '../src/config/interpolate.ts';
import { loadConfig } from '../src/config/load.ts';
import { SourceLocator } from '../src/config/positions.ts';
import { config as configSchema } from '../src/config/schema.ts';
import type { Snapshot } from '../src/config/snapshot.ts';
import { validateConfig } from '../src/config/validate.ts';
import type { Proc } from './lib/procs.ts';
import { freePort, httpGet, onInterrupt, rssBytes, spawnPinned, stop, stopAll, waitForPort } from './lib/procs.ts';
import { median } from './lib/report.ts';
import type { ScaleConfig, ScaleConfigOptions } from './lib/scale-config.ts';
import { ISSUER, LOAD_CLIENT, scaleConfig } from './lib/scale-config.ts';
import { ensureTool, machine, versionOf } from './lib/system.ts';
import type { Upstream } from './lib/target.ts';
import type { WrkResult } from './lib/wrk.ts';
import { parseDurationMs, runWrk } from './lib/wrk.ts';
import { startUpstream } from './targets/upstream.ts';
import { findNode24, integerOption } from './lib/options.ts';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = dirname(BENCH_DIR);
const CLI = join(REPO_ROOT, 'src', 'cli', 'main.ts');
const HOST = 'localhost';
const LOAD_CPU = 0;
const SERVER_CPU = 1;
const TOKEN_LIFETIME_SECONDS = 3600;
/** Longest a gateway may take to start or a reload to finish before the run gives up on it. */
const START_TIMEOUT_MS = 120_000;
const RELOAD_TIMEOUT_MS = 60_000;

const USAGE = `Usage: node config-scale.ts [options]      (npm run bench:config-scale -- [options])

Config scale: load time (parse, validate, compile), memory, route lookup cost and reload under
load of a large configuration (default 10,000 partners, 2,000 routes) against a small one
(10 partners, 10 routes).

Options:
  --quick             smoke run: 1,000 partners, 200 routes, 3 repetitions, 5 s loads, 8 s reload run
  --partners N        partners of the large configuration (default 10000)
  --apis N            APIs of the large configuration, 10 routes each (default 200)
  --repeat N          in-process loads per configuration; the median is reported (default 5)
  --load-seconds S    wrk run per configuration for the memory figure (default 10)
  --reload-seconds S  wrk run during which the large configuration is reloaded (default 20)
  --reload-every MS   time between two reload signals (default 2000)
  --keep-tmp          keep the temp dir (configs, gateway logs) for inspection
  -h, --help          this text
`;

interface Settings {
  partners: number;
  apis: number;
  repeat: number;
  loadSeconds: number;
  reloadSeconds: number;
  reloadEveryMs: number;
  lookupBatches: number;
  lookupIterations: number;
  quick: boolean;
  keepTmp: boolean;
}

const TARGETS = { loadMs: 2000, rssMb: 150 } as const;


function parseSettings(argv: string[]): Settings | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      partners: { type: 'string' },
      apis: { type: 'string' },
      repeat: { type: 'string' },
      'load-seconds': { type: 'string' },
      'reload-seconds': { type: 'string' },
      'reload-every': { type: 'string', default: '2000' },
      'keep-tmp': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return undefined;
  }
  const quick = values.quick;
  const settings: Settings = {
    partners: integerOption(values.partners ?? (quick ? '1000' : '10000'), '--partners', 1),
    apis: integerOption(values.apis ?? (quick ? '20' : '200'), '--apis', 1),
    repeat: integerOption(values.repeat ?? (quick ? '3' : '5'), '--repeat', 1),
    loadSeconds: integerOption(values['load-seconds'] ?? (quick ? '5' : '10'), '--load-seconds', 1),
    reloadSeconds: integerOption(values['reload-seconds'] ?? (quick ? '8' : '20'), '--reload-seconds', 4),
    reloadEveryMs: integerOption(values['reload-every'], '--reload-every', 200),
    lookupBatches: quick ? 5 : 9,
    lookupIterations: quick ? 100_000 : 300_000,
    quick,
    keepTmp: values['keep-tmp'],
  };
  return settings;
}


const log = (line: string) => process.stdout.write(`${line}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const mb = (bytes: number) => bytes / (1024 * 1024);
const fixed = (value: number, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : 'n/a');

let interrupted = false;

// ---------------------------------------------------------------------------------------------
// The two configurations
// ---------------------------------------------------------------------------------------------

interface Variant {
  name: 'small' | 'large';
  dir: string;
  file: string;
  ports: { listener: number; ops: number };
  /** Generator options, without `generation` / `invalid`. */
  options: ScaleConfigOptions;
  generated: ScaleConfig;
  bytes: number;
}

async function prepareVariant(name: Variant['name'], tmpDir: string, partners: number, apis: number, upstream: Upstream, jwksFile: string): Promise<Variant> {
  const dir = join(tmpDir, name);
  const configDir = join(dir, 'config');
  const stateDir = join(dir, 'state');
  mkdirSync(configDir, { recursive: true });
  mkdirSync(stateDir, { recursive: true });
  const ports = { listener: await freePort(), ops: await freePort() };
  const options: ScaleConfigOptions = {
    partners,
    apis,
    upstreamOrigin: upstream.origin,
    listenerPort: ports.listener,
    opsPort: ports.ops,
    host: HOST,
    dataDir: join(stateDir, 'data'),
    decisionLog: join(stateDir, 'decisions.jsonl'),
    jwksFile,
  };
  const generated = scaleConfig(options);
  const file = join(configDir, 'portcullis.yaml');
  writeFileSync(file, generated.yaml);
  return { name, dir, file, ports, options, generated, bytes: Buffer.byteLength(generated.yaml) };
}

/** `portcullis validate -c FILE`, as an operator runs it: exit status, wall time, output. */
function validateCli(node: string, file: string): Promise<{ code: number | null; ms: number; output: string }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(node, [CLI, 'validate', '-c', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, ms: performance.now() - started, output: output.trim() }));
  });
}

// ---------------------------------------------------------------------------------------------
// Load time, in process
// ---------------------------------------------------------------------------------------------

interface PhaseTimes {
  /** read + YAML parse (with positions) + `${VAR}` interpolation + toJS */
  parseMs: number;
  /** zod schema */
  schemaMs: number;
  /** `validateConfig`: references, duplicates, route conflicts, referenced files */
  validateMs: number;
  /** `compileSnapshot` */
  compileMs: number;
}

/**
 * The steps of `loadConfig` one by one, with the same calls and options (`src/config/load.ts`),
 * so each can be timed. Throws if the file does not load cleanly: a timing of a refused file
 * would measure the wrong thing.
 */
async function loadInPhases(path: string): Promise<PhaseTimes> {
  const t0 = performance.now();
  const text = await readFile(path, 'utf8');
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const locator = new SourceLocator(doc, lines);
  if (doc.errors.length > 0 || doc.warnings.length > 0) throw new Error(`${path}: YAML problems: ${[...doc.errors, ...doc.warnings][0]!.message}`);
  const interpolation = interpolateDocument(doc, process.env);
  const data: unknown = doc.toJS({ maxAliasCount: 100 });
  const t1 = performance.now();
  const parsed = configSchema.safeParse(data);
  const t2 = performance.now();
  const files = new ReferencedFiles(dirname(path));
  const issues = await validateConfig(data, { files, lineOf: (at) => locator.valueAt(at).line });
  const t3 = performance.now();
  if (!parsed.success || issues.length > 0 || interpolation.issues.length > 0) throw new Error(`${path} does not load cleanly (schema ok: ${parsed.success}, ${issues.length} semantic issue(s))`);
  compileSnapshot(parsed.data, { sourcePath: path, files, where: (at) => `${path}:${locator.valueAt(at).line}` });
  const t4 = performance.now();
  return { parseMs: t1 - t0, schemaMs: t2 - t1, validateMs: t3 - t2, compileMs: t4 - t3 };
}

interface LoadTimes {
  runs: Array<PhaseTimes & { loadConfigMs: number }>;
  median: PhaseTimes & { loadConfigMs: number };
  snapshot: Snapshot;
}

async function timeLoads(variant: Variant, repeat: number): Promise<LoadTimes> {
  const runs: LoadTimes['runs'] = [];
  let snapshot: Snapshot | undefined;
  for (let i = 0; i < repeat; i++) {
    const phases = await loadInPhases(variant.file);
    // loadConfig itself on every other run only: it is the sum of the phases, and at 10,000
    // partners each call takes seconds.
    let loadConfigMs = Number.NaN;
    if (i % 2 === 0) {
      const started = performance.now();
      const loaded = await loadConfig(variant.file);
      loadConfigMs = performance.now() - started;
      if (!loaded.ok) throw new Error(`${variant.file}: loadConfig refused it: ${loaded.issues[0]?.message}`);
      snapshot = loaded.snapshot;
    }
    runs.push({ ...phases, loadConfigMs });
  }
  const pick = (key: keyof LoadTimes['median']) => median(runs.map((run) => run[key]).filter((value) => Number.isFinite(value)));
  return {
    runs,
    median: { parseMs: pick('parseMs'), schemaMs: pick('schemaMs'), validateMs: pick('validateMs'), compileMs: pick('compileMs'), loadConfigMs: pick('loadConfigMs') },
    snapshot: snapshot!,
  };
}

// ---------------------------------------------------------------------------------------------
// Route lookup
// ---------------------------------------------------------------------------------------------

type LookupName = ScaleConfig['lookups'][number]['name'];

/**
 * ns per `Router.match` for each lookup of each table: batches of `iterations` calls, the tables
 * and lookups interleaved batch by batch (so a noisy moment hits all of them), median per pair.
 * Each lookup is first checked to find exactly the route it names (or none, for the miss).
 */
function timeLookups(tables: Array<{ variant: Variant; snapshot: Snapshot }>, batches: number, iterations: number): Map<string, Map<LookupName, number>> {
  const cases = tables.flatMap(({ variant, snapshot }) => {
    const router = snapshot.routers.get('partner');
    if (!router) throw new Error(`${variant.name}: no router for the partner zone`);
    return variant.generated.lookups.map((lookup) => {
      const match = router.match(HOST, lookup.method, lookup.path);
      const found = match.kind === 'matched' ? match.route.id : null;
      if (found !== lookup.routeId || (lookup.routeId === null && match.kind !== 'not_found')) {
        throw new Error(`${variant.name}: ${lookup.method} ${lookup.path} matched ${found ?? match.kind}, expected ${lookup.routeId ?? 'not_found'}`);
      }
      return { variant: variant.name, lookup, router, samples: [] as number[] };
    });
  });
  let sink = 0;
  const batch = (entry: (typeof cases)[number], count: number): number => {
    const { router, lookup } = entry;
    const started = process.hrtime.bigint();
    for (let i = 0; i < count; i++) {
      // Read the result, so the call cannot be optimised away.
      if (router.match(HOST, lookup.method, lookup.path).kind === 'matched') sink++;
    }
    return Number(process.hrtime.bigint() - started) / count;
  };
  for (const entry of cases) batch(entry, Math.min(iterations, 50_000)); // warm-up: JIT
  for (let b = 0; b < batches; b++) for (const entry of cases) entry.samples.push(batch(entry, iterations));
  if (sink < 0) log(String(sink));
  const result = new Map<string, Map<LookupName, number>>();
  for (const entry of cases) {
    let byLookup = result.get(entry.variant);
    if (!byLookup) result.set(entry.variant, (byLookup = new Map()));
    byLookup.set(entry.lookup.name, median(entry.samples));
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// The gateway
// ---------------------------------------------------------------------------------------------

interface LogEntry {
  event?: string;
  [key: string]: unknown;
}

/** The gateway's application log (JSON lines), as it arrives, with the arrival time of each line. */
class LogLines {
  readonly entries: Array<{ entry: LogEntry; at: number }> = [];
  #waiters: Array<() => void> = [];

  constructor(proc: Proc) {
    for (const stream of [proc.child.stdout, proc.child.stderr]) {
      let pending = '';
      stream?.setEncoding('utf8').on('data', (chunk: string) => {
        const at = performance.now();
        pending += chunk;
        let newline: number;
        while ((newline = pending.indexOf('\n')) !== -1) {
          const line = pending.slice(0, newline);
          pending = pending.slice(newline + 1);
          if (!line.startsWith('{')) continue;
          try {
            this.entries.push({ entry: JSON.parse(line) as LogEntry, at });
          } catch {
            // not a log line
          }
        }
        for (const wake of this.#waiters.splice(0)) wake();
      });
    }
  }

  /** The first entry at index ≥ `from` whose event is one of `events`; rejects after `timeoutMs`. */
  async waitFor(events: readonly string[], from: number, timeoutMs: number, proc: Proc): Promise<{ entry: LogEntry; at: number; index: number }> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      for (let i = from; i < this.entries.length; i++) {
        const { entry, at } = this.entries[i]!;
        if (entry.event !== undefined && events.includes(entry.event)) return { entry, at, index: i };
      }
      if (proc.hasExited()) throw new Error(`${proc.name} (pid ${proc.pid}) exited while waiting for ${events.join(' / ')}`);
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`no ${events.join(' / ')} log line from ${proc.name} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 200));
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}

interface Gateway {
  proc: Proc;
  logs: LogLines;
  logFile: string;
  url: string;
  startMs: number;
}

async function startGateway(node: string, variant: Variant): Promise<Gateway> {
  const logFile = join(variant.dir, 'gateway.log');
  const started = performance.now();
  // --no-watch: reloads happen on SIGHUP only, so each one is the run's own and timed from its signal.
  const proc = spawnPinned(`portcullis-${variant.name}`, node, [CLI, 'serve', '-c', variant.file, '--no-watch'], { cpu: SERVER_CPU, cwd: variant.dir, logFile });
  const logs = new LogLines(proc);
  try {
    await waitForPort(proc, variant.ports.listener, START_TIMEOUT_MS);
    const readyz = `http://127.0.0.1:${variant.ports.ops}/readyz`;
    const deadline = Date.now() + 10_000;
    while ((await httpGet(readyz, {}).catch(() => ({ status: 0 }))).status !== 200) {
      if (Date.now() > deadline) throw new Error(`${readyz} did not answer 200 within 10 s`);
      await sleep(50);
    }
  } catch (error) {
    await stop(proc);
    throw new Error(`${(error as Error).message}; see ${logFile}:\n${tail(logFile, 10)}`);
  }
  return { proc, logs, logFile, url: `http://127.0.0.1:${variant.ports.listener}`, startMs: performance.now() - started };
}

function tail(file: string, lines: number): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** The load request must get the upstream's body, and the same request without a token a 401. */
async function checkServes(gateway: Gateway, variant: Variant, headers: Record<string, string>, upstream: Upstream): Promise<void> {
  const url = gateway.url + variant.generated.load.path;
  const ok = await httpGet(url, headers);
  if (ok.status !== 200 || ok.body !== upstream.body) throw new Error(`${variant.name}: GET ${variant.generated.load.path} answered ${ok.status} ${ok.body.slice(0, 200)}; see ${gateway.logFile}`);
  const anonymous = await httpGet(url, { Host: HOST });
  if (anonymous.status !== 401) throw new Error(`${variant.name}: GET ${variant.generated.load.path} without a token answered ${anonymous.status}, expected 401`);
}

interface MemoryReading {
  /** VmRSS of the gateway (and any child), MB: the target's figure. */
  rssMb: number;
  /** Of the gateway process's RSS: anonymous memory (heaps) and file-backed pages (the node binary, libraries). */
  anonMb: number;
  fileMb: number;
  /** The V8 heap as the gateway's own /metrics reports it (prom-client default metrics). */
  heapUsedMb: number;
  heapTotalMb: number;
  /** How long that scrape of /metrics took. */
  metricsMs: number;
}

interface MemoryRun {
  startMs: number;
  ready: MemoryReading;
  afterLoad: MemoryReading;
  wrk: WrkSummary;
}

interface WrkSummary {
  requests: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  non2xx3xx: number;
  socketErrors: WrkResult['socketErrors'];
  failed: number;
}

function summariseWrk(result: WrkResult): WrkSummary {
  const max = /^\s*Latency\s+\S+\s+\S+\s+(\S+)/m.exec(result.raw);
  const socket = result.socketErrors;
  return {
    requests: result.requests,
    requestsPerSecond: result.requestsPerSecond,
    p50Ms: result.latencyMs['50'] ?? Number.NaN,
    p99Ms: result.latencyMs['99'] ?? Number.NaN,
    maxMs: max ? parseDurationMs(max[1]!) : Number.NaN,
    non2xx3xx: result.non2xx3xx,
    socketErrors: socket,
    failed: result.non2xx3xx + socket.connect + socket.read + socket.write + socket.timeout,
  };
}

function wrkOptions(gateway: Gateway, variant: Variant, headers: Record<string, string>, seconds: number) {
  return { url: gateway.url + variant.generated.load.path, headers, cpu: LOAD_CPU, threads: 1, connections: 50, seconds };
}

async function memoryReading(gateway: Gateway, opsPort: number): Promise<MemoryReading> {
  const rssMb = mb(rssBytes(gateway.proc.pid));
  let status = '';
  try {
    status = readFileSync(`/proc/${gateway.proc.pid}/status`, 'utf8');
  } catch {
    // gone: NaN below
  }
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN) / 1024;
  const scraped = performance.now();
  const metrics = await httpGet(`http://127.0.0.1:${opsPort}/metrics`, {}, 30_000).catch(() => ({ status: 0, body: '' }));
  const metricsMs = performance.now() - scraped;
  const gauge = (name: string) => mb(Number(new RegExp(`^portcullis_${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(metrics.body)?.[1] ?? Number.NaN));
  return { rssMb, anonMb: kb('RssAnon'), fileMb: kb('RssFile'), heapUsedMb: gauge('nodejs_heap_size_used_bytes'), heapTotalMb: gauge('nodejs_heap_size_total_bytes'), metricsMs };
}

async function measureMemory(gateway: Gateway, variant: Variant, headers: Record<string, string>, seconds: number): Promise<MemoryRun> {
  const ready = await memoryReading(gateway, variant.ports.ops);
  const result = await runWrk(wrkOptions(gateway, variant, headers, seconds));
  const afterLoad = await memoryReading(gateway, variant.ports.ops);
  return { startMs: gateway.startMs, ready, afterLoad, wrk: summariseWrk(result) };
}

// ---------------------------------------------------------------------------------------------
// Reload under load
// ---------------------------------------------------------------------------------------------

interface ReloadSample {
  /** The signal was sent while wrk was still running. */
  underLoad: boolean;
  generation: number;
  invalid: boolean;
  /** `config.reloaded` or `config.reload_refused` */
  outcome: string;
  /** Signal sent → the log line arrived. */
  ms: number;
  /** After a refused reload: the load request still answered 200 with the upstream's body. */
  stillServing?: boolean;
}

interface ReloadRun {
  samples: ReloadSample[];
  wrk: WrkSummary;
  after: MemoryReading;
}

/**
 * Replaces the file atomically (copy next to it, then rename): the gateway never reads half a
 * file, whatever the timing. The variants are written before the load starts, so generating a
 * 6 MB file takes no CPU from wrk or the gateway during the run.
 */
function install(from: string, to: string): void {
  const next = `${to}.next`;
  copyFileSync(from, next);
  renameSync(next, to);
}

/**
 * Reloads while wrk runs: a valid one, the invalid one, then valid ones every `reloadEveryMs`
 * (or back to back, when a reload takes longer than that) until the load ends. The load lasts
 * `seconds`, which the caller makes long enough for at least three reloads.
 */
async function reloadUnderLoad(gateway: Gateway, variant: Variant, headers: Record<string, string>, upstream: Upstream, settings: Settings, seconds: number): Promise<ReloadRun> {
  const configDir = dirname(variant.file);
  const files = {
    // The running file is generation 0; the run alternates between it and generation 1.
    0: join(configDir, 'generation-0.yaml'),
    1: join(configDir, 'generation-1.yaml'),
    invalid: join(configDir, 'invalid.yaml'),
  };
  copyFileSync(variant.file, files[0]);
  writeFileSync(files[1], scaleConfig({ ...variant.options, generation: 1 }).yaml);
  writeFileSync(files.invalid, scaleConfig({ ...variant.options, generation: 0, invalid: true }).yaml);

  const load = runWrk(wrkOptions(gateway, variant, headers, seconds));
  const loadStarted = performance.now();
  const loadEnds = loadStarted + seconds * 1000;
  const samples: ReloadSample[] = [];
  let applied = 0;
  try {
    // Let wrk's connections settle before the first signal.
    await sleep(Math.min(1000, settings.reloadEveryMs / 2));
    // The invalid file goes second, between two valid reloads, so that it is tried under load
    // however long each reload takes.
    const invalidAt = 1;
    for (let slot = 0; !interrupted; slot++) {
      if (slot >= 3 && performance.now() > loadEnds - 1000) break;
      const invalid = slot === invalidAt;
      const generation = invalid ? applied : 1 - applied;
      install(invalid ? files.invalid : files[generation as 0 | 1], variant.file);
      const from = gateway.logs.entries.length;
      const signalled = performance.now();
      process.kill(gateway.proc.pid, 'SIGHUP');
      const done = await gateway.logs.waitFor(['config.reloaded', 'config.reload_refused'], from, RELOAD_TIMEOUT_MS, gateway.proc);
      const sample: ReloadSample = { underLoad: signalled < loadEnds, generation, invalid, outcome: String(done.entry.event), ms: done.at - signalled };
      if (sample.outcome === 'config.reloaded') applied = generation;
      if (invalid) {
        const probe = await httpGet(gateway.url + variant.generated.load.path, headers).catch(() => ({ status: 0, body: '' }));
        sample.stillServing = probe.status === 200 && probe.body === upstream.body;
      }
      samples.push(sample);
      log(`config-scale: reload ${slot + 1}${sample.underLoad ? '' : ' (AFTER the load ended)'}: ${invalid ? 'INVALID file' : `generation ${generation}`} → ${sample.outcome} after ${fixed(sample.ms, 0)} ms${sample.stillServing === undefined ? '' : `, still serving: ${sample.stillServing}`}`);
      await sleep(Math.max(0, signalled + settings.reloadEveryMs - performance.now()));
    }
  } finally {
    // Leave the gateway on a valid file whatever happened (it is stopped next anyway).
    install(files[applied as 0 | 1], variant.file);
  }
  const result = summariseWrk(await load);
  return { samples, wrk: result, after: await memoryReading(gateway, variant.ports.ops) };
}

// ---------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------

function table(header: string[], rows: string[][], alignLeft = 1): string {
  const widths = header.map((cell, i) => Math.max(cell.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((cell, i) => (i < alignLeft ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join(' | ')} |`;
  return [line(header), `|${widths.map((width, i) => (i < alignLeft ? `:${'-'.repeat(width + 1)}` : `${'-'.repeat(width + 1)}:`)).join('|')}|`, ...rows.map(line)].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

async function main(argv: string[]): Promise<number> {
  const settings = parseSettings(argv);
  if (!settings) return 0;
  if (process.platform !== 'linux') throw new Error('the benchmark reads /proc and pins with taskset: Linux only');
  ensureTool('taskset', ['util-linux']);
  const nginx = ensureTool('nginx', ['nginx-light', 'nginx']);
  ensureTool('wrk', ['wrk']);
  const node = findNode24();
  const { cores } = machine();
  if (cores < 2) throw new Error('the benchmark pins wrk and the gateway to two different cores: it needs at least 2');
  const versions = { node: execFileSync(node, ['--version'], { encoding: 'utf8' }).trim(), benchNode: process.version, nginx: versionOf(nginx, ['-v']), wrk: versionOf('wrk', ['--version']) };

  const tmpDir = mkdtempSync(join(tmpdir(), 'portcullis-config-scale-'));
  const gateways: Gateway[] = [];
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      await Promise.all(gateways.map((gateway) => stop(gateway.proc)));
      await stopAll();
      if (settings.keepTmp) log(`config-scale: kept ${tmpDir}`);
      else rmSync(tmpDir, { recursive: true, force: true });
    })());
  const removeHandlers = onInterrupt(async () => {
    interrupted = true;
    await cleanup();
  });

  const startedAt = new Date();
  const record: Record<string, unknown> = { startedAt: startedAt.toISOString(), machine: machine(), versions, settings, targets: TARGETS };
  try {
    log(`config-scale: node ${versions.node} | ${versions.nginx} | ${cores} cores, load average ${machine().loadavg.split(' ').slice(0, 3).join(' ')}${settings.quick ? ' | QUICK run' : ''}`);
    const upstream = await startUpstream(nginx, tmpDir, SERVER_CPU);

    // One ES256 issuer for both configurations; the private key never leaves this process.
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk = await exportJWK(publicKey);
    const kid = await calculateJwkThumbprint(jwk, 'sha256');
    const jwksFile = join(tmpDir, 'issuer.jwks.json');
    writeFileSync(jwksFile, `${JSON.stringify({ keys: [{ ...jwk, kid, alg: 'ES256', use: 'sig' }] }, null, 2)}\n`);

    const generateStarted = performance.now();
    const small = await prepareVariant('small', tmpDir, 10, 1, upstream, jwksFile);
    const large = await prepareVariant('large', tmpDir, settings.partners, settings.apis, upstream, jwksFile);
    const variants = [small, large];
    log(`config-scale: generated ${variants.map((v) => `${v.name}: ${v.generated.partners.toLocaleString('en-US')} partners, ${v.generated.routes.toLocaleString('en-US')} routes, ${fixed(mb(v.bytes), 2)} MB`).join('; ')} (${fixed(performance.now() - generateStarted, 0)} ms)`);

    // RFC 9068 access token of the load partner for the loaded API: `sub` is its client id
    // (the issuer's partner_claim); the same token on every request (the verified-token cache).
    const issuedAt = Math.floor(Date.now() / 1000);
    const load = large.generated.load;
    if (load.path !== small.generated.load.path) throw new Error('internal: both configurations must load the same route');
    const token = await new SignJWT({ client_id: LOAD_CLIENT, scope: load.scope })
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid })
      .setIssuer(ISSUER)
      .setSubject(LOAD_CLIENT)
      .setAudience(load.audience)
      .setIssuedAt(issuedAt)
      .setExpirationTime(issuedAt + TOKEN_LIFETIME_SECONDS)
      .setJti(randomUUID())
      .sign(privateKey);
    const headers = { Host: HOST, Authorization: `Bearer ${token}` };

    // 1. portcullis validate -c
    const cli: Record<string, { code: number | null; ms: number; output: string }> = {};
    for (const variant of variants) {
      const result = await validateCli(node, variant.file);
      cli[variant.name] = result;
      log(`config-scale: portcullis validate -c ${variant.name}: exit ${result.code} in ${fixed(result.ms, 0)} ms: ${result.output.split('\n')[0]}`);
      if (result.code !== 0) throw new Error(`portcullis validate refused the ${variant.name} configuration:\n${result.output}`);
    }
    record.validateCli = cli;

    // 2. load time in process, 3. route lookup
    log(`config-scale: loading each configuration ${settings.repeat} times in process…`);
    const loads: Record<string, LoadTimes> = {};
    for (const variant of variants) loads[variant.name] = await timeLoads(variant, settings.repeat);
    record.load = Object.fromEntries(Object.entries(loads).map(([name, times]) => [name, { runs: times.runs, median: times.median }]));
    log(`config-scale: timing route lookups (${settings.lookupBatches} batches × ${settings.lookupIterations.toLocaleString('en-US')} per lookup and table)…`);
    const lookups = timeLookups(
      variants.map((variant) => ({ variant, snapshot: loads[variant.name]!.snapshot })),
      settings.lookupBatches,
      settings.lookupIterations,
    );
    record.lookupNs = Object.fromEntries([...lookups].map(([name, byLookup]) => [name, Object.fromEntries(byLookup)]));
    // The snapshots are not needed any more; the gateway's memory is measured next, in its own process.
    for (const times of Object.values(loads)) (times as Partial<LoadTimes>).snapshot = undefined;

    // 4. memory, then 5. reload under load (large only)
    const memory: Record<string, MemoryRun> = {};
    let reload: ReloadRun | undefined;
    let reloadSeconds = settings.reloadSeconds;
    for (const variant of variants) {
      log(`config-scale: serving the ${variant.name} configuration (pinned to core ${SERVER_CPU}), wrk ${settings.loadSeconds} s on GET ${variant.generated.load.path}…`);
      const gateway = await startGateway(node, variant);
      gateways.push(gateway);
      await checkServes(gateway, variant, headers, upstream);
      memory[variant.name] = await measureMemory(gateway, variant, headers, settings.loadSeconds);
      if (variant === large) {
        // At least three reloads (valid, invalid, valid) must fit in the load. A reload's loader
        // process inherits the gateway's pinning, so it gets what the loaded gateway leaves of
        // the shared core: measured at 3–4× what loadConfig takes on an idle core.
        const perReloadMs = Math.max(settings.reloadEveryMs, 4 * loads.large!.median.loadConfigMs);
        reloadSeconds = Math.max(settings.reloadSeconds, Math.ceil((1000 + 3 * perReloadMs + 1000) / 1000));
        log(
          `config-scale: reload under load: wrk ${reloadSeconds} s, SIGHUP every ${settings.reloadEveryMs} ms or as soon as the previous reload finished` +
            (reloadSeconds > settings.reloadSeconds ? ` (load extended from ${settings.reloadSeconds} s: each reload is expected to take ~${fixed(perReloadMs / 1000, 1)} s)` : '') +
            '…',
        );
        reload = await reloadUnderLoad(gateway, variant, headers, upstream, settings, reloadSeconds);
      }
      await stop(gateway.proc);
      gateways.splice(gateways.indexOf(gateway), 1);
    }
    record.memory = memory;
    record.reload = reload ? { ...reload, seconds: reloadSeconds } : undefined;

    // ------------------------------------------------------------------ report
    const s = loads.small!.median;
    const l = loads.large!.median;
    const ratio = (big: number, little: number) => (little > 0 ? `${fixed(big / little, 1)}×` : 'n/a');
    log('');
    log(`Load time (median of ${settings.repeat}, in process, ms)`);
    log(
      table(
        ['phase', `small (${small.generated.partners} partners, ${small.generated.routes} routes)`, `large (${large.generated.partners.toLocaleString('en-US')} partners, ${large.generated.routes.toLocaleString('en-US')} routes)`, 'large ÷ small'],
        [
          ['read + YAML parse + interpolation', fixed(s.parseMs), fixed(l.parseMs), ratio(l.parseMs, s.parseMs)],
          ['schema (zod)', fixed(s.schemaMs), fixed(l.schemaMs), ratio(l.schemaMs, s.schemaMs)],
          ['semantic validation', fixed(s.validateMs), fixed(l.validateMs), ratio(l.validateMs, s.validateMs)],
          ['compileSnapshot', fixed(s.compileMs), fixed(l.compileMs), ratio(l.compileMs, s.compileMs)],
          ['loadConfig (all of the above)', fixed(s.loadConfigMs), fixed(l.loadConfigMs), ratio(l.loadConfigMs, s.loadConfigMs)],
          ['`portcullis validate -c` (CLI, wall)', fixed(cli.small!.ms), fixed(cli.large!.ms), ratio(cli.large!.ms, cli.small!.ms)],
          ['`portcullis serve` start → ready (wall)', fixed(memory.small!.startMs), fixed(memory.large!.startMs), ratio(memory.large!.startMs, memory.small!.startMs)],
        ],
      ),
    );
    log('');
    log(`Route lookup (Router.match, ns per lookup, median of ${settings.lookupBatches} batches)`);
    const lookupRows = small.generated.lookups.map((lookup, i) => {
      const bigLookup = large.generated.lookups[i]!;
      const a = lookups.get('small')!.get(lookup.name)!;
      const b = lookups.get('large')!.get(lookup.name)!;
      return [`${lookup.name}: ${bigLookup.method} ${bigLookup.path}`, fixed(a, 0), fixed(b, 0), ratio(b, a)];
    });
    log(table(['lookup (large table’s path)', 'small', 'large', 'large ÷ small'], lookupRows));
    log('');
    log(`Memory of the gateway (MB) and throughput, wrk -t1 -c50 ${settings.loadSeconds} s on the full authorization path`);
    const memoryRows = variants.flatMap((variant) => {
      const m = memory[variant.name]!;
      const row = (when: string, r: MemoryReading, wrk?: WrkSummary) => [
        `${variant.name}, ${when}`,
        fixed(r.rssMb),
        fixed(r.anonMb),
        fixed(r.fileMb),
        fixed(r.heapUsedMb),
        fixed(r.heapTotalMb),
        wrk ? fixed(wrk.requestsPerSecond, 0) : '',
        wrk ? fixed(wrk.p99Ms, 2) : '',
        wrk ? String(wrk.failed) : '',
      ];
      const rows = [row('ready', m.ready), row('after load', m.afterLoad, m.wrk)];
      if (variant === large && reload) rows.push(row('after the reloads', reload.after, reload.wrk));
      return rows;
    });
    log(table(['gateway', 'VmRSS', 'RssAnon', 'RssFile', 'V8 heap used', 'V8 heap total', 'req/s', 'p99 ms', 'failed'], memoryRows));
    const rssLarge = Math.max(memory.large!.ready.rssMb, memory.large!.afterLoad.rssMb, reload?.after.rssMb ?? 0);
    log(`  large ÷ small VmRSS: ready ${ratio(memory.large!.ready.rssMb, memory.small!.ready.rssMb)}, after load ${ratio(memory.large!.afterLoad.rssMb, memory.small!.afterLoad.rssMb)}; RssFile is mostly the node binary's mapped pages`);
    log(`  the gateway's /metrics scrape (for the V8 heap) took ${fixed(memory.large!.ready.metricsMs, 0)} ms on the large configuration, ${fixed(memory.small!.ready.metricsMs, 0)} ms on the small one`);
    const samples = reload?.samples ?? [];
    const applied = samples.filter((sample) => !sample.invalid);
    const refused = samples.filter((sample) => sample.invalid);
    if (reload) {
      log('');
      log(`Reload under load (large configuration; wrk -t1 -c50 ${reloadSeconds} s; SIGHUP every ${settings.reloadEveryMs} ms, or when the previous reload finished)`);
      log(
        table(
          ['reloads', 'applied', 'median ms', 'max ms', 'invalid: refused', 'kept serving', 'req/s', 'p99 ms', 'max latency ms', 'non-2xx/3xx', 'socket errors'],
          [
            [
              String(samples.length),
              String(applied.filter((sample) => sample.outcome === 'config.reloaded').length),
              fixed(median(applied.map((sample) => sample.ms)), 0),
              fixed(Math.max(...applied.map((sample) => sample.ms)), 0),
              `${refused.filter((sample) => sample.outcome === 'config.reload_refused').length}/${refused.length}`,
              refused.every((sample) => sample.stillServing === true) ? 'yes' : 'NO',
              fixed(reload.wrk.requestsPerSecond, 0),
              fixed(reload.wrk.p99Ms, 2),
              fixed(reload.wrk.maxMs, 0),
              String(reload.wrk.non2xx3xx),
              Object.entries(reload.wrk.socketErrors).map(([kind, count]) => `${kind} ${count}`).join(', '),
            ],
          ],
          0,
        ),
      );
      log(`  reload time: SIGHUP sent → the gateway's config.reloaded (or config.reload_refused) log line received; ${samples.filter((sample) => !sample.underLoad).length} reload(s) signalled after the load ended`);
    }

    const reloadsOk =
      applied.length >= 2 &&
      samples.every((sample) => sample.underLoad) &&
      applied.every((sample) => sample.outcome === 'config.reloaded') &&
      refused.length === 1 &&
      refused.every((sample) => sample.outcome === 'config.reload_refused' && sample.stillServing === true);
    const failed = reload ? reload.wrk.failed : Number.NaN;
    const verdicts = [
      `target: load + validate + compile of ${large.generated.partners.toLocaleString('en-US')} partners < ${TARGETS.loadMs / 1000} s: loadConfig median ${fixed(l.loadConfigMs / 1000, 2)} s (compileSnapshot alone ${fixed(l.compileMs / 1000, 2)} s): ${l.loadConfigMs < TARGETS.loadMs ? 'MET' : 'NOT MET'}`,
      `target: gateway RSS < ${TARGETS.rssMb} MB at ${large.generated.partners.toLocaleString('en-US')} partners: ${fixed(rssLarge)} MB (the highest reading: ready, after load, after the reloads): ${rssLarge < TARGETS.rssMb ? 'MET' : 'NOT MET'}`,
      `target: reload under load with zero failed requests: ${failed} failed of ${reload?.wrk.requests.toLocaleString('en-US') ?? 0} (${applied.length} reloads applied, ${refused.length} invalid refused${reloadsOk ? '' : ', but NOT every reload did what it should'}): ${failed === 0 && reloadsOk ? 'MET' : 'NOT MET'}`,
    ];
    log('');
    for (const line of verdicts) log(line);
    record.verdicts = verdicts;
    record.finishedAt = new Date().toISOString();

    const resultsDir = join(BENCH_DIR, 'results');
    mkdirSync(resultsDir, { recursive: true });
    const file = join(resultsDir, `config-scale-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
    writeFileSync(file, `${JSON.stringify(record, (_key, value: unknown) => (typeof value === 'number' && !Number.isFinite(value) ? null : value), 2)}\n`);
    log(`\nconfig-scale: results written to ${file}`);
    return verdicts.every((line) => line.endsWith(': MET')) ? 0 : 1;
  } finally {
    await cleanup();
    removeHandlers();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (interrupted) return;
    process.stderr.write(`config-scale: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
