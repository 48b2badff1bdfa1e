/**
 * Issue 8's peer rows against the real thing: Debian's haproxy and the fastify + fast-jwt
 * process, in front of the benchmark's nginx upstream, with the tokens and probes the bench
 * mints. Each row proves at start that it refuses bad tokens; these tests also show that the
 * proof fails on a proxy that checks nothing.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchContext, RunningTarget, Upstream } from '../lib/target.ts';
import { httpGet, stop } from '../lib/procs.ts';
import { which } from '../lib/system.ts';
import { PEER_ROWS, PEER_TARGETS, PEERS_BASELINE, SUITES, TARGETS } from '../targets/index.ts';
import { goalsOf } from '../lib/report.ts';
import { createPeerIssuer, proveTokenIsEnforced } from '../targets/jwt.ts';
import { startUpstream } from '../targets/upstream.ts';

const BENCH_DIR = dirname(dirname(fileURLToPath(import.meta.url)));
// Debian's nginx is in /usr/sbin, which a non-root PATH may not hold.
const nginx = which('nginx') ?? (existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : undefined);
const haproxy = which('haproxy') ?? (existsSync('/usr/sbin/haproxy') ? '/usr/sbin/haproxy' : undefined);
/** Why the rows cannot run here (the bench installs what is missing; the tests do not). */
const missing = (name: string) => (!nginx ? 'nginx is not installed' : name.startsWith('haproxy') && !haproxy ? 'haproxy is not installed' : false);

let tmpDir: string;
let upstream: Upstream | undefined;
const started: RunningTarget[] = [];

function context(): BenchContext {
  return {
    tmpDir,
    repoRoot: dirname(BENCH_DIR),
    benchDir: BENCH_DIR,
    node: process.execPath,
    serverCpu: 1,
    upstream: upstream!,
    path: '/bench/hello',
    host: 'localhost',
    maxRunSeconds: 600,
    wrkThreads: 1,
  };
}

async function start(name: string): Promise<RunningTarget> {
  const target = PEER_ROWS.find((t) => t.name === name)!;
  const running = await target.start(context());
  started.push(running);
  return running;
}

before(async () => {
  tmpDir = mkdtempSync(join(tmpdir(), 'bench-peers-test-'));
  if (nginx) upstream = await startUpstream(nginx, tmpDir, 1);
});

after(async () => {
  for (const running of started) await running.stop();
  if (upstream) await stop(upstream.proc);
  rmSync(tmpDir, { recursive: true, force: true });
});

test('the peer suite: issue 8 rows in order, ratios to haproxy-jwt-rs256, its goals', () => {
  assert.deepEqual(
    PEER_TARGETS.map((t) => t.name),
    ['direct', 'portcullis-plain', 'portcullis-full-rs256', 'portcullis-full-es256', 'portcullis-full-mtls-bound', 'haproxy-plain', 'haproxy-jwt-rs256', 'haproxy-jwt-es256', 'fastify-proxy', 'fastify-jwt-rs256'],
  );
  assert.deepEqual(PEER_TARGETS.filter((t) => t.baseline).map((t) => t.name), [PEERS_BASELINE]);
  const goals = (name: string) => goalsOf(PEER_TARGETS.find((t) => t.name === name)!);
  for (const t of PEER_TARGETS.filter((row) => row.name.startsWith('portcullis-'))) {
    assert.ok(goals(t.name).some((g) => g.against === 'fastify-jwt-rs256' && g.minThroughputRatio === 2), `${t.name}: ≥ 2× fastify-jwt-rs256`);
  }
  assert.deepEqual(goals('portcullis-plain')[0], { against: 'fastify-proxy', minThroughputRatio: 1.5, lowerP99: true });
  assert.deepEqual(goals('portcullis-full-rs256')[0], { against: 'haproxy-jwt-rs256', minThroughputRatio: 1, lowerP99: true });
  assert.deepEqual(goals('portcullis-full-es256')[0], { against: 'haproxy-jwt-es256', minThroughputRatio: 1.5, lowerP99: false });
  for (const peer of ['haproxy-plain', 'haproxy-jwt-rs256', 'haproxy-jwt-es256', 'fastify-proxy', 'fastify-jwt-rs256', 'direct']) assert.deepEqual(goals(peer), []);
  // Every goal's other row is in the suite.
  for (const t of PEER_TARGETS) for (const g of goalsOf(t)) assert.ok(PEER_TARGETS.some((row) => row.name === g.against), `${t.name} → ${g.against}`);
  // The default suite keeps its rows and goals.
  assert.equal(SUITES.default.targets, TARGETS);
  assert.deepEqual(TARGETS.filter((t) => t.baseline).map((t) => t.name), ['fastify-proxy']);
  assert.equal(goalsOf(TARGETS.find((t) => t.name === 'portcullis-plain')!)[0]!.minThroughputRatio, 1.3);
});

for (const name of ['haproxy-jwt-rs256', 'haproxy-jwt-es256', 'fastify-jwt-rs256']) {
  test(`${name} refuses bad tokens and passes the row's token to the upstream`, { skip: missing(name) }, async () => {
    const running = await start(name); // start() itself proves every probe is refused
    const ok = await httpGet(running.url, { Host: 'localhost', ...running.headers });
    assert.equal(ok.status, 200);
    assert.equal(ok.body, upstream!.body);
    const [head, payload] = running.headers!.authorization!.slice('Bearer '.length).split('.');
    const forged = `${head}.${payload}.${'A'.repeat(name.endsWith('es256') ? 86 : 342)}`;
    assert.equal((await httpGet(running.url, { Host: 'localhost', authorization: `Bearer ${forged}` })).status, 401);
    await running.stop();
    assert.ok(running.measured.hasExited(), 'stopped by PID');
  });
}

test('the enforcement proof fails against a proxy that checks no token (haproxy-plain)', { skip: missing('haproxy-plain') }, async () => {
  const running = await start('haproxy-plain');
  const issuer = await createPeerIssuer(context(), join(tmpDir, 'plain-issuer'), 'RS256');
  await assert.rejects(proveTokenIsEnforced(running.url, 'localhost', issuer, upstream!.body), (error: Error) => {
    assert.match(error.message, /no Authorization header: 200/);
    assert.match(error.message, /an expired token: 200/);
    return true;
  });
});
