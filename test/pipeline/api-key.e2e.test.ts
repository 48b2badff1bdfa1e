// Legacy API keys through HTTP: accepted only on routes that list api_key, bound to their
// partner, flagged as long-lived on every decision record, refused when expired or unknown,
// never forwarded to the upstream.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { generateApiKey } from '../../src/authn/api-key.ts';
import { startHarness } from '../helpers/harness.ts';
import type { Harness } from '../helpers/harness.ts';

let h: Harness;
const live = generateApiKey();
const expired = generateApiKey();

before(async () => {
  h = await startHarness(`
version: 1
listeners:
  - { name: api, zone: partner, port: 0, hostnames: [api.example.test] }
upstreams:
  - { id: sample, url: "{{UPSTREAM}}" }
apis:
  - { id: legacy }
routes:
  - { id: legacy, zone: partner, methods: [GET], path: /legacy, upstream: sample, api: legacy, credentials: [api_key] }
partners:
  - id: acme
    agreement: { id: AGR-1, expires: 2099-12-31 }
    credentials:
      - { id: acme-key, type: api_key, key_id: ${live.keyId}, sha256: ${live.sha256}, expires: 2099-01-01 }
      - { id: acme-old-key, type: api_key, key_id: ${expired.keyId}, sha256: ${expired.sha256}, expires: 2020-01-01 }
    grants:
      - { api: legacy }
`);
});
after(async () => h?.close());

async function call(headers: Record<string, string>) {
  const response = await request(`${h.url('api')}/legacy`, { headers: { host: 'api.example.test', ...headers } });
  const text = await response.body.text();
  return { status: response.statusCode, body: text.startsWith('{') ? JSON.parse(text) : text, id: response.headers['x-request-id'] as string };
}

async function recordOf(id: string): Promise<Record<string, any>> {
  for (let i = 0; i < 60; i++) {
    const record = (await h.records()).find((entry) => entry.http.request.id === id);
    if (record) return record;
  }
  throw new Error('no record');
}

test('a live API key is accepted, flagged long-lived, and not forwarded', async () => {
  const result = await call({ 'x-api-key': live.key });
  assert.equal(result.status, 200);
  const seen = h.upstream.seen.at(-1)!.headers;
  assert.equal(seen['x-api-key'], undefined);
  assert.equal(seen['x-portcullis-credential'], 'acme-key');
  assert.equal(seen['x-portcullis-credential-type'], 'api_key');
  const record = await recordOf(result.id);
  assert.equal(record.portcullis.credential.long_lived, true);
  assert.equal(record.portcullis.credential.type, 'api_key');
  assert.equal(record.portcullis.partner.id, 'acme');
  assert.equal(JSON.stringify(record).includes(live.key), false, 'the key never reaches the record');
});

test('an expired key, a wrong secret and a malformed key are refused with 401 invalid_api_key', async () => {
  const before = h.upstream.seen.length;
  const cases: Array<[string, string]> = [
    [expired.key, 'api_key.expired'],
    [`${live.key.slice(0, -4)}AAAA`, 'api_key.invalid'],
    ['not-a-key', 'api_key.invalid'],
  ];
  for (const [key, reason] of cases) {
    const result = await call({ 'x-api-key': key });
    assert.equal(result.status, 401, key);
    assert.equal(result.body.code, 'invalid_api_key');
    assert.equal((await recordOf(result.id)).event.reason, reason);
  }
  assert.equal(h.upstream.seen.length, before);
});

test('a bearer token on an API-key-only route is not a credential it accepts', async () => {
  const result = await call({ authorization: 'Bearer a.b.c' });
  assert.equal(result.status, 401);
  assert.equal(result.body.code, 'invalid_token');
});
