/**
 * Grants: a partner's access to one API, in some environments, with some scopes, under optional
 * constraints (time windows, transaction types, purposes, source networks). Compiled once per
 * snapshot; the constraint checks here run per request and allocate nothing but the wall-clock
 * reading.
 */
import { BlockList, isIP } from 'node:net';
import type { GrantConfig } from '../config/schema.ts';
import type { CompiledConstraints, CompiledGrant, CompiledTimeWindow } from './types.ts';

export type CompileGrantResult =
  | { ok: true; grant: CompiledGrant }
  | { ok: false; path: (string | number)[]; message: string };

/** Config weekday names, Monday first: their index is the compiled day number. */
export const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;

/**
 * Compiles the grant at `partners[<partnerId>].grants[index]`. Errors carry the path below the
 * grant (`['constraints', 'source_networks', 1]`) for the config loader to point at.
 */
export function compileGrant(grant: GrantConfig, partnerId: string, index: number): CompileGrantResult {
  let constraints: CompiledConstraints | null = null;
  if (grant.constraints !== undefined) {
    const compiled = compileConstraints(grant.constraints);
    if (!compiled.ok) return compiled;
    constraints = compiled.constraints;
  }
  return {
    ok: true,
    grant: Object.freeze({
      id: `partner/${partnerId}/grant/${grant.api}#${index}`,
      apiId: grant.api,
      environments: new Set(grant.environments),
      scopes: new Set(grant.scopes),
      constraints,
    }),
  };
}

type ConstraintsConfig = NonNullable<GrantConfig['constraints']>;

function compileConstraints(
  config: ConstraintsConfig,
): { ok: true; constraints: CompiledConstraints } | { ok: false; path: (string | number)[]; message: string } {
  const timezoneProblem = invalidTimeZone(config.timezone);
  if (timezoneProblem !== null) return { ok: false, path: ['constraints', 'timezone'], message: timezoneProblem };

  let sourceNetworks: BlockList | null = null;
  if (config.source_networks !== undefined) {
    const compiled = compileNetworks(config.source_networks);
    if (!compiled.ok) return { ok: false, path: ['constraints', 'source_networks', compiled.index], message: compiled.message };
    sourceNetworks = compiled.networks;
  }

  const timeWindows =
    config.time_windows?.map(
      (window): CompiledTimeWindow =>
        Object.freeze({
          days: new Set(window.days.map((day) => WEEKDAYS.indexOf(day))),
          fromMinute: minutesOf(window.from),
          toMinute: minutesOf(window.to),
        }),
    ) ?? null;

  return {
    ok: true,
    constraints: Object.freeze({
      timeWindows: timeWindows === null ? null : Object.freeze(timeWindows),
      timezone: config.timezone,
      transactionTypes: config.transaction_types === undefined ? null : new Set(config.transaction_types),
      purposes: config.purposes === undefined ? null : new Set(config.purposes),
      sourceNetworks,
      sourceNetworkList: config.source_networks === undefined ? null : Object.freeze([...config.source_networks]),
    }),
  };
}

/** `HH:MM` (already checked by the schema) → minutes after midnight. */
function minutesOf(text: string): number {
  return Number(text.slice(0, 2)) * 60 + Number(text.slice(3, 5));
}

// ---------------------------------------------------------------------------------------------
// Time windows

/** Wall-clock time in a zone: weekday 0 = Monday … 6 = Sunday, minute after midnight. */
export interface WallClock {
  readonly weekday: number;
  readonly minute: number;
}

const WEEKDAY_INDEX: Readonly<Record<string, number>> = { Mon: 0, Tue: 1, Wed: 2, Thu: 3, Fri: 4, Sat: 5, Sun: 6 };

/** One formatter per zone: building an `Intl.DateTimeFormat` costs far more than using one. */
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timezone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timezone);
  if (formatter === undefined) {
    formatter = new Intl.DateTimeFormat('en-US', { timeZone: timezone, weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    formatters.set(timezone, formatter);
  }
  return formatter;
}

/** Null when `timezone` is an IANA zone name; else why not. */
function invalidTimeZone(timezone: string): string | null {
  // ECMA-402 also accepts UTC offsets (`+01:00`); a grant names a zone, whose DST rules apply.
  if (/^[+-]/.test(timezone)) return `"${timezone}" is a UTC offset, not an IANA time zone name (e.g. Europe/Berlin, UTC)`;
  try {
    formatterFor(timezone);
    return null;
  } catch {
    return `"${timezone}" is not an IANA time zone (e.g. Europe/Berlin, America/New_York, UTC)`;
  }
}

/**
 * The last reading per zone. `formatToParts` costs microseconds; every request within one UTC
 * minute reads the same wall-clock minute (zone offsets are whole minutes and DST transitions
 * fall on minute boundaries), so one reading per zone and minute is enough.
 */
const lastReading = new Map<string, { readonly utcMinute: number; readonly clock: WallClock }>();

/**
 * The weekday and minute of `now` on the clocks of `timezone`. Wall-clock time is what grants
 * are written in, so on DST change days a window keeps its local hours (08:00 stays 08:00).
 */
export function wallClock(timezone: string, now: Date): WallClock {
  const epochMs = now.getTime();
  // An invalid date has no wall-clock time; weekday -1 matches no window (fail closed).
  if (Number.isNaN(epochMs)) return { weekday: -1, minute: -1 };
  const utcMinute = Math.floor(epochMs / 60_000);
  const last = lastReading.get(timezone);
  if (last !== undefined && last.utcMinute === utcMinute) return last.clock;
  let weekday = -1;
  let hour = 0;
  let minute = 0;
  for (const part of formatterFor(timezone).formatToParts(now)) {
    if (part.type === 'weekday') weekday = WEEKDAY_INDEX[part.value] ?? -1;
    else if (part.type === 'hour') hour = Number(part.value);
    else if (part.type === 'minute') minute = Number(part.value);
  }
  const clock = Object.freeze({ weekday, minute: hour * 60 + minute });
  lastReading.set(timezone, { utcMinute, clock });
  return clock;
}

/**
 * True when `now` falls inside one of the windows (true when the grant has none). A window with
 * `to <= from` crosses midnight: `fri 22:00–02:00` covers Friday 22:00 to Saturday 02:00.
 */
export function withinTimeWindows(constraints: CompiledConstraints, now: Date, clock: WallClock = wallClock(constraints.timezone, now)): boolean {
  if (constraints.timeWindows === null) return true;
  // An unreadable clock (no weekday) is inside no window: fail closed.
  if (clock.weekday < 0) return false;
  return constraints.timeWindows.some((window) => windowCovers(window, clock));
}

function windowCovers(window: CompiledTimeWindow, { weekday, minute }: WallClock): boolean {
  if (window.fromMinute < window.toMinute) {
    return window.days.has(weekday) && minute >= window.fromMinute && minute < window.toMinute;
  }
  // Crossing midnight: the part after `from` on a listed day, and the part before `to` on the
  // day after a listed day.
  const yesterday = (weekday + 6) % 7;
  return (window.days.has(weekday) && minute >= window.fromMinute) || (window.days.has(yesterday) && minute < window.toMinute);
}

// ---------------------------------------------------------------------------------------------
// Source networks

/** Adds `a.b.c.d/n` or `x:y::/n` to the list; null when it was a valid CIDR block, else why not. */
function addSubnet(list: BlockList, block: string): string | null {
  const slash = block.indexOf('/');
  const address = block.slice(0, slash);
  const prefixText = block.slice(slash + 1);
  const family = isIP(address);
  if (slash < 0 || family === 0) return `"${block}": "${address}" is not an IPv4 or IPv6 address`;
  const prefix = Number(prefixText);
  const maxPrefix = family === 4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(prefixText) || prefix > maxPrefix) return `"${block}": prefix length must be 0–${maxPrefix}`;
  // A block with host bits set (`10.1.2.3/8`) is most likely a typo for a single address or for
  // another block; refuse it rather than guess which one was meant.
  const network = networkAddress(address, family, prefix);
  if (network !== canonicalAddress(address, family)) return `"${block}": host bits are set; the block would be ${network}/${prefix}`;
  list.addSubnet(address, prefix, family === 4 ? 'ipv4' : 'ipv6');
  return null;
}

/**
 * True when `sourceIp` is inside one of the grant's networks (true when the grant names none).
 * An IPv4-mapped IPv6 address (`::ffff:10.1.2.3`, what a dual-stack listener reports for an
 * IPv4 client, RFC 4291 §2.5.5.2) matches IPv4 blocks: node's BlockList compares it as IPv4.
 */
export function fromAllowedNetwork(constraints: CompiledConstraints, sourceIp: string): boolean {
  return constraints.sourceNetworks === null || inNetworks(constraints.sourceNetworks, sourceIp);
}

/** CIDR blocks (validated: no host bits set) as one BlockList. */
export function compileNetworks(blocks: readonly string[]): { ok: true; networks: BlockList } | { ok: false; index: number; message: string } {
  const networks = new BlockList();
  for (const [index, block] of blocks.entries()) {
    const problem = addSubnet(networks, block);
    if (problem !== null) return { ok: false, index, message: problem };
  }
  return { ok: true, networks };
}

/** True when `sourceIp` is inside `networks` (IPv4-mapped IPv6 addresses match IPv4 blocks). */
export function inNetworks(networks: BlockList, sourceIp: string): boolean {
  const family = isIP(sourceIp);
  // Not an address (or one with a zone index, `fe80::1%eth0`): matches nothing.
  if (family === 0 || sourceIp.includes('%')) return false;
  return networks.check(sourceIp, family === 4 ? 'ipv4' : 'ipv6');
}

// Network address arithmetic, for the host-bits check at load time only.

function canonicalAddress(address: string, family: number): string {
  return family === 4 ? address : bigIntToIPv6(ipv6ToBigInt(address));
}

function networkAddress(address: string, family: number, prefix: number): string {
  if (family === 4) {
    const value = address.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);
    const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
    const network = (value & mask) >>> 0;
    return [24, 16, 8, 0].map((shift) => (network >>> shift) & 255).join('.');
  }
  const value = ipv6ToBigInt(address);
  const mask = prefix === 0 ? 0n : ((1n << 128n) - 1n) ^ ((1n << BigInt(128 - prefix)) - 1n);
  return bigIntToIPv6(value & mask);
}

function ipv6ToBigInt(address: string): bigint {
  let text = address;
  // An embedded IPv4 tail (`::ffff:10.1.2.3`) → two hex groups.
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4 !== null) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = text.slice(0, v4.index) + ((a << 8) | b).toString(16) + ':' + ((c << 8) | d).toString(16);
  }
  const [head = '', tail] = text.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const zeros = tail === undefined ? [] : new Array<string>(8 - headGroups.length - tailGroups.length).fill('0');
  return [...headGroups, ...zeros, ...tailGroups].reduce((acc, group) => (acc << 16n) | BigInt(parseInt(group, 16)), 0n);
}

/** RFC 5952 §4 text form: lowercase, no leading zeros, the longest run of 2+ zero groups as `::`. */
function bigIntToIPv6(value: bigint): string {
  const groups: string[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) groups.push(((value >> shift) & 0xffffn).toString(16));
  let bestStart = -1;
  let bestLength = 1;
  for (let start = 0; start < 8; start++) {
    let length = 0;
    while (start + length < 8 && groups[start + length] === '0') length++;
    if (length > bestLength) [bestStart, bestLength] = [start, length];
  }
  if (bestStart < 0) return groups.join(':');
  return `${groups.slice(0, bestStart).join(':')}::${groups.slice(bestStart + bestLength).join(':')}`;
}
