/**
 * A per-run PKI for the revocation tests: CAs from `src/pki/dev-ca.ts`, plus what dev-ca does not
 * make: leaves naming a CRL distribution point and an OCSP responder, OCSP signing certificates,
 * and CRLs (signed by the CA, or by another key under the CA's name). Nothing is committed.
 */
import { X509Certificate, KeyObject, randomBytes } from 'node:crypto';
import type { webcrypto } from 'node:crypto';
import { createCa, loadX509 } from '../../../src/pki/dev-ca.ts';
import type { CertificateAuthority, IssuedCertificate } from '../../../src/pki/dev-ca.ts';
import type { RevocationPolicy } from '../../../src/pki/types.ts';

export type { CertificateAuthority, IssuedCertificate };

const MINUTE = 60_000;

export function createTestCa(commonName: string): Promise<CertificateAuthority> {
  return createCa({ commonName });
}

export interface IssueOptions {
  readonly commonName: string;
  /** CRL distribution point URIs (RFC 5280 §4.2.1.13). */
  readonly crlUrls?: readonly string[];
  /** OCSP responder URIs in Authority Information Access (RFC 5280 §4.2.2.1). */
  readonly ocspUrls?: readonly string[];
  /** Extended key usages by name; default clientAuth. */
  readonly extendedKeyUsage?: ReadonlyArray<'clientAuth' | 'ocspSigning' | 'serverAuth'>;
  /** Hex serial; default 16 random bytes. */
  readonly serial?: string;
}

export async function issueCertificate(ca: CertificateAuthority, options: IssueOptions): Promise<IssuedCertificate> {
  const x509 = await loadX509();
  const keys = (await globalThis.crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const usages = (options.extendedKeyUsage ?? ['clientAuth']).map((usage) => x509.ExtendedKeyUsage[usage]);
  const extensions: InstanceType<typeof x509.Extension>[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension(usages, false),
    await x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey),
  ];
  if (options.crlUrls) extensions.push(new x509.CRLDistributionPointsExtension([...options.crlUrls]));
  if (options.ocspUrls) extensions.push(new x509.AuthorityInfoAccessExtension({ ocsp: [...options.ocspUrls] }));
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: options.serial ?? randomSerial(),
    subject: [{ O: ['Portcullis revocation tests'] }, { CN: [options.commonName] }],
    issuer: new x509.X509Certificate(ca.certPem).subjectName,
    // An hour back, so tests may run their clock a little behind without leaving the validity.
    notBefore: new Date(now - 60 * MINUTE),
    notAfter: new Date(now + 30 * 24 * 60 * MINUTE),
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as webcrypto.EcdsaParams,
    extensions,
  });
  const certPem = `${cert.toString('pem')}\n`;
  const keyPem = KeyObject.from(keys.privateKey).export({ type: 'pkcs8', format: 'pem' }).toString();
  return { certPem, keyPem, certificate: new X509Certificate(certPem) };
}

export interface CrlOptions {
  /** Certificates (or hex serials) listed as revoked. */
  readonly revoked?: ReadonlyArray<X509Certificate | string>;
  readonly thisUpdate?: Date;
  /** Default: ten minutes after thisUpdate; null for none. */
  readonly nextUpdate?: Date | null;
  /** Sign with this CA's key (and name the issuer `ca` anyway): a CRL under the right name with the wrong key. */
  readonly signedBy?: CertificateAuthority;
  /** Extra CRL extensions (RFC 5280 §5.2), e.g. a critical issuing distribution point. */
  readonly extensions?: ReadonlyArray<{ readonly oid: string; readonly critical: boolean; readonly value: Uint8Array }>;
  /** Extra extensions on every entry (RFC 5280 §5.3), e.g. a critical certificateIssuer. */
  readonly entryExtensions?: ReadonlyArray<{ readonly oid: string; readonly critical: boolean; readonly value: Uint8Array }>;
}

/** A DER CRL naming `ca` as its issuer. */
export async function createCrl(ca: CertificateAuthority, options: CrlOptions = {}): Promise<Buffer> {
  const x509 = await loadX509();
  const thisUpdate = options.thisUpdate ?? new Date(Date.now() - MINUTE);
  const nextUpdate = options.nextUpdate === undefined ? new Date(thisUpdate.getTime() + 10 * MINUTE) : options.nextUpdate;
  const crl = await x509.X509CrlGenerator.create({
    issuer: new x509.X509Certificate(ca.certPem).subjectName,
    thisUpdate,
    ...(nextUpdate === null ? {} : { nextUpdate }),
    signingKey: (options.signedBy ?? ca).keys.privateKey,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as webcrypto.EcdsaParams,
    ...(options.extensions ? { extensions: options.extensions.map((extension) => new x509.Extension(extension.oid, extension.critical, extension.value)) } : {}),
    entries: (options.revoked ?? []).map((entry) => ({
      ...(options.entryExtensions ? { extensions: options.entryExtensions.map((extension) => new x509.Extension(extension.oid, extension.critical, extension.value)) } : {}),
      serialNumber: typeof entry === 'string' ? entry : entry.serialNumber,
      revocationDate: new Date(thisUpdate.getTime() - MINUTE),
      // With a reason the entry has an extension: without one @peculiar/x509 writes an empty
      // crlEntryExtensions SEQUENCE, which RFC 5280 (SIZE (1..MAX)) and pkijs do not accept.
      reason: x509.X509CrlReason.keyCompromise,
    })),
  });
  return Buffer.from(crl.rawData);
}

export function toPem(der: Buffer, label = 'X509 CRL'): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

type CrlPolicy = NonNullable<RevocationPolicy['crl']>;
type OcspPolicy = NonNullable<RevocationPolicy['ocsp']>;

/** A revocation policy with only what a test sets; everything else off. */
export function policy(options: { crl?: Partial<CrlPolicy>; ocsp?: Partial<OcspPolicy>; allowedHosts?: readonly string[] }): RevocationPolicy {
  return {
    crl: options.crl ? { file: null, url: null, fromCertificate: false, refreshMs: 60_000, timeoutMs: 2_000, ...options.crl } : null,
    ocsp: options.ocsp ? { url: null, fromCertificate: false, timeoutMs: 2_000, maxCacheMs: 3_600_000, ...options.ocsp } : null,
    allowedHosts: options.allowedHosts ?? [],
    softFail: false,
  };
}

/** A clock the test moves by hand; starts at the real time (responders stamp real times). */
export function manualClock(): { now: number; advance(ms: number): void; read: () => number } {
  const clock = {
    now: Date.now(),
    advance(ms: number): void {
      clock.now += ms;
    },
    read: (): number => clock.now,
  };
  return clock;
}

function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) || 0x01;
  return bytes.toString('hex');
}
