/**
 * Label values of the per-request metrics, each drawn from a closed set so that no caller can
 * grow the number of series (ECOSYSTEM.md §2.7: label cardinality bounded; never a credential
 * id, subject or token — those belong to the audit record).
 */
import { REASONS } from '../errors.ts';
import type { Reason } from '../errors.ts';
import { HTTP_METHODS } from '../config/schema.ts';

/** The pipeline stage a decision reason belongs to; `all` for a request every stage allowed. */
export type DecisionStage = 'ingress' | 'routing' | 'transport_identity' | 'credential' | 'authorization' | 'rate_limit' | 'proxy' | 'audit' | 'gateway' | 'all';

/**
 * Reason category (the part before the first `.`, SECURITY.md taxonomy) → stage. A reason whose
 * category is missing here makes this module fail at load (see `STAGE_OF_REASON`), so a new
 * category cannot reach the metrics with an unplanned label.
 */
const STAGE_OF_CATEGORY: Readonly<Record<string, DecisionStage>> = {
  allowed: 'all',
  http: 'ingress',
  route: 'routing',
  tls: 'transport_identity',
  binding: 'credential',
  dpop: 'credential',
  token: 'credential',
  credential: 'credential',
  api_key: 'credential',
  request: 'credential',
  // JWKS or introspection unreachable: the credential stage fails closed.
  dependency: 'credential',
  partner: 'authorization',
  grant: 'authorization',
  scope: 'authorization',
  purpose: 'authorization',
  policy: 'authorization',
  // Stage 5 (DESIGN.md): rate limits, quotas, concurrency and abuse blocks.
  ratelimit: 'rate_limit',
  quota: 'rate_limit',
  concurrency: 'rate_limit',
  abuse: 'rate_limit',
  // The revocation set cannot be trusted: the credential cannot be vouched for (fail closed).
  state: 'credential',
  upstream: 'proxy',
  audit: 'audit',
  // answered by the gateway itself (resource metadata) or failed inside it
  gateway: 'gateway',
};

/** Every reason of the catalogue, resolved once, so the request path only does a lookup. */
export const STAGE_OF_REASON: ReadonlyMap<Reason, DecisionStage> = new Map(
  (Object.keys(REASONS) as Reason[]).map((reason) => {
    const category = reason.split('.', 1)[0]!;
    const stage = STAGE_OF_CATEGORY[category];
    if (stage === undefined) throw new Error(`observability: reason "${reason}" has no stage; add its category "${category}" to STAGE_OF_CATEGORY`);
    return [reason, stage];
  }),
);

export function stageOfReason(reason: Reason): DecisionStage {
  return STAGE_OF_REASON.get(reason)!;
}

const KNOWN_METHODS: ReadonlySet<string> = new Set(HTTP_METHODS);

/** The request method if routes may be configured with it, else `other`: the method is the caller's free text. */
export function methodLabel(method: string): string {
  return KNOWN_METHODS.has(method) ? method : 'other';
}

const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;

/** `2xx`…`5xx`; `none` when no status was sent (the client went away first, or the upstream never answered). */
export function statusClass(status: number | null): string {
  if (status === null) return 'none';
  return STATUS_CLASSES[Math.floor(status / 100) - 1] ?? 'none';
}

/**
 * OTel `network.protocol.version` (semconv HTTP, ECOSYSTEM.md §4.4): `1.0`, `1.1` or `2`.
 * Node's parsers only accept these, but the value is mapped anyway rather than trusted.
 */
export function protocolLabel(httpVersion: string): string {
  switch (httpVersion) {
    case '1.1':
      return '1.1';
    case '2.0':
      return '2';
    case '1.0':
      return '1.0';
    default:
      return 'other';
  }
}
