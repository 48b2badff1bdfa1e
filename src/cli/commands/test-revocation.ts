/**
 * `portcullis test revocation`: the revocation self-test for operators (issue 7). Calls through
 * every listed instance with a test credential, revokes it through the admin API, keeps calling
 * every instance until each refuses, and reports per instance how long after the revocation the
 * first refusal came — then lifts the revocation again. Partner-API security guidance asks for
 * exactly this test: that revoked credentials stop working at once, everywhere.
 *
 * Timing: every poll starts after the admin call returned, so "after return" is an upper bound
 * on how long the instance kept accepting; "accepted after return" counts the requests an
 * instance let through although the admin API had already answered — a correct deployment
 * shows 0 (the gateway confirms the push to every live instance before it answers).
 */
import http from 'node:http';
import https from 'node:https';
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { Command } from '../command.ts';
import { usageError as printUsageError } from '../command.ts';
import { adminRequest, describePropagation, resolveConnection, DEFAULT_ADMIN_URL } from './admin.ts';
import type { AdminConnection } from './admin.ts';

export const USAGE = `Usage: portcullis test revocation --targets URL[,URL…] --path /p
                                 (--token-file FILE | --api-key-file FILE)
                                 [--kind token|credential] [--credential ID]
                                 [--threshold 2s] [--interval 20ms] [--host HOST]
                                 [--admin URL | -c FILE] [--admin-token-file FILE]
                                 [--keep] [--format text|json]

Checks that a revocation bites at once on every instance. With a test credential that works:
  1. calls --path on every target (each must accept it, else exit 1 naming which);
  2. revokes the credential through the admin API (a token by its jti, read from the token
     without verifying it; an API key, or a token with --kind credential, by --credential ID);
  3. calls every target every --interval until each refuses with 401, or --threshold passes;
  4. reports per target the time from the admin call's return (and from its start) to the
     first refusal, how many requests it still accepted, and the propagation the admin API
     reported;
  5. removes the revocation it made (also when the test fails), unless --keep.

Use a credential made for this test: while the test runs, it is revoked everywhere. As a
safety net, the revocation expires by itself ten minutes after the test (or with the token)
in case the test is killed before it can clean up.

Options:
      --targets URLS          gateway instances, comma-separated (e.g. the partner listener
                              of each: https://10.0.0.1:8443,https://10.0.0.2:8443)
      --path /p               a path the credential may call (GET)
      --token-file FILE       file holding a bearer token (sent as Authorization: Bearer)
      --api-key-file FILE     file holding an API key (sent as X-API-Key)
      --kind KIND             what to revoke: token (default with --token-file) or credential
      --credential ID         the credential id in the configuration (with --kind credential
                              and with --api-key-file)
      --threshold DURATION    longest acceptable time to the first refusal (default 2s;
                              at most 5m)
      --interval DURATION     pause between calls to one target (default 20ms)
      --host HOST             Host header (and TLS server name) to send, when the target
                              URLs are addresses
      --ca FILE               CA certificate (PEM) to trust for https targets
      --keep                  leave the revocation in place
      --format FORMAT         text (default) or json
  -h, --help                  show this help

Admin API:
      --admin URL             the ops listener (default: the ops address of -c FILE, else
                              ${DEFAULT_ADMIN_URL})
  -c, --config FILE           the gateway's configuration (for its ops address)
      --admin-token-file FILE file holding the admin token (default: the
                              PORTCULLIS_ADMIN_TOKEN environment variable)

Exit status: 0 every target refused within the threshold (and the revocation was removed),
1 otherwise, 2 usage error.
`;

const MAX_TARGETS = 64;
const MAX_THRESHOLD_MS = 5 * 60_000;
const MAX_CALL_TIMEOUT_MS = 5000;
/** The safety net: how long a revocation left behind by a killed test lasts. */
const LEFTOVER_LIFETIME_MS = 10 * 60_000;

export const command: Command = {
  summary: 'Revocation self-test: revoke a test credential and time the refusal on every instance',
  usage: USAGE,
  async run(argv) {
    const parsed = await parseOptions(argv);
    if (!parsed.ok) return usageError(parsed.problem);
    return runTest(parsed.options);
  },
};

interface Options {
  readonly targets: readonly URL[];
  readonly path: string;
  readonly credential: { readonly header: 'authorization' | 'x-api-key'; readonly value: string };
  readonly revoke: { readonly kind: 'token' | 'credential'; readonly key: string; readonly tokenExpiresAt: number | null };
  readonly thresholdMs: number;
  readonly intervalMs: number;
  readonly host: string | null;
  readonly ca: Buffer | null;
  readonly keep: boolean;
  readonly format: 'text' | 'json';
  readonly admin: AdminConnection;
}

async function parseOptions(argv: readonly string[]): Promise<{ ok: true; options: Options } | { ok: false; problem: string }> {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        targets: { type: 'string' },
        path: { type: 'string' },
        'token-file': { type: 'string' },
        'api-key-file': { type: 'string' },
        kind: { type: 'string' },
        credential: { type: 'string' },
        threshold: { type: 'string', default: '2s' },
        interval: { type: 'string', default: '20ms' },
        host: { type: 'string' },
        ca: { type: 'string' },
        keep: { type: 'boolean', default: false },
        format: { type: 'string', default: 'text' },
        admin: { type: 'string' },
        config: { type: 'string', short: 'c' },
        'admin-token-file': { type: 'string' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    return { ok: false, problem: (error as Error).message };
  }
  if (values.targets === undefined) return { ok: false, problem: '--targets is required' };
  const targets: URL[] = [];
  for (const written of values.targets.split(',').map((entry) => entry.trim()).filter(Boolean)) {
    let url: URL;
    try {
      url = new URL(written);
    } catch {
      return { ok: false, problem: `target "${written}" is not a URL` };
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return { ok: false, problem: `target "${written}" must be http:// or https://` };
    if (url.username || url.password || url.search || url.hash) return { ok: false, problem: `target "${written}" must be a plain origin (and optional path prefix), without credentials, query or fragment` };
    targets.push(url);
  }
  if (targets.length === 0) return { ok: false, problem: '--targets lists no URL' };
  if (targets.length > MAX_TARGETS) return { ok: false, problem: `--targets lists ${targets.length} URLs; at most ${MAX_TARGETS}` };
  if (values.path === undefined || !values.path.startsWith('/')) return { ok: false, problem: '--path is required and must start with "/"' };
  if (/[\s#]/.test(values.path)) return { ok: false, problem: '--path must not contain whitespace or a fragment' };

  const thresholdMs = parseDuration(values.threshold);
  if (thresholdMs === null || thresholdMs < 1 || thresholdMs > MAX_THRESHOLD_MS) return { ok: false, problem: `--threshold "${values.threshold}" must be a duration between 1ms and 5m (e.g. 2s, 500ms)` };
  const intervalMs = parseDuration(values.interval);
  if (intervalMs === null || intervalMs < 1 || intervalMs > thresholdMs) return { ok: false, problem: `--interval "${values.interval}" must be a duration between 1ms and the threshold (e.g. 20ms)` };
  if (values.format !== 'text' && values.format !== 'json') return { ok: false, problem: '--format must be text or json' };

  if ((values['token-file'] === undefined) === (values['api-key-file'] === undefined)) return { ok: false, problem: 'give exactly one of --token-file FILE and --api-key-file FILE' };
  const isToken = values['token-file'] !== undefined;
  const kind = values.kind ?? (isToken ? 'token' : 'credential');
  if (kind !== 'token' && kind !== 'credential') return { ok: false, problem: '--kind must be token or credential' };
  if (!isToken && kind === 'token') return { ok: false, problem: 'an API key has no jti: use --kind credential --credential ID' };
  if (kind === 'credential' && values.credential === undefined) return { ok: false, problem: '--credential ID is required to revoke by credential (the id in the configuration)' };
  if (kind === 'token' && values.credential !== undefined) return { ok: false, problem: '--credential is for --kind credential' };

  const file = (isToken ? values['token-file'] : values['api-key-file'])!;
  let secret: string;
  try {
    secret = (await readFile(file, 'utf8')).trim();
  } catch (error) {
    return { ok: false, problem: `${isToken ? '--token-file' : '--api-key-file'} ${file} cannot be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}` };
  }
  if (secret === '' || /\s/.test(secret)) return { ok: false, problem: `${file} must hold the credential only (one line, no spaces)` };

  let revoke: Options['revoke'];
  if (kind === 'token') {
    const claims = unverifiedClaims(secret);
    if (claims === null) return { ok: false, problem: `${file} does not hold a JWT (header.payload.signature) whose jti could be read; use --kind credential --credential ID` };
    if (typeof claims['jti'] !== 'string' || claims['jti'] === '') return { ok: false, problem: 'the token has no jti claim, so it cannot be revoked on its own; use --kind credential --credential ID' };
    const exp = typeof claims['exp'] === 'number' ? claims['exp'] * 1000 : null;
    if (exp !== null && exp <= Date.now() + thresholdMs) return { ok: false, problem: 'the token expires before the test could end; use a fresh token' };
    revoke = { kind: 'token', key: claims['jti'], tokenExpiresAt: exp };
  } else {
    revoke = { kind: 'credential', key: values.credential!, tokenExpiresAt: null };
  }

  let ca: Buffer | null = null;
  if (values.ca !== undefined) {
    try {
      ca = await readFile(values.ca);
    } catch (error) {
      return { ok: false, problem: `--ca ${values.ca} cannot be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}` };
    }
  }
  const connection = await resolveConnection({ admin: values.admin, config: values.config, 'token-file': values['admin-token-file'] });
  if (!connection.ok) return { ok: false, problem: connection.problem.replace('--token-file', '--admin-token-file') };

  return {
    ok: true,
    options: {
      targets,
      path: values.path,
      credential: isToken ? { header: 'authorization', value: `Bearer ${secret}` } : { header: 'x-api-key', value: secret },
      revoke,
      thresholdMs,
      intervalMs,
      host: values.host ?? null,
      ca,
      keep: values.keep,
      format: values.format,
      admin: connection.connection,
    },
  };
}

/** `2s`, `20ms`, `1.5s`, `1m`; a bare number is milliseconds. */
export function parseDuration(text: string): number | null {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!match) return null;
  const value = Number(match[1]) * (match[2] === 's' ? 1000 : match[2] === 'm' ? 60_000 : 1);
  return Number.isFinite(value) ? Math.round(value) : null;
}

/** The payload of a JWS compact serialisation, not verified: only to read the jti to revoke. */
function unverifiedClaims(token: string): Record<string, unknown> | null {
  const parts = token.split('.');
  if (parts.length !== 3 || !/^[A-Za-z0-9_-]+$/.test(parts[1]!)) return null;
  try {
    const claims: unknown = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
    return typeof claims === 'object' && claims !== null && !Array.isArray(claims) ? (claims as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------

interface CallResult {
  readonly status: number | null;
  /** The problem `code` of a refusal, or the transport error. */
  readonly detail: string | null;
  /** performance.now() when the answer arrived. */
  readonly at: number;
}

export interface TargetReport {
  readonly url: string;
  readonly refused: boolean;
  /** Status and code of the first refusal, or of the last answer when none came. */
  readonly status: number | null;
  readonly detail: string | null;
  /** From the admin call's return (upper bound of the time the instance kept accepting). */
  readonly afterReturnMs: number | null;
  /** From the admin call's start. */
  readonly afterStartMs: number | null;
  /** Requests the instance accepted after the admin call had returned. */
  readonly acceptedAfterReturn: number;
  readonly requests: number;
  /** Answers that were neither an acceptance nor the expected 401 (e.g. 503), by status. */
  readonly otherAnswers: Readonly<Record<string, number>>;
  readonly withinThreshold: boolean;
}

export interface RevocationTestReport {
  readonly ok: boolean;
  readonly phase: 'admin' | 'baseline' | 'revoke' | 'poll';
  readonly problem: string | null;
  readonly revocation: { readonly kind: string; readonly key: string };
  readonly admin: { readonly url: string; readonly elapsedMs: number | null; readonly propagation: unknown };
  readonly thresholdMs: number;
  readonly intervalMs: number;
  readonly targets: readonly TargetReport[];
  readonly cleanup: 'removed' | 'kept' | 'not_needed' | string;
}

async function runTest(options: Options): Promise<number> {
  const agents = new Map<string, http.Agent>();
  const aborted = new AbortController();
  const onSignal = (): void => aborted.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let revoked = false;
  let report: Omit<RevocationTestReport, 'cleanup'>;
  let cleanup: RevocationTestReport['cleanup'] = 'not_needed';
  try {
    report = await revokeAndPoll(options, agents, aborted.signal, () => {
      revoked = true;
    });
  } finally {
    if (revoked) {
      if (options.keep) cleanup = 'kept';
      else {
        const removed = await adminRequest(options.admin, 'DELETE', `/admin/revocations/${options.revoke.kind}/${encodeURIComponent(options.revoke.key)}`);
        // 404: nothing to lift (someone removed it, or a failed revoke never applied it).
        cleanup = removed.ok ? 'removed' : removed.status === 404 ? 'not_needed' : `failed: ${removed.message}`;
      }
    }
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    for (const agent of agents.values()) agent.destroy();
  }
  const cleanupFailed = cleanup.startsWith('failed');
  const final: RevocationTestReport = { ...report, ok: report.ok && !cleanupFailed, cleanup };
  process.stdout.write(options.format === 'json' ? `${JSON.stringify(final, null, 2)}\n` : textReport(final, options));
  if (cleanupFailed) {
    process.stderr.write(`portcullis: the test revocation is still in place; remove it with: portcullis revoke remove ${options.revoke.kind} ${JSON.stringify(options.revoke.key)} --admin ${options.admin.url}\n`);
  }
  return final.ok ? 0 : 1;
}

async function revokeAndPoll(options: Options, agents: Map<string, http.Agent>, signal: AbortSignal, markRevoked: () => void): Promise<Omit<RevocationTestReport, 'cleanup'>> {
  const base = {
    revocation: { kind: options.revoke.kind, key: options.revoke.key },
    thresholdMs: options.thresholdMs,
    intervalMs: options.intervalMs,
  };
  const fail = (phase: RevocationTestReport['phase'], problem: string, targets: readonly TargetReport[] = [], admin: RevocationTestReport['admin'] = { url: options.admin.url, elapsedMs: null, propagation: null }) => ({
    ...base,
    ok: false,
    phase,
    problem,
    admin,
    targets,
  });

  // The admin API first: a bad token or URL should fail before any traffic. A revocation that
  // already exists is someone else's: the cleanup would lift it.
  const listed = await adminRequest(options.admin, 'GET', '/admin/revocations');
  if (!listed.ok) return fail('admin', listed.message);
  const existing = (listed.body['revocations'] ?? []) as Array<{ kind: string; key: string }>;
  if (existing.some((entry) => entry.kind === options.revoke.kind && entry.key === options.revoke.key)) {
    return fail('admin', `the ${options.revoke.kind} "${options.revoke.key}" is already revoked; the test would lift that revocation when it cleans up — use another test credential`);
  }

  const baseline = await Promise.all(options.targets.map((target) => call(options, agents, target, signal)));
  const refusing = baseline.map((result, index) => ({ result, url: options.targets[index]!.href })).filter(({ result }) => !accepted(result));
  if (refusing.length > 0) {
    return fail('baseline', `the credential must work on every target before the test, but ${refusing.map(({ url, result }) => `${url} answered ${describe(result)}`).join('; ')}`);
  }

  const leftoverUntil = Date.now() + options.thresholdMs + LEFTOVER_LIFETIME_MS;
  const expiresAt = options.keep ? options.revoke.tokenExpiresAt : Math.min(leftoverUntil, options.revoke.tokenExpiresAt ?? Infinity);
  const body = {
    kind: options.revoke.kind,
    key: options.revoke.key,
    reason: 'portcullis test revocation (self-test; removed when the test ends)',
    ...(expiresAt !== null ? { expires_at: new Date(expiresAt).toISOString() } : {}),
  };
  const start = performance.now();
  const created = await adminRequest(options.admin, 'POST', '/admin/revocations', body);
  const returned = performance.now();
  if (!created.ok) {
    // A 503 from a store may have applied it anyway: clean up as if it had.
    if (created.status === null || created.status >= 500) markRevoked();
    return fail('revoke', created.message);
  }
  markRevoked();
  const admin = { url: options.admin.url, elapsedMs: round(returned - start), propagation: created.body['propagation'] ?? null };

  const deadline = returned + options.thresholdMs;
  const targets = await Promise.all(options.targets.map((target) => pollUntilRefused(options, agents, target, signal, start, returned, deadline)));
  if (signal.aborted) return fail('poll', 'interrupted', targets, admin);
  const slow = targets.filter((target) => !target.withinThreshold);
  return {
    ...base,
    ok: slow.length === 0,
    phase: 'poll',
    problem: slow.length === 0 ? null : `${slow.length} of ${targets.length} target(s) did not refuse within ${options.thresholdMs} ms: ${slow.map((target) => target.url).join(', ')}`,
    admin,
    targets,
  };
}

async function pollUntilRefused(
  options: Options,
  agents: Map<string, http.Agent>,
  target: URL,
  signal: AbortSignal,
  start: number,
  returned: number,
  deadline: number,
): Promise<TargetReport> {
  let requests = 0;
  let acceptedAfterReturn = 0;
  let last: CallResult | null = null;
  const otherAnswers: Record<string, number> = {};
  while (!signal.aborted) {
    const result = await call(options, agents, target, signal, Math.max(1, Math.min(MAX_CALL_TIMEOUT_MS, deadline - performance.now() + 1000)));
    requests++;
    last = result;
    if (result.status === 401) {
      const afterReturnMs = round(result.at - returned);
      return {
        url: target.href,
        refused: true,
        status: 401,
        detail: result.detail,
        afterReturnMs,
        afterStartMs: round(result.at - start),
        acceptedAfterReturn,
        requests,
        otherAnswers,
        withinThreshold: result.at <= deadline,
      };
    }
    if (accepted(result)) acceptedAfterReturn++;
    else otherAnswers[result.status === null ? 'error' : String(result.status)] = (otherAnswers[result.status === null ? 'error' : String(result.status)] ?? 0) + 1;
    const now = performance.now();
    if (now >= deadline) break;
    await sleep(Math.min(options.intervalMs, deadline - now), signal);
  }
  return {
    url: target.href,
    refused: false,
    status: last?.status ?? null,
    detail: last?.detail ?? null,
    afterReturnMs: null,
    afterStartMs: null,
    acceptedAfterReturn,
    requests,
    otherAnswers,
    withinThreshold: false,
  };
}

function accepted(result: CallResult): boolean {
  return result.status !== null && result.status >= 200 && result.status < 400;
}

function describe(result: CallResult): string {
  return result.status === null ? `no answer (${result.detail})` : `${result.status}${result.detail ? ` ${result.detail}` : ''}`;
}

/** One GET through a kept-alive connection per target, so connection setup does not blur the timing. */
function call(options: Options, agents: Map<string, http.Agent>, target: URL, signal: AbortSignal, timeoutMs = MAX_CALL_TIMEOUT_MS): Promise<CallResult> {
  const secure = target.protocol === 'https:';
  let agent = agents.get(target.href);
  if (agent === undefined) {
    agent = secure
      ? new https.Agent({ keepAlive: true, maxSockets: 1, ...(options.ca ? { ca: options.ca } : {}), ...(options.host ? { servername: options.host } : {}) })
      : new http.Agent({ keepAlive: true, maxSockets: 1 });
    agents.set(target.href, agent);
  }
  const prefix = target.pathname.replace(/\/+$/, '');
  return new Promise((resolve) => {
    const request = (secure ? https : http).request(
      {
        protocol: target.protocol,
        hostname: target.hostname.replace(/^\[|\]$/g, ''),
        port: target.port || (secure ? 443 : 80),
        path: `${prefix}${options.path}`,
        method: 'GET',
        agent,
        headers: { [options.credential.header]: options.credential.value, ...(options.host ? { host: options.host } : {}), accept: 'application/json, application/problem+json, */*' },
        signal,
        timeout: timeoutMs,
      },
      (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          // Only a refusal body is looked at; keep at most a little of anything else.
          if (size < 4096) chunks.push(chunk);
          size += chunk.length;
        });
        response.on('end', () => resolve({ status: response.statusCode ?? null, detail: problemCode(response.headers['content-type'], Buffer.concat(chunks)), at: performance.now() }));
        response.on('error', (error) => resolve({ status: null, detail: error.message, at: performance.now() }));
      },
    );
    request.on('timeout', () => request.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    request.on('error', (error: NodeJS.ErrnoException) => resolve({ status: null, detail: error.code ?? error.message, at: performance.now() }));
    request.end();
  });
}

function problemCode(contentType: string | undefined, body: Buffer): string | null {
  if (contentType === undefined || !contentType.startsWith('application/problem+json')) return null;
  try {
    const problem = JSON.parse(body.toString('utf8')) as { code?: unknown };
    return typeof problem.code === 'string' ? problem.code : null;
  } catch {
    return null;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

function textReport(report: RevocationTestReport, options: Options): string {
  const lines: string[] = [];
  lines.push(`revocation self-test: ${report.revocation.kind} ${JSON.stringify(report.revocation.key)}, admin API ${report.admin.url}`);
  if (report.admin.elapsedMs !== null) lines.push(`admin call took ${report.admin.elapsedMs} ms; ${describePropagation(report.admin.propagation)}`);
  if (report.targets.length > 0) {
    const rows = report.targets.map((target) => [
      target.url,
      target.refused ? `401${target.detail ? ` ${target.detail}` : ''}` : `none (last: ${target.status ?? 'no answer'})`,
      target.afterReturnMs === null ? '-' : `${target.afterReturnMs} ms`,
      target.afterStartMs === null ? '-' : `${target.afterStartMs} ms`,
      String(target.acceptedAfterReturn),
      String(target.requests),
      target.withinThreshold ? 'ok' : 'FAIL',
    ]);
    const header = ['TARGET', 'FIRST REFUSAL', 'AFTER RETURN', 'AFTER START', 'ACCEPTED AFTER', 'REQUESTS', 'RESULT'];
    const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
    for (const row of [header, ...rows]) lines.push(`  ${row.map((cell, column) => cell.padEnd(widths[column]!)).join('  ')}`.trimEnd());
    for (const target of report.targets) {
      const others = Object.entries(target.otherAnswers);
      if (others.length > 0) lines.push(`  ${target.url}: other answers while polling: ${others.map(([status, count]) => `${status}×${count}`).join(', ')}`);
    }
  }
  if (report.ok) {
    const slowest = Math.max(...report.targets.map((target) => target.afterReturnMs ?? 0));
    lines.push(`PASS: every target refused within ${options.thresholdMs} ms (slowest: ${slowest} ms after the admin call returned)`);
  } else {
    lines.push(`FAIL (${report.phase}): ${report.problem ?? 'the revocation could not be removed'}`);
  }
  lines.push(`cleanup: ${report.cleanup === 'not_needed' ? 'nothing to remove' : report.cleanup === 'kept' ? 'revocation kept (--keep)' : report.cleanup === 'removed' ? 'revocation removed' : report.cleanup}`);
  return `${lines.join('\n')}\n`;
}

function usageError(message: string): number {
  return printUsageError('test revocation', USAGE, message);
}
