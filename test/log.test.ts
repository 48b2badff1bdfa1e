// The application log: JSON lines on stderr (pino), secrets censored at any depth in the line and
// in what the listener gets, PORTCULLIS_LOG, and nothing lost when a process exits right after logging.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { log, REDACTED, setLogListener } from '../src/log.ts';

const LOG_MODULE = new URL('../src/log.ts', import.meta.url).href;
const running = new Set<ChildProcess>();

after(() => {
  for (const child of running) if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL');
});

interface ChildRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** The JSON lines of stderr. */
  readonly lines: Array<Record<string, any>>;
}

/**
 * Runs `body` in a fresh Node process with `log`, `setLogListener` and `heard` (what the listener
 * received) in scope; the body prints what the test needs on stdout.
 */
async function runChild(body: string, environment: Record<string, string> = {}): Promise<ChildRun> {
  const script = `import { log, setLogListener } from ${JSON.stringify(LOG_MODULE)};
import { generateKeyPairSync } from 'node:crypto';
const heard = [];
setLogListener((entry) => heard.push(entry));
${body}`;
  const env: NodeJS.ProcessEnv = { ...process.env, ...environment };
  if (!('PORTCULLIS_LOG' in environment)) delete env['PORTCULLIS_LOG'];
  const child = spawn(process.execPath, ['--input-type=module', '--no-warnings', '-e', script], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('close', (exitCode) => resolve(exitCode)));
  running.delete(child);
  const lines = stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, any>);
  return { code, stdout, stderr, lines };
}

test('each entry is one JSON line on stderr: level and event as strings, an ISO @timestamp, then the fields', async () => {
  const run = await runChild(`
log('info', 'gateway.started', { config_hash: 'abc', listeners: [{ name: 'public', url: 'http://127.0.0.1:1' }] });
log('warn', 'config.insecure_option', { message: 'insecure_skip_verify' });
log('error', 'audit.write_failed', { records_waiting: 3 });
process.stdout.write(JSON.stringify(heard));`);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stderr.split('\n').filter((line) => line !== '').length, 3, 'nothing but the three lines');
  assert.deepEqual(
    run.lines.map((line) => [line['level'], line['event']]),
    [['info', 'gateway.started'], ['warn', 'config.insecure_option'], ['error', 'audit.write_failed']],
  );
  const [started] = run.lines;
  assert.deepEqual(Object.keys(started!).sort(), ['@timestamp', 'config_hash', 'event', 'level', 'listeners']);
  assert.match(started!['@timestamp'], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.ok(Math.abs(Date.parse(started!['@timestamp']) - Date.now()) < 60_000);
  assert.deepEqual(started!['listeners'], [{ name: 'public', url: 'http://127.0.0.1:1' }]);
  assert.equal(run.lines[2]!['records_waiting'], 3);
  // pino's own keys stay out: no pid, hostname, numeric level, time or msg.
  for (const line of run.lines) for (const key of ['pid', 'hostname', 'time', 'msg']) assert.ok(!(key in line), key);
  assert.deepEqual(JSON.parse(run.stdout), run.lines, 'the listener gets the same entries as stderr');
});

/** Field names that are censored, in the spellings callers and HTTP use. */
const SENSITIVE = [
  'authorization',
  'Authorization',
  'proxy-authorization',
  'cookie',
  'Set-Cookie',
  'DPoP',
  'x-api-key',
  'client_secret',
  'clientSecret',
  'db_password',
  'passphrase',
  'token',
  'access_token',
  'refresh_token',
  'id_token',
  'subject_token',
  'x-amz-security-token',
  'client_assertion',
  'private_key',
  'privateKey',
  'key',
];
/** Near misses that must stay readable: a redactor that censors everything would pass the rest. */
const KEPT = ['kid', 'jti', 'token_type', 'token_endpoint', 'tokens', 'credential', 'keys', 'request_id', 'x-request-id', 'issuer'];

test('every sensitive field is censored at any depth, in stderr and in what the listener gets', async () => {
  const run = await runChild(`
const sensitive = ${JSON.stringify(SENSITIVE)};
const kept = ${JSON.stringify(KEPT)};
for (const name of sensitive) {
  const mark = (where) => 'SECRET-' + name + '-' + where;
  const failure = new Error('upstream refused');
  failure.config = { headers: { [name]: mark('error') } };
  log('warn', 'test.redaction', {
    name,
    [name]: mark('top'),
    headers: { [name]: mark('headers'), 'x-request-id': 'r-1' },
    req: { headers: { [name]: [mark('array-value-1'), mark('array-value-2')] } },
    deep: { a: { b: { c: { d: { [name]: mark('deep') } } } } },
    list: [{ [name]: mark('list') }],
    map: new Map([[name, mark('map')]]),
    object_value: { [name]: { nested: mark('object-value') } },
    error: failure,
    ...Object.fromEntries(kept.map((other) => [other, 'visible-' + other])),
  });
}
process.stdout.write(JSON.stringify(heard));`);
  assert.equal(run.code, 0, run.stderr);
  assert.ok(!run.stderr.includes('SECRET-'), `a secret reached stderr:\n${run.stderr.split('\n').filter((l) => l.includes('SECRET-')).join('\n')}`);
  assert.ok(!run.stdout.includes('SECRET-'), 'a secret reached the listener');
  const heard = JSON.parse(run.stdout) as Array<Record<string, any>>;
  assert.equal(run.lines.length, SENSITIVE.length);
  assert.equal(heard.length, SENSITIVE.length);
  for (const [index, name] of SENSITIVE.entries()) {
    for (const [source, entry] of [['stderr', run.lines[index]!], ['listener', heard[index]!]] as const) {
      const where = `${name} (${source})`;
      assert.equal(entry['name'], name, where);
      assert.equal(entry[name], REDACTED, where);
      assert.equal(entry['headers'][name], REDACTED, where);
      assert.equal(entry['headers']['x-request-id'], 'r-1', where);
      assert.equal(entry['req']['headers'][name], REDACTED, where);
      assert.equal(entry['deep']['a']['b']['c']['d'][name], REDACTED, where);
      assert.equal(entry['list'][0][name], REDACTED, where);
      assert.equal(entry['map'][name], REDACTED, where);
      assert.equal(entry['object_value'][name], REDACTED, where);
      assert.equal(entry['error']['config']['headers'][name], REDACTED, where);
      assert.equal(entry['error']['message'], 'upstream refused', where);
      for (const other of KEPT) assert.equal(entry[other], `visible-${other}`, `${other} is kept (${source})`);
    }
  }
});

test('key material is censored by its shape whatever the field is called; URL userinfo and token parameters too', async () => {
  const run = await runChild(`
const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const pem = privateKey.export({ type: 'pkcs8', format: 'pem' });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'k1' };
const webKey = await crypto.subtle.generateKey({ name: 'HMAC', hash: 'SHA-256' }, true, ['sign']);
log('info', 'test.shapes', {
  certificate_file: pem,
  loaded: { signer: privateKey, verifier: publicKey, hmac: webKey },
  jwks: { keys: [jwk] },
  oct: { kty: 'oct', k: 'SECRET-oct', kid: 'k2' },
  raw: Buffer.from('SECRET-bytes'),
  upstream: new URL('https://user:SECRET-password@upstream.example/cb?access_token=SECRET-query&page=2'),
  headers: new Headers({ authorization: 'Bearer SECRET-headers', accept: 'application/json' }),
  incoming: { rawHeaders: ['Host', 'example.com', 'Cookie', 'sid=SECRET-raw', 'Accept', '*/*'] },
});
process.stdout.write(JSON.stringify({ heard, d: jwk.d }));`);
  assert.equal(run.code, 0, run.stderr);
  const { heard, d } = JSON.parse(run.stdout) as { heard: Array<Record<string, any>>; d: string };
  for (const [source, entry] of [['stderr', run.lines[0]!], ['listener', heard[0]!]] as const) {
    const text = JSON.stringify(entry);
    for (const leak of ['SECRET-', 'PRIVATE KEY', d]) assert.ok(!text.includes(leak), `${leak} in ${source}: ${text}`);
    assert.equal(entry['certificate_file'], REDACTED);
    assert.equal(entry['loaded']['signer'], REDACTED);
    assert.equal(entry['loaded']['verifier'], '[public ec]');
    assert.equal(entry['loaded']['hmac'], REDACTED);
    const [key] = entry['jwks']['keys'];
    assert.equal(key['d'], REDACTED);
    assert.deepEqual([key['kty'], key['crv'], key['kid'], typeof key['x'], typeof key['y']], ['EC', 'P-256', 'k1', 'string', 'string'], 'public members stay');
    assert.deepEqual(entry['oct'], { kty: 'oct', k: REDACTED, kid: 'k2' });
    assert.equal(entry['raw'], '[binary 12 bytes]');
    assert.equal(entry['upstream'], `https://${REDACTED}@upstream.example/cb?access_token=${REDACTED}&page=2`);
    assert.deepEqual(entry['headers'], { accept: 'application/json', authorization: REDACTED });
    assert.deepEqual(entry['incoming']['rawHeaders'], ['Host', 'example.com', 'Cookie', REDACTED, 'Accept', '*/*']);
  }
});

test('an error keeps its type, message, stack and cause; free text is not parsed for secrets', async () => {
  const run = await runChild(`
const cause = new TypeError('socket hang up');
const failure = new Error('fetch failed for Bearer eyJ-in-a-message', { cause });
failure.code = 'E_UPSTREAM';
log('error', 'test.error', { error: failure, detail: 'client_secret=in-free-text' });`);
  assert.equal(run.code, 0, run.stderr);
  const error = run.lines[0]!['error'];
  assert.equal(error['type'], 'Error');
  assert.equal(error['code'], 'E_UPSTREAM');
  assert.match(error['stack'], /^Error: fetch failed[^\n]*\n\s+at /, 'the stack is kept');
  assert.equal(error['cause']['type'], 'TypeError');
  assert.match(error['cause']['stack'], /^TypeError: socket hang up\n\s+at /);
  // The documented limit: callers must not put secrets in messages or details; the log cannot
  // tell a token in prose from an identifier.
  assert.equal(error['message'], 'fetch failed for Bearer eyJ-in-a-message');
  assert.equal(run.lines[0]!['detail'], 'client_secret=in-free-text');
});

test('PORTCULLIS_LOG=silent writes nothing on stderr, the listener still hears everything; a level sets the minimum', async () => {
  const body = `
log('debug', 'test.debug');
log('info', 'test.info', { authorization: 'SECRET' });
log('warn', 'test.warn');
log('error', 'test.error');
process.stdout.write(JSON.stringify(heard.map((entry) => [entry.event, entry.authorization ?? null])));`;
  const everyEvent = [['test.debug', null], ['test.info', REDACTED], ['test.warn', null], ['test.error', null]];
  const [silent, warn, debug, unset, bogus] = await Promise.all([
    runChild(body, { PORTCULLIS_LOG: 'silent' }),
    runChild(body, { PORTCULLIS_LOG: 'warn' }),
    runChild(body, { PORTCULLIS_LOG: 'debug' }),
    runChild(body),
    runChild(body, { PORTCULLIS_LOG: 'loud' }),
  ]);
  assert.equal(silent!.stderr, '');
  for (const run of [silent!, warn!, debug!, unset!]) assert.deepEqual(JSON.parse(run.stdout), everyEvent);
  assert.deepEqual(warn!.lines.map((line) => line['event']), ['test.warn', 'test.error']);
  assert.deepEqual(debug!.lines.map((line) => line['event']), ['test.debug', 'test.info', 'test.warn', 'test.error']);
  assert.deepEqual(unset!.lines.map((line) => line['event']), ['test.info', 'test.warn', 'test.error'], 'info by default');
  assert.deepEqual(bogus!.lines.map((line) => line['event']), ['log.setting_ignored', 'test.info', 'test.warn', 'test.error']);
  assert.match(bogus!.lines[0]!['message'], /PORTCULLIS_LOG must be silent, debug, info, warn or error \(got "loud"\)/);
});

test('a process that logs and exits at once loses nothing, and lines keep their order with other stderr writes', async () => {
  const count = 1_000;
  const run = await runChild(`
const padding = 'x'.repeat(500);
for (let sequence = 0; sequence < ${count}; sequence++) {
  log('info', 'test.burst', { sequence, padding });
  if (sequence === ${count / 2}) process.stderr.write('plain line between entries\\n');
}
log('error', 'gateway.stopped');
process.exit(3);`);
  assert.equal(run.code, 3);
  assert.equal(run.lines.length, count + 1);
  assert.deepEqual(
    run.lines.slice(0, count).map((line) => line['sequence']),
    Array.from({ length: count }, (_, sequence) => sequence),
  );
  assert.equal(run.lines.at(-1)!['event'], 'gateway.stopped', 'the last line before exit is there');
  const plainAt = run.stderr.split('\n').indexOf('plain line between entries');
  assert.equal(plainAt, count / 2 + 1, 'a direct stderr write lands where it was made');
});

test('a crash right after logging keeps the line', async () => {
  const run = await runChild(`
log('error', 'test.fatal', { reason: 'about to throw' });
throw new Error('crash');`);
  assert.equal(run.code, 1);
  assert.deepEqual(run.lines.map((line) => line['event']), ['test.fatal']);
});

test('a closed stderr never turns a log call into an exception', async () => {
  const run = await runChild(`
import('node:fs').then(({ closeSync }) => {
  closeSync(2);
  log('error', 'test.after_close', { n: 1 });
  log('info', 'test.after_close', { n: 2 });
  process.stdout.write(String(heard.length));
});`);
  assert.equal(run.code, 0);
  assert.equal(run.stdout, '2');
});

test('in-process: the listener gets the redacted entry; reserved keys cannot be overwritten; cycles and throwing getters are harmless', () => {
  const heard: Array<Record<string, unknown>> = [];
  setLogListener((entry) => void heard.push(entry), { quiet: true });
  try {
    const cyclic: Record<string, unknown> = { name: 'loop', cookie: 'SECRET' };
    cyclic['self'] = cyclic;
    const hostile = Object.defineProperty({ fine: 1 }, 'broken', {
      enumerable: true,
      get() {
        throw new Error('getter');
      },
    });
    let deep: Record<string, unknown> = { password: 'SECRET' };
    for (let level = 0; level < 20; level++) deep = { down: deep };
    const parsed = JSON.parse('{"__proto__": {"polluted": true}, "ok": 1}');
    log('warn', 'test.in_process', { event: 'not.mine', level: 'debug', '@timestamp': 'then', cyclic, hostile, deep, big: 2n ** 70n, parsed });
  } finally {
    setLogListener(null, { quiet: false });
  }
  assert.equal(heard.length, 1);
  const entry = heard[0]!;
  assert.equal(entry['event'], 'test.in_process');
  assert.equal(entry['level'], 'warn');
  assert.notEqual(entry['@timestamp'], 'then');
  assert.deepEqual(entry['shadowed'], { event: 'not.mine', level: 'debug', '@timestamp': 'then' });
  assert.deepEqual(entry['cyclic'], { name: 'loop', cookie: REDACTED, self: '[Circular]' });
  assert.deepEqual(entry['hostile'], { fine: 1, broken: '[unreadable]' });
  assert.equal(entry['big'], '1180591620717411303424');
  assert.equal(JSON.stringify(entry['parsed']), '{"__proto__":{"polluted":true},"ok":1}', 'a __proto__ key stays a field');
  assert.equal((entry['parsed'] as { polluted?: unknown }).polluted, undefined);
  assert.ok(!JSON.stringify(entry).includes('SECRET'));
  assert.match(JSON.stringify(entry['deep']), /"\[Truncated\]"/);
});
