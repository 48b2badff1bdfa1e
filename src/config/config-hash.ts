/**
 * The configuration hash: the policy version written on every decision record, and the
 * `If-Match` value of config changes. Two loads hash alike exactly when they would enforce the
 * same rules: same validated configuration (after defaults and environment interpolation, with
 * key order ignored) and the same bytes in every referenced file — rotating a certificate
 * without touching the YAML is still a new version.
 */
import { createHash } from 'node:crypto';

/** JSON with object keys sorted at every level; `undefined` members are dropped, as JSON does. */
/** Member names repeat from record to record; their JSON spelling is computed once (bounded). */
const QUOTED_KEYS = new Map<string, string>();

function quotedKey(key: string): string {
  let quoted = QUOTED_KEYS.get(key);
  if (quoted === undefined) {
    quoted = JSON.stringify(key);
    if (QUOTED_KEYS.size < 4096) QUOTED_KEYS.set(key, quoted);
  }
  return quoted;
}

export function canonicalJson(value: unknown): string {
  // Hand-written loops: this runs for every audit record, and the map/filter/join version cost
  // three times as much. Output is unchanged: sorted keys, undefined members dropped, undefined
  // array items as null, primitives as JSON.stringify writes them.
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ',';
      out += canonicalJson(value[i]);
    }
    return out + ']';
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record).sort();
  let out = '{';
  let first = true;
  for (const key of keys) {
    const member = record[key];
    if (member === undefined) continue;
    if (!first) out += ',';
    first = false;
    out += quotedKey(key) + ':' + canonicalJson(member);
  }
  return out + '}';
}

/**
 * SHA-256 (hex) over the configuration and the SHA-256 of each referenced file, keyed by the
 * path as written (so moving the whole folder does not change the version).
 */
export function configHash(config: unknown, fileDigests: ReadonlyMap<string, string>): string {
  const files = Object.fromEntries(fileDigests);
  return createHash('sha256').update(canonicalJson({ config, files })).digest('hex');
}
