/**
 * Loading a configuration file: read → YAML (with positions) → `${VAR}` interpolation → schema
 * → semantic checks → compiled snapshot. Bad input never throws: it comes back as every issue
 * found, each with `file:line:col`, so one run shows everything there is to fix.
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { LineCounter, parseDocument, visit } from 'yaml';
import type { Document } from 'yaml';
import type { ConfigErrorCode } from '../errors.ts';
import { compileSnapshot, insecureOptionWarnings } from './compile.ts';
import { ReferencedFiles, describeFsError } from './files.ts';
import type { FileRead } from './files.ts';
import { interpolateDocument } from './interpolate.ts';
import { compareIssues, formatPath, isPathWithin } from './issues.ts';
import type { ConfigIssue, ConfigPath, PendingIssue } from './issues.ts';
import { SourceLocator } from './positions.ts';
import type { Position } from './positions.ts';
import { config as configSchema } from './schema.ts';
import type { Config } from './schema.ts';
import { schemaIssues } from './schema-issues.ts';
import type { Snapshot } from './snapshot.ts';
import { validateConfig } from './validate.ts';

export { formatIssue } from './issues.ts';
export type { ConfigIssue } from './issues.ts';

export type LoadResult = { readonly ok: true; readonly snapshot: Snapshot } | { readonly ok: false; readonly issues: ConfigIssue[] };

export interface LoadOptions {
  /** Variables for `${VAR}` interpolation. Default: `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /**
   * Make no network calls (`portcullis validate --offline`). Nothing in the configuration is
   * fetched over the network yet, so today this changes nothing; remote checks (JWKS, …) will
   * honour it.
   */
  readonly offline?: boolean;
  /** Clock for `Snapshot.loadedAt` (tests). */
  readonly now?: () => Date;
}

/** Loads, validates and compiles the configuration at `path`. `path` is echoed as written in every issue. */
export async function loadConfig(path: string, options: LoadOptions = {}): Promise<LoadResult> {
  const validated = await validateConfigFile(path, options);
  return validated.ok ? { ok: true, snapshot: compileValidated(validated, options) } : validated;
}

/**
 * What validation hands to the compile: plain data that crosses a thread boundary (structured
 * clone), so that parsing and validating — seconds of CPU and hundreds of MB for a file of
 * thousands of partners — can run in a child process (`load-off-thread.ts`).
 */
export interface ValidatedConfig {
  readonly sourcePath: string;
  readonly config: Config;
  /** Every referenced file as validation read it. */
  readonly files: readonly FileRead[];
  /** Insecure-option warnings, with their `file:line:col`. */
  readonly warnings: readonly string[];
}

export type ValidationResult = ({ readonly ok: true } & ValidatedConfig) | { readonly ok: false; readonly issues: ConfigIssue[] };

/** Compiles a configuration `validateConfigFile` accepted. */
export function compileValidated(validated: ValidatedConfig, options: Pick<LoadOptions, 'now'> = {}): Snapshot {
  return compileSnapshot(validated.config, {
    sourcePath: validated.sourcePath,
    files: ReferencedFiles.fromReads(dirname(validated.sourcePath), validated.files),
    warnings: validated.warnings,
    ...(options.now ? { now: options.now } : {}),
  });
}

/** Reads, parses and validates the configuration at `path`: every issue, or the configuration ready to compile. */
export async function validateConfigFile(path: string, options: Pick<LoadOptions, 'env' | 'offline'> = {}): Promise<ValidationResult> {
  const sourcePath = resolve(path);
  const issueAt = (position: Position, code: ConfigErrorCode, at: ConfigPath, message: string): ConfigIssue => ({
    file: path,
    line: position.line,
    col: position.col,
    code,
    path: formatPath(at),
    message,
  });

  let text: string;
  try {
    text = await readFile(sourcePath, 'utf8');
  } catch (error) {
    return { ok: false, issues: [issueAt({ line: 1, col: 1 }, 'CONFIG_FILE_UNREADABLE', [], `cannot read ${sourcePath}: ${describeFsError(error)}`)] };
  }

  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const locator = new SourceLocator(doc, lines);
  const resolveIssue = (issue: PendingIssue): ConfigIssue =>
    issueAt(issue.anchor === 'key' ? locator.keyAt(issue.path) : locator.valueAt(issue.path), issue.code, issue.path, issue.message);

  // Warnings (an unknown `!tag`, …) are errors here: a security config must mean exactly one thing.
  const yamlProblems = [
    ...[...doc.errors, ...doc.warnings].map((problem) => ({ offset: problem.pos[0], message: yamlMessage(problem.code, problem.message) })),
    ...unresolvedAliases(doc),
  ];
  if (yamlProblems.length > 0) {
    const issues = yamlProblems.map(({ offset, message }) =>
      issueAt(locator.positionOf(offset), 'CONFIG_YAML_SYNTAX', locator.pathAt(offset), message),
    );
    return { ok: false, issues: issues.sort(compareIssues) };
  }

  const interpolation = interpolateDocument(doc, options.env ?? process.env);
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (error) {
    // Unresolved aliases and alias bombs only surface when the tree is built.
    return { ok: false, issues: [issueAt({ line: 1, col: 1 }, 'CONFIG_YAML_SYNTAX', [], (error as Error).message)] };
  }

  const parsed = configSchema.safeParse(data);
  const schemaProblems = parsed.success ? [] : schemaIssues(parsed.error.issues, data);
  const files = new ReferencedFiles(dirname(sourcePath));
  const semanticProblems = await validateConfig(data, { files, lineOf: (at) => locator.valueAt(at).line });

  // A value that failed interpolation is reported once, as that — not again as a bad value.
  const envPaths = interpolation.issues.map((issue) => issue.path);
  const pending = [
    ...interpolation.issues,
    ...[...schemaProblems, ...semanticProblems].filter((issue) => !envPaths.some((envPath) => isPathWithin(issue.path, envPath))),
  ];
  if (pending.length > 0) {
    const issues = pending.map((issue) => withEnvSource(resolveIssue(issue), issue, locator, interpolation.sources));
    return { ok: false, issues: dedupe(issues).sort(compareIssues) };
  }

  const config = parsed.data!;
  const warnings = insecureOptionWarnings(config, (at) => {
    const { line, col } = locator.valueAt(at);
    return `${path}:${line}:${col}`;
  });
  return { ok: true, sourcePath, config, files: await files.reads(), warnings };
}

/** yaml only notices an alias without an anchor when it builds the data, and without a position. */
function unresolvedAliases(doc: Document.Parsed): { offset: number; message: string }[] {
  const problems: { offset: number; message: string }[] = [];
  visit(doc, {
    Alias(_key, node) {
      if (node.resolve(doc) === undefined) {
        problems.push({ offset: node.range?.[0] ?? 0, message: `alias "*${node.source}" has no anchor "&${node.source}" before it` });
      }
    },
  });
  return problems;
}

/** yaml's messages can span lines (source excerpts); an issue is one line. */
function yamlMessage(code: string, message: string): string {
  const firstLine = message.split('\n')[0]!.trim();
  return code === 'DUPLICATE_KEY' ? `duplicate key: ${firstLine}` : firstLine;
}

/** Says which `${VAR}` a bad value came from: the file shows the reference, not the value. */
function withEnvSource(issue: ConfigIssue, pending: PendingIssue, locator: SourceLocator, sources: ReadonlyMap<unknown, string>): ConfigIssue {
  if (pending.code === 'CONFIG_ENV_UNSET' || pending.code === 'CONFIG_UNKNOWN_KEY') return issue;
  const scalar = locator.scalarAt(pending.path);
  const source = scalar && sources.get(scalar);
  return source === undefined ? issue : { ...issue, message: `${issue.message} (value from "${source}")` };
}

function dedupe(issues: ConfigIssue[]): ConfigIssue[] {
  const seen = new Set<string>();
  return issues.filter((issue) => {
    const key = `${issue.line}:${issue.col}:${issue.code}:${issue.path}:${issue.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
