// Requests in flight per partner: a slot per request up to the limit, given back exactly once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConcurrencyLimiter } from '../../src/ratelimit/concurrency.ts';

test('up to max slots per partner; partners do not share them', () => {
  const limiter = new ConcurrencyLimiter();
  const first = limiter.acquire('acme', 2);
  const second = limiter.acquire('acme', 2);
  assert.ok(first && second);
  assert.equal(limiter.acquire('acme', 2), null);
  assert.ok(limiter.acquire('globex', 2), 'another partner has its own slots');
  assert.equal(limiter.inFlight('acme'), 2);
  first();
  assert.equal(limiter.inFlight('acme'), 1);
  assert.ok(limiter.acquire('acme', 2));
});

test('a release counts once, however many times it is called', () => {
  const limiter = new ConcurrencyLimiter();
  const release = limiter.acquire('acme', 3)!;
  const other = limiter.acquire('acme', 3)!;
  release();
  release();
  release();
  assert.equal(limiter.inFlight('acme'), 1, 'the second slot is still held');
  other();
  assert.equal(limiter.inFlight('acme'), 0);
  // Three fresh slots, no more: repeated releases did not create spare capacity.
  assert.ok(limiter.acquire('acme', 3) && limiter.acquire('acme', 3) && limiter.acquire('acme', 3));
  assert.equal(limiter.acquire('acme', 3), null);
});

test('no limit counts nothing; a lowered limit refuses until enough requests end', () => {
  const limiter = new ConcurrencyLimiter();
  const unlimited = limiter.acquire('acme', null);
  assert.equal(typeof unlimited, 'function');
  assert.equal(limiter.inFlight('acme'), 0);
  unlimited!();
  assert.equal(limiter.inFlight('acme'), 0);

  const held = [limiter.acquire('acme', 3)!, limiter.acquire('acme', 3)!, limiter.acquire('acme', 3)!];
  // A reload lowers max_concurrent to 1.
  assert.equal(limiter.acquire('acme', 1), null);
  held[0]!();
  held[1]!();
  assert.equal(limiter.acquire('acme', 1), null, 'one still in flight');
  held[2]!();
  assert.ok(limiter.acquire('acme', 1));
});
