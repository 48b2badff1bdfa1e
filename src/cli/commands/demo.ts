/**
 * `portcullis demo`: the five-minute tour. Creates (or reuses) a development PKI, the partner
 * acme's own client CA and certificates, and the signing key of a stand-in identity provider,
 * starts the sample upstream and a gateway running `examples/demo.yaml`, revokes one of acme's
 * certificates through the gateway, mints short-lived partner tokens, then prints curl commands
 * (allowed calls and refusals, with and without a token, with a good and a revoked client
 * certificate, and a token obtained from the gateway's own token service over mTLS) and
 * `portcullis explain` commands that say why. Everything binds to loopback and
 * lives under `--data-dir`.
 *
 * stdout carries only the instructions (safe to pipe); progress and errors go to stderr.
 */
import { createWriteStream } from 'node:fs';
import { access, mkdir } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Command } from '../command.ts';
import { createProgress } from '../progress.ts';
import { checkDevPki, createDevPki, writePki, type DevPkiFiles } from '../../pki/dev-ca.ts';
import { startSampleUpstream, type SampleUpstream } from '../../demo/sample-upstream.ts';
import { loadOrCreateDevIssuer, DEV_TOKEN_MAX_LIFETIME_SECONDS, type DevIssuer } from '../../demo/dev-issuer.ts';
import { loadOrCreatePartnerPki, type PartnerPki } from '../../demo/partner-pki.ts';
import type { Snapshot } from '../../config/snapshot.ts';
import { startGateway, type Gateway } from '../../server/gateway.ts';
import { setLogListener } from '../../log.ts';

const CONFIG_PATH = fileURLToPath(new URL('../../../examples/demo.yaml', import.meta.url));
/** Where `${DEMO_PKI_DIR:-…}` in examples/demo.yaml points when the variable is unset. */
const CONFIG_DEFAULT_PKI_DIR = resolve(dirname(CONFIG_PATH), '../.portcullis/demo/pki');

/**
 * The partner calls the demo prints, by the ids they have in examples/demo.yaml. Client ids and
 * the audience are read from the loaded configuration, so a token always matches the file.
 */
const SCENARIO = {
  api: 'orders',
  path: '/orders',
  /** A hostname of the partner listener that the dev server certificate covers. */
  host: 'api.localhost',
  readScope: 'orders:read',
  writeScope: 'orders:write',
  acme: { partner: 'acme', credential: 'acme-jwt' },
  /** acme's client of the token service, authenticating with its client certificate (RFC 8705 §2.1). */
  acmeClient: { partner: 'acme', credential: 'acme-client' },
  globex: { partner: 'globex', credential: 'globex-jwt' },
} as const;

/** Why the demo's revoked certificate is revoked, as its revocation entry and refusals say. */
const REVOKED_CERTIFICATE_REASON = 'demo: a revoked certificate';

/** globex's grant opens this long after the demo starts and stays open for one hour. */
const WINDOW_OPENS_AFTER_MS = 2 * 3_600_000;
const WINDOW_LENGTH_MS = 3_600_000;

const PORT_OPTIONS = {
  'public-port': { env: 'DEMO_PUBLIC_PORT', fallback: 8080, what: 'public listener' },
  'partner-port': { env: 'DEMO_PARTNER_PORT', fallback: 8443, what: 'partner listener' },
  'ops-port': { env: 'DEMO_OPS_PORT', fallback: 9901, what: 'ops listener' },
  'upstream-port': { env: 'DEMO_UPSTREAM_PORT', fallback: 9100, what: 'sample upstream' },
} as const;

type PortOption = keyof typeof PORT_OPTIONS;

const usage = `Usage: portcullis demo [options]

Starts a local demo on loopback: a development PKI, a sample upstream, and a gateway running
examples/demo.yaml. Signs partner access tokens (valid 15 minutes) as a stand-in identity
provider, prints curl and explain commands to try, then serves until Ctrl-C.

Options:
  --data-dir DIR       Dev PKI, token signing key, decision log and state (default
                       ./.portcullis/demo). The PKI is reused on the next start unless it
                       expires within 7 days; the signing key is reused while it is intact.
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
    const partnerPki = await preparePartnerPki(pki.dir, !pki.reused, progress.step);
    const issuer = await prepareDevIssuer(pki.dir, progress.step);
    const globexWindow = windowClosedAt(new Date());

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
      DEMO_WINDOW_FROM: globexWindow.from,
      DEMO_WINDOW_TO: globexWindow.to,
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
    checkPartnerTrust(gateway.snapshot, partnerPki);
    await revokeDemoCertificate(gateway, partnerPki);
    const tokens = await mintDemoTokens(gateway.snapshot, issuer);
    const tokenService = checkTokenService(gateway.snapshot);
    progress.done();

    process.stdout.write(instructions({ gateway, pki, partnerPki, dataDir: options.dataDir, logPath, tokens, tokenService, globexWindow }));
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

async function prepareDevPki(dir: string, step: (message: string) => void): Promise<DevPkiFiles & { readonly reused: boolean }> {
  const check = await checkDevPki(dir);
  if (check.usable) {
    step(`reusing dev PKI in ${displayPath(dir)}`);
    return { ...check.files, reused: true };
  }
  const why = check.reason.endsWith('is missing') ? '' : ` (${check.reason})`;
  step(`creating dev PKI in ${displayPath(dir)}${why}`);
  return { ...(await writePki(dir, await createDevPki())), reused: false };
}

/**
 * acme's client CA and certificates live next to the dev PKI and count as part of it: a step of
 * their own is shown only when they are replaced while the rest is reused.
 */
async function preparePartnerPki(dir: string, devPkiCreated: boolean, step: (message: string) => void): Promise<PartnerPki> {
  const partnerPki = await loadOrCreatePartnerPki(dir);
  if (!partnerPki.reused && !devPkiCreated) {
    const why = partnerPki.reason === undefined || partnerPki.reason.endsWith('is missing') ? '' : ` (${partnerPki.reason})`;
    step(`creating acme's client CA and certificates in ${displayPath(dir)}${why}`);
  }
  return partnerPki;
}

/**
 * The printed mTLS calls mean what their text says only if acme trusts the demo's partner CA and
 * the partner listener asks for certificates; a configuration edited otherwise stops the demo
 * with the reason, as for the tokens.
 */
function checkPartnerTrust(snapshot: Snapshot, partnerPki: PartnerPki): void {
  const acme = snapshot.partners.get(SCENARIO.acme.partner);
  const trusted = acme?.mtls?.anchors.some((anchor) => anchor.fingerprint256.replaceAll(':', '').toLowerCase() === partnerPki.caFingerprint);
  if (!trusted) {
    throw new Error(`${displayPath(CONFIG_PATH)}: partner "${SCENARIO.acme.partner}" must trust ${partnerPki.paths.ca} (mtls.ca) for the demo's client certificates`);
  }
  const listener = snapshot.listeners.find((candidate) => candidate.name === 'partner');
  if (!listener || listener.tls === null || listener.tls.clientCertificates === 'none') {
    throw new Error(`${displayPath(CONFIG_PATH)}: the "partner" listener must ask for client certificates (tls.client_certificates: request) for the demo's mTLS calls`);
  }
}

/**
 * Revokes acme's retired certificate through the gateway's own state store — what
 * `portcullis revoke certificate` does through the admin API — so it is refused from the first
 * request. Repeated at every start (a revocation is replaced, never duplicated); it lapses with
 * the certificate, after which the certificate is refused as expired anyway.
 */
async function revokeDemoCertificate(gateway: Gateway, partnerPki: PartnerPki): Promise<void> {
  await gateway.state.revoke({
    kind: 'certificate',
    key: `sha256:${partnerPki.revokedFingerprint}`,
    reason: REVOKED_CERTIFICATE_REASON,
    actor: 'demo',
    at: Date.now(),
    expiresAt: partnerPki.revokedNotAfter.getTime(),
  });
}

interface DemoTokenService {
  /** acme's client id at the token service. */
  readonly clientId: string;
  /** The API's audience, sent as `resource` (RFC 8707). */
  readonly resource: string;
}

/**
 * The printed token request means what its text says only if the token service answers on the
 * partner listener (where acme's certificate is asked for) and acme has a client that
 * authenticates with that certificate; a configuration edited otherwise stops the demo.
 */
function checkTokenService(snapshot: Snapshot): DemoTokenService {
  if (snapshot.tokenService?.listener !== 'partner') {
    throw new Error(`${displayPath(CONFIG_PATH)}: the demo obtains a token from the token service over mTLS: token_service.listener must be "partner"`);
  }
  const { partner, credential: credentialId } = SCENARIO.acmeClient;
  const credential = snapshot.config.partners.find((entry) => entry.id === partner)?.credentials.find((entry) => entry.id === credentialId);
  if (credential?.type !== 'client' || credential.auth !== 'tls_client_auth') {
    throw new Error(`${displayPath(CONFIG_PATH)}: partner "${partner}" needs a client credential "${credentialId}" with auth: tls_client_auth for the demo's token request`);
  }
  const resource = snapshot.apis.get(SCENARIO.api)?.audience;
  if (!resource) throw new Error(`${displayPath(CONFIG_PATH)}: api "${SCENARIO.api}" needs an audience for the demo's tokens`);
  return { clientId: credential.client_id, resource };
}

async function prepareDevIssuer(dir: string, step: (message: string) => void): Promise<DevIssuer> {
  const issuer = await loadOrCreateDevIssuer(dir);
  if (issuer.reused) step(`reusing dev token signing key in ${displayPath(dir)}`);
  else step(`creating dev token signing key in ${displayPath(dir)}${issuer.replacedBecause ? ` (${issuer.replacedBecause})` : ''}`);
  return issuer;
}

interface TimeWindow {
  /** HH:MM, UTC. */
  readonly from: string;
  readonly to: string;
}

/** A one-hour window (UTC) that opens two hours after `now`: closed at `now` and for a while after. */
function windowClosedAt(now: Date): TimeWindow {
  const hhmm = (ms: number): string => new Date(now.getTime() + ms).toISOString().slice(11, 16);
  return { from: hhmm(WINDOW_OPENS_AFTER_MS), to: hhmm(WINDOW_OPENS_AFTER_MS + WINDOW_LENGTH_MS) };
}

interface DemoTokens {
  /** acme, orders:read: allowed. */
  readonly acmeRead: string;
  /** acme, orders:write only: 403 insufficient_scope on GET. */
  readonly acmeWriteOnly: string;
  /** globex, orders:read: 403 grant_denied outside its time window. */
  readonly globexRead: string;
}

/**
 * Signs the three tokens the printed commands use. Audience and client ids come from the running
 * configuration; a file edited so that the demo's tokens could not mean what the text says (the
 * credential gone, or trusting another issuer) stops the demo with the reason instead.
 */
async function mintDemoTokens(snapshot: Snapshot, issuer: DevIssuer): Promise<DemoTokens> {
  const audience = snapshot.apis.get(SCENARIO.api)?.audience;
  if (!audience) throw new Error(`${displayPath(CONFIG_PATH)}: api "${SCENARIO.api}" needs an audience for the demo's tokens`);
  const clientIdOf = (partnerId: string, credentialId: string): string => {
    const credential = snapshot.config.partners.find((partner) => partner.id === partnerId)?.credentials.find((entry) => entry.id === credentialId);
    if (credential?.type !== 'jwt') throw new Error(`${displayPath(CONFIG_PATH)}: partner "${partnerId}" needs a jwt credential "${credentialId}" for the demo's tokens`);
    if (snapshot.issuers.get(credential.issuer)?.issuer !== issuer.issuer) {
      throw new Error(`${displayPath(CONFIG_PATH)}: credential "${credentialId}" must name the issuer whose "issuer" is ${issuer.issuer} (the demo signs its tokens)`);
    }
    return credential.client_id;
  };
  const acme = clientIdOf(SCENARIO.acme.partner, SCENARIO.acme.credential);
  const globex = clientIdOf(SCENARIO.globex.partner, SCENARIO.globex.credential);
  const lifetimeSeconds = DEV_TOKEN_MAX_LIFETIME_SECONDS;
  const [acmeRead, acmeWriteOnly, globexRead] = await Promise.all([
    issuer.mintAccessToken({ clientId: acme, scopes: [SCENARIO.readScope], audience, lifetimeSeconds }),
    issuer.mintAccessToken({ clientId: acme, scopes: [SCENARIO.writeScope], audience, lifetimeSeconds }),
    issuer.mintAccessToken({ clientId: globex, scopes: [SCENARIO.readScope], audience, lifetimeSeconds }),
  ]);
  return { acmeRead, acmeWriteOnly, globexRead };
}

interface InstructionsInput {
  readonly gateway: Gateway;
  readonly pki: DevPkiFiles;
  readonly partnerPki: PartnerPki;
  readonly dataDir: string;
  readonly logPath: string;
  readonly tokens: DemoTokens;
  readonly tokenService: DemoTokenService;
  readonly globexWindow: TimeWindow;
}

/**
 * Takes `access_token` out of the token endpoint's JSON answer. sed rather than jq, which is not
 * everywhere; a JWT holds no `"`, and the answer is one line of JSON.stringify output.
 */
const ACCESS_TOKEN_SED = `sed -n 's/.*"access_token":"\\([^"]*\\)".*/\\1/p'`;

function instructions({ gateway, pki, partnerPki, dataDir, logPath, tokens, tokenService, globexWindow }: InstructionsInput): string {
  const { listeners, ops } = gateway.addresses();
  const publicPort = portOf(findListener(listeners, 'public').url);
  const partnerPort = portOf(findListener(listeners, 'partner').url);
  const opsPort = portOf(ops);
  const cacert = `--cacert ${shellQuote(pki.paths.ca)}`;
  const partnerUrl = `https://${SCENARIO.host}:${partnerPort}${SCENARIO.path}`;
  const withToken = (variable: string): string => `curl -i ${cacert} -H "Authorization: Bearer $${variable}" ${partnerUrl}`;
  const withCertificate = (variable: string, cert: string, key: string): string =>
    `curl -i ${cacert} --cert ${shellQuote(cert)} --key ${shellQuote(key)} -H "Authorization: Bearer $${variable}" ${partnerUrl}`;
  // explain loads examples/demo.yaml itself, so it needs the values the demo filled in: always
  // globex's window, and the key folder when it is not where the file looks by default.
  const explainEnv = [
    `DEMO_WINDOW_FROM=${globexWindow.from}`,
    `DEMO_WINDOW_TO=${globexWindow.to}`,
    ...(pki.dir === CONFIG_DEFAULT_PKI_DIR ? [] : [`DEMO_PKI_DIR=${shellQuote(pki.dir)}`]),
  ].join(' ');
  const explain = ({ partner, credential }: { partner: string; credential: string }): string =>
    `${explainEnv} npx portcullis explain -c ${shellQuote(displayPath(CONFIG_PATH))} --partner ${partner} --credential ${credential} --method GET --path ${SCENARIO.path} --scope ${SCENARIO.readScope}`;
  const minutes = DEV_TOKEN_MAX_LIFETIME_SECONDS / 60;
  const acmeCertificate = `--cert ${shellQuote(partnerPki.paths.clientCert)} --key ${shellQuote(partnerPki.paths.clientKey)}`;
  const tokenRequest =
    `ACME_TOKEN=$(curl -s ${cacert} ${acmeCertificate} -d grant_type=client_credentials -d client_id=${shellQuote(tokenService.clientId)}` +
    ` -d resource=${shellQuote(tokenService.resource)} -d scope=${SCENARIO.readScope} https://${SCENARIO.host}:${partnerPort}/oauth2/token | ${ACCESS_TOKEN_SED})`;
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

Partner calls carry access tokens. First, three the demo signed itself, as a partner's own
identity provider would (ES256, RFC 9068). Paste these lines first; the
tokens expire in ${minutes} minutes — restart the demo for new ones.

  ACME_READ=${tokens.acmeRead}
  ACME_WRITE_ONLY=${tokens.acmeWriteOnly}
  GLOBEX_READ=${tokens.globexRead}

  # 4. Allowed: acme's token carries ${SCENARIO.readScope}, which GET ${SCENARIO.path} requires and acme's
  #    grant covers. The sample upstream answers 200.
  ${withToken('ACME_READ')}

  # 5. Refused: this acme token carries only ${SCENARIO.writeScope}. 403, and WWW-Authenticate
  #    names the missing scope: error="insufficient_scope", scope="${SCENARIO.readScope}".
  ${withToken('ACME_WRITE_ONLY')}

  # 6. Refused: a valid token with the right scope, but globex's grant applies only from
  #    ${globexWindow.from} to ${globexWindow.to} UTC (set when the demo started, so closed now). 403 grant_denied.
  ${withToken('GLOBEX_READ')}

acme also proves itself at the TLS layer (mutual TLS) with client certificates from its own
CA, which the gateway trusts for acme only (mtls in the config).

  # 7. Allowed: acme's token, sent with acme's client certificate. The decision record names
  #    the certificate (tls.client.hash.sha256, subject, issuer). The sample upstream answers 200.
  ${withCertificate('ACME_READ', partnerPki.paths.clientCert, partnerPki.paths.clientKey)}

  # 8. Refused: the same call with acme's retired certificate, which the demo revoked through
  #    the gateway when it started (portcullis revoke certificate --cert FILE does the same
  #    through the admin API). 401 invalid_client_certificate: a valid token does not rescue
  #    a revoked certificate, and the refusal comes before the token is even looked at.
  ${withCertificate('ACME_READ', partnerPki.paths.revokedCert, partnerPki.paths.revokedKey)}

Or acme asks the gateway's own token service for a token, authenticating with its client
certificate alone — no secret (OAuth client credentials, RFC 8705 tls_client_auth). The token
is for the orders API only, lives 5 minutes, and is bound to that certificate (cnf.x5t#S256).

  # 9. Obtain the token over mTLS (run it again for a new one: there are no refresh tokens).
  ${tokenRequest}

  # 10. Allowed: the token with the certificate it is bound to. The sample upstream answers 200.
  ${withCertificate('ACME_TOKEN', partnerPki.paths.clientCert, partnerPki.paths.clientKey)}

  # 11. Refused: the same token without the certificate. 401: a stolen token alone is useless.
  ${withToken('ACME_TOKEN')}

Ask the gateway why, without sending a request (exit 0 allowed, 1 denied; the DEMO_WINDOW_*
values are globex's window as the demo set it):

  ${explain(SCENARIO.acme)}
  ${explain(SCENARIO.globex)}

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
