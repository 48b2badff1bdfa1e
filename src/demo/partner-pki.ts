/**
 * The demo partner's own PKI (issue 4): acme runs a client CA of its own — not the gateway's dev
 * CA, because a partner's trust is its own (SECURITY.md item 10) — and holds two client
 * certificates from it: one it uses, and one the demo revokes through the gateway at every start,
 * to show a revoked certificate refused while the token that came with it is still valid.
 *
 * Kept next to the dev PKI (`src/pki/dev-ca.ts`) and reused the same way: while every file is
 * intact, the certificates chain to the CA, each key matches, and nothing expires within
 * `DEV_PKI_RENEW_BEFORE_DAYS`. Otherwise all of it is generated again (the CA key is never
 * written, so nothing more can be issued later). Development only: none of this is for
 * production, and none of it is committed.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFile, mkdir, rename, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DEV_PKI_RENEW_BEFORE_DAYS, createCa, issueClientCertificate } from '../pki/dev-ca.ts';

export const PARTNER_PKI_FILES = {
  ca: 'acme-ca.crt',
  clientCert: 'acme-client.crt',
  clientKey: 'acme-client.key',
  revokedCert: 'acme-revoked.crt',
  revokedKey: 'acme-revoked.key',
} as const;

export type PartnerPkiFile = keyof typeof PARTNER_PKI_FILES;

/** The names the partner's certificates carry; examples/demo.yaml accepts `spiffe://acme.localhost/*` for acme. */
export const PARTNER_PKI_NAMES = {
  caCommonName: 'Acme Corp client CA (demo)',
  clientCommonName: 'acme-orders-client',
  clientUri: 'spiffe://acme.localhost/orders-client',
  revokedCommonName: 'acme-orders-client-retired',
  revokedUri: 'spiffe://acme.localhost/orders-client-retired',
} as const;

export interface PartnerPki {
  /** Absolute directory holding the files. */
  readonly dir: string;
  readonly paths: Readonly<Record<PartnerPkiFile, string>>;
  /** SHA-256 of the revoked certificate's DER, lowercase hex: what the demo revokes. */
  readonly revokedFingerprint: string;
  /** The revoked certificate's notAfter: its revocation need not outlive it. */
  readonly revokedNotAfter: Date;
  /** SHA-256 of the CA certificate's DER, lowercase hex (to check the configuration trusts it). */
  readonly caFingerprint: string;
  readonly reused: boolean;
  /** Why it was generated again, when it was not reused. */
  readonly reason?: string;
}

const DAY_MS = 86_400_000;

/** Reuses the partner PKI in `dir` when it is intact and not about to expire; otherwise creates it. */
export async function loadOrCreatePartnerPki(dir: string, options: { now?: Date } = {}): Promise<PartnerPki> {
  const absolute = resolve(dir);
  const paths = partnerPkiPaths(absolute);
  const check = await checkPartnerPki(paths, options.now ?? new Date());
  if (check.usable) return { dir: absolute, paths, ...check.facts, reused: true };
  await writePartnerPki(absolute, paths);
  // Read back what was written (the facts come from the files, as on a reuse), at the real time:
  // the new certificates start now, whatever `now` was asked about.
  const written = await checkPartnerPki(paths, new Date());
  if (!written.usable) throw new Error(`the partner PKI just written to ${absolute} is not usable: ${written.reason}`);
  return { dir: absolute, paths, ...written.facts, reused: false, reason: check.reason };
}

type PartnerFacts = Pick<PartnerPki, 'revokedFingerprint' | 'revokedNotAfter' | 'caFingerprint'>;

async function checkPartnerPki(
  paths: Readonly<Record<PartnerPkiFile, string>>,
  now: Date,
): Promise<{ readonly usable: true; readonly facts: PartnerFacts } | { readonly usable: false; readonly reason: string }> {
  const text = {} as Record<PartnerPkiFile, string>;
  for (const file of Object.keys(PARTNER_PKI_FILES) as PartnerPkiFile[]) {
    try {
      text[file] = await readFile(paths[file], 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { usable: false, reason: `${PARTNER_PKI_FILES[file]} is missing` };
      throw error;
    }
  }
  let ca: X509Certificate, client: X509Certificate, revoked: X509Certificate;
  try {
    ca = new X509Certificate(text.ca);
    client = new X509Certificate(text.clientCert);
    revoked = new X509Certificate(text.revokedCert);
    if (!ca.ca || !ca.verify(ca.publicKey)) return { usable: false, reason: `${PARTNER_PKI_FILES.ca} is not a self-signed CA` };
    for (const [file, cert] of [['clientCert', client], ['revokedCert', revoked]] as const) {
      if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return { usable: false, reason: `${PARTNER_PKI_FILES[file]} is not signed by ${PARTNER_PKI_FILES.ca}` };
    }
    if (!client.checkPrivateKey(createPrivateKey(text.clientKey))) return { usable: false, reason: `${PARTNER_PKI_FILES.clientKey} does not match ${PARTNER_PKI_FILES.clientCert}` };
    if (!revoked.checkPrivateKey(createPrivateKey(text.revokedKey))) return { usable: false, reason: `${PARTNER_PKI_FILES.revokedKey} does not match ${PARTNER_PKI_FILES.revokedCert}` };
  } catch {
    return { usable: false, reason: 'a file is not valid PEM' };
  }
  const renewAt = new Date(now.getTime() + DEV_PKI_RENEW_BEFORE_DAYS * DAY_MS);
  for (const [file, cert] of [['ca', ca], ['clientCert', client], ['revokedCert', revoked]] as const) {
    if (cert.validFromDate > now) return { usable: false, reason: `${PARTNER_PKI_FILES[file]} is not valid yet` };
    if (cert.validToDate <= renewAt) return { usable: false, reason: `${PARTNER_PKI_FILES[file]} expires ${cert.validToDate.toISOString()}` };
  }
  return { usable: true, facts: { revokedFingerprint: fingerprintOf(revoked), revokedNotAfter: revoked.validToDate, caFingerprint: fingerprintOf(ca) } };
}

/** Certificates 0644, keys 0600, each written to a temporary name then renamed (never a truncated file). */
async function writePartnerPki(dir: string, paths: Readonly<Record<PartnerPkiFile, string>>): Promise<void> {
  const ca = await createCa({ commonName: PARTNER_PKI_NAMES.caCommonName });
  const [client, revoked] = await Promise.all([
    issueClientCertificate(ca, { commonName: PARTNER_PKI_NAMES.clientCommonName, uris: [PARTNER_PKI_NAMES.clientUri] }),
    issueClientCertificate(ca, { commonName: PARTNER_PKI_NAMES.revokedCommonName, uris: [PARTNER_PKI_NAMES.revokedUri] }),
  ]);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const contents: Record<PartnerPkiFile, { text: string; mode: number }> = {
    ca: { text: ca.certPem, mode: 0o644 },
    clientCert: { text: client.certPem, mode: 0o644 },
    clientKey: { text: client.keyPem, mode: 0o600 },
    revokedCert: { text: revoked.certPem, mode: 0o644 },
    revokedKey: { text: revoked.keyPem, mode: 0o600 },
  };
  for (const file of Object.keys(PARTNER_PKI_FILES) as PartnerPkiFile[]) {
    const temporary = `${paths[file]}.${process.pid}.tmp`;
    await writeFile(temporary, contents[file].text, { mode: contents[file].mode, flag: 'w' });
    await rename(temporary, paths[file]);
  }
}

function partnerPkiPaths(dir: string): Record<PartnerPkiFile, string> {
  const paths = {} as Record<PartnerPkiFile, string>;
  for (const [file, name] of Object.entries(PARTNER_PKI_FILES) as Array<[PartnerPkiFile, string]>) paths[file] = join(dir, name);
  return paths;
}

function fingerprintOf(certificate: X509Certificate): string {
  return certificate.fingerprint256.replaceAll(':', '').toLowerCase();
}
