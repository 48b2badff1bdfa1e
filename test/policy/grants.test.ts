// Grants: compilation (ids, time zones, CIDR blocks) and the constraint checks (time windows
// across zones, midnight and DST change days; IPv4, IPv6 and IPv4-mapped source addresses).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compileGrant, fromAllowedNetwork, wallClock, withinTimeWindows } from '../../src/policy/grants.ts';
import type { CompiledConstraints } from '../../src/policy/types.ts';
import { grant, grantConfig, type GrantInput } from './fixtures.ts';

function constraintsOf(input: GrantInput['constraints']): CompiledConstraints {
  const constraints = grant({ constraints: input }).constraints;
  assert.ok(constraints);
  return constraints;
}

function compileError(input: GrantInput): { path: (string | number)[]; message: string } {
  const result = compileGrant(grantConfig(input), 'acme', 0);
  assert.equal(result.ok, false, 'expected a compile error');
  assert.ok(!result.ok);
  return { path: result.path, message: result.message };
}

describe('compileGrant', () => {
  test('names the grant partner/<partner>/grant/<api>#<index> and keeps its parts as sets', () => {
    const result = compileGrant(grantConfig({ api: 'invoices', environments: ['production', 'sandbox'], scopes: ['invoices:read'] }), 'globex', 3);
    assert.ok(result.ok);
    assert.equal(result.grant.id, 'partner/globex/grant/invoices#3');
    assert.equal(result.grant.apiId, 'invoices');
    assert.deepEqual([...result.grant.environments], ['production', 'sandbox']);
    assert.deepEqual([...result.grant.scopes], ['invoices:read']);
    assert.equal(result.grant.constraints, null);
  });

  test('compiles HH:MM to minutes and days to 0..6, Monday first', () => {
    const constraints = constraintsOf({ time_windows: [{ days: ['mon', 'fri', 'sun'], from: '08:30', to: '17:45' }], timezone: 'Europe/Berlin' });
    const [window] = constraints.timeWindows!;
    assert.deepEqual([...window!.days].sort(), [0, 4, 6]);
    assert.equal(window!.fromMinute, 8 * 60 + 30);
    assert.equal(window!.toMinute, 17 * 60 + 45);
    assert.equal(constraints.timezone, 'Europe/Berlin');
  });

  test('an unknown time zone is an error at constraints.timezone', () => {
    const error = compileError({ constraints: { timezone: 'Mars/Olympus_Mons' } });
    assert.deepEqual(error.path, ['constraints', 'timezone']);
    assert.match(error.message, /"Mars\/Olympus_Mons" is not an IANA time zone/);
  });

  test('a UTC offset is not accepted as a time zone', () => {
    const error = compileError({ constraints: { timezone: '+01:00' } });
    assert.deepEqual(error.path, ['constraints', 'timezone']);
    assert.match(error.message, /UTC offset/);
  });

  const badBlocks: readonly [string, RegExp][] = [
    ['10.0.0.300/8', /not an IPv4 or IPv6 address/],
    ['010.0.0.0/8', /not an IPv4 or IPv6 address/],
    ['10.0.0.0/33', /prefix length must be 0–32/],
    ['2001:db8::/129', /prefix length must be 0–128/],
    ['10.1.2.3/8', /host bits are set; the block would be 10\.0\.0\.0\/8/],
    ['2001:db8::1/32', /host bits are set; the block would be 2001:db8::\/32/],
  ];
  for (const [block, message] of badBlocks) {
    test(`an invalid CIDR block (${block}) is an error at its index`, () => {
      const error = compileError({ constraints: { source_networks: ['192.0.2.0/24', block] } });
      assert.deepEqual(error.path, ['constraints', 'source_networks', 1]);
      assert.match(error.message, message);
    });
  }

  test('keeps the CIDR blocks as written for explanations', () => {
    const constraints = constraintsOf({ source_networks: ['10.0.0.0/8', '2001:db8::/32'] });
    assert.deepEqual(constraints.sourceNetworkList, ['10.0.0.0/8', '2001:db8::/32']);
  });
});

describe('wallClock / withinTimeWindows', () => {
  const officeHoursBerlin = constraintsOf({ time_windows: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'], from: '08:00', to: '18:00' }], timezone: 'Europe/Berlin' });
  const at = (iso: string) => new Date(iso);

  test('reads weekday and minute on the clocks of the grant\'s zone', () => {
    // Friday 17:12 UTC is 19:12 in Berlin (CEST), 13:12 in New York, 02:12 Saturday in Tokyo.
    const instant = at('2025-06-06T17:12:00Z');
    assert.deepEqual(wallClock('Europe/Berlin', instant), { weekday: 4, minute: 19 * 60 + 12 });
    assert.deepEqual(wallClock('America/New_York', instant), { weekday: 4, minute: 13 * 60 + 12 });
    assert.deepEqual(wallClock('Asia/Tokyo', instant), { weekday: 5, minute: 2 * 60 + 12 });
  });

  test('readings are per minute: the next minute, and the DST jump, are read anew', () => {
    assert.deepEqual(wallClock('Europe/Berlin', at('2025-06-06T17:12:00.000Z')), { weekday: 4, minute: 19 * 60 + 12 });
    assert.deepEqual(wallClock('Europe/Berlin', at('2025-06-06T17:12:59.999Z')), { weekday: 4, minute: 19 * 60 + 12 });
    assert.deepEqual(wallClock('Europe/Berlin', at('2025-06-06T17:13:00.000Z')), { weekday: 4, minute: 19 * 60 + 13 });
    assert.deepEqual(wallClock('Europe/Berlin', at('2025-03-30T00:59:59.999Z')), { weekday: 6, minute: 1 * 60 + 59 });
    assert.deepEqual(wallClock('Europe/Berlin', at('2025-03-30T01:00:00.000Z')), { weekday: 6, minute: 3 * 60 });
    // Going back in time is a different minute too.
    assert.deepEqual(wallClock('Europe/Berlin', at('2025-03-30T00:59:00.000Z')), { weekday: 6, minute: 1 * 60 + 59 });
  });

  test('the same instant is inside office hours in one zone and outside in others', () => {
    const instant = at('2025-06-06T17:12:00Z');
    const window = [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'] as const, from: '08:00', to: '18:00' }];
    const inZone = (timezone: string) => withinTimeWindows(constraintsOf({ time_windows: window.map((w) => ({ ...w, days: [...w.days] })), timezone }), instant);
    assert.equal(inZone('Europe/Berlin'), false);
    assert.equal(inZone('America/New_York'), true);
    assert.equal(inZone('Asia/Tokyo'), false);
    assert.equal(inZone('UTC'), true);
  });

  test('from is inclusive, to is exclusive', () => {
    assert.equal(withinTimeWindows(officeHoursBerlin, at('2025-06-06T06:00:00Z')), true); // 08:00 CEST
    assert.equal(withinTimeWindows(officeHoursBerlin, at('2025-06-06T05:59:00Z')), false); // 07:59
    assert.equal(withinTimeWindows(officeHoursBerlin, at('2025-06-06T15:59:00Z')), true); // 17:59
    assert.equal(withinTimeWindows(officeHoursBerlin, at('2025-06-06T16:00:00Z')), false); // 18:00
  });

  test('only the listed days', () => {
    assert.equal(withinTimeWindows(officeHoursBerlin, at('2025-06-07T10:00:00Z')), false); // Saturday 12:00
  });

  test('a window crossing midnight on fri covers Friday 22:00 to Saturday 02:00 only', () => {
    const late = constraintsOf({ time_windows: [{ days: ['fri'], from: '22:00', to: '02:00' }] });
    const cases: readonly [string, boolean][] = [
      ['2025-06-06T21:59:00Z', false], // fri 21:59
      ['2025-06-06T22:00:00Z', true], // fri 22:00
      ['2025-06-06T23:59:00Z', true],
      ['2025-06-07T00:00:00Z', true], // sat 00:00
      ['2025-06-07T01:59:00Z', true],
      ['2025-06-07T02:00:00Z', false], // sat 02:00
      ['2025-06-07T22:30:00Z', false], // sat late: saturday is not listed
      ['2025-06-06T01:00:00Z', false], // fri early: thursday is not listed
    ];
    for (const [iso, expected] of cases) assert.equal(withinTimeWindows(late, at(iso)), expected, iso);
  });

  test('a window crossing midnight on sunday continues into monday', () => {
    const sunday = constraintsOf({ time_windows: [{ days: ['sun'], from: '23:00', to: '01:00' }] });
    assert.equal(withinTimeWindows(sunday, at('2025-06-09T00:30:00Z')), true); // mon 00:30
    assert.equal(withinTimeWindows(sunday, at('2025-06-09T01:00:00Z')), false);
  });

  test('from equal to to is a whole day starting at from', () => {
    const day = constraintsOf({ time_windows: [{ days: ['mon'], from: '08:00', to: '08:00' }] });
    assert.equal(withinTimeWindows(day, at('2025-06-09T07:59:00Z')), false); // mon 07:59
    assert.equal(withinTimeWindows(day, at('2025-06-09T08:00:00Z')), true);
    assert.equal(withinTimeWindows(day, at('2025-06-10T07:59:00Z')), true); // tue 07:59
    assert.equal(withinTimeWindows(day, at('2025-06-10T08:00:00Z')), false);
  });

  test('spring forward (Berlin, 2025-03-30): the window keeps its local hours', () => {
    const sunday = constraintsOf({ time_windows: [{ days: ['sun'], from: '08:00', to: '18:00' }], timezone: 'Europe/Berlin' });
    // After 01:00 UTC Berlin is UTC+2: 06:30 UTC is 08:30 local (a fixed UTC+1 would say 07:30).
    assert.equal(withinTimeWindows(sunday, at('2025-03-30T06:30:00Z')), true);
    assert.equal(withinTimeWindows(sunday, at('2025-03-30T05:59:00Z')), false); // 07:59 CEST
    // 16:30 UTC is 18:30 local (a fixed UTC+1 would say 17:30, inside).
    assert.equal(withinTimeWindows(sunday, at('2025-03-30T16:30:00Z')), false);
  });

  test('spring forward: a window inside the skipped hour never opens that day', () => {
    const skipped = constraintsOf({ time_windows: [{ days: ['sun'], from: '02:00', to: '03:00' }], timezone: 'Europe/Berlin' });
    for (let minute = 0; minute < 24 * 60; minute += 5) {
      const instant = new Date(Date.parse('2025-03-29T22:00:00Z') + minute * 60_000); // Sunday 00:00 CET onwards
      assert.equal(withinTimeWindows(skipped, instant), false, instant.toISOString());
    }
    // A week later the same window opens normally.
    assert.equal(withinTimeWindows(skipped, at('2025-04-06T00:30:00Z')), true); // 02:30 CEST
  });

  test('fall back (Berlin, 2025-10-26): the repeated hour is inside the window both times', () => {
    const repeated = constraintsOf({ time_windows: [{ days: ['sun'], from: '02:00', to: '03:00' }], timezone: 'Europe/Berlin' });
    assert.equal(withinTimeWindows(repeated, at('2025-10-26T00:30:00Z')), true); // 02:30 CEST
    assert.equal(withinTimeWindows(repeated, at('2025-10-26T01:30:00Z')), true); // 02:30 CET
    assert.equal(withinTimeWindows(repeated, at('2025-10-26T02:00:00Z')), false); // 03:00 CET
  });

  test('DST in New York (2025-03-09): 09:00 local is 13:00 UTC after the change, 14:00 before', () => {
    const morning = constraintsOf({ time_windows: [{ days: ['sun', 'sat'], from: '09:00', to: '10:00' }], timezone: 'America/New_York' });
    assert.equal(withinTimeWindows(morning, at('2025-03-08T14:30:00Z')), true); // sat 09:30 EST
    assert.equal(withinTimeWindows(morning, at('2025-03-09T13:30:00Z')), true); // sun 09:30 EDT
    assert.equal(withinTimeWindows(morning, at('2025-03-09T14:30:00Z')), false); // sun 10:30 EDT
  });

  test('several windows: any one of them', () => {
    const split = constraintsOf({ time_windows: [{ days: ['mon'], from: '08:00', to: '09:00' }, { days: ['fri'], from: '12:00', to: '13:00' }] });
    assert.equal(withinTimeWindows(split, at('2025-06-06T12:30:00Z')), true);
    assert.equal(withinTimeWindows(split, at('2025-06-06T08:30:00Z')), false);
  });

  test('an invalid date is inside no window', () => {
    const always = constraintsOf({ time_windows: [{ from: '00:00', to: '00:00' }] });
    assert.equal(withinTimeWindows(always, new Date(Number.NaN)), false);
    assert.equal(withinTimeWindows(always, at('2025-06-06T12:30:00Z')), true);
  });

  test('no windows configured: always inside', () => {
    assert.equal(withinTimeWindows(constraintsOf({ transaction_types: ['read'] }), at('2025-06-07T03:00:00Z')), true);
  });
});

describe('fromAllowedNetwork', () => {
  const networks = constraintsOf({ source_networks: ['10.0.0.0/8', '192.0.2.128/25', '2001:db8::/32'] });
  const cases: readonly [string, boolean, string][] = [
    ['10.1.2.3', true, 'IPv4 inside'],
    ['11.0.0.1', false, 'IPv4 outside'],
    ['192.0.2.200', true, 'inside a /25'],
    ['192.0.2.100', false, 'just below a /25'],
    ['::ffff:10.1.2.3', true, 'IPv4-mapped IPv6 inside an IPv4 block'],
    ['::ffff:a01:203', true, 'IPv4-mapped IPv6 in hex form'],
    ['::ffff:11.0.0.1', false, 'IPv4-mapped IPv6 outside'],
    ['2001:db8:1::5', true, 'IPv6 inside'],
    ['2001:db9::1', false, 'IPv6 outside'],
    ['::1', false, 'IPv6 loopback'],
    ['fe80::1%eth0', false, 'an address with a zone index'],
    ['not-an-ip', false, 'not an address'],
    ['', false, 'empty'],
  ];
  for (const [address, expected, why] of cases) {
    test(`${why}: ${address || '(empty)'} → ${expected}`, () => assert.equal(fromAllowedNetwork(networks, address), expected));
  }

  test('no networks configured: any address', () => {
    assert.equal(fromAllowedNetwork(constraintsOf({ purposes: ['kyc'] }), '203.0.113.9'), true);
  });
});
