#!/usr/bin/env node
/**
 * `portcullis` command-line entry: a small subcommand table over `node:util.parseArgs`
 * (ECOSYSTEM.md §1: no CLI framework). Each command lives in `commands/<name>.ts`.
 */
import type { Command } from './command.ts';

const COMMANDS: Record<string, () => Promise<{ command: Command }>> = {
  serve: () => import('./commands/serve.ts'),
  validate: () => import('./commands/validate.ts'),
  schema: () => import('./commands/schema.ts'),
  demo: () => import('./commands/demo.ts'),
  explain: () => import('./commands/explain.ts'),
  apikey: () => import('./commands/apikey.ts'),
  audit: () => import('./commands/audit.ts'),
  admin: () => import('./commands/admin.ts'),
  revoke: () => import('./commands/revoke.ts'),
  partner: () => import('./commands/partner.ts'),
  test: () => import('./commands/test.ts'),
  report: () => import('./commands/report.ts'),
  keys: () => import('./commands/keys.ts'),
};

const SUMMARIES: Record<string, string> = {
  serve: 'Run the gateway with a configuration file',
  validate: 'Check a configuration file without serving it',
  schema: 'Print the JSON Schema of the configuration',
  demo: 'Start a local demo: dev PKI, sample upstream, gateway, and curl commands to try',
  explain: 'Explain why a partner request would be allowed or denied',
  apikey: 'Create a legacy API key for a partner (shown once, stored as a hash)',
  audit: 'Verify the tamper-evident audit trail, or query it (verify | query)',
  admin: 'Create an admin API token (shown once, stored as a hash)',
  revoke: 'Revoke a token, credential or certificate on every instance (or remove, list)',
  partner: 'Suspend, resume or offboard a partner on every instance',
  test: 'Self-tests against a running deployment (test revocation)',
  report: 'Reports from a configuration file (certificates: every certificate by expiry)',
  keys: 'List or rotate the token service signing keys (list | rotate)',
};

function mainHelp(): string {
  const width = Math.max(...Object.keys(SUMMARIES).map((name) => name.length));
  const lines = Object.entries(SUMMARIES).map(([name, summary]) => `  ${name.padEnd(width)}  ${summary}`);
  return `Usage: portcullis <command> [options]

Identity-enforcing API gateway for partner and machine-to-machine traffic.

Commands:
${lines.join('\n')}

Run "portcullis <command> --help" for the options of a command.
`;
}

export async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(mainHelp());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v') {
    process.stdout.write(`portcullis ${await packageVersion()} (node ${process.version})\n`);
    return 0;
  }
  const load = COMMANDS[name];
  if (!load) {
    process.stderr.write(`portcullis: unknown command "${name}"\n\n${mainHelp()}`);
    return 2;
  }
  const { command } = await load();
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(command.usage);
    return 0;
  }
  return command.run(rest);
}

async function packageVersion(): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Runs `main` with the process arguments and sets the exit code. */
export function runCli(): void {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`portcullis: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exitCode = 1;
    },
  );
}

if (import.meta.main) runCli();
