/**
 * The ops listener: `/livez` (the event loop answers), `/readyz` (a snapshot is active, the
 * listeners are bound, the gateway is not starting or draining), `/metrics` (Prometheus text).
 * Loopback by default and never on a data-plane port. `?verbose` lists the checks for humans;
 * machines read the status.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReadinessCheck {
  readonly name: string;
  ok(): boolean;
}

export interface OpsServer {
  readonly url: string;
  readonly address: string;
  readonly port: number;
  close(): Promise<void>;
}

/** The Prometheus exposition (src/observability/metrics.ts). */
export interface MetricsSource {
  readonly contentType: string;
  scrape(): Promise<string>;
}

/** Answers `/admin/…` requests (src/admin/api.ts); its own authentication and methods. */
export type AdminHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

export async function startOpsServer(
  address: string,
  port: number,
  checks: readonly ReadinessCheck[],
  metrics?: MetricsSource,
  admin?: AdminHandler,
): Promise<OpsServer> {
  const server = http.createServer({ requireHostHeader: false }, (req, res) => {
    const url = new URL(req.url ?? '/', 'http://ops');
    if (admin && (url.pathname === '/admin' || url.pathname.startsWith('/admin/'))) {
      admin(req, res);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    if (url.pathname === '/livez') {
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' }).end('ok\n');
      return;
    }
    if (url.pathname === '/readyz') {
      const results = checks.map((check) => ({ name: check.name, ok: check.ok() }));
      const ready = results.every((result) => result.ok);
      const verbose = url.searchParams.has('verbose');
      const body = verbose
        ? results.map((result) => `[${result.ok ? '+' : '-'}]${result.name} ${result.ok ? 'ok' : 'failed'}`).join('\n') +
          `\nreadyz check ${ready ? 'passed' : 'failed'}\n`
        : ready ? 'ok\n' : 'not ready\n';
      res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain', 'cache-control': 'no-store' }).end(body);
      return;
    }
    if (url.pathname === '/metrics' && metrics) {
      metrics.scrape().then(
        (text) => res.writeHead(200, { 'content-type': metrics.contentType, 'cache-control': 'no-store' }).end(req.method === 'HEAD' ? undefined : text),
        (error: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics unavailable: ${error instanceof Error ? error.message : String(error)}\n`),
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  });
  server.headersTimeout = 5000;
  server.requestTimeout = 10000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: address, port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  const host = address.includes(':') ? `[${address}]` : address;
  return {
    url: `http://${host}:${bound}`,
    address,
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
