/**
 * The configuration hash: the policy version written on every decision record, and the
 * `If-Match` value of config changes. Two loads hash alike exactly when they would enforce the
 * same rules: same validated configuration (after defaults and environment interpolation, with
 * key order ignored) and the same bytes in every referenced file — rotating a certificate
 * without touching the YAML is still a new version.
 */
import { createHash } from 'node:crypto';

/** JSON with object keys sorted at every level; `undefined` members are dropped, as JSON does. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item)).join(',')}]`;
  const members = Object.keys(value)
    .sort()
    .filter((key) => (value as Record<string, unknown>)[key] !== undefined)
    .map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`);
  return `{${members.join(',')}}`;
}

/**
 * SHA-256 (hex) over the configuration and the SHA-256 of each referenced file, keyed by the
 * path as written (so moving the whole folder does not change the version).
 */
export function configHash(config: unknown, fileDigests: ReadonlyMap<string, string>): string {
  const files = Object.fromEntries(fileDigests);
  return createHash('sha256').update(canonicalJson({ config, files })).digest('hex');
}
