/**
 * `portcullis report <report>`: reports computed from a configuration, without a running gateway.
 *
 * `report certificates` lists every certificate the configuration names (listener certificates
 * and chains, partner CAs and pins, upstream and introspection CAs and client certificates,
 * issuer CAs — `src/pki/inventory.ts`) by expiry, with the days left, and flags the expired ones
 * and those expiring within `--within`. Its exit status makes it a CI or cron check: 0 nothing
 * flagged, 1 something flagged, 2 usage error or a configuration that does not load.
 */
import { relative, isAbsolute } from 'node:path';
import { parseArgs } from 'node:util';
import type { Command } from '../command.ts';
import { usageError as printUsageError } from '../command.ts';
import type { InventoryEntry } from '../../pki/inventory.ts';

const USAGE = `Usage: portcullis report certificates -c FILE [--within DURATION] [--format table|json]

Reports computed from a configuration file; nothing is bound or served.

certificates   Every certificate the configuration names — listener certificates and their
               chains, partner CAs and pinned fingerprints, upstream and introspection CAs and
               client certificates, issuer CAs — sorted by expiry, with the days left.
               ✖ marks an expired certificate, ⚠ one expiring within the window. Pinned
               fingerprints have no certificate, so no dates.

Options:
  -c, --config FILE     configuration file (YAML)
      --within DURATION flag certificates expiring within this long: 30d (default), 12h, 8w
      --format FORMAT   table (default) or json
  -h, --help            show this help

Exit status: 0 nothing expired or expiring within the window, 1 something is,
2 usage error or a configuration that does not load (its problems on stderr).
`;

const REPORTS = ['certificates'] as const;

export const command: Command = {
  summary: 'Reports from a configuration file (certificates: every certificate by expiry)',
  usage: USAGE,
  async run(argv) {
    const [report, ...rest] = argv;
    if (report === 'certificates') return certificates(rest);
    return usageError(report === undefined ? `a report is required: ${REPORTS.join(', ')}` : `unknown report "${report}" (known: ${REPORTS.join(', ')})`);
  },
};

const DAY_MS = 86_400_000;
const WITHIN_UNITS_MS = { h: 3_600_000, d: DAY_MS, w: 7 * DAY_MS } as const;
/** Ten years: a longer window is a typo, not a policy. */
const MAX_WITHIN_MS = 3650 * DAY_MS;
const DEFAULT_WITHIN = '30d';

/** `30d`, `12h`, `8w` → ms; null when malformed or absurd. */
export function parseWithin(text: string): number | null {
  const match = /^(\d{1,5})([hdw])$/.exec(text.trim());
  if (!match) return null;
  const ms = Number(match[1]) * WITHIN_UNITS_MS[match[2] as keyof typeof WITHIN_UNITS_MS];
  return ms <= MAX_WITHIN_MS ? ms : null;
}

export type CertificateStatus = 'expired' | 'expiring' | 'valid' | 'unknown';

export interface CertificateRow {
  readonly entry: InventoryEntry;
  readonly status: CertificateStatus;
  /** Whole days until notAfter (negative once expired, rounded down); null when unknown. */
  readonly daysLeft: number | null;
}

/** The inventory judged at `nowMs`, soonest expiry first (unknown dates last). */
export function judgeCertificates(entries: readonly InventoryEntry[], nowMs: number, withinMs: number): CertificateRow[] {
  const rows = entries.map((entry): CertificateRow => {
    if (entry.notAfter === null) return { entry, status: 'unknown', daysLeft: null };
    const notAfterMs = Date.parse(entry.notAfter);
    const status: CertificateStatus = notAfterMs <= nowMs ? 'expired' : notAfterMs <= nowMs + withinMs ? 'expiring' : 'valid';
    return { entry, status, daysLeft: Math.floor((notAfterMs - nowMs) / DAY_MS) };
  });
  const expiryOf = (row: CertificateRow): number => (row.entry.notAfter === null ? Number.POSITIVE_INFINITY : Date.parse(row.entry.notAfter));
  return rows.sort(
    (a, b) => expiryOf(a) - expiryOf(b) || a.entry.kind.localeCompare(b.entry.kind) || a.entry.owner.localeCompare(b.entry.owner) || a.entry.fingerprintSha256.localeCompare(b.entry.fingerprintSha256),
  );
}

async function certificates(argv: readonly string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        config: { type: 'string', short: 'c' },
        within: { type: 'string', default: DEFAULT_WITHIN },
        format: { type: 'string', default: 'table' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    return usageError((error as Error).message);
  }
  if (values.config === undefined) return usageError('--config is required');
  if (values.format !== 'table' && values.format !== 'json') return usageError(`--format must be "table" or "json", not "${values.format}"`);
  const withinMs = parseWithin(values.within);
  if (withinMs === null) return usageError(`--within must be a whole number of hours, days or weeks up to 3650d (e.g. 30d, 12h, 8w), not "${values.within}"`);

  // Loaded once the arguments are known good, so a usage error answers at once.
  const [{ formatIssue, loadConfig }, { certificateInventory }] = await Promise.all([import('../../config/load.ts'), import('../../pki/inventory.ts')]);
  // Offline: the report reads certificate files; it never needs an issuer's keys.
  const result = await loadConfig(values.config, { offline: true });
  if (!result.ok) {
    process.stderr.write(result.issues.map((issue) => `${formatIssue(issue)}\n`).join(''));
    process.stderr.write(`portcullis report: ${values.config} does not load; fix the problems above first\n`);
    return 2;
  }
  const nowMs = Date.now();
  const rows = judgeCertificates(certificateInventory(result.snapshot), nowMs, withinMs);
  const expired = rows.filter((row) => row.status === 'expired').length;
  const expiring = rows.filter((row) => row.status === 'expiring').length;

  if (values.format === 'json') {
    const report = {
      config: result.snapshot.sourcePath,
      generated_at: new Date(nowMs).toISOString(),
      within: values.within,
      expired,
      expiring,
      certificates: rows.map(({ entry, status, daysLeft }) => ({
        kind: entry.kind,
        owner: entry.owner,
        status,
        days_left: daysLeft,
        not_before: entry.notBefore,
        not_after: entry.notAfter,
        subject: entry.subject,
        issuer: entry.issuer,
        serial: entry.serial,
        fingerprint_sha256: `sha256:${entry.fingerprintSha256}`,
      })),
    };
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    process.stdout.write(table(rows, { config: displayPath(values.config), nowMs, within: values.within, expired, expiring }));
  }
  return expired + expiring > 0 ? 1 : 0;
}

const MARK: Record<CertificateStatus, string> = { expired: '✖', expiring: '⚠', valid: ' ', unknown: ' ' };

function table(rows: readonly CertificateRow[], summary: { config: string; nowMs: number; within: string; expired: number; expiring: number }): string {
  const header = `Certificates named by ${summary.config} (${new Date(summary.nowMs).toISOString().slice(0, 16)}Z; ⚠ = expiring within ${summary.within})\n\n`;
  if (rows.length === 0) return `${header}No certificates: no TLS listener, partner mTLS, upstream TLS or CA file is configured.\n`;
  const cells = rows.map(({ entry, status, daysLeft }) => [
    MARK[status],
    entry.notAfter === null ? 'unknown' : entry.notAfter.slice(0, 10),
    daysLeft === null ? '-' : String(daysLeft),
    entry.kind,
    entry.owner,
    entry.subject ?? '(pinned fingerprint)',
    `sha256:${entry.fingerprintSha256}`,
  ]);
  const titles = ['', 'EXPIRES', 'DAYS', 'KIND', 'OWNER', 'SUBJECT', 'FINGERPRINT'];
  const widths = titles.map((title, column) => Math.max(title.length, ...cells.map((row) => row[column]!.length)));
  const line = (row: readonly string[]): string =>
    row
      .map((cell, column) => (column === 2 ? cell.padStart(widths[column]!) : column === row.length - 1 ? cell : cell.padEnd(widths[column]!)))
      .join('  ')
      .trimEnd();
  const counts = [
    `${rows.length} certificate${rows.length === 1 ? '' : 's'}`,
    ...(summary.expired > 0 ? [`✖ ${summary.expired} expired`] : []),
    ...(summary.expiring > 0 ? [`⚠ ${summary.expiring} expiring within ${summary.within}`] : []),
  ];
  return `${header}${[titles, ...cells].map(line).join('\n')}\n\n${counts.join(', ')}${summary.expired + summary.expiring === 0 ? `; none expires within ${summary.within}` : ''}\n`;
}

/** A path relative to the working directory when it is inside it, for shorter output. */
function displayPath(path: string): string {
  const shorter = relative(process.cwd(), path);
  return shorter && !shorter.startsWith('..') && !isAbsolute(shorter) ? shorter : path;
}

function usageError(message: string): number {
  return printUsageError('report', USAGE, message);
}
