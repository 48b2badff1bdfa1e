/**
 * Requests the HTTP parser refuses before our handler sees them (malformed framing, oversized
 * header sections, header timeouts) still get a problem response and a decision record. Node
 * hands us the socket; we answer on it and close it (SECURITY.md: close after framing errors).
 */
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import type { RefusalReason } from '../errors.ts';
import type { DecisionInput } from '../pipeline/context.ts';
import { problemBody } from '../pipeline/respond.ts';
import { logDecision } from '../pipeline/audit.ts';
import { log } from '../log.ts';
import type { PipelineGeneration, PipelineHooks } from '../pipeline/pipeline.ts';
import type { CompiledListener } from '../config/snapshot.ts';

/** Maps a parser or server error to the stable reason, or null when there is nobody to answer. */
export function clientErrorReason(error: NodeJS.ErrnoException): RefusalReason | null {
  switch (error.code) {
    case 'ECONNRESET':
    case 'EPIPE':
    case 'ERR_STREAM_DESTROYED':
      return null;
    case 'HPE_HEADER_OVERFLOW':
      return 'http.header_too_large';
    case 'ERR_HTTP_REQUEST_TIMEOUT':
    case 'HPE_HEADERS_TIMEOUT':
      return 'http.timeout';
    case 'HPE_INVALID_TRANSFER_ENCODING':
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
    case 'HPE_INVALID_CONTENT_LENGTH':
    case 'HPE_INVALID_CHUNK_SIZE':
      return 'http.framing_ambiguous';
    default:
      return 'http.malformed';
  }
}

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 408: 'Request Timeout', 413: 'Content Too Large', 431: 'Request Header Fields Too Large' };

export function answerClientError(
  error: NodeJS.ErrnoException,
  socket: Socket,
  generation: PipelineGeneration,
  listener: CompiledListener,
  hooks: Pick<PipelineHooks, 'decisionLog' | 'auditTrail' | 'metrics'>,
): void {
  const reason = clientErrorReason(error);
  if (reason === null || !socket.writable) {
    socket.destroy();
    return;
  }
  const requestId = randomUUID();
  const { status, body } = problemBody(reason, requestId);
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\n` +
      'content-type: application/problem+json\r\n' +
      `content-length: ${Buffer.byteLength(body)}\r\n` +
      'cache-control: no-store\r\n' +
      `x-request-id: ${requestId}\r\n` +
      'connection: close\r\n\r\n' +
      body,
  );
  socket.destroySoon?.();
  const now = process.hrtime.bigint();
  const input: DecisionInput = {
    requestId,
    startedAt: now,
    receivedAt: new Date(),
    snapshot: generation.snapshot,
    flags: [],
    listener,
    httpVersion: '1.1',
    method: '',
    clientIp: socket.remoteAddress ?? '',
    clientPort: socket.remotePort ?? 0,
    host: '',
    path: '',
    traceId: '',
    spanId: '',
    route: null,
    tls: null,
    clientCertificate: null,
    principal: null,
    decidedBy: null,
    purpose: null,
    upstreamCalled: false,
    upstreamStatus: null,
    upstreamStartedAt: null,
    upstreamHeadersAt: null,
  };
  const outcome = { reason, decision: 'deny', status, detail: `${error.code ?? 'error'}: ${error.message}`.slice(0, 200) } as const;
  const record = logDecision(hooks.decisionLog, input, outcome, now);
  if (!hooks.auditTrail.append(record, null)) log('error', 'audit.record_not_chained', { request_id: requestId });
  hooks.metrics.observeRequest(input, outcome, now);
}
