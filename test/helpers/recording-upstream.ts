/**
 * An upstream that records every request it receives, so a test can prove what was — and was
 * not — forwarded. Answers 200 with a JSON echo; `/slow/{ms}` waits first; `/bytes/{n}` answers
 * n bytes instead; `/late/{ms}` sends its head at once and its body after the wait.
 */
import { createServer } from 'node:http';
import type { ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SeenRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly rawHeaders: readonly string[];
  readonly bodyBytes: number;
}

export interface RecordingUpstream {
  readonly url: string;
  readonly port: number;
  readonly seen: SeenRequest[];
  close(): Promise<void>;
}

export async function startRecordingUpstream(): Promise<RecordingUpstream> {
  const seen: SeenRequest[] = [];
  const server = createServer(async (req, res) => {
    let bodyBytes = 0;
    try {
      for await (const chunk of req) bodyBytes += (chunk as Buffer).length;
    } catch {
      return;
    }
    const headers: Record<string, string> = Object.create(null);
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const name = req.rawHeaders[i]!.toLowerCase();
      headers[name] = headers[name] === undefined ? req.rawHeaders[i + 1]! : `${headers[name]}, ${req.rawHeaders[i + 1]}`;
    }
    const entry = { method: req.method!, path: req.url!, headers, rawHeaders: req.rawHeaders, bodyBytes };
    seen.push(entry);
    const slow = /^\/slow\/(\d+)/.exec(req.url!);
    if (slow) await new Promise((resolve) => setTimeout(resolve, Number(slow[1])));
    const bytes = /^\/bytes\/(\d+)$/.exec(req.url!);
    if (bytes) return void sendBytes(res, Number(bytes[1]));
    const late = /^\/late\/(\d+)$/.exec(req.url!);
    if (late) {
      // The head at once, the body only after the wait: a stream whose first event comes late.
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.flushHeaders();
      return void setTimeout(() => res.end('late body'), Number(late[1]));
    }
    const body = JSON.stringify(entry);
    if (!res.destroyed) res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** `/bytes/{n}`: n bytes of `a`, written in 64 KiB chunks with backpressure. */
function sendBytes(res: ServerResponse, total: number): void {
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total });
  let sent = 0;
  const more = (): void => {
    while (sent < total) {
      const part = Math.min(chunk.length, total - sent);
      sent += part;
      if (!res.write(part === chunk.length ? chunk : chunk.subarray(0, part))) return void res.once('drain', more);
    }
    res.end();
  };
  more();
}
