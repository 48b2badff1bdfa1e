/**
 * The table of targets. Every target serves `GET <ctx.path>` with `Host: <ctx.host>` and must
 * return the upstream's body unchanged; each row of the report is one entry here, in this order.
 * To add a row (HAProxy + jwt_verify, …), add an entry.
 */
import { join } from 'node:path';
import type { BenchContext, Goal, RunningTarget, Target } from '../lib/target.ts';
import { freePort, spawnPinned, stop, waitForPort } from '../lib/procs.ts';
import { plainConfig, serveUnavailable, startPortcullis } from './portcullis.ts';
import type { JwtAlgorithm } from './jwt.ts';
import { AUDIENCE, BENCH_RATE_LIMIT, ISSUER, createPeerIssuer, proveTokenIsEnforced, startJwtTarget } from './jwt.ts';
import { startMtlsTarget } from './mtls.ts';
import { auditTarget } from './audit.ts';
import { haproxyTarget } from './haproxy.ts';
import { fullMtlsTarget, fullTarget } from './full.ts';

/**
 * Issue 3: the cached full authorization path may cost at most 25 % of the plain proxy path's
 * throughput. The uncached rows are reported against the same row, without a target.
 */
const FULL_PATH_GOAL = { against: 'portcullis-plain', minThroughputRatio: 0.75, lowerP99: false } as const;

/**
 * Issue 7: what a partner rate limit costs per request, counted in the gateway or in Redis,
 * against the same path without one. No target: reported only.
 */
function rateLimitTarget(mode: 'local' | 'redis'): Target {
  const name = `portcullis-jwt-rs256-ratelimit-${mode}`;
  return {
    name,
    description:
      mode === 'local'
        ? `as portcullis-jwt-rs256, plus a partner rate limit (${BENCH_RATE_LIMIT.rate}, burst ${BENCH_RATE_LIMIT.burst}: never refuses) counted in the gateway (rate_limits.mode: local)`
        : `as portcullis-jwt-rs256, plus the same rate limit counted in Redis (rate_limits.mode: shared, state.driver: redis; redis-server on the server core): a round trip per request`,
    compare: 'portcullis-jwt-rs256',
    unavailable: serveUnavailable,
    start: (ctx) => startJwtTarget(ctx, name, 'RS256', true, { rateLimit: mode }),
  };
}

/**
 * Issue 4: on a kept-alive connection, a request over mutual TLS with a certificate-bound token
 * (OCSP answer cached) costs at most 10 % more than the same call over TLS without a client
 * certificate: at least 0.90× its throughput. All three rows are driven by the TLS load
 * generator (lib/tls-load.ts), so their ratios compare like with like.
 */
const MTLS_GOAL = { against: 'portcullis-tls-jwt-keepalive', minThroughputRatio: 0.9, lowerP99: false } as const;

function jwtTarget(alg: JwtAlgorithm, cached: boolean): Target {
  const name = `portcullis-jwt-${alg.toLowerCase()}${cached ? '' : '-uncached'}`;
  return {
    name,
    description: cached
      ? `wrk → Portcullis (partner route: ${alg} JWT, scope, one CEL rule, partner agreement + grant; the same token every request: verified-token cache hits) → nginx`
      : `as portcullis-jwt-${alg.toLowerCase()}, but a different ${alg} token every request (wrk script, a list longer than the cache): a signature check per request`,
    ...(cached ? { goal: FULL_PATH_GOAL } : { compare: FULL_PATH_GOAL.against }),
    unavailable: serveUnavailable,
    start: (ctx) => startJwtTarget(ctx, name, alg, cached),
  };
}

export const TARGETS: readonly Target[] = [
  {
    name: 'direct',
    description: 'wrk → nginx upstream, no proxy (the ceiling; CPU column is nginx itself)',
    async start(ctx) {
      return {
        url: `${ctx.upstream.origin}${ctx.path}`,
        measured: ctx.upstream.proc,
        cpuOf: 'nginx',
        stop: async () => {},
      };
    },
  },
  {
    name: 'portcullis-plain',
    description: 'wrk → Portcullis (public listener, auth: none route, decision log to a file) → nginx',
    goal: { against: 'fastify-proxy', minThroughputRatio: 1.3, lowerP99: true },
    unavailable: serveUnavailable,
    start: (ctx) => startPortcullis(ctx, 'portcullis-plain', plainConfig),
  },
  {
    name: 'fastify-proxy',
    description: 'wrk → fastify 5 + @fastify/http-proxy (defaults, logger off) → nginx',
    baseline: true,
    start: (ctx) => startNodeProxy(ctx, 'fastify-proxy', ['--prefix', '/bench']),
  },
  {
    name: 'node-floor',
    description:
      'wrk → node:http server + undici Pool dispatch, nothing else (no routing, hygiene, checks or record: the floor of the stack Portcullis is built on) → nginx',
    start: (ctx) => startNodeProxy(ctx, 'node-floor', []),
  },
  jwtTarget('RS256', true),
  jwtTarget('ES256', true),
  jwtTarget('RS256', false),
  jwtTarget('ES256', false),
  rateLimitTarget('local'),
  rateLimitTarget('redis'),
  // Issue 6: the cost of the audit trail (targets/audit.ts).
  auditTarget('off'),
  auditTarget('interval'),
  auditTarget('every-record'),
  // Issue 4: mutual TLS and certificate-bound tokens (targets/mtls.ts).
  {
    name: 'portcullis-tls-jwt-keepalive',
    description:
      'TLS load generator → Portcullis over TLS, no client certificate (as portcullis-jwt-rs256: RS256 bearer token, cached; scope, CEL rule, agreement + grant), keep-alive → nginx',
    unavailable: serveUnavailable,
    start: (ctx) => startMtlsTarget(ctx, 'portcullis-tls-jwt-keepalive', 'tls'),
  },
  {
    name: 'portcullis-mtls-jwt-bound-keepalive',
    description:
      'as portcullis-tls-jwt-keepalive over mutual TLS: client certificate required, partner CA + OCSP (openssl ocsp, answer cached), token bound to the certificate (cnf.x5t#S256), route require_sender_constrained',
    goal: MTLS_GOAL,
    unavailable: serveUnavailable,
    start: (ctx) => startMtlsTarget(ctx, 'portcullis-mtls-jwt-bound-keepalive', 'mtls'),
  },
  {
    name: 'portcullis-mtls-jwt-bound-new-connection',
    description: 'as portcullis-mtls-jwt-bound-keepalive, but a new TLS connection (full handshake with the client certificate) for every request',
    compare: 'portcullis-mtls-jwt-bound-keepalive',
    unavailable: serveUnavailable,
    start: (ctx) => startMtlsTarget(ctx, 'portcullis-mtls-jwt-bound-new-connection', 'mtls-new-connection'),
  },
];

/** A proxy of `targets/<name>.ts` (fastify-proxy, node-floor) in front of the upstream, pinned to the server core. */
async function startNodeProxy(ctx: BenchContext, name: string, extraArgs: readonly string[]): Promise<RunningTarget> {
  const port = await freePort();
  const proc = spawnPinned(
    name,
    ctx.node,
    [join(ctx.benchDir, 'targets', `${name}.ts`), '--port', String(port), '--upstream', ctx.upstream.origin, ...extraArgs],
    { cpu: ctx.serverCpu, cwd: ctx.benchDir, logFile: join(ctx.tmpDir, `${name}.log`) },
  );
  try {
    await waitForPort(proc, port, 20_000);
  } catch (error) {
    await stop(proc);
    throw error;
  }
  return { url: `http://127.0.0.1:${port}${ctx.path}`, measured: proc, cpuOf: 'proxy', stop: () => stop(proc) };
}

/**
 * Issue 8's Node peer: targets/fastify-jwt.ts (fastify-proxy plus fast-jwt in an onRequest
 * hook). Before it is measured it must refuse every bad token of `proveTokenIsEnforced`.
 */
async function startFastifyJwt(ctx: BenchContext, name: string): Promise<RunningTarget> {
  const dir = join(ctx.tmpDir, name);
  const issuer = await createPeerIssuer(ctx, join(dir, 'issuer'), 'RS256');
  const port = await freePort();
  const log = join(dir, 'fastify-jwt.log');
  const proc = spawnPinned(
    name,
    ctx.node,
    [
      join(ctx.benchDir, 'targets', 'fastify-jwt.ts'),
      ...['--port', String(port), '--upstream', ctx.upstream.origin, '--prefix', '/bench'],
      ...['--public-key', issuer.publicKeyFile, '--algorithm', 'RS256', '--issuer', ISSUER, '--audience', AUDIENCE],
    ],
    { cpu: ctx.serverCpu, cwd: ctx.benchDir, logFile: log },
  );
  const url = `http://127.0.0.1:${port}${ctx.path}`;
  try {
    await waitForPort(proc, port, 20_000);
    await proveTokenIsEnforced(url, ctx.host, issuer, ctx.upstream.body);
  } catch (error) {
    await stop(proc);
    throw new Error(`${(error as Error).message}; see ${log}`);
  }
  return { url, measured: proc, cpuOf: 'proxy', stop: () => stop(proc), headers: issuer.headers };
}

/**
 * Issue 8's rows that are not in the default suite: Portcullis with everything on, and the
 * peers. `--targets` can name them in the default suite too (without the peer suite's goals).
 */
export const PEER_ROWS: readonly Target[] = [
  fullTarget('RS256'),
  fullTarget('ES256'),
  fullMtlsTarget(),
  haproxyTarget('plain'),
  haproxyTarget('RS256'),
  haproxyTarget('ES256'),
  {
    name: 'fastify-jwt-rs256',
    description: 'wrk → fastify 5 + @fastify/http-proxy + fast-jwt RS256 in an onRequest hook (signature, exp, iss, aud; no verifier cache: a signature check per request) → nginx',
    start: (ctx) => startFastifyJwt(ctx, 'fastify-jwt-rs256'),
  },
];

/** Issue 8: the peer suite's ratio columns are against HAProxy + jwt_verify RS256. */
export const PEERS_BASELINE = 'haproxy-jwt-rs256';

/** Issue 8: every Portcullis row at least twice the throughput of fastify + fast-jwt RS256. */
const TWICE_FASTIFY_JWT: Goal = { against: 'fastify-jwt-rs256', minThroughputRatio: 2, lowerP99: false };

/** Issue 8's targets for its rows (besides `TWICE_FASTIFY_JWT` for every Portcullis row). */
const PEER_GOALS: Readonly<Record<string, readonly Goal[]>> = {
  // Issue 2 asked 1.3×; issue 8 asks 1.5×.
  'portcullis-plain': [{ against: 'fastify-proxy', minThroughputRatio: 1.5, lowerP99: true }],
  'portcullis-full-rs256': [{ against: PEERS_BASELINE, minThroughputRatio: 1, lowerP99: true }],
  'portcullis-full-es256': [{ against: 'haproxy-jwt-es256', minThroughputRatio: 1.5, lowerP99: false }],
};

/** `npm run bench:peers`: issue 8's rows, in this order. */
const PEER_ORDER = [
  'direct',
  'portcullis-plain',
  'portcullis-full-rs256',
  'portcullis-full-es256',
  'portcullis-full-mtls-bound',
  'haproxy-plain',
  'haproxy-jwt-rs256',
  'haproxy-jwt-es256',
  'fastify-proxy',
  'fastify-jwt-rs256',
] as const;

/** The peer suite's rows: issue 8's goals and baseline in place of the rows' own. */
export const PEER_TARGETS: readonly Target[] = PEER_ORDER.map((name) => {
  const row = [...TARGETS, ...PEER_ROWS].find((t) => t.name === name);
  if (!row) throw new Error(`peer suite: no target ${name}`);
  const { goal: _goal, compare: _compare, baseline: _baseline, ...rest } = row;
  const goals = [...(PEER_GOALS[name] ?? []), ...(name.startsWith('portcullis-') ? [TWICE_FASTIFY_JWT] : [])];
  return { ...rest, ...(name === PEERS_BASELINE ? { baseline: true } : {}), ...(goals.length ? { goal: goals } : {}) };
});

export interface Suite {
  /** What `--help` says about it. */
  description: string;
  /** The rows run when `--targets` is not given, in report order. */
  targets: readonly Target[];
  /** The rows `--targets` may name (the suite's, and for the default suite the peer rows too). */
  selectable: readonly Target[];
}

export const SUITES: Readonly<Record<'default' | 'peers', Suite>> = {
  default: { description: 'the per-issue rows, ratios to fastify-proxy', targets: TARGETS, selectable: [...TARGETS, ...PEER_ROWS] },
  peers: { description: "issue 8: Portcullis against HAProxy + jwt_verify and fastify + fast-jwt, ratios to haproxy-jwt-rs256", targets: PEER_TARGETS, selectable: PEER_TARGETS },
};
