/**
 * Shared helpers for the config tests: a temp folder per test, certificates generated per run
 * (never committed), and the real CLI run as a child process.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { webcrypto } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import { loadConfig } from '../../src/config/load.ts';
import type { ConfigIssue, LoadResult } from '../../src/config/load.ts';
import type { Snapshot } from '../../src/config/snapshot.ts';
import { loadX509 } from '../../src/pki/dev-ca.ts';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const NODE = join(REPO_ROOT, 'node_modules/.bin/node');
const CLI = join(REPO_ROOT, 'src/cli/main.ts');

/** A fresh folder, removed when the test ends. */
export async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-config-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes `text` to `dir/name` and returns the absolute path. */
export async function writeText(dir: string, name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

/** A self-signed ECDSA P-256 certificate and its key, written as `<name>.crt` / `<name>.key`. */
export async function writeSelfSigned(dir: string, name: string, commonName = 'localhost'): Promise<{ cert: string; key: string }> {
  // @peculiar/x509 needs a reflect-metadata stand-in before it loads; the PKI module provides it.
  const x509 = await loadX509();
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: `CN=${commonName}`,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
    signingAlgorithm: algorithm,
    keys,
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n`;
  const cert = await writeText(dir, `${name}.crt`, certificate.toString('pem'));
  const key = await writeText(dir, `${name}.key`, keyPem);
  return { cert, key };
}

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `portcullis <args>` with Node 24, as a user would. */
export function runCli(args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return new Promise((resolvePromise) => {
    execFile(NODE, [CLI, ...args], { cwd: options.cwd ?? REPO_ROOT, env: options.env ?? process.env }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolvePromise({ code, stdout, stderr });
    });
  });
}

/** A valid configuration; tests change one thing at a time. */
export const VALID_CONFIG = `version: 1
listeners:
  - name: public
    zone: public
    address: 127.0.0.1
    port: 8080
    hostnames: [localhost, "*.example.com"]
  - name: partner
    zone: partner
    address: 127.0.0.1
    port: 8443
    hostnames: [api.partner.test]
upstreams:
  - id: backend
    url: http://127.0.0.1:9000/base/
issuers:
  - { id: idp, issuer: "https://idp.partner.test", jwks_uri: "https://idp.partner.test/jwks", algorithms: [ES256] }
apis:
  - id: orders
    audience: https://api.partner.test/orders
partners:
  - id: acme
    grants:
      - api: orders
routes:
  - id: health
    zone: public
    methods: [GET]
    path: /health
    upstream: backend
    auth: none
  - id: orders
    zone: partner
    api: orders
    methods: [GET, POST]
    path: /orders/{id}
    upstream: backend
`;

/** Loads `text` as `gateway.yaml` in `dir` (a fresh folder by default), with an empty environment. */
export async function loadText(t: TestContext, text: string, dir?: string): Promise<LoadResult> {
  const file = await writeText(dir ?? (await tempDir(t)), 'gateway.yaml', text);
  return loadConfig(file, { env: {} });
}

/** The issues of a configuration that must be refused. */
export async function issuesOf(t: TestContext, text: string, dir?: string): Promise<ConfigIssue[]> {
  const result = await loadText(t, text, dir);
  assert.equal(result.ok, false, 'expected the configuration to be refused');
  return result.ok ? [] : result.issues;
}

/** The snapshot of a configuration that must load. */
export async function snapshotOf(t: TestContext, text: string, dir?: string): Promise<Snapshot> {
  const result = await loadText(t, text, dir);
  assert.ok(result.ok, JSON.stringify(!result.ok && result.issues, null, 2));
  return result.snapshot;
}

/** `line:col CODE path` of each issue: positions and codes at a glance. */
export const brief = (issues: readonly ConfigIssue[]): string[] => issues.map(({ line, col, code, path }) => `${line}:${col} ${code} ${path}`);

/** The first lines of a configuration with one listener per zone kind used here, for new sections to follow. */
export const BASE = `version: 1
listeners:
  - { name: partner, zone: partner, port: 8443, hostnames: [api.partner.test] }
upstreams:
  - { id: backend, url: "http://127.0.0.1:9000" }
`;
