/**
 * The StateStore contract (STYLE.md item 16: one case table, every implementation): the cases
 * every driver must pass, whatever its backing. A driver's test file calls `stateStoreContract`
 * with a factory:
 *
 *   open()      → a store on a FRESH, isolated backing (new SQLite file, new Redis key prefix);
 *   open(peer)  → another instance on the SAME backing as `peer` (what another worker, another
 *                 host or the CLI would open), with its own instance id.
 *
 * Every store a case opens is closed by the case, pass or fail.
 *
 * Times: GCRA and quota cases pass explicit `nowMs` values based on the wall clock when the case
 * starts (never far in the past: a driver may expire entries by wall clock) and never sleep. TTL
 * cases use 50 ms TTLs and poll.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { PartnerStatusChange, Revocation, RevocationKind, RevocationSet, StateEvent, StateStore } from '../../src/state/store.ts';

export interface StateStoreContractOptions {
  /**
   * True when a peer must see another instance's change on its very next `current()` with no
   * wait at all (the embedded driver: `data_version`). Otherwise the change must show within
   * `propagationDeadlineMs`, polled every few ms (Redis: publish/subscribe).
   */
  readonly peerSeesChangesImmediately?: boolean;
  /** Default 1000 ms. */
  readonly propagationDeadlineMs?: number;
  /** Called in each poll round before a peer's view is read (e.g. to let a push be processed). */
  readonly settle?: (store: StateStore) => Promise<void>;
  /** How long to keep listening after the expected events arrived, to catch duplicates. Default 100 ms. */
  readonly quietPeriodMs?: number;
}

const POLL_INTERVAL_MS = 5;
const HOUR_MS = 3_600_000;

export function stateStoreContract(name: string, open: (peerOf?: StateStore) => Promise<StateStore>, options: StateStoreContractOptions = {}): void {
  const deadlineMs = options.propagationDeadlineMs ?? 1000;
  const quietMs = options.quietPeriodMs ?? 100;
  const immediate = options.peerSeesChangesImmediately ?? false;

  /** Runs a case with stores it opens through `openStore`, closing every one of them afterwards. */
  const withStores = async (body: (openStore: (peerOf?: StateStore) => Promise<StateStore>) => Promise<void>): Promise<void> => {
    const opened: StateStore[] = [];
    try {
      await body(async (peerOf) => {
        const store = await open(peerOf);
        opened.push(store);
        return store;
      });
    } finally {
      for (const store of opened.reverse()) await store.close();
    }
  };

  const eventually = async (what: string, store: StateStore | null, check: () => boolean): Promise<void> => {
    const deadline = Date.now() + deadlineMs;
    for (;;) {
      if (store !== null && options.settle !== undefined) await options.settle(store);
      if (check()) return;
      if (Date.now() > deadline) assert.fail(`${what}: not within ${deadlineMs} ms`);
      await sleep(POLL_INTERVAL_MS);
    }
  };

  /** A peer's view of a change: at once for immediate drivers, else within the deadline. */
  const peerSees = async (what: string, peer: StateStore, check: (set: RevocationSet) => boolean): Promise<void> => {
    if (immediate) {
      assert.ok(check(view(peer)), `${what}: not visible on the peer's next current()`);
      return;
    }
    await eventually(what, peer, () => check(view(peer)));
  };

  /** Collects events; `settled(n)` waits for n, then checks no more arrive during the quiet period. */
  const recorder = (store: StateStore): { events: StateEvent[]; unsubscribe: () => void; settled: (count: number) => Promise<StateEvent[]> } => {
    const events: StateEvent[] = [];
    const unsubscribe = store.subscribe((event) => events.push(event));
    const settled = async (count: number): Promise<StateEvent[]> => {
      await eventually(`${count} events`, store, () => {
        // A pull-based driver (embedded) delivers other processes' events when it looks.
        store.revocations.current();
        return events.length >= count;
      });
      await sleep(quietMs);
      store.revocations.current();
      assert.equal(events.length, count, `exactly ${count} events, got ${JSON.stringify(events, null, 1)}`);
      return events.slice();
    };
    return { events, unsubscribe, settled };
  };

  describe(`StateStore contract: ${name}`, () => {
    describe('revocations', () => {
      for (const kind of ['token', 'credential', 'certificate'] as const) {
        test(`revoke, look up and unrevoke a ${kind}`, () =>
          withStores(async (openStore) => {
            const store = await openStore();
            const entry = revocation(kind, keyFor(kind, 1), { expiresAt: kind === 'token' ? Date.now() + HOUR_MS : null });
            assert.equal(view(store).revoked(kind, entry.key), undefined);
            const before = view(store).version;

            const propagation = await store.revoke(entry);
            assertPropagation(propagation);
            const set = view(store);
            assert.deepEqual(set.revoked(kind, entry.key), entry);
            assert.notEqual(set.version, before, 'the version changes with the set');
            assert.equal(set.revoked(kind, keyFor(kind, 2)), undefined, 'another key is not revoked');
            for (const other of KINDS.filter((candidate) => candidate !== kind)) {
              assert.equal(set.revoked(other, entry.key), undefined, `the same key as a ${other} is not revoked`);
            }

            const removed = await store.unrevoke(kind, entry.key, 'admin:test');
            assert.equal(removed.removed, true);
            assertPropagation(removed.propagation);
            assert.equal(view(store).revoked(kind, entry.key), undefined);
            assert.equal((await store.unrevoke(kind, entry.key, 'admin:test')).removed, false, 'a second unrevoke finds nothing');
          }));
      }

      test('revoking again replaces the entry', () =>
        withStores(async (openStore) => {
          const store = await openStore();
          const first = revocation('credential', 'acme-idp', { reason: 'leaked', at: Date.now() - 1000 });
          const second = revocation('credential', 'acme-idp', { reason: 'rotated', actor: 'admin:other', at: Date.now() });
          await store.revoke(first);
          await store.revoke(second);
          assert.deepEqual(view(store).revoked('credential', 'acme-idp'), second);
          assert.deepEqual((await store.list()).revocations, [second]);
        }));

      test('partner status: set, override, remove', () =>
        withStores(async (openStore) => {
          const store = await openStore();
          assert.equal(view(store).partnerStatus('acme'), undefined);
          const suspended = partnerChange('acme', 'suspended', { at: Date.now() - 1000 });
          await store.setPartnerStatus('acme', suspended, 'admin:test');
          assert.deepEqual(view(store).partnerStatus('acme'), suspended);
          assert.equal(view(store).partnerStatus('globex'), undefined);

          const offboarded = partnerChange('acme', 'offboarded', { reason: 'contract ended' });
          assertPropagation(await store.setPartnerStatus('acme', offboarded, 'admin:test'));
          assert.deepEqual(view(store).partnerStatus('acme'), offboarded);
          assert.deepEqual((await store.list()).partners, [offboarded]);

          await store.setPartnerStatus('acme', null, 'admin:test');
          assert.equal(view(store).partnerStatus('acme'), undefined);
          assert.deepEqual((await store.list()).partners, []);
        }));

      test('list() holds every revocation and override, sorted by `at`', () =>
        withStores(async (openStore) => {
          const store = await openStore();
          const t0 = Date.now();
          const late = revocation('token', 'jti-late', { at: t0 + 300, expiresAt: t0 + HOUR_MS });
          const early = revocation('certificate', keyFor('certificate', 7), { at: t0 + 100 });
          const middle = revocation('credential', 'globex-idp', { at: t0 + 200 });
          for (const entry of [late, early, middle]) await store.revoke(entry);
          const partnerLate = partnerChange('globex', 'suspended', { at: t0 + 50 });
          const partnerEarly = partnerChange('acme', 'offboarded', { at: t0 + 10 });
          await store.setPartnerStatus('globex', partnerLate, 'admin:test');
          await store.setPartnerStatus('acme', partnerEarly, 'admin:test');

          const listed = await store.list();
          assert.deepEqual(listed.revocations, [early, middle, late]);
          assert.deepEqual(listed.partners, [partnerEarly, partnerLate]);
          await store.unrevoke('credential', 'globex-idp', 'admin:test');
          assert.deepEqual((await store.list()).revocations, [early, late]);
        }));

      test('bad input is refused and changes nothing', () =>
        withStores(async (openStore) => {
          const store = await openStore();
          const good = revocation('token', 'jti-1');
          await assert.rejects(store.revoke({ ...good, kind: 'session' as RevocationKind }));
          await assert.rejects(store.revoke({ ...good, key: '' }));
          await assert.rejects(store.revoke({ ...good, at: Number.NaN }));
          await assert.rejects(store.setPartnerStatus('acme', partnerChange('globex', 'suspended'), 'admin:test'), 'the change names another partner');
          await assert.rejects(store.setPartnerStatus('acme', { ...partnerChange('acme', 'suspended'), status: 'paused' as 'suspended' }, 'admin:test'));
          assert.deepEqual(await store.list(), { revocations: [], partners: [] });
          assert.equal(view(store).revoked('token', 'jti-1'), undefined);
        }));
    });

    describe('events', () => {
      test('every change is delivered to a subscriber once, in order', () =>
        withStores(async (openStore) => {
          const store = await openStore();
          const { settled } = recorder(store);
          const first = revocation('token', 'jti-1', { expiresAt: Date.now() + HOUR_MS });
          const replaced = revocation('token', 'jti-1', { reason: 'again', expiresAt: Date.now() + HOUR_MS });
          const suspended = partnerChange('acme', 'suspended');
          await store.revoke(first);
          await store.revoke(replaced);
          await store.unrevoke('token', 'jti-1', 'admin:undo');
          await store.unrevoke('token', 'jti-absent', 'admin:undo');
          await store.setPartnerStatus('acme', suspended, 'admin:ops');
          await store.setPartnerStatus('acme', null, 'admin:ops');

          const events = await settled(5);
          assert.deepEqual(events.map(withoutTime), [
            { type: 'revoked', revocation: first },
            { type: 'revoked', revocation: replaced },
            { type: 'unrevoked', kind: 'token', key: 'jti-1', actor: 'admin:undo' },
            { type: 'partner_status', partnerId: 'acme', change: suspended, actor: 'admin:ops' },
            { type: 'partner_status', partnerId: 'acme', change: null, actor: 'admin:ops' },
          ]);
          for (const event of events) {
            if (event.type !== 'revoked') assert.ok(Number.isFinite(event.at), 'events carry a time');
          }
        }));

      test('a failing subscriber breaks neither the store nor the other subscribers; unsubscribe stops delivery', () =>
        withStores(async (openStore) => {
          const store = await openStore();
          store.subscribe(() => {
            throw new Error('subscriber bug');
          });
          const { events, unsubscribe, settled } = recorder(store);
          await store.revoke(revocation('credential', 'acme-idp'));
          await settled(1);
          unsubscribe();
          await store.revoke(revocation('credential', 'globex-idp'));
          await sleep(quietMs);
          store.revocations.current();
          assert.equal(events.length, 1, 'no event after unsubscribe');
          assert.ok(view(store).revoked('credential', 'globex-idp'));
        }));
    });

    describe('instances on the same backing', () => {
      test('a peer sees revocations, unrevocations and partner status on its next look, and hears each once', () =>
        withStores(async (openStore) => {
          const first = await openStore();
          const peer = await openStore(first);
          assert.notEqual(peer.instanceId, first.instanceId);
          assert.equal(peer.driver, first.driver);
          const heard = recorder(peer);
          const token = revocation('token', 'jti-shared', { expiresAt: Date.now() + HOUR_MS });

          await first.revoke(token);
          await peerSees('revocation', peer, (set) => set.revoked('token', 'jti-shared') !== undefined);
          assert.deepEqual(view(peer).revoked('token', 'jti-shared'), token);

          await first.unrevoke('token', 'jti-shared', 'admin:undo');
          await peerSees('unrevocation', peer, (set) => set.revoked('token', 'jti-shared') === undefined);

          const suspended = partnerChange('acme', 'suspended');
          await first.setPartnerStatus('acme', suspended, 'admin:ops');
          await peerSees('partner status', peer, (set) => set.partnerStatus('acme') !== undefined);
          assert.deepEqual(view(peer).partnerStatus('acme'), suspended);

          const events = await heard.settled(3);
          assert.deepEqual(events.map(withoutTime), [
            { type: 'revoked', revocation: token },
            { type: 'unrevoked', kind: 'token', key: 'jti-shared', actor: 'admin:undo' },
            { type: 'partner_status', partnerId: 'acme', change: suspended, actor: 'admin:ops' },
          ]);
          assert.deepEqual((await peer.list()).partners, [suspended]);
        }));

      test('changes flow both ways', () =>
        withStores(async (openStore) => {
          const first = await openStore();
          const peer = await openStore(first);
          await peer.revoke(revocation('credential', 'globex-idp'));
          await peerSees('revocation made by the peer', first, (set) => set.revoked('credential', 'globex-idp') !== undefined);
          await first.revoke(revocation('credential', 'acme-idp'));
          await peerSees('revocation made by the first', peer, (set) => set.revoked('credential', 'acme-idp') !== undefined);
          assert.ok(view(peer).revoked('credential', 'globex-idp'));
        }));

      test('a store opened late starts with everything already revoked', () =>
        withStores(async (openStore) => {
          const first = await openStore();
          const entry = revocation('certificate', keyFor('certificate', 3));
          const suspended = partnerChange('acme', 'suspended');
          await first.revoke(entry);
          await first.setPartnerStatus('acme', suspended, 'admin:ops');
          const late = await openStore(first);
          assert.deepEqual(view(late).revoked('certificate', entry.key), entry);
          assert.deepEqual(view(late).partnerStatus('acme'), suspended);
        }));

      test('separate backings do not share anything', () =>
        withStores(async (openStore) => {
          const first = await openStore();
          const other = await openStore();
          await first.revoke(revocation('credential', 'acme-idp'));
          await first.set('shared-key', 'value', null);
          assert.equal(view(other).revoked('credential', 'acme-idp'), undefined);
          assert.equal(await other.get('shared-key'), null);
          assert.deepEqual((await other.list()).revocations, []);
        }));
    });

    describe('gcra', () => {
      test('a burst allows exactly burst + 1, then refuses with the time until the next slot', () =>
        withStores(async (openStore) => {
          const store = await openStore();
          const t0 = Date.now();
          const limit = { emissionIntervalMs: 100, burst: 4 };
          const remaining: number[] = [];
          for (let n = 0; n < 5; n++) {
            const result = await store.gcra('partner:acme', limit, t0);
            assert.equal(result.allowed, true, `request ${n + 1} of the burst`);
            assert.equal(result.retryAfterMs, 0);
            assert.equal(result.resetMs, (n + 1) * 100);
            remaining.push(result.remaining);
          }
          assert.deepEqual(remaining, [4, 3, 2, 1, 0]);
          assert.deepEqual(await store.gcra('partner:acme', limit, t0), { allowed: false, retryAfterMs: 100, remaining: 0, resetMs: 500 });
          assert.equal((await store.gcra('partner:acme', limit, t0 + 60)).retryAfterMs, 40, 'refused again, 40 ms later');
          assert.equal((await store.gcra('partner:acme', limit, t0 + 99)).retryAfterMs, 1);
          const next = await store.gcra('partner:acme', limit, t0 + 100);
          assert.equal(next.allowed, true, 'one slot frees per emission interval');
          assert.equal(next.remaining, 0);
          assert.equal((await store.gcra('partner:acme', limit, t0 + 100)).allowed, false);
          assert.equal((await store.gcra('partner:globex', limit, t0 + 100)).allowed, true, 'keys are independent');
        }));

      test('the bucket refills completely after (burst + 1) intervals', () =>
        withStores(async (openStore) => {
          const store = await openStore();
          const t0 = Date.now();
          const limit = { emissionIntervalMs: 250, burst: 2 };
          const allowedAt = async (now: number, attempts: number): Promise<number> => {
            let allowed = 0;
            for (let n = 0; n < attempts; n++) if ((await store.gcra('k', limit, now)).allowed) allowed++;
            return allowed;
          };
          assert.equal(await allowedAt(t0, 10), 3);
          assert.equal(await allowedAt(t0 + 500, 10), 2, 'two intervals later, two slots');
          assert.equal(await allowedAt(t0 + 500 + 750, 10), 3, 'a full refill, no more');
        }));

      test('50 concurrent calls at one instant allow exactly burst + 1, across instances', () =>
        withStores(async (openStore) => {
          const first = await openStore();
          const peer = await openStore(first);
          const t0 = Date.now();
          const limit = { emissionIntervalMs: 1000, burst: 9 };
          const results = await Promise.all(Array.from({ length: 50 }, (_, n) => (n % 2 === 0 ? first : peer).gcra('shared', limit, t0)));
          assert.equal(results.filter((result) => result.allowed).length, 10);
          for (const refused of results.filter((result) => !result.allowed)) assert.ok(refused.retryAfterMs >= 1);
        }));

      test('invalid limits are refused', () =>
        withStores(async (openStore) => {
          const store = await openStore();
          await assert.rejects(store.gcra('k', { emissionIntervalMs: 0, burst: 1 }));
          await assert.rejects(store.gcra('k', { emissionIntervalMs: Number.NaN, burst: 1 }));
          await assert.rejects(store.gcra('k', { emissionIntervalMs: 100, burst: -1 }));
          assert.equal((await store.gcra('k', { emissionIntervalMs: 100, burst: 0 }, Date.now())).allowed, true, 'nothing was counted by the refused calls');
        }));
    });

    describe('quota', () => {
      test('counts exactly to the limit; refused calls do not count; a new window starts fresh', () =>
        withStores(async (openStore) => {
          const store = await openStore();
          const t0 = Date.now();
          const windowEnd = t0 + HOUR_MS;
          for (let used = 1; used <= 3; used++) {
            assert.deepEqual(await store.quota('acme:daily', 3, windowEnd, t0), { allowed: true, used, limit: 3, resetAt: windowEnd });
          }
          for (let n = 0; n < 3; n++) {
            assert.deepEqual(await store.quota('acme:daily', 3, windowEnd, t0 + n), { allowed: false, used: 3, limit: 3, resetAt: windowEnd });
          }
          assert.deepEqual(await store.quota('acme:daily', 4, windowEnd, t0), { allowed: true, used: 4, limit: 4, resetAt: windowEnd }, 'refusals were not counted');
          assert.deepEqual(await store.quota('acme:daily', 3, windowEnd + HOUR_MS, t0 + HOUR_MS), { allowed: true, used: 1, limit: 3, resetAt: windowEnd + HOUR_MS });
          assert.equal((await store.quota('globex:daily', 3, windowEnd, t0)).used, 1, 'keys are independent');
          assert.deepEqual(await store.quota('zero', 0, windowEnd, t0), { allowed: false, used: 0, limit: 0, resetAt: windowEnd });
        }));

      test('20 concurrent calls against a limit of 5 allow exactly 5, across instances', () =>
        withStores(async (openStore) => {
          const first = await openStore();
          const peer = await openStore(first);
          const t0 = Date.now();
          const results = await Promise.all(Array.from({ length: 20 }, (_, n) => (n % 2 === 0 ? first : peer).quota('shared', 5, t0 + HOUR_MS, t0)));
          assert.equal(results.filter((result) => result.allowed).length, 5);
          assert.deepEqual(results.filter((result) => result.allowed).map((result) => result.used).sort(), [1, 2, 3, 4, 5]);
          assert.equal((await first.quota('shared', 5, t0 + HOUR_MS, t0)).used, 5);
        }));
    });

    describe('key-value', () => {
      test('setIfAbsent has exactly one winner among 20 concurrent callers, across instances', () =>
        withStores(async (openStore) => {
          const first = await openStore();
          const peer = await openStore(first);
          const results = await Promise.all(Array.from({ length: 20 }, (_, n) => (n % 2 === 0 ? first : peer).setIfAbsent('dpop:jti-1', 60_000)));
          assert.equal(results.filter(Boolean).length, 1);
          assert.equal(await first.setIfAbsent('dpop:jti-2', 60_000), true, 'another key is absent');
        }));

      test('setIfAbsent: an expired key is absent again', () =>
        withStores(async (openStore) => {
          const store = await openStore();
          const started = Date.now();
          assert.equal(await store.setIfAbsent('replay:a', 50), true);
          assert.equal(await store.setIfAbsent('replay:a', 50), false);
          let won = false;
          const deadline = Date.now() + deadlineMs;
          while (!won && Date.now() < deadline) {
            won = await store.setIfAbsent('replay:a', 50);
            if (!won) await sleep(POLL_INTERVAL_MS);
          }
          assert.equal(won, true, 'absent again after its TTL');
          assert.ok(Date.now() - started >= 45, `not before its TTL (after ${Date.now() - started} ms)`);
        }));

      test('get, set, overwrite, delete; TTL expiry; setIfAbsent respects set()', () =>
        withStores(async (openStore) => {
          const store = await openStore();
          assert.equal(await store.get('missing'), null);
          await store.set('jwks:idp', '{"keys":[]}', null);
          assert.equal(await store.get('jwks:idp'), '{"keys":[]}');
          await store.set('jwks:idp', 'ünïcode ✓', null);
          assert.equal(await store.get('jwks:idp'), 'ünïcode ✓');
          await store.set('empty', '', null);
          assert.equal(await store.get('empty'), '');
          assert.equal(await store.setIfAbsent('jwks:idp', 60_000), false, 'a key written by set() is present');
          await store.delete('jwks:idp');
          assert.equal(await store.get('jwks:idp'), null);
          await store.delete('jwks:idp');

          const started = Date.now();
          await store.set('short', 'lived', 50);
          assert.equal(await store.get('short'), 'lived');
          let value: string | null = 'lived';
          const deadline = Date.now() + deadlineMs;
          while (value !== null && Date.now() < deadline) {
            value = await store.get('short');
            if (value !== null) await sleep(POLL_INTERVAL_MS);
          }
          assert.equal(value, null, 'expired after its TTL');
          assert.ok(Date.now() - started >= 45, `not before its TTL (after ${Date.now() - started} ms)`);
          assert.equal(await store.setIfAbsent('short', 60_000), true, 'an expired value counts as absent');

          await store.set('forever', 'x', 50);
          await store.set('forever', 'y', null);
          await sleep(80);
          assert.equal(await store.get('forever'), 'y', 'set(…, null) removes an earlier TTL');
          await assert.rejects(store.setIfAbsent('k', 0), 'a TTL must be positive');
        }));
    });

    describe('lifecycle', () => {
      test('health is ok while open', () =>
        withStores(async (openStore) => {
          const store = await openStore();
          const health = store.health();
          assert.equal(health.ok, true);
          assert.equal(typeof health.detail, 'string');
          assert.ok(health.detail.length > 0);
          assert.equal(typeof store.instanceId, 'string');
          assert.ok(store.instanceId.length > 0);
        }));

      test('a closed store refuses everything, clearly, and closing twice is harmless', async () => {
        const store = await open();
        await store.revoke(revocation('credential', 'acme-idp'));
        await store.close();
        const closed = /closed/i;
        await assert.rejects(store.revoke(revocation('credential', 'globex-idp')), closed);
        await assert.rejects(store.unrevoke('credential', 'acme-idp', 'admin:test'), closed);
        await assert.rejects(store.setPartnerStatus('acme', null, 'admin:test'), closed);
        await assert.rejects(store.list(), closed);
        await assert.rejects(store.gcra('k', { emissionIntervalMs: 100, burst: 1 }), closed);
        await assert.rejects(store.quota('k', 1, Date.now() + HOUR_MS), closed);
        await assert.rejects(store.setIfAbsent('k', 1000), closed);
        await assert.rejects(store.get('k'), closed);
        await assert.rejects(store.set('k', 'v', null), closed);
        await assert.rejects(store.delete('k'), closed);
        const current = store.revocations.current();
        assert.ok('unavailable' in current, 'the request path is told to refuse (fail closed)');
        assert.equal(store.health().ok, false);
        await store.close();
      });
    });
  });
}

const KINDS: readonly RevocationKind[] = ['token', 'credential', 'certificate'];

/** The revocation set, asserting the view is available. */
export function view(store: StateStore): RevocationSet {
  const current = store.revocations.current();
  if ('unavailable' in current) assert.fail(`revocation view unavailable: ${current.unavailable}`);
  return current;
}

export function revocation(kind: RevocationKind, key: string, fields: Partial<Omit<Revocation, 'kind' | 'key'>> = {}): Revocation {
  return { kind, key, reason: 'compromised', actor: 'admin:test', at: Date.now(), expiresAt: null, ...fields };
}

export function partnerChange(partnerId: string, status: PartnerStatusChange['status'], fields: Partial<Omit<PartnerStatusChange, 'partnerId' | 'status'>> = {}): PartnerStatusChange {
  return { partnerId, status, reason: 'security review', actor: 'admin:test', at: Date.now(), ...fields };
}

/** A key in the documented form of its kind (store.ts `Revocation`). */
function keyFor(kind: RevocationKind, n: number): string {
  switch (kind) {
    case 'token':
      return `jti-${n}`;
    case 'credential':
      return `partner-${n}-idp`;
    case 'certificate':
      return `sha256:${n.toString(16).padStart(64, '0')}`;
  }
}

/** Events minus their `at` (set by the driver when it is the time of the removal). */
function withoutTime(event: StateEvent): object {
  if (event.type === 'revoked') return event;
  const { at: _at, ...rest } = event;
  return rest;
}

function assertPropagation(propagation: { instances: number; acknowledged: number; elapsedMs: number }): void {
  assert.ok(Number.isInteger(propagation.instances) && propagation.instances >= 1, 'at least this instance');
  assert.ok(Number.isInteger(propagation.acknowledged) && propagation.acknowledged >= 1 && propagation.acknowledged <= propagation.instances);
  assert.ok(Number.isFinite(propagation.elapsedMs) && propagation.elapsedMs >= 0);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
