/**
 * `portcullis validate` and `portcullis schema`, run as real child processes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VALID_CONFIG, runCli, tempDir, writeText } from './helpers.ts';

describe('portcullis validate', () => {
  it('prints each of five different mistakes on its own file:line:col line and exits 1', async () => {
    const file = 'test/config/fixtures/five-mistakes.yaml';
    const { code, stdout, stderr } = await runCli(['validate', '-c', file]);
    assert.equal(code, 1);
    assert.equal(stdout, '');
    const lines = stderr.trimEnd().split('\n');
    assert.equal(lines.length, 5, stderr);
    assert.deepEqual(
      lines.map((line) => line.split(' ').slice(0, 3).join(' ')),
      [
        `${file}:11:11 CONFIG_INVALID_VALUE listeners[1].port:`,
        `${file}:17:5 CONFIG_UNKNOWN_KEY upstreams[0].timeout:`,
        `${file}:25:14 CONFIG_DANGLING_REF partners[0].grants[0].api:`,
        `${file}:39:15 CONFIG_DANGLING_REF routes[1].upstream:`,
        `${file}:40:9 CONFIG_DUPLICATE_ID routes[2].id:`,
      ],
    );
    assert.match(lines[1]!, / upstreams\[0\]\.timeout: unknown key "timeout"; did you mean "timeouts"\?$/);
    assert.match(lines[2]!, / partners\[0\]\.grants\[0\]\.api: unknown api "invoices"/);
    assert.match(lines[3]!, / routes\[1\]\.upstream: unknown upstream "order-service"/);
    assert.match(lines[4]!, / routes\[2\]\.id: duplicate route id "orders": first defined at line 34$/);
  });

  it('accepts examples/minimal.yaml and prints the hash', async () => {
    const { code, stdout, stderr } = await runCli(['validate', '-c', 'examples/minimal.yaml']);
    assert.equal(stderr, '');
    assert.equal(code, 0);
    assert.match(stdout, /^Valid configuration \(hash [0-9a-f]{12}\)\n$/);
  });

  it('prints a JSON report with --format json, valid or not', async () => {
    const valid = await runCli(['validate', '--config', 'examples/minimal.yaml', '--format', 'json', '--offline']);
    assert.equal(valid.code, 0);
    const report = JSON.parse(valid.stdout) as { valid: boolean; hash: string; issues: unknown[] };
    assert.equal(report.valid, true);
    assert.match(report.hash, /^[0-9a-f]{64}$/);
    assert.deepEqual(report.issues, []);
    assert.ok(valid.stdout.includes(report.hash.slice(0, 12)));

    const invalid = await runCli(['validate', '-c', 'test/config/fixtures/five-mistakes.yaml', '--format=json']);
    assert.equal(invalid.code, 1);
    const failed = JSON.parse(invalid.stdout) as { valid: boolean; hash?: string; issues: { file: string; line: number; col: number; code: string; path: string }[] };
    assert.equal(failed.valid, false);
    assert.equal(failed.hash, undefined);
    assert.equal(failed.issues.length, 5);
    assert.deepEqual(failed.issues[0], {
      file: 'test/config/fixtures/five-mistakes.yaml',
      line: 11,
      col: 11,
      code: 'CONFIG_INVALID_VALUE',
      path: 'listeners[1].port',
      message: 'Too big: expected number to be <=65535 (got 84430)',
    });
  });

  it('reads ${VAR} from the environment of the process', async (t) => {
    const dir = await tempDir(t);
    const file = await writeText(dir, 'gateway.yaml', VALID_CONFIG.replace('port: 8080', 'port: ${CLI_TEST_PORT}'));
    const unset = await runCli(['validate', '-c', file], { env: { PATH: process.env['PATH'] } });
    assert.equal(unset.code, 1);
    assert.equal(unset.stderr, `${file}:6:11 CONFIG_ENV_UNSET listeners[0].port: \${CLI_TEST_PORT} is not set and no default is given (use \${NAME:-default})\n`);
    const set = await runCli(['validate', '-c', file], { env: { PATH: process.env['PATH'], CLI_TEST_PORT: '8081' } });
    assert.equal(set.code, 0, set.stderr);
  });

  it('exits 2 on usage errors, naming the problem', async () => {
    const unknown = await runCli(['validate', '-c', 'examples/minimal.yaml', '--strict']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /^portcullis validate: Unknown option '--strict'/);
    const missing = await runCli(['validate']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--config is required/);
    const format = await runCli(['validate', '-c', 'examples/minimal.yaml', '--format', 'yaml']);
    assert.equal(format.code, 2);
    assert.match(format.stderr, /--format must be "text" or "json"/);
  });

  it('prints its usage with --help', async () => {
    const { code, stdout } = await runCli(['validate', '--help']);
    assert.equal(code, 0);
    assert.match(stdout, /^Usage: portcullis validate -c FILE \[--format text\|json\] \[--offline\]/);
  });
});

describe('portcullis schema', () => {
  it('prints the JSON Schema of the configuration', async () => {
    const { code, stdout } = await runCli(['schema']);
    assert.equal(code, 0);
    const schema = JSON.parse(stdout) as {
      $schema: string;
      $id: string;
      title: string;
      properties: Record<string, { description?: string; items?: { properties?: Record<string, unknown> } }>;
      additionalProperties: boolean;
    };
    assert.match(schema.$schema, /json-schema\.org/);
    assert.equal(schema.$id, 'https://portcullis.dev/schema/config-v1.json');
    assert.equal(schema.title, 'Portcullis configuration');
    assert.equal(schema.additionalProperties, false);
    assert.ok(schema.properties['listeners']);
    assert.equal(schema.properties['listeners']!.description, 'Data-plane listeners.');
    assert.ok(schema.properties['listeners']!.items?.properties?.['hostnames']);
  });

  it('exits 2 on an unknown flag and prints usage on --help', async () => {
    const unknown = await runCli(['schema', '--pretty']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /^portcullis schema: Unknown option '--pretty'/);
    const help = await runCli(['schema', '-h']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: portcullis schema/);
  });
});
