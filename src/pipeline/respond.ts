/**
 * Refusal responses: RFC 9457 problem documents with the public code only. The precise reason
 * and detail stay in the decision record (STYLE.md item 2).
 */
import { PROBLEM_TYPE_BASE, problemFor } from '../errors.ts';
import type { RefusalReason } from '../errors.ts';
import type { DownstreamResponse, Refusal, RequestContext } from './context.ts';
import { atEndOfTurn } from '../http/end-of-turn.ts';

/**
 * Reasons after which the connection is closed: the request's framing could not be trusted, so
 * neither can whatever follows it on the same connection (SECURITY.md HT-01..HT-04).
 */
const CLOSE_AFTER: ReadonlySet<RefusalReason> = new Set<RefusalReason>([
  'http.malformed',
  'http.framing_ambiguous',
  'http.transfer_encoding_invalid',
  'http.host_missing',
  'http.host_duplicate',
  'http.host_mismatch',
  'http.target_invalid',
  'http.header_name_invalid',
  'http.upgrade_refused',
  'http.header_too_large',
  'http.timeout',
  'http.body_too_large',
]);

/**
 * HTTP/1 connections that were answered with `Connection: close` after a refusal. Node has
 * already parsed any request pipelined behind the refused one and would hand it to us; such a
 * request is smuggled by definition and must never be processed.
 */
const closingSockets = new WeakSet<object>();

export function isClosingConnection(ctx: RequestContext): boolean {
  return ctx.httpVersion !== '2.0' && closingSockets.has(ctx.req.socket);
}

export function problemBody(reason: RefusalReason, requestId: string): { status: number; body: string } {
  const problem = problemFor(reason);
  const body = JSON.stringify({
    type: PROBLEM_TYPE_BASE + problem.code,
    title: problem.title,
    status: problem.status,
    code: problem.code,
    request_id: requestId,
    instance: `urn:request:${requestId}`,
  });
  return { status: problem.status, body };
}

/**
 * Answers a refused request with its problem document. A refusal that keeps the connection open
 * is written at the end of the loop's turn, with the other responses of that turn
 * (src/http/end-of-turn.ts: one wake-up of the client for all of them; measured on a flood of
 * 404s, ~40 % less CPU a refusal). One that closes the connection — or whose caller
 * closes it right after (`now`) — is written at once, before the connection ends.
 */
export function sendRefusal(ctx: RequestContext, refusal: Refusal, now = false): void {
  const { res } = ctx;
  if (res.headersSent || res.writableEnded || res.destroyed) return;
  const { status, body } = problemBody(refusal.reason, ctx.requestId);
  const headers: Record<string, string> = {
    'content-type': 'application/problem+json',
    'content-length': String(Buffer.byteLength(body)),
    'cache-control': 'no-store',
    'x-request-id': ctx.requestId,
    ...refusal.headers,
  };
  const closeConnection = CLOSE_AFTER.has(refusal.reason) || requestHasUnreadBody(ctx);
  if (closeConnection && ctx.httpVersion !== '2.0') {
    headers['connection'] = 'close';
    closingSockets.add(ctx.req.socket);
  }
  const payload = ctx.req.method === 'HEAD' ? '' : body;
  if (closeConnection || now) return writeAndEnd(res, status, headers, payload);
  atEndOfTurn(() => {
    // The client may have gone in the meantime; its record says so.
    if (res.headersSent || res.writableEnded || res.destroyed) return;
    writeAndEnd(res, status, headers, payload);
  });
}

/** A refused request whose body was never read would desynchronise a kept-alive connection. */
function requestHasUnreadBody(ctx: RequestContext): boolean {
  if (ctx.httpVersion === '2.0') return false;
  const { headers } = ctx.req;
  const declared = headers['content-length'];
  return (declared !== undefined && declared !== '0') || headers['transfer-encoding'] !== undefined;
}

function writeAndEnd(res: DownstreamResponse, status: number, headers: Record<string, string>, body: string): void {
  // The two response types share this call shape; TypeScript cannot see one signature for both.
  (res as { writeHead(status: number, headers: Record<string, string>): unknown }).writeHead(status, headers);
  res.end(body);
}

/** Completes a held-back response (`true`), or destroys it so the client sees it fail (`false`). */
export type ReleaseEnd = (complete: boolean) => void;

type WriteArgs = [chunk: unknown, ...rest: unknown[]];

/**
 * Holds back the end of `res` until `onEnding` releases it (audit `every-record`: a response is
 * not complete for the client before its record is durable). What the client could take for a
 * complete response is held: the `end()` call (with its body, for a refusal), and — when the
 * response declares a Content-Length — the write that reaches that length, since a client counts
 * bytes rather than waiting for the end of the stream (RFC 9112 §6.3). Without a length the
 * body streams through: only the end of the stream (last chunk, END_STREAM) says it is complete.
 * Only the first `end()` is held; `onEnding` is called once.
 */
export function holdResponseEnd(res: DownstreamResponse, onEnding: (release: ReleaseEnd) => void): void {
  const target = res as unknown as {
    writeHead(...args: unknown[]): unknown;
    write(...args: WriteArgs): boolean;
    end(...args: unknown[]): unknown;
    getHeader(name: string): unknown;
  };
  const writeHead = target.writeHead;
  const write = target.write;
  const end = target.end;
  let declaredLength: number | null = null;
  let bodyBytes = 0;
  let heldWrite: WriteArgs | null = null;
  let ending = false;

  target.writeHead = function (this: unknown, ...args: unknown[]) {
    const headers = args.find((arg) => arg !== null && typeof arg === 'object' && !Array.isArray(arg)) as Record<string, unknown> | undefined;
    declaredLength = contentLength(headers?.['content-length'] ?? headers?.['Content-Length'] ?? target.getHeader('content-length'));
    return writeHead.apply(res, args);
  };
  target.write = function (this: unknown, ...args: WriteArgs) {
    const [chunk, encoding] = args;
    bodyBytes += typeof chunk === 'string' ? Buffer.byteLength(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8') : ((chunk as Uint8Array | null)?.byteLength ?? 0);
    declaredLength ??= contentLength(target.getHeader('content-length'));
    if (heldWrite !== null) {
      // More body than declared: let Node refuse it as it would, after what was held.
      const held = heldWrite;
      heldWrite = null;
      write.apply(res, held);
      return write.apply(res, args);
    }
    if (!ending && declaredLength !== null && bodyBytes >= declaredLength) {
      heldWrite = args;
      return true;
    }
    return write.apply(res, args);
  };
  target.end = function (this: unknown, ...args: unknown[]) {
    if (ending) return end.apply(res, args);
    ending = true;
    onEnding((complete) => {
      if (!complete) {
        heldWrite = null;
        res.destroy();
        return;
      }
      if (heldWrite !== null) write.apply(res, heldWrite);
      heldWrite = null;
      end.apply(res, args);
    });
    return res;
  };
}

function contentLength(value: unknown): number | null {
  const text = Array.isArray(value) ? value[0] : value;
  if (typeof text === 'number') return Number.isSafeInteger(text) && text >= 0 ? text : null;
  return typeof text === 'string' && /^[0-9]{1,15}$/.test(text) ? Number(text) : null;
}
