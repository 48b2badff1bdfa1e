/**
 * Text forms used in explanation lines (`portcullis explain`): days, times and windows written
 * the way the configuration writes them, so an operator can match a line to the config.
 */
import type { CompiledConstraints, CompiledTimeWindow, RuleOutcome, CompiledRule } from './types.ts';
import { WEEKDAYS, type WallClock } from './grants.ts';

/** `08:05` for 485. */
export function formatMinute(minute: number): string {
  return `${String(Math.floor(minute / 60)).padStart(2, '0')}:${String(minute % 60).padStart(2, '0')}`;
}

/** Days as ranges, Monday first: `mon-fri`, `sat,sun`, `mon,wed,fri`, `mon-sun`. */
export function formatDays(days: ReadonlySet<number>): string {
  const sorted = [...days].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let end = i;
    while (end + 1 < sorted.length && sorted[end + 1] === sorted[end]! + 1) end++;
    const first = WEEKDAYS[sorted[i]!]!;
    const last = WEEKDAYS[sorted[end]!]!;
    if (end - i >= 2) parts.push(`${first}-${last}`);
    else for (let day = i; day <= end; day++) parts.push(WEEKDAYS[sorted[day]!]!);
    i = end + 1;
  }
  return parts.join(',');
}

/** `mon-fri 08:00-18:00`, `fri 22:00-02:00 (next day)`. */
export function formatWindow(window: CompiledTimeWindow): string {
  const crosses = window.toMinute <= window.fromMinute ? ' (next day)' : '';
  return `${formatDays(window.days)} ${formatMinute(window.fromMinute)}-${formatMinute(window.toMinute)}${crosses}`;
}

/** `19:12 fri`. */
export function formatWallClock(clock: WallClock): string {
  if (clock.weekday < 0) return 'unknown time';
  return `${formatMinute(clock.minute)} ${WEEKDAYS[clock.weekday]}`;
}

/** The windows part of `describeTimeWindows`, built once per compiled grant. */
const windowLabels = new WeakMap<CompiledConstraints, string>();

/** `time window mon-fri 08:00-18:00 Europe/Berlin: 19:12 fri → outside`. */
export function describeTimeWindows(constraints: CompiledConstraints, clock: WallClock, inside: boolean): string {
  let label = windowLabels.get(constraints);
  if (label === undefined) {
    const windows = constraints.timeWindows ?? [];
    label = `${windows.length === 1 ? 'time window' : 'time windows'} ${windows.map(formatWindow).join(', ')} ${constraints.timezone}`;
    windowLabels.set(constraints, label);
  }
  return `${label}: ${formatWallClock(clock)} → ${inside ? 'inside' : 'outside'}`;
}

/** `rule no-weekend-writes (deny, policies): true → deny (policy.weekend_writes)`. */
export function describeRuleOutcome(rule: CompiledRule, outcome: RuleOutcome): string {
  const head = `rule ${rule.id} (${rule.kind}, ${rule.scope})`;
  switch (outcome.outcome) {
    case 'pass':
      return `${head}: ${outcome.value} → pass`;
    case 'deny':
      return `${head}: ${outcome.value} → deny (policy.${rule.reason})`;
    case 'error':
      return `${head}: evaluation error: ${outcome.message} → deny (policy.${rule.reason})`;
  }
}

/** `a, b, c`, or `none`. */
export function list(values: Iterable<string>): string {
  const all = [...values];
  return all.length === 0 ? 'none' : all.join(', ');
}
