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


export function decisionRecord(ctx: DecisionInput, outcome: Outcome, endedAt: bigint): object {
  const totalNs = endedAt - ctx.startedAt;
  const upstreamNs =
    ctx.upstreamStartedAt !== null ? (ctx.upstreamHeadersAt ?? endedAt) - ctx.upstreamStartedAt : 0n;
  const route = ctx.route;
  return {
    '@timestamp': ctx.receivedAt.toISOString(),
    event: {
      kind: 'event',
      category: ['web'],
      type: [outcome.decision === 'allow' ? 'allowed' : 'denied'],
      action: 'gateway.request',
      outcome: outcome.decision === 'allow' && outcome.reason === 'allowed' ? 'success' : 'failure',
      reason: outcome.reason,
      duration: Number(totalNs),
    },
    http: {
      version: ctx.httpVersion,
      request: { id: ctx.requestId, method: bounded(ctx.method) },
      response: { status_code: outcome.status },
    },
    url: { path: bounded(ctx.path) },
    source: { ip: ctx.clientIp, port: ctx.clientPort },
    ...(ctx.tls
      ? {
          tls: {
            version: ctx.tls.protocol,
            cipher: ctx.tls.cipher,
            next_protocol: ctx.tls.alpn,
            client: { server_name: ctx.tls.sni, ...clientCertificateFields(ctx) },
          },
        }
      : {}),
    trace: { id: ctx.traceId || null },
    span: { id: ctx.spanId || null },
    portcullis: {
      decision: outcome.decision,
      reason: outcome.reason,
      ...(outcome.detail ? { detail: outcome.detail } : {}),
      listener: ctx.listener.name,
      zone: ctx.listener.zone,
      host: bounded(ctx.host),
      route: route?.id ?? null,
      api: route?.apiId ?? null,
      ...principalFields(ctx),
      decided_by: ctx.decidedBy,
      flags: ctx.flags,
      config_hash: ctx.snapshot.hash,
      upstream: {
        id: route && ctx.upstreamCalled ? route.upstream.id : null,
        called: ctx.upstreamCalled,
        status: ctx.upstreamStatus,
      },
      latency: {
        gateway_ms: Number((totalNs - upstreamNs) / 1000n) / 1000,
        upstream_ms: Number(upstreamNs / 1000n) / 1000,
      },
    },
  };
}

/** ECS `tls.client.*` of a presented client certificate: who it names, never its key. */
function clientCertificateFields(ctx: DecisionInput): object {
  const certificate = ctx.clientCertificate;
  if (certificate === null) return {};
  const { facts } = certificate;
  return {
    hash: { sha256: facts.fingerprintSha256 },
    subject: bounded(facts.subject),
    issuer: bounded(facts.issuer),
    not_after: facts.notAfter,
    x509: { serial_number: facts.serial },
  };
}

/**
 * Who called, under which agreement, with which credential — never the credential itself:
 * ids, the token's `jti` and issuer, the scopes it carried, the declared purpose.
 */
function principalFields(ctx: DecisionInput): object {
  const principal = ctx.principal;
  if (principal === null) return { partner: null };
  return {
    partner: { id: principal.partner.id, tier: principal.partner.tier },
    agreement: { id: principal.partner.agreement?.id ?? null },
    credential: { id: principal.credential.id, type: principal.credentialType, long_lived: principal.longLived },
    token: principal.tokenId !== null || principal.issuer !== null ? { jti: principal.tokenId, iss: principal.issuer } : null,
    scopes: [...principal.scopes],
    purpose: ctx.purpose,
  };
}

function bounded(text: string, max = 2048): string {
  return text.length > max ? text.slice(0, max) : text;
}

