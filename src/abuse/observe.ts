/**
 * Feeds the abuse guard from finished requests (called once per decision record): an
 * authentication failure counts against the source address, an authorization refusal against
 * the credential that was refused. Upstream statuses never count — a 401 from the upstream is
 * the upstream's business, and its reason is `allowed`.
 */
import { PROBLEMS, REASONS } from '../errors.ts';
import type { Reason } from '../errors.ts';
import type { Snapshot } from '../config/snapshot.ts';
import { log } from '../log.ts';
import { sourceKey } from './guard.ts';
import type { AbuseGuard } from './guard.ts';

export interface OutcomeFacts {
  readonly clientIp: string;
  /** The authenticated credential, when stage 3 established one. */
  readonly credentialId: string | null;
  readonly reason: Reason;
  /** Status sent, or null when none was. */
  readonly status: number | null;
}

/**
 * One authentication failure from `clientIp` (a 401 of the pipeline, or of the token endpoint's
 * client authentication): true, and logged, when it starts a block.
 */
export function countAuthenticationFailure(guard: AbuseGuard, snapshot: Snapshot, clientIp: string, reason: string, nowMs: number): boolean {
  const perSource = snapshot.abuse.perSource;
  if (perSource === null) return false;
  const blocked = guard.recordAuthFailure(clientIp, perSource, nowMs);
  if (blocked) {
    log('warn', 'abuse.source_blocked', {
      source: sourceKey(clientIp),
      client_ip: clientIp,
      reason,
      max: perSource.max,
      window_ms: perSource.windowMs,
      until: new Date(nowMs + perSource.blockMs).toISOString(),
    });
  }
  return blocked;
}

export function observeOutcome(guard: AbuseGuard, snapshot: Snapshot, facts: OutcomeFacts, nowMs: number): { blockedSource: boolean; blockedCredential: boolean } {
  let blockedSource = false;
  let blockedCredential = false;
  if (isAuthenticationFailure(facts.reason)) blockedSource = countAuthenticationFailure(guard, snapshot, facts.clientIp, facts.reason, nowMs);
  const perCredential = snapshot.abuse.perCredential;
  if (perCredential !== null && facts.credentialId !== null && isAuthorizationDenial(facts.reason)) {
    blockedCredential = guard.recordDenial(facts.credentialId, perCredential, nowMs);
    if (blockedCredential) {
      log('warn', 'abuse.credential_blocked', {
        credential: facts.credentialId,
        client_ip: facts.clientIp,
        reason: facts.reason,
        max: perCredential.max,
        window_ms: perCredential.windowMs,
        until: new Date(nowMs + perCredential.blockMs).toISOString(),
      });
    }
  }
  return { blockedSource, blockedCredential };
}

/**
 * Any reason whose public problem is a 401: the caller failed to prove who it is. A DPoP nonce
 * challenge is not a failure but a step of the protocol (RFC 9449 §8): a client meets it in the
 * normal course and must not be blocked for it.
 */
export function isAuthenticationFailure(reason: Reason): boolean {
  const code = REASONS[reason];
  return code !== null && code !== 'use_dpop_nonce' && PROBLEMS[code].status === 401;
}

/**
 * Refusals of an authenticated caller by authorization: it asked for what it is not granted.
 * Partner status and agreement refusals are not probing (the partner cannot change them), and
 * rate-limit refusals have their own answer.
 */
export function isAuthorizationDenial(reason: Reason): boolean {
  return (
    reason.startsWith('grant.') ||
    reason.startsWith('scope.') ||
    reason.startsWith('purpose.') ||
    reason.startsWith('policy.') ||
    reason === 'partner.source_network'
  );
}
