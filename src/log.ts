/**
 * The application log (lifecycle, reloads, warnings): JSON lines on stderr through pino, apart
 * from the decision log and the audit trail. Every entry is redacted before anyone sees it, so the
 * listener (tests, the demo) receives exactly what stderr receives.
 *
 * Redaction is ours, not pino's `redact`: its paths are fixed or one-level wildcards
 * (`*.authorization`), and cannot say "a key containing `secret` at any depth" or "the private
 * members of anything that looks like a JWK". A recursive pass over each entry can, and it runs
 * once for both the listener and the line.
 */
import { KeyObject } from 'node:crypto';
import { pino } from 'pino';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export type LogListener = (entry: { level: LogLevel; event: string; [key: string]: unknown }) => void;

export const REDACTED = '[REDACTED]';

const LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

/**
 * Field names (normalised: lower case, `_` and camelCase humps as `-`) whose value is censored
 * whatever it is. `key` is on the list although callers use it for identifiers too: a bare `key`
 * is as likely to be an API key or a PEM, and a censored identifier costs less than a leaked key.
 */
const SENSITIVE_NAMES = new Set([
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'dpop',
  'x-api-key',
  'api-key',
  'apikey',
  'token',
  'client-assertion',
  'assertion',
  'private-key',
  'signing-key',
  'key',
  'passphrase',
]);
/** Substrings that censor a field wherever they appear in its name (`client_secret`, `db_password`). */
const SENSITIVE_PARTS = ['secret', 'password', 'passwd'];
/** `access_token`, `refresh_token`, `id_token`, `subject_token`, `x-amz-security-token`, … */
const SENSITIVE_SUFFIXES = ['-token', '-private-key'];
/** Private and symmetric members of a JWK (RFC 7518 §6.2.2, §6.3.2, §6.4.1). */
const JWK_PRIVATE_MEMBERS = new Set(['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']);
const PEM_PRIVATE_KEY = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/;
/** The line's own keys: a caller field with one of these names is kept under `shadowed`. */
const RESERVED = new Set(['@timestamp', 'level', 'event']);
/** Deeper than any structure worth logging; also bounds the work a hostile object can cause. */
const MAX_DEPTH = 10;

function normalisedName(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase().replaceAll('_', '-');
}

function isSensitiveName(name: string): boolean {
  // Both spellings: camelCase humps (`privateKey`) and acronyms that are not humps (`DPoP`).
  return [normalisedName(name), name.toLowerCase().replaceAll('_', '-')].some(
    (normalised) =>
      SENSITIVE_NAMES.has(normalised) ||
      SENSITIVE_PARTS.some((part) => normalised.includes(part)) ||
      SENSITIVE_SUFFIXES.some((suffix) => normalised.endsWith(suffix)),
  );
}

/**
 * A JSON-ready copy of `value` with secrets censored at any depth: by field name (headers objects,
 * nested `req.headers`, error properties, `rawHeaders` name/value arrays), by shape (JWK private
 * members, private and secret `KeyObject`/`CryptoKey`, PEM private keys, raw bytes) and URL
 * passwords. Free text (an error message, a `detail` string) is not parsed: callers must not put
 * secrets there.
 */
export function redactSecrets(value: unknown): unknown {
  return redactValue(value, 0, []);
}

function redactValue(value: unknown, depth: number, ancestors: object[]): unknown {
  if (typeof value === 'string') return PEM_PRIVATE_KEY.test(value) ? REDACTED : value;
  if (typeof value === 'bigint') return value.toString();
  if (value === null || typeof value !== 'object') return value;
  if (ancestors.includes(value)) return '[Circular]';
  if (depth >= MAX_DEPTH) return '[Truncated]';

  if (value instanceof KeyObject) return value.type === 'public' ? `[public ${value.asymmetricKeyType ?? 'key'}]` : REDACTED;
  if (value instanceof CryptoKey) return value.type === 'public' ? `[public ${value.algorithm.name}]` : REDACTED;
  // Bytes are never readable in a log line, and are the usual shape of raw key material.
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return `[binary ${value.byteLength} bytes]`;
  if (value instanceof URL) return redactUrl(value);

  const inner = [...ancestors, value];
  if (Array.isArray(value)) return value.map((item) => redactValue(item, depth + 1, inner));
  if (value instanceof Error) return redactError(value, depth, inner);
  if (value instanceof Map) return redactEntries([...value.entries()].map(([name, item]) => [String(name), item]), depth, inner);
  if (value instanceof Set) return [...value].map((item) => redactValue(item, depth + 1, inner));
  if (value instanceof Headers) return redactEntries([...value.entries()], depth, inner);
  const toJSON = (value as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === 'function') {
    const json = readSafely(() => toJSON.call(value));
    return json === value ? redactEntries(ownEntries(value), depth, inner) : redactValue(json, depth, ancestors);
  }
  const entries = ownEntries(value);
  const isJwk = entries.some(([name, item]) => name === 'kty' && typeof item === 'string');
  return redactEntries(entries, depth, inner, isJwk);
}

function redactEntries(entries: Array<[string, unknown]>, depth: number, ancestors: object[], isJwk = false): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  for (const [name, item] of entries) {
    if (item === undefined || typeof item === 'function' || typeof item === 'symbol') continue;
    let redacted: unknown;
    if (isSensitiveName(name) || (isJwk && JWK_PRIVATE_MEMBERS.has(name))) redacted = REDACTED;
    else if (normalisedName(name) === 'raw-headers' && Array.isArray(item)) redacted = redactRawHeaders(item, depth, ancestors);
    else redacted = redactValue(item, depth + 1, ancestors);
    // A plain assignment to `__proto__` (a key parsed from input) would set the prototype instead.
    Object.defineProperty(result, name, { value: redacted, enumerable: true, writable: true, configurable: true });
  }
  return result;
}

/** Userinfo and sensitive query parameters (`?access_token=`, RFC 6750 §2.3) of a URL object. */
function redactUrl(url: URL): string {
  const userinfo = url.username !== '' || url.password !== '' ? `${REDACTED}@` : '';
  const query = [...url.searchParams]
    .map(([name, item]) => `${encodeURIComponent(name)}=${isSensitiveName(name) ? REDACTED : encodeURIComponent(item)}`)
    .join('&');
  return `${url.protocol}//${userinfo}${url.host}${url.pathname}${query === '' ? '' : `?${query}`}${url.hash}`;
}

/** Node's `rawHeaders`: `[name, value, name, value, …]`. */
function redactRawHeaders(items: readonly unknown[], depth: number, ancestors: object[]): unknown[] {
  return items.map((item, index) => {
    const name = index % 2 === 1 ? items[index - 1] : undefined;
    if (typeof name === 'string' && isSensitiveName(name)) return REDACTED;
    return redactValue(item, depth + 1, ancestors);
  });
}

/** `JSON.stringify(error)` is `{}`: keep what an operator needs, the stack included. */
function redactError(error: Error, depth: number, ancestors: object[]): Record<string, unknown> {
  const entries: Array<[string, unknown]> = [
    ['type', error.name],
    ['message', error.message],
    ['stack', error.stack],
    ...ownEntries(error).filter(([name]) => name !== 'type' && name !== 'message' && name !== 'stack'),
  ];
  if (error.cause !== undefined) entries.push(['cause', error.cause]);
  if (error instanceof AggregateError) entries.push(['errors', error.errors]);
  return redactEntries(entries, depth, ancestors);
}

/** Own enumerable properties; a throwing getter costs its field, not the log line. */
function ownEntries(value: object): Array<[string, unknown]> {
  return Object.keys(value).map((name) => [name, readSafely(() => (value as Record<string, unknown>)[name])]);
}

function readSafely(read: () => unknown): unknown {
  try {
    return read();
  } catch {
    return '[unreadable]';
  }
}

interface Settings {
  readonly quiet: boolean;
  readonly threshold: LogLevel;
  readonly problem: string | null;
}

/** `PORTCULLIS_LOG`: `silent`, or the lowest level written to stderr (default `info`). */
function settingsFromEnvironment(value: string | undefined): Settings {
  if (value === undefined || value === '') return { quiet: false, threshold: 'info', problem: null };
  if (value === 'silent') return { quiet: true, threshold: 'info', problem: null };
  if ((LEVELS as readonly string[]).includes(value)) return { quiet: false, threshold: value as LogLevel, problem: null };
  return { quiet: false, threshold: 'info', problem: `PORTCULLIS_LOG must be silent, debug, info, warn or error (got "${value}"); using info` };
}

const settings = settingsFromEnvironment(process.env['PORTCULLIS_LOG']);
let listener: LogListener | null = null;
let quiet = settings.quiet;

/**
 * Synchronous writes, as `process.stderr.write` did: a line logged just before `process.exit`,
 * a crash or a SIGKILL is on its way already, lines keep their order with other writers of fd 2
 * (serve's `file:line:col` issue lines, Node's warnings), and there is no buffer to flush on
 * shutdown. The cost is one write(2) per line, and no call site is on the request path except
 * failure reports. If stderr blocks, so does this: the same as before.
 */
const destination = pino.destination({ dest: 2, sync: true });
// A closed or broken stderr must not turn a log call into an exception in its caller; there is
// nowhere left to report it. (pino already swallows EPIPE; this covers EBADF and the rest.)
destination.on('error', () => undefined);

const logger = pino(
  {
    level: settings.threshold,
    base: undefined,
    timestamp: false,
    // Errors are plain objects by now. pino would run its `err` serializer on any field named
    // `err` (renaming `type` to `Object`) and copy that field's message into a `msg`; a key no
    // caller uses turns the second off, an identity serializer the first.
    errorKey: 'portcullis.pino_error',
    serializers: { err: (value: unknown) => value },
    formatters: { level: (label) => ({ level: label }) },
  },
  destination,
);

/** Tests and the demo can observe or silence the log. */
export function setLogListener(next: LogListener | null, options?: { quiet?: boolean }): void {
  listener = next;
  if (options?.quiet !== undefined) quiet = options.quiet;
}

export function log(level: LogLevel, event: string, fields: Record<string, unknown> = {}): void {
  const redacted = redactEntries(ownEntries(fields), 0, [fields]);
  const own: Record<string, unknown> = {};
  const shadowed: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(redacted)) {
    if (RESERVED.has(name)) shadowed[name] = value;
    else own[name] = value;
  }
  const entry = {
    '@timestamp': new Date().toISOString(),
    level,
    event,
    ...own,
    ...(Object.keys(shadowed).length > 0 ? { shadowed } : {}),
  };
  listener?.(entry);
  if (quiet) return;
  const { level: _level, ...line } = entry;
  try {
    logger[level](line);
  } catch {
    // See the destination's error handler: a log line is never worth failing its caller.
  }
}

if (settings.problem !== null) log('warn', 'log.setting_ignored', { message: settings.problem });
