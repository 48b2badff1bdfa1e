/**
 * Audit trail scale: what opening (and verifying) a trail costs when it holds a stream per partner
 * — 10,000 partner streams — against the same records in the combined stream alone.
 *
 *   cd bench && npm run bench:trail-scale            # ≈ 1 min
 *   npm run bench:trail-scale -- --partners 1000     # smaller
 *
 * Opening is what every start and every worker pays before the gateway is ready: each stream's
 * last line is read and checked (src/audit/trail.ts recoverStreams), and the records a stop kept
 * from a partner stream are looked for (src/audit/reconcile.ts). Both trails are written once, in
 * a private temp dir, with the project's own `openAuditTrail`; then, alternating the two, each is
 * opened and closed `--repeat` times, and verified with `verifyTrail` (`portcullis audit verify`)
 * once. Prints medians and the ratio of the partner trail to the combined-only one.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openAuditTrail } from '../src/audit/trail.ts';
import type { AuditTrailOptions } from '../src/audit/trail.ts';
import { verifyTrail } from '../src/audit/verify.ts';
import { setLogListener } from '../src/log.ts';
import { integerOption } from './lib/options.ts';
import { median } from './lib/report.ts';

const { values } = parseArgs({
  options: {
    partners: { type: 'string', default: '10000' },
    'records-per-partner': { type: 'string', default: '3' },
    repeat: { type: 'string', default: '3' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  process.stdout.write('Usage: node trail-scale.ts [--partners N (10000)] [--records-per-partner N (3)] [--repeat N (3)]\n');
  process.exit(0);
}
const partners = integerOption(values.partners!, '--partners', 1);
const perPartner = integerOption(values['records-per-partner']!, '--records-per-partner', 1);
const repeat = integerOption(values.repeat!, '--repeat', 1);
const records = partners * perPartner;

setLogListener(null, { quiet: true });
const root = mkdtempSync(join(tmpdir(), 'portcullis-trail-scale-'));
process.once('SIGINT', () => {
  rmSync(root, { recursive: true, force: true });
  process.exit(130);
});

function options(name: string): AuditTrailOptions {
  return { dir: join(root, name, 'audit'), keyDir: join(root, name, 'keys'), flush: 'interval', flushIntervalMs: 50, checkpointIntervalMs: 3_600_000, checkpointEvery: 100_000, signingKeyPath: null, maxQueue: 10_000 };
}

/** `records` decision-shaped records (~700 bytes), round-robin over `partnerCount` partners, or none. */
async function write(name: string, partnerCount: number): Promise<string> {
  const trail = await openAuditTrail(options(name));
  for (let n = 0; n < records; n++) {
    const partner = partnerCount === 0 ? null : `partner-${String(n % partnerCount).padStart(5, '0')}`;
    const record = {
      '@timestamp': new Date(Date.UTC(2026, 11, 1) + n).toISOString(),
      event: { action: 'gateway.request', kind: 'event', outcome: 'success', reason: 'allowed' },
      http: { request: { id: `req-${n}`, method: 'GET' }, response: { status_code: 200 } },
      portcullis: { decision: 'allow', partner: partner === null ? null : { id: partner }, route: 'orders', scopes: ['orders:read'], padding: 'x'.repeat(400) },
      url: { path: `/orders/${n}` },
    };
    if (!trail.append(record, partner)) {
      await trail.flush();
      if (!trail.append(record, partner)) throw new Error('the trail refused a record');
    }
    if (n % 5000 === 4999) await trail.flush();
  }
  await trail.close();
  return trail.publicKeyPem;
}

const rows = [
  { name: 'combined-only', partners: 0, open: [] as number[], verify: Number.NaN, publicKeyPem: '' },
  { name: `${partners}-partner-streams`, partners, open: [] as number[], verify: Number.NaN, publicKeyPem: '' },
];
process.stdout.write(`trail-scale: ${records} records; writing the two trails in ${root}\n`);
for (const row of rows) row.publicKeyPem = await write(row.name, row.partners);
for (let round = 0; round < repeat; round++) {
  for (const row of round % 2 === 0 ? rows : [...rows].reverse()) {
    const started = performance.now();
    const trail = await openAuditTrail(options(row.name));
    row.open.push(performance.now() - started);
    await trail.close();
  }
}
for (const row of rows) {
  const started = performance.now();
  const report = await verifyTrail(options(row.name).dir, { publicKeyPem: row.publicKeyPem });
  row.verify = performance.now() - started;
  if (!report.ok) throw new Error(`${row.name}: audit verify found a problem: ${JSON.stringify(report.streams.find((stream) => !stream.ok))}`);
}
rmSync(root, { recursive: true, force: true });

const [base, scaled] = rows as [(typeof rows)[0], (typeof rows)[0]];
const ms = (value: number) => `${Math.round(value).toLocaleString('en-US')} ms`;
process.stdout.write(
  [
    '',
    `| trail (${records.toLocaleString('en-US')} records) | open + close, median of ${repeat} | audit verify |`,
    '|:---|---:|---:|',
    ...rows.map((row) => `| ${row.name} | ${ms(median(row.open))} | ${ms(row.verify)} |`),
    `| ratio | ${(median(scaled.open) / median(base.open)).toFixed(2)}× | ${(scaled.verify / base.verify).toFixed(2)}× |`,
    '',
  ].join('\n'),
);
