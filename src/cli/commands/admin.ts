/**
 * `portcullis admin token`: mint an admin API token. Like an API key (`apikey.ts`), it is shown
 * once and only its SHA-256 goes into the configuration (`admin.tokens`).
 *
 * This module also holds what every command that talks to the admin API shares (`revoke`,
 * `partner`, `test revocation`): the connection options and a small client. The token never
 * comes from a flag — a flag value lands in shell history and in `ps` — only from
 * `PORTCULLIS_ADMIN_TOKEN` or a file.
 */
import { randomBytes, createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import type { Command } from '../command.ts';
import { usageError as printUsageError } from '../command.ts';

/** Recognisable by people and secret scanners, like `pcs_` API keys. */
export const ADMIN_TOKEN_PREFIX = 'pca_';
const ADMIN_TOKEN_BYTES = 32;
export const DEFAULT_ADMIN_URL = 'http://127.0.0.1:9901';
/** The admin API answers within the store's propagation timeout; this bounds a hung connection. */
const REQUEST_TIMEOUT_MS = 15_000;
const ID = /^[a-z0-9][a-z0-9_.-]{0,62}$/;

const USAGE = `Usage: portcullis admin token [--id NAME]

Create a token for the admin API (revocations, partner suspension and offboarding; see
docs/admin.md). The token is printed once — store it now, it cannot be shown again —
with the YAML to add to the configuration. Portcullis keeps only its SHA-256.

The id names who holds the token: it is recorded as the actor of every change made with it,
so give each person or automation its own token.

Use it with the CLI through the PORTCULLIS_ADMIN_TOKEN environment variable or
--token-file FILE (never as a command-line value), or send it as
"Authorization: Bearer <token>" to the ops listener's /admin/ endpoints.

Options:
      --id NAME    who holds the token (lowercase letters, digits, "_", "-", "."); default admin
  -h, --help       show this help

Exit status: 0 token created, 2 usage error.
`;

export interface GeneratedAdminToken {
  /** Shown once, never stored. */
  readonly token: string;
  /** SHA-256 of the token, lowercase hex: what `admin.tokens[].sha256` holds. */
  readonly sha256: string;
}

export function generateAdminToken(): GeneratedAdminToken {
  const token = `${ADMIN_TOKEN_PREFIX}${randomBytes(ADMIN_TOKEN_BYTES).toString('base64url')}`;
  return { token, sha256: createHash('sha256').update(token, 'utf8').digest('hex') };
}

export const command: Command = {
  summary: 'Create an admin API token (shown once, stored as a hash)',
  usage: USAGE,
  async run(argv) {
    let values;
    let positionals;
    try {
      ({ values, positionals } = parseArgs({
        args: [...argv],
        options: { id: { type: 'string', default: 'admin' }, help: { type: 'boolean', short: 'h', default: false } },
        strict: true,
        allowPositionals: true,
      }));
    } catch (error) {
      return printUsageError('admin', USAGE, (error as Error).message);
    }
    if (values.help) {
      process.stdout.write(USAGE);
      return 0;
    }
    if (positionals.length !== 1 || positionals[0] !== 'token') {
      return printUsageError('admin', USAGE, positionals.length === 0 ? 'missing subcommand "token"' : `unknown subcommand "${positionals.join(' ')}"`);
    }
    if (!ID.test(values.id)) return printUsageError('admin', USAGE, `--id "${values.id}" is not an id (lowercase letters, digits, "_", "-", ".")`);

    const generated = generateAdminToken();
    const snippet = stringify({ admin: { tokens: [{ id: values.id, sha256: generated.sha256 }] } }, { defaultStringType: 'QUOTE_DOUBLE', defaultKeyType: 'PLAIN' }).trimEnd();
    process.stdout.write(`Admin API token for "${values.id}":

  ${generated.token}

Store it now: it cannot be shown again. Portcullis keeps only its SHA-256.
Whoever holds it can revoke credentials and suspend or offboard partners.

Add this to the configuration (or add the entry to an existing admin.tokens list):

${snippet}

Then use it, e.g.:  PORTCULLIS_ADMIN_TOKEN=<token> portcullis revoke list -c <config>
`);
    return 0;
  },
};

// ---------------------------------------------------------------------------------------------
// Talking to the admin API (shared by revoke, partner and test revocation)
// ---------------------------------------------------------------------------------------------

/** parseArgs options every admin-API command accepts. */
export const CONNECTION_OPTIONS = {
  admin: { type: 'string' },
  config: { type: 'string', short: 'c' },
  'token-file': { type: 'string' },
} as const;

export const CONNECTION_USAGE = `Connection:
      --admin URL         the ops listener, e.g. http://127.0.0.1:9901 (default: the ops
                          address and port of -c FILE, else ${DEFAULT_ADMIN_URL})
  -c, --config FILE       the gateway's configuration (for its ops address)
      --token-file FILE   file holding the admin token (default: the PORTCULLIS_ADMIN_TOKEN
                          environment variable); never pass the token itself as a flag`;

export interface AdminConnection {
  /** Base URL, without a trailing slash. */
  readonly url: string;
  readonly token: string;
}

export type ConnectionResult = { readonly ok: true; readonly connection: AdminConnection } | { readonly ok: false; readonly problem: string };

export async function resolveConnection(values: { admin?: string | undefined; config?: string | undefined; 'token-file'?: string | undefined }): Promise<ConnectionResult> {
  let url: string;
  if (values.admin !== undefined) {
    let parsed: URL;
    try {
      parsed = new URL(values.admin);
    } catch {
      return { ok: false, problem: `--admin "${values.admin}" is not a URL (e.g. http://127.0.0.1:9901)` };
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return { ok: false, problem: '--admin must be an http:// or https:// URL' };
    if (parsed.username || parsed.password) return { ok: false, problem: '--admin must not carry credentials; use --token-file or PORTCULLIS_ADMIN_TOKEN' };
    url = `${parsed.origin}${parsed.pathname.replace(/\/+$/, '')}`;
  } else if (values.config !== undefined) {
    // Loaded only here: compiling a configuration costs more than the rest of the command.
    const { formatIssue, loadConfig } = await import('../../config/load.ts');
    const loaded = await loadConfig(values.config, { offline: true });
    if (!loaded.ok) {
      return { ok: false, problem: `cannot read the ops address from ${values.config}:\n${loaded.issues.slice(0, 5).map(formatIssue).join('\n')}\n(or pass --admin URL)` };
    }
    const { address, port } = loaded.snapshot.ops;
    if (port === 0) return { ok: false, problem: `${values.config} sets ops.port 0 (any free port): pass --admin URL` };
    // A wildcard bind address is reachable on loopback.
    const host = address === '0.0.0.0' ? '127.0.0.1' : address === '::' ? '::1' : address;
    url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  } else {
    url = DEFAULT_ADMIN_URL;
  }

  let token: string;
  if (values['token-file'] !== undefined) {
    try {
      token = (await readFile(values['token-file'], 'utf8')).trim();
    } catch (error) {
      return { ok: false, problem: `--token-file ${values['token-file']} cannot be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}` };
    }
    if (token === '') return { ok: false, problem: `--token-file ${values['token-file']} is empty` };
  } else {
    token = (process.env['PORTCULLIS_ADMIN_TOKEN'] ?? '').trim();
    if (token === '') return { ok: false, problem: 'no admin token: set PORTCULLIS_ADMIN_TOKEN or pass --token-file FILE (create a token with `portcullis admin token`)' };
  }
  if (/\s/.test(token)) return { ok: false, problem: 'the admin token contains whitespace: the file or variable must hold the token only' };
  return { ok: true, connection: { url, token } };
}

export type AdminResponse =
  | { readonly ok: true; readonly status: number; readonly body: Record<string, unknown> }
  | { readonly ok: false; readonly status: number | null; /** One line for a human. */ readonly message: string; readonly body: Record<string, unknown> | null };

/** One admin API call. Never throws: connection failures and refusals come back as `ok: false`. */
export async function adminRequest(connection: AdminConnection, method: 'GET' | 'POST' | 'DELETE', path: string, body?: object): Promise<AdminResponse> {
  let response: Response;
  try {
    response = await fetch(`${connection.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${connection.token}`,
        accept: 'application/json, application/problem+json',
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      redirect: 'error',
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    return { ok: false, status: null, message: `cannot reach the admin API at ${connection.url}: ${cause?.code ?? cause?.message ?? (error as Error).message}`, body: null };
  }
  const text = await response.text();
  let parsed: Record<string, unknown> | null = null;
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) parsed = value as Record<string, unknown>;
  } catch {
    parsed = null;
  }
  if (response.ok && parsed !== null) return { ok: true, status: response.status, body: parsed };
  if (parsed !== null && typeof parsed['code'] === 'string') {
    return { ok: false, status: response.status, message: `${response.status} ${String(parsed['code'])}: ${String(parsed['detail'] ?? parsed['title'] ?? '')}`, body: parsed };
  }
  return {
    ok: false,
    status: response.status,
    message: response.status === 404 && !text.startsWith('{') ? `${connection.url} has no admin API (404): is it the ops listener of a gateway with this version?` : `unexpected answer ${response.status} from ${connection.url}${path}`,
    body: parsed,
  };
}

/** "reached 3/3 instances in 4 ms", and what it means when some did not confirm. */
export function describePropagation(propagation: unknown): string {
  if (typeof propagation !== 'object' || propagation === null) return 'propagation unknown';
  const { instances, acknowledged, elapsed_ms: elapsedMs } = propagation as { instances?: number; acknowledged?: number; elapsed_ms?: number };
  const reached = `reached ${acknowledged ?? '?'}/${instances ?? '?'} instance${instances === 1 ? '' : 's'} in ${typeof elapsedMs === 'number' ? Math.round(elapsedMs * 10) / 10 : '?'} ms`;
  if (typeof instances === 'number' && typeof acknowledged === 'number' && acknowledged < instances) {
    return `${reached} — ${instances - acknowledged} instance(s) did not confirm within the propagation timeout: check those instances (GET /readyz, their log)`;
  }
  return reached;
}
