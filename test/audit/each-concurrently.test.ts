import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { forEachConcurrently } from '../../src/audit/each-concurrently.ts';

test('every item runs once, never more than the limit at a time', async () => {
  let running = 0;
  let most = 0;
  const seen: number[] = [];
  await forEachConcurrently(Array.from({ length: 50 }, (_, n) => n), 4, async (item) => {
    running += 1;
    most = Math.max(most, running);
    await sleep(item % 3);
    seen.push(item);
    running -= 1;
  });
  assert.deepEqual(seen.sort((a, b) => a - b), Array.from({ length: 50 }, (_, n) => n));
  assert.equal(most, 4);
});

test('the first failure stops new tasks and is thrown once the running ones have ended', async () => {
  const started: number[] = [];
  let ended = 0;
  await assert.rejects(
    forEachConcurrently(Array.from({ length: 20 }, (_, n) => n), 3, async (item) => {
      started.push(item);
      await sleep(5);
      ended += 1;
      if (item === 1) throw new Error('item 1 failed');
    }),
    /item 1 failed/,
  );
  assert.equal(ended, started.length, 'nothing left running when it throws');
  assert.ok(started.length < 20, `no new task after the failure (started ${started.length})`);
});

test('no items: nothing runs', async () => {
  await forEachConcurrently([], 8, async () => assert.fail('ran'));
});
