/**
 * The baseline: fastify 5 + @fastify/http-proxy (undici underneath, its default pool) in front
 * of the upstream, logger off, nothing else. Run as its own process by the benchmark:
 *
 *   node targets/fastify-proxy.ts --port 8080 --upstream http://127.0.0.1:8081 --prefix /bench
 *
 * Requests under `--prefix` are forwarded with the same path.
 */
import { parseArgs } from 'node:util';
import Fastify from 'fastify';
import httpProxy from '@fastify/http-proxy';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    upstream: { type: 'string' },
    prefix: { type: 'string', default: '/bench' },
  },
});
if (!values.port || !values.upstream) {
  process.stderr.write('usage: node targets/fastify-proxy.ts --port PORT --upstream URL [--prefix /bench]\n');
  process.exit(2);
}

const app = Fastify({ logger: false });
await app.register(httpProxy, {
  upstream: values.upstream,
  prefix: values.prefix,
  rewritePrefix: values.prefix,
});
await app.listen({ host: '127.0.0.1', port: Number(values.port) });

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    void app.close().finally(() => process.exit(0));
  });
}
