/**
 * `${VAR}` environment interpolation. It runs on the parsed YAML tree, scalar values only, so
 * an environment value can never inject YAML structure (a key, a list item, an anchor) and
 * every substitution keeps the line and column of the scalar it came from.
 *
 * Syntax: `${NAME}`, `${NAME:-default}` (the default also applies when NAME is set but empty,
 * as in POSIX shells), and `$${` for a literal `${`. Anything else after `${` is an error
 * rather than literal text, so a typo cannot silently reach the gateway as a hostname or path.
 */
import { isAlias, isMap, isScalar, isSeq, parse } from 'yaml';
import type { Document, Node, Scalar } from 'yaml';
import type { ConfigPath, PendingIssue } from './issues.ts';

export type Env = Readonly<Record<string, string | undefined>>;

export type Interpolation =
  | {
      readonly ok: true;
      readonly text: string;
      /** True when the input is exactly one `${…}` reference and nothing else. */
      readonly whole: boolean;
    }
  | { readonly ok: false; readonly unset: readonly string[]; readonly malformed: string | null };

const REFERENCE = /^([A-Za-z_][A-Za-z0-9_]*)(?::-([\s\S]*))?$/;

/** Substitutes every reference in `text`. Reports every unset variable, not just the first. */
export function interpolate(text: string, env: Env): Interpolation {
  let out = '';
  let references = 0;
  const unset: string[] = [];
  let index = 0;
  while (index < text.length) {
    if (text.startsWith('$${', index)) {
      out += '${';
      index += 3;
      continue;
    }
    if (!text.startsWith('${', index)) {
      out += text[index];
      index += 1;
      continue;
    }
    const close = text.indexOf('}', index + 2);
    if (close < 0) return { ok: false, unset, malformed: 'unterminated "${": expected ${NAME} or ${NAME:-default} (write $${ for a literal "${")' };
    const match = REFERENCE.exec(text.slice(index + 2, close));
    if (!match) {
      return { ok: false, unset, malformed: `invalid reference "${text.slice(index, close + 1)}": expected \${NAME} or \${NAME:-default} (write $\${ for a literal "\${")` };
    }
    const [, name, fallback] = match as unknown as [string, string, string | undefined];
    const value = env[name];
    if (value !== undefined && (value !== '' || fallback === undefined)) out += value;
    else if (fallback !== undefined) out += fallback;
    else if (!unset.includes(name)) unset.push(name);
    references += 1;
    index = close + 1;
  }
  if (unset.length > 0) return { ok: false, unset, malformed: null };
  const whole = references === 1 && text.startsWith('${') && text.endsWith('}') && text.indexOf('}') === text.length - 1;
  return { ok: true, text: out, whole };
}

export interface DocumentInterpolation {
  readonly issues: readonly PendingIssue[];
  /** Paths whose value came from the environment, with the source text (for error messages). */
  readonly sources: ReadonlyMap<Scalar, string>;
}

/**
 * Interpolates every scalar value of `doc` in place. Mapping keys are left alone: the schema
 * fixes them. Aliases are skipped because their anchor is interpolated where it is defined.
 */
export function interpolateDocument(doc: Document.Parsed, env: Env): DocumentInterpolation {
  const issues: PendingIssue[] = [];
  const sources = new Map<Scalar, string>();

  const visitNode = (node: Node | null, path: ConfigPath): void => {
    if (!node || isAlias(node)) return;
    if (isMap(node)) {
      for (const pair of node.items) {
        if (isScalar(pair.key)) visitNode(pair.value as Node | null, [...path, String(pair.key.value)]);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, index) => visitNode(item as Node | null, [...path, index]));
    } else if (isScalar(node) && typeof node.value === 'string' && node.value.includes('${')) {
      const source = node.value;
      const result = interpolate(source, env);
      if (!result.ok) {
        issues.push(
          result.malformed !== null
            ? { code: 'CONFIG_INVALID_VALUE', path, message: result.malformed }
            : {
                code: 'CONFIG_ENV_UNSET',
                path,
                message: `${result.unset.map((name) => `\${${name}}`).join(', ')} ${result.unset.length === 1 ? 'is' : 'are'} not set and no default is given (use \${NAME:-default})`,
              },
        );
        return;
      }
      // An unquoted lone reference reads like any plain scalar (`port: ${PORT}` is a number);
      // a quoted one, or text around a reference, always stays a string.
      node.value = result.whole && node.type === 'PLAIN' ? readPlainScalar(result.text) : result.text;
      if (source.replaceAll('$${', '').includes('${')) sources.set(node, source);
    }
  };

  visitNode(doc.contents as Node | null, []);
  return { issues, sources };
}

/** Number, boolean and null keep their YAML meaning; anything else stays the exact text. */
function readPlainScalar(text: string): unknown {
  if (text.trim() === '' || text.trimStart().startsWith('#')) return text;
  try {
    const value: unknown = parse(text, { logLevel: 'silent' });
    return value === null || typeof value === 'number' || typeof value === 'boolean' ? value : text;
  } catch {
    return text;
  }
}
