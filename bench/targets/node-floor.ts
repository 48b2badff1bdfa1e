/**
 * The floor of the stack Portcullis is built on: a `node:http` server and an undici `Pool`,
 * joined by undici's low-level `dispatch` exactly as the proxy stage joins them (its response
 * written at the end of the loop's turn, as the proxy stage writes it), and nothing else:
 * no routing, no header hygiene, no checks, no decision record. No gateway on this runtime and
 * these libraries can be cheaper per request, so this row says how much of the plain path's cost
 * is the stack and how much is Portcullis. It forwards every request to the upstream as it came
 * (it is not a proxy anyone should run). Run as its own process by the benchmark:
 *
 *   node targets/node-floor.ts --port 8080 --upstream http://127.0.0.1:8081
 */
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Dispatcher, Pool as PoolType } from 'undici';
import { atEndOfTurn } from '../../src/http/end-of-turn.ts';

// The gateway's own undici (the repository's node_modules), not the older copy fastify brings.
const { Pool } = createRequire(join(import.meta.dirname, '..', '..', 'package.json'))('undici') as { Pool: typeof PoolType };

const { values } = parseArgs({ options: { port: { type: 'string' }, upstream: { type: 'string' } } });
if (!values.port || !values.upstream) {
  process.stderr.write('usage: node targets/node-floor.ts --port PORT --upstream URL\n');
  process.exit(2);
}

// The same pool settings as a Portcullis upstream with its defaults (src/upstream/pools.ts).
const pool = new Pool(values.upstream, { connections: 128, pipelining: 1, keepAliveTimeout: 4_000 });

/**
 * As the proxy stage does: the upstream's answer is written at the end of the loop's turn that
 * parsed it (src/http/end-of-turn.ts), head and body in one write when the whole body is there.
 */
function forward(req: IncomingMessage, res: ServerResponse): void {
  let failed = false;
  let status = 0;
  let head: Record<string, string | string[]> | null = null;
  let held: Buffer[] = [];
  let ended = false;
  let scheduled = false;
  let controller: Dispatcher.DispatchController | null = null;
  const fail = (): void => {
    if (failed) return;
    failed = true;
    if (res.headersSent) res.destroy();
    else res.writeHead(502).end();
  };
  const write = (): void => {
    scheduled = false;
    if (failed || (held.length === 0 && !ended)) return;
    if (head !== null) {
      res.writeHead(status, head);
      head = null;
    }
    const chunks = held;
    held = [];
    if (ended) return void res.end(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
    let writable = true;
    for (const chunk of chunks) writable = res.write(chunk);
    if (!writable) {
      controller?.pause();
      res.once('drain', () => controller?.resume());
    }
  };
  const schedule = (): void => {
    if (scheduled) return;
    scheduled = true;
    atEndOfTurn(write);
  };
  const handler: Dispatcher.DispatchHandler = {
    onRequestStart(dispatchController) {
      controller = dispatchController;
    },
    onResponseStart(_controller, statusCode, headers) {
      if (statusCode < 200) return;
      status = statusCode;
      head = headers as Record<string, string | string[]>;
    },
    onResponseData(_controller, chunk) {
      held.push(chunk);
      schedule();
    },
    onResponseEnd() {
      ended = true;
      schedule();
    },
    onResponseError(_controller, error) {
      process.stderr.write(`node-floor: ${String(error)}\n`);
      fail();
    },
  };
  pool.dispatch({ path: req.url!, method: req.method as Dispatcher.HttpMethod, headers: { host: req.headers.host ?? '' }, body: null }, handler);
}

const server = createServer({ keepAliveTimeout: 5_000 }, forward);
server.listen(Number(values.port), '127.0.0.1');

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    server.close();
    server.closeAllConnections();
    void pool.close().finally(() => process.exit(0));
  });
}
