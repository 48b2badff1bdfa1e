// The embedded state driver (node:sqlite): the shared contract, then what only a file shared by
// processes can show — another process's revocation biting on the very next `current()`, exact
// counters across processes, persistence, file permissions, the reload fallback.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { DatabaseSync } from 'node:sqlite';
import { openEmbeddedStore } from '../../src/state/embedded.ts';
import type { StateEvent, StateStore } from '../../src/state/store.ts';
import { setLogListener } from '../../src/log.ts';
import { partnerChange, revocation, stateStoreContract, view } from './contract.ts';

const CHILD = join(import.meta.dirname, 'embedded-writer-child.ts');
const HOUR_MS = 3_600_000;

let root: string;
let fileCount = 0;
const pathOf = new WeakMap<StateStore, string>();
const children = new Set<ChildProcess>();
const logLines: Array<{ level: string; event: string; [key: string]: unknown }> = [];

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'portcullis-state-'));
  setLogListener((entry) => logLines.push(entry), { quiet: true });
});
after(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
  setLogListener(null, { quiet: false });
  await rm(root, { recursive: true, force: true });
});

function freshPath(): string {
  return join(root, `store-${++fileCount}`, 'state.sqlite');
}

async function open(peerOf?: StateStore): Promise<StateStore> {
  const path = peerOf === undefined ? freshPath() : pathOf.get(peerOf);
  assert.ok(path !== undefined, 'a peer of a store this factory opened');
  const store = await openEmbeddedStore({ path, propagationTimeoutMs: 1000 });
  pathOf.set(store, path);
  return store;
}

stateStoreContract('embedded', open, { peerSeesChangesImmediately: true });

/** Opens stores for one test and closes them after it, pass or fail. */
async function withStores(body: (openStore: (peerOf?: StateStore) => Promise<StateStore>) => Promise<void>): Promise<void> {
  const opened: StateStore[] = [];
  try {
    await body(async (peerOf) => {
      const store = await open(peerOf);
      opened.push(store);
      return store;
    });
  } finally {
    for (const store of opened) await store.close();
  }
}

/**
 * Runs the writer child to completion while this process's event loop is blocked: no timer of
 * ours can run meanwhile, so whatever we see next was found by `current()` itself.
 */
function runChildBlocking(path: string, command: string, args: object): string {
  return execFileSync(process.execPath, [CHILD, path, command, JSON.stringify(args)], { encoding: 'utf8', timeout: 20_000 });
}

function runChild(path: string, command: string, args: object): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(process.execPath, [CHILD, path, command, JSON.stringify(args)], { encoding: 'utf8', timeout: 20_000 }, (error, stdout) =>
      error === null ? resolve(stdout) : reject(error),
    );
    children.add(child);
  });
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('embedded driver', () => {
  test('own changes reach subscribers before the call returns, and never a second time', () =>
    withStores(async (openStore) => {
      const store = await openStore();
      const peer = await openStore(store);
      const events: StateEvent[] = [];
      store.subscribe((event) => events.push(event));
      const entry = revocation('token', 'jti-own', { expiresAt: Date.now() + HOUR_MS });

      const pending = store.revoke(entry);
      assert.equal(events.length, 1, 'delivered in the same tick as the call');
      assert.deepEqual(view(store).revoked('token', 'jti-own'), entry, 'applied before the promise resolves');
      await pending;

      // data_version does not move for the connection's own commits: nothing is re-read.
      const version = view(store).version;
      for (let n = 0; n < 3; n++) assert.equal(view(store).version, version);
      assert.equal(events.length, 1);

      // The peer applies it once, then sees nothing new.
      const peerVersion = view(peer).version;
      assert.equal(view(peer).version, peerVersion);
      await store.gcra('counter', { emissionIntervalMs: 10, burst: 5 });
      assert.equal(view(peer).version, peerVersion, 'a counter write moves data_version but is not a revocation change');

      // Another connection's commit moves our data_version: our own event must not come back.
      await peer.gcra('counter', { emissionIntervalMs: 10, burst: 5 });
      assert.equal(view(store).version, version);
      assert.equal(events.length, 1);
    }));

  test('a listener that makes a change while being called keeps the event order', () =>
    withStores(async (openStore) => {
      const store = await openStore();
      const order: string[] = [];
      store.subscribe((event) => {
        if (event.type === 'revoked' && event.revocation.key === 'first') void store.revoke(revocation('token', 'second'));
      });
      store.subscribe((event) => order.push(event.type === 'revoked' ? event.revocation.key : event.type));
      await store.revoke(revocation('token', 'first'));
      assert.deepEqual(order, ['first', 'second']);
    }));

  test("another process's revocation bites on the very next current(), and its unrevocation reaches subscribers by the timer", () =>
    withStores(async (openStore) => {
      const store = await openStore();
      const path = pathOf.get(store)!;
      const events: StateEvent[] = [];
      store.subscribe((event) => events.push(event));
      assert.equal(view(store).revoked('token', 'jti-child'), undefined);

      const propagation = JSON.parse(runChildBlocking(path, 'revoke', { key: 'jti-child', actor: 'cli' }));
      assert.equal(propagation.instances, 1);
      assert.equal(events.length, 0, 'nothing ran in this process while the child worked');
      const seen = view(store).revoked('token', 'jti-child');
      assert.equal(seen?.actor, 'cli', 'the very next current() shows it, no sleep');
      assert.deepEqual(events, [{ type: 'revoked', revocation: seen }], 'and the subscriber heard it, once');

      // Now leave the event loop free and never call current(): the 250 ms check delivers it.
      const removed = JSON.parse(await runChild(path, 'unrevoke', { key: 'jti-child', actor: 'cli' }));
      assert.equal(removed.removed, true);
      await waitFor('the unrevoked event', () => events.length === 2, 1000);
      assert.deepEqual({ ...events[1], at: 0 }, { type: 'unrevoked', kind: 'token', key: 'jti-child', actor: 'cli', at: 0 });
      assert.equal(view(store).revoked('token', 'jti-child'), undefined);
      assert.equal(events.length, 2);
    }));

  test('opening a new file while another process holds its write lock waits for the switch to WAL instead of failing', async () => {
    // Switching to WAL needs the file to itself, and SQLite refuses that at once, without its busy
    // handler, while another connection holds the write lock: as when two workers start together
    // on a new file and one is already migrating it (CI saw "database is locked" there).
    const path = freshPath();
    await mkdir(join(path, '..'), { recursive: true });
    const writer = new DatabaseSync(path);
    writer.exec('BEGIN IMMEDIATE');
    const child = spawn(process.execPath, [CHILD, path, 'open', '{}'], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let stderr = '';
    child.stderr!.on('data', (chunk) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    assert.equal((await lines.next()).value, 'opening');
    // Long enough for a refused switch to have failed the child; the open itself takes milliseconds.
    await new Promise((resolve) => setTimeout(resolve, 500));
    writer.exec('COMMIT');
    writer.close();
    assert.equal((await lines.next()).value, 'opened', stderr);
    assert.equal(await exited, 0);
    const db = new DatabaseSync(path);
    try {
      assert.equal((db.prepare('PRAGMA journal_mode').get() as { journal_mode: string }).journal_mode, 'wal');
    } finally {
      db.close();
    }
  });

  test('counters stay exact with two processes hammering the same keys on a new file', async () => {
    const path = freshPath();
    const nowMs = Date.now();
    const args = { gcraKey: 'partner:acme', burst: 299, quotaKey: 'acme:daily', quotaLimit: 500, windowEnd: nowMs + HOUR_MS, nowMs, count: 400, replayKeys: 50 };
    // Both children create and migrate the file at the same moment.
    const workers = [0, 1].map(() => {
      const child = spawn(process.execPath, [CHILD, path, 'hammer', JSON.stringify(args)], { stdio: ['pipe', 'pipe', 'inherit'] });
      children.add(child);
      const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
      const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
      return { child, lines, exited };
    });
    for (const { lines } of workers) assert.equal((await lines.next()).value, 'ready');
    for (const { child } of workers) child.stdin!.write('go\n');
    const reports = [];
    for (const { lines, exited } of workers) {
      reports.push(JSON.parse((await lines.next()).value as string));
      assert.equal(await exited, 0);
    }
    const [a, b] = reports;
    assert.ok(a.startedAt < b.endedAt && b.startedAt < a.endedAt, 'the two processes ran at the same time');
    assert.equal(a.gcraAllowed + b.gcraAllowed, 300, `GCRA: exactly burst + 1 (${a.gcraAllowed} + ${b.gcraAllowed})`);
    assert.equal(a.quotaAllowed + b.quotaAllowed, 500, `quota: exactly the limit (${a.quotaAllowed} + ${b.quotaAllowed})`);
    const winners = [...a.replayWon, ...b.replayWon];
    assert.equal(winners.length, 50, 'one winner per replay key');
    assert.equal(new Set(winners).size, 50);

    const store = await openEmbeddedStore({ path, propagationTimeoutMs: 1000 });
    try {
      assert.equal((await store.gcra('partner:acme', { emissionIntervalMs: 1000, burst: 299 }, nowMs)).allowed, false);
      assert.equal((await store.quota('acme:daily', 500, nowMs + HOUR_MS, nowMs)).used, 500);
    } finally {
      await store.close();
    }
  });

  test('revocations, partner status, counters and values persist across close and reopen', async () => {
    const path = freshPath();
    const t0 = Date.now();
    const token = revocation('token', 'jti-kept', { expiresAt: t0 + HOUR_MS });
    const expired = revocation('token', 'jti-expired', { expiresAt: t0 - 1000 });
    const suspended = partnerChange('acme', 'suspended');
    const limit = { emissionIntervalMs: 60_000, burst: 1 };
    let store = await openEmbeddedStore({ path, propagationTimeoutMs: 1000 });
    try {
      await store.revoke(token);
      await store.revoke(expired);
      await store.setPartnerStatus('acme', suspended, 'admin:ops');
      for (let n = 0; n < 2; n++) assert.equal((await store.quota('acme:daily', 3, t0 + HOUR_MS, t0)).allowed, true);
      for (let n = 0; n < 2; n++) assert.equal((await store.gcra('acme', limit, t0)).allowed, true);
      await store.set('jwks:idp', 'cached', null);
      assert.deepEqual((await store.list()).revocations, [token], 'an expired token revocation is not listed');
    } finally {
      await store.close();
    }

    store = await openEmbeddedStore({ path, propagationTimeoutMs: 1000 });
    try {
      assert.deepEqual(view(store).revoked('token', 'jti-kept'), token);
      assert.equal(view(store).revoked('token', 'jti-expired'), undefined, 'expired token revocations are forgotten');
      assert.deepEqual(view(store).partnerStatus('acme'), suspended);
      assert.deepEqual(await store.quota('acme:daily', 3, t0 + HOUR_MS, t0), { allowed: true, used: 3, limit: 3, resetAt: t0 + HOUR_MS }, 'the count continues');
      assert.equal((await store.quota('acme:daily', 3, t0 + HOUR_MS, t0)).allowed, false);
      assert.equal((await store.gcra('acme', limit, t0)).allowed, false, 'the bucket is still spent');
      assert.equal(await store.get('jwks:idp'), 'cached');
    } finally {
      await store.close();
    }
  });

  test('the folder is created 0700 and the database files are 0600; loose modes are tightened', async () => {
    const folder = join(root, `perm-${++fileCount}`, 'nested');
    const path = join(folder, 'state.sqlite');
    const store = await openEmbeddedStore({ path, propagationTimeoutMs: 1000 });
    try {
      await store.revoke(revocation('credential', 'acme-idp'));
      assert.equal((await stat(folder)).mode & 0o777, 0o700);
      for (const file of [path, `${path}-wal`, `${path}-shm`]) assert.equal((await stat(file)).mode & 0o777, 0o600, file);
    } finally {
      await store.close();
    }

    const loose = join(root, `perm-${++fileCount}`, 'state.sqlite');
    await mkdir(join(loose, '..'), { recursive: true });
    await writeFile(loose, '');
    await chmod(loose, 0o644);
    const reopened = await openEmbeddedStore({ path: loose, propagationTimeoutMs: 1000 });
    try {
      assert.equal((await stat(loose)).mode & 0o777, 0o600);
      assert.equal(reopened.health().ok, true);
      assert.equal(reopened.health().detail, `sqlite ${loose}`);
    } finally {
      await reopened.close();
    }
  });

  test('a database written by a newer version is refused, untouched', async () => {
    const path = freshPath();
    await mkdir(join(path, '..'), { recursive: true });
    const raw = new DatabaseSync(path);
    raw.exec('PRAGMA user_version = 99');
    raw.close();
    await assert.rejects(openEmbeddedStore({ path, propagationTimeoutMs: 1000 }), /schema version 99.*newer/);
    const check = new DatabaseSync(path);
    assert.deepEqual({ ...check.prepare('PRAGMA user_version').get() }, { user_version: 99 });
    check.close();
  });

  test('options are validated', async () => {
    await assert.rejects(openEmbeddedStore({ path: '', propagationTimeoutMs: 1000 }), TypeError);
    await assert.rejects(openEmbeddedStore({ path: ':memory:', propagationTimeoutMs: 1000 }), TypeError);
    await assert.rejects(openEmbeddedStore({ path: freshPath(), propagationTimeoutMs: 0 }), TypeError);
    const store = await openEmbeddedStore({ path: freshPath(), propagationTimeoutMs: 1000, instanceId: 'worker-1' });
    assert.equal(store.instanceId, 'worker-1');
    assert.equal(store.driver, 'embedded');
    await store.close();
  });

  test('behind a pruned or unreadable log, a process reloads the tables and reports the differences', () =>
    withStores(async (openStore) => {
      const store = await openStore();
      const path = pathOf.get(store)!;
      const events: StateEvent[] = [];
      store.subscribe((event) => events.push(event));
      const kept = revocation('credential', 'acme-idp');
      await store.revoke(kept);
      await store.setPartnerStatus('acme', partnerChange('acme', 'suspended'), 'admin:ops');
      events.length = 0;

      // Another writer whose events this process can no longer read (pruned past it).
      const added = revocation('token', 'jti-raw', { expiresAt: Date.now() + HOUR_MS });
      const raw = new DatabaseSync(path, { timeout: 5000 });
      try {
        raw.exec('BEGIN IMMEDIATE');
        raw.prepare('INSERT INTO revocations (kind, key, reason, actor, at, expires_at) VALUES (?, ?, ?, ?, ?, ?)').run(added.kind, added.key, added.reason, added.actor, added.at, added.expiresAt);
        raw.exec('DELETE FROM partner_status');
        const { seq } = raw.prepare("INSERT INTO revocation_log (at, event) VALUES (?, 'pruned') RETURNING seq").get(Date.now()) as { seq: number };
        raw.prepare("UPDATE meta SET value = ? WHERE name = 'log_floor'").run(seq);
        raw.exec('COMMIT');

        assert.deepEqual(view(store).revoked('token', 'jti-raw'), added);
        assert.equal(view(store).partnerStatus('acme'), undefined);
        assert.deepEqual(view(store).revoked('credential', 'acme-idp'), kept);
        assert.deepEqual(events.map((event) => ({ ...event, at: 0 })), [
          { type: 'revoked', revocation: added, at: 0 },
          { type: 'partner_status', partnerId: 'acme', change: null, actor: 'unknown', at: 0 },
        ]);

        // An event this code cannot read: the tables are the truth.
        events.length = 0;
        raw.exec('BEGIN IMMEDIATE');
        raw.prepare('DELETE FROM revocations WHERE kind = ? AND key = ?').run('credential', 'acme-idp');
        raw.prepare('INSERT INTO revocation_log (at, event) VALUES (?, ?)').run(Date.now(), '{"type":"exploded"}');
        raw.exec('COMMIT');
        assert.equal(view(store).revoked('credential', 'acme-idp'), undefined);
        assert.deepEqual(events.map((event) => ({ ...event, at: 0 })), [{ type: 'unrevoked', kind: 'credential', key: 'acme-idp', actor: 'unknown', at: 0 }]);
        assert.ok(logLines.some((line) => line.event === 'state.log_event_unreadable'));
      } finally {
        raw.close();
      }

      // And the log is followed normally again afterwards.
      events.length = 0;
      const peer = await openStore(store);
      await peer.unrevoke('token', 'jti-raw', 'admin:undo');
      assert.equal(view(store).revoked('token', 'jti-raw'), undefined);
      assert.deepEqual(events.map((event) => ({ ...event, at: 0 })), [{ type: 'unrevoked', kind: 'token', key: 'jti-raw', actor: 'admin:undo', at: 0 }]);
    }));

  test('current() costs a few µs when nothing changed', (t) =>
    withStores(async (openStore) => {
      const store = await openStore();
      for (let n = 0; n < 100; n++) await store.revoke(revocation('token', `jti-${n}`, { expiresAt: Date.now() + HOUR_MS }));
      const calls = 50_000;
      for (let n = 0; n < 5_000; n++) store.revocations.current();
      const started = process.hrtime.bigint();
      for (let n = 0; n < calls; n++) store.revocations.current();
      const microseconds = Number(process.hrtime.bigint() - started) / calls / 1000;
      t.diagnostic(`current(): ${microseconds.toFixed(2)} µs per call`);
      // Generous: a few µs measured on 2 cores; this catches an accidental reload per call.
      assert.ok(microseconds < 50, `${microseconds} µs per call`);
    }));
});
