/**
 * Calendar windows of quotas: a day or a month on the clocks of an IANA time zone. A quota's
 * window ends at the first instant of the next local day (or month), which is not always local
 * midnight: where a DST change skips midnight (America/Santiago, Asia/Beirut, …) the day starts
 * at 01:00, and a day is 23 or 25 hours long twice a year. Everything is derived from `Intl`
 * (the tz database of the runtime); no dependency, no hand-kept offset table.
 */

export type CalendarPeriod = 'day' | 'month';

const HOUR_MS = 3_600_000;
/**
 * Scan step when looking for the boundary. No zone changes its offset twice within this span,
 * so each step crosses at most one transition and a binary search inside it is exact.
 */
const SCAN_STEP_MS = 30 * 60_000;

/** One formatter per zone: building an `Intl.DateTimeFormat` costs far more than using one. */
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timezone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timezone);
  if (formatter === undefined) {
    formatter = new Intl.DateTimeFormat('en-US', {
      timeZone: timezone,
      calendar: 'gregory',
      numberingSystem: 'latn',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
    });
    formatters.set(timezone, formatter);
  }
  return formatter;
}

/** True when `timezone` is an IANA zone name the runtime knows (UTC offsets are refused: they have no DST rules). */
export function isTimeZone(timezone: string): boolean {
  if (timezone === '' || /^[+-]/.test(timezone)) return false;
  try {
    formatterFor(timezone);
    return true;
  } catch {
    return false;
  }
}

interface LocalDate {
  readonly year: number;
  readonly month: number;
  readonly day: number;
}

function localDate(formatter: Intl.DateTimeFormat, epochMs: number): LocalDate {
  let year = 0;
  let month = 0;
  let day = 0;
  for (const part of formatter.formatToParts(epochMs)) {
    if (part.type === 'year') year = Number(part.value);
    else if (part.type === 'month') month = Number(part.value);
    else if (part.type === 'day') day = Number(part.value);
  }
  return { year, month, day };
}

/** Sortable number of a calendar date (month 1–12). */
const ordinal = (date: LocalDate): number => date.year * 10_000 + date.month * 100 + date.day;

/** The last answer per zone and period: it holds for every instant before the end it found. */
const cache = new Map<string, { readonly fromMs: number; readonly endMs: number }>();
const CACHE_LIMIT = 1024;

/**
 * The first instant (ms since the epoch) of the calendar day or month after the one `nowMs` falls
 * in, on the clocks of `timezone`. Throws a RangeError for a time zone the runtime does not know.
 */
export function windowEnd(per: CalendarPeriod, timezone: string, nowMs: number): number {
  if (!Number.isFinite(nowMs)) throw new RangeError('windowEnd: now is not a finite time');
  const cacheKey = `${per}\u0000${timezone}`;
  const cached = cache.get(cacheKey);
  if (cached !== undefined && nowMs >= cached.fromMs && nowMs < cached.endMs) return cached.endMs;
  const endMs = computeWindowEnd(per, timezone, nowMs);
  // Keys are configured zones, so the cache stays small; the cap only guards against misuse.
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(cacheKey, { fromMs: nowMs, endMs });
  return endMs;
}

function computeWindowEnd(per: CalendarPeriod, timezone: string, nowMs: number): number {
  if (!isTimeZone(timezone)) throw new RangeError(`"${timezone}" is not an IANA time zone`);
  const formatter = formatterFor(timezone);
  const today = localDate(formatter, nowMs);
  // Date.UTC normalises day 32 and month 13 into the next month and year.
  const targetWall =
    per === 'day' ? Date.UTC(today.year, today.month - 1, today.day + 1) : Date.UTC(today.year, today.month, 1);
  const targetDate = new Date(targetWall);
  const target = ordinal({ year: targetDate.getUTCFullYear(), month: targetDate.getUTCMonth() + 1, day: targetDate.getUTCDate() });
  const reached = (epochMs: number): boolean => ordinal(localDate(formatter, epochMs)) >= target;

  // The boundary instant has local wall time `targetWall` shifted by the zone offset, which lies
  // within UTC−12…UTC+14: it cannot be before targetWall − 14 h nor after targetWall + 12 h (a
  // skipped midnight moves it by the size of the skip, at most an hour or two).
  let before = Math.max(nowMs, targetWall - 15 * HOUR_MS);
  const limit = targetWall + 15 * HOUR_MS;
  // Walk forward rather than bisect the whole range: where a zone turns its clocks back across
  // midnight, the date goes forward, back, and forward again, and the window ends at the first
  // crossing.
  let after = before + SCAN_STEP_MS;
  while (!reached(after)) {
    if (after >= limit) throw new RangeError(`no start of the next ${per} found in ${timezone}`);
    before = after;
    after += SCAN_STEP_MS;
  }
  while (after - before > 1) {
    const middle = before + Math.floor((after - before) / 2);
    if (reached(middle)) after = middle;
    else before = middle;
  }
  return after;
}
