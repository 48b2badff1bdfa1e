/**
 * The floor of the stack Portcullis is built on: a `node:http` server and an undici `Pool`,
 * joined by undici's low-level `dispatch` exactly as the proxy stage joins them, and nothing else:
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

// The gateway's own undici (the repository's node_modules), not the older copy fastify brings.
const { Pool } = createRequire(join(import.meta.dirname, '..', '..', 'package.json'))('undici') as { Pool: typeof PoolType };

const { values } = parseArgs({ options: { port: { type: 'string' }, upstream: { type: 'string' } } });
if (!values.port || !values.upstream) {
  process.stderr.write('usage: node targets/node-floor.ts --port PORT --upstream URL\n');
  process.exit(2);
}

// The same pool settings as a Portcullis upstream with its defaults (src/upstream/pools.ts).
const pool = new Pool(values.upstream, { connections: 128, pipelining: 1, keepAliveTimeout: 4_000 });

function forward(req: IncomingMessage, res: ServerResponse): void {
  let failed = false;
  const fail = (): void => {
    if (failed) return;
    failed = true;
    if (res.headersSent) res.destroy();
    else res.writeHead(502).end();
  };
  const handler: Dispatcher.DispatchHandler = {
    onRequestStart() {},
    onResponseStart(_controller, statusCode, headers) {
      if (statusCode >= 200) res.writeHead(statusCode, headers as Record<string, string | string[]>);
    },
    onResponseData(controller, chunk) {
      if (!res.write(chunk)) {
        controller.pause();
        res.once('drain', () => controller.resume());
      }
    },
    onResponseEnd() {
      res.end();
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
