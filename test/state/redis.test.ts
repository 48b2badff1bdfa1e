// The Redis state driver against a real redis-server (one per file, a fresh key prefix per
// store): the shared contract, then what only Redis shows — acknowledged propagation across
// three instances, the Lua GCRA matching gcraStep exactly, exact counters under concurrency,
// and fail-closed behaviour when the subscriber connection or the whole server goes away.
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { createClient } from 'redis';
import { RedisStateError, openRedisStore } from '../../src/state/redis.ts';
import type { RedisStoreOptions } from '../../src/state/redis.ts';
import { gcraStep } from '../../src/state/gcra.ts';
import type { GcraLimit, StateEvent, StateStore } from '../../src/state/store.ts';
import { setLogListener } from '../../src/log.ts';
import { startRedisServer } from '../helpers/redis-server.ts';
import type { RedisServer } from '../helpers/redis-server.ts';
import { partnerChange, revocation, stateStoreContract, view } from './contract.ts';

const HOUR_MS = 3_600_000;

let redis: RedisServer;
/** A plain connection for looking at (and tampering with) what the driver keeps in Redis. */
let admin: ReturnType<typeof createClient>;
const logLines: Array<{ level: string; event: string; [key: string]: unknown }> = [];
const prefixOf = new WeakMap<StateStore, string>();
const opened = new Set<StateStore>();

before(async () => {
  setLogListener((entry) => logLines.push(entry), { quiet: true });
  redis = await startRedisServer();
  admin = createClient({ url: redis.url, socket: { reconnectStrategy: 50 } });
  admin.on('error', () => {
    // The outage tests stop the server under this connection; it reconnects by itself.
  });
  await admin.connect();
});
after(async () => {
  for (const store of opened) await store.close();
  admin?.destroy();
  await redis?.stop();
  setLogListener(null, { quiet: false });
});

function freshPrefix(): string {
  return `t${randomBytes(6).toString('hex')}:`;
}

function optionsFor(prefix: string, overrides: Partial<RedisStoreOptions> = {}): RedisStoreOptions {
  return {
    mode: 'single',
    url: redis.url,
    sentinel: null,
    clusterNodes: [],
    keyPrefix: prefix,
    connectTimeoutMs: 2000,
    commandTimeoutMs: 1000,
    serveLastKnownForMs: null,
    propagationTimeoutMs: 1000,
    ...overrides,
  };
}

/** A store on a fresh prefix, or on the prefix of `peerOf` (another instance of the same deployment). */
async function open(peerOf?: StateStore, overrides: Partial<RedisStoreOptions> = {}): Promise<StateStore> {
  const prefix = overrides.keyPrefix ?? (peerOf === undefined ? freshPrefix() : prefixOf.get(peerOf));
  assert.ok(prefix !== undefined, 'a peer of a store this factory opened');
  const store = await openRedisStore(optionsFor(prefix, overrides));
  prefixOf.set(store, prefix);
  opened.add(store);
  return store;
}

stateStoreContract('redis', (peerOf) => open(peerOf), { propagationDeadlineMs: 1000 });

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await check()) return Date.now() - started;
    if (Date.now() - started > timeoutMs) assert.fail(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function available(store: StateStore): boolean {
  return !('unavailable' in store.revocations.current());
}

/** Log events of one instance since `from` (an index into logLines). */
function logEventsOf(store: StateStore, from: number): string[] {
  return logLines.slice(from).filter((line) => line['instance'] === store.instanceId).map((line) => line.event);
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

describe('redis driver', () => {
  afterEach(async () => {
    for (const store of opened) await store.close();
    opened.clear();
  });

  describe('propagation with acknowledgements', () => {
    test('a change through one of three instances resolves acknowledged by all three, and the others refuse at once', async () => {
      const a = await open();
      const b = await open(a);
      const c = await open(a);
      const heardByB: StateEvent[] = [];
      b.subscribe((event) => heardByB.push(event));

      const token = revocation('token', 'jti-everywhere', { expiresAt: Date.now() + HOUR_MS });
      const revoked = await a.revoke(token);
      assert.deepEqual([revoked.instances, revoked.acknowledged], [3, 3]);
      // No wait of any kind: the promise resolving is the guarantee.
      assert.deepEqual(view(b).revoked('token', 'jti-everywhere'), token);
      assert.deepEqual(view(c).revoked('token', 'jti-everywhere'), token);
      assert.deepEqual(heardByB, [{ type: 'revoked', revocation: token }]);

      const removed = await b.unrevoke('token', 'jti-everywhere', 'admin:undo');
      assert.equal(removed.removed, true);
      assert.deepEqual([removed.propagation.instances, removed.propagation.acknowledged], [3, 3]);
      assert.equal(view(a).revoked('token', 'jti-everywhere'), undefined);
      assert.equal(view(c).revoked('token', 'jti-everywhere'), undefined);

      const suspended = partnerChange('acme', 'suspended');
      const status = await c.setPartnerStatus('acme', suspended, 'admin:ops');
      assert.deepEqual([status.instances, status.acknowledged], [3, 3]);
      assert.deepEqual(view(a).partnerStatus('acme'), suspended);
      assert.deepEqual(view(b).partnerStatus('acme'), suspended);
    });

    test('200 revocations: every one acknowledged by all 3 instances (p50/p99 reported)', async (t) => {
      const a = await open();
      const b = await open(a);
      const c = await open(a);
      const elapsed: number[] = [];
      for (let n = 0; n < 200; n++) {
        const propagation = await a.revoke(revocation('token', `jti-bulk-${n}`, { expiresAt: Date.now() + HOUR_MS }));
        assert.deepEqual([propagation.instances, propagation.acknowledged], [3, 3], `revocation ${n}`);
        elapsed.push(propagation.elapsedMs);
        assert.ok(view(b).revoked('token', `jti-bulk-${n}`) && view(c).revoked('token', `jti-bulk-${n}`));
      }
      elapsed.sort((x, y) => x - y);
      const p50 = percentile(elapsed, 50);
      const p99 = percentile(elapsed, 99);
      t.diagnostic(`revocation acknowledged by 3 instances: p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms, max ${elapsed.at(-1)!.toFixed(2)} ms (200 revocations)`);
      // A sanity bound only; the point is the acknowledgement, not the speed of this machine.
      assert.ok(p99 < 500, `p99 ${p99} ms`);
    });

    test('a live instance that does not acknowledge: the change returns after propagationTimeoutMs and says so', async () => {
      const a = await open(undefined, { propagationTimeoutMs: 200 });
      const prefix = prefixOf.get(a)!;
      // Registered as live, never answers: what a hung instance looks like.
      await admin.zAdd(`${prefix}{state}:instances`, { score: Date.now() + 60_000, value: 'hung-instance' });
      const propagation = await a.revoke(revocation('credential', 'acme-idp'));
      assert.deepEqual([propagation.instances, propagation.acknowledged], [2, 1]);
      assert.ok(propagation.elapsedMs >= 190 && propagation.elapsedMs < 1000, `${propagation.elapsedMs} ms`);
    });

    test('an instance that closed is no longer waited for; close() unregisters it', async () => {
      const a = await open();
      const b = await open(a);
      const registry = `${prefixOf.get(a)!}{state}:instances`;
      assert.notEqual(await admin.zScore(registry, b.instanceId), null);
      await b.close();
      assert.equal(await admin.zScore(registry, b.instanceId), null);
      const propagation = await a.revoke(revocation('credential', 'acme-idp'));
      assert.deepEqual([propagation.instances, propagation.acknowledged], [1, 1]);
      assert.ok(propagation.elapsedMs < 200, 'nothing to wait for');
    });
  });

  describe('counters', () => {
    test('the Lua GCRA computes exactly what gcraStep computes (fractional intervals and times too)', async () => {
      const store = await open();
      const limits: GcraLimit[] = [
        { emissionIntervalMs: 1000 / 3, burst: 2 },
        { emissionIntervalMs: 100, burst: 0 },
        { emissionIntervalMs: 7.5, burst: 5 },
        { emissionIntervalMs: 60_000, burst: 9 },
      ];
      // A fixed pseudo-random walk, so a failure reproduces.
      let seed = 20_260_101;
      const random = (): number => {
        seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
        return seed / 2 ** 31;
      };
      for (const [index, limit] of limits.entries()) {
        let tat: number | null = null;
        let now = Date.now();
        for (let step = 0; step < 60; step++) {
          const jump = random();
          now += jump < 0.3 ? 0 : jump < 0.5 ? 0.25 : Math.floor(jump * limit.emissionIntervalMs * 1.5);
          const expected = gcraStep(tat, now, limit);
          const actual = await store.gcra(`compare-${index}`, limit, now);
          assert.deepEqual(actual, expected.result, `limit ${index}, step ${step}, now ${now}`);
          if (expected.newTat !== null) tat = expected.newTat;
        }
      }
    });

    test('the bucket key expires when the bucket is full again', async () => {
      const store = await open();
      const result = await store.gcra('expiring', { emissionIntervalMs: 5_000, burst: 3 }, Date.now());
      const ttl = await admin.pTTL(`${prefixOf.get(store)!}gcra:expiring`);
      assert.ok(ttl > 0 && ttl <= result.resetMs, `PTTL ${ttl}, resetMs ${result.resetMs}`);
    });

    test('exact across three instances: 3 × 100 concurrent calls with burst 9 allow exactly 10', async () => {
      const a = await open();
      const stores = [a, await open(a), await open(a)];
      const limit = { emissionIntervalMs: 60_000, burst: 9 };
      const now = Date.now();
      const results = await Promise.all(stores.flatMap((store) => Array.from({ length: 100 }, () => store.gcra('shared-burst', limit, now))));
      assert.equal(results.length, 300);
      assert.equal(results.filter((result) => result.allowed).length, 10);
      assert.deepEqual(
        results.filter((result) => result.allowed).map((result) => result.remaining).sort((x, y) => x - y),
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      );
    });

    test('without nowMs the Redis clock counts (one clock for every instance)', async () => {
      const store = await open();
      const limit = { emissionIntervalMs: 60_000, burst: 0 };
      assert.equal((await store.gcra('server-clock', limit)).allowed, true);
      const refused = await store.gcra('server-clock', limit);
      assert.equal(refused.allowed, false);
      assert.ok(refused.retryAfterMs > 59_000 && refused.retryAfterMs <= 60_000, `${refused.retryAfterMs}`);
    });

    test('quota: exact across three instances, the counter expires a day after its window', async () => {
      const a = await open();
      const stores = [a, await open(a), await open(a)];
      const windowEnd = Date.now() + HOUR_MS;
      const results = await Promise.all(stores.flatMap((store) => Array.from({ length: 30 }, () => store.quota('acme:monthly', 20, windowEnd))));
      assert.equal(results.filter((result) => result.allowed).length, 20);
      assert.equal((await a.quota('acme:monthly', 20, windowEnd)).used, 20, 'the 70 refusals were not counted');
      const ttl = await admin.pTTL(`${prefixOf.get(a)!}quota:${windowEnd}:acme:monthly`);
      const expected = windowEnd + 86_400_000 - Date.now();
      assert.ok(Math.abs(ttl - expected) < 5_000, `PTTL ${ttl}, expected about ${expected}`);
    });
  });

  describe('keys and channels', () => {
    test('every key and channel carries the prefix; the revocation keys share one hash tag', async () => {
      const store = await open();
      const prefix = prefixOf.get(store)!;
      await store.revoke(revocation('token', 'jti-1', { expiresAt: Date.now() + HOUR_MS }));
      await store.setPartnerStatus('acme', partnerChange('acme', 'suspended'), 'admin:ops');
      await store.gcra('g', { emissionIntervalMs: 1000, burst: 1 });
      await store.quota('q', 5, Date.now() + HOUR_MS);
      await store.set('kv', 'value', null);
      await store.setIfAbsent('once', 60_000);
      const keys = (await admin.keys(`${prefix}*`)).sort();
      assert.deepEqual(
        keys.map((key) => key.slice(prefix.length).replace(/^quota:\d+:/, 'quota:<end>:')),
        [
          'gcra:g',
          'kv:kv',
          'kv:once',
          'quota:<end>:q',
          '{state}:instances',
          '{state}:partners',
          '{state}:revocation-expiries',
          '{state}:revocations',
          '{state}:version',
        ],
      );
      const channels = (await admin.sendCommand(['PUBSUB', 'CHANNELS', `${prefix}*`])) as string[];
      assert.deepEqual([...channels].sort(), [`${prefix}acks`, `${prefix}events`]);
    });
  });

  describe('failures', () => {
    test('a command without an answer within commandTimeoutMs rejects; health says so, then recovers', async () => {
      const store = await open(undefined, { commandTimeoutMs: 100 });
      await admin.sendCommand(['CLIENT', 'PAUSE', '500', 'ALL']);
      const started = Date.now();
      await assert.rejects(store.get('anything'), (error: Error) => error instanceof RedisStateError && /no answer within 100 ms/.test(error.message));
      assert.ok(Date.now() - started < 450, `rejected after ${Date.now() - started} ms, before the pause ended`);
      assert.equal(store.health().ok, false);
      assert.match(store.health().detail, /commands failing/);
      await waitFor(
        'healthy again after the pause',
        async () => {
          try {
            await store.get('anything');
          } catch {
            return false;
          }
          return store.health().ok;
        },
        5_000,
      );
    });

    test('subscriber connection killed: unavailable until reloaded; a revocation made meanwhile is there afterwards', async () => {
      const a = await open();
      const b = await open(a);
      const heardByA: StateEvent[] = [];
      a.subscribe((event) => heardByA.push(event));
      const clients = (await admin.sendCommand(['CLIENT', 'LIST'])) as string;
      const line = clients.split('\n').find((entry) => entry.includes(` name=portcullis-sub-${a.instanceId} `));
      assert.ok(line, 'the subscriber connection is named after the instance');
      const id = /(?:^|\s)id=(\d+)/.exec(line)![1]!;
      const logFrom = logLines.length;

      await admin.sendCommand(['CLIENT', 'KILL', 'ID', id]);
      // Redis has closed the connection before answering: this is published while A cannot hear it.
      const entry = revocation('credential', 'revoked-while-deaf');
      await b.revoke(entry);

      await waitFor('A available with the revocation', () => available(a) && view(a).revoked('credential', 'revoked-while-deaf') !== undefined, 5_000);
      assert.deepEqual(view(a).revoked('credential', 'revoked-while-deaf'), entry);
      assert.deepEqual(heardByA, [{ type: 'revoked', revocation: entry }], 'heard once (from the reload)');
      assert.deepEqual(logEventsOf(a, logFrom), ['state.redis.unavailable', 'state.redis.recovered']);
      assert.equal(a.health().ok, true);
      // And the new subscription works: pushed and acknowledged again.
      const propagation = await b.revoke(revocation('credential', 'after-reconnect'));
      assert.deepEqual([propagation.instances, propagation.acknowledged], [2, 2]);
      assert.ok(view(a).revoked('credential', 'after-reconnect'));
    });

    test('a forged event that skips versions is not trusted: the store reloads from Redis', async () => {
      const store = await open();
      const prefix = prefixOf.get(store)!;
      await store.revoke(revocation('credential', 'real'));
      const logFrom = logLines.length;
      const forged = { v: 999, id: 'forged', origin: 'intruder', event: { type: 'revoked', revocation: revocation('credential', 'forged') } };
      await admin.publish(`${prefix}events`, JSON.stringify(forged));
      await admin.publish(`${prefix}events`, 'not json at all');
      await waitFor(
        'reloaded, and the garbage reported',
        () => ['state.redis.recovered', 'state.redis.event_unreadable'].every((event) => logEventsOf(store, logFrom).includes(event)),
        2_000,
      );
      assert.equal(view(store).revoked('credential', 'forged'), undefined);
      assert.ok(view(store).revoked('credential', 'real'));
    });

    test('an unreadable entry in Redis still revokes what it names, and an unreadable status suspends (fail closed)', async () => {
      const prefix = freshPrefix();
      await admin.hSet(`${prefix}{state}:revocations`, 'token:jti-garbled', '{not json');
      await admin.hSet(`${prefix}{state}:partners`, 'acme', '{"status":"active"}');
      const logFrom = logLines.length;
      const store = await open(undefined, { keyPrefix: prefix });
      assert.match(view(store).revoked('token', 'jti-garbled')?.reason ?? '', /unreadable/);
      assert.equal(view(store).partnerStatus('acme')?.status, 'suspended');
      assert.equal(logLines.slice(logFrom).filter((line) => line.event === 'state.redis.entry_unreadable').length, 2);
    });

    test('opening fails clearly, in connectTimeoutMs, when Redis cannot be reached, and never shows the password', async () => {
      const probe = createServer();
      await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
      const { port } = probe.address() as AddressInfo;
      await new Promise<void>((resolve) => probe.close(() => resolve()));
      const started = Date.now();
      await assert.rejects(
        openRedisStore(optionsFor(freshPrefix(), { url: `redis://gateway:s3cret-pw@127.0.0.1:${port}`, connectTimeoutMs: 300 })),
        (error: Error) => {
          assert.match(error.message, new RegExp(`127\\.0\\.0\\.1:${port}.*not established within 300 ms`));
          assert.ok(!error.message.includes('s3cret'), error.message);
          return true;
        },
      );
      assert.ok(Date.now() - started < 1_500, `${Date.now() - started} ms`);
    });

    test('Redis hung (SIGSTOP: connections open, no answers): refused within a heartbeat plus commandTimeoutMs; back after SIGCONT', async () => {
      const store = await open(undefined, { commandTimeoutMs: 200 });
      await store.revoke(revocation('credential', 'before-hang'));
      process.kill(redis.pid, 'SIGSTOP');
      try {
        const refusedAfter = await waitFor('unavailable', () => !available(store), 3_000);
        assert.ok(refusedAfter < 1_200 + 200, `refused after ${refusedAfter} ms`);
        const started = Date.now();
        await assert.rejects(store.get('k'), /no answer within 200 ms|offline|closed/);
        assert.ok(Date.now() - started < 400);
      } finally {
        process.kill(redis.pid, 'SIGCONT');
      }
      await waitFor('available again', () => available(store) && store.health().ok, 5_000);
      assert.ok(view(store).revoked('credential', 'before-hang'));
      const propagation = await store.revoke(revocation('credential', 'after-hang'));
      assert.deepEqual([propagation.instances, propagation.acknowledged], [1, 1]);
    });

    // These two stop the server; each brings it back (empty: the test server has no persistence).
    test('Redis stopped: unavailable, unhealthy and commands reject; restarted: available again', async () => {
      const a = await open();
      const b = await open(a);
      await a.revoke(revocation('credential', 'before-outage'));
      const logFrom = logLines.length;

      await redis.stop();
      const detectedIn = await waitFor('unavailable', () => !available(a) && !available(b), 2_000);
      const current = a.revocations.current();
      assert.ok('unavailable' in current);
      assert.match(current.unavailable, /cannot be confirmed/);
      assert.equal(a.health().ok, false);
      assert.match(a.health().detail, /fail closed/);
      await assert.rejects(a.get('k'), RedisStateError);
      await assert.rejects(a.revoke(revocation('credential', 'during-outage')), RedisStateError);
      assert.ok(detectedIn < 1_000, `detected after ${detectedIn} ms`);

      await redis.restart();
      await waitFor('available again', () => available(a) && available(b) && a.health().ok && b.health().ok, 5_000);
      const registry = `${prefixOf.get(a)!}{state}:instances`;
      await waitFor('both registered again', async () => (await admin.zCard(registry)) === 2, 2_000);
      const propagation = await b.revoke(revocation('credential', 'after-outage'));
      assert.deepEqual([propagation.instances, propagation.acknowledged], [2, 2]);
      assert.ok(view(a).revoked('credential', 'after-outage'));
      // Whichever connection notices first, the outage and the recovery are each logged once.
      const events = logEventsOf(a, logFrom);
      assert.deepEqual(events.filter((event) => event === 'state.redis.unavailable' || event === 'state.redis.recovered'), ['state.redis.unavailable', 'state.redis.recovered']);
      assert.ok(events.includes('state.redis.version_regressed'), 'the lost state (no persistence) is reported');
    });

    test('serveLastKnownForMs: the last known set is served for that long during an outage, then refused', async () => {
      const store = await open(undefined, { serveLastKnownForMs: 500 });
      await store.revoke(revocation('credential', 'known'));
      const logFrom = logLines.length;

      await redis.stop();
      await waitFor('unhealthy', () => /serving last known state/.test(store.health().detail), 2_000);
      assert.ok(view(store).revoked('credential', 'known'), 'still served');
      assert.match(store.health().detail, /serving last known state/);
      const servedFor = await waitFor('refused after the grace', () => !available(store), 3_000);
      assert.ok(servedFor >= 400 && servedFor < 1_500, `served for ${servedFor} ms after the outage was noticed`);
      assert.match(store.health().detail, /fail closed/);

      await redis.restart();
      await waitFor('available again', () => available(store) && store.health().ok, 5_000);
      assert.deepEqual(
        logEventsOf(store, logFrom).filter((event) => event !== 'state.redis.commands_failing' && event !== 'state.redis.version_regressed'),
        ['state.redis.serving_last_known', 'state.redis.unavailable', 'state.redis.recovered'],
        'serving, then refusing, then back: each logged once',
      );
    });
  });
});
