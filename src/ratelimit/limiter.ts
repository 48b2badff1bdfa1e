/**
 * Rate limits and quotas of one request (stage 5, ECOSYSTEM.md §2.19). Every limit that applies
 * must pass:
 *
 * - the partner's GCRA limit (its own, else its tier's), key `p:<partner>`;
 * - the credential's, key `c:<credential>`;
 * - the route's, key `r:<route>:p:<partner>` or `r:<route>:c:<credential>` (route `per`);
 * - then the partner's quotas over calendar windows, key `q:<partner>:<day|month>`.
 *
 * Keys are built from the authenticated identity only — never from a request header such as
 * `X-Forwarded-For`, which the caller controls.
 *
 * Order matters: GCRA limits first, in the order above, quotas last, so a request refused by a
 * rate limit never consumes quota. The check stops at the first refusal; a limit that allowed
 * the request before a later one refused it has counted it. That is the usual behaviour of
 * chained limiters (Envoy's descriptors, Kong's plugins) and it errs on the strict side: a
 * caller who ignores 429s drains its own buckets, no one else's.
 *
 * Modes (`rate_limits.mode`): `local` decides GCRA limits in this process, synchronously — the
 * common path (no quotas) returns a decision, not a promise; `shared` asks the state store, exact
 * across instances. Quotas always go through the store, in both modes: they must survive restarts.
 * When the store fails, the request is refused (503 `state.unavailable`, SECURITY.md item 2).
 */
import type { CompiledCredential, CompiledPartner, CompiledQuota, CompiledRoute, RateLimitSpec, Snapshot } from '../config/snapshot.ts';
import type { RefusalReason } from '../errors.ts';
import type { GcraResult, QuotaResult, StateStore } from '../state/store.ts';
import { LocalGcra } from './local-gcra.ts';
import type { LocalGcraOptions } from './local-gcra.ts';
import { windowEnd } from './calendar.ts';

export type RateDecision =
  | { readonly allowed: true; readonly headers: Record<string, string> | null }
  | {
      readonly allowed: false;
      readonly reason: RefusalReason;
      /** Operator-facing: goes to the decision record, never to the caller. */
      readonly detail: string;
      readonly retryAfterSeconds: number;
      /** Response headers of the refusal; always `retry-after`. */
      readonly headers: Record<string, string> | null;
    };

export interface RateCheckInput {
  readonly snapshot: Snapshot;
  readonly partner: CompiledPartner;
  readonly credential: CompiledCredential;
  readonly route: CompiledRoute;
}

export interface RateLimiterOptions {
  /** Clock (ms since the epoch). When set, it is also handed to the store, so tests control time. */
  readonly now?: () => number;
  readonly local?: LocalGcraOptions;
}

/** How long a caller refused because the state store failed is asked to wait. */
const STATE_UNAVAILABLE_RETRY_SECONDS = 5;

interface GcraCheck {
  /** Policy name in the RateLimit headers. */
  readonly policy: string;
  readonly key: string;
  readonly spec: RateLimitSpec;
  readonly subject: string;
}

/** What one limit said, for the RateLimit headers: the most constraining one is described. */
interface LimitState {
  /** `RateLimit-Policy` item, e.g. `"partner";q=100;w=1`. */
  readonly policyItem: string;
  readonly policy: string;
  readonly remaining: number;
  readonly resetSeconds: number;
}

export class RateLimiter {
  readonly #store: StateStore;
  readonly #now: () => number;
  /** Only an injected clock is passed to the store; otherwise the store keeps its own time. */
  readonly #clockInjected: boolean;
  readonly #local: LocalGcra;

  constructor(store: StateStore, options: RateLimiterOptions = {}) {
    this.#store = store;
    this.#now = options.now ?? Date.now;
    this.#clockInjected = options.now !== undefined;
    this.#local = new LocalGcra(options.local);
  }

  check(input: RateCheckInput): RateDecision | Promise<RateDecision> {
    const checks = gcraChecks(input);
    const quotas = input.partner.limits.quotas;
    if (checks.length === 0 && quotas.length === 0) return ALLOWED_WITHOUT_HEADERS;
    const nowMs = this.#now();
    const withHeaders = input.snapshot.rateLimits.headers;
    if (input.snapshot.rateLimits.mode === 'shared') return this.#checkShared(input, checks, nowMs, withHeaders);

    const states: LimitState[] = [];
    for (const check of checks) {
      const result = this.#local.check(check.key, check.spec, nowMs);
      const refusal = this.#gcraOutcome(check, result, states, withHeaders);
      if (refusal !== null) return refusal;
    }
    if (quotas.length === 0) return allowed(states, withHeaders);
    return this.#checkQuotas(input.partner, quotas, nowMs, states, withHeaders);
  }

  async #checkShared(input: RateCheckInput, checks: readonly GcraCheck[], nowMs: number, withHeaders: boolean): Promise<RateDecision> {
    const states: LimitState[] = [];
    for (const check of checks) {
      let result: GcraResult;
      try {
        result = await this.#store.gcra(check.key, check.spec, this.#clockInjected ? nowMs : undefined);
      } catch (error) {
        return stateUnavailable(`rate-limit store failed on ${check.subject}: ${messageOf(error)}`);
      }
      const refusal = this.#gcraOutcome(check, result, states, withHeaders);
      if (refusal !== null) return refusal;
    }
    if (input.partner.limits.quotas.length === 0) return allowed(states, withHeaders);
    return this.#checkQuotas(input.partner, input.partner.limits.quotas, nowMs, states, withHeaders);
  }

  /** Returns the refusal when the limit refused; else notes its state for the RateLimit fields. */
  #gcraOutcome(check: GcraCheck, result: GcraResult, states: LimitState[], withHeaders: boolean): RateDecision | null {
    // The common path (allowed, fields off) allocates nothing.
    if (result.allowed && !withHeaders) return null;
    const state: LimitState | null = withHeaders
      ? { policyItem: gcraPolicyItem(check.policy, check.spec), policy: check.policy, remaining: result.remaining, resetSeconds: Math.max(0, Math.ceil(result.resetMs / 1000)) }
      : null;
    if (result.allowed) {
      states.push(state!);
      return null;
    }
    const retryAfterSeconds = Math.max(1, Math.ceil(result.retryAfterMs / 1000));
    return refused('ratelimit.exceeded', `${check.subject} rate limit ${describeRate(check.spec)} exceeded`, retryAfterSeconds, state && { ...state, remaining: 0 });
  }

  async #checkQuotas(partner: CompiledPartner, quotas: readonly CompiledQuota[], nowMs: number, states: LimitState[], withHeaders: boolean): Promise<RateDecision> {
    const seen = new Map<string, number>();
    for (const quota of quotas) {
      let endMs: number;
      try {
        endMs = windowEnd(quota.per, quota.timezone, nowMs);
      } catch (error) {
        // Only an unknown time zone gets here, which the configuration should have refused.
        return { allowed: false, reason: 'gateway.internal_error', detail: `quota of partner ${partner.id}: ${messageOf(error)}`, retryAfterSeconds: 0, headers: null };
      }
      // Two quotas over the same period (say, two time zones) must not share one counter.
      const repeat = seen.get(quota.per) ?? 0;
      seen.set(quota.per, repeat + 1);
      const key = repeat === 0 ? `q:${partner.id}:${quota.per}` : `q:${partner.id}:${quota.per}:${repeat}`;
      let result: QuotaResult;
      try {
        result = await this.#store.quota(key, quota.limit, endMs, this.#clockInjected ? nowMs : undefined);
      } catch (error) {
        return stateUnavailable(`quota store failed for partner ${partner.id}: ${messageOf(error)}`);
      }
      const resetSeconds = Math.max(1, Math.ceil((result.resetAt - nowMs) / 1000));
      const policy = repeat === 0 ? quota.per : `${quota.per}-${repeat + 1}`;
      const state: LimitState = {
        // No `w`: a calendar day or month has no fixed length (DST, 28–31 days); `t` says when it ends.
        policyItem: `${sfString(policy)};q=${quota.limit}`,
        policy,
        remaining: Math.max(0, result.limit - result.used),
        resetSeconds,
      };
      if (!result.allowed) {
        return refused(
          'quota.exceeded',
          `partner ${partner.id} quota of ${quota.limit} per ${quota.per} (${quota.timezone}) exhausted until ${new Date(result.resetAt).toISOString()}`,
          resetSeconds,
          withHeaders ? { ...state, remaining: 0 } : null,
        );
      }
      states.push(state);
    }
    return allowed(states, withHeaders);
  }
}

const ALLOWED_WITHOUT_HEADERS: RateDecision = Object.freeze({ allowed: true, headers: null });

function gcraChecks({ partner, credential, route }: RateCheckInput): GcraCheck[] {
  const checks: GcraCheck[] = [];
  if (partner.limits.rate !== null) {
    checks.push({ policy: 'partner', key: `p:${partner.id}`, spec: partner.limits.rate, subject: `partner ${partner.id}` });
  }
  if (credential.rateLimit !== null) {
    checks.push({ policy: 'credential', key: `c:${credential.id}`, spec: credential.rateLimit, subject: `credential ${credential.id}` });
  }
  if (route.rateLimit !== null) {
    const perCredential = route.rateLimit.per === 'credential';
    checks.push({
      policy: 'route',
      key: perCredential ? `r:${route.id}:c:${credential.id}` : `r:${route.id}:p:${partner.id}`,
      spec: route.rateLimit,
      subject: perCredential ? `route ${route.id} for credential ${credential.id}` : `route ${route.id} for partner ${partner.id}`,
    });
  }
  return checks;
}

function allowed(states: readonly LimitState[], withHeaders: boolean): RateDecision {
  if (!withHeaders || states.length === 0) return ALLOWED_WITHOUT_HEADERS;
  return { allowed: true, headers: rateLimitHeaders(mostConstraining(states)) };
}

function refused(reason: RefusalReason, detail: string, retryAfterSeconds: number, state: LimitState | null): RateDecision {
  // RFC 9110 §10.2.3 / RFC 6585 §4: a 429 says when to come back, in whole seconds.
  const headers: Record<string, string> = { 'retry-after': String(retryAfterSeconds) };
  if (state !== null) Object.assign(headers, rateLimitHeaders(state));
  return { allowed: false, reason, detail, retryAfterSeconds, headers };
}

function stateUnavailable(detail: string): RateDecision {
  return {
    allowed: false,
    reason: 'state.unavailable',
    detail,
    retryAfterSeconds: STATE_UNAVAILABLE_RETRY_SECONDS,
    headers: { 'retry-after': String(STATE_UNAVAILABLE_RETRY_SECONDS) },
  };
}

/** The limit closest to refusing: fewest requests left, then the longest wait for a refill. */
function mostConstraining(states: readonly LimitState[]): LimitState {
  let best = states[0]!;
  for (const state of states) {
    if (state.remaining < best.remaining || (state.remaining === best.remaining && state.resetSeconds > best.resetSeconds)) best = state;
  }
  return best;
}

/**
 * `RateLimit-Policy` and `RateLimit` as in draft-ietf-httpapi-ratelimit-headers (-09 and later):
 * each a Structured Field List (RFC 9651 §3.1) of one Item, a String naming the policy, with
 * parameters — `q` (quota) and `w` (window, seconds) on the policy; `r` (remaining) and `t`
 * (seconds until the quota resets) on the current state. One policy is described: the most
 * constraining one, which is what a client needs to pace itself.
 */
function rateLimitHeaders(state: LimitState): Record<string, string> {
  return {
    'ratelimit-policy': state.policyItem,
    'ratelimit': `${sfString(state.policy)};r=${state.remaining};t=${state.resetSeconds}`,
  };
}

/**
 * A GCRA limit is not a window, so the policy states the configured rate as a quota per window
 * (`100/s` → q=100;w=1, `6000/m` → q=6000;w=60), and the state says what may be sent at once
 * right now (`r`: the burst left) and when the bucket is full again (`t`). `r` never promises
 * more than the next instant allows.
 */
function gcraPolicyItem(policy: string, spec: RateLimitSpec): string {
  const match = /^(\d+)\/(s|m|h)$/.exec(spec.text);
  const [quota, windowSeconds] =
    match !== null ? [Number(match[1]), WINDOW_SECONDS[match[2] as keyof typeof WINDOW_SECONDS]] : [Math.max(1, Math.round(1000 / spec.emissionIntervalMs)), 1];
  return `${sfString(policy)};q=${quota};w=${windowSeconds}`;
}

const WINDOW_SECONDS = { s: 1, m: 60, h: 3600 } as const;

/** RFC 9651 §3.3.3 String. Policy names are ours (ids and fixed words), so this only guards. */
function sfString(text: string): string {
  return `"${text.replace(/[^\x20-\x7e]/g, '').replace(/[\\"]/g, (char) => `\\${char}`)}"`;
}

function describeRate(spec: RateLimitSpec): string {
  return spec.burst > 0 ? `${spec.text} (burst ${spec.burst})` : spec.text;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
