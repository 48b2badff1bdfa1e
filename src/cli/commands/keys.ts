/**
 * `portcullis keys list | rotate`: the token service's signing keys (issue 5 "Keys";
 * docs/tokens.md "Rotation"). Works on the state store of the configuration directly — the
 * embedded SQLite file of the data folder, or Redis — where every gateway instance reads the
 * keys from; running gateways pick a rotation up within their 15 s key refresh.
 */
import { parseArgs } from 'node:util';
import type { Command } from '../command.ts';
import { usageError as printUsageError } from '../command.ts';
import type { TokenKey } from '../../tokens/types.ts';

/** JWKS caches keep a document up to 300 s (`cache-control: max-age=300`) and gateways re-read the keys every 15 s. */
const JWKS_MAX_AGE_MS = 300_000;
const KEYS_REFRESH_MS = 15_000;
const SAFE_PUBLISH_DELAY_MS = JWKS_MAX_AGE_MS + KEYS_REFRESH_MS;
const DEFAULT_PUBLISH_DELAY = '6m';

const USAGE = `Usage: portcullis keys list -c FILE [--format text|json]
       portcullis keys rotate -c FILE [--publish-delay DURATION]

The token service's signing keys, in the state store of the configuration (the data folder's
SQLite file, or Redis): every gateway instance on that store signs with the same key.

list     every key: kid (RFC 7638 thumbprint), algorithm, when it was created, when it signs
         from, when it stopped signing, and when it leaves the JWKS
rotate   add a key of token_service.algorithm. It is published in the JWKS at once and signs
         only after the publish delay, so relying parties' JWKS caches learn it first; the
         previous key stops signing then and stays published for token_service.key_overlap,
         so the tokens it signed still verify. Running gateways see the change within 15 s.

Options:
  -c, --config FILE              the gateway's configuration (needs a token_service section)
      --publish-delay DURATION   rotate: how long the new key is published before it signs
                                 (250ms, 10s, 5m, 1h; default ${DEFAULT_PUBLISH_DELAY}). Keep it above 315s
                                 (JWKS max-age 300 s + the gateways' 15 s refresh)
      --format FORMAT            list: text (default) or json
  -h, --help                     show this help

Exit status: 0 done, 1 the state store or the keys could not be used, 2 usage error (including
a configuration that does not load or has no token_service).
`;

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const DURATION_UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
/** A publish delay beyond a week is a typo, not a plan: the old key would keep signing that long. */
const MAX_PUBLISH_DELAY_MS = 7 * 86_400_000;

/** The configuration's duration syntax (`duration` in src/config/schema.ts), to milliseconds; null when malformed. */
export function parseDuration(text: string): number | null {
  const match = DURATION.exec(text);
  if (!match) return null;
  const ms = Math.round(Number(match[1]) * DURATION_UNIT_MS[match[2] as keyof typeof DURATION_UNIT_MS]);
  return Number.isSafeInteger(ms) ? ms : null;
}

export const command: Command = {
  summary: 'List or rotate the token service signing keys (list | rotate)',
  usage: USAGE,
  async run(argv) {
    let values;
    let positionals;
    try {
      ({ values, positionals } = parseArgs({
        args: [...argv],
        options: {
          config: { type: 'string', short: 'c' },
          'publish-delay': { type: 'string' },
          format: { type: 'string', default: 'text' },
          help: { type: 'boolean', short: 'h', default: false },
        },
        strict: true,
        allowPositionals: true,
      }));
    } catch (error) {
      return usageError((error as Error).message);
    }
    if (values.help) {
      process.stdout.write(USAGE);
      return 0;
    }
    const [subcommand, ...rest] = positionals;
    if (subcommand !== 'list' && subcommand !== 'rotate') {
      return usageError(subcommand === undefined ? 'a subcommand is required: list or rotate' : `unknown subcommand "${subcommand}"`);
    }
    if (rest.length > 0) return usageError(`${subcommand} takes no arguments, got "${rest.join(' ')}"`);
    if (values.config === undefined) return usageError('--config is required');
    if (values.format !== 'text' && values.format !== 'json') return usageError('--format must be text or json');
    if (subcommand === 'list' && values['publish-delay'] !== undefined) return usageError('--publish-delay is for "keys rotate" only');
    if (subcommand === 'rotate' && values.format !== 'text') return usageError('--format is for "keys list" only');
    const publishDelayMs = parseDuration(values['publish-delay'] ?? DEFAULT_PUBLISH_DELAY);
    if (publishDelayMs === null) return usageError(`--publish-delay must be a duration such as 10s, 6m or 1h, not "${values['publish-delay']}"`);
    if (publishDelayMs > MAX_PUBLISH_DELAY_MS) return usageError('--publish-delay is longer than 7 days');

    // Loaded once the arguments are known good, so a usage error answers at once.
    const [{ formatIssue, loadConfig }, { openStateStore }, { openTokenKeys }] = await Promise.all([
      import('../../config/load.ts'),
      import('../../state/open.ts'),
      import('../../tokens/keys.ts'),
    ]);
    // Offline: the keys live in the state store; no issuer's keys need fetching.
    const loaded = await loadConfig(values.config, { offline: true });
    if (!loaded.ok) {
      process.stderr.write(loaded.issues.map((issue) => `${formatIssue(issue)}\n`).join(''));
      process.stderr.write(`portcullis keys: ${values.config} does not load; fix the problems above first\n`);
      return 2;
    }
    const service = loaded.snapshot.tokenService;
    if (service === null) {
      process.stderr.write(`portcullis keys: ${values.config} has no token_service section: there are no signing keys to ${subcommand}\n`);
      return 2;
    }

    let store;
    try {
      store = await openStateStore(loaded.snapshot.state);
    } catch (error) {
      process.stderr.write(`portcullis keys: the state store cannot be opened: ${(error as Error).message}\n`);
      return 1;
    }
    try {
      // Opening generates the first key when there is none, as a gateway's first start would.
      const keys = await openTokenKeys({ store, algorithm: service.algorithm });
      try {
        if (subcommand === 'list') {
          printList(keys.list(), values.format, Date.now());
          return 0;
        }
        const added = await keys.rotate({ publishDelayMs, overlapMs: service.keyOverlapMs });
        const activeFrom = activeFromOf(added);
        process.stdout.write(
          `added ${added.alg} key ${added.kid}: in the JWKS now, signs from ${iso(activeFrom)}\n` +
            `previous keys stop signing then and leave the JWKS at ${iso(activeFrom + service.keyOverlapMs)} (key_overlap)\n`,
        );
        if (publishDelayMs < SAFE_PUBLISH_DELAY_MS) {
          process.stderr.write(
            `warning: a publish delay under ${SAFE_PUBLISH_DELAY_MS / 1000}s lets the new key sign before every JWKS cache (max-age 300 s) and gateway (15 s refresh) knows it: its tokens may be refused meanwhile\n`,
          );
        }
        return 0;
      } finally {
        keys.close();
      }
    } catch (error) {
      process.stderr.write(`portcullis keys: ${(error as Error).message}\n`);
      return 1;
    } finally {
      await store.close();
    }
  },
};

/** `list()` carries when a key starts signing; TokenKey does not declare it yet. */
function activeFromOf(key: TokenKey): number {
  const activeFrom = (key as TokenKey & { activeFrom?: unknown }).activeFrom;
  return typeof activeFrom === 'number' ? activeFrom : key.createdAt;
}

function status(key: TokenKey, now: number): string {
  if (key.removeAt !== null && key.removeAt <= now) return 'removed';
  if (key.retiredAt !== null && key.retiredAt <= now) return 'published';
  if (activeFromOf(key) > now) return 'pending';
  return 'signing';
}

function printList(keys: readonly TokenKey[], format: string, now: number): void {
  if (format === 'json') {
    const rows = keys.map((key) => ({
      kid: key.kid,
      alg: key.alg,
      status: status(key, now),
      created_at: iso(key.createdAt),
      active_from: iso(activeFromOf(key)),
      retired_at: key.retiredAt === null ? null : iso(key.retiredAt),
      remove_at: key.removeAt === null ? null : iso(key.removeAt),
    }));
    process.stdout.write(`${JSON.stringify({ keys: rows }, null, 2)}\n`);
    return;
  }
  const header = ['KID', 'ALG', 'STATUS', 'CREATED', 'ACTIVE FROM', 'RETIRED', 'REMOVED AT'];
  const rows = keys.map((key) => [
    key.kid,
    key.alg,
    status(key, now),
    iso(key.createdAt),
    iso(activeFromOf(key)),
    key.retiredAt === null ? '-' : iso(key.retiredAt),
    key.removeAt === null ? '-' : iso(key.removeAt),
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (row: readonly string[]): string => row.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd();
  process.stdout.write(`${[line(header), ...rows.map(line)].join('\n')}\n`);
}

function iso(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function usageError(message: string): number {
  return printUsageError('keys', USAGE, message);
}
