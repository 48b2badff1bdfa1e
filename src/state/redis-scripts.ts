/**
 * The Lua scripts of the Redis state driver. Each one is a single atomic step on the server
 * (Redis runs a script to completion before any other command), which is what makes a shared
 * counter exact across instances and a revocation's write and its announcement inseparable.
 *
 * Scripts run with EVALSHA; on `NOSCRIPT` (a restarted or failed-over server, or a cluster node
 * that never saw the script) the driver falls back to EVAL, which also caches the script there.
 *
 * Cluster: every key one script touches is passed in KEYS and shares one hash tag, so a script
 * never spans slots. PUBLISH is not a key operation and reaches the whole cluster.
 *
 * Numbers: Redis turns a Lua number returned by a script into an integer reply by truncation,
 * so scripts return only integers (or strings) and store fractional values with `%.17g`, which
 * a double survives exactly. Numbers passed to `redis.call` are formatted by Redis without loss.
 */
import { createHash } from 'node:crypto';

export interface RedisScript {
  readonly name: string;
  readonly source: string;
  /** SHA-1 of the source: the EVALSHA handle. */
  readonly sha1: string;
}

function script(name: string, source: string): RedisScript {
  return { name, source, sha1: createHash('sha1').update(source).digest('hex') };
}

/** The server clock in ms since the epoch (TIME answers seconds and microseconds). */
const SERVER_NOW_MS = `
local function server_now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`;

/**
 * GCRA, step for step the same computation as `gcraStep` in gcra.ts (ECOSYSTEM.md §2.19): the
 * same IEEE-754 double operations in the same order, so both give identical answers.
 *
 * KEYS[1] bucket (holds the TAT, "theoretical arrival time"); ARGV[1] emission interval (ms),
 * ARGV[2] burst, ARGV[3] now (ms) or '' for the server clock.
 * Returns { allowed (1/0), retryAfterMs, remaining, resetMs }.
 * The key expires when the bucket is full again (the TAT is then in the past, which means the
 * same as no TAT at all).
 */
export const GCRA_SCRIPT = script('gcra', `${SERVER_NOW_MS}
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2]) * interval
local now
if ARGV[3] == '' then now = server_now_ms() else now = tonumber(ARGV[3]) end
local stored = redis.call('GET', KEYS[1])
local tat = now
if stored then
  local stored_tat = tonumber(stored)
  if stored_tat and stored_tat >= now then tat = stored_tat end
end
if tat - now > tolerance then
  local retry_after = math.ceil(tat - tolerance - now)
  if retry_after < 1 then retry_after = 1 end
  return { 0, retry_after, 0, math.ceil(tat - now) }
end
local new_tat = tat + interval
local remaining = math.floor((tolerance - (new_tat - now)) / interval) + 1
if remaining < 0 then remaining = 0 end
local reset_ms = math.ceil(new_tat - now)
redis.call('SET', KEYS[1], string.format('%.17g', new_tat), 'PX', math.max(1, reset_ms))
return { 1, 0, remaining, reset_ms }
`);

/**
 * A calendar-window quota: counts only calls under the limit (a refused call costs nothing).
 * KEYS[1] counter (its name includes the window end, so a new window starts at zero);
 * ARGV[1] limit, ARGV[2] expiry (ms since the epoch: the window end plus slack, so a late
 * caller with a slightly slow clock still finds the count).
 * Returns { allowed (1/0), used }.
 */
export const QUOTA_SCRIPT = script('quota', `
local limit = tonumber(ARGV[1])
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used < limit then
  used = redis.call('INCR', KEYS[1])
  redis.call('PEXPIREAT', KEYS[1], ARGV[2])
  return { 1, used }
end
return { 0, used }
`);

/**
 * One change of the revocation state, its version and its announcement, atomically: a reader of
 * the full state (LOAD_STATE_SCRIPT) sees either the state before the change and a version
 * below the announcement's, or the state after it and a version at least the announcement's.
 *
 * KEYS[1] the hash changed (revocations or partners), KEYS[2] version counter,
 * KEYS[3] live-instance registry (sorted set, score = registration expiry in server ms),
 * KEYS[4] expiry index of revocations (sorted set, score = expiresAt).
 * ARGV[1] 'set' | 'del', ARGV[2] hash field, ARGV[3] value ('set'), ARGV[4] expiresAt ('' = never;
 * revocations only), ARGV[5] events channel, ARGV[6] the envelope JSON without its opening brace
 * (the script prepends `{"v":<version>,`).
 * A 'del' that finds nothing changes nothing: no version, no announcement.
 * Returns { changed (0/1), version, { live instance ids } }.
 */
export const CHANGE_SCRIPT = script('change', `${SERVER_NOW_MS}
local changed
if ARGV[1] == 'set' then
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
  if ARGV[4] ~= '' then redis.call('ZADD', KEYS[4], ARGV[4], ARGV[2]) else redis.call('ZREM', KEYS[4], ARGV[2]) end
  changed = 1
else
  changed = redis.call('HDEL', KEYS[1], ARGV[2])
  redis.call('ZREM', KEYS[4], ARGV[2])
end
local now = server_now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local live = redis.call('ZRANGEBYSCORE', KEYS[3], '(' .. now, '+inf')
if changed == 0 then
  return { 0, tonumber(redis.call('GET', KEYS[2]) or '0'), live }
end
local version = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[5], '{"v":' .. version .. ',' .. ARGV[6])
return { changed, version, live }
`);

/**
 * The whole revocation state and its version in one atomic read.
 * KEYS[1] revocations, KEYS[2] partners, KEYS[3] version.
 * Returns { version, { field, value, … }, { field, value, … } }.
 */
export const LOAD_STATE_SCRIPT = script('load_state', `
return { tonumber(redis.call('GET', KEYS[3]) or '0'), redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2]) }
`);

/**
 * Registers (or refreshes) this instance as live until now + ttl on the server clock, forgets
 * instances whose registration ran out, and reports the current version (the driver compares it
 * with what the subscription delivered, to notice a subscription that silently stopped).
 * KEYS[1] registry, KEYS[2] version; ARGV[1] instance id, ARGV[2] ttl (ms). Returns the version.
 */
export const HEARTBEAT_SCRIPT = script('heartbeat', `${SERVER_NOW_MS}
local now = server_now_ms()
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return tonumber(redis.call('GET', KEYS[2]) or '0')
`);

/** KEYS[1] registry; ARGV[1] instance id. */
export const UNREGISTER_SCRIPT = script('unregister', `
return redis.call('ZREM', KEYS[1], ARGV[1])
`);

/**
 * Forgets token revocations whose token has expired anyway (at most ARGV[2] per call, to keep
 * each run short). Every instance prunes its own memory by the same rule, so nothing is announced.
 * KEYS[1] revocations, KEYS[2] expiry index; ARGV[1] now (ms), ARGV[2] batch size.
 * Returns the number removed.
 */
export const PRUNE_SCRIPT = script('prune', `
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, field in ipairs(expired) do
  redis.call('HDEL', KEYS[1], field)
  redis.call('ZREM', KEYS[2], field)
end
return #expired
`);

export const ALL_SCRIPTS: readonly RedisScript[] = [
  GCRA_SCRIPT, QUOTA_SCRIPT, CHANGE_SCRIPT, LOAD_STATE_SCRIPT, HEARTBEAT_SCRIPT, UNREGISTER_SCRIPT, PRUNE_SCRIPT,
];
