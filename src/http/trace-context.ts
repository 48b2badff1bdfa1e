/**
 * W3C Trace Context `traceparent` (https://www.w3.org/TR/trace-context/#traceparent-header).
 * We continue a caller's trace but always start our own span, so an upstream sees the gateway as
 * the parent and a client cannot pick the span id our records carry.
 */
import { randomBytes } from 'node:crypto';

export interface Traceparent {
  readonly traceId: string;
  readonly parentId: string;
  readonly flags: string;
}

const TRACE_ID_HEX = 32;
const SPAN_ID_HEX = 16;
/** `00-` trace-id `-` parent-id `-` flags */
const VERSION_00_LENGTH = 3 + TRACE_ID_HEX + 1 + SPAN_ID_HEX + 1 + 2;

/**
 * Strict version-00 parse (spec #traceparent-header-field-values): exactly 55 characters, lowercase
 * hex (HEXDIGLC), dashes in place. Other versions are not understood and so not continued. All-zero
 * ids are invalid (#trace-id, #parent-id). Anything invalid means "no incoming trace": the caller
 * starts a new one.
 */
export function parseTraceparent(value: string | undefined): Traceparent | null {
  if (value === undefined || value.length !== VERSION_00_LENGTH) return null;
  if (value.charCodeAt(0) !== 0x30 || value.charCodeAt(1) !== 0x30) return null;
  if (value.charCodeAt(2) !== 0x2d || value.charCodeAt(35) !== 0x2d || value.charCodeAt(52) !== 0x2d) return null;
  if (!isLowerHex(value, 3, 35) || !isLowerHex(value, 36, 52) || !isLowerHex(value, 53, 55)) return null;
  if (isZeros(value, 3, 35) || isZeros(value, 36, 52)) return null;
  return { traceId: value.slice(3, 35), parentId: value.slice(36, 52), flags: value.slice(53, 55) };
}

/**
 * The traceparent we send upstream: the incoming trace id when there is one (else a fresh one),
 * always a fresh span id, and only the `sampled` flag carried over (#trace-flags: version 00 defines
 * no other flag).
 */
export function newTraceparent(incoming: Traceparent | null): { traceparent: string; traceId: string; spanId: string } {
  const traceId = incoming?.traceId ?? randomHexId(TRACE_ID_HEX / 2);
  const spanId = randomHexId(SPAN_ID_HEX / 2);
  const sampled = incoming !== null && (parseInt(incoming.flags, 16) & 1) === 1;
  return { traceparent: `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`, traceId, spanId };
}

/** Random bytes come from a pooled `randomBytes` buffer: one call per 4 KiB, not one per request. */
const POOL_SIZE = 4096;
let pool = randomBytes(POOL_SIZE);
let poolOffset = 0;

function randomHexId(bytes: number): string {
  for (;;) {
    if (poolOffset + bytes > POOL_SIZE) {
      pool = randomBytes(POOL_SIZE);
      poolOffset = 0;
    }
    const id = pool.toString('hex', poolOffset, poolOffset + bytes);
    poolOffset += bytes;
    if (!isZeros(id, 0, id.length)) return id; // all-zero ids are invalid (#trace-id, #parent-id)
  }
}

function isLowerHex(text: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return false;
  }
  return true;
}

function isZeros(text: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (text.charCodeAt(i) !== 0x30) return false;
  return true;
}
