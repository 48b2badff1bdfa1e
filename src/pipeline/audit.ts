/**
 * Stage 7 — audit: exactly one decision record per request, allowed or refused, written when
 * the exchange is over. Field names follow ECS (ECOSYSTEM.md §4.9), ours live under
 * `portcullis.*`. Nothing secret goes in: no header values, no query string (it may carry
 * secrets), no token; caller-controlled strings are bounded and JSON-encoded, so they cannot
 * forge a record.
 */
import type { Reason } from '../errors.ts';
import type { DecisionInput } from './context.ts';

export type Decision = 'allow' | 'deny' | 'error';

export interface Outcome {
  readonly reason: Reason;
  readonly decision: Decision;
  /** Status sent to the client; null when nothing could be sent. */
  readonly status: number | null;
  readonly detail?: string;
}


/**
 * Members are written in canonical order (keys sorted at every level, as `canonicalJson` sorts
 * them): the audit trail then serializes the record with one `JSON.stringify` instead of sorting
 * it (trail.ts serializeRecord checks the order and falls back to sorting when it is not met).
 */
export function decisionRecord(ctx: DecisionInput, outcome: Outcome, endedAt: bigint): object {
  const totalNs = endedAt - ctx.startedAt;
  const upstreamNs =
    ctx.upstreamStartedAt !== null ? (ctx.upstreamHeadersAt ?? endedAt) - ctx.upstreamStartedAt : 0n;
  const route = ctx.route;
  const principal = ctx.principal;
  // Built member by member rather than with conditional spreads: a spread allocates an object
  // per member group and costs more than the rest of the record.
  const portcullis: Record<string, unknown> = {};
  if (principal !== null) portcullis['agreement'] = { id: principal.partner.agreement?.id ?? null };
  portcullis['api'] = route?.apiId ?? null;
  portcullis['config_hash'] = ctx.snapshot.hash;
  if (principal !== null) portcullis['credential'] = { id: principal.credential.id, long_lived: principal.longLived, type: principal.credentialType };
  portcullis['decided_by'] = ctx.decidedBy;
  portcullis['decision'] = outcome.decision;
  if (outcome.detail) portcullis['detail'] = outcome.detail;
  portcullis['flags'] = ctx.flags;
  portcullis['host'] = bounded(ctx.host);
  portcullis['latency'] = {
    gateway_ms: Number((totalNs - upstreamNs) / 1000n) / 1000,
    upstream_ms: Number(upstreamNs / 1000n) / 1000,
  };
  portcullis['listener'] = ctx.listener.name;
  portcullis['partner'] = principal !== null ? { id: principal.partner.id, tier: principal.partner.tier } : null;
  if (principal !== null) portcullis['purpose'] = ctx.purpose;
  portcullis['reason'] = outcome.reason;
  portcullis['route'] = route?.id ?? null;
  if (principal !== null) {
    portcullis['scopes'] = [...principal.scopes];
    portcullis['token'] = principal.tokenId !== null || principal.issuer !== null ? { iss: principal.issuer, jti: principal.tokenId } : null;
  }
  portcullis['upstream'] = {
    called: ctx.upstreamCalled,
    id: route && ctx.upstreamCalled ? route.upstream.id : null,
    status: ctx.upstreamStatus,
  };
  portcullis['zone'] = ctx.listener.zone;

  const record: Record<string, unknown> = {
    '@timestamp': ctx.receivedAt.toISOString(),
    event: {
      action: 'gateway.request',
      category: ['web'],
      duration: Number(totalNs),
      kind: 'event',
      outcome: outcome.decision === 'allow' && outcome.reason === 'allowed' ? 'success' : 'failure',
      reason: outcome.reason,
      type: [outcome.decision === 'allow' ? 'allowed' : 'denied'],
    },
    http: {
      request: { id: ctx.requestId, method: bounded(ctx.method) },
      response: { status_code: outcome.status },
      version: ctx.httpVersion,
    },
    // Who called, under which agreement, with which credential — never the credential itself:
    // ids, the token's `jti` and issuer, the scopes it carried, the declared purpose.
    portcullis,
    source: { ip: ctx.clientIp, port: ctx.clientPort },
    span: { id: ctx.spanId || null },
  };
  if (ctx.tls) {
    record['tls'] = {
      cipher: ctx.tls.cipher,
      client: clientFields(ctx, ctx.tls.sni),
      next_protocol: ctx.tls.alpn,
      version: ctx.tls.protocol,
    };
  }
  record['trace'] = { id: ctx.traceId || null };
  record['url'] = { path: bounded(ctx.path) };
  return record;
}

/** ECS `tls.client.*`: the SNI, and who a presented client certificate names — never its key. */
function clientFields(ctx: DecisionInput, serverName: unknown): object {
  const certificate = ctx.clientCertificate;
  if (certificate === null) return { server_name: serverName };
  const { facts } = certificate;
  return {
    hash: { sha256: facts.fingerprintSha256 },
    issuer: bounded(facts.issuer),
    not_after: facts.notAfter,
    server_name: serverName,
    subject: bounded(facts.subject),
    x509: { serial_number: facts.serial },
  };
}

function bounded(text: string, max = 2048): string {
  return text.length > max ? text.slice(0, max) : text;
}

