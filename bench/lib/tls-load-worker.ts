/**
 * The TLS load generator's process (started by `tls-load.ts`, pinned to the load core):
 *
 *   node tls-load-worker.ts '<WorkerOptions as JSON>'
 *
 * Prints `@@ready` once its TLS context is built, waits for `go` on stdin, runs for
 * `seconds`, prints `@@result <TlsLoadResult as JSON>` and exits.
 *
 * Like wrk: `connections` connections, each a closed loop with one request in flight; the
 * request bytes are built once; a request not answered within `timeoutMs` is a timeout and its
 * connection is dropped; after any socket error the loop goes on with a new connection; what is
 * in flight at the deadline is not counted. Keep-alive latency runs from writing the request to
 * the end of the response; with a new connection per request it starts before the connect, so
 * it includes the handshake the row is about.
 */
import { connect, createSecureContext } from 'node:tls';
import type { SecureContext, TLSSocket } from 'node:tls';
import { readFileSync } from 'node:fs';
import { ResponseReader } from './http1-response.ts';
import type { ResponseHead } from './http1-response.ts';
import { summariseRun } from './tls-load.ts';
import type { RawRun, SocketErrors, WorkerOptions } from './tls-load.ts';

type ErrorKind = keyof SocketErrors;

/** An error on a connection, with the wrk category it is counted in. */
class LoadError extends Error {
  readonly kind: ErrorKind;
  constructor(kind: ErrorKind, message: string) {
    super(message);
    this.kind = kind;
  }
}

const options = JSON.parse(process.argv[2] ?? '') as WorkerOptions;

const secureContext: SecureContext = createSecureContext({
  ca: readFileSync(options.ca),
  ...(options.cert && options.key ? { cert: readFileSync(options.cert), key: readFileSync(options.key) } : {}),
});

const requestBytes = Buffer.from(
  `GET ${options.path} HTTP/1.1\r\n` +
    Object.entries(options.headers)
      .map(([name, value]) => `${name}: ${value}\r\n`)
      .join('') +
    // RFC 9112 §9.6: the server closes after this response; the next request needs a new connection.
    (options.newConnectionPerRequest ? 'Connection: close\r\n' : '') +
    '\r\n',
  'latin1',
);

const latenciesMs: number[] = [];
const statuses: Record<string, number> = {};
const socketErrors: SocketErrors = { connect: 0, read: 0, write: 0, timeout: 0 };
const connections = { configured: options.connections, opened: 0, resumed: 0 };
let firstError: string | undefined;
let stopped = false;
const sockets = new Set<TLSSocket>();

/** One open connection: writes a request, resolves with the response that completes it. */
class Connection {
  readonly socket: TLSSocket;
  readonly #reader = new ResponseReader();
  #waiting: { resolve: (head: ResponseHead) => void; reject: (error: LoadError) => void; timer: NodeJS.Timeout } | undefined;

  constructor(socket: TLSSocket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      let done: ResponseHead[];
      try {
        done = this.#reader.push(chunk);
      } catch (error) {
        this.#fail(new LoadError('read', (error as Error).message));
        return;
      }
      if (done.length === 0) return;
      if (done.length > 1 || this.#waiting === undefined) {
        this.#fail(new LoadError('read', 'a response nobody asked for'));
        return;
      }
      this.#settle(done[0]!);
    });
    socket.on('end', () => {
      let last: ResponseHead | undefined;
      try {
        last = this.#reader.end();
      } catch (error) {
        this.#fail(new LoadError('read', (error as Error).message));
        return;
      }
      if (last !== undefined) this.#settle(last);
      else this.#fail(new LoadError('read', 'the server closed the connection'));
    });
    socket.on('error', (error: NodeJS.ErrnoException) => this.#fail(new LoadError(error.code === 'EPIPE' ? 'write' : 'read', error.message)));
    socket.on('close', () => this.#fail(new LoadError('read', 'connection closed')));
  }

  exchange(): Promise<ResponseHead> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.#fail(new LoadError('timeout', `no response within ${options.timeoutMs} ms`)), options.timeoutMs);
      this.#waiting = { resolve, reject, timer };
      this.socket.write(requestBytes, (error) => {
        if (error) this.#fail(new LoadError('write', error.message));
      });
    });
  }

  /** Done with the connection: our close_notify and FIN, as a well-behaved client closes (not a reset). */
  close(): void {
    this.socket.end();
    // The server closes its side at once after `Connection: close`; if not, do not wait for it.
    setTimeout(() => this.socket.destroy(), options.timeoutMs).unref();
  }

  #settle(head: ResponseHead): void {
    const waiting = this.#waiting;
    if (waiting === undefined) return;
    this.#waiting = undefined;
    clearTimeout(waiting.timer);
    waiting.resolve(head);
  }

  #fail(error: LoadError): void {
    const waiting = this.#waiting;
    this.#waiting = undefined;
    this.socket.destroy();
    if (waiting === undefined) return;
    clearTimeout(waiting.timer);
    waiting.reject(error);
  }
}

/** A new TLS connection with a full handshake: no session is offered for resumption. */
function open(): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: options.host,
      port: options.port,
      servername: options.servername,
      secureContext,
      ALPNProtocols: ['http/1.1'],
      rejectUnauthorized: true,
    });
    connections.opened++;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.setNoDelay(true);
    const timer = setTimeout(() => socket.destroy(new LoadError('timeout', `no handshake within ${options.timeoutMs} ms`)), options.timeoutMs);
    const onError = (error: Error) => {
      clearTimeout(timer);
      reject(error instanceof LoadError ? error : new LoadError('connect', error.message));
    };
    socket.once('error', onError);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      if (socket.isSessionReused()) connections.resumed++;
      resolve(new Connection(socket));
    });
  });
}

async function loop(): Promise<void> {
  let connection: Connection | undefined;
  while (!stopped) {
    let began = performance.now();
    try {
      if (connection === undefined) {
        connection = await open();
        if (!options.newConnectionPerRequest) began = performance.now();
      }
      if (stopped) break;
      const head = await connection.exchange();
      if (stopped) break;
      latenciesMs.push(performance.now() - began);
      statuses[head.status] = (statuses[head.status] ?? 0) + 1;
      if (options.newConnectionPerRequest || !head.keepAlive) {
        connection.close();
        connection = undefined;
      }
    } catch (error) {
      connection?.socket.destroy();
      connection = undefined;
      if (stopped) break;
      const kind = error instanceof LoadError ? error.kind : 'read';
      socketErrors[kind]++;
      firstError ??= `${kind}: ${(error as Error).message}`;
    }
  }
}

function run(): void {
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  for (let i = 0; i < options.connections; i++) void loop();
  setTimeout(() => {
    stopped = true;
    const elapsedMs = performance.now() - started;
    const cpu = process.cpuUsage(cpuBefore);
    for (const socket of sockets) socket.destroy();
    const raw: RawRun = {
      latenciesMs,
      elapsedMs,
      statuses,
      socketErrors,
      cpuMicros: cpu.user + cpu.system,
      connections,
      ...(firstError !== undefined ? { firstError } : {}),
    };
    // The figures, not every latency: one short line.
    process.stdout.write(`@@result ${JSON.stringify(summariseRun(raw))}\n`, () => process.exit(0));
  }, options.seconds * 1000);
}

let input = '';
let going = false;
process.stdin.setEncoding('utf8').on('data', (chunk: string) => {
  input += chunk;
  if (!going && /^go$/m.test(input)) {
    going = true;
    process.stdin.pause();
    run();
  }
});
process.stdout.write('@@ready\n');
