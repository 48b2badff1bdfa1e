/**
 * A CRL distribution point for tests: node:http on 127.0.0.1 and a free port, serving whatever
 * the test puts at a path (a CRL, an error status, a redirect, a slow or oversized answer) and
 * counting the requests per path, so a test can tell whether the gateway fetched at all.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface CrlServerAnswer {
  readonly status?: number;
  readonly contentType?: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** Holds the answer back this long (a timeout test). */
  readonly delayMs?: number;
}

export interface CrlServer {
  /** `http://127.0.0.1:<port>` */
  readonly origin: string;
  readonly port: number;
  url(path: string): string;
  /** Serves `body` at `path` from now on (replacing what was there). */
  serve(path: string, body: Uint8Array | string, answer?: CrlServerAnswer): void;
  /** Requests received for `path` so far. */
  requests(path: string): number;
  close(): Promise<void>;
}

interface Entry {
  readonly body: Buffer;
  readonly answer: CrlServerAnswer;
}

export async function startCrlServer(): Promise<CrlServer> {
  const entries = new Map<string, Entry>();
  const counts = new Map<string, number>();
  const timers = new Set<NodeJS.Timeout>();
  const server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://x').pathname;
    counts.set(path, (counts.get(path) ?? 0) + 1);
    const entry = entries.get(path);
    if (entry === undefined) {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    const send = (): void => {
      if (response.destroyed) return;
      response.writeHead(entry.answer.status ?? 200, {
        'content-type': entry.answer.contentType ?? 'application/pkix-crl',
        'content-length': String(entry.body.length),
        ...entry.answer.headers,
      });
      response.end(entry.body);
    };
    if (entry.answer.delayMs === undefined) {
      send();
      return;
    }
    const timer = setTimeout(() => {
      timers.delete(timer);
      send();
    }, entry.answer.delayMs);
    timers.add(timer);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;
  return {
    origin,
    port,
    url: (path) => `${origin}${path}`,
    serve: (path, body, answer = {}) => {
      entries.set(path, { body: typeof body === 'string' ? Buffer.from(body) : Buffer.from(body), answer });
    },
    requests: (path) => counts.get(path) ?? 0,
    close: async () => {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
