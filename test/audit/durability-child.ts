// Child process of trail-every-record.test.ts, started under a file-size soft limit
// (RLIMIT_FSIZE): with `every-record`, a record whose write the kernel refuses (EFBIG) is
// reported to its waiting caller as not durable, the trail refuses new records, and once the
// child lifts the limit the retry writes the record and new ones are durable again.
import { execFileSync } from 'node:child_process';
import { openAuditTrail } from '../../src/audit/trail.ts';
import { setLogListener } from '../../src/log.ts';

const events: string[] = [];
setLogListener((entry) => events.push(entry.event), { quiet: true });
const [dir, keyDir] = process.argv.slice(2) as [string, string];
const trail = await openAuditTrail({
  dir, keyDir, flush: 'every-record', flushIntervalMs: 50, checkpointIntervalMs: 60_000, checkpointEvery: 1000, signingKeyPath: null, maxQueue: 1000,
});
const record = (n: number) => ({ event: { action: 'gateway.request' }, http: { request: { id: `req-${n}` } }, portcullis: { padding: 'x'.repeat(200) } });
const durable = (n: number): Promise<string | null> =>
  new Promise((resolve) => {
    if (!trail.append(record(n), null, (error) => resolve(error === null ? null : error.message))) resolve('refused');
  });

const first = await durable(0);
const second = await durable(1);
const during = { healthy: trail.healthy(), accepted: trail.append(record(99), null) };
execFileSync('prlimit', ['--pid', String(process.pid), '--fsize=unlimited:unlimited']);
// The retry runs on the trail's own backoff timer: no flush() from here.
const deadline = Date.now() + 5000;
while (!trail.healthy() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
const healed = trail.healthy();
const third = await durable(2);
await trail.close();
process.stdout.write(JSON.stringify({ first, second, during, healed, third, after: trail.stats(), events, publicKeyPem: trail.publicKeyPem, keyId: trail.keyId }));
