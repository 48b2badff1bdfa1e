/**
 * `portcullis validate -c FILE`: load the configuration exactly as `serve` would — schema,
 * references, referenced files, route conflicts, compile — without opening a listener.
 * Exit 0 when valid, 1 when not, 2 on a usage error (ECOSYSTEM.md §4.1).
 */
import { parseArgs } from 'node:util';
import type { Command } from '../command.ts';
import { usageError as printUsageError } from '../command.ts';
import { formatIssue, loadConfig } from '../../config/load.ts';

const USAGE = `Usage: portcullis validate -c FILE [--format text|json] [--offline]

Check a configuration file without serving it: schema, references between sections,
referenced certificate and key files, route conflicts. Nothing is bound or served.

Options:
  -c, --config FILE     configuration file (YAML)
      --format FORMAT   text (default): "Valid configuration (hash …)" on stdout, or one
                        "file:line:col CODE path: message" line per issue on stderr;
                        json: {"valid", "hash", "warnings", "issues"} on stdout
      --offline         make no network calls
  -h, --help            show this help

Exit status: 0 valid, 1 invalid, 2 usage error.
`;

export const command: Command = {
  summary: 'Check a configuration file without serving it',
  usage: USAGE,
  async run(argv) {
    let values;
    try {
      ({ values } = parseArgs({
        args: [...argv],
        options: {
          config: { type: 'string', short: 'c' },
          format: { type: 'string', default: 'text' },
          offline: { type: 'boolean', default: false },
        },
        strict: true,
        allowPositionals: false,
      }));
    } catch (error) {
      return usageError((error as Error).message);
    }
    if (values.config === undefined) return usageError('--config is required');
    if (values.format !== 'text' && values.format !== 'json') return usageError(`--format must be "text" or "json", not "${values.format}"`);

    const result = await loadConfig(values.config, { offline: values.offline });
    if (values.format === 'json') {
      const report = result.ok
        ? { valid: true, hash: result.snapshot.hash, warnings: result.snapshot.warnings, issues: [] }
        : { valid: false, issues: result.issues };
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      return result.ok ? 0 : 1;
    }
    if (!result.ok) {
      process.stderr.write(result.issues.map((issue) => `${formatIssue(issue)}\n`).join(''));
      return 1;
    }
    for (const warning of result.snapshot.warnings) process.stderr.write(`warning: ${warning}\n`);
    process.stdout.write(`Valid configuration (hash ${result.snapshot.hash.slice(0, 12)})\n`);
    return 0;
  },
};

function usageError(message: string): number {
  return printUsageError('validate', USAGE, message);
}
