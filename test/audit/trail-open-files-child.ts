// Child process of trail-open-files.test.ts, started with a low open-files limit (RLIMIT_NOFILE):
// it writes records for many more partners than it may hold files open, in several cycles.
import { readdirSync } from 'node:fs';
import { openAuditTrail } from '../../src/audit/trail.ts';
import { setLogListener } from '../../src/log.ts';
import { decision, trailOptions } from './trail-fixtures.ts';

setLogListener(null, { quiet: true });
const [dir, partnersText] = process.argv.slice(2) as [string, string];
const partners = Number(partnersText);
const trail = await openAuditTrail(trailOptions(dir, { flushIntervalMs: 60_000 }));
let refused = 0;
let mostOpen = 0;
for (let n = 0; n < partners * 2; n++) {
  const partner = `p${n % partners}`;
  if (!trail.append(decision(n, partner), partner)) refused += 1;
  if (n % 400 === 399) {
    await trail.flush().catch(() => undefined);
    mostOpen = Math.max(mostOpen, readdirSync('/proc/self/fd').length);
  }
}
const flushError = await trail.flush().then(() => null, (error: unknown) => String(error));
mostOpen = Math.max(mostOpen, readdirSync('/proc/self/fd').length);
const stats = trail.stats();
await trail.close();
process.stdout.write(JSON.stringify({ refused, flushError, stats, mostOpen, publicKeyPem: trail.publicKeyPem }));
