// Child process of trail-partial-write.test.ts, started under a file-size soft limit
// (RLIMIT_FSIZE): the kernel stops the batch write part-way through a line (a real short
// write, then EFBIG), and the child lifts the limit later to remove the fault.
import { execFileSync } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { openAuditTrail } from '../../src/audit/trail.ts';
import { setLogListener } from '../../src/log.ts';

// Without a handler, SIGXFSZ ends the process; with one, the write fails with EFBIG instead.
process.on('SIGXFSZ', () => undefined);
setLogListener(null, { quiet: true });
const [dir, keyDir] = process.argv.slice(2) as [string, string];
const trail = await openAuditTrail({
  dir, keyDir, flush: 'interval', flushIntervalMs: 60_000, checkpointIntervalMs: 60_000, checkpointEvery: 1000, signingKeyPath: null, maxQueue: 1000,
});
const record = (n: number) => ({ event: { action: 'gateway.request' }, http: { request: { id: `req-${n}` } }, portcullis: { padding: 'x'.repeat(200) } });
for (let n = 0; n < 20; n++) trail.append(record(n), null);
const flushError = await trail.flush().then(() => null, (error: unknown) => String(error));
const during = { healthy: trail.healthy(), accepted: trail.append(record(99), null), stats: trail.stats(), size: (await stat(join(dir, 'combined.jsonl'))).size };
execFileSync('prlimit', ['--pid', String(process.pid), '--fsize=unlimited:unlimited']);
await trail.flush();
const healed = trail.healthy();
trail.append(record(20), null);
await trail.close();
process.stdout.write(JSON.stringify({ flushError, during, healed, after: trail.stats(), publicKeyPem: trail.publicKeyPem, keyId: trail.keyId }));
