/**
 * Stage 6 — proxy: forward the canonical request to the route's upstream and stream the answer
 * back. The upstream request is re-framed by the gateway (never the client's framing), carries
 * only the headers `buildUpstreamHeaders` lets through plus the gateway's own, and the upstream
 * response loses its hop-by-hop headers before it reaches the client: the upstream is untrusted
 * too (SECURITY.md HT-05, HT-10).
 *
 * Upstream failures have their own reasons and codes, never shared with gateway refusals.
 */
import { Readable } from 'node:stream';
import type { Writable } from 'node:stream';
import type { ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import type { IncomingHttpHeaders } from 'undici/types/header.js';
import { buildUpstreamHeaders, stripResponseHeaders } from '../http/forward-headers.ts';
import type { DownstreamResponse, Refusal, RequestContext, StageOutcome } from './context.ts';
import { tracingActive, upstreamTraceparent } from '../observability/tracing.ts';
import { atEndOfTurn } from '../http/end-of-turn.ts';

const BODYLESS_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'DELETE']);

class BodyTooLargeError extends Error {
  readonly code = 'PORTCULLIS_BODY_TOO_LARGE';
}

export async function proxy(ctx: RequestContext): Promise<StageOutcome> {
  const route = ctx.route!;
  const entry = ctx.pools.get(route.upstream.id);
  if (!entry) return { reason: 'upstream.unavailable', detail: `no pool for upstream ${route.upstream.id}` };
  const { req, res } = ctx;
  const method = req.method!;

  const headers = buildUpstreamHeaders(req.rawHeaders, {
    clientIp: ctx.clientIp,
    proto: ctx.tlsSocket ? 'https' : 'http',
    host: ctx.host,
    ...(route.upstream.preserveHost ? {} : { upstreamHost: route.upstream.authority }),
    requestId: ctx.requestId,
    // With tracing on, the flag carries the gateway's sampling decision (its span is the parent).
    traceparent: tracingActive ? upstreamTraceparent(ctx) : ctx.traceparent,
    // RFC 9110 §7.6.3: the received protocol's version, `2` for HTTP/2.
    viaProtocol: ctx.httpVersion === '2.0' ? '2' : ctx.httpVersion,
    ...(ctx.principal ? { consumedCredentials: true, identity: identityHeaders(ctx) } : {}),
  });
  const path = route.upstream.basePath + ctx.path + (ctx.query === '' ? '' : `?${ctx.query}`);
  const limit = route.maxBodyBytes ?? ctx.listener.limits.maxBodyBytes;

  const body = requestBody(ctx, method, limit);
  ctx.upstreamCalled = true;
  ctx.upstreamStartedAt = process.hrtime.bigint();
  try {
    await forward(
      entry.pool,
      // undici would take the SNI from the Host header; the upstream's own name is the one to verify.
      { path, method, headers, body, ...(route.upstream.servername ? { servername: route.upstream.servername } : {}) },
      ctx,
    );
    return undefined;
  } catch (error) {
    const refusal = upstreamFailure(error, ctx, body !== null);
    if (res.headersSent) {
      // Too late for a problem response: the client sees a truncated response (the connection
      // or stream is reset), the record keeps the reason.
      ctx.lateFailure = refusal;
      if (!res.destroyed) res.destroy();
      return undefined;
    }
    return refusal;
  }
}

/** undici reads `servername` from a request's options too (lib/core/request.js), though its types leave it out. */
type ForwardOptions = Pick<Dispatcher.DispatchOptions, 'path' | 'method' | 'headers' | 'body'> & { servername?: string };

/** The client went away before the upstream's response was passed on (named as Node names it). */
class DownstreamClosedError extends Error {
  readonly code = 'ERR_STREAM_PREMATURE_CLOSE';
}

/**
 * A response is written to the client at the end of the loop turn that parsed it
 * (`atEndOfTurn`), so the answers one turn parses leave back to back; past this many bytes held
 * in one turn the held part is written at once, and backpressure applies from there.
 */
const HOLD_AT_MOST_BYTES = 64 * 1024;

/**
 * A head that arrives without body bytes is written with the first of them — or on its own after
 * this long, so a client of a stream whose first bytes come late (events, a long poll) still
 * learns its status promptly. Until then an upstream failure is still answered with a clean 502.
 */
const HEAD_ALONE_AFTER_MS = 100;

/**
 * Sends the request and streams the upstream's response into the downstream response, with
 * backpressure both ways. Resolves once the response is handed to the client in full; rejects with
 * the upstream's error, or with ERR_STREAM_PREMATURE_CLOSE when the client left first (the upstream
 * request is aborted then). undici's low-level dispatch rather than `stream`: one handler object
 * per request, no async-resource scope and no stream-lifecycle tracking, which cost more than the
 * rest of the proxy stage.
 *
 * What arrives from the upstream is held until the end of the loop's current turn and written
 * then (src/http/end-of-turn.ts): a small response goes out whole in one write. The head waits for
 * the first body bytes, the end, or HEAD_ALONE_AFTER_MS, so an upstream that fails before sending
 * any body is still answered with a clean 502 rather than a cut-off response.
 */
function forward(pool: Dispatcher, options: ForwardOptions, ctx: RequestContext): Promise<void> {
  const res = ctx.res as DownstreamResponse & Writable;
  return new Promise<void>((resolve, reject) => {
    let controller: Dispatcher.DispatchController | null = null;
    let settled = false;
    let started = false;
    let ended = false;
    let writeScheduled = false;
    let status = 0;
    /** The response head, until it is written. */
    let head: Record<string, string | string[]> | null = null;
    let headAloneTimer: NodeJS.Timeout | null = null;
    let held: Buffer[] = [];
    let heldBytes = 0;
    const settle = (error: Error | null): void => {
      if (settled) return;
      settled = true;
      if (headAloneTimer !== null) clearTimeout(headAloneTimer);
      if (error === null) resolve();
      else reject(error);
    };
    const onDownstreamClose = (): void => {
      if (settled) return;
      const error = new DownstreamClosedError('the client closed the connection before the response was complete');
      controller?.abort(error);
      settle(error);
    };
    const onDrain = (): void => controller?.resume();
    const writeHead = (): void => {
      (res as { writeHead(status: number, headers: Record<string, string | string[]>): unknown }).writeHead(status, head!);
      head = null;
      if (headAloneTimer !== null) clearTimeout(headAloneTimer);
      headAloneTimer = null;
    };
    const writeHeadAlone = (): void => {
      headAloneTimer = null;
      if (settled || head === null) return;
      writeHead();
      // Node sends an HTTP/1.1 head with the first body bytes unless told to send it now (an
      // HTTP/2 head leaves with writeHead).
      if (ctx.httpVersion !== '2.0') (res as ServerResponse).flushHeaders();
    };
    const writeHeld = (): void => {
      if (settled) return;
      if (held.length === 0 && !ended) {
        if (head !== null && headAloneTimer === null) headAloneTimer = setTimeout(writeHeadAlone, HEAD_ALONE_AFTER_MS);
        return;
      }
      if (head !== null) writeHead();
      const chunks = held;
      held = [];
      heldBytes = 0;
      if (ended) {
        // One write for head and body when the whole response is here.
        res.end(chunks.length === 0 ? undefined : chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
        settle(null);
        return;
      }
      let writable = true;
      for (const chunk of chunks) writable = res.write(chunk);
      if (!writable) {
        controller?.pause();
        res.once('drain', onDrain);
      }
    };
    const writeHeldAtEndOfTurn = (): void => {
      writeScheduled = false;
      writeHeld();
    };
    const scheduleWrite = (): void => {
      if (writeScheduled) return;
      writeScheduled = true;
      atEndOfTurn(writeHeldAtEndOfTurn);
    };
    // Left in place once settled (it returns at once then): removing it cost more than a call.
    res.on('close', onDownstreamClose);
    const body = options.body;
    if (body instanceof Readable) body.once('error', (error) => (controller === null ? settle(error) : controller.abort(error)));
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(dispatchController) {
        controller = dispatchController;
        if (settled) dispatchController.abort(new DownstreamClosedError('the client closed the connection before the request was sent'));
      },
      onResponseStart(_controller, statusCode, upstreamHeaders) {
        // 1xx interim responses (RFC 9110 §15.2) are the upstream's business, not the client's.
        if (statusCode < 200 || settled) return;
        started = true;
        ctx.upstreamStatus = statusCode;
        ctx.upstreamHeadersAt = process.hrtime.bigint();
        const outgoing = stripResponseHeaders(upstreamHeaders as IncomingHttpHeaders) as Record<string, string | string[]>;
        outgoing['x-request-id'] = ctx.requestId;
        if (ctx.responseHeaders !== null) Object.assign(outgoing, ctx.responseHeaders);
        status = statusCode;
        head = outgoing;
        scheduleWrite();
      },
      onResponseData(_controller, chunk) {
        if (!started || settled) return;
        held.push(chunk);
        heldBytes += chunk.length;
        if (heldBytes >= HOLD_AT_MOST_BYTES) writeHeld();
        else scheduleWrite();
      },
      onResponseEnd() {
        if (!started || settled) return;
        ended = true;
        scheduleWrite();
      },
      onResponseError(_controller, error) {
        settle(error);
      },
    };
    try {
      pool.dispatch(options as Dispatcher.DispatchOptions, handler);
    } catch (error) {
      // Invalid options (a header value undici refuses): nothing was sent.
      settle(error as Error);
    }
  });
}

/**
 * What the gateway verified, for the upstream: partner, credential, agreement, scopes, purpose.
 * Clients can never send `x-portcullis-*` themselves (stripped at ingress); an upstream that
 * accepts traffic only from the gateway can rely on them.
 */
function identityHeaders(ctx: RequestContext): string[] {
  const principal = ctx.principal!;
  const headers = [
    'x-portcullis-partner', principal.partner.id,
    'x-portcullis-credential', principal.credential.id,
    'x-portcullis-credential-type', principal.credentialType,
  ];
  if (principal.partner.agreement) headers.push('x-portcullis-agreement', principal.partner.agreement.id);
  const scopes = ctx.grantedScopes ?? principal.scopes;
  if (scopes.size > 0) headers.push('x-portcullis-scopes', [...scopes].join(' '));
  if (ctx.purpose !== null) headers.push('x-portcullis-purpose', ctx.purpose);
  return headers;
}

function requestBody(ctx: RequestContext, method: string, limit: number): Readable | null {
  const { req } = ctx;
  const declared = req.headers['content-length'];
  if (ctx.httpVersion !== '2.0') {
    const chunked = req.headers['transfer-encoding'] !== undefined;
    if (!chunked && (declared === undefined || declared === '0')) return null;
    // A declared length was checked against the limit already and the parser enforces it.
    if (!chunked) return req as Readable;
    return Readable.from(limited(req, limit), { objectMode: false });
  }
  if (declared === '0' || (declared === undefined && BODYLESS_METHODS.has(method) && req.readableEnded)) return null;
  return Readable.from(limited(req, limit), { objectMode: false });
}

async function* limited(source: AsyncIterable<Buffer>, limit: number): AsyncIterable<Buffer> {
  let seen = 0;
  for await (const chunk of source) {
    seen += chunk.length;
    if (seen > limit) throw new BodyTooLargeError(`request body exceeds ${limit} bytes`);
    yield chunk;
  }
}

const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'EADDRNOTAVAIL']);
const TIMEOUTS = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);
const UNAVAILABLE = new Set(['UND_ERR_CLOSED', 'UND_ERR_DESTROYED']);
const DOWNSTREAM_CLOSED = new Set(['ERR_STREAM_PREMATURE_CLOSE', 'UND_ERR_ABORTED', 'ERR_STREAM_DESTROYED', 'ERR_HTTP2_STREAM_ERROR', 'ERR_HTTP2_INVALID_STREAM']);

/** Maps a failed exchange to its stable reason. */
export function upstreamFailure(error: unknown, ctx: RequestContext, bodyStreamed: boolean): Refusal {
  const code = (error as { code?: string }).code ?? '';
  const message = (error as Error).message ?? String(error);
  const upstream = ctx.route?.upstream.id ?? '?';
  const detail = `${upstream}: ${code || 'error'} ${message}`.slice(0, 300);
  if (error instanceof BodyTooLargeError) return { reason: 'http.body_too_large', detail: message };
  // The downstream side went away (undici reports the response writable closing under it).
  // A request body cut short by the client surfaces as an error of the body stream.
  if (DOWNSTREAM_CLOSED.has(code) || (bodyStreamed && ctx.req.readableAborted)) return { reason: 'http.client_closed', detail };
  if (UNREACHABLE.has(code)) return { reason: 'upstream.unreachable', detail };
  if (TIMEOUTS.has(code)) return { reason: 'upstream.timeout', detail };
  if (UNAVAILABLE.has(code)) return { reason: 'upstream.unavailable', detail };
  // Node reports certificate verification failures with OpenSSL's codes.
  if (code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL') || code.includes('CERT') || code.includes('VERIFY') || code.includes('SELF_SIGNED')) {
    return { reason: 'upstream.unreachable', detail: `tls: ${detail}` };
  }
  // Parser errors (invalid framing, CL+TE, bad status line), a reset or close before a complete
  // response, a body shorter than its Content-Length: the upstream answered, but not validly.
  return { reason: 'upstream.bad_response', detail };
}
