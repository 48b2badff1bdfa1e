/**
 * Framing of HTTP/1.1 responses (RFC 9112) for the TLS load generator: where one response ends
 * on a connection, its status, and whether the connection may carry the next request. Bodies
 * are counted, not kept: the generator only needs to know when a response is complete, as wrk's
 * parser does. Chunked, Content-Length and close-delimited bodies; interim 1xx responses are
 * skipped (RFC 9110 §15.2: a final response follows).
 *
 * Anything that is not a well-formed response throws: the generator counts it as a read error
 * and drops the connection rather than guess.
 */

export interface ResponseHead {
  status: number;
  /** False when the server said `Connection: close` (or the body runs to the end of the connection). */
  keepAlive: boolean;
  /** Body bytes received. */
  bodyBytes: number;
}

/** Longest status line + header section accepted (the gateway's answers are a few hundred bytes). */
const MAX_HEAD_BYTES = 64 * 1024;
/** Longest chunk-size line (hex digits and extensions, RFC 9112 §7.1.1). */
const MAX_CHUNK_LINE = 1024;

type State =
  | { kind: 'head' }
  | { kind: 'fixed'; remaining: number }
  | { kind: 'chunk-size' }
  | { kind: 'chunk-data'; remaining: number }
  | { kind: 'chunk-data-end' }
  | { kind: 'trailers' }
  | { kind: 'until-close' };

const CRLF = Buffer.from('\r\n');
const HEAD_END = Buffer.from('\r\n\r\n');

/**
 * Reads one response after another from the bytes of one connection. `push` returns the
 * responses completed by a chunk (usually none or one); `end` is called when the peer closed,
 * and returns the response a close-delimited body completed, if any.
 */
export class ResponseReader {
  #buffer: Buffer = Buffer.alloc(0);
  #state: State = { kind: 'head' };
  #head: ResponseHead | undefined;

  /** True while a response has started (bytes received) but is not complete. */
  get inResponse(): boolean {
    return this.#head !== undefined || this.#buffer.length > 0;
  }

  push(chunk: Buffer): ResponseHead[] {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    const done: ResponseHead[] = [];
    for (;;) {
      const response = this.#step();
      if (response === 'more') return done;
      if (response !== 'continue') done.push(response);
    }
  }

  /** The peer closed the connection: completes a close-delimited body; anything else cut short throws. */
  end(): ResponseHead | undefined {
    if (this.#state.kind === 'until-close') {
      const head = this.#head!;
      this.#reset();
      return head;
    }
    if (this.inResponse) throw new Error('connection closed in the middle of a response');
    return undefined;
  }

  #reset(): void {
    this.#state = { kind: 'head' };
    this.#head = undefined;
  }

  /** One step of the state machine: a completed response, 'continue' (progress made) or 'more' (needs bytes). */
  #step(): ResponseHead | 'continue' | 'more' {
    const state = this.#state;
    switch (state.kind) {
      case 'head': {
        const end = this.#buffer.indexOf(HEAD_END);
        if (end < 0) {
          if (this.#buffer.length > MAX_HEAD_BYTES) throw new Error(`response head longer than ${MAX_HEAD_BYTES} bytes`);
          return 'more';
        }
        const text = this.#buffer.subarray(0, end).toString('latin1');
        this.#buffer = this.#buffer.subarray(end + HEAD_END.length);
        const parsed = parseHead(text);
        if (parsed.status < 200) return 'continue'; // interim: the final response follows
        this.#head = { status: parsed.status, keepAlive: parsed.keepAlive, bodyBytes: 0 };
        if (parsed.noBody) return this.#complete();
        if (parsed.chunked) this.#state = { kind: 'chunk-size' };
        else if (parsed.contentLength !== undefined) {
          if (parsed.contentLength === 0) return this.#complete();
          this.#state = { kind: 'fixed', remaining: parsed.contentLength };
        } else {
          // RFC 9112 §6.3 (7): no framing, the body runs to the end of the connection.
          this.#head.keepAlive = false;
          this.#state = { kind: 'until-close' };
        }
        return 'continue';
      }
      case 'fixed':
      case 'chunk-data': {
        if (this.#buffer.length === 0) return 'more';
        const take = Math.min(state.remaining, this.#buffer.length);
        this.#buffer = this.#buffer.subarray(take);
        this.#head!.bodyBytes += take;
        state.remaining -= take;
        if (state.remaining > 0) return 'more';
        if (state.kind === 'fixed') return this.#complete();
        this.#state = { kind: 'chunk-data-end' };
        return 'continue';
      }
      case 'chunk-data-end': {
        if (this.#buffer.length < 2) return 'more';
        if (!this.#buffer.subarray(0, 2).equals(CRLF)) throw new Error('chunk data not followed by CRLF');
        this.#buffer = this.#buffer.subarray(2);
        this.#state = { kind: 'chunk-size' };
        return 'continue';
      }
      case 'chunk-size': {
        const line = this.#line(MAX_CHUNK_LINE, 'chunk-size line');
        if (line === undefined) return 'more';
        // chunk-size [ chunk-ext ]: the extensions are ignored (RFC 9112 §7.1.1).
        const size = /^([0-9A-Fa-f]{1,8})[ \t]*(?:;.*)?$/.exec(line);
        if (!size) throw new Error(`malformed chunk-size line ${JSON.stringify(line.slice(0, 40))}`);
        const length = Number.parseInt(size[1]!, 16);
        this.#state = length === 0 ? { kind: 'trailers' } : { kind: 'chunk-data', remaining: length };
        return 'continue';
      }
      case 'trailers': {
        const line = this.#line(MAX_HEAD_BYTES, 'trailer line');
        if (line === undefined) return 'more';
        return line === '' ? this.#complete() : 'continue';
      }
      case 'until-close': {
        this.#head!.bodyBytes += this.#buffer.length;
        this.#buffer = Buffer.alloc(0);
        return 'more';
      }
    }
  }

  #line(max: number, what: string): string | undefined {
    const end = this.#buffer.indexOf(CRLF);
    if (end < 0) {
      if (this.#buffer.length > max) throw new Error(`${what} longer than ${max} bytes`);
      return undefined;
    }
    const line = this.#buffer.subarray(0, end).toString('latin1');
    this.#buffer = this.#buffer.subarray(end + 2);
    return line;
  }

  #complete(): ResponseHead {
    const head = this.#head!;
    this.#reset();
    return head;
  }
}

interface ParsedHead {
  status: number;
  keepAlive: boolean;
  chunked: boolean;
  contentLength: number | undefined;
  /** 204, 304 (RFC 9112 §6.3 (1)); the generator sends only GET, so no HEAD case. */
  noBody: boolean;
}

function parseHead(text: string): ParsedHead {
  const lines = text.split('\r\n');
  const statusLine = /^HTTP\/1\.([01]) (\d{3})(?: .*)?$/.exec(lines[0]!);
  if (!statusLine) throw new Error(`malformed status line ${JSON.stringify(lines[0]!.slice(0, 80))}`);
  const http10 = statusLine[1] === '0';
  const status = Number(statusLine[2]);
  let connection = '';
  let transferEncoding = '';
  let contentLength: number | undefined;
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Error(`malformed header line ${JSON.stringify(line.slice(0, 80))}`);
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'connection') connection += `,${value.toLowerCase()}`;
    else if (name === 'transfer-encoding') transferEncoding += `,${value.toLowerCase()}`;
    else if (name === 'content-length') {
      if (!/^\d{1,15}$/.test(value)) throw new Error(`malformed Content-Length ${JSON.stringify(value)}`);
      const length = Number(value);
      // RFC 9112 §6.3 (5): differing values are unrecoverable.
      if (contentLength !== undefined && contentLength !== length) throw new Error('conflicting Content-Length headers');
      contentLength = length;
    }
  }
  const tokens = (list: string) => list.split(',').map((token) => token.trim()).filter(Boolean);
  const encodings = tokens(transferEncoding);
  // RFC 9112 §6.3 (4): chunked must be the final encoding, else the body runs to the close.
  const chunked = encodings.at(-1) === 'chunked';
  const options = tokens(connection);
  const keepAlive = http10 ? options.includes('keep-alive') : !options.includes('close');
  return {
    status,
    keepAlive: keepAlive && (encodings.length === 0 || chunked),
    chunked,
    // Transfer-Encoding overrides Content-Length (§6.3 (3)).
    contentLength: encodings.length > 0 ? undefined : contentLength,
    noBody: status === 204 || status === 304,
  };
}
