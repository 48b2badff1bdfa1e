/**
 * `portcullis audit query`: the questions of an incident — who called what, when, under which
 * agreement, with what outcome — answered from a trail's records (format: `chain-format.ts`).
 *
 * Querying does not verify: `audit verify` says whether the trail can be trusted. Lines that
 * cannot be read are counted and reported, never guessed at. Records are caller-influenced data
 * (paths, methods, hosts): the table escapes control characters so a record cannot drive the
 * operator's terminal.
 */
import { workerTrails } from './worker-trails.ts';
import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { COMBINED_STREAM, listSegments, partnerStream, streamFile } from './chain-format.ts';
import { isTrailLine, member, parseTrailLine, readTrailLines } from './verify.ts';

export const DECISIONS = ['allow', 'deny', 'error'] as const;
export type DecisionFilter = (typeof DECISIONS)[number];

export interface QueryFilters {
  readonly partner?: string;
  /** Inclusive. */
  readonly since?: Date;
  /** Exclusive. */
  readonly until?: Date;
  readonly decision?: DecisionFilter;
  /** A reason (`token.expired`) or a category (`token.*`). */
  readonly reason?: string;
  readonly route?: string;
}

/** Same rule as configuration ids: also keeps `--partner` from naming a file outside `partners/`. */
const PARTNER_ID = /^[a-z0-9][a-z0-9_.-]{0,62}$/;
/** A reason: dot-separated lowercase words (src/errors.ts), optionally ending in `.*`. */
const REASON_PATTERN = /^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*(\.\*)?$/;

export class QueryInputError extends Error {
  override readonly name = 'QueryInputError';
}

/** Checks filter values; throws `QueryInputError` naming the first bad one. */
export function checkFilters(filters: QueryFilters): void {
  if (filters.partner !== undefined && !PARTNER_ID.test(filters.partner)) throw new QueryInputError(`--partner "${filters.partner}" is not a partner id`);
  if (filters.reason !== undefined && !REASON_PATTERN.test(filters.reason)) throw new QueryInputError(`--reason "${filters.reason}" is not a reason or a category such as token.*`);
  if (filters.decision !== undefined && !DECISIONS.includes(filters.decision)) throw new QueryInputError(`--decision must be one of ${DECISIONS.join(', ')}`);
  for (const name of ['since', 'until'] as const) {
    const value = filters[name];
    if (value !== undefined && Number.isNaN(value.getTime())) throw new QueryInputError(`--${name} is not a valid date`);
  }
}

/**
 * The stream to read: the file itself, or in a trail folder the partner's own stream when a
 * partner is asked for (smaller, and complete for that partner), else the combined stream.
 */
export async function querySource(path: string, partner: string | undefined): Promise<{ file: string; stream: string | null; segments: string[] }> {
  const target = resolve(path);
  let info;
  try {
    info = await stat(target);
  } catch (error) {
    throw new QueryInputError(`${target} cannot be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  if (info.isFile()) return { file: target, stream: null, segments: [] };
  if (!info.isDirectory()) throw new QueryInputError(`${target} is neither a stream file nor a trail folder`);
  const stream = partner !== undefined ? partnerStream(partner) : COMBINED_STREAM;
  // A rotated stream is its segments, oldest first, then the live file (docs/audit.md "Rotation").
  const segments = (await listSegments(target, stream)).map((relative) => join(target, relative));
  return { file: join(target, streamFile(stream)), stream, segments };
}

export interface QueryResult {
  /** Lines that could not be read as records, with why (run `audit verify`). */
  readonly unreadable: { readonly line: number; readonly detail: string }[];
}

/**
 * Yields the matching records of the stream at `path`, in file order; checkpoint lines are not
 * records and are skipped, as are the writer's recovery notes. A missing partner stream yields nothing (the partner made no request).
 */
export async function* queryTrail(path: string, filters: QueryFilters, result: QueryResult = { unreadable: [] }): AsyncGenerator<Record<string, unknown>> {
  checkFilters(filters);
  const workers = await workerTrails(resolve(path));
  if (workers.length > 0) {
    // One trail per worker: their records interleave in time, so merge them by timestamp.
    const all: Record<string, unknown>[] = [];
    for (const worker of workers) for await (const record of queryTrail(join(resolve(path), worker), filters, result)) all.push(record);
    all.sort((a, b) => String(a['@timestamp']).localeCompare(String(b['@timestamp'])));
    yield* all;
    return;
  }
  const source = await querySource(path, filters.partner);
  const files = [...source.segments];
  if (await exists(source.file)) files.push(source.file);
  else if (source.stream === COMBINED_STREAM && files.length === 0) files.push(source.file); // reading it reports the error
  const matches = recordFilter(filters);
  for (const file of files) yield* queryFile(file, matches, result, files.length > 1);
}

async function* queryFile(file: string, matches: (record: Record<string, unknown>) => boolean, result: QueryResult, named: boolean): AsyncGenerator<Record<string, unknown>> {
  for await (const line of readTrailLines(file)) {
    // A JSON object without chain fields is still a record (e.g. the plain decision log).
    const { record, ...parsed } = parseTrailLine(line);
    if (record === null) {
      const detail = 'detail' in parsed ? parsed.detail : 'unreadable';
      result.unreadable.push({ line: line.number, detail: named ? `${file}: ${detail}` : detail });
      continue;
    }
    if (isTrailLine(record)) continue;
    if (matches(record)) yield record;
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}

/** One predicate from the filters; every given filter must hold (an absent field never matches). */
export function recordFilter(filters: QueryFilters): (record: Record<string, unknown>) => boolean {
  const reason = filters.reason;
  const category = reason?.endsWith('.*') ? reason.slice(0, -1) : null;
  const since = filters.since?.getTime();
  const until = filters.until?.getTime();
  return (record) => {
    const row = rowOf(record);
    if (filters.partner !== undefined && row.partner !== filters.partner) return false;
    if (filters.decision !== undefined && row.decision !== filters.decision) return false;
    if (filters.route !== undefined && row.route !== filters.route) return false;
    if (reason !== undefined) {
      if (typeof row.reason !== 'string') return false;
      if (category !== null ? !row.reason.startsWith(category) : row.reason !== reason) return false;
    }
    if (since !== undefined || until !== undefined) {
      const at = typeof row.time === 'string' ? Date.parse(row.time) : Number.NaN;
      if (Number.isNaN(at)) return false;
      if (since !== undefined && at < since) return false;
      if (until !== undefined && at >= until) return false;
    }
    return true;
  };
}

/** The table's columns, in order, and where each comes from in a decision record. */
export const TABLE_COLUMNS = [
  ['time', ['@timestamp']],
  ['request_id', ['http', 'request', 'id']],
  ['partner', ['portcullis', 'partner', 'id']],
  ['agreement', ['portcullis', 'agreement', 'id']],
  ['credential', ['portcullis', 'credential', 'id']],
  ['method', ['http', 'request', 'method']],
  ['path', ['url', 'path']],
  ['route', ['portcullis', 'route']],
  ['decision', ['portcullis', 'decision']],
  ['reason', ['portcullis', 'reason']],
  ['status', ['http', 'response', 'status_code']],
  ['decided_by', ['portcullis', 'decided_by']],
] as const;

export type Row = Record<(typeof TABLE_COLUMNS)[number][0], unknown>;

export function rowOf(record: Record<string, unknown>): Row {
  const row = {} as Row;
  for (const [name, path] of TABLE_COLUMNS) row[name] = path.reduce<unknown>((value, key) => member(value, key), record);
  return row;
}

/** Longest cell; a longer value is cut with "…" (the JSON format has it whole). */
const MAX_CELL = 64;

export function formatTable(records: readonly Record<string, unknown>[]): string {
  const header = TABLE_COLUMNS.map(([name]) => name);
  const rows = records.map((record) => {
    const row = rowOf(record);
    return TABLE_COLUMNS.map(([name]) => cell(row[name]));
  });
  const widths = header.map((name, column) => Math.max(name.length, ...rows.map((row) => row[column]!.length)));
  const render = (cells: readonly string[]): string => cells.map((text, column) => text.padEnd(widths[column]!)).join('  ').trimEnd();
  return [render(header), ...rows.map(render)].join('\n') + '\n';
}

function cell(value: unknown): string {
  if (value === null || value === undefined) return '-';
  const text = typeof value === 'string' ? escapeControls(value) : escapeControls(JSON.stringify(value));
  return text.length > MAX_CELL ? `${text.slice(0, MAX_CELL - 1)}…` : text;
}

/** C0, DEL and C1 controls become `\uXXXX`: an ESC in a recorded path must not reach the terminal. */
export function escapeControls(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
