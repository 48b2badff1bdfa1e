/**
 * The on-disk format of the tamper-evident audit trail — the contract between the writer
 * (`trail.ts`) and `portcullis audit verify` / `audit query`.
 *
 * A trail is a folder of streams, one JSON-lines file each:
 *   <dir>/combined.jsonl            every record
 *   <dir>/partners/<partner>.jsonl  the records of one partner (its own chain)
 *
 * Every line is a JSON object (ECS field names) carrying `portcullis.chain`:
 *   { stream, seq, prev, hash }
 * - `stream`: `combined` or `partner/<id>`;
 * - `seq`: 1, 2, 3, … without gaps within a stream, continuing across restarts;
 * - `prev`: the `hash` of the previous line of the stream (GENESIS_HASH for seq 1);
 * - `hash`: hex SHA-256 of `prev \n stream \n seq \n canonicalJson(line without portcullis.chain)`
 *   (see `chainHash`): the chain fields are bound explicitly, so the canonical form of a record
 *   is computed once and serves every stream it goes to.
 *
 * Checkpoint lines are chained like any other line, with `event.action: "audit.checkpoint"` and
 * `portcullis.checkpoint: { key_id, alg: "Ed25519", signature }` where the signature (base64url)
 * covers `checkpointMessage(stream, seq, prev)` — i.e. it vouches for every line before it.
 */
import { createHash } from 'node:crypto';
import { canonicalJson } from '../config/config-hash.ts';

export const GENESIS_HASH = '0'.repeat(64);
export const COMBINED_STREAM = 'combined';
export const CHECKPOINT_ACTION = 'audit.checkpoint';
/** The writer's note that a torn final line (a crash mid-write) was truncated on restart. */
export const RECOVERED_ACTION = 'audit.recovered';
/**
 * Bounds of one line, shared by the writer (which refuses a record that would break them) and
 * `audit verify` (which reads lines as untrusted input): bytes of a line without its newline;
 * containers nested (the line itself is depth 1); members of one object or elements of one array.
 */
export const MAX_LINE_BYTES = 1024 * 1024;
export const LINE_LIMITS = Object.freeze({ maxDepth: 16, maxMembers: 512 });

export interface ChainFields {
  readonly stream: string;
  readonly seq: number;
  readonly prev: string;
  readonly hash: string;
}

export function partnerStream(partnerId: string): string {
  return `partner/${partnerId}`;
}

/** Relative file path of a stream inside the trail folder. */
export function streamFile(stream: string): string {
  return stream === COMBINED_STREAM ? 'combined.jsonl' : `partners/${stream.slice('partner/'.length)}.jsonl`;
}

/** The hash of a line given its chain position and the canonical JSON of its body (the line without `portcullis.chain`). */
export function chainHash(prev: string, stream: string, seq: number, canonicalBody: string): string {
  return createHash('sha256').update(`${prev}\n${stream}\n${seq}\n`).update(canonicalBody).digest('hex');
}

/**
 * What a record is hashed as: the record with a `portcullis` member (every written line has one,
 * since the chain lives there), so writer and verifier canonicalize the same shape.
 */
export function hashedBody(record: Record<string, unknown>): object {
  return record['portcullis'] === undefined ? { ...record, portcullis: {} } : record;
}

/** The line without `portcullis.chain` (the part `chainHash` covers as canonical JSON). */
export function lineBody(line: object): object {
  const portcullis = (line as { portcullis?: unknown }).portcullis;
  if (portcullis === null || typeof portcullis !== 'object' || Array.isArray(portcullis) || !Object.hasOwn(portcullis, 'chain')) return line;
  const { chain: _chain, ...rest } = portcullis as Record<string, unknown>;
  return { ...line, portcullis: rest };
}

/** The hash of a line whose `portcullis.chain` holds stream, seq and prev (a `hash` there is ignored). */
export function lineHash(prev: string, line: object): string {
  const chain = (line as { portcullis?: { chain?: { stream?: unknown; seq?: unknown } } }).portcullis?.chain;
  return chainHash(prev, String(chain?.stream), Number(chain?.seq), canonicalJson(lineBody(line)));
}

export function checkpointMessage(stream: string, seq: number, prev: string): string {
  return `portcullis-audit-checkpoint\n${stream}\n${seq}\n${prev}`;
}
