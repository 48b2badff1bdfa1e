// Quota windows on the clocks of a time zone: day and month ends, leap years, DST days of 23 and
// 25 hours, zones where a DST change skips midnight, and a zone that skipped a whole day.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isTimeZone, windowEnd } from '../../src/ratelimit/calendar.ts';

const end = (per: 'day' | 'month', timezone: string, iso: string): string => new Date(windowEnd(per, timezone, Date.parse(iso))).toISOString();

test('UTC days: the next midnight, including at and just before a boundary', () => {
  assert.equal(end('day', 'UTC', '2026-03-14T12:00:00.000Z'), '2026-03-15T00:00:00.000Z');
  assert.equal(end('day', 'UTC', '2026-03-14T23:59:59.999Z'), '2026-03-15T00:00:00.000Z');
  // At midnight the new day has begun: its window ends at the following midnight.
  assert.equal(end('day', 'UTC', '2026-03-15T00:00:00.000Z'), '2026-03-16T00:00:00.000Z');
});

test('month and year ends, and leap years', () => {
  assert.equal(end('month', 'UTC', '2026-01-31T23:59:59.999Z'), '2026-02-01T00:00:00.000Z');
  assert.equal(end('month', 'UTC', '2026-12-31T23:59:59.999Z'), '2027-01-01T00:00:00.000Z');
  assert.equal(end('day', 'UTC', '2026-12-31T10:00:00.000Z'), '2027-01-01T00:00:00.000Z');
  assert.equal(end('day', 'UTC', '2028-02-28T10:00:00.000Z'), '2028-02-29T00:00:00.000Z');
  assert.equal(end('month', 'UTC', '2028-02-29T10:00:00.000Z'), '2028-03-01T00:00:00.000Z');
  assert.equal(end('day', 'UTC', '2027-02-28T10:00:00.000Z'), '2027-03-01T00:00:00.000Z');
});

test('a non-UTC zone: the boundary is local midnight (Asia/Kolkata, UTC+05:30)', () => {
  // 20:00 UTC on the 10th is already 01:30 on the 11th in Kolkata.
  assert.equal(end('day', 'Asia/Kolkata', '2026-05-10T20:00:00.000Z'), '2026-05-11T18:30:00.000Z');
  assert.equal(end('month', 'Asia/Kolkata', '2026-05-31T18:29:59.999Z'), '2026-05-31T18:30:00.000Z');
  assert.equal(end('month', 'Asia/Kolkata', '2026-05-31T18:30:00.000Z'), '2026-06-30T18:30:00.000Z');
});

test('DST days are 23 and 25 hours long (Europe/Berlin)', () => {
  // 29 March 2026: clocks jump from 02:00 to 03:00; the day runs 23:00Z → 22:00Z.
  const springStart = Date.parse('2026-03-28T23:00:00.000Z');
  assert.equal(windowEnd('day', 'Europe/Berlin', springStart) - springStart, 23 * 3_600_000);
  // 25 October 2026: clocks go back from 03:00 to 02:00; the day runs 22:00Z → 23:00Z.
  const autumnStart = Date.parse('2026-10-24T22:00:00.000Z');
  assert.equal(windowEnd('day', 'Europe/Berlin', autumnStart) - autumnStart, 25 * 3_600_000);
  // A month across a change: April starts at 00:00 CEST (UTC+2).
  assert.equal(end('month', 'Europe/Berlin', '2026-03-05T08:00:00.000Z'), '2026-03-31T22:00:00.000Z');
  // New York: April starts at 00:00 EDT, December at 00:00 EST.
  assert.equal(end('month', 'America/New_York', '2026-03-05T08:00:00.000Z'), '2026-04-01T04:00:00.000Z');
  assert.equal(end('month', 'America/New_York', '2026-11-15T08:00:00.000Z'), '2026-12-01T05:00:00.000Z');
});

test('where DST skips midnight, the day starts at 01:00', () => {
  // Chile, 6 September 2026: Saturday 23:59:59 (−04) is followed by Sunday 01:00 (−03).
  assert.equal(end('day', 'America/Santiago', '2026-09-05T16:00:00.000Z'), '2026-09-06T04:00:00.000Z');
  assert.equal(
    new Date(Date.parse('2026-09-06T04:00:00.000Z')).toLocaleString('en-GB', { timeZone: 'America/Santiago', hourCycle: 'h23' }),
    '06/09/2026, 01:00:00',
  );
  // One millisecond earlier it is still Saturday.
  assert.equal(end('day', 'America/Santiago', '2026-09-06T03:59:59.999Z'), '2026-09-06T04:00:00.000Z');
  // Chile, 5 April 2026: the clocks go back from Sunday 00:00 (−03) to Saturday 23:00 (−04), so
  // that Saturday has 25 hours and Sunday starts at 00:00 −04.
  assert.equal(end('day', 'America/Santiago', '2026-04-04T16:00:00.000Z'), '2026-04-05T04:00:00.000Z');
});

test('a zone that skipped a whole day (Samoa, 30 December 2011) ends the window at the next day that exists', () => {
  assert.equal(end('day', 'Pacific/Apia', '2011-12-29T12:00:00.000Z'), '2011-12-30T10:00:00.000Z');
  assert.equal(
    new Date(Date.parse('2011-12-30T10:00:00.000Z')).toLocaleString('en-GB', { timeZone: 'Pacific/Apia', hourCycle: 'h23' }),
    '31/12/2011, 00:00:00',
  );
});

test('for every 7th hour of a year in several zones, the end is the first instant of the next day or month', () => {
  for (const timezone of ['UTC', 'Europe/Berlin', 'America/Santiago', 'Australia/Lord_Howe', 'Pacific/Chatham']) {
    // An independent reading of the local date (en-CA prints YYYY-MM-DD).
    const format = new Intl.DateTimeFormat('en-CA', { timeZone: timezone, year: 'numeric', month: '2-digit', day: '2-digit' });
    const date = (epochMs: number): string => format.format(epochMs);
    for (let t = Date.parse('2026-01-01T00:00:00Z'); t < Date.parse('2027-01-01T00:00:00Z'); t += 3_600_000 * 7) {
      const at = `${timezone} ${new Date(t).toISOString()}`;
      const dayEnd = windowEnd('day', timezone, t);
      assert.ok(dayEnd > t && dayEnd - t <= 26 * 3_600_000, at);
      assert.equal(date(dayEnd - 1), date(t), `${at}: the instant before the end is the same day`);
      assert.ok(date(dayEnd) > date(t), `${at}: the end is on a later day`);
      const monthEnd = windowEnd('month', timezone, t);
      assert.equal(date(monthEnd - 1).slice(0, 7), date(t).slice(0, 7), `${at}: same month until the end`);
      assert.ok(date(monthEnd).slice(0, 7) > date(t).slice(0, 7), `${at}: a later month at the end`);
      assert.equal(date(monthEnd).slice(8), '01', `${at}: a month starts on the 1st`);
    }
  }
});

test('unknown zones and UTC offsets are refused', () => {
  assert.equal(isTimeZone('Europe/Berlin'), true);
  assert.equal(isTimeZone('Mars/Olympus_Mons'), false);
  assert.equal(isTimeZone('+01:00'), false);
  assert.equal(isTimeZone(''), false);
  assert.throws(() => windowEnd('day', 'Mars/Olympus_Mons', Date.now()), RangeError);
  assert.throws(() => windowEnd('day', '+01:00', Date.now()), RangeError);
  assert.throws(() => windowEnd('day', 'UTC', Number.NaN), RangeError);
});
