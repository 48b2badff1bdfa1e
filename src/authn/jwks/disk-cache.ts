/**
 * The on-disk copy of an issuer's last fetched key set, so that a restart while the issuer is
 * unreachable keeps serving instead of answering 503 until the issuer is back.
 *
 * The copy is as untrusted as a fetch: whoever reads it validates the key set again. It is
 * bound to the issuer (`iss` and key source recorded inside, `iss` hashed into the name),
 * written atomically (temp file, fsync, rename) with mode 0600, and ignored once older than
 * `MAX_KEY_SET_AGE_MS`.
 */
import { hash, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { CompiledIssuer } from '../../config/snapshot.ts';

/**
 * Keys last confirmed by the issuer longer ago than this are no longer served (at a restart or
 * in a running process): an issuer that removed a compromised key must win eventually, even when
 * it stays unreachable to us.
 */
export const MAX_KEY_SET_AGE_MS = 24 * 60 * 60 * 1000;

/** The cache holds one key set (≤ 256 KiB) and a few fields; a bigger file is not ours. */
const MAX_CACHE_FILE_BYTES = 512 * 1024;

/** A `fetchedAt` this far ahead of our clock is a broken clock or a forged file. */
const FUTURE_TOLERANCE_MS = 60_000;

export interface CachedKeySet {
  readonly issuer: string;
  /** The configured key source (jwks_uri or discovery URL) the set was fetched through. */
  readonly source: string;
  readonly url: string;
  /** ms since the epoch, when the issuer last served this set. */
  readonly fetchedAt: number;
  readonly jwks: unknown;
}

/** `<dataDir>/jwks/<issuer id>-<sha256(iss), first 12 hex>.json`. */
export function cacheFilePath(dataDir: string, issuer: Pick<CompiledIssuer, 'id' | 'issuer'>): string {
  return join(dataDir, 'jwks', `${issuer.id}-${hash('sha256', issuer.issuer, 'hex').slice(0, 12)}.json`);
}

export type CacheRead = { readonly ok: true; readonly entry: CachedKeySet } | { readonly ok: false; readonly missing: boolean; readonly reason: string };

/** Reads the cached set of this issuer and source, if it is there, well-formed and fresh enough. */
export async function readCachedKeySet(path: string, expected: { issuer: string; source: string }, now: number): Promise<CacheRead> {
  let text: string;
  try {
    const info = await stat(path);
    if (info.size > MAX_CACHE_FILE_BYTES) return { ok: false, missing: false, reason: `larger than ${MAX_CACHE_FILE_BYTES} bytes` };
    text = await readFile(path, 'utf8');
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
    return { ok: false, missing, reason: missing ? 'no cached key set' : `unreadable: ${(error as Error).message}` };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { ok: false, missing: false, reason: 'not valid JSON' };
  }
  if (typeof parsed !== 'object' || parsed === null) return { ok: false, missing: false, reason: 'not a JSON object' };
  const entry = parsed as Partial<Record<keyof CachedKeySet, unknown>>;
  if (entry.issuer !== expected.issuer) return { ok: false, missing: false, reason: 'written for another issuer' };
  if (entry.source !== expected.source) return { ok: false, missing: false, reason: 'fetched through another key source' };
  const fetchedAt = entry.fetchedAt;
  if (typeof fetchedAt !== 'number' || !Number.isFinite(fetchedAt)) return { ok: false, missing: false, reason: 'no fetchedAt time' };
  if (fetchedAt > now + FUTURE_TOLERANCE_MS) return { ok: false, missing: false, reason: 'fetchedAt lies in the future' };
  if (now - fetchedAt >= MAX_KEY_SET_AGE_MS) return { ok: false, missing: false, reason: `older than ${MAX_KEY_SET_AGE_MS / 3_600_000} h` };
  return {
    ok: true,
    entry: { issuer: expected.issuer, source: expected.source, url: typeof entry.url === 'string' ? entry.url : '', fetchedAt, jwks: entry.jwks },
  };
}

/** Replaces the cached set atomically: a crash leaves the old file or the new one, never half of one. */
export async function writeCachedKeySet(path: string, entry: CachedKeySet): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const temp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    const file = await open(temp, 'wx', 0o600);
    try {
      await file.writeFile(JSON.stringify(entry) + '\n', 'utf8');
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}
