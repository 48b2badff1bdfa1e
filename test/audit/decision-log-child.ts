// Child process of decision-log.test.ts, started under a file-size soft limit (RLIMIT_FSIZE):
// the kernel stops a batch part-way through a line (a real short write, then EFBIG); the child
// lifts the limit and flushes again.
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { openDecisionLog } from '../../src/audit/decision-log.ts';
import { setLogListener } from '../../src/log.ts';

// Without a handler, SIGXFSZ ends the process; with one, the write fails with EFBIG instead.
process.on('SIGXFSZ', () => undefined);
const failures: unknown[] = [];
setLogListener((entry) => {
  if (entry.event === 'decision_log.write_failed') failures.push(entry);
}, { quiet: true });
const [path] = process.argv.slice(2) as [string];
const log = openDecisionLog(path);
for (let n = 0; n < 20; n++) log.writeJson(JSON.stringify({ n, padding: 'é'.repeat(100) }));
log.flush();
const sizeDuring = statSync(path).size;
execFileSync('prlimit', ['--pid', String(process.pid), '--fsize=unlimited:unlimited']);
log.writeJson(JSON.stringify({ n: 20 }));
log.close();
process.stdout.write(JSON.stringify({ failures, sizeDuring }));
