/**
 * A real HTTP server on 127.0.0.1 standing in for an issuer's key endpoints, for the key set
 * tests: it serves a JWK Set and an OpenID configuration whose content, status, media type and
 * timing each test sets, and counts every request it receives by path.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { generateKeyPairSync } from 'node:crypto';
import type { KeyObject } from 'node:crypto';

export interface ServedDocument {
  status?: number;
  contentType?: string | null;
  /** A JSON value (serialised) or raw bytes. */
  body?: unknown;
  /** Extra response headers. */
  headers?: Record<string, string>;
  /**
   * `hang`: accept the request and never answer. `drip`: send headers, then one byte every 100 ms.
   * `chunked`: answer without Content-Length.
   */
  behaviour?: 'answer' | 'hang' | 'drip' | 'chunked';
}

export interface IssuerServer {
  readonly origin: string;
  /** Requests received, by path. */
  readonly requests: Map<string, number>;
  count(path: string): number;
  /** What `path` answers from now on. */
  serve(path: string, document: ServedDocument): void;
  close(): Promise<void>;
}

export async function startIssuerServer(options: { tls?: { cert: string; key: string } } = {}): Promise<IssuerServer> {
  const documents = new Map<string, ServedDocument>();
  const requests = new Map<string, number>();
  const sockets = new Set<Socket>();
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    requests.set(path, (requests.get(path) ?? 0) + 1);
    const document = documents.get(path);
    if (!document) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not_found"}');
      return;
    }
    if (document.behaviour === 'hang') return;
    const body = Buffer.isBuffer(document.body) ? document.body : Buffer.from(JSON.stringify(document.body ?? null));
    const headers: Record<string, string> = { ...(document.headers ?? {}) };
    if (document.contentType !== null) headers['content-type'] = document.contentType ?? 'application/json';
    if (document.behaviour === 'drip') {
      res.writeHead(document.status ?? 200, headers);
      let offset = 0;
      const timer = setInterval(() => {
        if (offset >= body.length || res.destroyed) {
          clearInterval(timer);
          res.end();
          return;
        }
        res.write(body.subarray(offset, offset + 1));
        offset += 1;
      }, 100);
      res.on('close', () => clearInterval(timer));
      return;
    }
    if (document.behaviour === 'chunked') {
      res.writeHead(document.status ?? 200, headers);
      res.end(body);
      return;
    }
    res.writeHead(document.status ?? 200, { ...headers, 'content-length': String(body.length) }).end(body);
  };
  const server: Server = options.tls ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key }, handler) : createServer(handler);
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    requests,
    count: (path) => requests.get(path) ?? 0,
    serve: (path, document) => void documents.set(path, document),
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

export interface SigningKey {
  readonly kid: string;
  readonly alg: 'ES256' | 'RS256' | 'EdDSA';
  readonly privateKey: KeyObject;
  /** The public JWK as an issuer publishes it (with kid, alg, use). */
  readonly jwk: Record<string, unknown>;
}

/** A fresh key pair per call: no key is ever committed. */
export function signingKey(alg: SigningKey['alg'], kid: string): SigningKey {
  const pair =
    alg === 'ES256'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : alg === 'RS256'
        ? generateKeyPairSync('rsa', { modulusLength: 2048 })
        : generateKeyPairSync('ed25519');
  return { kid, alg, privateKey: pair.privateKey, jwk: { ...pair.publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' } };
}

export function jwksOf(...keys: Array<SigningKey | Record<string, unknown>>): { keys: Array<Record<string, unknown>> } {
  return { keys: keys.map((key) => ('jwk' in key && 'privateKey' in key ? (key as SigningKey).jwk : (key as Record<string, unknown>))) };
}

/** Resolves once `condition()` holds, polling every 10 ms; rejects after `timeoutMs`. */
export async function waitFor(condition: () => boolean, timeoutMs = 3000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
