/**
 * Portcullis with the full authorization path: a partner-zone route that needs a JWT access
 * token with one scope and passes one CEL rule, for a partner with a current agreement, a `jwt`
 * credential and a grant.
 *
 * Each row gets its own issuer: a key pair generated at start (jose `generateKeyPair`), its
 * public half written as the JWKS file the config trusts (`jwks_file`), and RFC 9068 access
 * tokens minted with the private half, as `src/demo/dev-issuer.ts` does. Nothing is reused
 * between runs; the private key never leaves this process.
 *
 * - cached: wrk sends the same token on every request (`-H Authorization: …`), so after the
 *   first one the gateway answers the token check from its verified-token cache (an entry
 *   lives at most 60 s, so about once a minute the signature is checked again);
 * - uncached: wrk sends a different token on every request (`rotate-tokens.lua`), from a list
 *   longer than the cache holds, so every request pays for a signature check;
 * - rate-limited (issue 7): cached, plus a rate limit on the partner that never refuses,
 *   counted in the gateway (`local`) or in Redis (`shared`): what the check costs per request.
 */
import { createPublicKey, randomUUID } from 'node:crypto';
import type { JsonWebKey } from 'node:crypto';
import { mkdirSync, openSync, closeSync, readSync, fstatSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import { VerifiedTokenCache } from '../../src/authn/jwt/cache.ts';
import type { BenchContext, RunningTarget } from '../lib/target.ts';
import { cpuMicros, httpGet } from '../lib/procs.ts';
import { startRedisServer } from '../lib/redis.ts';
import type { PortcullisPorts } from './portcullis.ts';
import { portcullisPaths, startPortcullis } from './portcullis.ts';

export type JwtAlgorithm = 'RS256' | 'ES256';

export const ISSUER = 'https://issuer.bench.localhost';
export const AUDIENCE = 'https://api.bench.localhost/bench';
const CLIENT_ID = 'bench-client';
const SCOPE = 'bench:read';

/**
 * Tokens in an uncached row's list: at least 20,000, and at least twice what the gateway's
 * verified-token cache holds (`VerifiedTokenCache` with its defaults, as `src/authn/runtime.ts`
 * builds it): the list is sent in order, so each token comes round again only after more
 * distinct tokens than the LRU keeps, and is never a hit.
 */
export const UNCACHED_TOKENS = Math.max(20_000, 2 * new VerifiedTokenCache().maxEntries);

/** Tokens live at least this long (s); longer when the run may take longer (`ctx.maxRunSeconds`). */
const MIN_TOKEN_LIFETIME_SECONDS = 30 * 60;

/**
 * Decision records looked at after each measured run (the end of the decision log), in a
 * cached row: all must name the same token.
 */
const AUDITED_RECORDS = 5000;

/**
 * The same in an uncached row: the last three quarters of the list's length in records (15,000;
 * or all, if fewer) must all name different tokens. The cache holds at most half the list, so
 * none of the last quarter (5,000 requests) can have found its token in it. Not the whole
 * list's length: records are written as requests complete, not in the order they were sent,
 * so a window of exactly that many can hold a token's last use and its next one.
 */
const AUDITED_UNCACHED_RECORDS = Math.floor(UNCACHED_TOKENS * 0.75);

/** Client id of the partner that is limited to one request an hour (`JwtConfigOptions.rateLimit`). */
export const LIMIT_PROBE_CLIENT_ID = 'bench-limit-probe';

/** What a row adds to the full authorization path. */
export interface JwtConfigOptions {
  /**
   * A rate limit on bench-partner, counted in `mode` (`rate_limits.mode`), plus a second
   * partner (client id `LIMIT_PROBE_CLIENT_ID`) limited the same way to one request an hour: its
   * second request must be refused, which shows the limiter runs in this gateway at all.
   */
  rateLimit?: { rate: string; burst: number; mode: 'local' | 'shared' };
  /** `state.driver: redis` on this server (else the embedded default). */
  redis?: { url: string; keyPrefix: string };
  /** `admin.tokens`: one token, `bench-admin`, by the SHA-256 (hex) of the token. */
  adminTokenSha256?: string;
  /**
   * `abuse.auth_failures_per_source: off`: for a client that makes many 401s on purpose (the
   * revocation benchmark refuses a few per revocation, all from 127.0.0.1) and must not be
   * blocked for it (default: 100 per minute).
   */
  noSourceBlock?: boolean;
}

/** The full authorization path: see the file comment. */
export function jwtConfig(
  ctx: Pick<BenchContext, 'host' | 'upstream'>,
  ports: PortcullisPorts,
  stateDir: string,
  issuer: { alg: JwtAlgorithm; jwksFile: string; lifetimeSeconds: number },
  options: JwtConfigOptions = {},
): string {
  const limit = options.rateLimit;
  const partnerLimit = limit ? `    rate_limit:\n      rate: ${limit.rate}\n      burst: ${limit.burst}\n` : '';
  const limitProbePartner = limit
    ? `  - id: bench-limit-probe
    agreement:
      id: BENCH-0002
      expires: 2099-12-31
    rate_limit:
      rate: 1/h
      burst: 0
    credentials:
      - id: bench-limit-probe-jwt
        type: jwt
        issuer: bench-idp
        client_id: ${LIMIT_PROBE_CLIENT_ID}
    grants:
      - api: bench
        scopes: [${SCOPE}]
`
    : '';
  const sections = [
    options.redis ? `state:\n  driver: redis\n  redis:\n    url: ${options.redis.url}\n    key_prefix: ${JSON.stringify(options.redis.keyPrefix)}\n` : '',
    options.adminTokenSha256 ? `admin:\n  tokens:\n    - id: bench-admin\n      sha256: ${options.adminTokenSha256}\n` : '',
    limit ? `rate_limits:\n  mode: ${limit.mode}\n` : '',
    options.noSourceBlock ? 'abuse:\n  auth_failures_per_source: off\n' : '',
  ].join('');
  return `# generated by bench/targets/jwt.ts — the full authorization path (${issuer.alg})
version: 1
gateway:
  data_dir: ${JSON.stringify(join(stateDir, 'data'))}
  decision_log: ${JSON.stringify(join(stateDir, 'decisions.jsonl'))}
ops:
  address: 127.0.0.1
  port: ${ports.ops}
listeners:
  # Plain HTTP on loopback, like portcullis-plain: the difference between the rows is the
  # credential and authorization work, not TLS.
  - name: bench
    zone: partner
    address: 127.0.0.1
    port: ${ports.listener}
    hostnames: [${ctx.host}]
upstreams:
  - id: upstream
    url: ${ctx.upstream.origin}
issuers:
  - id: bench-idp
    issuer: ${ISSUER}
    jwks_file: ${JSON.stringify(issuer.jwksFile)}
    algorithms: [${issuer.alg}]
    max_token_lifetime: ${issuer.lifetimeSeconds}s
apis:
  - id: bench
    audience: ${AUDIENCE}
partners:
  - id: bench-partner
    agreement:
      id: BENCH-0001
      expires: 2099-12-31
${partnerLimit}    credentials:
      - id: bench-jwt
        type: jwt
        issuer: bench-idp
        client_id: ${CLIENT_ID}
    grants:
      - api: bench
        scopes: [${SCOPE}]
${limitProbePartner}routes:
  - id: bench
    zone: partner
    api: bench
    methods: [GET]
    path: /bench/{rest*}
    upstream: upstream
    auth: required
    scopes: [${SCOPE}]
    policies:
      - id: trial-reads-only
        require: request.method == "GET" || partner.tier != "trial"
${sections}`;
}

export interface Issuer {
  jwks: { keys: Array<Record<string, unknown>> };
  /**
   * `count` tokens for `clientId` (default: bench-partner's), each with its own `jti`; `claims`
   * replaces `iss` or `aud` (the peers' start-up probes: a token for another issuer or audience).
   * A negative lifetime mints expired tokens.
   */
  mint(count: number, lifetimeSeconds: number, clientId?: string, claims?: { iss?: string; aud?: string }): Promise<string[]>;
}

/** A fresh key pair for `alg` (RSA 2048 bits, or P-256), its JWKS and a token minter. */
export async function createIssuer(alg: JwtAlgorithm): Promise<Issuer> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(jwk, 'sha256');
  return {
    jwks: { keys: [{ ...jwk, kid, alg, use: 'sig' }] },
    async mint(count, lifetimeSeconds, clientId = CLIENT_ID, claims = {}) {
      const issuedAt = Math.floor(Date.now() / 1000);
      const tokens: string[] = new Array(count);
      // Signing runs in the libuv pool (WebCrypto): a few at a time keeps it busy. RS256 signing
      // is about 1 ms a token, so 20,000 take a few seconds; all before any measured run.
      let next = 0;
      const worker = async () => {
        while (next < count) {
          const i = next++;
          // RFC 9068 §2.2, as src/demo/dev-issuer.ts mints them: client credentials, so `sub`
          // is the client; a unique `jti` makes every token distinct.
          tokens[i] = await new SignJWT({ client_id: clientId, scope: SCOPE })
            .setProtectedHeader({ alg, typ: 'at+jwt', kid })
            .setIssuer(claims.iss ?? ISSUER)
            .setSubject(clientId)
            .setAudience(claims.aud ?? AUDIENCE)
            // An expired token was issued a minute before it expired, not after.
            .setIssuedAt(lifetimeSeconds > 0 ? issuedAt : issuedAt + lifetimeSeconds - 60)
            .setExpirationTime(issuedAt + lifetimeSeconds)
            .setJti(randomUUID())
            .sign(privateKey);
        }
      };
      await Promise.all(Array.from({ length: Math.min(16, count) }, worker));
      return tokens;
    },
  };
}

/**
 * How a rate-limit row limits bench-partner: far above what one core can serve (~2,000–4,000
 * req/s here), so the limit never refuses and the row measures what the check costs, not what
 * it refuses.
 */
export const BENCH_RATE_LIMIT = { rate: '1000000/s', burst: 100_000 } as const;

export interface JwtTargetOptions {
  /**
   * bench-partner gets `BENCH_RATE_LIMIT`, counted in this process (`local`) or in a
   * redis-server the row starts on the server core (`redis`: `rate_limits.mode: shared`).
   * Cached rows only.
   */
  rateLimit?: 'local' | 'redis';
  /** Top-level YAML appended to the config (issue 6: an `audit:` section). */
  extraConfig?: string;
  /** Added to the gateway's environment. */
  env?: Record<string, string>;
}

/** Starts a Portcullis target on the full authorization path with `alg` tokens, `cached` or not. */
export async function startJwtTarget(
  ctx: BenchContext,
  name: string,
  alg: JwtAlgorithm,
  cached: boolean,
  options: JwtTargetOptions = {},
): Promise<RunningTarget & { opsPort?: number }> {
  const paths = portcullisPaths(ctx, name);
  const issuerDir = join(paths.dir, 'issuer');
  mkdirSync(issuerDir, { recursive: true });
  const issuer = await createIssuer(alg);
  const jwksFile = join(issuerDir, 'jwks.json');
  writeFileSync(jwksFile, `${JSON.stringify(issuer.jwks, null, 2)}\n`);

  // The tokens must outlive the run; the issuer accepts exactly that lifetime.
  const lifetimeSeconds = Math.max(MIN_TOKEN_LIFETIME_SECONDS, Math.ceil(ctx.maxRunSeconds));
  // Uncached: the list wrk cycles through, plus three more for the start-up check, so that the
  // check leaves nothing in the cache that the list will send.
  const tokens = await issuer.mint(cached ? 1 : UNCACHED_TOKENS + 3, lifetimeSeconds);
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  if (options.rateLimit) {
    if (!cached) throw new Error('a rate-limit row sends one token (cached)');
    return startRateLimitTarget(ctx, name, { alg, jwksFile, lifetimeSeconds }, issuer, bearer(tokens[0]!), options.rateLimit);
  }

  const { opsPort, ...running } = await startPortcullis(
    ctx,
    name,
    (c, ports, stateDir) => jwtConfig(c, ports, stateDir, { alg, jwksFile, lifetimeSeconds }) + (options.extraConfig ?? ''),
    options.env,
  );
  const cacheCounter = tokenCacheCounter(`http://127.0.0.1:${opsPort}/metrics`);
  await cacheCounter(); // the baseline (the start-up check's few lookups fall in the first delta)
  const audit = async () => `${auditDecisionLog(paths.decisionLog, cached)}; ${checkCacheLookups(await cacheCounter(), cached)}`;
  const diagnose = () => refusals(paths.decisionLog);
  if (cached) return { ...running, opsPort, headers: bearer(tokens[0]!), afterRun: audit, diagnose };

  const tokensFile = join(issuerDir, 'tokens.txt');
  writeFileSync(tokensFile, `${tokens.slice(0, UNCACHED_TOKENS).join('\n')}\n`);
  return {
    ...running,
    wrkScript: {
      path: join(ctx.benchDir, 'targets', 'rotate-tokens.lua'),
      // The script keeps its place in the list in the position file, across wrk runs.
      args: [String(ctx.wrkThreads), tokensFile, join(issuerDir, 'tokens.position')],
    },
    checkRequests: tokens.slice(UNCACHED_TOKENS).map(bearer),
    afterRun: audit,
    diagnose,
  };
}

/**
 * The cached full path with a rate limit on bench-partner (issue 7: what the check costs, local
 * vs Redis). Before it is measured, the row shows its limiter is on: the limit-probe partner's
 * second request must be refused with 429. After each measured run it reads every decision
 * record written since the last check (not only the end of the log): a single refusal, a 429
 * above all, fails the row. The Redis row also checks that redis-server processed at least one
 * command per request served: the limit was counted there, not skipped.
 */
async function startRateLimitTarget(
  ctx: BenchContext,
  name: string,
  issuerConfig: { alg: JwtAlgorithm; jwksFile: string; lifetimeSeconds: number },
  issuer: Issuer,
  headers: Record<string, string>,
  mode: 'local' | 'redis',
): Promise<RunningTarget & { opsPort: number }> {
  const paths = portcullisPaths(ctx, name);
  // Pinned to the server core like the upstream: the round trip is part of the cost measured,
  // and Redis's CPU is not charged to the gateway's column (it is its own process).
  const redis = mode === 'redis' ? await startRedisServer(`${name}-redis`, join(paths.dir, 'redis'), ctx.serverCpu) : undefined;
  let running: RunningTarget & { opsPort: number };
  try {
    running = await startPortcullis(ctx, name, (c, ports, stateDir) =>
      jwtConfig(c, ports, stateDir, issuerConfig, {
        rateLimit: { ...BENCH_RATE_LIMIT, mode: redis ? 'shared' : 'local' },
        ...(redis ? { redis: { url: redis.url, keyPrefix: 'bench:' } } : {}),
      }),
    );
  } catch (error) {
    await redis?.stop();
    throw error;
  }
  const { opsPort, ...target } = running;
  const stopAll = async () => {
    await target.stop();
    await redis?.stop();
  };
  try {
    await proveLimiterIsOn(target.url, ctx.host, issuer, issuerConfig.lifetimeSeconds, paths.decisionLog);
  } catch (error) {
    await stopAll();
    throw error;
  }
  const cacheCounter = tokenCacheCounter(`http://127.0.0.1:${opsPort}/metrics`);
  await cacheCounter();
  // Everything before this offset is the limit probe's; everything after must be allowed.
  let offset = statSync(paths.decisionLog).size;
  let redisCommands = redis ? await redis.commandsProcessed() : 0;
  let redisCpuMicros = redis ? cpuMicros(redis.proc.pid) : 0;
  return {
    ...target,
    // For rows that add checks of their own (targets/full.ts reads the audit metrics).
    opsPort,
    stop: stopAll,
    headers,
    // Since the limit probe: its own 429 is not a refusal of the measured row.
    diagnose: () => {
      try {
        return describeRefusals(recordsSince(paths.decisionLog, offset).records, 'the');
      } catch {
        return undefined;
      }
    },
    async afterRun() {
      // The decision log is written in batches (every 25 ms at most): let the last one land.
      await new Promise((resolve) => setTimeout(resolve, 200));
      const read = recordsSince(paths.decisionLog, offset);
      offset = read.nextOffset;
      const notes = [auditAllAllowed(read.records), checkCacheLookups(await cacheCounter(), true)];
      if (redis) {
        const now = await redis.commandsProcessed();
        const commands = now - redisCommands - 1; // not the INFO that asked
        redisCommands = now;
        if (commands < read.records.length) {
          throw new Error(`redis-server processed ${commands.toLocaleString('en-US')} commands for ${read.records.length.toLocaleString('en-US')} requests: the shared limit was not counted in Redis on every request`);
        }
        // redis-server is not the gateway's child, so its CPU is not in the row's CPU column (and
        // counts as "others" on core 1): reported here, per request of the warm-up + measured run.
        const cpu = cpuMicros(redis.proc.pid);
        const perRequest = (cpu - redisCpuMicros) / read.records.length;
        redisCpuMicros = cpu;
        notes.push(`redis: ${commands.toLocaleString('en-US')} commands for ${read.records.length.toLocaleString('en-US')} requests, ${perRequest.toFixed(1)} CPU µs/req of its own`);
      }
      return notes.join('; ');
    },
  };
}

/**
 * A row whose limiter silently did nothing would report a cost of zero: the limit-probe partner
 * (one request an hour, no burst) sends two requests, and the second must be refused with 429
 * `ratelimit.exceeded`. Waits until both decision records are in the log, so they fall before
 * the offset the measured runs are checked from.
 */
async function proveLimiterIsOn(url: string, host: string, issuer: Issuer, lifetimeSeconds: number, decisionLog: string): Promise<void> {
  const [token] = await issuer.mint(1, lifetimeSeconds, LIMIT_PROBE_CLIENT_ID);
  const headers = { Host: host, authorization: `Bearer ${token!}` };
  const first = await httpGet(url, headers);
  const second = await httpGet(url, headers);
  if (first.status !== 200 || second.status !== 429) {
    await new Promise((resolve) => setTimeout(resolve, 300));
    const why = refusals(decisionLog);
    throw new Error(`the limit probe (1/h, no burst) answered ${first.status} then ${second.status}, not 200 then 429: the rate limiter is not on${why ? `; ${why}` : ''}`);
  }
  const deadline = Date.now() + 5000;
  for (;;) {
    const probe = recordsSince(decisionLog, 0).records.filter((r) => r.portcullis?.partner?.id === 'bench-limit-probe');
    if (probe.length >= 2) {
      if (probe[1]!.portcullis?.reason !== 'ratelimit.exceeded') throw new Error(`the limit probe's second request was refused for ${probe[1]!.portcullis?.reason}, not ratelimit.exceeded`);
      return;
    }
    if (Date.now() > deadline) throw new Error(`the limit probe's decision records did not reach ${decisionLog} within 5 s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Complete decision records (JSON lines) from byte `offset` to the last newline, and where the next read starts. */
function recordsSince(file: string, offset: number): { records: DecisionRecord[]; nextOffset: number } {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size <= offset) return { records: [], nextOffset: offset };
    const buffer = Buffer.alloc(size - offset);
    const length = readSync(fd, buffer, 0, buffer.length, offset);
    const end = buffer.subarray(0, length).lastIndexOf(10); // '\n'
    if (end < 0) return { records: [], nextOffset: offset };
    const records = buffer
      .subarray(0, end)
      .toString('utf8')
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as DecisionRecord);
    return { records, nextOffset: offset + end + 1 };
  } finally {
    closeSync(fd);
  }
}

/** Every record since the last check: allowed, for bench-partner on route bench, one token. */
function auditAllAllowed(records: readonly DecisionRecord[]): string {
  if (records.length === 0) throw new Error('no decision records since the last check');
  const refused = records.filter((r) => !(r.portcullis?.decision === 'allow' && r.portcullis.route === 'bench' && r.portcullis.partner?.id === 'bench-partner'));
  if (refused.length > 0) {
    const limited = refused.filter((r) => r.http?.response?.status_code === 429).length;
    throw new Error(
      `${refused.length} of ${records.length} requests since the last check were not allowed for bench-partner on route bench; ${describeRefusals(refused, 'those') ?? 'allowed, but not as the row claims'}` +
        (limited > 0 ? `; ${limited} answered 429: the limit refused during the run, so the row does not measure the cost of an allowing check` : ''),
    );
  }
  const jtis = new Set(records.map((r) => r.portcullis?.token?.jti));
  if (jtis.size !== 1) throw new Error(`the ${records.length} decision records since the last check name ${jtis.size} tokens, not 1`);
  return `all ${records.length.toLocaleString('en-US')} decision records since the last check allowed (none refused by the limit), all with the same token`;
}

export type CacheLookups = Record<'hit' | 'miss' | 'stale', number>;

/**
 * Reads `portcullis_token_cache_lookups_total` from the gateway's `/metrics`; each call returns
 * the lookups since the previous one (the warm-up and the measured run), or undefined when
 * this gateway does not export the counter (before the metrics landed).
 */
export function tokenCacheCounter(url: string): () => Promise<CacheLookups | undefined> {
  let previous: CacheLookups | undefined;
  return async () => {
    const { status, body } = await httpGet(url, {});
    if (status !== 200 || !body.includes('portcullis_token_cache_lookups_total')) return undefined;
    const now: CacheLookups = { hit: 0, miss: 0, stale: 0 };
    for (const match of body.matchAll(/^portcullis_token_cache_lookups_total\{result="(hit|miss|stale)"\} (\d+(?:\.\d+)?(?:e\+?\d+)?)$/gm)) {
      now[match[1] as keyof CacheLookups] = Number(match[2]);
    }
    const since = previous ? { hit: now.hit - previous.hit, miss: now.miss - previous.miss, stale: now.stale - previous.stale } : now;
    previous = now;
    return since;
  };
}

/**
 * The gateway's own count of cache lookups during the warm-up and measured run: in a cached row
 * at least 99 % hits (an entry is re-verified about once a minute), in an uncached row none.
 */
function checkCacheLookups(lookups: CacheLookups | undefined, cached: boolean): string {
  if (lookups === undefined) return 'no token cache metrics on this gateway';
  const total = lookups.hit + lookups.miss + lookups.stale;
  const text = `token cache: ${lookups.hit.toLocaleString('en-US')} hits, ${lookups.miss.toLocaleString('en-US')} misses, ${lookups.stale.toLocaleString('en-US')} stale`;
  if (total === 0) throw new Error(`${text}: the gateway looked up no token`);
  if (cached && lookups.hit < 0.99 * total) throw new Error(`${text}: a cached row must be answered from the cache`);
  if (!cached && lookups.hit > 0) throw new Error(`${text}: an uncached row must never be answered from the cache`);
  return text;
}

interface DecisionRecord {
  http?: { response?: { status_code?: number | null } };
  portcullis?: { decision?: string; reason?: string; detail?: string; route?: string | null; partner?: { id?: string } | null; token?: { jti?: string } | null };
}

/** The last `count` complete decision records of the file (JSON lines). */
function lastRecords(file: string, count: number): DecisionRecord[] {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const length = Math.min(size, count * 2048);
    const buffer = Buffer.alloc(length);
    readSync(fd, buffer, 0, length, size - length);
    const lines = buffer.toString('utf8').split('\n');
    if (length < size) lines.shift(); // starts mid-record
    const records: DecisionRecord[] = [];
    for (const line of lines) {
      if (line === '') continue;
      try {
        records.push(JSON.parse(line) as DecisionRecord);
      } catch {
        // the last line may still be being written
      }
    }
    return records.slice(-count);
  } finally {
    closeSync(fd);
  }
}

/**
 * Checks the end of the decision log: every request allowed on the bench route for the bench
 * partner, and the tokens as the row claims: one (cached) or all different (uncached).
 */
function auditDecisionLog(file: string, cached: boolean): string {
  const records = lastRecords(file, cached ? AUDITED_RECORDS : AUDITED_UNCACHED_RECORDS);
  if (records.length === 0) throw new Error(`no decision records in ${file}`);
  // `allow` is the gateway's decision; its reason is `allowed`, or `http.client_closed` for the
  // requests in flight when wrk stops and closes its connections.
  const allowed = records.filter((r) => r.portcullis?.decision === 'allow' && r.portcullis.route === 'bench' && r.portcullis.partner?.id === 'bench-partner');
  if (allowed.length !== records.length) {
    const why = refusals(file);
    throw new Error(`${records.length - allowed.length} of the last ${records.length} decision records are not allowed for bench-partner on route bench${why ? `; ${why}` : ''}`);
  }
  const jtis = new Set(records.map((r) => r.portcullis?.token?.jti));
  if (cached && jtis.size !== 1) throw new Error(`the last ${records.length} decision records name ${jtis.size} tokens, not 1: the cached row must send one token`);
  if (!cached && jtis.size !== records.length) {
    throw new Error(`the last ${records.length} decision records name only ${jtis.size} distinct tokens: the uncached row must not send a token again before the cache has evicted it`);
  }
  return `last ${records.length.toLocaleString('en-US')} decision records: all allowed, ${jtis.size === 1 ? 'all with the same token' : `${jtis.size.toLocaleString('en-US')} distinct tokens`}`;
}

/** The refusals at the end of the decision log, by reason, with the latest detail; undefined if none. */
function refusals(file: string): string | undefined {
  let records: DecisionRecord[];
  try {
    records = lastRecords(file, AUDITED_RECORDS);
  } catch {
    return undefined;
  }
  return describeRefusals(records, 'the last');
}

/** `decision log: N of <which> M requests refused (reason ×n, …); latest: …`, or undefined if none. */
function describeRefusals(records: readonly DecisionRecord[], which: string): string | undefined {
  const refused = records.filter((r) => r.portcullis?.decision !== 'allow');
  if (refused.length === 0) return undefined;
  const reasons = new Map<string, number>();
  for (const r of refused) reasons.set(r.portcullis?.reason ?? '?', (reasons.get(r.portcullis?.reason ?? '?') ?? 0) + 1);
  const latest = refused[refused.length - 1]!.portcullis;
  return (
    `decision log: ${refused.length} of ${which} ${records.length} requests refused (${[...reasons].map(([reason, n]) => `${reason} ×${n}`).join(', ')})` +
    (latest?.detail ? `; latest: ${latest.detail}` : '')
  );
}

/**
 * A peer JWT row's issuer (HAProxy + `jwt_verify`, fastify + fast-jwt): a fresh key pair, its
 * public half as an SPKI PEM file (what both peers take), the row's token, and the requests a
 * peer must refuse before it is measured.
 */
export interface PeerIssuer {
  /** PEM (SPKI) of the public key, in the row's folder. */
  publicKeyFile: string;
  /** `authorization: Bearer <the row's token>`: the same token on every request (neither peer caches a verification). */
  headers: Record<string, string>;
  /** Requests that must be refused (401 or 403): each names what is wrong with it. */
  refusals: Array<{ what: string; headers: Record<string, string> }>;
}

/** The other algorithm of the two the rows use: a token signed with it must be refused. */
const OTHER_ALGORITHM: Record<JwtAlgorithm, JwtAlgorithm> = { RS256: 'ES256', ES256: 'RS256' };

/** Mints the row's token and the probes' (see `PeerIssuer`) with keys made for this row only. */
export async function createPeerIssuer(ctx: Pick<BenchContext, 'maxRunSeconds'>, dir: string, alg: JwtAlgorithm): Promise<PeerIssuer> {
  mkdirSync(dir, { recursive: true });
  const issuer = await createIssuer(alg);
  const publicKeyFile = join(dir, 'public.pem');
  const publicKey = createPublicKey({ key: issuer.jwks.keys[0] as JsonWebKey, format: 'jwk' });
  writeFileSync(publicKeyFile, publicKey.export({ type: 'spki', format: 'pem' }));
  const lifetimeSeconds = Math.max(MIN_TOKEN_LIFETIME_SECONDS, Math.ceil(ctx.maxRunSeconds));
  const [token] = await issuer.mint(1, lifetimeSeconds);
  const [expired] = await issuer.mint(1, -120);
  const [otherIssuer] = await issuer.mint(1, lifetimeSeconds, undefined, { iss: 'https://other-issuer.bench.localhost' });
  const [otherAudience] = await issuer.mint(1, lifetimeSeconds, undefined, { aud: 'https://api.bench.localhost/other' });
  const [otherKey] = await (await createIssuer(alg)).mint(1, lifetimeSeconds);
  const [otherAlgorithm] = await (await createIssuer(OTHER_ALGORITHM[alg])).mint(1, lifetimeSeconds);
  const bearer = (value: string) => ({ authorization: `Bearer ${value}` });
  // RFC 7515 §5.2: any change to the signature must fail verification. The middle character, so
  // that the change is not in the last character's unused padding bits.
  const [header, payload, signature] = token!.split('.') as [string, string, string];
  const middle = signature.length >> 1;
  const tampered = `${header}.${payload}.${signature.slice(0, middle)}${signature[middle] === 'A' ? 'B' : 'A'}${signature.slice(middle + 1)}`;
  // RFC 7519 §6: an unsecured JWT, the payload of the row's token, no signature.
  const unsecured = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt' })).toString('base64url')}.${payload}.`;
  return {
    publicKeyFile,
    headers: bearer(token!),
    refusals: [
      { what: 'no Authorization header', headers: {} },
      { what: 'a tampered signature', headers: bearer(tampered) },
      { what: 'an unsecured token (alg: none)', headers: bearer(unsecured) },
      { what: 'a token signed by another key', headers: bearer(otherKey!) },
      { what: `a token signed with ${OTHER_ALGORITHM[alg]}`, headers: bearer(otherAlgorithm!) },
      { what: 'an expired token', headers: bearer(expired!) },
      { what: 'a token of another issuer', headers: bearer(otherIssuer!) },
      { what: 'a token for another audience', headers: bearer(otherAudience!) },
    ],
  };
}

/**
 * A peer that let a bad token through would be measured doing less than "verify the token":
 * before it is measured, each of `issuer.refusals` must be refused (401 or 403) and the row's
 * token must get 200 with the upstream's body.
 */
export async function proveTokenIsEnforced(url: string, host: string, issuer: PeerIssuer, body: string): Promise<void> {
  const wrong: string[] = [];
  for (const probe of issuer.refusals) {
    const answer = await httpGet(url, { Host: host, ...probe.headers });
    if (answer.status !== 401 && answer.status !== 403) wrong.push(`${probe.what}: ${answer.status}`);
  }
  const right = await httpGet(url, { Host: host, ...issuer.headers });
  if (right.status !== 200 || right.body !== body) wrong.push(`the row's token: ${right.status} ${JSON.stringify(right.body.slice(0, 100))}, not 200 with the upstream body`);
  if (wrong.length > 0) throw new Error(`the token is not enforced as the row claims (want 401 or 403): ${wrong.join('; ')}`);
}
