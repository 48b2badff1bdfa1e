/**
 * `portcullis demo`: the five-minute tour. Creates (or reuses) a development PKI, starts the
 * sample upstream and a gateway running `examples/demo.yaml`, then prints curl commands that show
 * one allowed call and two refusals. Everything binds to loopback and lives under `--data-dir`.
 *
 * stdout carries only the instructions (safe to pipe); progress and errors go to stderr.
 */
import { createWriteStream } from 'node:fs';
import { access, mkdir } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Command } from '../command.ts';
import { createProgress } from '../progress.ts';
import { checkDevPki, createDevPki, writePki, type DevPkiFiles } from '../../pki/dev-ca.ts';
import { startSampleUpstream, type SampleUpstream } from '../../demo/sample-upstream.ts';
import { startGateway, type Gateway } from '../../server/gateway.ts';
import { setLogListener } from '../../log.ts';

const CONFIG_PATH = fileURLToPath(new URL('../../../examples/demo.yaml', import.meta.url));

const PORT_OPTIONS = {
  'public-port': { env: 'DEMO_PUBLIC_PORT', fallback: 8080, what: 'public listener' },
  'partner-port': { env: 'DEMO_PARTNER_PORT', fallback: 8443, what: 'partner listener' },
  'ops-port': { env: 'DEMO_OPS_PORT', fallback: 9901, what: 'ops listener' },
  'upstream-port': { env: 'DEMO_UPSTREAM_PORT', fallback: 9100, what: 'sample upstream' },
} as const;

type PortOption = keyof typeof PORT_OPTIONS;

const usage = `Usage: portcullis demo [options]

Starts a local demo on loopback: a development PKI, a sample upstream, and a gateway running
examples/demo.yaml. Prints curl commands to try, then serves until Ctrl-C.

Options:
  --data-dir DIR       Dev PKI, decision log and state (default ./.portcullis/demo).
                       The PKI is reused on the next start unless it expires within 7 days.
  --public-port N      Public listener, plain HTTP (default 8080; 0 picks a free port).
  --partner-port N     Partner listener, TLS (default 8443).
  --ops-port N         Ops listener: /livez, /readyz (default 9901).
  --upstream-port N    Sample upstream (default 9100).
  --no-wait            Print the commands, then stop at once (for scripts and tests).
  -h, --help           Show this help.
`;

export const command: Command = {
  summary: 'Start a local demo: dev PKI, sample upstream, gateway, and curl commands to try',
  usage,
  run,
};

interface DemoOptions {
  readonly dataDir: string;
  readonly ports: Readonly<Record<PortOption, number>>;
  readonly wait: boolean;
}

async function run(argv: readonly string[]): Promise<number> {
  let options: DemoOptions;
  try {
    options = parseOptions(argv);
  } catch (error) {
    process.stderr.write(`portcullis demo: ${(error as Error).message}\n\n${usage}`);
    return 2;
  }

  const progress = createProgress();
  let upstream: SampleUpstream | undefined;
  let gateway: Gateway | undefined;
  let gatewayLog: ReturnType<typeof createWriteStream> | undefined;
  const stop = async (): Promise<void> => {
    await gateway?.shutdown();
    await upstream?.close();
    setLogListener(null, { quiet: process.env['PORTCULLIS_LOG'] === 'silent' });
    await new Promise<void>((done) => (gatewayLog ? gatewayLog.end(done) : done()));
  };

  try {
    await mkdir(options.dataDir, { recursive: true, mode: 0o700 });
    const pki = await prepareDevPki(join(options.dataDir, 'pki'), progress.step);

    const upstreamPort = options.ports['upstream-port'];
    progress.step(`starting sample upstream on 127.0.0.1:${upstreamPort === 0 ? '<free port>' : upstreamPort}`);
    upstream = await startSampleUpstream({ port: upstreamPort });

    progress.step(`loading ${displayPath(CONFIG_PATH)}`);
    await access(CONFIG_PATH);
    const env: Record<string, string | undefined> = {
      ...process.env,
      DEMO_DATA_DIR: options.dataDir,
      DEMO_PKI_DIR: pki.dir,
      DEMO_PUBLIC_PORT: String(options.ports['public-port']),
      DEMO_PARTNER_PORT: String(options.ports['partner-port']),
      DEMO_OPS_PORT: String(options.ports['ops-port']),
      // The actual port: with --upstream-port 0 the upstream picked one.
      DEMO_UPSTREAM_PORT: String(upstream.port),
    };

    progress.step('starting gateway');
    // The application log goes to a file so it does not bury the instructions; warnings and
    // errors are still shown.
    const logPath = join(options.dataDir, 'gateway.log');
    gatewayLog = createWriteStream(logPath, { flags: 'a', mode: 0o600 });
    const logFile = gatewayLog;
    setLogListener(
      (entry) => {
        logFile.write(`${JSON.stringify(entry)}\n`);
        if (entry.level === 'warn' || entry.level === 'error') {
          progress.done(); // so the record does not land in the middle of the progress line
          process.stderr.write(`${JSON.stringify(entry)}\n`);
        }
      },
      { quiet: true },
    );
    gateway = await startGateway({ configPath: CONFIG_PATH, env });
    progress.done();

    process.stdout.write(instructions(gateway, pki, options.dataDir, logPath));
  } catch (error) {
    progress.done();
    process.stderr.write(`portcullis demo: ${describeFailure(error, options)}\n`);
    await stop().catch(() => {});
    return 1;
  }

  if (options.wait) {
    const signal = await nextSignal();
    progress.step(`${signal}: stopping`);
  } else {
    progress.step('--no-wait: stopping');
  }
  await stop();
  progress.done('demo stopped');
  return 0;
}

function parseOptions(argv: readonly string[]): DemoOptions {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      'data-dir': { type: 'string' },
      'public-port': { type: 'string' },
      'partner-port': { type: 'string' },
      'ops-port': { type: 'string' },
      'upstream-port': { type: 'string' },
      'no-wait': { type: 'boolean', default: false },
    },
  });
  const ports = {} as Record<PortOption, number>;
  for (const name of Object.keys(PORT_OPTIONS) as PortOption[]) {
    const text = values[name];
    if (text === undefined) {
      ports[name] = PORT_OPTIONS[name].fallback;
      continue;
    }
    if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) throw new Error(`--${name} must be a port number from 0 to 65535, got "${text}"`);
    ports[name] = Number(text);
  }
  return { dataDir: resolve(values['data-dir'] ?? '.portcullis/demo'), ports, wait: !values['no-wait'] };
}

async function prepareDevPki(dir: string, step: (message: string) => void): Promise<DevPkiFiles> {
  const check = await checkDevPki(dir);
  if (check.usable) {
    step(`reusing dev PKI in ${displayPath(dir)}`);
    return check.files;
  }
  const why = check.reason.endsWith('is missing') ? '' : ` (${check.reason})`;
  step(`creating dev PKI in ${displayPath(dir)}${why}`);
  return writePki(dir, await createDevPki());
}

function instructions(gateway: Gateway, pki: DevPkiFiles, dataDir: string, logPath: string): string {
  const { listeners, ops } = gateway.addresses();
  const publicPort = portOf(findListener(listeners, 'public').url);
  const partnerPort = portOf(findListener(listeners, 'partner').url);
  const opsPort = portOf(ops);
  return `
Portcullis demo is running. Try:

  # 1. Allowed: a public route that needs no credential. The sample upstream answers 200
  #    with an echo of the request as it reached it (note the headers the gateway set).
  curl -i http://localhost:${publicPort}/status

  # 2. Refused: a partner route called without a credential. 401 application/problem+json
  #    with a WWW-Authenticate challenge; the upstream is never contacted.
  curl -i --cacert ${shellQuote(pki.paths.ca)} https://localhost:${partnerPort}/orders

  # 3. Refused: a Host this listener does not serve. 421, because a listener answers only
  #    for the hostnames configured on it.
  curl -i -H 'Host: unknown.example' http://localhost:${publicPort}/status

Every request, allowed or refused, is one line in the decision log:
  tail -f ${shellQuote(join(dataDir, 'decisions.jsonl'))}

Readiness, on the ops listener (200 once the gateway serves):
  curl http://localhost:${opsPort}/readyz

Config: ${displayPath(CONFIG_PATH)}    Gateway log: ${logPath}

Ctrl-C to stop.
`;
}

function findListener<T extends { name: string }>(listeners: readonly T[], name: string): T {
  const listener = listeners.find((candidate) => candidate.name === name);
  if (!listener) throw new Error(`the demo configuration has no "${name}" listener`);
  return listener;
}

function portOf(url: string): string {
  const parsed = new URL(url);
  return parsed.port || (parsed.protocol === 'https:' ? '443' : '80');
}

function nextSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolveSignal) => {
    // Handlers are removed on the first signal, so a second Ctrl-C during shutdown kills at once.
    const onSignal = (signal: NodeJS.Signals): void => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      resolveSignal(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

function describeFailure(error: unknown, options: DemoOptions): string {
  const inUse = findErrorCode(error, 'EADDRINUSE');
  if (inUse) {
    const port = typeof inUse.port === 'number' ? inUse.port : undefined;
    const option = (Object.keys(PORT_OPTIONS) as PortOption[]).find((name) => options.ports[name] === port && port !== 0);
    if (option && port !== undefined) {
      return `port ${port} (${PORT_OPTIONS[option].what}) is already in use. Stop what is using it, or choose another port with --${option} N.`;
    }
    return `a port the demo needs is already in use (${inUse.message}). Choose other ports with --public-port, --partner-port, --ops-port and --upstream-port.`;
  }
  return error instanceof Error ? error.message : String(error);
}

function findErrorCode(error: unknown, code: string): (Error & { port?: unknown }) | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 8 && current instanceof Error; depth += 1) {
    if ((current as NodeJS.ErrnoException).code === code) return current;
    current = current.cause;
  }
  return undefined;
}

/** A path relative to the working directory when it is inside it, for shorter messages. */
function displayPath(path: string): string {
  const shorter = relative(process.cwd(), path);
  return shorter && !shorter.startsWith('..') && !isAbsolute(shorter) ? shorter : path;
}

/** Quotes a value for POSIX shells, so a printed command pastes correctly whatever the path holds. */
function shellQuote(value: string): string {
  return /^[\w@%+=:,./-]+$/.test(value) ? value : `'${value.replaceAll("'", `'\\''`)}'`;
}
