/**
 * Real compiled snapshots for the rate-limit and abuse unit tests: the YAML goes through the
 * loader like any configuration, so partners, credentials and routes are what the gateway sees.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.ts';
import type { Snapshot } from '../../src/config/snapshot.ts';

/** Listeners, upstream, API and one API-key route `orders`; append `partners:` and settings. */
export const BASE_CONFIG = `
version: 1
listeners:
  - { name: api, zone: partner, port: 0, hostnames: [api.example.test] }
upstreams:
  - { id: sample, url: "http://127.0.0.1:9" }
apis:
  - { id: orders }
`;

export async function loadSnapshot(yaml: string): Promise<Snapshot> {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-ratelimit-'));
  try {
    const path = join(dir, 'gateway.yaml');
    await writeFile(path, yaml);
    const result = await loadConfig(path, { offline: true });
    if (!result.ok) throw new Error(`config refused: ${JSON.stringify(result.issues, null, 2)}`);
    return result.snapshot;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A fixed API-key credential line (the key itself is never used by these tests). */
export function apiKeyCredential(id: string, keyId: string, extra = ''): string {
  return `{ id: ${id}, type: api_key, key_id: ${keyId}, sha256: ${'ab'.repeat(32)}, expires: 2099-01-01${extra} }`;
}
