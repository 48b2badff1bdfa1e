// `portcullis admin token`, through the real CLI in a child process: the token is printed once,
// the YAML snippet is valid configuration, and a gateway configured with it accepts the token on
// its admin API (and only it).
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { setLogListener } from '../../src/log.ts';
import { startAdminFixture } from '../admin/fixture.ts';

before(() => setLogListener(null, { quiet: true }));

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const TOKEN = /pca_[A-Za-z0-9_-]{43}/g;

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, 'admin', ...args], { env: { ...process.env, NO_COLOR: '1' } }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

/** The YAML between "Add this …" and "Then use it". */
function snippet(stdout: string): string {
  const start = stdout.indexOf('\n\n', stdout.indexOf('Add this to the configuration'));
  const end = stdout.indexOf('\n\nThen use it');
  return stdout.slice(start + 2, end);
}

describe('portcullis admin token', () => {
  test('prints a token once and a snippet; a gateway configured with the snippet accepts exactly that token', async () => {
    const { code, stdout, stderr } = await cli('token', '--id', 'ops-carol');
    assert.equal(code, 0, stderr);
    const tokens = stdout.match(TOKEN) ?? [];
    assert.equal(tokens.length, 1, 'the token appears exactly once');
    assert.match(stdout, /Store it now: it cannot be shown again/);
    const yaml = snippet(stdout);
    const parsed = parse(yaml) as { admin: { tokens: Array<{ id: string; sha256: string }> } };
    assert.equal(parsed.admin.tokens[0]!.id, 'ops-carol');
    assert.match(parsed.admin.tokens[0]!.sha256, /^[0-9a-f]{64}$/);
    assert.ok(!yaml.includes(tokens[0]!.slice(4)), 'the snippet holds the hash, never the token');

    // The snippet is the admin section of a real configuration; the admin API accepts the token.
    const fixture = await startAdminFixture({ tokens: false, extraYaml: yaml });
    try {
      const accepted = await fetch(`${fixture.url}/admin/revocations`, { headers: { authorization: `Bearer ${tokens[0]}` } });
      assert.equal(accepted.status, 200);
      await accepted.body?.cancel();
      const created = await fetch(`${fixture.url}/admin/revocations`, {
        method: 'POST',
        headers: { authorization: `Bearer ${tokens[0]}`, 'content-type': 'application/json' },
        body: JSON.stringify({ kind: 'token', key: 'jti-carol', reason: 'test' }),
      });
      assert.equal(((await created.json()) as { revocation: { actor: string } }).revocation.actor, 'ops-carol', 'the id is the actor');
      const other = await fetch(`${fixture.url}/admin/revocations`, { headers: { authorization: `Bearer ${tokens[0]!.slice(0, -1)}x` } });
      assert.equal(other.status, 401);
      await other.body?.cancel();
    } finally {
      await fixture.close();
    }
  });

  test('two runs give different tokens; the default id is admin', async () => {
    const [first, second] = await Promise.all([cli('token'), cli('token')]);
    assert.equal(first.code, 0);
    assert.notEqual(first.stdout.match(TOKEN)![0], second.stdout.match(TOKEN)![0]);
    assert.equal((parse(snippet(first.stdout)) as { admin: { tokens: Array<{ id: string }> } }).admin.tokens[0]!.id, 'admin');
  });

  test('usage errors: exit 2 and no token printed', async () => {
    const usage = [[], ['mint'], ['token', '--id', 'Not Valid'], ['token', '--token', 'x']];
    const results = await Promise.all(usage.map((args) => cli(...args)));
    results.forEach(({ code, stdout, stderr }, index) => {
      assert.equal(code, 2, usage[index]!.join(' '));
      assert.equal(stdout, '');
      assert.match(stderr, /portcullis admin: /);
    });
  });
});
