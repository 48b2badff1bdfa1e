/**
 * The narrow HTTP client of revocation checks (SECURITY.md §2.10 API7 SSRF, API10): a CRL GET or
 * an OCSP POST to a configured URL, or to one a certificate names only when its host is on the
 * partner's allow-list; a deadline for the whole exchange; a size cap enforced while reading;
 * status 200 required; redirects never followed (undici's `request` does not follow them).
 *
 * Plain http is accepted: CRLs and OCSP responses are signed objects, and RFC 5280 §4.2.1.13 /
 * RFC 6960 Appendix A publish them over http (https would make revocation depend on revocation).
 */
import { Agent, request } from 'undici';
import type { Dispatcher } from 'undici';

/** Why a fetch gave no usable document; the message is for the operator's log and the status detail. */
export class RevocationFetchError extends Error {
  override readonly name = 'RevocationFetchError';
}

/** One agent per checker: short-lived connections (responders are asked rarely), closed with the checker. */
export function createRevocationAgent(): Agent {
  return new Agent({
    connections: 4,
    keepAliveTimeout: 1_000,
    maxHeaderSize: 16 * 1024,
    // Each request carries its own deadline; this only bounds a connect nobody waits for any more.
    connect: { timeout: 10_000 },
  });
}

/** The URL as the gateway may fetch it: http(s), no credentials. Throws `RevocationFetchError`. */
export function parseFetchUrl(raw: string, what: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new RevocationFetchError(`${what} ${JSON.stringify(raw.slice(0, 200))} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new RevocationFetchError(`${what} ${url.protocol} URLs are not fetched (http and https only)`);
  if (url.username !== '' || url.password !== '') throw new RevocationFetchError(`${what} must not carry credentials in the URL`);
  return url;
}

/**
 * Whether the gateway may fetch a URL that a certificate names (never a configured one: those are
 * trusted). An entry matches the host name case-insensitively, or `host:port` exactly; IPv6
 * literals may be written with or without brackets.
 */
export function hostAllowed(url: URL, allowedHosts: readonly string[]): boolean {
  const hostname = url.hostname.toLowerCase();
  const bare = hostname.startsWith('[') ? hostname.slice(1, -1) : hostname;
  const host = url.host.toLowerCase();
  return allowedHosts.some((entry) => {
    const candidate = entry.trim().toLowerCase();
    return candidate === hostname || candidate === bare || candidate === host;
  });
}

/** Redacted form of a URL for logs and details: origin and path, never a query (it may hold a token). */
export function displayUrl(url: URL): string {
  return `${url.origin}${url.pathname}`;
}

export interface FetchDocumentOptions {
  readonly dispatcher: Dispatcher;
  readonly timeoutMs: number;
  readonly maxBytes: number;
  readonly what: string;
  readonly method: 'GET' | 'POST';
  readonly body?: Uint8Array;
  readonly headers: Readonly<Record<string, string>>;
  /** When set, the answer's media type (without parameters) must be one of these. */
  readonly mediaTypes?: readonly string[];
  /** Aborts the fetch (the checker closing). */
  readonly signal?: AbortSignal;
}

/** One exchange within `timeoutMs` (connect, headers and body together), at most `maxBytes` of body. */
export async function fetchDocument(url: URL, options: FetchDocumentOptions): Promise<Buffer> {
  const { dispatcher, timeoutMs, maxBytes, what } = options;
  const deadline = AbortSignal.timeout(timeoutMs);
  const signal = options.signal ? AbortSignal.any([deadline, options.signal]) : deadline;
  const where = `${what} ${displayUrl(url)}`;
  let response: Dispatcher.ResponseData;
  try {
    response = await request(url, {
      method: options.method,
      dispatcher,
      signal,
      headers: { ...options.headers },
      ...(options.body ? { body: Buffer.from(options.body.buffer, options.body.byteOffset, options.body.byteLength) } : {}),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
  } catch (error) {
    throw new RevocationFetchError(`${where}: ${deadline.aborted ? `no answer within ${timeoutMs} ms` : describeError(error)}`);
  }
  const { statusCode, headers, body } = response;
  try {
    if (statusCode !== 200) {
      throw new RevocationFetchError(`${where} answered ${statusCode}, expected 200${statusCode >= 300 && statusCode < 400 ? ' (redirects are not followed)' : ''}`);
    }
    if (options.mediaTypes) {
      const contentType = headers['content-type'];
      const essence = typeof contentType === 'string' ? contentType.split(';', 1)[0]!.trim().toLowerCase() : '';
      if (!options.mediaTypes.includes(essence)) {
        throw new RevocationFetchError(`${where} answered content-type ${JSON.stringify(contentType ?? null)}, expected ${options.mediaTypes.join(' or ')}`);
      }
    }
    const declared = Number(headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBytes) throw new RevocationFetchError(`${where} is larger than ${maxBytes} bytes`);
    const chunks: Buffer[] = [];
    let received = 0;
    for await (const chunk of body as AsyncIterable<Buffer>) {
      received += chunk.length;
      if (received > maxBytes) throw new RevocationFetchError(`${where} is larger than ${maxBytes} bytes`);
      chunks.push(chunk);
    }
    if (received === 0) throw new RevocationFetchError(`${where} answered an empty body`);
    return Buffer.concat(chunks, received);
  } catch (error) {
    // Destroying an unread undici body emits an error: without a listener it would be uncaught.
    body.on('error', () => undefined);
    body.destroy();
    if (error instanceof RevocationFetchError) throw error;
    throw new RevocationFetchError(`${where}: ${deadline.aborted ? `not received within ${timeoutMs} ms` : describeError(error)}`);
  }
}

function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  const cause = (error as { cause?: unknown }).cause;
  const causeCode = cause instanceof Error ? (cause as { code?: unknown }).code : undefined;
  const label = typeof code === 'string' ? code : typeof causeCode === 'string' ? causeCode : null;
  return label !== null ? `${error.message} (${label})` : error.message;
}
