// Rate limits, quotas, concurrency limits and abuse protection through a real gateway over
// loopback, with the embedded state store in the test folder. Clients speak from different
// loopback addresses (127.0.0.1, .2, .3) so source-address rules can be shown without one test
// blocking the address the others use.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'undici';
import { generateApiKey } from '../../src/authn/api-key.ts';
import type { GeneratedApiKey } from '../../src/authn/api-key.ts';
import { INSECURE_ACKS } from '../../src/config/schema.ts';
import { windowEnd } from '../../src/ratelimit/calendar.ts';
import { startHarness } from '../helpers/harness.ts';
import type { Harness } from '../helpers/harness.ts';

const HOST = 'api.example.test';
const keys: Record<string, GeneratedApiKey> = Object.fromEntries(
  ['bursty', 'twokeysA', 'twokeysB', 'metered', 'serial', 'fenced', 'plain', 'paced'].map((name) => [name, generateApiKey()]),
);
const credential = (id: string, key: GeneratedApiKey): string => `{ id: ${id}, type: api_key, key_id: ${key.keyId}, sha256: ${key.sha256}, expires: 2099-01-01 }`;
const partner = (id: string, credentials: string[], extra = ''): string => `
  - id: ${id}
    agreement: { id: AGR-${id}, expires: 2099-12-31 }
    credentials: [${credentials.join(', ')}]
    grants: [{ api: orders }]${extra}`;

const ROUTES = `
version: 1
listeners:
  - { name: api, zone: partner, port: 0, hostnames: [${HOST}] }
upstreams:
  - { id: sample, url: "{{UPSTREAM}}" }
apis:
  - { id: orders }
routes:
  - { id: orders, zone: partner, methods: [GET], path: /orders, upstream: sample, api: orders, credentials: [api_key] }
  - { id: exports, zone: partner, methods: [GET], path: /exports, upstream: sample, api: orders, credentials: [api_key], rate_limit: { rate: 1/h, per: credential } }
  - { id: slow, zone: partner, methods: [GET], path: "/slow/{ms}", upstream: sample, api: orders, credentials: [api_key] }
`;

const agents = new Map<string, Agent>();
/** A client connection from `localAddress` (any 127/8 address is loopback on Linux). */
function from(localAddress: string): Agent {
  let agent = agents.get(localAddress);
  if (agent === undefined) {
    agent = new Agent({ localAddress });
    agents.set(localAddress, agent);
  }
  return agent;
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: any;
  id: string;
}

async function call(h: Harness, path: string, apiKey: string, source = '127.0.0.1'): Promise<Answer> {
  const response = await request(`${h.url('api')}${path}`, { headers: { host: HOST, 'x-api-key': apiKey }, dispatcher: from(source) });
  const text = await response.body.text();
  return { status: response.statusCode, headers: response.headers, body: text.startsWith('{') ? JSON.parse(text) : text, id: response.headers['x-request-id'] as string };
}

async function recordOf(h: Harness, id: string): Promise<Record<string, any>> {
  for (let i = 0; i < 60; i++) {
    const record = (await h.records()).find((entry) => entry.http.request.id === id);
    if (record) return record;
  }
  throw new Error(`no record for ${id}`);
}

function assertProblem(answer: Answer, status: number, code: string): void {
  assert.equal(answer.status, status, JSON.stringify(answer.body));
  assert.equal(answer.headers['content-type'], 'application/problem+json');
  assert.equal(answer.body.code, code);
  assert.equal(answer.body.status, status);
  assert.equal(answer.body.type, `urn:portcullis:problem:${code}`);
}

/** RFC 9110 §10.2.3 delay-seconds, at least one. */
function retryAfter(answer: Answer): number {
  const value = answer.headers['retry-after'];
  assert.equal(typeof value, 'string', 'a 429 carries Retry-After');
  assert.match(value as string, /^[1-9][0-9]*$/);
  return Number(value);
}

after(async () => {
  for (const agent of agents.values()) await agent.close();
});

describe('limits through the gateway (RateLimit fields off)', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness(`${ROUTES}
partners:${partner('bursty', [credential('bursty-key', keys['bursty']!)], '\n    rate_limit: { rate: 1/h, burst: 2 }')}${partner('twokeys', [credential('twokeys-a', keys['twokeysA']!), credential('twokeys-b', keys['twokeysB']!)])}${partner('metered', [credential('metered-key', keys['metered']!)], '\n    quotas: [{ limit: 2, per: day }]')}${partner('serial', [credential('serial-key', keys['serial']!)], '\n    max_concurrent: 1')}${partner('fenced', [credential('fenced-key', keys['fenced']!)], '\n    source_networks: [127.0.0.2/32]')}${partner('plain', [credential('plain-key', keys['plain']!)])}
abuse:
  auth_failures_per_source: { max: 3, window: 1m, block: 1m }
`);
  });
  after(async () => h?.close());

  test('a partner gets burst + 1 requests, then 429 rate_limited with Retry-After, and the upstream sees nothing more', async () => {
    for (let i = 0; i < 3; i++) {
      const allowed = await call(h, '/orders', keys['bursty']!.key);
      assert.equal(allowed.status, 200, `request ${i}`);
      assert.equal(allowed.headers['ratelimit'], undefined, 'no RateLimit fields unless enabled');
      assert.equal(allowed.headers['ratelimit-policy'], undefined);
    }
    const seen = h.upstream.seen.length;
    const refused = await call(h, '/orders', keys['bursty']!.key);
    assertProblem(refused, 429, 'rate_limited');
    // 1/h with the burst spent: the next request is possible one emission interval later.
    const seconds = retryAfter(refused);
    assert.ok(seconds > 3590 && seconds <= 3600, `Retry-After ${seconds}`);
    assert.equal(refused.headers['ratelimit'], undefined);
    assert.equal(h.upstream.seen.length, seen, 'not forwarded');
    const record = await recordOf(h, refused.id);
    assert.equal(record.event.reason, 'ratelimit.exceeded');
    assert.match(record.portcullis.detail, /partner bursty rate limit 1\/h \(burst 2\) exceeded/);
    assert.equal(record.portcullis.upstream.called, false);
  });

  test('a route limit per credential: each key of one partner has its own', async () => {
    assert.equal((await call(h, '/exports', keys['twokeysA']!.key)).status, 200);
    const refused = await call(h, '/exports', keys['twokeysA']!.key);
    assertProblem(refused, 429, 'rate_limited');
    retryAfter(refused);
    assert.equal((await call(h, '/exports', keys['twokeysB']!.key)).status, 200, 'the other key of the same partner');
    assert.equal((await call(h, '/orders', keys['twokeysA']!.key)).status, 200, 'other routes are not limited');
  });

  test('a quota: refused with quota_exceeded until the next UTC midnight', async () => {
    assert.equal((await call(h, '/orders', keys['metered']!.key)).status, 200);
    assert.equal((await call(h, '/orders', keys['metered']!.key)).status, 200);
    const refused = await call(h, '/orders', keys['metered']!.key);
    assertProblem(refused, 429, 'quota_exceeded');
    const expected = (windowEnd('day', 'UTC', Date.now()) - Date.now()) / 1000;
    assert.ok(Math.abs(retryAfter(refused) - expected) <= 2, `Retry-After ${refused.headers['retry-after']} vs ${expected}`);
    assert.equal((await recordOf(h, refused.id)).event.reason, 'quota.exceeded');
  });

  test('max_concurrent: a second request while one is in flight gets 429 concurrency_limited; the slot comes back', async () => {
    const slow = call(h, '/slow/600', keys['serial']!.key);
    const deadline = Date.now() + 3000;
    while (!h.upstream.seen.some((entry) => entry.path === '/slow/600')) {
      assert.ok(Date.now() < deadline, 'the slow request reached the upstream');
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const refused = await call(h, '/slow/0', keys['serial']!.key);
    assertProblem(refused, 429, 'concurrency_limited');
    assert.equal(retryAfter(refused), 1);
    assert.equal((await recordOf(h, refused.id)).event.reason, 'concurrency.exceeded');
    assert.equal((await call(h, '/orders', keys['plain']!.key)).status, 200, 'another partner is not affected');
    assert.equal((await slow).status, 200);
    // The slot is freed when the exchange is recorded, just after the response.
    let after = await call(h, '/slow/0', keys['serial']!.key);
    for (let i = 0; i < 20 && after.status === 429; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      after = await call(h, '/slow/0', keys['serial']!.key);
    }
    assert.equal(after.status, 200);
  });

  test('a credential used outside its partner\'s source networks: 403, flagged on the record, logged', async () => {
    const refused = await call(h, '/orders', keys['fenced']!.key, '127.0.0.1');
    assertProblem(refused, 403, 'source_not_allowed');
    const record = await recordOf(h, refused.id);
    assert.equal(record.event.reason, 'partner.source_network');
    assert.deepEqual(record.portcullis.flags, ['source_network_violation']);
    assert.equal(record.portcullis.upstream.called, false);
    const warning = h.logLines.find((line) => line.event === 'partner.source_network_violation');
    assert.ok(warning, 'a warn line');
    assert.equal(warning.level, 'warn');
    assert.equal(warning['credential'], 'fenced-key');
    assert.equal(JSON.stringify(h.logLines).includes(keys['fenced']!.key), false, 'the key is never logged');

    const allowed = await call(h, '/orders', keys['fenced']!.key, '127.0.0.2');
    assert.equal(allowed.status, 200, 'from inside the network');
    assert.deepEqual((await recordOf(h, allowed.id)).portcullis.flags, []);
  });

  // Last in this group: it blocks 127.0.0.3 for a minute.
  test('an address is blocked after max + 1 authentication failures, even with a valid key; others are not', async () => {
    const forged = generateApiKey().key;
    const failures: Answer[] = [];
    for (let i = 0; i < 4; i++) failures.push(await call(h, '/orders', forged, '127.0.0.3'));
    for (const failure of failures) assertProblem(failure, 401, 'invalid_api_key');
    // The guard counts each failure when its record is written, just after the response.
    await recordOf(h, failures.at(-1)!.id);
    const blocked = await call(h, '/orders', keys['plain']!.key, '127.0.0.3');
    assertProblem(blocked, 429, 'temporarily_blocked');
    const seconds = retryAfter(blocked);
    assert.ok(seconds > 55 && seconds <= 60, `Retry-After ${seconds}`);
    const record = await recordOf(h, blocked.id);
    assert.equal(record.event.reason, 'abuse.source_blocked');
    assert.equal(record.portcullis.credential ?? null, null, 'refused before the credential was checked');
    const warning = h.logLines.find((line) => line.event === 'abuse.source_blocked');
    assert.ok(warning);
    assert.equal(warning['source'], '127.0.0.3');
    assert.equal(JSON.stringify(h.logLines).includes(forged), false, 'the presented key is never logged');

    assert.equal((await call(h, '/orders', keys['plain']!.key, '127.0.0.1')).status, 200, 'another address is served');
  });
});

describe('RateLimit fields, when enabled', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness(`${ROUTES}
partners:${partner('paced', [credential('paced-key', keys['paced']!)], '\n    rate_limit: { rate: 60/m, burst: 1 }')}
rate_limits:
  headers: { enabled: true, acknowledge: "${INSECURE_ACKS.rateLimitHeaders}" }
`);
  });
  after(async () => h?.close());

  test('forwarded responses and 429s carry RateLimit-Policy and RateLimit', async () => {
    const first = await call(h, '/orders', keys['paced']!.key);
    assert.equal(first.status, 200);
    assert.equal(first.headers['ratelimit-policy'], '"partner";q=60;w=60');
    assert.match(first.headers['ratelimit'] as string, /^"partner";r=1;t=[12]$/);
    assert.equal((await call(h, '/orders', keys['paced']!.key)).status, 200);
    const refused = await call(h, '/orders', keys['paced']!.key);
    assertProblem(refused, 429, 'rate_limited');
    retryAfter(refused);
    assert.equal(refused.headers['ratelimit-policy'], '"partner";q=60;w=60');
    assert.match(refused.headers['ratelimit'] as string, /^"partner";r=0;t=[12]$/);
  });
});
