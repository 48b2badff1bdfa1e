/**
 * Stage 1 — ingress: the request head is checked before anything trusts it.
 * Framing and header rules the HTTP parser lets through, the Host allowlist of the listener
 * (421, no default hostnames), SNI agreement on TLS, one canonical path, and an early body-size
 * check. Header stripping happens where headers are built for the upstream (proxy stage), so
 * nothing the client sent as identity can reach it.
 */
import { inspectRequestHead, originFormOf } from '../http/request-head.ts';
import { canonicalizeTarget } from '../http/canonical-path.ts';
import { newTraceparent, parseTraceparent } from '../http/trace-context.ts';
import type { RequestContext, StageOutcome } from './context.ts';

export function ingress(ctx: RequestContext): StageOutcome {
  const { req, listener } = ctx;
  // Node drops header fields beyond `maxHeadersCount` silently; it is set one above the limit
  // so that "more than allowed" is visible here and refused rather than truncated.
  if (req.rawHeaders.length / 2 > listener.limits.maxHeaders) {
    return { reason: 'http.header_too_large', detail: `more than ${listener.limits.maxHeaders} header fields` };
  }
  const head = inspectRequestHead(req.rawHeaders, ctx.httpVersion, req.method ?? '', req.url ?? '');
  if (!head.ok) return { reason: head.reason };
  ctx.host = head.host;

  // tracing.trust_incoming_traceparent: false → every request starts its own trace.
  const incoming = ctx.snapshot.tracing.trustIncomingTraceparent ? parseTraceparent(headerValue(req.headers['traceparent'])) : null;
  const trace = newTraceparent(incoming);
  ctx.traceId = trace.traceId;
  ctx.spanId = trace.spanId;
  ctx.traceparent = trace.traceparent;

  if (!listener.servesHost(head.host)) {
    return { reason: 'http.host_not_allowed', detail: `host "${truncate(head.host)}" is not listed on listener ${listener.name}` };
  }
  // RFC 9110 §15.5.20: a request for a host other than the one the TLS session was set up
  // for is misdirected. Also refuses connection reuse across hostnames.
  if (ctx.tlsSocket) {
    const sni = typeof ctx.tlsSocket.servername === 'string' ? ctx.tlsSocket.servername.toLowerCase() : null;
    if (sni !== null && sni !== head.host) {
      return { reason: 'http.host_not_allowed', detail: `SNI "${truncate(sni)}" differs from Host "${truncate(head.host)}"` };
    }
  }

  // RFC 9112 §3.2.2: absolute-form is accepted when its authority agrees with Host (checked
  // above); from here on only its origin-form exists.
  const originForm = originFormOf(req.url ?? '');
  if (originForm === null) return { reason: 'http.target_invalid' };
  const target = canonicalizeTarget(originForm);
  if (!target.ok) return { reason: target.reason };
  ctx.path = target.path;
  ctx.query = target.query;
  return undefined;
}

/** Refuses, before any byte of the body is read, a body declared larger than allowed. */
export function declaredBodyTooLarge(ctx: RequestContext, limit: number): StageOutcome {
  const declared = ctx.req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) {
    return { reason: 'http.body_too_large', detail: `content-length ${declared} exceeds ${limit}` };
  }
  return undefined;
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? undefined : value;
}

/** Caller-controlled text in operator detail is bounded so it cannot flood the log. */
export function truncate(text: string, max = 128): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
