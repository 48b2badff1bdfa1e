/**
 * `portcullis test <check>`: self-tests an operator runs against a live deployment. A command
 * group; each check lives in its own module (`test-<check>.ts`).
 */
import type { Command } from '../command.ts';
import { usageError as printUsageError } from '../command.ts';
import { command as revocation, USAGE as REVOCATION_USAGE } from './test-revocation.ts';

const CHECKS: Record<string, Command> = { revocation };

// `portcullis test revocation --help` prints the group's usage (main.ts answers --help before
// the command runs), so the group's usage carries every check's own.
const USAGE = `Usage: portcullis test <check> [options]

Self-tests against a running deployment. Checks:
  revocation   revoke a test credential and time the refusal on every instance

${REVOCATION_USAGE}`;

export const command: Command = {
  summary: 'Self-tests against a running deployment (revocation)',
  usage: USAGE,
  async run(argv) {
    const [name, ...rest] = argv;
    if (name === undefined) return printUsageError('test', USAGE, `a check is required: ${Object.keys(CHECKS).join(', ')}`);
    const check = CHECKS[name];
    if (!check) return printUsageError('test', USAGE, `unknown check "${name}" (available: ${Object.keys(CHECKS).join(', ')})`);
    return check.run(rest);
  },
};
