/**
 * A real OCSP responder for tests: `openssl ocsp -index … -CA … -rsigner … -rkey … -port 0`, a
 * child process in a private temp dir, answering from an OpenSSL CA index the test writes.
 *
 * OpenSSL 3.0 re-reads a changed index only at the top of its accept loop, so the request right
 * after a change is still answered from the old one (and mtime has a one-second resolution):
 * every index change therefore restarts the process, and the next answer reflects it.
 *
 * In front of it runs a small node:http proxy on 127.0.0.1 with a stable URL across restarts,
 * which counts the queries (the cache tests assert the responder was, or was not, asked) and
 * answers 502 while the responder is stopped. Everything is stopped by PID; `stop()` also
 * removes the temp dir.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import type { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type OcspEntryStatus = 'valid' | 'revoked';

export interface OcspIndexEntry {
  readonly certificate: X509Certificate;
  readonly status: OcspEntryStatus;
}

export interface OcspResponderOptions {
  /** The CA whose certificates the responder answers for (`-CA`). */
  readonly caCertPem: string;
  /** The certificate and key that sign the answers (`-rsigner`, `-rkey`). */
  readonly signerCertPem: string;
  readonly signerKeyPem: string;
  /** Certificates the index knows; any other serial is answered `unknown`. */
  readonly entries?: readonly OcspIndexEntry[];
  /** nextUpdate = thisUpdate + this many minutes (`-nmin`). Default 1. */
  readonly nextUpdateMinutes?: number;
  /** Identify the responder by key hash instead of name (`-resp_key_id`). */
  readonly responderKeyId?: boolean;
}

export interface OcspResponder {
  /** The proxy's URL, stable across restarts: `http://127.0.0.1:<port>/`. */
  readonly url: string;
  /** OCSP queries (POSTs) received so far. */
  readonly requests: number;
  /** PID of the running openssl process, or -1 while stopped. */
  readonly pid: number;
  /** Replaces the index and restarts the responder on it. */
  setEntries(entries: readonly OcspIndexEntry[]): Promise<void>;
  /** Marks a certificate revoked (adding it if absent) and restarts the responder. */
  revoke(certificate: X509Certificate): Promise<void>;
  /** Stops the openssl process only: the proxy then answers 502. */
  stopResponder(): Promise<void>;
  /** Starts the openssl process again after `stopResponder()`. */
  startResponder(): Promise<void>;
  /** Stops everything and removes the temp dir. Idempotent. */
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 2_000;

let checkedInstalled = false;

function requireOpenssl(): void {
  if (checkedInstalled) return;
  const probe = spawnSync('openssl', ['version'], { stdio: 'ignore' });
  if (probe.error !== undefined || probe.status !== 0) throw new Error('openssl is not installed (needed by the OCSP tests): `sudo apt-get install -y openssl`');
  checkedInstalled = true;
}

/** OpenSSL's index time format: UTCTime YYMMDDHHMMSSZ. */
function indexTime(date: Date): string {
  const iso = date.toISOString();
  return `${iso.slice(2, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
}

/**
 * One line per certificate: status, expiry, revocation time, serial (upper-case hex, as OpenSSL's
 * BN_bn2hex prints it, which is what node's `serialNumber` gives), file name, subject.
 */
function indexText(entries: readonly OcspIndexEntry[]): string {
  const revokedAt = indexTime(new Date(Date.now() - 60_000));
  return entries
    .map(({ certificate, status }) => {
      const subject = `/CN=${certificate.serialNumber}`;
      return [status === 'revoked' ? 'R' : 'V', indexTime(certificate.validToDate), status === 'revoked' ? revokedAt : '', certificate.serialNumber, 'unknown', subject].join('\t');
    })
    .map((line) => `${line}\n`)
    .join('');
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

export async function startOcspResponder(options: OcspResponderOptions): Promise<OcspResponder> {
  requireOpenssl();
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-ocsp-'));
  const paths = {
    ca: join(dir, 'ca.pem'),
    signer: join(dir, 'signer.pem'),
    key: join(dir, 'signer.key'),
    index: join(dir, 'index.txt'),
    attributes: join(dir, 'index.txt.attr'),
  };
  await writeFile(paths.ca, options.caCertPem);
  await writeFile(paths.signer, options.signerCertPem);
  await writeFile(paths.key, options.signerKeyPem, { mode: 0o600 });
  await writeFile(paths.attributes, 'unique_subject = no\n');
  let entries = [...(options.entries ?? [])];
  await writeFile(paths.index, indexText(entries));

  let child: ChildProcess | null = null;
  let backendPort: number | null = null;
  let requests = 0;
  let stopped = false;

  const launch = async (): Promise<void> => {
    const args = [
      'ocsp',
      '-index', paths.index,
      '-CA', paths.ca,
      '-rsigner', paths.signer,
      '-rkey', paths.key,
      // Port 0: the kernel picks a free one and openssl prints it ("ACCEPT [::]:<port>").
      '-port', '0',
      '-nmin', String(options.nextUpdateMinutes ?? 1),
      '-ignore_err',
      ...(options.responderKeyId ? ['-resp_key_id'] : []),
    ];
    const responder = spawn('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    child = responder;
    let output = '';
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        responder.kill('SIGKILL');
        reject(new Error(`openssl ocsp did not start listening within ${READY_TIMEOUT_MS} ms:\n${output}`));
      }, READY_TIMEOUT_MS);
      const collect = (chunk: Buffer): void => {
        if (output.length < 16_384) output += chunk.toString('utf8');
        const match = /ACCEPT .*:(\d+)/.exec(output);
        if (match) {
          clearTimeout(timer);
          resolve(Number(match[1]));
        }
      };
      responder.stdout!.on('data', collect);
      responder.stderr!.on('data', collect);
      responder.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      responder.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`openssl ocsp exited (${code ?? signal}) before listening:\n${output}`));
      });
    });
    backendPort = port;
  };

  const halt = async (): Promise<void> => {
    const running = child;
    child = null;
    backendPort = null;
    if (running === null || running.exitCode !== null || running.signalCode !== null) return;
    running.kill('SIGTERM');
    const timer = setTimeout(() => running.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await exited(running);
    clearTimeout(timer);
  };

  const proxy = createServer((incoming, outgoing) => {
    const chunks: Buffer[] = [];
    incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
    incoming.on('end', () => {
      if (incoming.method === 'POST') requests += 1;
      const port = backendPort;
      if (port === null) {
        outgoing.writeHead(502, { 'content-type': 'text/plain' }).end('responder stopped');
        return;
      }
      const body = Buffer.concat(chunks);
      const forward = httpRequest(
        {
          host: '127.0.0.1',
          port,
          method: incoming.method,
          path: incoming.url,
          headers: { 'content-type': incoming.headers['content-type'] ?? 'application/octet-stream', 'content-length': String(body.length) },
        },
        (answer) => {
          const parts: Buffer[] = [];
          answer.on('data', (chunk: Buffer) => parts.push(chunk));
          answer.on('end', () => {
            const payload = Buffer.concat(parts);
            outgoing
              .writeHead(answer.statusCode ?? 502, { 'content-type': answer.headers['content-type'] ?? 'application/octet-stream', 'content-length': String(payload.length) })
              .end(payload);
          });
          answer.on('error', () => outgoing.destroy());
        },
      );
      forward.on('error', () => {
        if (!outgoing.headersSent) outgoing.writeHead(502, { 'content-type': 'text/plain' }).end('responder unreachable');
      });
      forward.end(body);
    });
  });
  await new Promise<void>((resolve, reject) => {
    proxy.once('error', reject);
    proxy.listen(0, '127.0.0.1', resolve);
  });
  const proxyPort = (proxy.address() as AddressInfo).port;

  try {
    await launch();
  } catch (error) {
    proxy.close();
    await rm(dir, { recursive: true, force: true });
    throw error;
  }

  const rewrite = async (next: readonly OcspIndexEntry[]): Promise<void> => {
    entries = [...next];
    await writeFile(paths.index, indexText(entries));
    await halt();
    await launch();
  };

  return {
    url: `http://127.0.0.1:${proxyPort}/`,
    get requests(): number {
      return requests;
    },
    get pid(): number {
      return (child as ChildProcess | null)?.pid ?? -1;
    },
    setEntries: rewrite,
    revoke: (certificate) => {
      const others = entries.filter((entry) => entry.certificate.serialNumber !== certificate.serialNumber);
      return rewrite([...others, { certificate, status: 'revoked' }]);
    },
    stopResponder: halt,
    startResponder: async () => {
      if (child === null) await launch();
    },
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await halt();
      proxy.closeAllConnections();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
