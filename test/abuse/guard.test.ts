// The abuse guard: sliding-window counting, blocks that start and end on time, IPv6 sources
// aggregated per /64 and IPv4-mapped addresses as IPv4, and bounded memory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AbuseGuard, sourceKey } from '../../src/abuse/guard.ts';

const THREE_PER_SECOND = { max: 3, windowMs: 1000, blockMs: 5000 };

test('the failure after max within the window starts a block, which ends on time', () => {
  const guard = new AbuseGuard();
  const t0 = 10_000;
  assert.equal(guard.recordAuthFailure('192.0.2.1', THREE_PER_SECOND, t0), false);
  assert.equal(guard.recordAuthFailure('192.0.2.1', THREE_PER_SECOND, t0 + 10), false);
  assert.equal(guard.recordAuthFailure('192.0.2.1', THREE_PER_SECOND, t0 + 20), false);
  assert.equal(guard.sourceBlocked('192.0.2.1', t0 + 20), null, 'max failures are tolerated');
  assert.equal(guard.recordAuthFailure('192.0.2.1', THREE_PER_SECOND, t0 + 30), true, 'the fourth starts the block');
  assert.deepEqual(guard.sourceBlocked('192.0.2.1', t0 + 31), { untilMs: t0 + 30 + 5000 });
  assert.equal(guard.sourceBlocked('192.0.2.2', t0 + 31), null, 'another address is not blocked');
  // Failures during the block neither restart nor extend it.
  assert.equal(guard.recordAuthFailure('192.0.2.1', THREE_PER_SECOND, t0 + 1000), false);
  assert.deepEqual(guard.sourceBlocked('192.0.2.1', t0 + 5029), { untilMs: t0 + 5030 });
  assert.equal(guard.sourceBlocked('192.0.2.1', t0 + 5030), null, 'the block ends at untilMs');
  // Counting starts over after a block.
  assert.equal(guard.recordAuthFailure('192.0.2.1', THREE_PER_SECOND, t0 + 5031), false);
});

test('failures spread beyond the window do not block; a burst across a window boundary does', () => {
  const guard = new AbuseGuard();
  // One failure every 500 ms: two per window, which the two-window estimate never puts above 3.
  for (let i = 0; i < 50; i++) assert.equal(guard.recordAuthFailure('198.51.100.7', THREE_PER_SECOND, 100_000 + i * 500), false, `failure ${i}`);
  // Three just before a window boundary and one just after: four within 200 ms.
  const boundary = 200_000;
  for (const t of [boundary - 150, boundary - 100, boundary - 50]) assert.equal(guard.recordAuthFailure('203.0.113.9', THREE_PER_SECOND, t), false);
  assert.equal(guard.recordAuthFailure('203.0.113.9', THREE_PER_SECOND, boundary + 50), true, 'a fixed window would have missed this');
});

test('credentials are counted apart from sources', () => {
  const guard = new AbuseGuard();
  for (let i = 0; i < 3; i++) assert.equal(guard.recordDenial('acme-key', THREE_PER_SECOND, 1000 + i), false);
  assert.equal(guard.sourceBlocked('acme-key', 1003), null);
  assert.equal(guard.recordDenial('acme-key', THREE_PER_SECOND, 1003), true);
  assert.deepEqual(guard.credentialBlocked('acme-key', 1004), { untilMs: 6003 });
  assert.equal(guard.credentialBlocked('other-key', 1004), null);
});

test('IPv6 sources are aggregated per /64; IPv4-mapped addresses count as IPv4', () => {
  assert.equal(sourceKey('2001:db8:1:2:aaaa:bbbb:cccc:dddd'), '2001:db8:1:2::/64');
  assert.equal(sourceKey('2001:0DB8:0001:0002::1'), '2001:db8:1:2::/64');
  assert.equal(sourceKey('2001:db8::1'), '2001:db8:0:0::/64');
  assert.equal(sourceKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
  assert.equal(sourceKey('::ffff:192.0.2.1'), '192.0.2.1');
  assert.equal(sourceKey('::ffff:c000:201'), '192.0.2.1');
  assert.equal(sourceKey('192.0.2.1'), '192.0.2.1');
  assert.equal(sourceKey('::1'), '0:0:0:0::/64');

  const guard = new AbuseGuard();
  // Four failures from four addresses of one /64: one attacker.
  const addresses = ['2001:db8:1:2::1', '2001:db8:1:2::2', '2001:db8:1:2:ffff::3', '2001:db8:1:2:1:2:3:4'];
  const started = addresses.map((ip, i) => guard.recordAuthFailure(ip, THREE_PER_SECOND, 50_000 + i));
  assert.deepEqual(started, [false, false, false, true]);
  assert.ok(guard.sourceBlocked('2001:db8:1:2:dead:beef::9', 50_010), 'any address of the /64 is blocked');
  assert.equal(guard.sourceBlocked('2001:db8:1:3::1', 50_010), null, 'the next /64 is not');

  // A dual-stack listener sees IPv4 clients as IPv4-mapped: both forms are one source.
  for (let i = 0; i < 3; i++) guard.recordAuthFailure('::ffff:198.51.100.1', THREE_PER_SECOND, 60_000 + i);
  assert.equal(guard.recordAuthFailure('198.51.100.1', THREE_PER_SECOND, 60_003), true);
  assert.ok(guard.sourceBlocked('::ffff:198.51.100.1', 60_004));
});

test('memory stays under the cap, and a flood of fresh addresses cannot push out a block', () => {
  const guard = new AbuseGuard({ maxEntries: 50, sweepIntervalMs: 60_000 });
  for (let i = 0; i < 4; i++) guard.recordAuthFailure('192.0.2.200', THREE_PER_SECOND, 1000 + i);
  assert.ok(guard.sourceBlocked('192.0.2.200', 1005));
  for (let i = 0; i < 10_000; i++) {
    guard.recordAuthFailure(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, THREE_PER_SECOND, 1010);
    guard.recordDenial(`credential-${i}`, THREE_PER_SECOND, 1010);
  }
  const size = guard.size;
  assert.ok(size.sourceCounters <= 50 && size.credentialCounters <= 50, JSON.stringify(size));
  assert.ok(guard.sourceBlocked('192.0.2.200', 1020), 'the block survived the flood');

  // Blocks have their own cap too.
  for (let i = 0; i < 200; i++) for (let j = 0; j < 4; j++) guard.recordAuthFailure(`172.16.${i >> 8}.${i & 255}`, THREE_PER_SECOND, 2000 + j);
  assert.ok(guard.size.sourceBlocks <= 50, JSON.stringify(guard.size));

  // Once windows and blocks are over, a sweep forgets them.
  guard.recordAuthFailure('192.0.2.250', THREE_PER_SECOND, 200_000);
  assert.deepEqual(guard.size, { sourceCounters: 1, sourceBlocks: 0, credentialCounters: 50, credentialBlocks: 0 });
});
