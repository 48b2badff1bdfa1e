/**
 * The on-disk format of the tamper-evident audit trail — the contract between the writer
 * (`trail.ts`) and `portcullis audit verify` / `audit query`.
 *
 * A trail is a folder of streams, one JSON-lines file each:
 *   <dir>/combined.jsonl            every record
 *   <dir>/partners/<partner>.jsonl  the records of one partner (its own chain)
 *   <dir>/combined.<stamp>.jsonl, <dir>/partners/<partner>.<stamp>.jsonl  rotated segments (see below)
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
import { hash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
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
  // One-shot hash: a createHash object per line cost more than hashing the line itself.
  return hash('sha256', chainHashHead(prev, stream, seq) + canonicalBody, 'hex');
}

/** What `chainHash` hashes in front of the canonical body (the writer puts it in front of the body's bytes). */
export function chainHashHead(prev: string, stream: string, seq: number): string {
  return `${prev}\n${stream}\n${seq}\n`;
}

/**
 * A record body serialized once, in canonical form, for every stream it is chained into: each
 * stream's line is `json` with that stream's `chain` member spliced in as the last member of
 * `portcullis` (at `portcullisClose`, the index of the `}` that closes it). So a line is the
 * canonical body plus its chain fields, and its hash input is `json` itself — no stream serializes
 * the record again.
 */
export interface CanonicalRecord {
  /** The record as an object (sinks get it back, with the chain fields, as the line's object). */
  readonly body: Record<string, unknown>;
  /** canonicalJson(hashedBody(body)). */
  readonly json: string;
  /** UTF-8 bytes of `json`. */
  readonly bytes: number;
  readonly portcullisClose: number;
  readonly portcullisEmpty: boolean;
}

/**
 * A record its producer wrote as canonical JSON itself (the gateway's decision record,
 * src/pipeline/audit.ts): nothing serializes it again, and its object form is parsed back from
 * `json` only if a sink asks for it. `portcullisClose` is the index of the `}` closing `portcullis`.
 */
export class RecordFromJson implements CanonicalRecord {
  readonly json: string;
  readonly bytes: number;
  readonly portcullisClose: number;
  readonly portcullisEmpty: boolean;
  #body: Record<string, unknown> | null = null;
  constructor(json: string, portcullisClose: number) {
    this.json = json;
    this.bytes = Buffer.byteLength(json);
    this.portcullisClose = portcullisClose;
    this.portcullisEmpty = json.charCodeAt(portcullisClose - 1) === 0x7b; /* { */
  }
  get body(): Record<string, unknown> {
    return (this.#body ??= JSON.parse(this.json) as Record<string, unknown>);
  }
}

/**
 * The canonical form of a record body. `deepSorted` says every object below the top level is a
 * plain object whose keys are already in canonical order, `topSorted` that the body's own keys are
 * too (both checked by the caller, see `trail.ts` serializeRecord): then `JSON.stringify` writes
 * exactly what `canonicalJson` would, at a fraction of the cost (sorting is what canonicalJson
 * spends its time on).
 */
export function canonicalRecord(body: Record<string, unknown>, deepSorted: boolean, topSorted = false): CanonicalRecord {
  if (deepSorted && topSorted && body['portcullis'] !== undefined) {
    const whole = wholeRecord(body);
    if (whole !== null) return whole;
  }
  const keys = Object.keys(body);
  if (!Object.hasOwn(body, 'portcullis')) keys.push('portcullis');
  keys.sort();
  let json = '{';
  let portcullisClose = -1;
  let portcullisEmpty = true;
  for (const key of keys) {
    const value = key === 'portcullis' ? (body[key] ?? {}) : body[key];
    if (value === undefined) continue;
    if (json.length > 1) json += ',';
    const member = deepSorted ? (JSON.stringify(value) ?? 'null') : canonicalJson(value);
    json += JSON.stringify(key) + ':' + member;
    if (key === 'portcullis') {
      portcullisClose = json.length - 1;
      portcullisEmpty = member === '{}';
    }
  }
  json += '}';
  return { body, json, bytes: Buffer.byteLength(json), portcullisClose, portcullisEmpty };
}

/**
 * One JSON.stringify of the whole body; `portcullis` closes where the members after it begin,
 * found by serializing those (a few small ones in a decision record) on their own.
 */
function wholeRecord(body: Record<string, unknown>): CanonicalRecord | null {
  const json = JSON.stringify(body);
  const keys = Object.keys(body);
  const after = keys.indexOf('portcullis') + 1;
  let tail = 0;
  if (after < keys.length) {
    const rest: Record<string, unknown> = {};
    for (let i = after; i < keys.length; i++) rest[keys[i]!] = body[keys[i]!];
    const restJson = JSON.stringify(rest);
    // `,` + the members without their braces, when any is written at all.
    if (restJson.length > 2) tail = restJson.length - 1;
  }
  const portcullisClose = json.length - 2 - tail;
  // Never splice blind: anything unexpected takes the member-by-member path.
  if (json.charCodeAt(portcullisClose) !== 0x7d /* } */ || (tail > 0 && json.charCodeAt(portcullisClose + 1) !== 0x2c) /* , */) return null;
  return { body, json, bytes: Buffer.byteLength(json), portcullisClose, portcullisEmpty: json.charCodeAt(portcullisClose - 1) === 0x7b /* { */ };
}

/** The line of `record` in a stream: its canonical JSON with `portcullis.chain` added (newline included). */
export function chainedLine(record: CanonicalRecord, chain: ChainFields, quotedStream: string): string {
  const { json, portcullisClose } = record;
  return json.slice(0, portcullisClose) + chainMember(record, chain, quotedStream) + json.slice(portcullisClose) + '\n';
}

/** What a stream's line adds to the record's canonical JSON at `portcullisClose`: its `chain` member. */
export function chainMember(record: CanonicalRecord, chain: ChainFields, quotedStream: string): string {
  return `${record.portcullisEmpty ? '' : ','}"chain":{"stream":${quotedStream},"seq":${chain.seq},"prev":"${chain.prev}","hash":"${chain.hash}"}`;
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

/**
 * Rotation (docs/audit.md "Rotation"): a stream's live file is closed after a signed checkpoint
 * and renamed to `<name>.<UTC timestamp>.jsonl` (`-<n>` added when two rotations share a
 * millisecond); the chain goes on in a fresh live file, so one stream is its rotated segments in
 * order followed by the live file. Partner ids have no upper case, so a segment's name (with its
 * `T…Z` stamp) can never be taken for a live partner file.
 */
const SEGMENT_STAMP = /^(\d{8}T\d{6}\.\d{3}Z)(?:-([1-9][0-9]{0,5}))?\.jsonl$/;

/** `20261123T165312.123Z`: ISO 8601 basic format, sorts as time. */
export function segmentStamp(at: Date): string {
  return at.toISOString().replace(/[-:]/g, '');
}

/** The file name of a rotated segment of `stream` (relative to the trail folder). */
export function segmentFile(stream: string, stamp: string, collision: number): string {
  return `${streamFile(stream).slice(0, -'.jsonl'.length)}.${stamp}${collision > 0 ? `-${collision}` : ''}.jsonl`;
}

/** Order key of a segment name given the stream's live-file base name (`combined`, `acme`), or null if it is not one. */
export function segmentOrder(base: string, name: string): { readonly stamp: string; readonly collision: number } | null {
  if (!name.startsWith(`${base}.`)) return null;
  const match = SEGMENT_STAMP.exec(name.slice(base.length + 1));
  return match === null ? null : { stamp: match[1]!, collision: match[2] === undefined ? 0 : Number(match[2]) };
}

/** Sorts segment names of one stream oldest first (by stamp, then collision number). */
export function compareSegments(a: { readonly stamp: string; readonly collision: number }, b: { readonly stamp: string; readonly collision: number }): number {
  return a.stamp < b.stamp ? -1 : a.stamp > b.stamp ? 1 : a.collision - b.collision;
}

/** The rotated segments of `stream` in `dir` (paths relative to `dir`), oldest first. */
export async function listSegments(dir: string, stream: string): Promise<string[]> {
  const live = streamFile(stream);
  const slash = live.lastIndexOf('/');
  const folder = slash < 0 ? '' : live.slice(0, slash);
  const base = live.slice(slash + 1, -'.jsonl'.length);
  let names: string[];
  try {
    names = await readdir(folder === '' ? dir : `${dir}/${folder}`);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  return names
    .map((name) => ({ name, order: segmentOrder(base, name) }))
    .filter((entry): entry is { name: string; order: { stamp: string; collision: number } } => entry.order !== null)
    .sort((a, b) => compareSegments(a.order, b.order))
    .map((entry) => (folder === '' ? entry.name : `${folder}/${entry.name}`));
}

/**
 * The rotated segments of every stream in `dir`, by stream (paths relative to `dir`, oldest
 * first): one listing of the trail folder and one of `partners/`, however many partners there
 * are — a listing per stream would read a 10,000-entry folder 10,000 times.
 */
export async function segmentsByStream(dir: string): Promise<Map<string, string[]>> {
  const found = new Map<string, { relative: string; order: { stamp: string; collision: number } }[]>();
  const collect = async (folder: string, streamOf: (base: string) => string | null): Promise<void> => {
    let names: string[];
    try {
      names = await readdir(folder === '' ? dir : `${dir}/${folder}`);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    for (const name of names) {
      const base = segmentBase(name);
      const stream = base === null ? null : streamOf(base);
      const order = stream === null ? null : segmentOrder(base!, name);
      if (order === null) continue;
      const list = found.get(stream!) ?? [];
      list.push({ relative: folder === '' ? name : `${folder}/${name}`, order });
      found.set(stream!, list);
    }
  };
  await collect('', (base) => (base === COMBINED_STREAM ? COMBINED_STREAM : null));
  await collect('partners', (base) => partnerStream(base));
  return new Map([...found].map(([stream, list]) => [stream, list.sort((a, b) => compareSegments(a.order, b.order)).map((entry) => entry.relative)]));
}

/** The live-file base name a segment file name belongs to (`acme` for `acme.20261123T165312.123Z.jsonl`), or null. */
export function segmentBase(name: string): string | null {
  const match = /^(.+)\.\d{8}T\d{6}\.\d{3}Z(?:-[1-9][0-9]{0,5})?\.jsonl$/.exec(name);
  return match === null ? null : match[1]!;
}
