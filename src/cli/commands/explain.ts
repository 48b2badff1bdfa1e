/**
 * `portcullis explain`: why would this partner's request be allowed or denied? Stage by stage,
 * with the gateway's own functions (see `src/pipeline/explain.ts`).
 */
import { isIP } from 'node:net';
import { parseArgs, styleText } from 'node:util';
import type { Command } from '../command.ts';
import { usageError as printUsageError } from '../command.ts';
import { formatIssue, loadConfig } from '../../config/load.ts';
import { explainRequest } from '../../pipeline/explain.ts';
import type { Explanation } from '../../pipeline/explain.ts';

const USAGE = `Usage: portcullis explain -c FILE --partner ID --credential ID --method M --path /x
                         [--scope S]... [--purpose P] [--time ISO-8601] [--source-ip IP]
                         [--listener NAME] [--host NAME] [--format text|json]

Explain, stage by stage, whether the gateway would allow a request made with one of a
partner's credentials, and which grant or rule decides. The credential itself is assumed
valid (carrying the scopes given with --scope); everything after that — route, partner
status, agreement, grant, scopes, purpose, constraints, policy rules — is decided by the
same code as in the gateway.

Options:
  -c, --config FILE       configuration file (YAML)
      --partner ID        partner id
      --credential ID     one of the partner's credential ids
      --method M          HTTP method (default GET)
      --path /x           request path (and no query)
      --scope S           a scope the token carries (repeat, or space-separated)
      --purpose P         the declared purpose
      --time ISO          when the request is made (default: now), e.g. 2026-11-28T19:00:00Z
      --source-ip IP      client address (default 127.0.0.1)
      --listener NAME     the listener it arrives on (default: the first one that routes it)
      --host NAME         the Host (default: the listener's first hostname)
      --format FORMAT     text (default) or json
  -h, --help              show this help

Exit status: 0 allowed, 1 denied, 2 usage or configuration error.
`;

export const command: Command = {
  summary: 'Explain why a partner request would be allowed or denied',
  usage: USAGE,
  async run(argv) {
    let values;
    try {
      ({ values } = parseArgs({
        args: [...argv],
        options: {
          config: { type: 'string', short: 'c' },
          partner: { type: 'string' },
          credential: { type: 'string' },
          method: { type: 'string', default: 'GET' },
          path: { type: 'string' },
          scope: { type: 'string', multiple: true, default: [] },
          purpose: { type: 'string' },
          time: { type: 'string' },
          'source-ip': { type: 'string', default: '127.0.0.1' },
          listener: { type: 'string' },
          host: { type: 'string' },
          format: { type: 'string', default: 'text' },
        },
        strict: true,
        allowPositionals: false,
      }));
    } catch (error) {
      return usageError((error as Error).message);
    }
    for (const required of ['config', 'partner', 'credential', 'path'] as const) {
      if (values[required] === undefined) return usageError(`--${required} is required`);
    }
    const now = values.time === undefined ? new Date() : new Date(values.time);
    if (Number.isNaN(now.getTime())) return usageError(`--time "${values.time}" is not an ISO-8601 date`);
    if (isIP(values['source-ip']) === 0) return usageError(`--source-ip "${values['source-ip']}" is not an IP address`);
    if (values.format !== 'text' && values.format !== 'json') return usageError('--format must be text or json');

    const loaded = await loadConfig(values.config!, { offline: true });
    if (!loaded.ok) {
      process.stderr.write(loaded.issues.map((issue) => `${formatIssue(issue)}\n`).join(''));
      return 2;
    }
    const explanation = explainRequest(loaded.snapshot, {
      partnerId: values.partner!,
      credentialId: values.credential!,
      method: values.method.toUpperCase(),
      path: values.path!,
      scopes: values.scope.flatMap((scope) => scope.split(' ')).filter(Boolean),
      ...(values.purpose !== undefined ? { purpose: values.purpose } : {}),
      ...(values.listener !== undefined ? { listener: values.listener } : {}),
      ...(values.host !== undefined ? { host: values.host.toLowerCase() } : {}),
      sourceIp: values['source-ip'],
      now,
    });
    if (values.format === 'json') {
      process.stdout.write(`${JSON.stringify({ config_hash: loaded.snapshot.hash, time: now.toISOString(), ...jsonOf(explanation) }, null, 2)}\n`);
    } else {
      process.stdout.write(textOf(explanation, loaded.snapshot.hash, now, values.method.toUpperCase(), values.path!));
    }
    return explanation.allowed ? 0 : 1;
  },
};

function jsonOf(explanation: Explanation): object {
  const { listener, principal, ...rest } = explanation;
  return {
    ...rest,
    listener: listener?.name ?? null,
    partner: principal?.partner.id ?? null,
    credential: principal?.credential.id ?? null,
  };
}

const MARK = { pass: '✔', fail: '✖', skip: '–' } as const;

function textOf(explanation: Explanation, hash: string, now: Date, method: string, path: string): string {
  const color = process.stdout.isTTY === true;
  const paint = (style: 'green' | 'red' | 'gray' | 'bold', text: string): string => (color ? styleText(style, text) : text);
  const lines: string[] = [];
  lines.push(`${paint('bold', `${method} ${path}`)} at ${now.toISOString()}  (config ${hash.slice(0, 12)})`);
  if (explanation.principal) {
    const { partner } = explanation.principal;
    const agreement = partner.agreement ? `agreement ${partner.agreement.id} until ${new Date(partner.agreement.expiresAt).toISOString()}` : 'no agreement';
    lines.push(`partner ${partner.id} (${partner.status}, tier ${partner.tier}, ${agreement})`);
  }
  lines.push('');
  for (const step of explanation.steps) {
    const mark = step.outcome === 'pass' ? paint('green', MARK.pass) : step.outcome === 'fail' ? paint('red', MARK.fail) : paint('gray', MARK.skip);
    lines.push(`  ${mark} ${step.stage.padEnd(18)} ${step.check}: ${step.detail}`);
  }
  lines.push('');
  if (explanation.allowed) {
    lines.push(`${paint('green', 'ALLOWED')} — route ${explanation.routeId}, decided by ${explanation.decidedBy}${explanation.rules.length ? `; rules passed: ${explanation.rules.join(', ')}` : ''}`);
  } else {
    lines.push(
      `${paint('red', 'DENIED')} ${explanation.status} ${explanation.code} — reason ${explanation.reason}${explanation.decidedBy ? `, decided by ${explanation.decidedBy}` : ''}`,
    );
    lines.push(`  ${explanation.detail}`);
  }
  return `${lines.join('\n')}\n`;
}

function usageError(message: string): number {
  return printUsageError('explain', USAGE, message);
}
