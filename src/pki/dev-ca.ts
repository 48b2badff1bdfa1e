/**
 * A development PKI: a throwaway CA and the leaf certificates that the demo and the test suite
 * need. Tests generate everything per run and the demo keeps one set per data dir; nothing
 * produced here is ever committed, and none of it is meant for production.
 *
 * Certificates are X.509 v3 with the extensions a strict verifier checks (basic constraints, key
 * usage, extended key usage, subject/authority key ids, subject alternative names), so Node's
 * `tls`, curl and OpenSSL accept them without flags. Keys are EC P-256 unless RSA is asked for,
 * exported as PKCS#8 PEM. The CA private key stays in memory and is never written: once the
 * process exits, the CA can sign nothing more, so a leaked dev data dir cannot mint certificates.
 */
import { X509Certificate, createPrivateKey, KeyObject, randomBytes } from 'node:crypto';
import type { webcrypto } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type * as X509 from '@peculiar/x509';

export type KeyAlgorithm = 'ec' | 'rsa';

/** A certificate with its private key. */
export interface IssuedCertificate {
  /** The certificate, PEM. */
  readonly certPem: string;
  /** The private key, PKCS#8 PEM. */
  readonly keyPem: string;
  /** The parsed certificate (fingerprints, `raw` for `x5t#S256`, validity dates, …). */
  readonly certificate: X509Certificate;
}

/** A CA that can issue certificates for as long as this object lives. */
export interface CertificateAuthority extends IssuedCertificate {
  readonly keyAlgorithm: KeyAlgorithm;
  /** WebCrypto keys of the CA, for signing further objects (e.g. CRLs) with @peculiar/x509. */
  readonly keys: webcrypto.CryptoKeyPair;
}

interface ValidityOptions {
  /** Start of validity. Default: now minus five minutes, so a little clock skew does not reject a fresh certificate. */
  readonly notBefore?: Date;
  /** Days of validity from `notBefore` (or from now when `notBefore` is not given). */
  readonly validityDays?: number;
}

export interface CreateCaOptions extends ValidityOptions {
  readonly commonName: string;
  /** Default `ec` (P-256). */
  readonly keyAlgorithm?: KeyAlgorithm;
}

export interface ServerCertificateOptions extends ValidityOptions {
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
  /** Default: the first DNS name (or IP address). Clients verify the SANs, never the CN. */
  readonly commonName?: string;
  /** Default: the CA's algorithm. */
  readonly keyAlgorithm?: KeyAlgorithm;
}

export interface ClientCertificateOptions extends ValidityOptions {
  readonly commonName: string;
  /** URI SANs, e.g. a SPIFFE id naming the partner workload. */
  readonly uris?: readonly string[];
  readonly dnsNames?: readonly string[];
  /** Default: the CA's algorithm. */
  readonly keyAlgorithm?: KeyAlgorithm;
}

const DAY_MS = 86_400_000;
const CLOCK_SKEW_MS = 5 * 60_000;
const CA_VALIDITY_DAYS = 365;
const LEAF_VALIDITY_DAYS = 90;
const ORGANIZATION = 'Portcullis development PKI';

/** Creates a self-signed CA (1 year by default) that may sign leaf certificates only (path length 0). */
export async function createCa(options: CreateCaOptions): Promise<CertificateAuthority> {
  const x509 = await loadX509();
  const keyAlgorithm = options.keyAlgorithm ?? 'ec';
  const keys = await generateKeys(keyAlgorithm);
  const { notBefore, notAfter } = validity(options, CA_VALIDITY_DAYS);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerialNumber(),
    name: distinguishedName(options.commonName),
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: signingAlgorithm(keyAlgorithm),
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { ...(await toIssued(cert, keys.privateKey)), keyAlgorithm, keys };
}

/** Issues a TLS server certificate (serverAuth, 90 days by default) for the given names. */
export async function issueServerCertificate(ca: CertificateAuthority, options: ServerCertificateOptions): Promise<IssuedCertificate> {
  const x509 = await loadX509();
  const dnsNames = options.dnsNames ?? [];
  const ipAddresses = options.ipAddresses ?? [];
  const commonName = options.commonName ?? dnsNames[0] ?? ipAddresses[0];
  if (commonName === undefined) throw new TypeError('issueServerCertificate: give at least one DNS name or IP address');
  return issueLeaf(ca, {
    commonName,
    validity: options,
    keyAlgorithm: options.keyAlgorithm ?? ca.keyAlgorithm,
    extendedKeyUsage: x509.ExtendedKeyUsage.serverAuth,
    subjectAltNames: [
      ...dnsNames.map((value) => ({ type: 'dns' as const, value })),
      ...ipAddresses.map((value) => ({ type: 'ip' as const, value })),
    ],
  });
}

/** Issues a TLS client certificate (clientAuth, 90 days by default), e.g. for a partner's mTLS credential. */
export async function issueClientCertificate(ca: CertificateAuthority, options: ClientCertificateOptions): Promise<IssuedCertificate> {
  const x509 = await loadX509();
  return issueLeaf(ca, {
    commonName: options.commonName,
    validity: options,
    keyAlgorithm: options.keyAlgorithm ?? ca.keyAlgorithm,
    extendedKeyUsage: x509.ExtendedKeyUsage.clientAuth,
    subjectAltNames: [
      ...(options.uris ?? []).map((value) => ({ type: 'url' as const, value })),
      ...(options.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ],
  });
}

interface LeafSpec {
  readonly commonName: string;
  readonly validity: ValidityOptions;
  readonly keyAlgorithm: KeyAlgorithm;
  readonly extendedKeyUsage: string;
  readonly subjectAltNames: ReadonlyArray<{ type: 'dns' | 'ip' | 'url'; value: string }>;
}

async function issueLeaf(ca: CertificateAuthority, spec: LeafSpec): Promise<IssuedCertificate> {
  const x509 = await loadX509();
  const keys = await generateKeys(spec.keyAlgorithm);
  const { notBefore, notAfter: wanted } = validity(spec.validity, LEAF_VALIDITY_DAYS);
  // A leaf that outlives its CA would fail verification after the CA expires anyway; say so in the certificate.
  const notAfter = wanted > ca.certificate.validToDate ? ca.certificate.validToDate : wanted;
  // RSA key exchange (TLS 1.2 without ECDHE) needs keyEncipherment; EC keys never encipher.
  const usages = x509.KeyUsageFlags.digitalSignature | (spec.keyAlgorithm === 'rsa' ? x509.KeyUsageFlags.keyEncipherment : 0);
  const extensions: X509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(usages, true),
    new x509.ExtendedKeyUsageExtension([spec.extendedKeyUsage], false),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey),
  ];
  if (spec.subjectAltNames.length > 0) {
    extensions.push(new x509.SubjectAlternativeNameExtension(spec.subjectAltNames.map((name) => ({ ...name })), false));
  }
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialNumber(),
    subject: distinguishedName(spec.commonName),
    // The issuer name is copied from the CA certificate as encoded, so chain building matches it byte for byte.
    issuer: new x509.X509Certificate(ca.certPem).subjectName,
    notBefore,
    notAfter,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    signingAlgorithm: signingAlgorithm(ca.keyAlgorithm),
    extensions,
  });
  return toIssued(cert, keys.privateKey);
}

function validity(options: ValidityOptions, defaultDays: number): { notBefore: Date; notAfter: Date } {
  const start = options.notBefore ?? new Date();
  const notBefore = options.notBefore ?? new Date(start.getTime() - CLOCK_SKEW_MS);
  const notAfter = new Date(start.getTime() + (options.validityDays ?? defaultDays) * DAY_MS);
  return { notBefore, notAfter };
}

function distinguishedName(commonName: string): X509.JsonName {
  // The JSON form, not a string, so a CN holding "," or "=" cannot change the name's structure.
  return [{ O: [ORGANIZATION] }, { CN: [commonName] }];
}

/**
 * 16 random bytes (RFC 5280 §4.1.2.2 allows up to 20 octets; CA/B Forum asks for ≥ 64 random
 * bits), positive and without a leading zero octet so the DER INTEGER stays minimal.
 */
function randomSerialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) || 0x01;
  return bytes.toString('hex');
}

function generateKeys(algorithm: KeyAlgorithm): Promise<webcrypto.CryptoKeyPair> {
  const params =
    algorithm === 'ec'
      ? { name: 'ECDSA', namedCurve: 'P-256' }
      : { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' };
  return globalThis.crypto.subtle.generateKey(params, true, ['sign', 'verify']) as Promise<webcrypto.CryptoKeyPair>;
}

function signingAlgorithm(algorithm: KeyAlgorithm): webcrypto.Algorithm | webcrypto.EcdsaParams {
  return algorithm === 'ec' ? { name: 'ECDSA', hash: 'SHA-256' } : { name: 'RSASSA-PKCS1-v1_5' };
}

async function toIssued(cert: X509.X509Certificate, privateKey: webcrypto.CryptoKey): Promise<IssuedCertificate> {
  const certPem = `${cert.toString('pem')}\n`;
  const keyPem = KeyObject.from(privateKey).export({ type: 'pkcs8', format: 'pem' }).toString();
  return { certPem, keyPem, certificate: new X509Certificate(certPem) };
}

// --- The demo's PKI on disk -------------------------------------------------------------------

/** File names of the dev PKI inside its directory. */
export const DEV_PKI_FILES = {
  ca: 'ca.crt',
  serverCert: 'server.crt',
  serverKey: 'server.key',
  clientCert: 'client-acme.crt',
  clientKey: 'client-acme.key',
} as const;

export type DevPkiFile = keyof typeof DEV_PKI_FILES;

/** The names the demo's certificates carry: the demo listeners' hostnames, and the `acme` partner. */
export const DEV_PKI_NAMES = {
  caCommonName: 'Portcullis development CA',
  serverDnsNames: ['localhost', 'api.localhost', 'public.localhost'],
  serverIpAddresses: ['127.0.0.1', '::1'],
  clientCommonName: 'acme',
  clientUris: ['spiffe://portcullis.localhost/partner/acme'],
} as const;

/** Certificates are replaced this long before they expire, so a running demo never serves an expired one. */
export const DEV_PKI_RENEW_BEFORE_DAYS = 7;

export interface DevPki {
  readonly ca: CertificateAuthority;
  readonly server: IssuedCertificate;
  readonly client: IssuedCertificate;
}

export interface DevPkiFiles {
  /** Absolute directory holding the files. */
  readonly dir: string;
  /** Absolute path of each file. */
  readonly paths: Readonly<Record<DevPkiFile, string>>;
  /** When the first of its certificates expires. */
  readonly expiresAt: Date;
}

export type DevPkiCheck = { readonly usable: true; readonly files: DevPkiFiles } | { readonly usable: false; readonly reason: string };

/** Generates the demo's CA, its `localhost` server certificate and the `acme` client certificate. */
export async function createDevPki(options: { notBefore?: Date; leafValidityDays?: number } = {}): Promise<DevPki> {
  const ca = await createCa({ commonName: DEV_PKI_NAMES.caCommonName, ...(options.notBefore && { notBefore: options.notBefore }) });
  const leafValidity = {
    ...(options.notBefore && { notBefore: options.notBefore }),
    ...(options.leafValidityDays !== undefined && { validityDays: options.leafValidityDays }),
  };
  const server = await issueServerCertificate(ca, {
    dnsNames: DEV_PKI_NAMES.serverDnsNames,
    ipAddresses: DEV_PKI_NAMES.serverIpAddresses,
    ...leafValidity,
  });
  const client = await issueClientCertificate(ca, {
    commonName: DEV_PKI_NAMES.clientCommonName,
    uris: DEV_PKI_NAMES.clientUris,
    ...leafValidity,
  });
  return { ca, server, client };
}

/**
 * Writes the PKI's PEM files into `dir` (created 0700 if missing): certificates 0644, keys 0600.
 * Each file is written to a temporary name and renamed, so a crash never leaves a truncated file
 * that a later start would try to serve.
 */
export async function writePki(dir: string, pki: DevPki): Promise<DevPkiFiles> {
  const absolute = resolve(dir);
  await mkdir(absolute, { recursive: true, mode: 0o700 });
  const contents: Record<DevPkiFile, { text: string; mode: number }> = {
    ca: { text: pki.ca.certPem, mode: 0o644 },
    serverCert: { text: pki.server.certPem, mode: 0o644 },
    serverKey: { text: pki.server.keyPem, mode: 0o600 },
    clientCert: { text: pki.client.certPem, mode: 0o644 },
    clientKey: { text: pki.client.keyPem, mode: 0o600 },
  };
  const paths = pkiPaths(absolute);
  for (const file of Object.keys(DEV_PKI_FILES) as DevPkiFile[]) {
    const temporary = `${paths[file]}.${process.pid}.tmp`;
    await writeFile(temporary, contents[file].text, { mode: contents[file].mode, flag: 'w' });
    await rename(temporary, paths[file]);
  }
  const expiresAt = earliest([pki.ca.certificate, pki.server.certificate, pki.client.certificate]);
  return { dir: absolute, paths, expiresAt };
}

/**
 * Checks a dev PKI on disk: every file present and parseable, the leaves signed by the CA, each key
 * matching its certificate, the server certificate covering the demo names, and nothing expiring
 * within `renewBeforeDays`. Anything else is "not usable", with the reason.
 */
export async function checkDevPki(dir: string, options: { now?: Date; renewBeforeDays?: number } = {}): Promise<DevPkiCheck> {
  const absolute = resolve(dir);
  const paths = pkiPaths(absolute);
  const text = {} as Record<DevPkiFile, string>;
  for (const file of Object.keys(DEV_PKI_FILES) as DevPkiFile[]) {
    try {
      text[file] = await readFile(paths[file], 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { usable: false, reason: `${DEV_PKI_FILES[file]} is missing` };
      throw error;
    }
  }
  let ca: X509Certificate, server: X509Certificate, client: X509Certificate;
  try {
    ca = new X509Certificate(text.ca);
    server = new X509Certificate(text.serverCert);
    client = new X509Certificate(text.clientCert);
    if (!ca.ca || !ca.verify(ca.publicKey)) return { usable: false, reason: `${DEV_PKI_FILES.ca} is not a self-signed CA` };
    for (const [file, cert] of [['serverCert', server], ['clientCert', client]] as const) {
      if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return { usable: false, reason: `${DEV_PKI_FILES[file]} is not signed by ${DEV_PKI_FILES.ca}` };
    }
    if (!server.checkPrivateKey(createPrivateKey(text.serverKey))) return { usable: false, reason: `${DEV_PKI_FILES.serverKey} does not match ${DEV_PKI_FILES.serverCert}` };
    if (!client.checkPrivateKey(createPrivateKey(text.clientKey))) return { usable: false, reason: `${DEV_PKI_FILES.clientKey} does not match ${DEV_PKI_FILES.clientCert}` };
  } catch {
    return { usable: false, reason: 'a file is not valid PEM' };
  }
  const missingName =
    DEV_PKI_NAMES.serverDnsNames.find((name) => server.checkHost(name, { wildcards: false }) === undefined) ??
    DEV_PKI_NAMES.serverIpAddresses.find((ip) => server.checkIP(ip) === undefined);
  if (missingName !== undefined) return { usable: false, reason: `${DEV_PKI_FILES.serverCert} does not cover ${missingName}` };

  const now = options.now ?? new Date();
  const renewAt = new Date(now.getTime() + (options.renewBeforeDays ?? DEV_PKI_RENEW_BEFORE_DAYS) * DAY_MS);
  for (const [file, cert] of [['ca', ca], ['serverCert', server], ['clientCert', client]] as const) {
    if (cert.validFromDate > now) return { usable: false, reason: `${DEV_PKI_FILES[file]} is not valid yet` };
    if (cert.validToDate <= renewAt) return { usable: false, reason: `${DEV_PKI_FILES[file]} expires ${cert.validToDate.toISOString()}` };
  }
  return { usable: true, files: { dir: absolute, paths, expiresAt: earliest([ca, server, client]) } };
}

/**
 * Reuses the dev PKI in `dir` when `checkDevPki` finds it usable; otherwise generates a new one
 * (CA included: its key was never kept) and writes it there.
 */
export async function loadOrCreateDevPki(
  dir: string,
  options: { now?: Date } = {},
): Promise<DevPkiFiles & { readonly reused: boolean; readonly reason?: string }> {
  const check = await checkDevPki(dir, options);
  if (check.usable) return { ...check.files, reused: true };
  const files = await writePki(dir, await createDevPki());
  return { ...files, reused: false, reason: check.reason };
}

function pkiPaths(dir: string): Record<DevPkiFile, string> {
  const paths = {} as Record<DevPkiFile, string>;
  for (const [file, name] of Object.entries(DEV_PKI_FILES) as Array<[DevPkiFile, string]>) paths[file] = join(dir, name);
  return paths;
}

function earliest(certs: readonly X509Certificate[]): Date {
  return new Date(Math.min(...certs.map((cert) => cert.validToDate.getTime())));
}

// --- Loading @peculiar/x509 -------------------------------------------------------------------

let x509Module: Promise<typeof X509> | undefined;

/**
 * @peculiar/x509 is loaded on first use only: the demo's second start reads PEM files with
 * `node:crypto` and never needs it. Its DI container (tsyringe) needs the Reflect metadata API,
 * which the `reflect-metadata` polyfill provides; it must be loaded first.
 */
export function loadX509(): Promise<typeof X509> {
  x509Module ??= (async () => {
    await import('reflect-metadata');
    const x509 = await import('@peculiar/x509');
    x509.cryptoProvider.set(globalThis.crypto);
    return x509;
  })();
  return x509Module;
}
