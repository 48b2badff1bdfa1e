/**
 * Turns zod issues into configuration issues: one stable code each, one issue per unknown key
 * (pointing at the key, with a "did you mean"), and messages written for someone editing YAML.
 */
import { z } from 'zod';
import { config } from './schema.ts';
import type { ConfigPath, PendingIssue } from './issues.ts';

type ZodIssue = z.core.$ZodIssue;

export function schemaIssues(issues: readonly ZodIssue[], data: unknown): PendingIssue[] {
  return issues.flatMap((issue) => mapIssue(issue, data));
}

function mapIssue(issue: ZodIssue, data: unknown): PendingIssue[] {
  const path = issue.path.filter((segment): segment is string | number => typeof segment !== 'symbol');

  if (issue.code === 'unrecognized_keys') {
    const allowed = allowedKeysAt(path);
    return issue.keys.map((key) => ({
      code: 'CONFIG_UNKNOWN_KEY',
      path: [...path, key],
      anchor: 'key',
      message: `unknown key "${key}"${suggestion(key, allowed)}`,
    }));
  }

  const parent = valueAt(data, path.slice(0, -1));
  const last = path.at(-1);
  if (typeof last === 'string' && isPlainObject(parent) && !(last in parent)) {
    return [{ code: 'CONFIG_INVALID_TYPE', path, message: `missing required key "${last}"` }];
  }
  if (path.length === 0 && data == null) {
    return [{ code: 'CONFIG_INVALID_TYPE', path, message: 'the file is empty: expected a mapping with at least "version" and "listeners"' }];
  }

  switch (issue.code) {
    case 'invalid_value':
      if (typeof last === 'string' && (last.startsWith('insecure_') || last === 'acknowledge') && issue.values.length === 1) {
        return [
          {
            code: 'CONFIG_INSECURE_UNACKNOWLEDGED',
            path,
            message: `this insecure option must be acknowledged with exactly ${JSON.stringify(issue.values[0])}`,
          },
        ];
      }
      return [{ code: 'CONFIG_INVALID_VALUE', path, message: tidy(issue.message) }];
    case 'invalid_type':
      return [{ code: 'CONFIG_INVALID_TYPE', path, message: tidy(issue.message) }];
    case 'invalid_union': {
      const branches = issue.errors.flat();
      if (branches.length > 0 && branches.every((branch) => branch.code === 'invalid_type')) {
        const expected = [...new Set(branches.map((branch) => (branch as z.core.$ZodIssueInvalidType).expected))];
        return [{ code: 'CONFIG_INVALID_TYPE', path, message: `expected ${expected.join(' or ')}, received ${typeName(valueAt(data, path))}` }];
      }
      return [{ code: 'CONFIG_INVALID_VALUE', path, message: tidy(issue.message) }];
    }
    case 'too_big':
    case 'too_small': {
      const value = valueAt(data, path);
      return [{ code: 'CONFIG_INVALID_VALUE', path, message: typeof value === 'number' ? `${issue.message} (got ${value})` : issue.message }];
    }
    default:
      return [{ code: 'CONFIG_INVALID_VALUE', path, message: tidy(issue.message) }];
  }
}

/** zod prefixes most messages with "Invalid input: "; the code already says that. */
function tidy(message: string): string {
  return message.replace(/^Invalid (input|option): /, '');
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function valueAt(data: unknown, path: ConfigPath): unknown {
  let value = data;
  for (const segment of path) {
    if (typeof value !== 'object' || value === null) return undefined;
    value = (value as Record<string | number, unknown>)[segment];
  }
  return value;
}

interface JsonSchemaNode {
  readonly properties?: Record<string, JsonSchemaNode>;
  readonly items?: JsonSchemaNode;
}

let inputJsonSchema: JsonSchemaNode | undefined;

/** The keys the schema defines at `path`, read from the same JSON Schema `portcullis schema` prints. */
function allowedKeysAt(path: ConfigPath): string[] {
  inputJsonSchema ??= z.toJSONSchema(config, { io: 'input' }) as JsonSchemaNode;
  let node: JsonSchemaNode | undefined = inputJsonSchema;
  for (const segment of path) node = typeof segment === 'number' ? node?.items : node?.properties?.[segment];
  return Object.keys(node?.properties ?? {});
}

function suggestion(key: string, allowed: readonly string[]): string {
  if (allowed.length === 0) return '';
  const lower = key.toLowerCase();
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of allowed) {
    const distance = editDistance(lower, candidate);
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  if (best !== undefined && bestDistance <= Math.max(1, Math.floor(best.length / 3))) return `; did you mean "${best}"?`;
  return `; expected one of: ${allowed.join(', ')}`;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}
