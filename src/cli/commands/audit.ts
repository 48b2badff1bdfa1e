/**
 * `portcullis audit verify | query`: check a trail for tampering, and answer incident questions
 * from it (see `docs/audit.md`).
 */
import { readFile } from 'node:fs/promises';
import { parseArgs, styleText } from 'node:util';
import type { Command } from '../command.ts';
import { usageError as printUsageError } from '../command.ts';
import { TrailInputError, verifyTrail } from '../../audit/verify.ts';
import type { StreamReport, TrailReport } from '../../audit/verify.ts';
import { DECISIONS, QueryInputError, checkFilters, formatTable, queryTrail } from '../../audit/query.ts';
import type { DecisionFilter, QueryFilters, QueryResult } from '../../audit/query.ts';

const USAGE = `Usage: portcullis audit verify PATH [--key FILE] [--format text|json]
       portcullis audit query PATH [--partner ID] [--since ISO] [--until ISO]
                                   [--decision allow|deny|error] [--reason R|CATEGORY.*]
                                   [--route ID] [--format table|json]

verify   Check a trail folder (combined.jsonl and partners/*.jsonl) or one stream file:
         every line chained (seq, prev, hash), every checkpoint signature valid, the
         partner streams and the combined stream holding the same records. Names the
         first line of each stream that was edited, removed, reordered or truncated,
         and whether a signed checkpoint covers the tail.
query    Print the decision records that match every filter given, oldest first.
         With --partner and a trail folder, reads that partner's own stream.

Options (verify):
      --key FILE          the checkpoint public key, PEM (default: <PATH>/../audit-keys/
                          audit-signing.pub when it exists; without a key, signatures
                          cannot be checked and the trail does not verify)
      --format FORMAT     text (default) or json

Options (query):
      --partner ID        records of this partner
      --since ISO         at or after this time, e.g. 2026-11-28T19:00:00Z
      --until ISO         before this time
      --decision D        allow, deny or error
      --reason R          a reason (token.expired) or a category (token.*)
      --route ID          records of this route
      --format FORMAT     table (default) or json (one record per line)
  -h, --help              show this help

Exit status: verify 0 when every stream verifies and every tail is covered by a signed
checkpoint, 1 otherwise; query 0. Both: 2 on a usage error or an unreadable PATH or key.
`;

export const command: Command = {
  summary: 'Verify the tamper-evident audit trail, or query its decision records',
  usage: USAGE,
  async run(argv) {
    const [subcommand, ...rest] = argv;
    if (subcommand === 'verify') return verify(rest);
    if (subcommand === 'query') return query(rest);
    return usageError(subcommand === undefined ? 'a subcommand is required: verify or query' : `unknown subcommand "${subcommand}"`);
  },
};

async function verify(argv: readonly string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: { key: { type: 'string' }, format: { type: 'string', default: 'text' } },
      strict: true,
      allowPositionals: true,
    });
  } catch (error) {
    return usageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (positionals.length !== 1) return usageError('verify takes exactly one PATH');
  if (values.format !== 'text' && values.format !== 'json') return usageError('--format must be text or json');
  let report: TrailReport;
  try {
    const publicKeyPem = values.key !== undefined ? await readKey(values.key) : undefined;
    report = await verifyTrail(positionals[0]!, publicKeyPem !== undefined ? { publicKeyPem } : {});
  } catch (error) {
    if (error instanceof TrailInputError) return inputError(error.message);
    throw error;
  }
  if (values.format === 'json') process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else process.stdout.write(textOf(report, values.key));
  return report.ok && report.streams.every((stream) => stream.tailCovered) ? 0 : 1;
}

async function readKey(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new TrailInputError(`--key ${path} cannot be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

function textOf(report: TrailReport, keyPath: string | undefined): string {
  const color = process.stdout.isTTY === true;
  const paint = (style: 'green' | 'red' | 'yellow', text: string): string => (color ? styleText(style, text) : text);
  const lines: string[] = [];
  for (const stream of report.streams) lines.push(streamLine(stream, paint));
  lines.push('');
  if (report.signatures === 'no_key') {
    lines.push(paint('yellow', 'checkpoint signatures NOT checked: no public key (pass --key FILE, e.g. <data_dir>/audit-keys/audit-signing.pub)'));
  } else {
    lines.push(`checkpoint signatures checked with ${keyPath ?? report.keySource}`);
  }
  if (!report.crossChecked) lines.push('one stream only: not compared with the other streams of its trail');
  const problems = report.streams.filter((stream) => !stream.ok).length;
  const uncovered = report.streams.filter((stream) => stream.ok && !stream.tailCovered).length;
  if (problems > 0) lines.push(paint('red', `NOT VERIFIED: ${problems} of ${report.streams.length} stream(s) show tampering or loss`));
  else if (!report.ok) lines.push(paint('red', 'NOT VERIFIED: the chains hold, but without the key a rewritten chain cannot be told apart'));
  else if (uncovered > 0) lines.push(paint('yellow', `chains intact, but ${uncovered} stream(s) end with lines no checkpoint signs yet`));
  else lines.push(paint('green', `VERIFIED: ${report.streams.length} stream(s) intact, every tail signed`));
  return `${lines.join('\n')}\n`;
}

function streamLine(stream: StreamReport, paint: (style: 'green' | 'red' | 'yellow', text: string) => string): string {
  const name = `${stream.file} (${stream.stream})`;
  if (stream.firstProblem !== null) {
    const { line, seq, kind, detail } = stream.firstProblem;
    return `${paint('red', '✖')} ${name}: ${kind} at line ${line}${seq !== null ? `, seq ${seq}` : ''} — ${detail}`;
  }
  const checkpoint = stream.lastCheckpointSeq !== null ? `last checkpoint at seq ${stream.lastCheckpointSeq}` : 'no verified checkpoint';
  const tail = stream.tailCovered ? 'tail signed' : `${paint('yellow', 'tail not signed')}`;
  return `${paint('green', '✔')} ${name}: ${stream.lines} line(s), seq 1–${stream.lastSeq}, ${checkpoint}, ${tail}`;
}

async function query(argv: readonly string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: {
        partner: { type: 'string' },
        since: { type: 'string' },
        until: { type: 'string' },
        decision: { type: 'string' },
        reason: { type: 'string' },
        route: { type: 'string' },
        format: { type: 'string', default: 'table' },
      },
      strict: true,
      allowPositionals: true,
    });
  } catch (error) {
    return usageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (positionals.length !== 1) return usageError('query takes exactly one PATH');
  if (values.format !== 'table' && values.format !== 'json') return usageError('--format must be table or json');
  if (values.decision !== undefined && !(DECISIONS as readonly string[]).includes(values.decision)) return usageError(`--decision must be one of ${DECISIONS.join(', ')}`);
  for (const name of ['since', 'until'] as const) {
    const value = values[name];
    if (value !== undefined && Number.isNaN(Date.parse(value))) return usageError(`--${name} "${value}" is not an ISO-8601 date`);
  }
  const filters: QueryFilters = {
    ...(values.partner !== undefined ? { partner: values.partner } : {}),
    ...(values.since !== undefined ? { since: new Date(values.since) } : {}),
    ...(values.until !== undefined ? { until: new Date(values.until) } : {}),
    ...(values.decision !== undefined ? { decision: values.decision as DecisionFilter } : {}),
    ...(values.reason !== undefined ? { reason: values.reason } : {}),
    ...(values.route !== undefined ? { route: values.route } : {}),
  };
  try {
    checkFilters(filters);
  } catch (error) {
    if (error instanceof QueryInputError) return usageError(error.message);
    throw error;
  }
  const result: QueryResult = { unreadable: [] };
  const table: Record<string, unknown>[] = [];
  try {
    for await (const record of queryTrail(positionals[0]!, filters, result)) {
      if (values.format === 'json') process.stdout.write(`${JSON.stringify(record)}\n`);
      else table.push(record);
    }
  } catch (error) {
    if (error instanceof QueryInputError) return inputError(error.message);
    throw error;
  }
  if (values.format === 'table') process.stdout.write(formatTable(table));
  if (result.unreadable.length > 0) {
    const first = result.unreadable[0]!;
    process.stderr.write(
      `portcullis audit: ${result.unreadable.length} line(s) could not be read and were skipped (first: line ${first.line}, ${first.detail}); run "portcullis audit verify"\n`,
    );
  }
  return 0;
}

function usageError(message: string): number {
  return printUsageError('audit', USAGE, message);
}

function inputError(message: string): number {
  process.stderr.write(`portcullis audit: ${message}\n`);
  return 2;
}
