/**
 * Reads the HTTP answer of an introspection endpoint into a JSON object, or says precisely why
 * it cannot be used. Dependency answers are untrusted input too (OWASP API10, SECURITY.md
 * §2.10): status, media type, size, encoding and JSON structure are checked before anything
 * is interpreted, and anything else is a dependency failure — never "active".
 */
import type { Dispatcher } from 'undici';
import { parseStrictJson } from '../strict-json.ts';

/** Largest response body read; a larger one is abandoned unread (IN-04: the endpoint is failing). */
export const MAX_RESPONSE_BYTES = 64 * 1024;
/** Deeper JSON is not an introspection response anyone needs. */
const MAX_JSON_MEMBERS = 256;
const MAX_JSON_DEPTH = 16;

export type EndpointAnswer =
  | { readonly ok: true; readonly document: Record<string, unknown>; readonly bytes: number }
  | { readonly ok: false; readonly detail: string; readonly rejectedOurCredentials: boolean };

const utf8 = new TextDecoder('utf-8', { fatal: true });

export async function readEndpointAnswer(response: Dispatcher.ResponseData): Promise<EndpointAnswer> {
  const { statusCode, headers, body } = response;
  // RFC 7662 §2.2: the answer is a 200 with a JSON object. §2.3: 401/403 mean the endpoint refused
  // *our* client authentication — the token was never judged, so this is not "inactive".
  if (statusCode !== 200) {
    await discard(body);
    return failure(`the endpoint answered HTTP ${statusCode}`, statusCode === 401 || statusCode === 403);
  }
  const contentType = single(headers['content-type']);
  if (contentType === null || mediaType(contentType) !== 'application/json') {
    await discard(body);
    return failure('the endpoint answered without the content type application/json');
  }
  const declared = single(headers['content-length']);
  if (declared !== null && Number(declared) > MAX_RESPONSE_BYTES) {
    body.destroy();
    return failure(`the endpoint's answer is larger than ${MAX_RESPONSE_BYTES} bytes`);
  }
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    if (bytes > MAX_RESPONSE_BYTES) {
      body.destroy();
      return failure(`the endpoint's answer is larger than ${MAX_RESPONSE_BYTES} bytes`);
    }
    chunks.push(chunk);
  }
  let text: string;
  try {
    // RFC 8259 §8.1: JSON exchanged between systems is UTF-8; anything else is refused, not repaired.
    text = utf8.decode(Buffer.concat(chunks, bytes));
  } catch {
    return failure('the endpoint\'s answer is not valid UTF-8');
  }
  // Our own parser, not JSON.parse: duplicate names are refused and names are decoded by us
  // (Node 24.21's JSON.parse can misread escaped member names; see test/authn/jwt/strict-json.test.ts).
  const parsed = parseStrictJson(text, { maxDepth: MAX_JSON_DEPTH, maxMembers: MAX_JSON_MEMBERS });
  if (!parsed.ok) return failure(`the endpoint's answer is unusable: ${parsed.detail}`);
  const document = parsed.value;
  if (typeof document !== 'object' || document === null || Array.isArray(document)) {
    return failure('the endpoint\'s answer is not a JSON object');
  }
  return { ok: true, document: document as Record<string, unknown>, bytes };
}

function failure(detail: string, rejectedOurCredentials = false): EndpointAnswer {
  return { ok: false, detail, rejectedOurCredentials };
}

/** `application/json; charset=utf-8` → `application/json` (RFC 9110 §8.3.1: type and subtype are case-insensitive). */
function mediaType(value: string): string {
  return value.split(';', 1)[0]!.trim().toLowerCase();
}

function single(value: string | string[] | undefined): string | null {
  if (value === undefined) return null;
  return Array.isArray(value) ? (value.length === 1 ? value[0]! : null) : value;
}

/** Frees the connection without reading an unbounded body: a short body is dumped, a long one destroys the socket. */
async function discard(body: Dispatcher.ResponseData['body']): Promise<void> {
  try {
    await body.dump({ limit: MAX_RESPONSE_BYTES });
  } catch {
    // The connection is closed instead; nothing else to do.
  }
}
