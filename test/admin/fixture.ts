/**
 * The admin API over loopback with real parts: a configuration loaded from YAML in a temp
 * folder, the embedded state store (SQLite), the audit trail, and the ops server.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, formatIssue } from '../../src/config/load.ts';
import type { Snapshot } from '../../src/config/snapshot.ts';
import { openEmbeddedStore } from '../../src/state/embedded.ts';
import type { StateStore } from '../../src/state/store.ts';
import { openAuditTrail } from '../../src/audit/trail.ts';
import type { AuditTrail, AuditTrailOptions } from '../../src/audit/trail.ts';
import { CHECKPOINT_ACTION, COMBINED_STREAM, partnerStream, streamFile } from '../../src/audit/chain-format.ts';
import { startOpsServer } from '../../src/server/ops.ts';
import type { OpsServer } from '../../src/server/ops.ts';
import { createAdminHandler } from '../../src/admin/api.ts';
import { generateApiKey } from '../../src/authn/api-key.ts';
import { generateTestKey, jwks } from '../helpers/tokens.ts';

/** Admin tokens of the fixture (as `portcullis admin token` makes them). */
export const ALICE_TOKEN = 'pca_alice-test-token-0123456789abcdefghijklmnopq';
export const BOB_TOKEN = 'pca_bob-test-token-0123456789abcdefghijklmnopqrst';

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

export interface AdminFixture {
  readonly dir: string;
  readonly configPath: string;
  readonly url: string;
  readonly snapshot: Snapshot;
  readonly store: StateStore;
  readonly trail: AuditTrail;
  readonly ops: OpsServer;
  /** The API key of credential `acme-key`. */
  readonly apiKey: string;
  /** Audit records of a stream (`combined` or a partner id), after a flush. */
  records(stream?: string): Promise<Array<Record<string, any>>>;
  /** Raw text of the combined stream (to prove what is NOT in it). */
  combinedText(): Promise<string>;
  close(): Promise<void>;
}

export interface FixtureOptions {
  /** Configure admin tokens (default true). */
  readonly tokens?: boolean;
  /** YAML appended to the configuration (e.g. an `admin:` section printed by `portcullis admin token`, with `tokens: false`). */
  readonly extraYaml?: string;
  readonly audit?: Partial<AuditTrailOptions>;
  /** Use this store instead of opening one (e.g. a closed one, to see a store failure). */
  readonly store?: StateStore;
}

export function configYaml(dir: string, apiKey: { keyId: string; sha256: string }, tokens: boolean): string {
  const expires = new Date(Date.now() + 30 * 86_400_000).toISOString().slice(0, 10);
  return `
version: 1
gateway:
  data_dir: ${join(dir, 'data')}
  decision_log: ${join(dir, 'decisions.jsonl')}
listeners:
  - name: partner
    zone: partner
    port: 0
    hostnames: [localhost]
upstreams:
  - id: backend
    url: http://127.0.0.1:9
issuers:
  - id: idp
    issuer: https://idp.example.test
    jwks_file: idp.jwks.json
    algorithms: [ES256]
apis:
  - id: orders
    audience: https://api.example.test/orders
partners:
  - id: acme
    credentials:
      - { id: acme-jwt, type: jwt, issuer: idp, client_id: acme }
      - { id: acme-key, type: api_key, key_id: ${apiKey.keyId}, sha256: "${apiKey.sha256}", expires: ${expires} }
    grants: [{ api: orders }]
  - id: globex
    status: suspended
    grants: [{ api: orders }]
  - id: initech
    grants: [{ api: orders }]
  - id: umbrella
    grants: [{ api: orders }]
routes:
  - id: orders
    zone: partner
    api: orders
    methods: [GET]
    path: /orders
    upstream: backend
    auth: required
    credentials: [jwt, api_key]
${tokens ? `admin:
  tokens:
    - { id: ops-alice, sha256: "${sha256(ALICE_TOKEN)}" }
    - { id: ops-bob, sha256: "${sha256(BOB_TOKEN)}" }
` : ''}`;
}

export async function startAdminFixture(options: FixtureOptions = {}): Promise<AdminFixture> {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-admin-'));
  const generated = generateApiKey();
  const configPath = join(dir, 'gateway.yaml');
  await writeFile(join(dir, 'idp.jwks.json'), jwks(generateTestKey('ES256')));
  await writeFile(configPath, configYaml(dir, generated, options.tokens !== false) + (options.extraYaml ? `\n${options.extraYaml}\n` : ''));
  const loaded = await loadConfig(configPath);
  if (!loaded.ok) throw new Error(`fixture configuration: ${loaded.issues.map(formatIssue).join('\n')}`);
  const snapshot = loaded.snapshot;
  const ownsStore = options.store === undefined;
  const store = options.store ?? (await openEmbeddedStore({ path: snapshot.state.sqlitePath, propagationTimeoutMs: 1000 }));
  const trailDir = snapshot.audit.dir;
  const trail = await openAuditTrail({ ...snapshot.audit, flushIntervalMs: 10, ...options.audit });
  const handler = createAdminHandler({
    store,
    snapshot: () => snapshot,
    audit: (record, partnerId) => trail.append(record, partnerId),
    auditHealthy: () => trail.healthy(),
  });
  const ops = await startOpsServer('127.0.0.1', 0, [], undefined, handler);

  const records = async (stream = COMBINED_STREAM): Promise<Array<Record<string, any>>> => {
    await trail.flush();
    const file = join(trailDir, streamFile(stream === COMBINED_STREAM ? stream : partnerStream(stream)));
    if (!existsSync(file)) return [];
    return (await readFile(file, 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, any>)
      .filter((record) => record['event']?.['action'] !== CHECKPOINT_ACTION);
  };

  return {
    dir,
    configPath,
    url: ops.url,
    snapshot,
    store,
    trail,
    ops,
    apiKey: generated.key,
    records,
    async combinedText() {
      await trail.flush();
      return readFile(join(trailDir, streamFile(COMBINED_STREAM)), 'utf8');
    },
    async close() {
      await ops.close();
      await trail.close().catch(() => undefined);
      if (ownsStore) await store.close();
      if (!process.env['KEEP_TEST_DIRS']) await rm(dir, { recursive: true, force: true });
    },
  };
}
