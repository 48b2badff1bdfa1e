/** Sends raw bytes to a server and collects everything it answers until it closes or goes quiet. */
import { connect } from 'node:net';

export interface RawExchange {
  /** Everything received. */
  readonly text: string;
  /** Status codes of every response found in `text`, in order. */
  readonly statuses: number[];
  /** True when the server closed the connection. */
  readonly closed: boolean;
}

export function rawRequest(port: number, payload: string | Buffer, options: { quietMs?: number; host?: string; untilClose?: boolean } = {}): Promise<RawExchange> {
  const quietMs = options.quietMs ?? 300;
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: options.host ?? '127.0.0.1' });
    const chunks: Buffer[] = [];
    let timer: NodeJS.Timeout | null = null;
    let closed = false;
    const done = (): void => {
      if (timer) clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      const statuses = responseStatuses(text);
      socket.destroy();
      resolve({ text, statuses, closed });
    };
    const arm = (): void => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(done, quietMs);
    };
    socket.on('connect', () => {
      socket.write(payload);
      arm();
    });
    socket.on('data', (chunk) => {
      chunks.push(chunk);
      if (options.untilClose !== true && oneCompleteResponse(Buffer.concat(chunks).toString('latin1'))) return done();
      arm();
    });
    socket.on('end', () => {
      closed = true;
      done();
    });
    socket.on('close', () => {
      closed = true;
      done();
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNRESET') {
        closed = true;
        done();
      } else reject(error);
    });
  });
}

/** Status codes of the successive responses in `text`, walking Content-Length framing. */
function responseStatuses(text: string): number[] {
  const statuses: number[] = [];
  let offset = 0;
  while (offset < text.length) {
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(text.slice(offset, offset + 16));
    if (!status) break;
    statuses.push(Number(status[1]));
    const end = text.indexOf('\r\n\r\n', offset);
    if (end < 0) break;
    const length = /^content-length: (\d+)/im.exec(text.slice(offset, end));
    offset = end + 4 + (length ? Number(length[1]) : 0);
  }
  return statuses;
}

/** True once the text holds a whole response framed by Content-Length. */
function oneCompleteResponse(text: string): boolean {
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return false;
  const length = /^content-length: (\d+)/im.exec(text.slice(0, end));
  return length !== null && text.length >= end + 4 + Number(length[1]);
}

/** Parses the JSON body of the first response in a raw exchange. */
export function firstBody(exchange: RawExchange): any {
  const start = exchange.text.indexOf('\r\n\r\n');
  const head = exchange.text.slice(0, start);
  const length = /content-length: (\d+)/i.exec(head);
  const body = exchange.text.slice(start + 4, length ? start + 4 + Number(length[1]) : undefined);
  return JSON.parse(body);
}
