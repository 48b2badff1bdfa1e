/**
 * Fetching an issuer's key material: its JWK Set (RFC 7517 §5), directly from `jwks_uri` or via
 * its metadata (OpenID Connect Discovery 1.0 / RFC 8414). Every byte of the answer is untrusted
 * until `validate.ts` has looked at it, so the transport is kept narrow: GET only, a deadline
 * for the whole exchange, a size cap enforced while reading, status 200 and a JSON media type
 * required, redirects never followed, and https everywhere but on loopback.
 *
 * undici's `request` on an `Agent` of our own (never global `fetch`: ECOSYSTEM.md §2.2) so the
 * issuer's CA, when configured, is the only trust anchor for these connections.
 */
import { isIPv4 } from 'node:net';
import { Agent, request } from 'undici';
import type { Dispatcher } from 'undici';
import type { CompiledIssuer } from '../../config/snapshot.ts';

/** A JWK Set is a few kilobytes; anything near this cap is not one. */
export const MAX_DOCUMENT_BYTES = 256 * 1024;

/** Why a fetch gave no usable document; its message is for the operator's log. */
export class KeyFetchError extends Error {
  override readonly name = 'KeyFetchError';
}

/**
 * The connections of one key set: the issuer's CA (or the system store) and the issuer's
 * timeout for connecting and for each read. The caller closes it with the key set.
 */
export function createKeyFetchAgent(issuer: Pick<CompiledIssuer, 'ca' | 'fetchTimeoutMs'>): Agent {
  return new Agent({
    connections: 2,
    headersTimeout: issuer.fetchTimeoutMs,
    bodyTimeout: issuer.fetchTimeoutMs,
    // A fetch every few minutes gains nothing from an idle connection kept open.
    keepAliveTimeout: 1_000,
    maxHeaderSize: 16 * 1024,
    connect: { timeout: issuer.fetchTimeoutMs, ...(issuer.ca ? { ca: issuer.ca } : {}) },
  });
}

/**
 * 127.0.0.0/8 and ::1 as IP literals. Not `localhost`: a name is resolved, and only the
 * literal is loopback whatever the resolver says (RFC 8252 §8.3 prefers it for the same reason).
 */
export function isLoopbackHost(hostname: string): boolean {
  if (hostname === '[::1]') return true;
  return isIPv4(hostname) && hostname.startsWith('127.');
}

/** The URL, if the gateway may fetch keys from it at all: https, or plain http to loopback only. */
export function checkKeyUrl(raw: string, what: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new KeyFetchError(`${what} ${JSON.stringify(raw)} is not a URL`);
  }
  if (url.username !== '' || url.password !== '') throw new KeyFetchError(`${what} must not carry credentials in the URL`);
  if (url.protocol === 'https:') return url;
  if (url.protocol === 'http:' && isLoopbackHost(url.hostname)) return url;
  throw new KeyFetchError(`${what} ${url.origin} must use https (plain http only to a loopback address: 127.0.0.0/8, [::1])`);
}

/** Media types of a JSON document: `application/json`, and `application/<x>+json` such as `jwk-set+json` (RFC 7517 §8.5.1). */
function isJsonMediaType(contentType: string | string[] | undefined): boolean {
  if (typeof contentType !== 'string') return false;
  const essence = contentType.split(';', 1)[0]!.trim().toLowerCase();
  return essence === 'application/json' || /^application\/[a-z0-9.+-]+\+json$/.test(essence);
}

/**
 * One GET of a JSON document within `timeoutMs` (connect, headers and body together), at most
 * `MAX_DOCUMENT_BYTES`, strictly UTF-8 (RFC 8259 §8.1). Throws `KeyFetchError`.
 */
export async function fetchJsonDocument(url: URL, options: { dispatcher: Dispatcher; timeoutMs: number; what: string }): Promise<unknown> {
  const { dispatcher, timeoutMs, what } = options;
  const deadline = AbortSignal.timeout(timeoutMs);
  let response: Dispatcher.ResponseData;
  try {
    response = await request(url, {
      method: 'GET',
      dispatcher,
      signal: deadline,
      headers: { accept: 'application/jwk-set+json, application/json' },
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
  } catch (error) {
    throw new KeyFetchError(`${what} ${url.origin}${url.pathname}: ${deadline.aborted ? `no answer within ${timeoutMs} ms` : describeError(error)}`);
  }
  const { statusCode, headers, body } = response;
  try {
    // undici's `request` follows no redirect: a 3xx lands here and is refused like any other
    // status, so the issuer's host can never send the gateway to fetch keys somewhere else.
    if (statusCode !== 200) throw new KeyFetchError(`${what} ${url.origin}${url.pathname} answered ${statusCode}, expected 200${statusCode >= 300 && statusCode < 400 ? ' (redirects are not followed)' : ''}`);
    if (!isJsonMediaType(headers['content-type'])) {
      throw new KeyFetchError(`${what} ${url.origin}${url.pathname} is not JSON (content-type ${JSON.stringify(headers['content-type'] ?? null)})`);
    }
    const declared = Number(headers['content-length']);
    if (Number.isFinite(declared) && declared > MAX_DOCUMENT_BYTES) throw tooLarge(what, url);
    const chunks: Buffer[] = [];
    let received = 0;
    for await (const chunk of body as AsyncIterable<Buffer>) {
      received += chunk.length;
      if (received > MAX_DOCUMENT_BYTES) throw tooLarge(what, url);
      chunks.push(chunk);
    }
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks, received));
    } catch {
      throw new KeyFetchError(`${what} ${url.origin}${url.pathname} is not valid UTF-8`);
    }
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new KeyFetchError(`${what} ${url.origin}${url.pathname} is not valid JSON`);
    }
  } catch (error) {
    // Destroying an unread undici body emits an AbortError: without a listener that error
    // would be uncaught and take the process down.
    body.on('error', () => undefined);
    body.destroy();
    if (error instanceof KeyFetchError) throw error;
    throw new KeyFetchError(`${what} ${url.origin}${url.pathname}: ${deadline.aborted ? `not received within ${timeoutMs} ms` : describeError(error)}`);
  }
}

function tooLarge(what: string, url: URL): KeyFetchError {
  return new KeyFetchError(`${what} ${url.origin}${url.pathname} is larger than ${MAX_DOCUMENT_BYTES} bytes`);
}

function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? `${error.message} (${code})` : error.message;
}

/** The key set document of an issuer, and the URL it came from. */
export interface FetchedKeySet {
  readonly jwks: unknown;
  readonly url: string;
}

/**
 * Fetches the issuer's JWK Set from its configured `jwks_uri`, or from the `jwks_uri` its
 * metadata names. The metadata must name exactly the configured issuer: OpenID Connect
 * Discovery 1.0 §4.3 and RFC 8414 §3.3 require the `issuer` value to be identical, and a
 * document for another issuer would hand us keys that do not belong to this one (JWT-07).
 */
export async function fetchIssuerKeySet(issuer: CompiledIssuer, dispatcher: Dispatcher): Promise<FetchedKeySet> {
  const { source } = issuer;
  if (source.kind === 'file') throw new KeyFetchError(`issuer ${issuer.id} has a key file, nothing to fetch`);
  if (source.kind === 'token_service') throw new KeyFetchError(`issuer ${issuer.id} is the token service: its keys are local, nothing to fetch`);
  const timeoutMs = issuer.fetchTimeoutMs;
  let jwksUrl: URL;
  if (source.kind === 'jwks_uri') {
    jwksUrl = checkKeyUrl(source.url, 'jwks_uri');
  } else {
    const metadataUrl = checkKeyUrl(source.url, 'discovery URL');
    const metadata = await fetchJsonDocument(metadataUrl, { dispatcher, timeoutMs, what: 'issuer metadata' });
    if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
      throw new KeyFetchError(`issuer metadata ${metadataUrl.origin}${metadataUrl.pathname} is not a JSON object`);
    }
    const fields = metadata as Record<string, unknown>;
    if (fields['issuer'] !== issuer.issuer) {
      throw new KeyFetchError(
        `issuer metadata names issuer ${JSON.stringify(fields['issuer'] ?? null).slice(0, 200)}, not the configured ${JSON.stringify(issuer.issuer)} (compared exactly)`,
      );
    }
    if (typeof fields['jwks_uri'] !== 'string') throw new KeyFetchError('issuer metadata has no "jwks_uri"');
    // RFC 8414 §2: "This URL MUST use the "https" scheme" (loopback http aside, as for our own config).
    jwksUrl = checkKeyUrl(fields['jwks_uri'], 'jwks_uri from the issuer metadata');
  }
  const jwks = await fetchJsonDocument(jwksUrl, { dispatcher, timeoutMs, what: 'JWK Set' });
  return { jwks, url: jwksUrl.href };
}
