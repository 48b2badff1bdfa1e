/**
 * `portcullis revoke …`: revoke a token, a credential or a certificate through the admin API of
 * a running gateway, lift a revocation, or list them. The gateway pushes the change to every
 * instance before it answers; this prints how far it got ("reached 3/3 instances in 4 ms").
 */
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import type { Command } from '../command.ts';
import { usageError as printUsageError } from '../command.ts';
import { normaliseRevocationKey } from '../../admin/api.ts';
import type { RevocationKind } from '../../state/store.ts';
import { CONNECTION_OPTIONS, CONNECTION_USAGE, adminRequest, describePropagation, resolveConnection } from './admin.ts';
import type { AdminConnection, AdminResponse } from './admin.ts';

const USAGE = `Usage: portcullis revoke token JTI --reason TEXT [--expires ISO]
       portcullis revoke credential ID --reason TEXT [--expires ISO]
       portcullis revoke certificate (sha256:HEX | serial:HEX@ISSUER-DN) --reason TEXT [--expires ISO]
       portcullis revoke certificate --cert FILE --reason TEXT [--expires ISO]
       portcullis revoke remove KIND KEY
       portcullis revoke list
       (each with [connection options] [--format text|json])

Revoke through the admin API of a running gateway. A revocation bites on the next request on
every instance: the gateway pushes it to all of them before it answers.

token        a token by its jti (refused however long it is still valid, whatever is cached)
credential   a partner credential by its id in the configuration (every token and key of it)
certificate  a client certificate by its SHA-256 fingerprint (sha256:<64 hex>, or the
             colon-separated form openssl prints), by serial number and issuer
             (serial:<hex>@<issuer as "openssl x509 -noout -issuer" prints it>), or by
             --cert FILE (PEM; its fingerprint is used)
remove       lift a revocation (KIND is token, credential or certificate)
list         every revocation and partner status override

Options:
      --reason TEXT       required for a revocation: why (recorded in the audit trail)
      --expires ISO       when the entry may be forgotten, e.g. the token's exp
                          (RFC 3339: 2026-12-01T00:00:00Z); default never
      --cert FILE         (certificate) revoke this PEM certificate
      --format FORMAT     text (default) or json (the admin API's answer)
  -h, --help              show this help

${CONNECTION_USAGE}

Exit status: 0 done, 1 refused by the admin API or unreachable, 2 usage error.
`;

const OPTIONS = {
  ...CONNECTION_OPTIONS,
  reason: { type: 'string' },
  expires: { type: 'string' },
  cert: { type: 'string' },
  format: { type: 'string', default: 'text' },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

const KINDS: readonly RevocationKind[] = ['token', 'credential', 'certificate'];

export const command: Command = {
  summary: 'Revoke a token, credential or certificate on every instance (or remove, list)',
  usage: USAGE,
  async run(argv) {
    let values;
    let positionals;
    try {
      ({ values, positionals } = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: true }));
    } catch (error) {
      return usageError((error as Error).message);
    }
    if (values.help) {
      process.stdout.write(USAGE);
      return 0;
    }
    if (values.format !== 'text' && values.format !== 'json') return usageError('--format must be text or json');
    const [subcommand, ...rest] = positionals;
    if (subcommand === undefined) return usageError('a subcommand is required: token, credential, certificate, remove or list');

    let request: (connection: AdminConnection) => Promise<number>;
    if (subcommand === 'list') {
      if (rest.length > 0) return usageError('list takes no arguments');
      request = async (connection) => list(connection, values.format);
    } else if (subcommand === 'remove') {
      if (rest.length !== 2) return usageError('remove takes KIND KEY');
      const [kind, written] = rest as [string, string];
      if (!(KINDS as readonly string[]).includes(kind)) return usageError(`KIND must be one of ${KINDS.join(', ')}, not "${kind}"`);
      const key = normaliseRevocationKey(kind as RevocationKind, written);
      if (!key.ok) return usageError(key.problem);
      request = async (connection) => remove(connection, kind, key.key, values.format);
    } else if ((KINDS as readonly string[]).includes(subcommand)) {
      const kind = subcommand as RevocationKind;
      let written: string;
      if (kind === 'certificate' && values.cert !== undefined) {
        if (rest.length !== 0) return usageError('give either --cert FILE or the certificate key, not both');
        const fingerprint = await certificateFingerprint(values.cert);
        if (!fingerprint.ok) return usageError(fingerprint.problem);
        written = fingerprint.key;
      } else {
        if (values.cert !== undefined) return usageError('--cert is for "revoke certificate" only');
        if (rest.length !== 1) return usageError(`${kind} takes exactly one ${kind === 'token' ? 'JTI' : kind === 'credential' ? 'credential ID' : 'certificate key'}`);
        written = rest[0]!;
      }
      const key = normaliseRevocationKey(kind, written);
      if (!key.ok) return usageError(key.problem);
      if (values.reason === undefined || values.reason.trim() === '') return usageError('--reason is required: say why (it goes to the audit trail)');
      if (values.expires !== undefined && Number.isNaN(Date.parse(values.expires))) return usageError(`--expires "${values.expires}" is not an RFC 3339 timestamp`);
      const body = { kind, key: key.key, reason: values.reason, ...(values.expires !== undefined ? { expires_at: values.expires } : {}) };
      request = async (connection) => create(connection, body, values.format);
    } else {
      return usageError(`unknown subcommand "${subcommand}"`);
    }

    const resolved = await resolveConnection(values);
    if (!resolved.ok) return usageError(resolved.problem);
    return request(resolved.connection);
  },
};

async function create(connection: AdminConnection, body: { kind: string; key: string; reason: string; expires_at?: string }, format: string): Promise<number> {
  const response = await adminRequest(connection, 'POST', '/admin/revocations', body);
  if (!response.ok) return failed(response, format);
  if (format === 'json') return printJson(response.body);
  const revocation = response.body['revocation'] as { kind: string; key: string; actor: string; at: string; expires_at: string | null };
  process.stdout.write(
    `revoked ${revocation.kind} ${display(revocation.key)} as ${revocation.actor} at ${revocation.at}${revocation.expires_at ? `, until ${revocation.expires_at}` : ''}\n` +
      `${describePropagation(response.body['propagation'])}\n`,
  );
  warnings(response);
  return 0;
}

async function remove(connection: AdminConnection, kind: string, key: string, format: string): Promise<number> {
  const response = await adminRequest(connection, 'DELETE', `/admin/revocations/${encodeURIComponent(kind)}/${encodeURIComponent(key)}`);
  if (!response.ok) return failed(response, format);
  if (format === 'json') return printJson(response.body);
  process.stdout.write(`removed the ${kind} revocation ${display(key)}\n${describePropagation(response.body['propagation'])}\n`);
  warnings(response);
  return 0;
}

interface ListedRevocation {
  kind: string;
  key: string;
  reason: string;
  actor: string;
  at: string;
  expires_at: string | null;
}
interface ListedPartner {
  partner_id: string;
  status: string;
  reason: string;
  actor: string;
  at: string;
}

async function list(connection: AdminConnection, format: string): Promise<number> {
  const response = await adminRequest(connection, 'GET', '/admin/revocations');
  if (!response.ok) return failed(response, format);
  if (format === 'json') return printJson(response.body);
  const revocations = (response.body['revocations'] ?? []) as ListedRevocation[];
  const partners = (response.body['partners'] ?? []) as ListedPartner[];
  const lines: string[] = [];
  lines.push(`revocations: ${revocations.length}`);
  lines.push(
    ...table(
      ['KIND', 'KEY', 'BY', 'AT', 'EXPIRES', 'REASON'],
      revocations.map((entry) => [entry.kind, display(entry.key), entry.actor, entry.at, entry.expires_at ?? 'never', display(entry.reason)]),
    ),
  );
  lines.push('', `partner status overrides: ${partners.length}`);
  lines.push(...table(['PARTNER', 'STATUS', 'BY', 'AT', 'REASON'], partners.map((entry) => [entry.partner_id, entry.status, entry.actor, entry.at, display(entry.reason)])));
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  if (rows.length === 0) return [];
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const format = (row: readonly string[]): string => `  ${row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column]!))).join('  ')}`.trimEnd();
  return [format(header), ...rows.map(format)];
}

/** Keys and reasons come from the server: escape what a terminal would interpret (an issuer DN holds line breaks). */
function display(text: string): string {
  return /[\u0000-\u001f\u007f-\u009f"]/.test(text) || text.includes(' ') ? JSON.stringify(text) : text;
}

async function certificateFingerprint(path: string): Promise<{ ok: true; key: string } | { ok: false; problem: string }> {
  let pem: Buffer;
  try {
    pem = await readFile(path);
  } catch (error) {
    return { ok: false, problem: `--cert ${path} cannot be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}` };
  }
  try {
    return { ok: true, key: `sha256:${new X509Certificate(pem).fingerprint256.replaceAll(':', '').toLowerCase()}` };
  } catch {
    return { ok: false, problem: `--cert ${path} is not a PEM or DER certificate` };
  }
}

function warnings(response: AdminResponse & { ok: true }): void {
  const list = response.body['warnings'];
  if (Array.isArray(list)) for (const warning of list) process.stderr.write(`warning: ${String(warning)}\n`);
  if (response.body['audit_recorded'] === false) process.stderr.write('warning: the change was applied, but the gateway could not append its audit record (see the gateway log)\n');
}

export function failed(response: AdminResponse & { ok: false }, format: string): number {
  if (format === 'json' && response.body !== null) process.stdout.write(`${JSON.stringify(response.body, null, 2)}\n`);
  process.stderr.write(`portcullis: ${response.message}\n`);
  return 1;
}

function printJson(body: unknown): number {
  process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
  return 0;
}

function usageError(message: string): number {
  return printUsageError('revoke', USAGE, message);
}
