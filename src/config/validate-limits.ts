/**
 * Semantic checks of shared state, the admin API, rate limits and partner networks (issue 7):
 * what the schema cannot see field by field.
 */
import { compileNetworks } from '../policy/grants.ts';
import { isTimeZone } from '../ratelimit/calendar.ts';
import type { ConfigView } from './config-view.ts';
import type { PendingIssue } from './issues.ts';
import { INSECURE_ACKS } from './schema.ts';

/** Serving a stale revocation set is tolerable for minutes at most. */
const MAX_SERVE_LAST_KNOWN_MS = 10 * 60_000;

export function stateChecks(view: ConfigView): PendingIssue[] {
  const issues: PendingIssue[] = [];
  const { state } = view;
  const redis = state.redis;
  if (state.driver === 'redis' && redis === undefined) {
    issues.push({ code: 'CONFIG_INVALID_TYPE', path: ['state', 'driver'], message: 'driver "redis" needs a "state.redis" section (url, sentinel or cluster)' });
  }
  if (state.driver !== 'redis' && redis !== undefined && state.driver !== undefined) {
    issues.push({ code: 'CONFIG_CONFLICT', path: ['state', 'redis'], message: `"state.redis" is set but the driver is "${state.driver}": set "driver: redis" or remove the section` });
  }
  if (redis !== undefined) {
    const written = state.redisWritten ?? new Set<string>();
    const targets = (['url', 'sentinel', 'cluster'] as const).filter((key) => written.has(key));
    if (targets.length !== 1) {
      issues.push({
        code: targets.length === 0 ? 'CONFIG_INVALID_TYPE' : 'CONFIG_CONFLICT',
        path: targets.length === 0 ? ['state', 'redis'] : ['state', 'redis', targets[1]!],
        message: targets.length === 0 ? 'exactly one of "url", "sentinel" or "cluster" is needed' : `exactly one of "url", "sentinel" or "cluster": ${targets.join(' and ')} are both set`,
      });
    }
    if (redis.on_disconnect === 'serve_last_known' && !written.has('acknowledge')) {
      issues.push({
        code: 'CONFIG_INSECURE_UNACKNOWLEDGED',
        path: ['state', 'redis', 'on_disconnect'],
        message: `"serve_last_known" keeps serving while revocations cannot be learnt; set "acknowledge: ${INSECURE_ACKS.serveLastKnownState}"`,
      });
    }
    if (redis.serve_last_known_for !== undefined && redis.serve_last_known_for > MAX_SERVE_LAST_KNOWN_MS) {
      issues.push({ code: 'CONFIG_INVALID_VALUE', path: ['state', 'redis', 'serve_last_known_for'], message: 'at most 10m: a stale revocation set must not be served for longer' });
    }
  }
  return issues;
}

export function adminChecks(view: ConfigView): PendingIssue[] {
  const issues: PendingIssue[] = [];
  const seenIds = new Map<string, number>();
  const seenHashes = new Map<string, number>();
  (view.admin.tokens ?? []).forEach((token, index) => {
    const sameId = seenIds.get(token.id);
    if (sameId !== undefined) issues.push({ code: 'CONFIG_DUPLICATE_ID', path: ['admin', 'tokens', index, 'id'], message: `duplicate admin token id "${token.id}" (also tokens[${sameId}])` });
    const sameHash = seenHashes.get(token.sha256);
    if (sameHash !== undefined) issues.push({ code: 'CONFIG_DUPLICATE_ID', path: ['admin', 'tokens', index, 'sha256'], message: `the same token is listed twice (also tokens[${sameHash}])` });
    seenIds.set(token.id, index);
    seenHashes.set(token.sha256, index);
  });
  return issues;
}

export function limitChecks(view: ConfigView): PendingIssue[] {
  const issues: PendingIssue[] = [];
  view.partners.entries.forEach((partner, partnerIndex) => {
    if (partner.source_networks !== undefined) {
      const compiled = compileNetworks(partner.source_networks);
      if (!compiled.ok) issues.push({ code: 'CONFIG_INVALID_VALUE', path: ['partners', partnerIndex, 'source_networks', compiled.index], message: compiled.message });
    }
    (partner.quotas ?? []).forEach((quota, index) => {
      const problem = timeZoneProblem(quota.timezone);
      if (problem) issues.push({ code: 'CONFIG_INVALID_VALUE', path: ['partners', partnerIndex, 'quotas', index, 'timezone'], message: problem });
    });
    if (partner.tier !== undefined && view.rateLimits.tiers !== undefined && Object.keys(view.rateLimits.tiers).length > 0 && !(partner.tier in view.rateLimits.tiers)) {
      issues.push({
        code: 'CONFIG_DANGLING_REF',
        path: ['partners', partnerIndex, 'tier'],
        message: `tier "${partner.tier}" has no entry in rate_limits.tiers (defined: ${Object.keys(view.rateLimits.tiers).join(', ')}): its partners would get no default limits`,
      });
    }
  });
  for (const [tier, settings] of Object.entries(view.rateLimits.tiers ?? {})) {
    settings.quotas.forEach((quota, index) => {
      const problem = timeZoneProblem(quota.timezone);
      if (problem) issues.push({ code: 'CONFIG_INVALID_VALUE', path: ['rate_limits', 'tiers', tier, 'quotas', index, 'timezone'], message: problem });
    });
  }
  return issues;
}

function timeZoneProblem(timezone: string): string | null {
  if (isTimeZone(timezone)) return null;
  return /^[+-]/.test(timezone)
    ? `"${timezone}" is a UTC offset, not an IANA time zone name (e.g. Europe/Berlin, UTC)`
    : `unknown time zone "${timezone}" (expected an IANA name such as Europe/Berlin)`;
}
