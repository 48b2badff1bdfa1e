/**
 * Stage 7 — audit: exactly one decision record per request, allowed or refused, written when
 * the exchange is over. Field names follow ECS (ECOSYSTEM.md §4.9), ours live under
 * `portcullis.*`. Nothing secret goes in: no header values, no query string (it may carry
 * secrets), no token; caller-controlled strings are bounded and JSON-encoded, so they cannot
 * forge a record.
 */
import type { Reason } from '../errors.ts';
import type { DecisionInput } from './context.ts';
import { LINE_LIMITS } from '../audit/chain-format.ts';
import { SerializedRecord, serializedFromCanonicalJson } from '../audit/trail.ts';
import type { DecisionLog } from '../audit/decision-log.ts';

export type Decision = 'allow' | 'deny' | 'error';

export interface Outcome {
  readonly reason: Reason;
  readonly decision: Decision;
  /** Status sent to the client; null when nothing could be sent. */
  readonly status: number | null;
  readonly detail?: string;
}


/**
 * The decision record as one line of canonical JSON (keys sorted at every level, exactly what
 * `canonicalJson` writes of it), written directly rather than built as an object and serialized:
 * building, walking and stringifying the object cost more than the rest of the record's way to
 * the trail. The trail chains `json` as it is (trail.ts serializedFromCanonicalJson); a test
 * holds it to `canonicalJson(JSON.parse(json))` for every shape. Every string is written as
 * `JSON.stringify` writes it (see `quoted`), so caller-controlled text can never close a string
 * or add a member; only constants, booleans and numbers go in as they are.
 */
export interface DecisionJson {
  readonly json: string;
  /** Index of the `}` that closes `portcullis` (where each stream splices its chain fields). */
  readonly portcullisClose: number;
}

export function decisionJson(ctx: DecisionInput, outcome: Outcome, endedAt: bigint): DecisionJson {
  const totalNs = endedAt - ctx.startedAt;
  const upstreamNs =
    ctx.upstreamStartedAt !== null ? (ctx.upstreamHeadersAt ?? endedAt) - ctx.upstreamStartedAt : 0n;
  const route = ctx.route;
  const principal = ctx.principal;
  const allowed = outcome.decision === 'allow';
  let json =
    `{"@timestamp":"${isoTimestamp(ctx.receivedAt)}",` +
    `"event":{"action":"gateway.request","category":["web"],"duration":${number(Number(totalNs))},"kind":"event",` +
    `"outcome":"${allowed && outcome.reason === 'allowed' ? 'success' : 'failure'}","reason":${quoted(outcome.reason)},` +
    `"type":["${allowed ? 'allowed' : 'denied'}"]},` +
    `"http":{"request":{"id":${quoted(ctx.requestId)},"method":${bounded(ctx.method)}},` +
    `"response":{"status_code":${number(outcome.status)}},"version":${quoted(ctx.httpVersion)}},` +
    // Who called, under which agreement, with which credential — never the credential itself:
    // ids, the token's `jti` and issuer, the scopes it carried, the declared purpose.
    '"portcullis":{';
  if (principal !== null) json += `"agreement":{"id":${quoted(principal.partner.agreement?.id ?? null)}},`;
  json += `"api":${quoted(route?.apiId ?? null)},"config_hash":${quoted(ctx.snapshot.hash)},`;
  if (principal !== null) {
    json += `"credential":{"id":${quoted(principal.credential.id)},"long_lived":${principal.longLived},"type":${quoted(principal.credentialType)}},`;
  }
  json += `"decided_by":${quoted(ctx.decidedBy)},"decision":${quoted(outcome.decision)},`;
  if (outcome.detail) json += `"detail":${quoted(outcome.detail)},`;
  json +=
    `"flags":${stringList(ctx.flags)},"host":${bounded(ctx.host)},` +
    `"latency":{"gateway_ms":${millis(Number((totalNs - upstreamNs) / 1000n))},"upstream_ms":${millis(Number(upstreamNs / 1000n))}},` +
    `"listener":${quoted(ctx.listener.name)},` +
    `"partner":${principal !== null ? `{"id":${quoted(principal.partner.id)},"tier":${quoted(principal.partner.tier)}}` : 'null'},`;
  if (principal !== null) json += `"purpose":${quoted(ctx.purpose)},`;
  json += `"reason":${quoted(outcome.reason)},"route":${quoted(route?.id ?? null)},`;
  if (principal !== null) {
    const token = principal.tokenId !== null || principal.issuer !== null ? `{"iss":${quoted(principal.issuer)},"jti":${quoted(principal.tokenId)}}` : 'null';
    json += `"scopes":${stringList(principal.scopes)},"token":${token},`;
  }
  json +=
    `"upstream":{"called":${ctx.upstreamCalled},"id":${quoted(route !== null && ctx.upstreamCalled ? route.upstream.id : null)},"status":${number(ctx.upstreamStatus)}},` +
    `"zone":${quoted(ctx.listener.zone)}`;
  const portcullisClose = json.length;
  json += `},"source":{"ip":${quoted(ctx.clientIp)},"port":${number(ctx.clientPort)}},"span":{"id":${quoted(ctx.spanId || null)}}`;
  if (ctx.tls !== null) {
    json +=
      `,"tls":{"cipher":${quoted(ctx.tls.cipher)},"client":${clientFields(ctx, ctx.tls.sni)},` +
      `"next_protocol":${quoted(ctx.tls.alpn)},"version":${quoted(ctx.tls.protocol)}}`;
  }
  json += `,"trace":{"id":${quoted(ctx.traceId || null)}},"url":{"path":${bounded(ctx.path)}}}`;
  return { json, portcullisClose };
}

/**
 * The record as the trail takes it: serialized once, here — or, when it breaks a line limit (a
 * token with more scopes than a line may list), as an object, which the trail's append refuses
 * saying why (the request then fails closed like any record the trail cannot take).
 */
export function decisionForTrail(ctx: DecisionInput, outcome: Outcome, endedAt: bigint): SerializedRecord | Record<string, unknown> {
  if (ctx.principal !== null && ctx.principal.scopes.size > LINE_LIMITS.maxMembers) return decisionRecord(ctx, outcome, endedAt);
  const { json, portcullisClose } = decisionJson(ctx, outcome, endedAt);
  const serialized = serializedFromCanonicalJson(json, portcullisClose, ctx.principal?.partner.id ?? null);
  // Not expected (the shape is fixed): the trail then serializes the object itself.
  return typeof serialized === 'string' ? (JSON.parse(json) as Record<string, unknown>) : serialized;
}

/** Writes the record to the decision log and returns what to append to the trail: one serialization for both. */
export function logDecision(decisionLog: DecisionLog, ctx: DecisionInput, outcome: Outcome, endedAt: bigint): SerializedRecord | Record<string, unknown> {
  const record = decisionForTrail(ctx, outcome, endedAt);
  if (record instanceof SerializedRecord) decisionLog.writeJson(record.json);
  else decisionLog.write(record);
  return record;
}

/** The decision record as an object (the parsed `decisionJson`: one definition of its shape). */
export function decisionRecord(ctx: DecisionInput, outcome: Outcome, endedAt: bigint): Record<string, unknown> {
  return JSON.parse(decisionJson(ctx, outcome, endedAt).json) as Record<string, unknown>;
}

/** ECS `tls.client.*`: the SNI, and who a presented client certificate names — never its key. */
function clientFields(ctx: DecisionInput, serverName: string | null): string {
  const certificate = ctx.clientCertificate;
  if (certificate === null) return `{"server_name":${quoted(serverName)}}`;
  const { facts } = certificate;
  return (
    `{"hash":{"sha256":${quoted(facts.fingerprintSha256)}},"issuer":${bounded(facts.issuer)},"not_after":${quoted(facts.notAfter)},` +
    `"server_name":${quoted(serverName)},"subject":${bounded(facts.subject)},"x509":{"serial_number":${quoted(facts.serial)}}}`
  );
}

/** Printable ASCII without `"` and `\`: JSON.stringify writes it between quotes unchanged. */
const NEEDS_NO_ESCAPING = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/**
 * As JSON.stringify writes a string. Most strings in a record are ids, codes and addresses that
 * need no escaping: they skip JSON.stringify, a call into the runtime that cost more than the
 * rest of the record.
 */
function quoted(text: string | null): string {
  if (text === null) return 'null';
  return NEEDS_NO_ESCAPING.test(text) ? `"${text}"` : JSON.stringify(text);
}

/** Caller-controlled text, cut to a bound. */
function bounded(text: string, max = 2048): string {
  return quoted(text.length > max ? text.slice(0, max) : text);
}

/** As JSON writes a number: a non-finite one is null. */
function number(value: number | null): string {
  return value === null || !Number.isFinite(value) ? 'null' : String(value);
}

/**
 * As JSON writes `micros / 1000` (milliseconds to the microsecond), from integers: a decimal of
 * at most 15 significant digits is the shortest form of the double nearest to it, so the exact
 * quotient with trailing zeros dropped is what JSON would write — and formatting a double costs
 * several times more. Larger values (31 years and up) take JSON's own way.
 */
export function millis(micros: number): string {
  if (!Number.isInteger(micros) || micros < 0 || micros >= 1e15) return number(micros / 1000);
  const whole = Math.floor(micros / 1000);
  let fraction = micros - whole * 1000;
  if (fraction === 0) return String(whole);
  let digits = 3;
  while (fraction % 10 === 0) {
    fraction /= 10;
    digits -= 1;
  }
  const text = String(fraction);
  return `${whole}.${'0'.repeat(digits - text.length)}${text}`;
}

function stringList(items: Iterable<string>): string {
  let out = '[';
  for (const item of items) out += (out.length > 1 ? ',' : '') + quoted(item);
  return out + ']';
}

/** `receivedAt` as ISO 8601: requests received in the same millisecond share one formatting. */
let lastTimestamp = { ms: Number.NaN, text: '' };
function isoTimestamp(at: Date): string {
  const ms = at.getTime();
  if (ms !== lastTimestamp.ms) lastTimestamp = { ms, text: at.toISOString() };
  return lastTimestamp.text;
}
