// The limiter on real compiled configurations: which limits apply and in which order, the keys
// they count under, the answers (429 with Retry-After, RateLimit headers only when enabled), the
// synchronous local path, and failing closed when the state store fails.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { RateLimiter } from '../../src/ratelimit/limiter.ts';
import type { RateDecision } from '../../src/ratelimit/limiter.ts';
import type { CompiledRoute, Snapshot } from '../../src/config/snapshot.ts';
import type { StateStore } from '../../src/state/store.ts';
import { INSECURE_ACKS } from '../../src/config/schema.ts';
import { BASE_CONFIG, apiKeyCredential, loadSnapshot } from './snapshot.ts';

const LIMITS = `
routes:
  - { id: orders, zone: partner, methods: [GET], path: /orders, upstream: sample, api: orders, credentials: [api_key] }
  - { id: orders-create, zone: partner, methods: [POST], path: /orders, upstream: sample, api: orders, credentials: [api_key], rate_limit: { rate: 1/s, burst: 1, per: credential } }
  - { id: reports, zone: partner, methods: [GET], path: /reports, upstream: sample, api: orders, credentials: [api_key], rate_limit: { rate: 2/m } }
partners:
  - id: acme
    tier: gold
    agreement: { id: AGR-1, expires: 2099-12-31 }
    credentials:
      - ${apiKeyCredential('acme-a', 'aaaaaaaaaaaa', ', rate_limit: { rate: 5/s, burst: 2 }')}
      - ${apiKeyCredential('acme-b', 'bbbbbbbbbbbb')}
      - ${apiKeyCredential('acme-c', 'cccccccccccc')}
    grants:
      - { api: orders }
  - id: globex
    agreement: { id: AGR-2, expires: 2099-12-31 }
    rate_limit: { rate: 100/s, burst: 100 }
    credentials:
      - ${apiKeyCredential('globex-a', 'dddddddddddd')}
    grants:
      - { api: orders }
  - id: initech
    agreement: { id: AGR-3, expires: 2099-12-31 }
    quotas:
      - { limit: 2, per: day, timezone: Europe/Berlin }
    credentials:
      - ${apiKeyCredential('initech-a', 'eeeeeeeeeeee')}
    grants:
      - { api: orders }
`;
const TIERS = `
  tiers:
    gold: { rate_limit: { rate: 10/s, burst: 4 }, max_concurrent: 2 }
    standard: {}
`;

let local: Snapshot;
let shared: Snapshot;
let withHeaders: Snapshot;

before(async () => {
  local = await loadSnapshot(`${BASE_CONFIG}${LIMITS}\nrate_limits:\n  mode: local${TIERS}`);
  shared = await loadSnapshot(`${BASE_CONFIG}${LIMITS}\nrate_limits:\n  mode: shared${TIERS}`);
  withHeaders = await loadSnapshot(
    `${BASE_CONFIG}${LIMITS}\nrate_limits:\n  mode: local${TIERS}  headers: { enabled: true, acknowledge: "${INSECURE_ACKS.rateLimitHeaders}" }\n`,
  );
});

/** A store that must not be used: local GCRA decisions never leave the process. */
function untouchableStore(): { store: StateStore; touched: string[] } {
  const touched: string[] = [];
  const store = new Proxy({} as StateStore, {
    get(_target, property) {
      touched.push(String(property));
      return () => {
        throw new Error(`the store was used (${String(property)})`);
      };
    },
  });
  return { store, touched };
}

/** A store whose every counter operation fails, as a lost Redis connection does. */
function failingStore(mode: 'reject' | 'throw'): StateStore {
  const fail = (): Promise<never> => {
    if (mode === 'throw') throw new Error('driver exploded');
    return Promise.reject(new Error('connection lost'));
  };
  return { gcra: fail, quota: fail } as unknown as StateStore;
}

function inputFor(snapshot: Snapshot, partnerId: string, credentialId: string, routeId: string) {
  const partner = snapshot.partners.get(partnerId)!;
  const credential = [...snapshot.credentials.apiKeys.values()].find((entry) => entry.id === credentialId)!;
  const route = snapshot.routes.find((entry) => entry.id === routeId) as CompiledRoute;
  assert.ok(partner && credential && route);
  return { snapshot, partner, credential, route };
}

function sync(decision: RateDecision | Promise<RateDecision>): RateDecision {
  assert.ok(!(decision instanceof Promise), 'local mode without quotas answers synchronously');
  return decision;
}

test('the compiled limits are the ones the limiter is given', () => {
  const acme = local.partners.get('acme')!;
  assert.deepEqual(acme.limits.rate, { text: '10/s', emissionIntervalMs: 100, burst: 4 });
  assert.equal(acme.limits.maxConcurrent, 2);
  assert.deepEqual(local.partners.get('initech')!.limits.quotas, [{ limit: 2, per: 'day', timezone: 'Europe/Berlin' }]);
  assert.deepEqual(local.rateLimits, { mode: 'local', headers: false });
  assert.deepEqual(withHeaders.rateLimits, { mode: 'local', headers: true });
});

test('the partner limit (its tier\'s) allows burst + 1, then refuses with Retry-After; local mode never touches the store', () => {
  const { store, touched } = untouchableStore();
  let now = 1_000_000;
  const limiter = new RateLimiter(store, { now: () => now });
  const input = inputFor(local, 'acme', 'acme-b', 'orders');
  for (let i = 0; i < 5; i++) assert.deepEqual(sync(limiter.check(input)), { allowed: true, headers: null }, `request ${i}`);
  const refused = sync(limiter.check(input));
  assert.equal(refused.allowed, false);
  if (refused.allowed) return;
  assert.equal(refused.reason, 'ratelimit.exceeded');
  assert.match(refused.detail, /partner acme rate limit 10\/s \(burst 4\) exceeded/);
  assert.equal(refused.retryAfterSeconds, 1);
  assert.deepEqual(refused.headers, { 'retry-after': '1' }, 'no RateLimit fields unless enabled');
  now += 99;
  assert.equal(sync(limiter.check(input)).allowed, false);
  now += 1;
  assert.equal(sync(limiter.check(input)).allowed, true, 'one interval later, one more');
  assert.deepEqual(touched, []);
});

test('partner first, then credential: a credential refusal has already counted against the partner', () => {
  const { store } = untouchableStore();
  const limiter = new RateLimiter(store, { now: () => 2_000_000 });
  const viaA = inputFor(local, 'acme', 'acme-a', 'orders');
  const viaB = inputFor(local, 'acme', 'acme-b', 'orders');
  // acme-a: 5/s burst 2 → three at once; the fourth passes the partner (10/s burst 4) and is
  // refused by the credential.
  for (let i = 0; i < 3; i++) assert.equal(sync(limiter.check(viaA)).allowed, true);
  const refused = sync(limiter.check(viaA));
  assert.equal(refused.allowed, false);
  if (!refused.allowed) assert.match(refused.detail, /^credential acme-a rate limit 5\/s \(burst 2\) exceeded$/);
  // The partner bucket (five at once) has counted four: acme-b gets one, then the partner refuses.
  assert.equal(sync(limiter.check(viaB)).allowed, true);
  const partnerRefusal = sync(limiter.check(viaB));
  assert.equal(partnerRefusal.allowed, false);
  if (!partnerRefusal.allowed) assert.match(partnerRefusal.detail, /^partner acme /);
});

test('a route limit per credential gives each credential its own bucket; per partner, one bucket for the partner', () => {
  const { store } = untouchableStore();
  const limiter = new RateLimiter(store, { now: () => 3_000_000 });
  // orders-create: 1/s burst 1 per credential.
  const createB = inputFor(local, 'acme', 'acme-b', 'orders-create');
  const createC = inputFor(local, 'acme', 'acme-c', 'orders-create');
  assert.equal(sync(limiter.check(createB)).allowed, true);
  assert.equal(sync(limiter.check(createB)).allowed, true);
  const refused = sync(limiter.check(createB));
  assert.equal(refused.allowed, false);
  if (!refused.allowed) assert.equal(refused.detail, 'route orders-create for credential acme-b rate limit 1/s (burst 1) exceeded');
  assert.equal(sync(limiter.check(createC)).allowed, true, 'acme-c has its own route bucket');

  // reports: 2/m per partner (the default): acme-b uses the partner's one request, acme-c is refused.
  const reportsB = inputFor(local, 'acme', 'acme-b', 'reports');
  const reportsC = inputFor(local, 'acme', 'acme-c', 'reports');
  const other = new RateLimiter(untouchableStore().store, { now: () => 3_000_000 });
  assert.equal(sync(other.check(reportsB)).allowed, true);
  const shared = sync(other.check(reportsC));
  assert.equal(shared.allowed, false);
  if (!shared.allowed) {
    assert.equal(shared.detail, 'route reports for partner acme rate limit 2/m exceeded');
    assert.equal(shared.retryAfterSeconds, 30);
    assert.equal(shared.headers!['retry-after'], '30');
  }
  assert.equal(sync(other.check(inputFor(local, 'globex', 'globex-a', 'reports'))).allowed, true, 'another partner, another bucket');
});

test('RateLimit-Policy and RateLimit describe the most constraining limit, only when enabled', () => {
  const limiter = new RateLimiter(untouchableStore().store, { now: () => 4_000_000 });
  const partnerOnly = sync(limiter.check(inputFor(withHeaders, 'acme', 'acme-b', 'orders')));
  assert.deepEqual(partnerOnly, { allowed: true, headers: { 'ratelimit-policy': '"partner";q=10;w=1', 'ratelimit': '"partner";r=4;t=1' } });
  // acme-a: the partner has 3 left after this one, the credential 2: the credential constrains.
  const both = sync(limiter.check(inputFor(withHeaders, 'acme', 'acme-a', 'orders')));
  assert.deepEqual(both, { allowed: true, headers: { 'ratelimit-policy': '"credential";q=5;w=1', 'ratelimit': '"credential";r=2;t=1' } });
  // reports (2/m, burst 0): after one request nothing is left until the bucket refills in 30 s.
  const route = sync(limiter.check(inputFor(withHeaders, 'globex', 'globex-a', 'reports')));
  assert.deepEqual(route.headers, { 'ratelimit-policy': '"route";q=2;w=60', 'ratelimit': '"route";r=0;t=30' });
  const refused = sync(limiter.check(inputFor(withHeaders, 'globex', 'globex-a', 'reports')));
  assert.deepEqual(refused.headers, { 'retry-after': '30', 'ratelimit-policy': '"route";q=2;w=60', 'ratelimit': '"route";r=0;t=30' });
  // With the fields off (the default), none at all.
  assert.deepEqual(sync(new RateLimiter(untouchableStore().store).check(inputFor(local, 'acme', 'acme-b', 'orders'))), { allowed: true, headers: null });
});

test('shared mode fails closed when the store rejects or throws: 503 state.unavailable with Retry-After', async () => {
  for (const mode of ['reject', 'throw'] as const) {
    const limiter = new RateLimiter(failingStore(mode));
    const pending = limiter.check(inputFor(shared, 'acme', 'acme-b', 'orders'));
    assert.ok(pending instanceof Promise, 'shared mode waits for the store');
    const decision = await pending;
    assert.equal(decision.allowed, false, mode);
    if (decision.allowed) continue;
    assert.equal(decision.reason, 'state.unavailable');
    assert.match(decision.detail, /rate-limit store failed on partner acme/);
    assert.deepEqual(decision.headers, { 'retry-after': '5' });
  }
});

test('quotas go through the store even in local mode, and fail closed with it', async () => {
  const limiter = new RateLimiter(failingStore('reject'));
  const pending = limiter.check(inputFor(local, 'initech', 'initech-a', 'orders'));
  assert.ok(pending instanceof Promise);
  const decision = await pending;
  assert.equal(decision.allowed, false);
  if (!decision.allowed) {
    assert.equal(decision.reason, 'state.unavailable');
    assert.match(decision.detail, /quota store failed for partner initech/);
  }
});

test('a request refused by a rate limit never reaches the quota', async () => {
  // Local GCRA refuses before the (failing) quota store would be asked: the answer is 429, not 503.
  const snapshot = await loadSnapshot(`${BASE_CONFIG}${LIMITS.replace('quotas:', 'rate_limit: { rate: 1/h }\n    quotas:')}`);
  const limiter = new RateLimiter(failingStore('reject'), { now: () => 5_000_000 });
  const input = inputFor(snapshot, 'initech', 'initech-a', 'orders');
  const first = await limiter.check(input);
  assert.equal(first.allowed, false, 'the first request passes the rate limit and reaches the failing quota store');
  if (!first.allowed) assert.equal(first.reason, 'state.unavailable');
  const second = limiter.check(input);
  assert.ok(!(second instanceof Promise), 'refused by the rate limit without a store round trip');
  assert.equal(second.allowed, false);
  if (!second.allowed) assert.equal(second.reason, 'ratelimit.exceeded');
});
