import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setLogListener } from '../../src/log.ts';
import { loadConfig } from '../../src/config/load.ts';
import { loadConfigOffThread } from '../../src/config/load-off-thread.ts';
import { INSECURE_ACKS } from '../../src/config/schema.ts';
import { VALID_CONFIG, tempDir, writeSelfSigned, writeText } from './helpers.ts';

// offThreadFromBytes: 0 sends even these small files through the loader process.
const OFF_THREAD = { env: {}, offThreadFromBytes: 0 } as const;

describe('loadConfigOffThread()', () => {
  // A loader process that fails falls back to validating in place, which would give the same answers:
  // every test here must have been answered by the loader process.
  const fallbacks: string[] = [];
  before(() => setLogListener((entry) => void (entry.event === 'config.loader_failed' && fallbacks.push(String(entry['error']))), { quiet: true }));
  after(() => {
    setLogListener(null);
    assert.deepEqual(fallbacks, []);
  });

  it('compiles what loadConfig compiles: same hash, same warnings with their positions, same referenced files', async (t) => {
    const dir = await tempDir(t);
    const { cert, key } = await writeSelfSigned(dir, 'listener');
    const text = VALID_CONFIG.replace('hostnames: [api.partner.test]', `hostnames: [api.partner.test]\n    tls:\n      cert: ${cert}\n      key: ${key}`).replace(
      'url: http://127.0.0.1:9000/base/',
      `url: https://127.0.0.1:9000\n    tls:\n      insecure_skip_verify: "${INSECURE_ACKS.upstreamSkipVerify}"`,
    );
    const file = await writeText(dir, 'gateway.yaml', text);
    const inProcess = await loadConfig(file, { env: {} });
    const offThread = await loadConfigOffThread(file, OFF_THREAD);
    assert.ok(inProcess.ok && offThread.ok, JSON.stringify([inProcess, offThread].map((result) => !result.ok && result.issues)));
    assert.equal(offThread.snapshot.hash, inProcess.snapshot.hash);
    assert.equal(offThread.snapshot.warnings.length, 1);
    assert.deepEqual(offThread.snapshot.warnings, inProcess.snapshot.warnings);
    assert.match(offThread.snapshot.warnings[0]!, /gateway\.yaml:\d+:\d+ upstreams\[0\]\.tls\.insecure_skip_verify/);
    // The listener's certificate reached the compile as the bytes the loader process validated.
    const listener = offThread.snapshot.listeners.find((entry) => entry.tls !== null)!;
    assert.ok(Buffer.isBuffer(listener.tls!.cert));
    assert.deepEqual(listener.tls!.cert, inProcess.snapshot.listeners.find((entry) => entry.tls !== null)!.tls!.cert);
    assert.deepEqual(offThread.snapshot.watchedFiles, inProcess.snapshot.watchedFiles);
  });

  it('refuses a bad file with the same file:line:col issues as loadConfig', async (t) => {
    const file = await writeText(await tempDir(t), 'gateway.yaml', VALID_CONFIG.replace('port: 8443', 'port: 70000').replace('    port: 8443\n', '    port: 8443\n    colour: red\n'));
    const inProcess = await loadConfig(file, { env: {} });
    const offThread = await loadConfigOffThread(file, OFF_THREAD);
    assert.equal(offThread.ok, false);
    assert.deepEqual(offThread, inProcess);
    assert.ok(!offThread.ok && offThread.issues.some((issue) => issue.code === 'CONFIG_INVALID_VALUE' && issue.line === 11));
  });

  it('interpolates with the environment it is given, not the loader process’s own', async (t) => {
    const file = await writeText(await tempDir(t), 'gateway.yaml', VALID_CONFIG.replace('port: 8443', 'port: ${PORTCULLIS_TEST_PORT}'));
    const loaded = await loadConfigOffThread(file, { ...OFF_THREAD, env: { PORTCULLIS_TEST_PORT: '8555' } });
    assert.ok(loaded.ok, JSON.stringify(!loaded.ok && loaded.issues));
    assert.ok(loaded.snapshot.listeners.some((listener) => listener.port === 8555));
    const unset = await loadConfigOffThread(file, OFF_THREAD);
    assert.ok(!unset.ok && unset.issues.some((issue) => issue.code === 'CONFIG_ENV_UNSET'));
  });

  it('reports an unreadable file like loadConfig', async (t) => {
    const missing = `${await tempDir(t)}/missing.yaml`;
    assert.deepEqual(await loadConfigOffThread(missing, OFF_THREAD), await loadConfig(missing, { env: {} }));
  });
});
