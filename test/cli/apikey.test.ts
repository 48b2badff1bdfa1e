// `portcullis apikey create`, through the real CLI in a child process: the key is printed once,
// the YAML snippet is valid configuration that verifies the key, and expiries are bounded.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { partner } from '../../src/config/schema.ts';
import { verifyApiKey } from '../../src/authn/api-key.ts';
import type { ApiKeyCredential } from '../../src/authn/api-key.ts';
import { resolveExpiry } from '../../src/cli/commands/apikey.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const DAY_MS = 86_400_000;
const KEY = /pcs_[a-z0-9]{12}_[A-Za-z0-9_-]{43}/g;

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, 'apikey', ...args], { env: { ...process.env, NO_COLOR: '1' } }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

/** The YAML printed under "Add this …", parsed. */
function snippet(stdout: string): unknown {
  const start = stdout.indexOf('\n\n', stdout.indexOf('Add this to the configuration'));
  const end = stdout.indexOf('\n\n', start + 2);
  return parse(stdout.slice(start + 2, end));
}

describe('portcullis apikey create', () => {
  test('prints the key once, says to store it now, and a snippet that is valid configuration and verifies the key', async () => {
    const before = Date.now();
    const { code, stdout, stderr } = await cli('create', '--partner', 'acme', '--expires', '30d');
    const after = Date.now();
    assert.equal(code, 0, stderr);
    const keys = stdout.match(KEY) ?? [];
    assert.equal(keys.length, 1, 'the key appears exactly once');
    assert.match(stdout, /Store it now: it cannot be shown again/);
    assert.match(stdout, /partners\[acme\]\.credentials/);
    assert.match(stdout, /long-lived/);

    // The snippet passes the real configuration schema.
    const credentials = snippet(stdout);
    const parsed = partner.parse({ id: 'acme', credentials });
    const credential = parsed.credentials[0]!;
    assert.equal(credential.type, 'api_key');
    if (credential.type !== 'api_key') return;
    assert.equal(credential.id, `apikey-${credential.key_id}`);
    const expiresAt = Date.parse(credential.expires);
    assert.ok(expiresAt >= Math.floor(before / 1000) * 1000 + 30 * DAY_MS && expiresAt <= after + 30 * DAY_MS, credential.expires);

    // Compiled as the gateway compiles it, it verifies the printed key — and only it.
    const index = new Map<string, ApiKeyCredential>([
      [credential.key_id, { id: credential.id, type: 'api_key', partnerId: 'acme', keyId: credential.key_id, sha256: Buffer.from(credential.sha256, 'hex'), expiresAt, rateLimit: null }],
    ]);
    assert.equal(verifyApiKey(keys[0]!, index, Date.now()).ok, true);
    assert.equal(verifyApiKey(keys[0]!, index, expiresAt).ok, false);
    assert.ok(!JSON.stringify(credentials).includes(keys[0]!.slice(17)), 'the snippet holds the hash, never the secret');
  });

  test('--id names the credential; a bare date is kept as written (valid through that day)', async () => {
    const date = new Date(Date.now() + 60 * DAY_MS).toISOString().slice(0, 10);
    const { code, stdout } = await cli('create', '--partner', 'acme', '--id', 'acme-legacy-key', '--expires', date);
    assert.equal(code, 0);
    const [credential] = snippet(stdout) as Array<Record<string, string>>;
    assert.equal(credential!['id'], 'acme-legacy-key');
    assert.equal(credential!['expires'], date);
    assert.match(stdout, new RegExp(`valid through ${date}`));
  });

  test('an expiry in the past is refused and no key is printed', async () => {
    const { code, stdout, stderr } = await cli('create', '--partner', 'acme', '--expires', '2020-01-01');
    assert.equal(code, 2);
    assert.equal(stdout, '');
    assert.match(stderr, /not in the future/);
  });

  test('an expiry more than a year ahead is refused, and the refusal says why', async () => {
    for (const expires of ['2y', '400d', new Date(Date.now() + 400 * DAY_MS).toISOString().slice(0, 10)]) {
      const { code, stdout, stderr } = await cli('create', '--partner', 'acme', '--expires', expires);
      assert.equal(code, 2, expires);
      assert.equal(stdout, '');
      assert.match(stderr, /more than one year ahead/);
      assert.match(stderr, /long-lived/);
    }
  });

  test('usage errors exit 2 without creating a key: unknown flag, missing or bad arguments, unknown subcommand', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['create', '--partner', 'acme', '--expires', '30d', '--forever'], /Unknown option '--forever'/],
      [['create', '--partner', 'acme'], /--expires is required/],
      [['create', '--expires', '30d'], /--partner is required/],
      [['create', '--partner', 'Acme Corp', '--expires', '30d'], /not a partner id/],
      [['create', '--partner', 'acme', '--id', 'Bad Id', '--expires', '30d'], /not a credential id/],
      [['create', '--partner', 'acme', '--expires', '2027-02-30'], /not a calendar date/],
      [['create', '--partner', 'acme', '--expires', 'tomorrow'], /must be a date/],
      [['--partner', 'acme', '--expires', '30d'], /missing subcommand "create"/],
      [['delete', '--partner', 'acme'], /unknown subcommand "delete"/],
    ];
    for (const [args, message] of cases) {
      const { code, stdout, stderr } = await cli(...args);
      assert.equal(code, 2, args.join(' '));
      assert.equal(stdout, '', args.join(' '));
      assert.match(stderr, message);
    }
  });

  test('--help prints the usage and exits 0', async () => {
    const { code, stdout } = await cli('create', '--help');
    assert.equal(code, 0);
    assert.match(stdout, /Usage: portcullis apikey create --partner ID --expires WHEN/);
    assert.doesNotMatch(stdout, KEY);
  });
});

describe('resolveExpiry (fixed clock)', () => {
  const now = Date.parse('2026-06-01T12:00:00Z');

  test('durations become absolute UTC timestamps in whole seconds', () => {
    assert.deepEqual(resolveExpiry('30d', now + 400), { ok: true, written: '2026-07-01T12:00:00Z', expiresAt: Date.parse('2026-07-01T12:00:00Z') });
    assert.deepEqual(resolveExpiry('12w', now), { ok: true, written: '2026-08-24T12:00:00Z', expiresAt: Date.parse('2026-08-24T12:00:00Z') });
    assert.deepEqual(resolveExpiry('1y', now), { ok: true, written: '2027-06-01T12:00:00Z', expiresAt: Date.parse('2027-06-01T12:00:00Z') });
  });

  test('a bare date runs to the end of that day, UTC; a timestamp ends at itself', () => {
    assert.deepEqual(resolveExpiry('2026-06-01', now), { ok: true, written: '2026-06-01', expiresAt: Date.parse('2026-06-02T00:00:00Z') });
    assert.deepEqual(resolveExpiry('2026-12-01T08:00:00+02:00', now), { ok: true, written: '2026-12-01T08:00:00+02:00', expiresAt: Date.parse('2026-12-01T06:00:00Z') });
  });

  test('at most one year: through the same calendar day next year, not one day more', () => {
    assert.equal(resolveExpiry('2027-06-01', now).ok, true);
    assert.equal(resolveExpiry('2027-06-01T23:59:59Z', now).ok, true);
    assert.equal(resolveExpiry('365d', now).ok, true);
    assert.equal(resolveExpiry('2027-06-02', now).ok, false);
    assert.equal(resolveExpiry('366d', now).ok, false);
    assert.equal(resolveExpiry('53w', now).ok, false);
  });

  test('not in the future: refused', () => {
    assert.equal(resolveExpiry('2026-05-31', now).ok, false);
    assert.equal(resolveExpiry('2026-06-01T12:00:00Z', now).ok, false);
    assert.equal(resolveExpiry('0d', now).ok, false);
  });
});
