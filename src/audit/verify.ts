/**
 * `portcullis audit verify`: checks a trail (format: `chain-format.ts`) and names the first line
 * of each stream that was edited, removed, reordered or truncated, and whether a signed
 * checkpoint covers the tail.
 *
 * Two layers of evidence:
 * - within a stream, the hash chain (`seq`, `prev`, `hash`) shows any change that was not
 *   followed by re-hashing every later line, and the Ed25519 checkpoints (RFC 8032) show a
 *   re-hashed chain, since only the gateway's key can sign the new hashes;
 * - across streams, every partner record is also in the combined stream (and the reverse), with
 *   the same content in the same order, so rewriting one stream and re-chaining it is still
 *   caught unless the other was rewritten to match.
 *
 * Lines are untrusted input: read in bounded pieces, decoded as strict UTF-8, parsed with
 * `parseStrictJson` (duplicate members refused, so a line cannot say two things at once).
 */
import { createHash, createPublicKey, verify as verifySignature } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, readdir, stat } from 'node:fs/promises';
import { workerTrails } from './worker-trails.ts';
import { basename, dirname, join, resolve } from 'node:path';
import { canonicalJson } from '../config/config-hash.ts';
import { parseStrictJson } from '../authn/strict-json.ts';
import {
  CHECKPOINT_ACTION,
  COMBINED_STREAM,
  GENESIS_HASH,
  LINE_LIMITS as AUDIT_LINE_LIMITS,
  MAX_LINE_BYTES,
  RECOVERED_ACTION,
  checkpointMessage,
  lineHash,
  segmentsByStream,
  partnerStream,
  segmentBase,
  streamFile,
} from './chain-format.ts';

// The writer and the verifier share one bound on a line's size and shape (chain-format.ts).
export { AUDIT_LINE_LIMITS, MAX_LINE_BYTES };
export const PUBLIC_KEY_FILE = 'audit-signing.pub';

const HEX_HASH = /^[0-9a-f]{64}$/;
/** An Ed25519 signature is 64 bytes (RFC 8032 §5.1.6), 86 base64url characters unpadded. */
const ED25519_SIGNATURE_BYTES = 64;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

export type ProblemKind =
  /** The line's content no longer matches its hash (or is not a chained JSON line at all). */
  | 'edited'
  /** Lines are missing: a gap in `seq`, or a record the other streams hold is not here. */
  | 'removed'
  /** Lines are out of order: `seq` goes backwards, or a skipped `seq` comes later. */
  | 'reordered'
  /** The stream ends early: a torn last line, or records the other streams hold are missing at its end. */
  | 'truncated'
  /** A checkpoint whose signature does not verify with the trail's public key. */
  | 'forged_checkpoint'
  /** A line of another stream, or of another partner. */
  | 'foreign_line';

export interface TrailProblem {
  /**
   * 1-based line number in the stream (one past the last line for a missing tail). A rotated
   * stream is read as its segments in order then its live file, and counted as one sequence of
   * lines; `file` and `fileLine` then say where the line is.
   */
  readonly line: number;
  /** The segment or live file holding the line (relative to the trail folder), when the stream has rotated segments. */
  readonly file?: string;
  readonly fileLine?: number;
  readonly seq: number | null;
  readonly kind: ProblemKind;
  readonly detail: string;
}

export interface StreamReport {
  readonly stream: string;
  /** Path relative to the trail folder (or the file as given). */
  readonly file: string;
  /** Its rotated segments (relative to the trail folder), oldest first, read before `file`. */
  readonly segments: readonly string[];
  readonly lines: number;
  /** `seq` of the last line that carries one (0 for an empty stream). */
  readonly lastSeq: number;
  readonly ok: boolean;
  readonly firstProblem: TrailProblem | null;
  /** `seq` of the last checkpoint whose signature verified before any problem; null if none. */
  readonly lastCheckpointSeq: number | null;
  /** The stream is intact and its last line is a verified checkpoint: nothing unsigned after it. */
  readonly tailCovered: boolean;
}

export interface TrailReport {
  readonly path: string;
  /** Every stream intact and every checkpoint signature checked. */
  readonly ok: boolean;
  /** `verified`: signatures were checked with `keySource`; `no_key`: they could not be. */
  readonly signatures: 'verified' | 'no_key';
  /** `--key` / `option`, the default key file's path, or null. */
  readonly keySource: string | null;
  /** Whether partner and combined streams were compared (only when a folder is verified). */
  readonly crossChecked: boolean;
  readonly streams: readonly StreamReport[];
}

export interface VerifyOptions {
  /** SPKI PEM of the checkpoint key (`audit-signing.pub`). Default: `<trail>/../audit-keys/audit-signing.pub` if it exists. */
  readonly publicKeyPem?: string;
}

/** PATH or the key cannot be used at all: a usage error, not a verdict on the trail. */
export class TrailInputError extends Error {
  override readonly name = 'TrailInputError';
}

export async function verifyTrail(path: string, options: VerifyOptions): Promise<TrailReport> {
  const target = resolve(path);
  const kind = await pathKind(target);
  if (kind === 'folder') {
    const workers = await workerTrails(target);
    if (workers.length > 0) return verifyWorkerTrails(target, workers, options);
  }
  const files: StreamEntry[] = kind === 'folder' ? await trailFiles(target) : [{ file: target, relative: target, stream: streamOfFile(target), segments: [] }];
  const root = kind === 'folder' ? target : trailRootOfFile(target);
  const key = await checkpointKey(root, options);

  const scans: StreamScan[] = [];
  for (const entry of files) scans.push(await scanStream(entry, kind === 'folder' ? target : null, key.key));
  if (kind === 'folder') crossCheck(scans, target);

  const streams = scans.map(reportOf);
  return {
    path: target,
    ok: key.key !== null && streams.every((stream) => stream.ok),
    signatures: key.key !== null ? 'verified' : 'no_key',
    keySource: key.source,
    crossChecked: kind === 'folder',
    streams,
  };
}

/** Each worker trail verified on its own, with the key beside the audit folder. */
async function verifyWorkerTrails(dir: string, workers: readonly string[], options: VerifyOptions): Promise<TrailReport> {
  const key = await checkpointKey(dir, options);
  const reports: TrailReport[] = [];
  for (const worker of workers) {
    const publicKeyPem = key.key ? (key.key.export({ type: 'spki', format: 'pem' }) as string) : undefined;
    reports.push(await verifyTrail(join(dir, worker), publicKeyPem !== undefined ? { publicKeyPem } : {}));
  }
  return {
    path: dir,
    ok: key.key !== null && reports.every((report) => report.ok),
    signatures: key.key !== null ? 'verified' : 'no_key',
    keySource: key.source,
    crossChecked: true,
    streams: reports.flatMap((report, index) => report.streams.map((stream) => ({ ...stream, file: join(workers[index]!, stream.file) }))),
  };
}

// ---------------------------------------------------------------------------------------------
// Locating streams and the key

async function pathKind(path: string): Promise<'file' | 'folder'> {
  let info;
  try {
    info = await stat(path);
  } catch (error) {
    throw new TrailInputError(`${path} cannot be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  if (info.isDirectory()) return 'folder';
  if (info.isFile()) return 'file';
  throw new TrailInputError(`${path} is neither a stream file nor a trail folder`);
}

interface StreamEntry {
  readonly file: string;
  readonly relative: string;
  /** The stream the file's name says it holds; null when the name does not say (a renamed copy). */
  readonly stream: string | null;
  /** Rotated segments (relative to the trail folder), oldest first. */
  readonly segments: readonly string[];
}

async function trailFiles(dir: string): Promise<StreamEntry[]> {
  const entries: StreamEntry[] = [];
  const combined = join(dir, streamFile(COMBINED_STREAM));
  const segments = await segmentsByStream(dir);
  const combinedSegments = segments.get(COMBINED_STREAM) ?? [];
  if ((await isFile(combined)) || combinedSegments.length > 0) {
    entries.push({ file: combined, relative: streamFile(COMBINED_STREAM), stream: COMBINED_STREAM, segments: combinedSegments });
  }
  let names: string[] = [];
  try {
    names = await readdir(join(dir, 'partners'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  // A partner's stream is its live file and its rotated segments; either may exist alone.
  const partners = new Set<string>();
  for (const name of names) {
    if (!name.endsWith('.jsonl')) continue;
    partners.add(segmentBase(name) ?? name.slice(0, -'.jsonl'.length));
  }
  for (const partner of [...partners].sort()) {
    const stream = partnerStream(partner);
    entries.push({ file: join(dir, streamFile(stream)), relative: streamFile(stream), stream, segments: segments.get(stream) ?? [] });
  }
  if (entries.length === 0) throw new TrailInputError(`${dir} holds no audit trail (no combined.jsonl, no partners/*.jsonl)`);
  return entries;
}

/** The lines of a stream: its rotated segments in order, then its live file (absent after a rotation until the next write). */
async function* streamLines(entry: StreamEntry, dir: string | null): AsyncGenerator<{ line: TrailLine; file: string; fileLine: number }> {
  let number = 0;
  const files = entry.segments.map((relative) => ({ path: join(dir!, relative), relative }));
  if (entry.segments.length === 0 || (await isFile(entry.file))) files.push({ path: entry.file, relative: entry.relative });
  for (const file of files) {
    for await (const line of readTrailLines(file.path)) {
      number += 1;
      yield { line: { ...line, number }, file: file.relative, fileLine: line.number };
    }
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

function streamOfFile(file: string): string | null {
  const name = basename(file);
  if (name === 'combined.jsonl') return COMBINED_STREAM;
  if (basename(dirname(file)) === 'partners' && name.endsWith('.jsonl')) return partnerStream(name.slice(0, -'.jsonl'.length));
  return null;
}

function trailRootOfFile(file: string): string {
  return basename(dirname(file)) === 'partners' ? dirname(dirname(file)) : dirname(file);
}

async function checkpointKey(root: string, options: VerifyOptions): Promise<{ key: KeyObject | null; source: string | null }> {
  if (options.publicKeyPem !== undefined) return { key: parsePublicKey(options.publicKeyPem, 'the given key'), source: 'option' };
  // The gateway keeps the key in <data_dir>/audit-keys and the trail in <data_dir>/audit by default.
  const defaultPath = join(root, '..', 'audit-keys', PUBLIC_KEY_FILE);
  let pem: string;
  try {
    pem = await readFile(defaultPath, 'utf8');
  } catch {
    return { key: null, source: null };
  }
  return { key: parsePublicKey(pem, defaultPath), source: defaultPath };
}

function parsePublicKey(pem: string, where: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: 'pem' });
  } catch (error) {
    throw new TrailInputError(`${where} is not a PEM public key: ${(error as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new TrailInputError(`${where} is a ${key.asymmetricKeyType ?? 'unknown'} key; audit checkpoints are signed with Ed25519`);
  }
  return key;
}

// ---------------------------------------------------------------------------------------------
// Reading lines

export interface TrailLine {
  /** 1-based. */
  readonly number: number;
  /** The decoded text, or null when the bytes are not UTF-8 or the line is too long. */
  readonly text: string | null;
  /** Whether the line ends with a newline (a writer always ends one; a crash may not). */
  readonly terminated: boolean;
  /** Why `text` is null. */
  readonly unreadable?: string;
}

/** Reads a JSON-lines file in bounded memory: no line may exceed `MAX_LINE_BYTES`. */
export async function* readTrailLines(file: string): AsyncGenerator<TrailLine> {
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  let pieces: Buffer[] = [];
  let pieceBytes = 0;
  let oversized = false;
  let number = 0;
  const finish = (terminated: boolean): TrailLine => {
    number += 1;
    if (oversized) return { number, text: null, terminated, unreadable: `longer than ${MAX_LINE_BYTES} bytes` };
    try {
      return { number, text: decoder.decode(Buffer.concat(pieces, pieceBytes)), terminated };
    } catch {
      return { number, text: null, terminated, unreadable: 'not UTF-8' };
    }
  };
  for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
    let start = 0;
    for (;;) {
      const newline = chunk.indexOf(0x0a, start);
      const end = newline < 0 ? chunk.length : newline;
      if (!oversized) {
        pieceBytes += end - start;
        if (pieceBytes > MAX_LINE_BYTES) {
          oversized = true;
          pieces = [];
        } else if (end > start) {
          pieces.push(chunk.subarray(start, end));
        }
      }
      if (newline < 0) break;
      yield finish(true);
      pieces = [];
      pieceBytes = 0;
      oversized = false;
      start = newline + 1;
    }
  }
  if (pieceBytes > 0 || oversized) yield finish(false);
}

/** A parsed line: its record, chain fields when well-formed, and why not otherwise. */
export type ParsedLine =
  | { readonly ok: true; readonly record: Record<string, unknown>; readonly chain: ChainOf }
  | { readonly ok: false; readonly record: Record<string, unknown> | null; readonly detail: string };

interface ChainOf {
  readonly stream: string;
  readonly seq: number;
  readonly prev: string;
  readonly hash: string;
}

export function parseTrailLine(line: TrailLine): ParsedLine {
  if (line.text === null) return { ok: false, record: null, detail: `line is ${line.unreadable}` };
  const parsed = parseStrictJson(line.text, AUDIT_LINE_LIMITS);
  if (!parsed.ok) return { ok: false, record: null, detail: `not a JSON line (${parsed.error}: ${parsed.detail})` };
  if (!isObject(parsed.value)) return { ok: false, record: null, detail: 'not a JSON object' };
  const record = parsed.value;
  const chain = member(member(record, 'portcullis'), 'chain');
  if (!isObject(chain)) return { ok: false, record, detail: 'no portcullis.chain' };
  const { stream, seq, prev, hash } = { stream: member(chain, 'stream'), seq: member(chain, 'seq'), prev: member(chain, 'prev'), hash: member(chain, 'hash') };
  if (typeof stream !== 'string' || typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) {
    return { ok: false, record, detail: 'portcullis.chain has no valid stream and seq' };
  }
  if (typeof prev !== 'string' || !HEX_HASH.test(prev) || typeof hash !== 'string' || !HEX_HASH.test(hash)) {
    return { ok: false, record, detail: 'portcullis.chain has no valid prev and hash (64 lowercase hex digits)' };
  }
  return { ok: true, record, chain: { stream, seq, prev, hash } };
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** An own member only: parsed objects have no prototype, and nothing inherited may answer. */
export function member(value: unknown, name: string): unknown {
  return isObject(value) && Object.hasOwn(value, name) ? value[name] : undefined;
}

/** The record without this stream's chain fields: what two streams holding it must agree on. */
function withoutChain(record: Record<string, unknown>): object {
  const portcullis = member(record, 'portcullis') as Record<string, unknown>;
  const { chain: _chain, ...rest } = portcullis;
  return { ...record, portcullis: rest };
}

/** The object `lineHash` covers: the line with `portcullis.chain.hash` left out (chain-format.ts). */
function withoutHash(record: Record<string, unknown>): object {
  const portcullis = member(record, 'portcullis') as Record<string, unknown>;
  const { hash: _hash, ...chain } = portcullis['chain'] as Record<string, unknown>;
  return { ...record, portcullis: { ...portcullis, chain } };
}

// ---------------------------------------------------------------------------------------------
// One stream: the chain and its checkpoints

/** A record of a stream, as the cross-check needs it. */
interface RecordEntry {
  readonly line: number;
  readonly seq: number;
  /** `http.request.id` + `@timestamp`, or the content digest when a record has neither. */
  readonly key: string;
  readonly partner: string | null;
  /** SHA-256 of the record without its chain fields. */
  readonly digest: string;
}

interface StreamScan {
  readonly stream: string;
  readonly file: string;
  readonly segments: readonly string[];
  lines: number;
  lastSeq: number;
  problems: TrailProblem[];
  lastCheckpointSeq: number | null;
  lastLineIsVerifiedCheckpoint: boolean;
  readonly records: RecordEntry[];
}

/** A `seq` jump whose classification waits for the rest of the file: removed, unless the skipped seqs come later. */
interface PendingGap {
  readonly problem: TrailProblem;
  readonly from: number;
  readonly to: number;
}

async function scanStream(entry: StreamEntry, dir: string | null, key: KeyObject | null): Promise<StreamScan> {
  const expectedStream = entry.stream;
  const rotated = entry.segments.length > 0;
  const scan: StreamScan = { stream: expectedStream ?? '?', file: entry.relative, segments: entry.segments, lines: 0, lastSeq: 0, problems: [], lastCheckpointSeq: null, lastLineIsVerifiedCheckpoint: false, records: [] };
  let stream = expectedStream;
  let expectedSeq = 1;
  let prevHash = GENESIS_HASH;
  let prevLine: { number: number; seq: number } | null = null;
  let broken = false;
  let gap: PendingGap | null = null;
  let where: { file: string; fileLine: number } = { file: entry.relative, fileLine: 0 };
  const fail = (problem: TrailProblem): void => {
    scan.problems.push(rotated ? { ...problem, ...where } : problem);
    broken = true;
    scan.lastLineIsVerifiedCheckpoint = false;
  };

  for await (const { line, file, fileLine } of streamLines(entry, dir)) {
    where = { file, fileLine };
    scan.lines = line.number;
    const parsed = parseTrailLine(line);
    if (!parsed.ok) {
      if (!broken) {
        // A writer ends every line with a newline; an unterminated last line is a torn write.
        const torn = !line.terminated;
        fail({ line: line.number, seq: null, kind: torn ? 'truncated' : 'edited', detail: torn ? `the last line is cut short (${parsed.detail})` : parsed.detail });
      }
      continue;
    }
    const { chain, record } = parsed;
    scan.lastSeq = chain.seq;
    stream ??= chain.stream;
    scan.records.push(recordEntry(line.number, chain.seq, record));
    if (gap !== null && chain.seq >= gap.from && chain.seq < gap.to) {
      // A skipped seq shows up later: the lines were moved, not deleted.
      scan.problems[scan.problems.indexOf(gap.problem)] = { ...gap.problem, kind: 'reordered', detail: `${gap.problem.detail}; seq ${chain.seq} comes later, at line ${line.number}` };
      gap = null;
    }
    if (broken) continue;

    if (!line.terminated) {
      // Complete JSON but no newline: the writer had not finished the line (its recovery drops it).
      fail({ line: line.number, seq: chain.seq, kind: 'truncated', detail: 'the last line has no newline: a write was cut short' });
      continue;
    }
    if (chain.stream !== stream) {
      fail({ line: line.number, seq: chain.seq, kind: 'foreign_line', detail: `the line belongs to stream "${chain.stream}", not "${stream}"` });
      continue;
    }
    if (chain.seq !== expectedSeq) {
      if (chain.prev === prevHash) {
        // The link to the previous line holds, so only the number changed.
        fail({ line: line.number, seq: chain.seq, kind: 'edited', detail: `seq ${chain.seq} where ${expectedSeq} belongs, though the line chains to the previous one` });
      } else if (chain.seq < expectedSeq) {
        fail({ line: line.number, seq: chain.seq, kind: 'reordered', detail: `seq ${chain.seq} after seq ${expectedSeq - 1}` });
      } else {
        const missing = chain.seq - expectedSeq === 1 ? `seq ${expectedSeq} is missing` : `seq ${expectedSeq}–${chain.seq - 1} are missing`;
        // A gap at the first line of a file of a rotated stream: a whole segment is gone.
        const segment = rotated && fileLine === 1 ? `: a rotated segment before ${file} is missing` : '';
        const problem: TrailProblem = { line: line.number, seq: chain.seq, kind: 'removed', detail: `${missing} before this line${segment}` };
        fail(problem);
        gap = { problem, from: expectedSeq, to: chain.seq };
      }
      continue;
    }
    const recomputed = lineHash(chain.prev, withoutHash(record));
    if (chain.prev !== prevHash) {
      if (recomputed === chain.hash && prevLine !== null) {
        // This line is intact, so the one before changed and was given a fresh hash.
        fail({ line: prevLine.number, seq: prevLine.seq, kind: 'edited', detail: `its hash was replaced: line ${line.number} (seq ${chain.seq}) chains to ${chain.prev.slice(0, 12)}…` });
      } else {
        fail({ line: line.number, seq: chain.seq, kind: 'edited', detail: seqOneNote(chain.seq, 'prev does not match the hash of the previous line') });
      }
      continue;
    }
    const isCheckpoint = member(member(record, 'event'), 'action') === CHECKPOINT_ACTION;
    // A checkpoint's signature is checked before its hash: a changed signature is a forgery
    // whether or not the forger also fixed the hash.
    const signature = isCheckpoint && key !== null ? checkCheckpoint(record, stream, chain, key) : null;
    if (signature !== null) {
      fail({ line: line.number, seq: chain.seq, kind: 'forged_checkpoint', detail: recomputed === chain.hash ? signature : `${signature}; its hash does not match either` });
      continue;
    }
    if (recomputed !== chain.hash) {
      fail({ line: line.number, seq: chain.seq, kind: 'edited', detail: 'the content does not match its hash' });
      continue;
    }
    if (isCheckpoint && key !== null) scan.lastCheckpointSeq = chain.seq;
    scan.lastLineIsVerifiedCheckpoint = isCheckpoint && key !== null;
    expectedSeq = chain.seq + 1;
    prevHash = chain.hash;
    prevLine = { number: line.number, seq: chain.seq };
  }
  if (expectedStream === null && stream !== null) (scan as { stream: string }).stream = stream;
  return scan;
}

function seqOneNote(seq: number, detail: string): string {
  return seq === 1 ? `${detail} (seq 1 chains to the genesis hash, 64 zeros)` : detail;
}

/** Null when the checkpoint verifies, otherwise why it does not. */
function checkCheckpoint(record: Record<string, unknown>, stream: string, chain: ChainOf, key: KeyObject): string | null {
  const checkpoint = member(member(record, 'portcullis'), 'checkpoint');
  if (member(checkpoint, 'alg') !== 'Ed25519') return 'portcullis.checkpoint.alg is not Ed25519';
  const encoded = member(checkpoint, 'signature');
  if (typeof encoded !== 'string' || !BASE64URL.test(encoded)) return 'portcullis.checkpoint.signature is not base64url';
  const signature = Buffer.from(encoded, 'base64url');
  // Re-encoding must give the same text, so one signature has exactly one spelling (RFC 4648 §3.5).
  if (signature.length !== ED25519_SIGNATURE_BYTES || signature.toString('base64url') !== encoded) return 'portcullis.checkpoint.signature is not a 64-byte Ed25519 signature';
  // The signature vouches for every line before the checkpoint through `prev` (chain-format.ts).
  const message = Buffer.from(checkpointMessage(stream, chain.seq, chain.prev), 'utf8');
  // Ed25519 takes no separate digest (RFC 8032 §5.1.7): Node expects `null` here.
  return verifySignature(null, message, key, signature) ? null : 'the signature does not verify with the trail\'s public key';
}

function recordEntry(line: number, seq: number, record: Record<string, unknown>): RecordEntry {
  const digest = recordDigest(record);
  return { line, seq, key: recordKey(record, () => digest), partner: recordPartner(record), digest };
}

/** SHA-256 of the record without its chain fields: the same in every stream that holds it. */
export function recordDigest(record: Record<string, unknown>): string {
  return createHash('sha256').update(canonicalJson(withoutChain(record))).digest('hex');
}

/**
 * What pairs the lines of one record across streams: `http.request.id` + `@timestamp`, or the
 * content digest of a record without them; '' for the trail's own lines (checkpoints, recovery
 * notes), which belong to one stream and are never paired.
 */
export function recordKey(record: Record<string, unknown>, digest: () => string): string {
  if (isTrailLine(record)) return '';
  const requestId = member(member(member(record, 'http'), 'request'), 'id');
  const timestamp = member(record, '@timestamp');
  return typeof requestId === 'string' && typeof timestamp === 'string' ? `${requestId}\n${timestamp}` : `digest:${digest()}`;
}

export function recordPartner(record: Record<string, unknown>): string | null {
  const partner = member(member(member(record, 'portcullis'), 'partner'), 'id');
  return typeof partner === 'string' ? partner : null;
}

// ---------------------------------------------------------------------------------------------
// Across streams

/** A line the writer adds to one stream (a checkpoint, a recovery note), not a record. */
export function isTrailLine(record: Record<string, unknown>): boolean {
  const action = member(member(record, 'event'), 'action');
  return action === CHECKPOINT_ACTION || action === RECOVERED_ACTION;
}

function crossCheck(scans: StreamScan[], dir: string): void {
  let combined = scans.find((scan) => scan.stream === COMBINED_STREAM);
  if (combined === undefined) {
    combined = { stream: COMBINED_STREAM, file: streamFile(COMBINED_STREAM), segments: [], lines: 0, lastSeq: 0, problems: [], lastCheckpointSeq: null, lastLineIsVerifiedCheckpoint: false, records: [] };
    combined.problems.push({ line: 1, seq: null, kind: 'removed', detail: `${join(dir, 'combined.jsonl')} is missing, though partner streams exist` });
    scans.unshift(combined);
  }
  const index = new Map<string, RecordEntry>();
  for (const entry of combined.records) if (entry.key !== '' && !index.has(entry.key)) index.set(entry.key, entry);
  /** combined key → line of the same record in its partner stream. */
  const seenInPartner = new Map<string, number>();
  const missingFromCombined: { partner: string; entry: RecordEntry; next: RecordEntry | null }[] = [];

  for (const scan of scans) {
    if (scan === combined || !scan.stream.startsWith('partner/')) continue;
    const partner = scan.stream.slice('partner/'.length);
    let lastCombinedSeq = 0;
    const records = scan.records.filter((entry) => entry.key !== '');
    records.forEach((entry, position) => {
      const counterpart = index.get(entry.key);
      if (counterpart === undefined) {
        const next = records.slice(position + 1).find((later) => index.has(later.key)) ?? null;
        missingFromCombined.push({ partner, entry, next: next === null ? null : index.get(next.key)! });
        return;
      }
      seenInPartner.set(entry.key, entry.line);
      if (counterpart.partner !== partner) {
        scan.problems.push({ line: entry.line, seq: entry.seq, kind: 'foreign_line', detail: `combined.jsonl line ${counterpart.line} records this request for ${counterpart.partner === null ? 'no partner' : `partner "${counterpart.partner}"`}` });
      } else if (counterpart.digest !== entry.digest) {
        scan.problems.push({ line: entry.line, seq: entry.seq, kind: 'edited', detail: `the record differs from combined.jsonl line ${counterpart.line} (seq ${counterpart.seq})` });
      } else if (counterpart.seq < lastCombinedSeq) {
        scan.problems.push({ line: entry.line, seq: entry.seq, kind: 'reordered', detail: `combined.jsonl holds this record (line ${counterpart.line}) before the one preceding it here` });
      }
      lastCombinedSeq = Math.max(lastCombinedSeq, counterpart.seq);
    });
  }

  // Records of the combined stream that are missing from their partner's stream.
  const partnerScans = new Map(scans.filter((scan) => scan.stream.startsWith('partner/')).map((scan) => [scan.stream.slice('partner/'.length), scan]));
  const byPartner = new Map<string, RecordEntry[]>();
  for (const entry of combined.records) {
    if (entry.key === '' || entry.partner === null) continue;
    const list = byPartner.get(entry.partner) ?? [];
    list.push(entry);
    byPartner.set(entry.partner, list);
  }
  for (const [partner, entries] of byPartner) {
    let scan = partnerScans.get(partner);
    if (scan === undefined) {
      scan = { stream: partnerStream(partner), file: streamFile(partnerStream(partner)), segments: [], lines: 0, lastSeq: 0, problems: [], lastCheckpointSeq: null, lastLineIsVerifiedCheckpoint: false, records: [] };
      scan.problems.push({ line: 1, seq: null, kind: 'removed', detail: `the file is missing; combined.jsonl holds ${entries.length} record(s) of partner "${partner}", the first at line ${entries[0]!.line}` });
      scans.push(scan);
      continue;
    }
    const partnerScan = scan;
    entries.forEach((entry, position) => {
      if (seenInPartner.has(entry.key)) return;
      const next = entries.slice(position + 1).find((later) => seenInPartner.has(later.key));
      const covered = combined.lastCheckpointSeq !== null && entry.seq < combined.lastCheckpointSeq ? `, signed by the combined checkpoint at seq ${combined.lastCheckpointSeq}` : '';
      const where = `combined.jsonl line ${entry.line} (seq ${entry.seq}${covered})`;
      if (next !== undefined) {
        const line = seenInPartner.get(next.key)!;
        partnerScan.problems.push({ line, seq: seqAtLine(partnerScan, line), kind: 'removed', detail: `a record is missing before this line: ${where}` });
      } else {
        partnerScan.problems.push({ line: partnerScan.lines + 1, seq: partnerScan.lastSeq + 1, kind: 'truncated', detail: `the stream ends early: ${where} is missing from its end` });
      }
    });
  }

  for (const { partner, entry, next } of missingFromCombined) {
    const where = `partners/${partner}.jsonl line ${entry.line} (seq ${entry.seq})`;
    if (next !== null) {
      combined.problems.push({ line: next.line, seq: next.seq, kind: 'removed', detail: `a record is missing before this line: ${where}` });
    } else {
      combined.problems.push({ line: combined.lines + 1, seq: combined.lastSeq + 1, kind: 'truncated', detail: `the stream ends early: ${where} is missing from its end` });
    }
  }
}

function seqAtLine(scan: StreamScan, line: number): number | null {
  return scan.records.find((entry) => entry.line === line)?.seq ?? null;
}

function reportOf(scan: StreamScan): StreamReport {
  // The earliest line is the first problem; at the same line the chain's own finding comes first.
  const firstProblem = scan.problems.reduce<TrailProblem | null>((first, problem) => (first === null || problem.line < first.line ? problem : first), null);
  return {
    stream: scan.stream,
    file: scan.file,
    segments: scan.segments,
    lines: scan.lines,
    lastSeq: scan.lastSeq,
    ok: firstProblem === null,
    firstProblem,
    lastCheckpointSeq: scan.lastCheckpointSeq,
    tailCovered: firstProblem === null && (scan.lines === 0 || scan.lastLineIsVerifiedCheckpoint),
  };
}
