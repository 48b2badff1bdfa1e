/**
 * Issue 8: Portcullis with everything a partner request goes through in production, the rows the
 * peers (HAProxy + jwt_verify, fastify + fast-jwt) are measured against. No config of its own:
 *
 * - `portcullis-full-rs256` / `-es256`: the rate-limit row of targets/jwt.ts counted in the
 *   gateway (`startJwtTarget(…, { rateLimit: 'local' })`): route match, a cached token, partner
 *   binding, agreement, grant and scope, one CEL rule, a partner rate limit that never refuses
 *   (proved on before the run), and the default audit trail (hash-chained, `flush: interval`);
 * - `portcullis-full-mtls-bound`: the keep-alive mTLS row of targets/mtls.ts (client certificate
 *   required, partner CA + cached OCSP answer, a token bound to the certificate), driven by the
 *   TLS load generator. It has no rate limit: proving one on would take a second partner with
 *   its own PKI there.
 *
 * On top of what those rows check after each measured run, these prove the audit trail kept up:
 * the gateway's count of audit records written grew by at least the requests of the measured run.
 */
import type { BenchContext, MeasuredRun, RunningTarget, Target } from '../lib/target.ts';
import { httpGet } from '../lib/procs.ts';
import type { JwtAlgorithm } from './jwt.ts';
import { BENCH_RATE_LIMIT, startJwtTarget } from './jwt.ts';
import { startMtlsTarget } from './mtls.ts';
import { serveUnavailable } from './portcullis.ts';

const RECORDS_WRITTEN = 'portcullis_audit_records_written_total';

/** The trail flushes every 100 ms (`interval`): after a run, the last batch lands within this. */
const FLUSH_GRACE_MS = 300;

async function recordsWritten(ops: string): Promise<number> {
  const { status, body } = await httpGet(`${ops}/metrics`, {});
  if (status !== 200) throw new Error(`${ops}/metrics answered ${status}`);
  let sum = 0;
  let found = false;
  // Summed over any labels (one series per stream or sink).
  for (const match of body.matchAll(new RegExp(`^${RECORDS_WRITTEN}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))) {
    sum += Number(match[1]);
    found = true;
  }
  if (!found) throw new Error(`${ops}/metrics has no ${RECORDS_WRITTEN}: cannot tell that the audit trail is written`);
  return sum;
}

/** Adds the audit-trail check to `target.afterRun` (see the file comment). */
async function withTrailCheck(target: RunningTarget & { opsPort?: number }): Promise<RunningTarget> {
  const { opsPort, ...running } = target;
  if (opsPort === undefined) {
    await running.stop();
    throw new Error('the row did not say where its ops listener is: cannot read its audit metrics');
  }
  const ops = `http://127.0.0.1:${opsPort}`;
  let previous: number;
  try {
    previous = await recordsWritten(ops);
  } catch (error) {
    await running.stop();
    throw error;
  }
  const baseAfterRun = running.afterRun;
  return {
    ...running,
    async afterRun(run: MeasuredRun) {
      const base = baseAfterRun ? await baseAfterRun(run) : undefined;
      await new Promise((resolve) => setTimeout(resolve, FLUSH_GRACE_MS));
      const now = await recordsWritten(ops);
      const written = now - previous;
      previous = now;
      // The warm-up's records count too, so a trail that keeps up is well above the measured requests.
      if (written < run.requests) {
        throw new Error(`the audit trail wrote ${written.toLocaleString('en-US')} records during a run of ${run.requests.toLocaleString('en-US')} requests (and its warm-up)`);
      }
      const trail = `audit trail: ${written.toLocaleString('en-US')} records written (warm-up + measured run)`;
      return base ? `${base}; ${trail}` : trail;
    },
  };
}

export function fullTarget(alg: JwtAlgorithm): Target {
  const name = `portcullis-full-${alg.toLowerCase()}`;
  return {
    name,
    description:
      `wrk → Portcullis full enforcement (partner route, ${alg} JWT cached, partner binding, agreement + grant + scope, one CEL rule, ` +
      `local rate limit ${BENCH_RATE_LIMIT.rate} never refusing, chained audit trail flushed every 100 ms) → nginx`,
    unavailable: serveUnavailable,
    start: async (ctx: BenchContext) => withTrailCheck(await startJwtTarget(ctx, name, alg, true, { rateLimit: 'local' })),
  };
}

export function fullMtlsTarget(): Target {
  const name = 'portcullis-full-mtls-bound';
  return {
    name,
    description:
      'TLS load generator → Portcullis full enforcement over mutual TLS, keep-alive (client certificate + partner CA + cached OCSP, RS256 token bound to the certificate, ' +
      'agreement + grant + scope, one CEL rule, chained audit trail; no rate limit) → nginx',
    unavailable: serveUnavailable,
    start: async (ctx: BenchContext) => withTrailCheck(await startMtlsTarget(ctx, name, 'mtls')),
  };
}
