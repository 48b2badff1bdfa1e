/**
 * `portcullis partner suspend | resume | offboard ID --reason TEXT`: change a partner's status on
 * every instance of a running gateway, through its admin API, without a configuration reload.
 */
import { parseArgs } from 'node:util';
import type { Command } from '../command.ts';
import { usageError as printUsageError } from '../command.ts';
import { CONNECTION_OPTIONS, CONNECTION_USAGE, adminRequest, describePropagation, resolveConnection } from './admin.ts';
import { failed } from './revoke.ts';

const USAGE = `Usage: portcullis partner suspend ID --reason TEXT
       portcullis partner resume ID --reason TEXT
       portcullis partner offboard ID --reason TEXT
       (each with [connection options] [--format text|json])

Change a partner's status on every instance of a running gateway (no reload needed):

suspend    refuse every request of the partner (403 partner_suspended) until resumed
resume     remove the runtime status change: the status in the configuration applies again
offboard   refuse every request of the partner for good (403 partner_offboarded); final —
           it cannot be resumed

Options:
      --reason TEXT       required: why (recorded in the audit trail)
      --format FORMAT     text (default) or json (the admin API's answer)
  -h, --help              show this help

${CONNECTION_USAGE}

Exit status: 0 done, 1 refused by the admin API or unreachable, 2 usage error.
`;

const ACTIONS = ['suspend', 'resume', 'offboard'] as const;

export const command: Command = {
  summary: 'Suspend, resume or offboard a partner on every instance',
  usage: USAGE,
  async run(argv) {
    let values;
    let positionals;
    try {
      ({ values, positionals } = parseArgs({
        args: [...argv],
        options: { ...CONNECTION_OPTIONS, reason: { type: 'string' }, format: { type: 'string', default: 'text' }, help: { type: 'boolean', short: 'h', default: false } },
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
    const [action, id, ...extra] = positionals;
    if (action === undefined || !(ACTIONS as readonly string[]).includes(action)) {
      return usageError(action === undefined ? 'a subcommand is required: suspend, resume or offboard' : `unknown subcommand "${action}"`);
    }
    if (id === undefined || extra.length > 0) return usageError(`${action} takes exactly one partner ID`);
    if (!/^[a-z0-9][a-z0-9_.-]{0,62}$/.test(id)) return usageError(`"${id}" is not a partner id (lowercase letters, digits, "_", "-", ".")`);
    if (values.reason === undefined || values.reason.trim() === '') return usageError('--reason is required: say why (it goes to the audit trail)');
    if (values.format !== 'text' && values.format !== 'json') return usageError('--format must be text or json');
    const resolved = await resolveConnection(values);
    if (!resolved.ok) return usageError(resolved.problem);

    const response = await adminRequest(resolved.connection, 'POST', `/admin/partners/${encodeURIComponent(id)}/${action}`, { reason: values.reason });
    if (!response.ok) return failed(response, values.format);
    if (values.format === 'json') {
      process.stdout.write(`${JSON.stringify(response.body, null, 2)}\n`);
      return 0;
    }
    const partner = response.body['partner'] as { id: string; status: string; configured_status: string };
    const detail = typeof response.body['detail'] === 'string' ? `${response.body['detail']}\n` : '';
    process.stdout.write(`partner ${partner.id} is now ${partner.status}\n${detail}${describePropagation(response.body['propagation'])}\n`);
    if (response.body['audit_recorded'] === false) process.stderr.write('warning: the change was applied, but the gateway could not append its audit record (see the gateway log)\n');
    return 0;
  },
};

function usageError(message: string): number {
  return printUsageError('partner', USAGE, message);
}
