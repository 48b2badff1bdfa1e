// Child process of embedded.test.ts: another process on the same SQLite file, as a worker of
// `serve --workers N` or the CLI would be. Usage: embedded-writer-child.ts <path> <command> <json>.
//   open     {}            prints "opening", opens the store (creating and migrating the file),
//                          prints "opened"
//   revoke   {key, actor}  revokes a token and exits
//   unrevoke {key, actor}  unrevokes it and exits
//   hammer   {...}         prints "ready", waits for "go" on stdin, then runs GCRA, quota and
//                          setIfAbsent calls as fast as it can; prints what it was granted.
import { createInterface } from 'node:readline';
import { openEmbeddedStore } from '../../src/state/embedded.ts';
import { setLogListener } from '../../src/log.ts';

setLogListener(null, { quiet: true });
const [path, command, json] = process.argv.slice(2) as [string, string, string];
const args = JSON.parse(json) as Record<string, any>;
if (command === 'open') process.stdout.write('opening\n');
const store = await openEmbeddedStore({ path, propagationTimeoutMs: 1000 });

switch (command) {
  case 'open': {
    process.stdout.write('opened');
    break;
  }
  case 'revoke': {
    const propagation = await store.revoke({ kind: 'token', key: args['key'], reason: 'stolen', actor: args['actor'], at: Date.now(), expiresAt: null });
    process.stdout.write(JSON.stringify(propagation));
    break;
  }
  case 'unrevoke': {
    const result = await store.unrevoke('token', args['key'], args['actor']);
    process.stdout.write(JSON.stringify(result));
    break;
  }
  case 'hammer': {
    process.stdout.write('ready\n');
    const lines = createInterface({ input: process.stdin });
    for await (const line of lines) if (line === 'go') break;
    lines.close();
    const startedAt = performance.timeOrigin + performance.now();
    let gcraAllowed = 0;
    let quotaAllowed = 0;
    const replayWon: string[] = [];
    for (let n = 0; n < args['count']; n++) {
      if ((await store.gcra(args['gcraKey'], { emissionIntervalMs: 1000, burst: args['burst'] }, args['nowMs'])).allowed) gcraAllowed++;
      if ((await store.quota(args['quotaKey'], args['quotaLimit'], args['windowEnd'], args['nowMs'])).allowed) quotaAllowed++;
      const replayKey = `replay:${n % args['replayKeys']}`;
      if (await store.setIfAbsent(replayKey, 60_000)) replayWon.push(replayKey);
    }
    const endedAt = performance.timeOrigin + performance.now();
    process.stdout.write(JSON.stringify({ gcraAllowed, quotaAllowed, replayWon, startedAt, endedAt }) + '\n');
    break;
  }
  default:
    throw new Error(`unknown command ${command}`);
}
await store.close();
