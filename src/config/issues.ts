/**
 * Configuration issues: what `loadConfig` returns instead of throwing, and the one line format
 * operators and editors read (`file:line:col CODE path: message`, like compilers print).
 */
import type { ConfigErrorCode } from '../errors.ts';

/** A step into the configuration tree: a mapping key or a sequence index. */
export type PathSegment = string | number;
export type ConfigPath = readonly PathSegment[];

export interface ConfigIssue {
  /** The configuration file as the caller named it (relative stays relative). */
  readonly file: string;
  /** 1-based. */
  readonly line: number;
  /** 1-based. */
  readonly col: number;
  readonly code: ConfigErrorCode;
  /** Where in the configuration tree, e.g. `listeners[0].port`; `(root)` for the whole file. */
  readonly path: string;
  readonly message: string;
}

/**
 * An issue found before its position is known. Checks work on the data tree and name a path;
 * the loader turns the path into a line and column.
 */
export interface PendingIssue {
  readonly code: ConfigErrorCode;
  readonly path: ConfigPath;
  readonly message: string;
  /** `key` points at the mapping key itself (unknown keys); default: the value. */
  readonly anchor?: 'key' | 'value';
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `['listeners', 0, 'port']` → `listeners[0].port`; keys that are not identifiers are quoted. */
export function formatPath(path: ConfigPath): string {
  let text = '';
  for (const segment of path) {
    if (typeof segment === 'number') text += `[${segment}]`;
    else if (IDENTIFIER.test(segment)) text += text === '' ? segment : `.${segment}`;
    else text += `[${JSON.stringify(segment)}]`;
  }
  return text === '' ? '(root)' : text;
}

/** `file:line:col CODE path: message` */
export function formatIssue(issue: ConfigIssue): string {
  return `${issue.file}:${issue.line}:${issue.col} ${issue.code} ${issue.path}: ${issue.message}`;
}

/** Orders issues as they appear in the file, so output reads top to bottom. */
export function compareIssues(a: ConfigIssue, b: ConfigIssue): number {
  return a.line - b.line || a.col - b.col || a.path.localeCompare(b.path) || a.code.localeCompare(b.code);
}

/** True when `prefix` equals `path` or is one of its ancestors. */
export function isPathWithin(path: ConfigPath, prefix: ConfigPath): boolean {
  if (prefix.length > path.length) return false;
  return prefix.every((segment, index) => segment === path[index]);
}
