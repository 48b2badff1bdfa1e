// Child process of reconcile.test.ts, started under a file-size soft limit (RLIMIT_FSIZE): the
// combined stream's write fails part-way, and the partner stream must not have been written
// ahead of it. The child then lifts the limit and lets the trail heal.
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
const record = (n: number) => ({ event: { action: 'gateway.request' }, http: { request: { id: `req-${n}` } }, portcullis: { partner: { id: 'acme' }, padding: 'x'.repeat(200) } });
const sizeOf = (file: string): Promise<number> => stat(join(dir, file)).then((info) => info.size, () => 0);
for (let n = 0; n < 20; n++) trail.append(record(n), 'acme');
const flushError = await trail.flush().then(() => null, (error: unknown) => String(error));
const during = { combinedBytes: await sizeOf('combined.jsonl'), partnerBytes: await sizeOf('partners/acme.jsonl') };
execFileSync('prlimit', ['--pid', String(process.pid), '--fsize=unlimited:unlimited']);
await trail.flush();
await trail.close();
process.stdout.write(JSON.stringify({ flushError, during, after: trail.stats(), publicKeyPem: trail.publicKeyPem }));
