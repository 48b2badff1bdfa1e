// `portcullis revoke …` and `portcullis partner …` through the real CLI in child processes,
// against a real admin API (ops server, embedded state store, audit trail) over loopback.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCa, issueClientCertificate } from '../../src/pki/dev-ca.ts';
import { setLogListener } from '../../src/log.ts';
import { ALICE_TOKEN, startAdminFixture } from '../admin/fixture.ts';
import type { AdminFixture } from '../admin/fixture.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

let fixture: AdminFixture;
before(async () => {
  setLogListener(null, { quiet: true });
  fixture = await startAdminFixture();
});
after(async () => {
  await fixture.close();
});

function cli(args: string[], env: Record<string, string | undefined> = { PORTCULLIS_ADMIN_TOKEN: ALICE_TOKEN }): Promise<{ code: number; stdout: string; stderr: string }> {
  const childEnv: Record<string, string | undefined> = { ...process.env, NO_COLOR: '1', PORTCULLIS_ADMIN_TOKEN: undefined, ...env };
  for (const [name, value] of Object.entries(childEnv)) if (value === undefined) delete childEnv[name];
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { env: childEnv as NodeJS.ProcessEnv }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

const admin = (): string[] => ['--admin', fixture.url];

function revoked(kind: 'token' | 'credential' | 'certificate', key: string): boolean {
  const view = fixture.store.revocations.current();
  assert.ok(!('unavailable' in view));
  return view.revoked(kind, key) !== undefined;
}

describe('portcullis revoke', () => {
  test('token: revoked on the gateway, with a human summary incl. propagation', async () => {
    const { code, stdout, stderr } = await cli(['revoke', 'token', 'jti-cli-1', '--reason', 'leaked in a ticket', ...admin()]);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /^revoked token jti-cli-1 as ops-alice at \d{4}-\d{2}-\d{2}T/);
    assert.match(stdout, /reached 1\/1 instance in [\d.]+ ms/);
    assert.ok(revoked('token', 'jti-cli-1'));
  });

  test('credential with --format json: the admin API answer, machine-readable; audited under the partner', async () => {
    const { code, stdout } = await cli(['revoke', 'credential', 'acme-jwt', '--reason', 'rotating', '--expires', new Date(Date.now() + 3_600_000).toISOString(), '--format', 'json', ...admin()]);
    assert.equal(code, 0);
    const body = JSON.parse(stdout) as { revocation: { kind: string; key: string; expires_at: string | null }; propagation: { instances: number; acknowledged: number } };
    assert.equal(body.revocation.kind, 'credential');
    assert.equal(body.revocation.key, 'acme-jwt');
    assert.notEqual(body.revocation.expires_at, null);
    assert.deepEqual([body.propagation.instances, body.propagation.acknowledged], [1, 1]);
    assert.ok(revoked('credential', 'acme-jwt'));
    assert.ok((await fixture.records('acme')).some((record) => record['event']['action'] === 'revocation.created' && record['user']['id'] === 'ops-alice'));
  });

  test('certificate by --cert FILE (its fingerprint) and by an uppercase colon fingerprint', async () => {
    const ca = await createCa({ commonName: 'Test CA' });
    const leaf = await issueClientCertificate(ca, { commonName: 'device-7' });
    const certPath = join(fixture.dir, 'device-7.pem');
    await writeFile(certPath, leaf.certPem);
    const other = await issueClientCertificate(ca, { commonName: 'device-8' });
    const [byFile, byColon] = await Promise.all([
      cli(['revoke', 'certificate', '--cert', certPath, '--reason', 'device stolen', ...admin()]),
      cli(['revoke', 'certificate', other.certificate.fingerprint256, '--reason', 'device stolen', ...admin()]),
    ]);
    assert.equal(byFile.code, 0, byFile.stderr);
    const fingerprint = leaf.certificate.fingerprint256.replaceAll(':', '').toLowerCase();
    assert.ok(revoked('certificate', `sha256:${fingerprint}`));
    assert.equal(byColon.code, 0, byColon.stderr);
    assert.ok(revoked('certificate', `sha256:${other.certificate.fingerprint256.replaceAll(':', '').toLowerCase()}`));
  });

  test('list shows revocations and partner overrides; remove lifts one, and removing it again is exit 1', async () => {
    const listed = await cli(['revoke', 'list', ...admin()]);
    assert.equal(listed.code, 0);
    assert.match(listed.stdout, /revocations: \d+/);
    assert.match(listed.stdout, /token\s+jti-cli-1\s+ops-alice/);
    assert.match(listed.stdout, /partner status overrides: \d+/);

    const removed = await cli(['revoke', 'remove', 'token', 'jti-cli-1', ...admin()]);
    assert.equal(removed.code, 0, removed.stderr);
    assert.match(removed.stdout, /removed the token revocation jti-cli-1\nreached 1\/1 instance/);
    assert.equal(revoked('token', 'jti-cli-1'), false);

    const again = await cli(['revoke', 'remove', 'token', 'jti-cli-1', ...admin()]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /404 revocation_not_found/);
  });

  test('the token comes from --token-file as well; a wrong token is exit 1 (401) and changes nothing', async () => {
    const tokenFile = join(fixture.dir, 'admin.token');
    await writeFile(tokenFile, `${ALICE_TOKEN}\n`, { mode: 0o600 });
    const [fromFile, wrong] = await Promise.all([
      cli(['revoke', 'token', 'jti-cli-file', '--reason', 'r', '--token-file', tokenFile, ...admin()], {}),
      cli(['revoke', 'token', 'jti-cli-wrong', '--reason', 'r', ...admin()], { PORTCULLIS_ADMIN_TOKEN: 'pca_wrong' }),
    ]);
    assert.equal(fromFile.code, 0, fromFile.stderr);
    assert.ok(revoked('token', 'jti-cli-file'));

    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /401 unauthenticated: the admin token is not valid/);
    assert.equal(revoked('token', 'jti-cli-wrong'), false);
  });

  test('-c FILE: the admin URL is the configuration\'s ops address and port', async () => {
    const configPath = join(fixture.dir, 'with-ops.yaml');
    await writeFile(configPath, `${await readFile(fixture.configPath, 'utf8')}\nops:\n  address: 127.0.0.1\n  port: ${fixture.ops.port}\n`);
    const { code, stdout, stderr } = await cli(['revoke', 'token', 'jti-cli-config', '--reason', 'r', '-c', configPath]);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /reached 1\/1/);
    assert.ok(revoked('token', 'jti-cli-config'));
  });

  test('a malformed key, a missing reason, no admin token, or a token given as a flag: exit 2 and nothing sent', async () => {
    const before = await fixture.store.list();
    const cases: Array<[string[], Record<string, string | undefined>, RegExp]> = [
      [['revoke', 'token', 'jti-x', ...admin()], { PORTCULLIS_ADMIN_TOKEN: ALICE_TOKEN }, /--reason is required/],
      [['revoke', 'certificate', 'sha256:abc', '--reason', 'r', ...admin()], { PORTCULLIS_ADMIN_TOKEN: ALICE_TOKEN }, /64 hex digits/],
      [['revoke', 'token', 'jti-x', '--reason', 'r', ...admin()], {}, /no admin token: set PORTCULLIS_ADMIN_TOKEN or pass --token-file/],
      [['revoke', 'token', 'jti-x', '--reason', 'r', '--token', ALICE_TOKEN, ...admin()], {}, /Unknown option '--token'/],
      [['revoke', 'session', 'x', '--reason', 'r', ...admin()], { PORTCULLIS_ADMIN_TOKEN: ALICE_TOKEN }, /unknown subcommand "session"/],
      [['revoke', 'remove', 'token', ...admin()], { PORTCULLIS_ADMIN_TOKEN: ALICE_TOKEN }, /remove takes KIND KEY/],
      [['revoke', 'list', '--admin', 'ftp://127.0.0.1'], { PORTCULLIS_ADMIN_TOKEN: ALICE_TOKEN }, /http:\/\/ or https:\/\//],
    ];
    const results = await Promise.all(cases.map(([args, env]) => cli(args, env)));
    cases.forEach(([args, , message], index) => {
      const { code, stderr } = results[index]!;
      assert.equal(code, 2, `${args.join(' ')}: ${stderr}`);
      assert.match(stderr, message);
    });
    assert.deepEqual(await fixture.store.list(), before);
  });

  test('an admin API that is not there: exit 1, saying where it looked', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const { code, stderr } = await cli(['revoke', 'list', '--admin', `http://127.0.0.1:${port}`]);
    assert.equal(code, 1);
    assert.match(stderr, new RegExp(`cannot reach the admin API at http://127\\.0\\.0\\.1:${port}: ECONNREFUSED`));
  });
});

describe('portcullis partner', () => {
  test('suspend, resume, offboard; resume of an offboarded partner is exit 1 (409)', async () => {
    const suspended = await cli(['partner', 'suspend', 'umbrella', '--reason', 'abuse report', ...admin()]);
    assert.equal(suspended.code, 0, suspended.stderr);
    assert.match(suspended.stdout, /^partner umbrella is now suspended\nreached 1\/1 instance/);
    const view = fixture.store.revocations.current();
    assert.ok(!('unavailable' in view) && view.partnerStatus('umbrella')?.status === 'suspended');

    const resumed = await cli(['partner', 'resume', 'umbrella', '--reason', 'resolved', ...admin()]);
    assert.equal(resumed.code, 0);
    assert.match(resumed.stdout, /partner umbrella is now active\nthe runtime override is removed; the configured status \(active\) applies/);

    const offboarded = await cli(['partner', 'offboard', 'umbrella', '--reason', 'contract ended', '--format', 'json', ...admin()]);
    assert.equal(offboarded.code, 0);
    assert.equal((JSON.parse(offboarded.stdout) as { partner: { status: string } }).partner.status, 'offboarded');

    const refused = await cli(['partner', 'resume', 'umbrella', '--reason', 'oops', ...admin()]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /409 partner_offboarded: .*offboarding is final/);
  });

  test('unknown partner is exit 1 (404); usage errors are exit 2', async () => {
    const unknown = await cli(['partner', 'suspend', 'nobody', '--reason', 'r', ...admin()]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /404 partner_not_found/);
    const usage = [['partner', 'pause', 'acme', '--reason', 'r'], ['partner', 'suspend', 'acme'], ['partner', 'suspend', '--reason', 'r'], ['partner', 'suspend', 'Acme Corp', '--reason', 'r']];
    const results = await Promise.all(usage.map((args) => cli([...args, ...admin()])));
    results.forEach(({ code }, index) => assert.equal(code, 2, usage[index]!.join(' ')));
  });
});
