// The admin API over loopback (src/admin/api.ts) with a real embedded state store, a real audit
// trail and a configuration loaded from YAML: every status code, "a bad call changes nothing",
// authentication failures recorded without the token, constant-time comparison, propagation.
import { after, afterEach, before, describe, mock, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_PROBLEMS, normaliseCertificateKey } from '../../src/admin/api.ts';
import { openEmbeddedStore } from '../../src/state/embedded.ts';
import { setLogListener } from '../../src/log.ts';
import { ALICE_TOKEN, BOB_TOKEN, startAdminFixture } from './fixture.ts';
import type { AdminFixture } from './fixture.ts';

let fixture: AdminFixture;
const logLines: Array<{ event: string; [key: string]: unknown }> = [];

before(async () => {
  setLogListener((entry) => logLines.push(entry), { quiet: true });
  fixture = await startAdminFixture();
});
after(async () => {
  await fixture.close();
  setLogListener(null);
});

type RawBody = string | Uint8Array | ReadableStream<Uint8Array>;

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, any>;
}

async function call(method: string, path: string, options: { token?: string | null; body?: unknown; raw?: RawBody; headers?: Record<string, string>; base?: string } = {}): Promise<Answer> {
  const token = options.token === undefined ? ALICE_TOKEN : options.token;
  const init: RequestInit & { duplex?: 'half' } = {
    method,
    headers: {
      ...(token !== null ? { authorization: `Bearer ${token}` } : {}),
      ...(options.body !== undefined || options.raw !== undefined ? { 'content-type': 'application/json' } : {}),
      ...options.headers,
    },
  };
  if (options.body !== undefined) init.body = JSON.stringify(options.body);
  if (options.raw !== undefined) {
    init.body = options.raw;
    if (options.raw instanceof ReadableStream) init.duplex = 'half';
  }
  const response = await fetch(`${options.base ?? fixture.url}${path}`, init);
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text === '' ? {} : (JSON.parse(text) as Record<string, any>) };
}

function assertProblem(answer: Answer, status: number, code: keyof typeof ADMIN_PROBLEMS, detail?: RegExp): void {
  assert.equal(answer.status, status, JSON.stringify(answer.body));
  assert.equal(answer.headers.get('content-type'), 'application/problem+json');
  assert.equal(answer.body['code'], code);
  assert.equal(answer.body['type'], `urn:portcullis:admin-problem:${code}`);
  assert.equal(answer.body['status'], status);
  assert.equal(answer.body['title'], ADMIN_PROBLEMS[code].title);
  if (detail) assert.match(String(answer.body['detail']), detail);
}

const stateOf = async () => fixture.store.list();

describe('authentication', () => {
  test('no Authorization header: 401 with the Bearer challenge, and an admin.refused record', async () => {
    const answer = await call('GET', '/admin/revocations', { token: null });
    assertProblem(answer, 401, 'unauthenticated', /Authorization: Bearer/);
    assert.equal(answer.headers.get('www-authenticate'), 'Bearer realm="portcullis-admin"');
    const refused = (await fixture.records()).filter((record) => record['event']['action'] === 'admin.refused' && record['event']['reason'] === 'token_missing');
    assert.equal(refused.length, 1);
    assert.equal(refused[0]!['event']['outcome'], 'failure');
    assert.equal(refused[0]!['source']['ip'], '127.0.0.1');
    assert.equal(refused[0]!['user']['id'], null);
  });

  test('an unknown token: 401 invalid_token, recorded, and the presented token is in no record', async () => {
    const presented = 'pca_not-a-configured-token-zzzzzzzzzzzzzzzzzzzzzzzz';
    const before = await stateOf();
    const answer = await call('POST', '/admin/revocations', { token: presented, body: { kind: 'token', key: 'j-unauth', reason: 'x' } });
    assertProblem(answer, 401, 'unauthenticated', /not valid/);
    assert.equal(answer.headers.get('www-authenticate'), 'Bearer realm="portcullis-admin", error="invalid_token"');
    assert.deepEqual(await stateOf(), before);
    const refused = (await fixture.records()).filter((record) => record['event']['reason'] === 'token_invalid');
    assert.equal(refused.length, 1);
    assert.equal(refused[0]!['event']['action'], 'admin.refused');
    assert.ok(!(await fixture.combinedText()).includes(presented.slice(4)), 'no part of the presented token is recorded');
  });

  test('a malformed Authorization header (Basic) is refused with error="invalid_request"', async () => {
    const answer = await call('GET', '/admin/revocations', { token: null, headers: { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` } });
    assertProblem(answer, 401, 'unauthenticated', /not a bearer token/);
    assert.equal(answer.headers.get('www-authenticate'), 'Bearer realm="portcullis-admin", error="invalid_request"');
  });

  test('the scheme name is case-insensitive (RFC 9110 §11.1); the holder id is the actor', async () => {
    const answer = await call('GET', '/admin/revocations', { token: null, headers: { authorization: `bearer ${BOB_TOKEN}` } });
    assert.equal(answer.status, 200);
  });

  test('authentication comes before routing: an unknown endpoint answers 401 to a stranger, 404 to an operator', async () => {
    assertProblem(await call('GET', '/admin/nothing-here', { token: null }), 401, 'unauthenticated');
    assertProblem(await call('GET', '/admin/nothing-here'), 404, 'not_found');
    assertProblem(await call('GET', '/admin'), 404, 'not_found');
  });

  describe('constant-time comparison', () => {
    afterEach(() => mock.restoreAll());
    test('every configured token digest is compared with timingSafeEqual, with no early exit', async () => {
      const spy = mock.method(crypto, 'timingSafeEqual');
      assert.equal((await call('GET', '/admin/revocations', { token: ALICE_TOKEN })).status, 200);
      // Alice is the first of two configured tokens: a loop that stopped at the match would compare once.
      assert.equal(spy.mock.callCount(), 2);
      for (const { arguments: args } of spy.mock.calls) assert.equal((args[0] as Buffer).length, 32, 'SHA-256 digests are compared, not the raw token');
      spy.mock.resetCalls();
      assert.equal((await call('GET', '/admin/revocations', { token: 'pca_wrong' })).status, 401);
      assert.equal(spy.mock.callCount(), 2);
    });
  });

  test('no admin tokens configured: every call is 401, saying so', async () => {
    const bare = await startAdminFixture({ tokens: false });
    try {
      const answer = await call('GET', '/admin/revocations', { base: bare.url });
      assertProblem(answer, 401, 'unauthenticated', /no tokens configured/);
      assert.equal(answer.headers.get('www-authenticate'), 'Bearer realm="portcullis-admin"');
      const refused = (await bare.records()).filter((record) => record['event']['action'] === 'admin.refused');
      assert.equal(refused.length, 1);
      assert.equal(refused[0]!['event']['reason'], 'no_admin_tokens');
    } finally {
      await bare.close();
    }
  });
});

describe('revocations', () => {
  test('POST a token revocation: 201, in the store at once, propagation reported, audited and logged', async () => {
    logLines.length = 0;
    const expiresAt = new Date(Date.now() + 3_600_000).toISOString();
    const answer = await call('POST', '/admin/revocations', { body: { kind: 'token', key: 'jti-0001', reason: 'leaked in a support ticket', expires_at: expiresAt } });
    assert.equal(answer.status, 201, JSON.stringify(answer.body));
    assert.equal(answer.headers.get('content-type'), 'application/json');
    assert.equal(answer.body['revocation']['kind'], 'token');
    assert.equal(answer.body['revocation']['key'], 'jti-0001');
    assert.equal(answer.body['revocation']['actor'], 'ops-alice');
    assert.equal(answer.body['revocation']['expires_at'], expiresAt);
    assert.equal(answer.body['propagation']['instances'], 1);
    assert.equal(answer.body['propagation']['acknowledged'], 1);
    assert.equal(typeof answer.body['propagation']['elapsed_ms'], 'number');
    assert.equal(answer.body['audit_recorded'], true);

    const view = fixture.store.revocations.current();
    assert.ok(!('unavailable' in view));
    assert.equal(view.revoked('token', 'jti-0001')?.reason, 'leaked in a support ticket');

    const record = (await fixture.records()).find((entry) => entry['event']['action'] === 'revocation.created' && entry['portcullis']['revocation']['key'] === 'jti-0001');
    assert.ok(record, 'revocation.created recorded');
    assert.equal(record['event']['outcome'], 'success');
    assert.equal(record['user']['id'], 'ops-alice');
    assert.equal(record['source']['ip'], '127.0.0.1');
    assert.equal(record['portcullis']['note'], 'leaked in a support ticket');
    assert.equal(record['portcullis']['partner']['id'], null);
    assert.equal(record['portcullis']['config_hash'], fixture.snapshot.hash);
    assert.deepEqual(record['portcullis']['propagation'], { instances: 1, acknowledged: 1, elapsed_ms: answer.body['propagation']['elapsed_ms'] });
    assert.equal(record['portcullis']['revocation']['expires_at'], expiresAt);
    assert.equal(logLines.filter((line) => line.event === 'admin.change').length, 1, 'one info line per change');
  });

  test('a credential revocation names its partner: the record also goes to that partner\'s stream', async () => {
    const answer = await call('POST', '/admin/revocations', { body: { kind: 'credential', key: 'acme-key', reason: 'partner reported the key lost' } });
    assert.equal(answer.status, 201, JSON.stringify(answer.body));
    const record = (await fixture.records('acme')).find((entry) => entry['event']['action'] === 'revocation.created');
    assert.ok(record, 'in the partner stream');
    assert.equal(record['portcullis']['partner']['id'], 'acme');
    assert.equal(record['portcullis']['revocation']['key'], 'acme-key');
  });

  test('certificate keys are normalised: colon-separated uppercase fingerprints, serial and issuer as openssl prints them', async () => {
    const hex = 'AB'.repeat(32);
    const colon = hex.match(/../g)!.join(':');
    const byFingerprint = await call('POST', '/admin/revocations', { body: { kind: 'certificate', key: `sha256:${colon}`, reason: 'device stolen' } });
    assert.equal(byFingerprint.status, 201, JSON.stringify(byFingerprint.body));
    assert.equal(byFingerprint.body['revocation']['key'], `sha256:${'ab'.repeat(32)}`);
    const bySerial = await call('POST', '/admin/revocations', { body: { kind: 'certificate', key: 'serial:00:0A:FF@O = Example Corp, CN = Example CA\\, Inc', reason: 'mis-issued' } });
    assert.equal(bySerial.status, 201, JSON.stringify(bySerial.body));
    assert.equal(bySerial.body['revocation']['key'], 'serial:aff@O=Example Corp\nCN=Example CA\\, Inc');
    assert.equal(bySerial.body['warnings'], undefined);
    const view = fixture.store.revocations.current();
    assert.ok(!('unavailable' in view));
    assert.ok(view.revoked('certificate', `sha256:${'ab'.repeat(32)}`));
    assert.ok(view.revoked('certificate', 'serial:aff@O=Example Corp\nCN=Example CA\\, Inc'));
  });

  test('the same key as an X509Certificate prints it: the issuer in node form is kept as is; RFC 4514 order earns a warning', async () => {
    assert.deepEqual(normaliseCertificateKey('serial:44888E15@O=Portcullis development PKI\nCN=Test CA\\, Inc'), { ok: true, key: 'serial:44888e15@O=Portcullis development PKI\nCN=Test CA\\, Inc' });
    const reversed = normaliseCertificateKey('serial:01@CN=Example CA, O=Example, C=DE');
    assert.equal(reversed.ok, true);
    assert.match((reversed as { warning?: string }).warning ?? '', /RFC 4514/);
    assert.deepEqual(normaliseCertificateKey('CD'.repeat(32)), { ok: true, key: `sha256:${'cd'.repeat(32)}` });
    assert.equal(normaliseCertificateKey('cd'.repeat(20)).ok, false, 'a SHA-1 fingerprint is not accepted');
  });

  const invalid: Array<[string, unknown, RegExp]> = [
    ['unknown field', { kind: 'token', key: 'j-bad', reason: 'r', actor: 'mallory' }, /unknown field "actor"/],
    ['missing reason', { kind: 'token', key: 'j-bad' }, /reason is required/],
    ['empty reason', { kind: 'token', key: 'j-bad', reason: '   ' }, /reason must not be empty/],
    ['reason too long', { kind: 'token', key: 'j-bad', reason: 'x'.repeat(501) }, /reason must be at most 500 characters/],
    ['reason with control characters', { kind: 'token', key: 'j-bad', reason: 'line\nbreak' }, /reason must not contain control characters/],
    ['unknown kind', { kind: 'partner', key: 'acme', reason: 'r' }, /kind must be one of token, credential, certificate/],
    ['key not a string', { kind: 'token', key: 7, reason: 'r' }, /key must be a string/],
    ['empty jti', { kind: 'token', key: '', reason: 'r' }, /jti\) must be 1–256 characters/],
    ['jti too long', { kind: 'token', key: 'j'.repeat(257), reason: 'r' }, /1–256 characters, not 257/],
    ['jti not printable ASCII', { kind: 'token', key: 'jti-é', reason: 'r' }, /printable ASCII/],
    ['credential not in the configuration', { kind: 'credential', key: 'nobody-key', reason: 'r' }, /no credential "nobody-key" in the current configuration/],
    ['fingerprint too short', { kind: 'certificate', key: 'sha256:abcd', reason: 'r' }, /64 hex digits/],
    ['certificate key of no known form', { kind: 'certificate', key: 'CN=someone', reason: 'r' }, /sha256:<64 hex digits>.*serial:<hex serial>@<issuer DN>/],
    ['serial without issuer attribute', { kind: 'certificate', key: 'serial:0a@Example CA', reason: 'r' }, /is not an attribute/],
    ['expires_at not a timestamp', { kind: 'token', key: 'j-bad', reason: 'r', expires_at: 'tomorrow' }, /expires_at must be an RFC 3339 timestamp/],
    ['expires_at in the past', { kind: 'token', key: 'j-bad', reason: 'r', expires_at: '2020-01-01T00:00:00Z' }, /expires_at is in the past/],
  ];
  for (const [name, body, detail] of invalid) {
    test(`400 and no change: ${name}`, async () => {
      const before = await stateOf();
      const recordsBefore = (await fixture.records()).filter((record) => record['event']['action'] === 'revocation.created').length;
      const answer = await call('POST', '/admin/revocations', { body });
      assertProblem(answer, 400, 'invalid_request', detail);
      assert.deepEqual(await stateOf(), before);
      const records = await fixture.records();
      assert.equal(records.filter((record) => record['event']['action'] === 'revocation.created').length, recordsBefore);
      const refusal = records.at(-1)!;
      assert.equal(refusal['event']['action'], 'admin.refused');
      assert.equal(refusal['event']['reason'], 'invalid_request');
      assert.equal(refusal['user']['id'], 'ops-alice');
    });
  }

  const notJson: Array<[string, RawBody, Record<string, string>, RegExp]> = [
    ['not JSON', 'kind=token&key=x', {}, /not valid JSON/],
    ['a JSON array', '[1,2]', {}, /must be a JSON object/],
    ['a duplicate member', '{"kind":"token","key":"j-dup","reason":"r","key":"other"}', {}, /duplicate/],
    ['an empty body', '', {}, /JSON object body is required/],
    ['not UTF-8', new Uint8Array([0x7b, 0xff, 0x7d]), {}, /not valid UTF-8/],
    ['a form content type', '{"kind":"token","key":"j","reason":"r"}', { 'content-type': 'application/x-www-form-urlencoded' }, /content-type must be application\/json/],
  ];
  for (const [name, raw, headers, detail] of notJson) {
    test(`400 invalid_json and no change: ${name}`, async () => {
      const before = await stateOf();
      assertProblem(await call('POST', '/admin/revocations', { raw, headers }), 400, 'invalid_json', detail);
      assert.deepEqual(await stateOf(), before);
    });
  }

  test('413 for a body over 16 KiB, declared or streamed, and no change', async () => {
    const before = await stateOf();
    const big = JSON.stringify({ kind: 'token', key: 'j-big', reason: 'r', padding: 'x'.repeat(17 * 1024) });
    const declared = await call('POST', '/admin/revocations', { raw: big });
    assertProblem(declared, 413, 'body_too_large', /16384/);
    assert.equal(declared.headers.get('connection'), 'close');
    const chunk = new TextEncoder().encode('x'.repeat(4096));
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent === 0) controller.enqueue(new TextEncoder().encode('{"kind":"token","key":"j-big","reason":"'));
        if (sent++ < 8) controller.enqueue(chunk);
        else controller.close();
      },
    });
    assertProblem(await call('POST', '/admin/revocations', { raw: stream }), 413, 'body_too_large', /exceeds 16384/);
    assert.deepEqual(await stateOf(), before);
  });

  test('405 with Allow for a wrong method', async () => {
    const put = await call('PUT', '/admin/revocations', { body: {} });
    assertProblem(put, 405, 'method_not_allowed');
    assert.equal(put.headers.get('allow'), 'GET, POST');
    const get = await call('GET', '/admin/revocations/token/jti-0001');
    assertProblem(get, 405, 'method_not_allowed');
    assert.equal(get.headers.get('allow'), 'DELETE');
    const partner = await call('GET', '/admin/partners/acme/suspend');
    assert.equal(partner.headers.get('allow'), 'POST');
    assertProblem(partner, 405, 'method_not_allowed');
  });

  test('GET lists every revocation and partner override', async () => {
    const answer = await call('GET', '/admin/revocations');
    assert.equal(answer.status, 200);
    assert.ok(Array.isArray(answer.body['revocations']));
    assert.ok(Array.isArray(answer.body['partners']));
    const token = answer.body['revocations'].find((entry: { key: string }) => entry.key === 'jti-0001');
    assert.deepEqual(Object.keys(token).sort(), ['actor', 'at', 'expires_at', 'key', 'kind', 'reason']);
    assert.equal(token.actor, 'ops-alice');
    const stored = await stateOf();
    assert.equal(answer.body['revocations'].length, stored.revocations.length);
  });

  test('DELETE removes (URL-encoded key, normalised like POST), then 404; both audited', async () => {
    assert.equal((await call('POST', '/admin/revocations', { body: { kind: 'token', key: 'a/b c?d', reason: 'r' } })).status, 201);
    const removed = await call('DELETE', `/admin/revocations/token/${encodeURIComponent('a/b c?d')}`, { token: BOB_TOKEN });
    assert.equal(removed.status, 200, JSON.stringify(removed.body));
    assert.deepEqual(removed.body['removed'], { kind: 'token', key: 'a/b c?d' });
    assert.equal(removed.body['propagation']['acknowledged'], 1);
    const view = fixture.store.revocations.current();
    assert.ok(!('unavailable' in view) && view.revoked('token', 'a/b c?d') === undefined);
    const record = (await fixture.records()).findLast((entry) => entry['event']['action'] === 'revocation.removed');
    assert.equal(record?.['user']['id'], 'ops-bob');
    assert.equal(record?.['portcullis']['revocation']['key'], 'a/b c?d');

    assertProblem(await call('DELETE', `/admin/revocations/token/${encodeURIComponent('a/b c?d')}`), 404, 'revocation_not_found');
    // A fingerprint revoked in one spelling is removed in another.
    const upper = `sha256:${'AB'.repeat(32)}`;
    assert.equal((await call('DELETE', `/admin/revocations/certificate/${encodeURIComponent(upper)}`)).status, 200);
    assertProblem(await call('DELETE', '/admin/revocations/session/x'), 400, 'invalid_request', /kind must be one of/);
    assertProblem(await call('DELETE', '/admin/revocations/token/%E0%A4%A'), 400, 'invalid_request', /percent-encoded/);
    assertProblem(await call('DELETE', '/admin/revocations/token/a/b'), 404, 'not_found', /%2F/);
  });
});

describe('partners', () => {
  test('suspend: 200 with the new effective status and propagation; in the store; recorded in the partner stream', async () => {
    const answer = await call('POST', '/admin/partners/acme/suspend', { body: { reason: 'unpaid invoices' } });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(answer.body['partner']['status'], 'suspended');
    assert.equal(answer.body['partner']['configured_status'], 'active');
    assert.equal(answer.body['partner']['override']['actor'], 'ops-alice');
    assert.equal(answer.body['propagation']['acknowledged'], 1);
    const view = fixture.store.revocations.current();
    assert.ok(!('unavailable' in view));
    assert.equal(view.partnerStatus('acme')?.status, 'suspended');
    const record = (await fixture.records('acme')).findLast((entry) => entry['event']['action'] === 'partner.suspended');
    assert.equal(record?.['portcullis']['note'], 'unpaid invoices');
    assert.equal(record?.['portcullis']['partner']['id'], 'acme');
  });

  test('resume removes the override: the configured status applies again, and the answer says so', async () => {
    const answer = await call('POST', '/admin/partners/acme/resume', { body: { reason: 'paid' } });
    assert.equal(answer.status, 200);
    assert.equal(answer.body['partner']['status'], 'active');
    assert.equal(answer.body['partner']['override'], null);
    assert.match(answer.body['detail'], /configured status \(active\) applies/);
    const view = fixture.store.revocations.current();
    assert.ok(!('unavailable' in view) && view.partnerStatus('acme') === undefined);
    assert.ok((await fixture.records('acme')).some((entry) => entry['event']['action'] === 'partner.resumed'));

    // A partner suspended in the configuration stays suspended: resume only lifts runtime changes.
    const globex = await call('POST', '/admin/partners/globex/resume', { body: { reason: 'try' } });
    assert.equal(globex.status, 200);
    assert.equal(globex.body['partner']['status'], 'suspended');
    assert.match(globex.body['detail'], /configured status \(suspended\) applies — change it in the configuration/);
  });

  test('offboarding is final: resume and suspend of an offboarded partner are 409 and change nothing', async () => {
    const offboarded = await call('POST', '/admin/partners/initech/offboard', { body: { reason: 'contract ended' } });
    assert.equal(offboarded.status, 200);
    assert.equal(offboarded.body['partner']['status'], 'offboarded');
    const before = await stateOf();
    assertProblem(await call('POST', '/admin/partners/initech/resume', { body: { reason: 'oops' } }), 409, 'partner_offboarded', /final/);
    assertProblem(await call('POST', '/admin/partners/initech/suspend', { body: { reason: 'oops' } }), 409, 'partner_offboarded');
    assertProblem(await call('POST', '/admin/partners/initech/offboard', { body: { reason: 'again' } }), 409, 'partner_offboarded');
    assert.deepEqual(await stateOf(), before);
    const refusals = (await fixture.records('initech')).filter((entry) => entry['event']['action'] === 'admin.refused');
    assert.equal(refusals.length, 3);
  });

  test('unknown partner: 404; bad body: 400; both change nothing', async () => {
    const before = await stateOf();
    assertProblem(await call('POST', '/admin/partners/nobody/suspend', { body: { reason: 'r' } }), 404, 'partner_not_found', /no partner "nobody"/);
    assertProblem(await call('POST', '/admin/partners/umbrella/suspend', { body: {} }), 400, 'invalid_request', /reason is required/);
    assertProblem(await call('POST', '/admin/partners/umbrella/suspend', { body: { reason: 'r', status: 'active' } }), 400, 'invalid_request', /unknown field "status"/);
    assertProblem(await call('POST', '/admin/partners/umbrella/pause', { body: { reason: 'r' } }), 404, 'not_found');
    assert.deepEqual(await stateOf(), before);
  });
});

describe('failures of the trail and the store', () => {
  test('audit trail cannot take records: 503 before any change', async () => {
    // A real trail that cannot take more: its queue (one record) is full and is not written for a minute.
    const full = await startAdminFixture({ audit: { maxQueue: 1, flushIntervalMs: 60_000 } });
    try {
      assert.equal(full.trail.append({ portcullis: { partner: { id: null } } }, null), true);
      assert.equal(full.trail.healthy(), false);
      const before = await full.store.list();
      const answer = await call('POST', '/admin/revocations', { base: full.url, body: { kind: 'token', key: 'j-503', reason: 'r' } });
      assertProblem(answer, 503, 'audit_unavailable', /nothing was changed/);
      assertProblem(await call('POST', '/admin/partners/acme/suspend', { base: full.url, body: { reason: 'r' } }), 503, 'audit_unavailable');
      assert.deepEqual(await full.store.list(), before);
    } finally {
      await full.close();
    }
  });

  test('the store fails (rejects): 503 state_unavailable, never a success', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'portcullis-admin-closed-'));
    const closed = await openEmbeddedStore({ path: join(dir, 'state.sqlite'), propagationTimeoutMs: 1000 });
    await closed.close();
    const broken = await startAdminFixture({ store: closed });
    try {
      assertProblem(await call('POST', '/admin/revocations', { base: broken.url, body: { kind: 'token', key: 'j-x', reason: 'r' } }), 503, 'state_unavailable', /not confirmed/);
      assertProblem(await call('DELETE', '/admin/revocations/token/j-x', { base: broken.url }), 503, 'state_unavailable');
      assertProblem(await call('GET', '/admin/revocations', { base: broken.url }), 503, 'state_unavailable');
      assertProblem(await call('POST', '/admin/partners/acme/suspend', { base: broken.url, body: { reason: 'r' } }), 503, 'state_unavailable');
      const refusals = (await broken.records()).filter((entry) => entry['event']['action'] === 'admin.refused' && entry['event']['reason'] === 'state_unavailable');
      assert.equal(refusals.length, 3, 'every failed change attempt is recorded (the read is not)');
      assert.ok(!(await broken.records()).some((entry) => entry['event']['outcome'] === 'success'));
    } finally {
      await broken.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

test('docs/admin.md lists every admin problem code with its status', async () => {
  const doc = await readFile(new URL('../../docs/admin.md', import.meta.url), 'utf8');
  for (const [code, { status }] of Object.entries(ADMIN_PROBLEMS)) {
    assert.match(doc, new RegExp(`\\|\\s*\`${code}\`\\s*\\|\\s*${status}\\s*\\|`), `docs/admin.md lists ${code} (${status})`);
  }
});
