/**
 * `portcullis apikey create`: mint a legacy API key for a partner. The key is printed once and
 * never stored; what goes into the configuration is its key id, its SHA-256 and a required
 * expiry of at most one year. API keys are long-lived shared secrets — the credentials partner-
 * API guidance warns against (OWASP Non-Human Identities Top 10: NHI4 insecure authentication,
 * NHI7 long-lived secrets) — so they must end, and every use is flagged on the decision record.
 */
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import type { Command } from '../command.ts';
import { usageError as printUsageError } from '../command.ts';
import { generateApiKey } from '../../authn/api-key.ts';

const USAGE = `Usage: portcullis apikey create --partner ID --expires WHEN [--id CREDENTIAL_ID]

Create a legacy API key for a partner. The key is printed once — store it now, it cannot be
shown again — together with the YAML to add under the partner's \`credentials\`. Portcullis
keeps only the key's SHA-256. The partner sends the key in the X-API-Key header, on routes
that list \`api_key\` in their \`credentials\`.

API keys are long-lived shared secrets: prefer tokens from an issuer (private_key_jwt or
mTLS client authentication) for any partner that can use them. An API key must expire, at
most one year ahead; every request made with one is flagged on its decision record.

Options:
      --partner ID         the partner the key belongs to (its id in \`partners\`)
      --expires WHEN       required: a date (2027-01-31, valid until the end of that day,
                           UTC), an RFC 3339 timestamp (2027-01-31T12:00:00Z), or a duration
                           from now: 30d, 12w, 1y (days, weeks, years); at most one year
      --id CREDENTIAL_ID   credential id (unique across all partners); default apikey-<key id>
  -h, --help               show this help

Exit status: 0 key created, 2 usage error (including an expiry that is past or more than a
year ahead).
`;

/** Same rule as `id` in the configuration schema. */
const ID = /^[a-z0-9][a-z0-9_.-]{0,62}$/;
const BARE_DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
/** The schema's timestamp syntax (RFC 3339 with an offset; seconds optional). */
const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;
const RELATIVE = /^([1-9]\d{0,3})([dwy])$/;
const DAY_MS = 86_400_000;
const UNIT_DAYS = { d: 1, w: 7 } as const;

export type Expiry =
  | { readonly ok: true; /** As written into the configuration. */ readonly written: string; /** First instant without access, ms. */ readonly expiresAt: number }
  | { readonly ok: false; readonly problem: string };

/**
 * Turns `--expires` into the value written to the configuration and the instant it ends.
 * A bare date keeps the configuration's meaning (valid through that day, UTC); a duration is
 * written as an absolute UTC timestamp. Refused: a past expiry, and one more than a year ahead
 * (the latest allowed is the end of the same calendar day next year, UTC).
 */
export function resolveExpiry(text: string, nowMs: number): Expiry {
  const parsed = parseExpiry(text, nowMs);
  if (!parsed.ok) return parsed;
  if (parsed.expiresAt <= nowMs) return { ok: false, problem: `--expires ${text} is not in the future` };
  const oneYear = new Date(nowMs);
  oneYear.setUTCFullYear(oneYear.getUTCFullYear() + 1);
  const latest = Date.UTC(oneYear.getUTCFullYear(), oneYear.getUTCMonth(), oneYear.getUTCDate()) + DAY_MS;
  if (parsed.expiresAt > latest) {
    return {
      ok: false,
      problem: `--expires ${text} is more than one year ahead (latest: ${new Date(latest - DAY_MS).toISOString().slice(0, 10)}). API keys are long-lived shared secrets; issue a new key before this one expires instead`,
    };
  }
  return parsed;
}

function parseExpiry(text: string, nowMs: number): Expiry {
  const relative = RELATIVE.exec(text);
  if (relative) {
    const amount = Number(relative[1]);
    const unit = relative[2] as 'd' | 'w' | 'y';
    let expiresAt: number;
    if (unit === 'y') {
      const date = new Date(nowMs);
      date.setUTCFullYear(date.getUTCFullYear() + amount);
      expiresAt = date.getTime();
    } else {
      expiresAt = nowMs + amount * UNIT_DAYS[unit] * DAY_MS;
    }
    // Whole seconds: the configuration holds an RFC 3339 timestamp, not milliseconds.
    expiresAt = Math.floor(expiresAt / 1000) * 1000;
    return { ok: true, written: rfc3339(expiresAt), expiresAt };
  }
  const bare = BARE_DATE.exec(text);
  if (bare) {
    if (!isCalendarDate(bare)) return { ok: false, problem: `--expires ${text} is not a calendar date` };
    return { ok: true, written: text, expiresAt: Date.parse(`${text}T00:00:00Z`) + DAY_MS };
  }
  const timestamp = TIMESTAMP.exec(text);
  if (timestamp) {
    const expiresAt = Date.parse(text);
    if (!isCalendarDate(timestamp) || Number.isNaN(expiresAt)) return { ok: false, problem: `--expires ${text} is not a valid timestamp` };
    return { ok: true, written: text, expiresAt };
  }
  return { ok: false, problem: `--expires must be a date (2027-01-31), an RFC 3339 timestamp or a duration such as 30d, 12w or 1y, not "${text}"` };
}

function rfc3339(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** `Date.parse` rolls 2027-02-30 over to March; a typo in an expiry must not. */
function isCalendarDate([, year, month, day]: RegExpExecArray): boolean {
  const date = new Date(Date.UTC(Number(year), Number(month) - 1, Number(day)));
  return date.getUTCFullYear() === Number(year) && date.getUTCMonth() === Number(month) - 1 && date.getUTCDate() === Number(day);
}

export const command: Command = {
  summary: 'Create a legacy API key for a partner (shown once, stored as a hash)',
  usage: USAGE,
  async run(argv) {
    let values;
    let positionals;
    try {
      ({ values, positionals } = parseArgs({
        args: [...argv],
        options: {
          partner: { type: 'string' },
          expires: { type: 'string' },
          id: { type: 'string' },
          help: { type: 'boolean', short: 'h', default: false },
        },
        strict: true,
        allowPositionals: true,
      }));
    } catch (error) {
      return usageError((error as Error).message);
    }
    if (values.help) {
      process.stdout.write(USAGE);
      return 0;
    }
    if (positionals.length !== 1 || positionals[0] !== 'create') {
      return usageError(positionals.length === 0 ? 'missing subcommand "create"' : `unknown subcommand "${positionals.join(' ')}"`);
    }
    if (values.partner === undefined) return usageError('--partner is required');
    if (!ID.test(values.partner)) return usageError(`--partner "${values.partner}" is not a partner id (lowercase letters, digits, "_", "-", ".")`);
    if (values.id !== undefined && !ID.test(values.id)) return usageError(`--id "${values.id}" is not a credential id (lowercase letters, digits, "_", "-", ".")`);
    if (values.expires === undefined) return usageError('--expires is required: API keys must end (at most one year ahead)');
    const expiry = resolveExpiry(values.expires, Date.now());
    if (!expiry.ok) {
      process.stderr.write(`portcullis apikey: ${expiry.problem}\n`);
      return 2;
    }

    const generated = generateApiKey();
    const credential = {
      id: values.id ?? `apikey-${generated.keyId}`,
      type: 'api_key',
      key_id: generated.keyId,
      sha256: generated.sha256,
      expires: expiry.written,
    };
    const snippet = stringify([credential], { defaultStringType: 'QUOTE_DOUBLE', defaultKeyType: 'PLAIN' })
      .trimEnd()
      .split('\n')
      .map((line) => `    ${line}`)
      .join('\n');
    process.stdout.write(`API key for partner "${values.partner}" (credential ${credential.id}), ${BARE_DATE.test(expiry.written) ? `valid through ${expiry.written} (UTC)` : `expires ${expiry.written}`}:

  ${generated.key}

Store it now: it cannot be shown again. Portcullis keeps only its SHA-256.
Give it to the partner over a secure channel; they send it in the X-API-Key header.

Add this to the configuration, under partners[${values.partner}].credentials:

${snippet}

API keys are long-lived shared secrets; move this partner to tokens (private_key_jwt or
mTLS) when it can, and create a new key before this one expires.
`);
    return 0;
  },
};

function usageError(message: string): number {
  return printUsageError('apikey', USAGE, message);
}
