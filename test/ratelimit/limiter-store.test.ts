// The limiter on the real embedded state store (node:sqlite in a temp folder): shared mode is
// exact across limiter instances (as across gateway processes), counters live under the keys of
// the authenticated identity, and quotas hold across a reopen of the store.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openEmbeddedStore } from '../../src/state/embedded.ts';
import type { StateStore } from '../../src/state/store.ts';
import { RateLimiter } from '../../src/ratelimit/limiter.ts';
import { windowEnd } from '../../src/ratelimit/calendar.ts';
import type { CompiledRoute, Snapshot } from '../../src/config/snapshot.ts';
import { INSECURE_ACKS } from '../../src/config/schema.ts';
import { BASE_CONFIG, apiKeyCredential, loadSnapshot } from './snapshot.ts';

const CONFIG = `${BASE_CONFIG}
routes:
  - { id: orders, zone: partner, methods: [GET], path: /orders, upstream: sample, api: orders, credentials: [api_key] }
  - { id: orders-create, zone: partner, methods: [POST], path: /orders, upstream: sample, api: orders, credentials: [api_key], rate_limit: { rate: 1/m, per: credential } }
partners:
  - id: acme
    agreement: { id: AGR-1, expires: 2099-12-31 }
    rate_limit: { rate: 10/s, burst: 4 }
    credentials:
      - ${apiKeyCredential('acme-a', 'aaaaaaaaaaaa', ', rate_limit: { rate: 1/m, burst: 1 }')}
      - ${apiKeyCredential('acme-b', 'bbbbbbbbbbbb')}
    grants:
      - { api: orders }
  - id: initech
    agreement: { id: AGR-3, expires: 2099-12-31 }
    rate_limit: { rate: 1/h }
    quotas:
      - { limit: 3, per: day, timezone: Europe/Berlin }
      - { limit: 100, per: month }
    credentials:
      - ${apiKeyCredential('initech-a', 'eeeeeeeeeeee')}
    grants:
      - { api: orders }
rate_limits:
  mode: shared
  headers: { enabled: true, acknowledge: "${INSECURE_ACKS.rateLimitHeaders}" }
`;

let dir: string;
let snapshot: Snapshot;
const stores: StateStore[] = [];

async function open(name = 'state.sqlite'): Promise<StateStore> {
  const store = await openEmbeddedStore({ path: join(dir, name), propagationTimeoutMs: 200 });
  stores.push(store);
  return store;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portcullis-limiter-store-'));
  snapshot = await loadSnapshot(CONFIG);
});
after(async () => {
  for (const store of stores) await store.close().catch(() => {});
  await rm(dir, { recursive: true, force: true });
});

function inputFor(partnerId: string, credentialId: string, routeId: string) {
  const partner = snapshot.partners.get(partnerId)!;
  const credential = [...snapshot.credentials.apiKeys.values()].find((entry) => entry.id === credentialId)!;
  const route = snapshot.routes.find((entry) => entry.id === routeId) as CompiledRoute;
  return { snapshot, partner, credential, route };
}

test('shared mode is exact across instances: two limiters on two connections allow burst + 1 in total', async () => {
  const [storeA, storeB] = [await open('exact.sqlite'), await open('exact.sqlite')];
  const now = 10_000_000;
  const limiters = [new RateLimiter(storeA, { now: () => now }), new RateLimiter(storeB, { now: () => now })];
  const input = inputFor('acme', 'acme-b', 'orders');
  const decisions = await Promise.all(Array.from({ length: 40 }, (_, i) => limiters[i % 2]!.check(input)));
  assert.equal(decisions.filter((decision) => decision.allowed).length, 5);
  const refused = decisions.find((decision) => !decision.allowed)!;
  assert.ok(!refused.allowed && refused.reason === 'ratelimit.exceeded' && refused.retryAfterSeconds === 1);
});

test('counters live under the authenticated identity\'s keys', async () => {
  const store = await open('keys.sqlite');
  const now = 20_000_000;
  const limiter = new RateLimiter(store, { now: () => now });
  assert.equal((await limiter.check(inputFor('acme', 'acme-a', 'orders-create'))).allowed, true);
  const once = { emissionIntervalMs: 3_600_000, burst: 0 };
  // Each key now has a used bucket; unrelated keys have full ones.
  assert.equal((await store.gcra('p:acme', once, now)).allowed, false, 'partner key p:<partner>');
  assert.equal((await store.gcra('c:acme-a', once, now)).allowed, false, 'credential key c:<credential>');
  assert.equal((await store.gcra('r:orders-create:c:acme-a', once, now)).allowed, false, 'route key per credential');
  assert.equal((await store.gcra('r:orders-create:c:acme-b', once, now)).allowed, true);
  assert.equal((await store.gcra('r:orders-create:p:acme', once, now)).allowed, true);
});

test('quotas: refused once used up, with Retry-After to the local midnight; rate-limited requests do not count; kept across a reopen', async () => {
  let store = await open('quota.sqlite');
  // The store forgets windows that ended by its wall clock, so the test day lies in the future:
  // 10:00 in Berlin (UTC+2 in May) on 4 May two years from now; the window ends at 22:00Z.
  const year = new Date().getUTCFullYear() + 2;
  let now = Date.parse(`${year}-05-04T08:00:00.000Z`);
  const dayEnd = windowEnd('day', 'Europe/Berlin', now);
  assert.equal(new Date(dayEnd).toISOString(), `${year}-05-04T22:00:00.000Z`);
  let limiter = new RateLimiter(store, { now: () => now });
  const input = inputFor('initech', 'initech-a', 'orders');

  const first = await limiter.check(input);
  assert.equal(first.allowed, true);
  // The day quota (2 left) constrains more than the month's (99) and the hourly rate (0 left, 1 h).
  assert.deepEqual(first.headers, { 'ratelimit-policy': '"partner";q=1;w=3600', 'ratelimit': '"partner";r=0;t=3600' });
  // Within the hour the rate limit refuses, and the quota is not touched.
  for (let i = 0; i < 5; i++) {
    const refused = await limiter.check(input);
    assert.ok(!refused.allowed && refused.reason === 'ratelimit.exceeded');
  }
  now += 3_600_000;
  const second = await limiter.check(input);
  assert.equal(second.allowed, true, 'the rate-limited calls did not use the quota');
  now += 3_600_000;
  assert.equal((await limiter.check(input)).allowed, true);

  // The store is closed and opened again (a restart): the day's count is still there.
  await store.close();
  store = await open('quota.sqlite');
  limiter = new RateLimiter(store, { now: () => now });
  now += 3_600_000;
  const exhausted = await limiter.check(input);
  assert.equal(exhausted.allowed, false);
  if (!exhausted.allowed) {
    assert.equal(exhausted.reason, 'quota.exceeded');
    const expected = Math.ceil((dayEnd - now) / 1000);
    assert.equal(exhausted.retryAfterSeconds, expected);
    assert.deepEqual(exhausted.headers, { 'retry-after': String(expected), 'ratelimit-policy': '"day";q=3', 'ratelimit': `"day";r=0;t=${expected}` });
    assert.ok(exhausted.detail.includes(`partner initech quota of 3 per day (Europe/Berlin) exhausted until ${year}-05-04T22:00:00.000Z`));
  }
  // After the local midnight a new window begins (the month's count carries on).
  now = dayEnd + 1;
  const nextDay = await limiter.check(input);
  assert.equal(nextDay.allowed, true);
  assert.deepEqual(await store.quota('q:initech:month', 100, windowEnd('month', 'UTC', now), now), {
    allowed: true,
    used: 5,
    limit: 100,
    resetAt: Date.parse(`${year}-06-01T00:00:00.000Z`),
  });
});

test('a closed store fails closed: 503 state.unavailable', async () => {
  const store = await open('closed.sqlite');
  await store.close();
  const decision = await new RateLimiter(store).check(inputFor('acme', 'acme-b', 'orders'));
  assert.equal(decision.allowed, false);
  if (!decision.allowed) {
    assert.equal(decision.reason, 'state.unavailable');
    assert.equal(decision.headers?.['retry-after'], '5');
  }
});
