/**
 * Building blocks shared by the semantic checks: duplicates, references, transport rules.
 * Each returns pending issues (a path and a message); the loader adds the position.
 */
import { BlockList, isIP } from 'node:net';
import type { SectionView } from './config-view.ts';
import type { ReferencedFiles } from './files.ts';
import type { ConfigPath, PendingIssue } from './issues.ts';

export interface ValidationContext {
  /** Reads files named in the configuration (relative to the config file's folder). */
  readonly files: ReferencedFiles;
  /** Source line of a path: duplicates point back to the first occurrence. */
  readonly lineOf: (path: ConfigPath) => number;
}

/** Reports every entry whose `key` repeats an earlier one, at the later entry, naming the first line. */
export function duplicatesIn<F>(
  view: SectionView<unknown, F>,
  section: string | ConfigPath,
  key: keyof F & string,
  label: string,
  context: ValidationContext,
): PendingIssue[] {
  const base = typeof section === 'string' ? [section] : section;
  const first = new Map<unknown, number>();
  const issues: PendingIssue[] = [];
  view.entries.forEach((entry, index) => {
    const value = entry[key];
    if (value === undefined) return;
    const earlier = first.get(value);
    if (earlier === undefined) first.set(value, index);
    else {
      const line = context.lineOf([...base, earlier, key]);
      issues.push({ code: 'CONFIG_DUPLICATE_ID', path: [...base, index, key], message: `duplicate ${label} "${String(value)}": first defined at line ${line}` });
    }
  });
  return issues;
}

/**
 * The same, over values spread across many lists (credential ids across all partners): the
 * first holder is named by `describe`, so the message says whose value it already is.
 */
export class UniqueValues {
  readonly #first = new Map<string, { path: ConfigPath; owner: string }>();
  readonly #label: string;
  readonly #within: string;
  readonly #context: ValidationContext;

  /** `within` says where the value must be unique, e.g. ` at issuer "idp"`. */
  constructor(label: string, context: ValidationContext, within = '') {
    this.#label = label;
    this.#within = within;
    this.#context = context;
  }

  /** Records `value` at `path`; returns an issue when it was seen before. */
  claim(value: string, path: ConfigPath, owner: string): PendingIssue[] {
    const earlier = this.#first.get(value);
    if (earlier === undefined) {
      this.#first.set(value, { path, owner });
      return [];
    }
    const line = this.#context.lineOf(earlier.path);
    const whose = earlier.owner === owner ? '' : ` by ${earlier.owner}`;
    return [{ code: 'CONFIG_DUPLICATE_ID', path, message: `duplicate ${this.#label} "${value}"${this.#within}: already used${whose} at line ${line}` }];
  }
}

/** The ids of a section, or null when one of them could not be read (then "unknown" cannot be said). */
export function knownIds(section: SectionView<unknown, { readonly id?: string }>): Set<string> | null {
  if (!section.isList || !section.entries.every((entry) => entry.id !== undefined)) return null;
  return new Set(section.entries.map((entry) => entry.id!));
}

export function unknownRef(kind: string, id: string, known: ReadonlySet<string>, path: ConfigPath): PendingIssue {
  const defined = known.size === 0 ? `no ${kind}s are defined` : `defined ${kind}s: ${[...known].join(', ')}`;
  return { code: 'CONFIG_DANGLING_REF', path, message: `unknown ${kind} "${id}" (${defined})` };
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** 127.0.0.0/8, ::1 or `localhost` (exactly): traffic that never leaves the host. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '');
  if (host === 'localhost') return true;
  const family = isIP(host);
  return family !== 0 && LOOPBACK.check(host, family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * A URL the gateway fetches keys from or sends tokens to. Over plain http anyone on the path
 * could swap the keys or read the tokens (RFC 8414 §3 and RFC 7662 §4 require TLS), so http is
 * only allowed where nothing crosses a network: a loopback host. Credentials in the URL would
 * end up in logs and are refused.
 */
export function secureTransport(written: string, path: ConfigPath): PendingIssue[] {
  let url: URL;
  try {
    url = new URL(written);
  } catch {
    return []; // the schema reports a malformed URL
  }
  const issues: PendingIssue[] = [];
  if (url.username || url.password) {
    issues.push({ code: 'CONFIG_INVALID_VALUE', path, message: 'the URL must not carry credentials (user:password@)' });
  }
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
    issues.push({
      code: 'CONFIG_INVALID_VALUE',
      path,
      message: `keys and token checks must travel over https: http:// is only allowed to a loopback host (127.0.0.0/8, ::1, localhost), not "${url.hostname}"`,
    });
  }
  return issues;
}

/** `http:` URLs: a `ca` next to one is never used. */
export function isPlainHttp(written: string | undefined): boolean {
  if (written === undefined) return false;
  try {
    return new URL(written).protocol === 'http:';
  } catch {
    return false;
  }
}
