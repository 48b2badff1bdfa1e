import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { interpolate } from '../../src/config/interpolate.ts';
import { loadConfig } from '../../src/config/load.ts';
import { VALID_CONFIG, tempDir, writeText } from './helpers.ts';

describe('interpolate()', () => {
  it('substitutes set variables and leaves other text alone', () => {
    assert.deepEqual(interpolate('http://${HOST}:${PORT}/x', { HOST: 'a.test', PORT: '81' }), { ok: true, text: 'http://a.test:81/x', whole: false });
  });

  it('marks a value that is exactly one reference as whole', () => {
    assert.deepEqual(interpolate('${PORT}', { PORT: '81' }), { ok: true, text: '81', whole: true });
    assert.deepEqual(interpolate('${PORT:-80}', {}), { ok: true, text: '80', whole: true });
    assert.equal((interpolate('${A}${B}', { A: '1', B: '2' }) as { whole: boolean }).whole, false);
  });

  it('uses the default when the variable is unset or empty, and an empty default is allowed', () => {
    assert.equal((interpolate('${X:-fallback}', {}) as { text: string }).text, 'fallback');
    assert.equal((interpolate('${X:-fallback}', { X: '' }) as { text: string }).text, 'fallback');
    assert.equal((interpolate('${X:-fallback}', { X: 'set' }) as { text: string }).text, 'set');
    assert.equal((interpolate('a${X:-}b', {}) as { text: string }).text, 'ab');
  });

  it('keeps an empty value when no default is given', () => {
    assert.deepEqual(interpolate('${X}', { X: '' }), { ok: true, text: '', whole: true });
  });

  it('reports every unset variable once', () => {
    assert.deepEqual(interpolate('${A}/${B}/${A}', {}), { ok: false, unset: ['A', 'B'], malformed: null });
  });

  it('turns $${ into a literal ${ without substituting', () => {
    assert.deepEqual(interpolate('cost: $${PRICE}', { PRICE: '1' }), { ok: true, text: 'cost: ${PRICE}', whole: false });
  });

  it('does not expand references inside a substituted value', () => {
    assert.deepEqual(interpolate('${A}', { A: '${B}', B: 'secret' }), { ok: true, text: '${B}', whole: true });
  });

  it('refuses malformed references instead of passing them through', () => {
    const unterminated = interpolate('${HOST', { HOST: 'x' });
    assert.equal(unterminated.ok, false);
    assert.match((unterminated as { malformed: string }).malformed, /unterminated/);
    const badName = interpolate('${1X}', {});
    assert.match((badName as { malformed: string }).malformed, /invalid reference "\$\{1X\}"/);
  });
});

describe('interpolation in a loaded file', () => {
  const config = VALID_CONFIG.replace('port: 8080', 'port: ${PUBLIC_PORT}').replace('url: http://127.0.0.1:9000/base/', 'url: "http://${UP_HOST:-127.0.0.1}:9000"');

  it('reads an unquoted lone reference as a YAML scalar (a port becomes a number)', async (t) => {
    const file = await writeText(await tempDir(t), 'gateway.yaml', config);
    const result = await loadConfig(file, { env: { PUBLIC_PORT: '9090' } });
    assert.ok(result.ok, JSON.stringify(!result.ok && result.issues));
    assert.equal(result.snapshot.listeners[0]!.port, 9090);
    assert.equal(result.snapshot.upstreams.get('backend')!.origin, 'http://127.0.0.1:9000');
  });

  it('applies the environment given in options, not the process environment', async (t) => {
    const file = await writeText(await tempDir(t), 'gateway.yaml', config);
    const result = await loadConfig(file, { env: { PUBLIC_PORT: '9090', UP_HOST: 'upstream.internal' } });
    assert.ok(result.ok);
    assert.equal(result.snapshot.upstreams.get('backend')!.origin, 'http://upstream.internal:9000');
  });

  it('reports an unset variable at its scalar, once, with CONFIG_ENV_UNSET', async (t) => {
    const file = await writeText(await tempDir(t), 'gateway.yaml', config);
    const result = await loadConfig(file, { env: {} });
    assert.equal(result.ok, false);
    assert.deepEqual(
      !result.ok && result.issues.map(({ line, col, code, path }) => ({ line, col, code, path })),
      [{ line: 6, col: 11, code: 'CONFIG_ENV_UNSET', path: 'listeners[0].port' }],
    );
  });

  it('keeps a quoted reference a string, so the schema reports the type', async (t) => {
    const file = await writeText(await tempDir(t), 'gateway.yaml', VALID_CONFIG.replace('port: 8080', 'port: "${PUBLIC_PORT}"'));
    const result = await loadConfig(file, { env: { PUBLIC_PORT: '9090' } });
    assert.equal(result.ok, false);
    const [issue] = !result.ok ? result.issues : [];
    assert.equal(issue?.code, 'CONFIG_INVALID_TYPE');
    assert.match(issue!.message, /expected number, received string \(value from "\$\{PUBLIC_PORT\}"\)/);
  });

  it('never lets a variable inject YAML structure', async (t) => {
    const file = await writeText(await tempDir(t), 'gateway.yaml', VALID_CONFIG.replace('- id: orders\n    audience', '- id: orders\n    name: ${NAME}\n    audience'));
    const result = await loadConfig(file, { env: { NAME: 'x\nextra: [1, 2]' } });
    assert.ok(result.ok, JSON.stringify(!result.ok && result.issues));
    assert.equal(result.snapshot.config.apis[0]!.name, 'x\nextra: [1, 2]');
  });

  it('does not interpolate mapping keys', async (t) => {
    const file = await writeText(await tempDir(t), 'gateway.yaml', `${VALID_CONFIG}\${KEY}: 1\n`);
    const result = await loadConfig(file, { env: { KEY: 'ops' } });
    assert.equal(result.ok, false);
    assert.equal(!result.ok && result.issues[0]!.code, 'CONFIG_UNKNOWN_KEY');
  });
});
