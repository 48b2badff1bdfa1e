import assert from 'node:assert/strict';
import { relative } from 'node:path';
import { describe, it } from 'node:test';
import { formatIssue, loadConfig } from '../../src/config/load.ts';
import type { ConfigIssue } from '../../src/config/load.ts';
import { INSECURE_ACKS } from '../../src/config/schema.ts';
import { VALID_CONFIG, tempDir, writeText } from './helpers.ts';

async function issuesOf(t: import('node:test').TestContext, text: string): Promise<ConfigIssue[]> {
  const file = await writeText(await tempDir(t), 'gateway.yaml', text);
  const result = await loadConfig(file, { env: {} });
  assert.equal(result.ok, false, 'expected the configuration to be refused');
  return result.ok ? [] : result.issues;
}

const brief = (issues: readonly ConfigIssue[]) => issues.map(({ line, col, code, path }) => `${line}:${col} ${code} ${path}`);

describe('loadConfig()', () => {
  it('loads a valid file', async (t) => {
    const file = await writeText(await tempDir(t), 'gateway.yaml', VALID_CONFIG);
    const result = await loadConfig(file, { env: {} });
    assert.ok(result.ok, JSON.stringify(!result.ok && result.issues));
    assert.equal(result.snapshot.routes.length, 2);
  });

  it('maps a schema issue to the line and column of the value', async (t) => {
    const issues = await issuesOf(t, VALID_CONFIG.replace('port: 8443', 'port: 70000'));
    assert.deepEqual(brief(issues), ['11:11 CONFIG_INVALID_VALUE listeners[1].port']);
    assert.match(issues[0]!.message, /<=65535 \(got 70000\)/);
  });

  it('points an unknown key at the key itself, one issue per key, with a suggestion', async (t) => {
    const issues = await issuesOf(t, VALID_CONFIG.replace('    port: 8443\n', '    port: 8443\n    hostname: x\n    colour: red\n'));
    assert.deepEqual(brief(issues), ['12:5 CONFIG_UNKNOWN_KEY listeners[1].hostname', '13:5 CONFIG_UNKNOWN_KEY listeners[1].colour']);
    assert.equal(issues[0]!.message, 'unknown key "hostname"; did you mean "hostnames"?');
    assert.match(issues[1]!.message, /^unknown key "colour"; expected one of: name, zone, address, port, hostnames, environment, tls, limits$/);
  });

  it('maps a missing required key to its parent mapping', async (t) => {
    const issues = await issuesOf(t, VALID_CONFIG.replace('    port: 8443\n', ''));
    assert.deepEqual(brief(issues), ['8:5 CONFIG_INVALID_TYPE listeners[1].port']);
    assert.equal(issues[0]!.message, 'missing required key "port"');
  });

  it('reports a wrong type and a bad enum value with their codes', async (t) => {
    const issues = await issuesOf(t, VALID_CONFIG.replace('zone: partner\n    address', 'zone: partners\n    address').replace('hostnames: [api.partner.test]', 'hostnames: api.partner.test'));
    assert.deepEqual(brief(issues), ['9:11 CONFIG_INVALID_VALUE listeners[1].zone', '12:16 CONFIG_INVALID_TYPE listeners[1].hostnames']);
    assert.equal(issues[1]!.message, 'expected array, received string');
  });

  it('reports a wrong acknowledgement of an insecure option as CONFIG_INSECURE_UNACKNOWLEDGED', async (t) => {
    const text = VALID_CONFIG.replace('url: http://127.0.0.1:9000/base/', 'url: https://127.0.0.1:9000\n    tls:\n      insecure_skip_verify: true');
    const issues = await issuesOf(t, text);
    assert.deepEqual(brief(issues), ['17:29 CONFIG_INSECURE_UNACKNOWLEDGED upstreams[0].tls.insecure_skip_verify']);
    assert.ok(issues[0]!.message.includes(JSON.stringify(INSECURE_ACKS.upstreamSkipVerify)));
  });

  it('reports every issue of a file, in file order, schema and semantic together', async (t) => {
    const text = VALID_CONFIG.replace('port: 8080', 'port: -1').replace('upstream: backend\n    auth: none', 'upstream: nowhere\n    auth: none').replace('- name: public\n', '- name: public\n    extra: 1\n');
    const issues = await issuesOf(t, text);
    assert.deepEqual(brief(issues), [
      '4:5 CONFIG_UNKNOWN_KEY listeners[0].extra',
      '7:11 CONFIG_INVALID_VALUE listeners[0].port',
      '31:15 CONFIG_DANGLING_REF routes[0].upstream',
    ]);
  });

  it('reports a duplicate YAML key at the second occurrence', async (t) => {
    const issues = await issuesOf(t, VALID_CONFIG.replace('    port: 8443\n', '    port: 8443\n    port: 8444\n'));
    assert.deepEqual(brief(issues), ['12:5 CONFIG_YAML_SYNTAX listeners[1].port']);
    assert.match(issues[0]!.message, /^duplicate key/);
  });

  it('reports YAML syntax errors with their position and a one-line message', async (t) => {
    const issues = await issuesOf(t, 'version: 1\nlisteners: [a, b\n');
    assert.equal(issues[0]!.code, 'CONFIG_YAML_SYNTAX');
    assert.equal(issues[0]!.line, 3);
    assert.ok(issues.every((issue) => !issue.message.includes('\n')));
  });

  it('refuses unresolved aliases and unknown tags instead of guessing', async (t) => {
    assert.deepEqual(brief(await issuesOf(t, `${VALID_CONFIG}gateway: *missing\n`)), ['38:10 CONFIG_YAML_SYNTAX gateway']);
    assert.deepEqual(brief(await issuesOf(t, VALID_CONFIG.replace('port: 8080', 'port: !port 8080'))), ['6:11 CONFIG_YAML_SYNTAX listeners[0].port']);
  });

  it('explains an empty file', async (t) => {
    const issues = await issuesOf(t, '# nothing here\n');
    assert.deepEqual(brief(issues), ['1:1 CONFIG_INVALID_TYPE (root)']);
    assert.match(issues[0]!.message, /the file is empty/);
  });

  it('reports an unreadable file without throwing', async (t) => {
    const dir = await tempDir(t);
    const result = await loadConfig(`${dir}/missing.yaml`);
    assert.equal(result.ok, false);
    assert.deepEqual(!result.ok && brief(result.issues), ['1:1 CONFIG_FILE_UNREADABLE (root)']);
    assert.match(!result.ok ? result.issues[0]!.message : '', /no such file \(ENOENT\)/);
  });

  it('names the file exactly as the caller gave it', async (t) => {
    const file = await writeText(await tempDir(t), 'gateway.yaml', 'version: 2\n');
    const given = relative(process.cwd(), file);
    const result = await loadConfig(given);
    assert.ok(!result.ok && result.issues.length > 0);
    assert.ok(result.issues.every((issue) => issue.file === given));
  });
});

describe('formatIssue()', () => {
  it('prints file:line:col CODE path: message', () => {
    const issue: ConfigIssue = { file: 'conf/gw.yaml', line: 4, col: 11, code: 'CONFIG_INVALID_VALUE', path: 'listeners[0].port', message: 'Too big' };
    assert.equal(formatIssue(issue), 'conf/gw.yaml:4:11 CONFIG_INVALID_VALUE listeners[0].port: Too big');
  });
});
