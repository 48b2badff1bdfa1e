// `portcullis test revocation` as a child process against a real gateway (two partner listeners
// = two targets, embedded state, its admin API on the ops listener): the report, the cleanup
// (also on failure), and the refusals to run that protect someone else's revocation.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateApiKey } from '../../src/authn/api-key.ts';
import { startHarness } from '../helpers/harness.ts';
import type { Harness } from '../helpers/harness.ts';
import { accessToken, generateTestKey, jwks } from '../helpers/tokens.ts';
import type { RevocationTestReport } from '../../src/cli/commands/test-revocation.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const ADMIN_TOKEN = 'pca_revocation-self-test-admin-token-0123456789ab';
const AUDIENCE = 'https://api.example.test/orders';
const key = generateTestKey('ES256');
const apiKey = generateApiKey();

const CONFIG = `
version: 1
listeners:
  - { name: partner-a, zone: partner, port: 0, hostnames: [localhost] }
  - { name: partner-b, zone: partner, port: 0, hostnames: [localhost] }
upstreams:
  - { id: sample, url: "{{UPSTREAM}}" }
issuers:
  - { id: idp, issuer: https://idp.example.test, jwks_file: idp.jwks.json, algorithms: [ES256] }
apis:
  - { id: orders, audience: ${AUDIENCE} }
partners:
  - id: acme
    agreement: { id: ACME-1, expires: ${new Date(Date.now() + 30 * 86_400_000).toISOString().slice(0, 10)} }
    credentials:
      - { id: acme-jwt, type: jwt, issuer: idp, client_id: acme }
      - { id: acme-key, type: api_key, key_id: ${apiKey.keyId}, sha256: "${apiKey.sha256}", expires: ${new Date(Date.now() + 30 * 86_400_000).toISOString().slice(0, 10)} }
    grants: [{ api: orders }]
routes:
  - { id: orders, zone: partner, api: orders, methods: [GET], path: /orders, upstream: sample, auth: required, credentials: [jwt, api_key] }
admin:
  tokens:
    - { id: ops-selftest, sha256: "${createHash('sha256').update(ADMIN_TOKEN).digest('hex')}" }
`;

let harness: Harness;
let targets: string;
let admin: string;

before(async () => {
  harness = await startHarness(CONFIG, { files: { 'idp.jwks.json': jwks(key) } });
  targets = [harness.url('partner-a'), harness.url('partner-b')].join(',');
  admin = harness.gateway.addresses().ops;
});
after(async () => {
  await harness.close();
});

function selfTest(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, 'test', 'revocation', '--path', '/orders', '--host', 'localhost', '--admin', admin, ...args], { env: { ...process.env, NO_COLOR: '1', PORTCULLIS_ADMIN_TOKEN: ADMIN_TOKEN } }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

async function tokenFile(name: string, clientId = 'acme'): Promise<{ path: string; jti: string }> {
  const token = accessToken(key, { iss: 'https://idp.example.test', aud: AUDIENCE, clientId });
  const path = join(harness.dir, name);
  await writeFile(path, `${token}\n`);
  return { path, jti: JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).jti as string };
}

async function listed(): Promise<Array<{ kind: string; key: string }>> {
  return (await harness.gateway.state.list()).revocations;
}

/** fetch cannot set Host; the listeners serve `localhost` only. */
function status(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(`${url}/orders`, { headers: { ...headers, host: 'localhost' } }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode!));
    });
    request.on('error', reject);
    request.end();
  });
}

describe('portcullis test revocation', () => {
  test('a token: every target refuses at once; the report says so; the revocation is removed and the token works again', async () => {
    const { path, jti } = await tokenFile('token.jwt');
    const { code, stdout, stderr } = await selfTest(['--targets', targets, '--token-file', path, '--format', 'json']);
    assert.equal(code, 0, `${stdout}\n${stderr}`);
    const report = JSON.parse(stdout) as RevocationTestReport;
    assert.equal(report.ok, true);
    assert.deepEqual(report.revocation, { kind: 'token', key: jti });
    assert.equal(report.cleanup, 'removed');
    assert.deepEqual(report.admin.propagation, { instances: 1, acknowledged: 1, elapsed_ms: (report.admin.propagation as { elapsed_ms: number }).elapsed_ms });
    assert.equal(report.targets.length, 2);
    for (const target of report.targets) {
      assert.equal(target.refused, true);
      assert.equal(target.status, 401);
      assert.equal(target.detail, 'invalid_token');
      assert.equal(target.acceptedAfterReturn, 0, 'not one request accepted after the admin call returned');
      assert.equal(target.requests, 1, 'the first request after the revocation is refused');
      assert.ok(target.afterReturnMs !== null && target.afterStartMs !== null && target.afterStartMs >= target.afterReturnMs);
      assert.equal(target.withinThreshold, true);
    }
    assert.ok(!(await listed()).some((entry) => entry.key === jti), 'cleaned up');
    assert.equal(await status(harness.url('partner-a'), { authorization: `Bearer ${(await readFile(path, 'utf8')).trim()}` }), 200);
    // Both changes are in the audit trail, by the admin token's holder.
    const actions = (harness.logLines.filter((line) => line.event === 'admin.change') as Array<{ action?: string; actor?: string }>).map((line) => `${line.action} ${line.actor}`);
    assert.ok(actions.includes('revocation.created ops-selftest') && actions.includes('revocation.removed ops-selftest'), actions.join(', '));
  });

  test('an API key, revoked by credential id; text report', async () => {
    const path = join(harness.dir, 'api.key');
    await writeFile(path, apiKey.key);
    const { code, stdout, stderr } = await selfTest(['--targets', targets, '--api-key-file', path, '--credential', 'acme-key']);
    assert.equal(code, 0, `${stdout}\n${stderr}`);
    assert.match(stdout, /revocation self-test: credential "acme-key"/);
    assert.match(stdout, /reached 1\/1 instance in [\d.]+ ms/);
    assert.match(stdout, /TARGET\s+FIRST REFUSAL\s+AFTER RETURN\s+AFTER START\s+ACCEPTED AFTER\s+REQUESTS\s+RESULT/);
    assert.equal((stdout.match(/ 401 invalid_api_key .* ok$/gm) ?? []).length, 2, stdout);
    assert.match(stdout, /PASS: every target refused within 2000 ms/);
    assert.match(stdout, /cleanup: revocation removed/);
    assert.equal(await status(harness.url('partner-b'), { 'x-api-key': apiKey.key }), 200);
  });

  test('a target that keeps accepting fails the test after the threshold — and the revocation is still removed', async () => {
    const { path, jti } = await tokenFile('token-2.jwt');
    // The upstream itself, behind no gateway: it accepts whatever is revoked.
    const { code, stdout } = await selfTest(['--targets', `${targets},${harness.upstream.url}`, '--token-file', path, '--threshold', '300ms', '--interval', '50ms', '--format', 'json']);
    assert.equal(code, 1);
    const report = JSON.parse(stdout) as RevocationTestReport;
    assert.equal(report.ok, false);
    assert.equal(report.phase, 'poll');
    assert.match(report.problem ?? '', new RegExp(`1 of 3 target\\(s\\) did not refuse within 300 ms: ${harness.upstream.url.replaceAll('.', '\\.')}`));
    const open = report.targets[2]!;
    assert.equal(open.refused, false);
    assert.ok(open.acceptedAfterReturn >= 3, `kept accepting: ${open.acceptedAfterReturn}`);
    assert.ok(open.requests <= 12, `bounded by the threshold: ${open.requests}`);
    assert.equal(report.targets[0]!.refused, true);
    assert.equal(report.cleanup, 'removed');
    assert.ok(!(await listed()).some((entry) => entry.key === jti));
  });

  test('refuses to run when the credential does not work on a target; nothing is revoked', async () => {
    const { path } = await tokenFile('stranger.jwt', 'stranger');
    const before = await listed();
    const { code, stdout } = await selfTest(['--targets', targets, '--token-file', path]);
    assert.equal(code, 1);
    assert.match(stdout, new RegExp(`FAIL \\(baseline\\): the credential must work on every target before the test, but ${harness.url('partner-a').replaceAll('.', '\\.')}/? answered 401 invalid_token`));
    assert.match(stdout, /cleanup: nothing to remove/);
    assert.deepEqual(await listed(), before);
  });

  test('refuses to run when the credential is already revoked: the cleanup would lift someone else\'s revocation', async () => {
    const { path, jti } = await tokenFile('already.jwt');
    await harness.gateway.state.revoke({ kind: 'token', key: jti, reason: 'real incident', actor: 'ops-other', at: Date.now(), expiresAt: null });
    const { code, stdout } = await selfTest(['--targets', targets, '--token-file', path]);
    assert.equal(code, 1);
    assert.match(stdout, /is already revoked; the test would lift that revocation/);
    const kept = (await harness.gateway.state.list()).revocations.find((entry) => entry.key === jti);
    assert.equal(kept?.actor, 'ops-other', 'the existing revocation is untouched');
  });

  test('--keep leaves the revocation in place; usage errors are exit 2', async () => {
    const { path, jti } = await tokenFile('keep.jwt');
    const kept = await selfTest(['--targets', harness.url('partner-a'), '--token-file', path, '--keep']);
    assert.equal(kept.code, 0, kept.stdout);
    assert.match(kept.stdout, /cleanup: revocation kept \(--keep\)/);
    assert.ok((await listed()).some((entry) => entry.key === jti));

    const usage = await Promise.all([
      selfTest(['--targets', targets]),
      selfTest(['--targets', targets, '--token-file', path, '--api-key-file', path]),
      selfTest(['--targets', targets, '--api-key-file', path, '--kind', 'token']),
      selfTest(['--targets', 'ftp://x', '--token-file', path]),
      selfTest(['--targets', targets, '--token-file', path, '--threshold', '10m']),
    ]);
    for (const result of usage) assert.equal(result.code, 2, result.stderr);
    assert.match(usage[0]!.stderr, /exactly one of --token-file FILE and --api-key-file FILE/);
    assert.match(usage[2]!.stderr, /an API key has no jti/);
  });
});
