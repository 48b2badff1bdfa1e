/**
 * A sample upstream for the demo and the test suite: a plain `node:http` server that echoes what
 * it received, so a test can prove exactly which method, target and headers crossed the gateway.
 *
 * Every request gets `200 application/json`:
 *   { "service": "sample-upstream", "method", "path" (the raw request target, query included),
 *     "headers" (lowercase names; repeated fields joined with ", " — including the ones
 *     `req.headers` would silently drop, such as a second Authorization),
 *     "raw_headers" ([name, value] pairs exactly as received, in order), "body_bytes" }
 *
 * Special paths, for exercising the gateway's upstream handling:
 *   /status/{code}  answers with that status (100–199 excluded); the body is the same echo
 *   /slow/{ms}      waits {ms} before answering
 *   /drip/{ms}      sends the headers at once, then the body in `?chunks=N` pieces (default 4),
 *                   {ms} apart — to test body idle timeouts and streaming
 * Delays are capped at one minute so a mistyped test cannot hang the suite.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SampleUpstream {
  /** Base URL, e.g. `http://127.0.0.1:9100`. */
  readonly url: string;
  readonly port: number;
  /** Stops listening and drops open connections (kept-alive ones included) at once. */
  close(): Promise<void>;
}

export interface SampleUpstreamOptions {
  /** Default `127.0.0.1`. */
  readonly host?: string;
  /** Default 0: a free port. */
  readonly port?: number;
}

const MAX_DELAY_MS = 60_000;

export async function startSampleUpstream(options: SampleUpstreamOptions = {}): Promise<SampleUpstream> {
  const host = options.host ?? '127.0.0.1';
  // HTTP keep-alive is on by default; its 5 s idle timeout outlasts the gateway's default 4 s
  // upstream keep-alive, so the gateway never reuses a connection this server is closing.
  const server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${urlHost}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  let bodyBytes = 0;
  for await (const chunk of req) bodyBytes += (chunk as Buffer).length;

  const target = req.url ?? '/';
  const { pathname, searchParams } = new URL(target, 'http://upstream.invalid');
  const [, special, argument] = /^\/(status|slow|drip)\/(\d+)$/.exec(pathname) ?? [];
  const value = argument === undefined ? 0 : Number(argument);
  const body = JSON.stringify({
    service: 'sample-upstream',
    method: req.method,
    path: target,
    headers: joinedHeaders(req.rawHeaders),
    raw_headers: pairs(req.rawHeaders),
    body_bytes: bodyBytes,
  });

  if (special === 'status') {
    if (value < 200 || value > 599) return sendJson(res, 400, JSON.stringify({ error: 'status must be 200–599' }));
    return sendJson(res, value, body);
  }
  if (special === 'slow') {
    await delay(res, Math.min(value, MAX_DELAY_MS));
    return sendJson(res, 200, body);
  }
  if (special === 'drip') {
    const chunks = Math.max(1, Math.min(Number(searchParams.get('chunks') ?? 4) || 4, 1000));
    const pause = Math.min(value, MAX_DELAY_MS);
    // No Content-Length: the body streams chunked, as a real streaming upstream's would.
    res.writeHead(200, { 'content-type': 'application/json' });
    res.flushHeaders();
    const size = Math.ceil(body.length / chunks);
    for (let offset = 0; offset < body.length; offset += size) {
      if (!(await delay(res, pause))) return;
      res.write(body.slice(offset, offset + size));
    }
    res.end();
    return;
  }
  sendJson(res, 200, body);
}

function sendJson(res: ServerResponse, status: number, body: string): void {
  if (res.destroyed) return;
  // 204 and 304 never carry a body (RFC 9110 §15.3.5, §15.4.5).
  if (status === 204 || status === 304) return void res.writeHead(status).end();
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
}

/** Waits `ms`, or less if the client goes away; resolves to whether the response can still be written. */
function delay(res: ServerResponse, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (res.destroyed) return resolve(false);
    const onClose = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      res.off('close', onClose);
      resolve(!res.destroyed);
    }, ms);
    res.once('close', onClose);
  });
}

function joinedHeaders(raw: readonly string[]): Record<string, string> {
  // No prototype: a header named `__proto__` or `constructor` is echoed like any other.
  const headers = Object.create(null) as Record<string, string>;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const value = raw[i + 1]!;
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  return headers;
}

function pairs(raw: readonly string[]): Array<[string, string]> {
  const result: Array<[string, string]> = [];
  for (let i = 0; i < raw.length; i += 2) result.push([raw[i]!, raw[i + 1]!]);
  return result;
}
