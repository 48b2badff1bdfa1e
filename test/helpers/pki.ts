/**
 * A per-run PKI for the mTLS suite (issue 4): a server CA and server certificate, partner A's
 * root → intermediate → leaves (good, to-be-revoked, expired, not yet valid, serverAuth only, no
 * EKU, SPIFFE URI, DNS name, OCSP signer), partner B's own root and leaf, a name-constrained
 * intermediate with one leaf inside and one outside its subtree, and a self-signed leaf for pinning.
 * Nothing is written unless `writePki` is called; keys are EC P-256 unless RSA is asked for.
 *
 * Built on `src/pki/dev-ca.ts` for the server side, and directly on @peculiar/x509 for what the
 * dev CA does not offer (intermediates, path lengths, name constraints, EKU control, validity in
 * the past or the future, AIA OCSP and CRL distribution point URLs). `createTestCa` and
 * `issueTestCertificate` are exported for tests that need one more certificate of a given shape;
 * `createTestCrl` and `openSslIndex` produce what a CRL server or `openssl ocsp` serves.
 */
import { KeyObject, X509Certificate, randomBytes } from 'node:crypto';
import type { webcrypto } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import type * as X509 from '@peculiar/x509';
import { createCa, issueServerCertificate, loadX509 } from '../../src/pki/dev-ca.ts';
import type { CertificateAuthority, IssuedCertificate, KeyAlgorithm } from '../../src/pki/dev-ca.ts';

export const EKU = {
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  ocspSigning: '1.3.6.1.5.5.7.3.9',
  any: '2.5.29.37.0',
} as const;

const DAY_MS = 86_400_000;
const SKEW_MS = 5 * 60_000;

/** A CA of the test PKI; `issuer` is null for a root. */
export interface TestCa extends CertificateAuthority {
  readonly name: string;
  readonly issuer: TestCa | null;
}

/** A leaf with what a TLS client sends: itself then the intermediates up to (not including) the root. */
export interface TestLeaf extends IssuedCertificate {
  readonly name: string;
  readonly issuer: TestCa | null;
  /** Leaf first, then intermediates: what a client presents (`identifyClient` input, the `cert` option of a TLS client). */
  readonly presented: readonly X509Certificate[];
  /** PEM of `presented`. */
  readonly chainPem: string;
  /** SHA-256 of the DER, lowercase hex (a `pinned` entry without its `sha256:` prefix). */
  readonly fingerprint: string;
}

export interface NameConstraintsSpec {
  readonly permitted?: readonly SubtreeSpec[];
  readonly excluded?: readonly SubtreeSpec[];
}

/** One name-constraint subtree: a DNS suffix, a URI host, an email/domain, an IP CIDR, or a DN (JSON form). */
export type SubtreeSpec = { readonly dns: string } | { readonly uri: string } | { readonly email: string } | { readonly ip: string } | { readonly dn: X509.JsonName };

export interface TestCaSpec {
  readonly name: string;
  readonly commonName?: string;
  readonly organization?: string;
  /** Null: self-signed root. */
  readonly issuer?: TestCa | null;
  /** basicConstraints pathLenConstraint; null = unlimited. Default: 1 for a root, 0 for an intermediate. */
  readonly pathLength?: number | null;
  /** False issues a certificate with CA:FALSE (for "not a CA" tests); null leaves basicConstraints out. Default true. */
  readonly ca?: boolean | null;
  /** KeyUsageFlags bits; null = no extension. Default: keyCertSign | cRLSign (even when `ca` is false). */
  readonly keyUsage?: number | null;
  readonly nameConstraints?: NameConstraintsSpec;
  /** EKU extension of the CA; null/absent = none. */
  readonly extendedKeyUsage?: readonly string[] | null;
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  readonly ocspUrl?: string;
  readonly crlUrl?: string;
  readonly keyAlgorithm?: KeyAlgorithm;
  readonly extraExtensions?: readonly X509.Extension[];
}

export interface TestCertificateSpec {
  readonly name: string;
  readonly commonName?: string;
  readonly organization?: string;
  /** The whole subject (JSON form), instead of O + CN. */
  readonly subject?: X509.JsonName;
  readonly dnsNames?: readonly string[];
  readonly uris?: readonly string[];
  readonly emails?: readonly string[];
  readonly ipAddresses?: readonly string[];
  /** EKU OIDs; null = no extension. Default: clientAuth. */
  readonly extendedKeyUsage?: readonly string[] | null;
  /** KeyUsageFlags bits; null = no extension. Default: digitalSignature (+ keyEncipherment for RSA). */
  readonly keyUsage?: number | null;
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  readonly ocspUrl?: string;
  readonly crlUrl?: string;
  readonly keyAlgorithm?: KeyAlgorithm;
  readonly extraExtensions?: readonly X509.Extension[];
}

export interface TestPkiOptions {
  /** AIA OCSP responder written into every leaf partner A's intermediate issues (e.g. `http://127.0.0.1:<port>/`). */
  readonly ocspUrl?: string;
  /** CRL distribution point written into every leaf partner A's intermediate issues. */
  readonly crlUrl?: string;
  /** AIA OCSP / CRL distribution point of partner A's intermediate itself (its status comes from the root). */
  readonly intermediateOcspUrl?: string;
  readonly intermediateCrlUrl?: string;
  /** Key type of every certificate. Default `ec` (P-256). */
  readonly keyAlgorithm?: KeyAlgorithm;
  /** Reference instant for validity windows. Default: now. */
  readonly now?: Date;
}

export interface TestPki {
  readonly server: { readonly ca: CertificateAuthority; readonly cert: IssuedCertificate };
  readonly partnerA: {
    readonly root: TestCa;
    readonly intermediate: TestCa;
    /** CN acme-good, no SANs. */
    readonly good: TestLeaf;
    /** An ordinary valid leaf, for the revocation tests to revoke. */
    readonly revoked: TestLeaf;
    readonly expired: TestLeaf;
    readonly notYetValid: TestLeaf;
    /** EKU serverAuth only. */
    readonly wrongEku: TestLeaf;
    /** No EKU extension at all. */
    readonly noEku: TestLeaf;
    /** SAN URI spiffe://acme.example/orders-client. */
    readonly spiffe: TestLeaf;
    /** SAN DNS client.acme.example. */
    readonly dns: TestLeaf;
    /** EKU OCSPSigning, issued by the intermediate: `openssl ocsp -rsigner` for the intermediate's leaves. */
    readonly ocspSigner: TestLeaf;
  };
  readonly partnerB: { readonly root: TestCa; readonly leaf: TestLeaf };
  /** An intermediate under partner A's root, permitted DNS subtree `.acme.example` only. */
  readonly constrained: { readonly ca: TestCa; readonly inside: TestLeaf; readonly outside: TestLeaf };
  /** Self-signed, clientAuth: trusted only by pinning its fingerprint. */
  readonly selfSigned: TestLeaf;
  /** Writes the PEM files into `dir` (created 0700): certificates 0644, keys 0600. */
  writePki(dir: string): Promise<TestPkiFiles>;
}

/** Per certificate: its PEM, its key, and the chain a client sends (leaf + intermediates). */
export interface LeafFiles {
  readonly cert: string;
  readonly key: string;
  readonly chain: string;
}

export interface TestPkiFiles {
  readonly dir: string;
  readonly server: { readonly ca: string; readonly cert: string; readonly key: string };
  readonly partnerA: {
    readonly root: string;
    readonly intermediate: string;
    /** Root + intermediate, for a config that does not rely on the client sending the intermediate. */
    readonly caBundle: string;
    readonly intermediateKey: string;
    readonly leaves: Readonly<Record<'good' | 'revoked' | 'expired' | 'notYetValid' | 'wrongEku' | 'noEku' | 'spiffe' | 'dns' | 'ocspSigner', LeafFiles>>;
  };
  readonly partnerB: { readonly root: string; readonly leaf: LeafFiles };
  readonly constrained: { readonly ca: string; readonly inside: LeafFiles; readonly outside: LeafFiles };
  readonly selfSigned: LeafFiles;
}

export async function createTestPki(options: TestPkiOptions = {}): Promise<TestPki> {
  const now = options.now ?? new Date();
  const keyAlgorithm = options.keyAlgorithm ?? 'ec';
  const at = (days: number): Date => new Date(now.getTime() + days * DAY_MS);

  const serverCa = await createCa({ commonName: 'Portcullis test server CA', keyAlgorithm, notBefore: new Date(now.getTime() - SKEW_MS) });
  const serverCert = await issueServerCertificate(serverCa, { dnsNames: ['localhost', 'api.example.test'], ipAddresses: ['127.0.0.1'], notBefore: new Date(now.getTime() - SKEW_MS) });

  const rootA = await createTestCa({ name: 'partner-a-root', commonName: 'Acme Root CA', organization: 'Acme', pathLength: 1, keyAlgorithm, notBefore: at(-1), notAfter: at(365) });
  const intermediateA = await createTestCa({
    name: 'partner-a-intermediate',
    commonName: 'Acme Issuing CA',
    organization: 'Acme',
    issuer: rootA,
    pathLength: 0,
    keyAlgorithm,
    notBefore: at(-1),
    notAfter: at(180),
    ...(options.intermediateOcspUrl !== undefined && { ocspUrl: options.intermediateOcspUrl }),
    ...(options.intermediateCrlUrl !== undefined && { crlUrl: options.intermediateCrlUrl }),
  });
  const revocationPointers = {
    ...(options.ocspUrl !== undefined && { ocspUrl: options.ocspUrl }),
    ...(options.crlUrl !== undefined && { crlUrl: options.crlUrl }),
  };
  const leafA = (spec: TestCertificateSpec): Promise<TestLeaf> =>
    issueTestCertificate(intermediateA, { organization: 'Acme', keyAlgorithm, notBefore: new Date(now.getTime() - SKEW_MS), notAfter: at(30), ...revocationPointers, ...spec });
  const [good, revoked, expired, notYetValid, wrongEku, noEku, spiffe, dns, ocspSigner] = await Promise.all([
    leafA({ name: 'partner-a-good', commonName: 'acme-good' }),
    leafA({ name: 'partner-a-revoked', commonName: 'acme-revoked' }),
    leafA({ name: 'partner-a-expired', commonName: 'acme-expired', notBefore: at(-30), notAfter: at(-1) }),
    leafA({ name: 'partner-a-not-yet-valid', commonName: 'acme-not-yet-valid', notBefore: at(1), notAfter: at(30) }),
    leafA({ name: 'partner-a-wrong-eku', commonName: 'acme-wrong-eku', extendedKeyUsage: [EKU.serverAuth] }),
    leafA({ name: 'partner-a-no-eku', commonName: 'acme-no-eku', extendedKeyUsage: null }),
    leafA({ name: 'partner-a-spiffe', commonName: 'orders-client', uris: ['spiffe://acme.example/orders-client'] }),
    leafA({ name: 'partner-a-dns', commonName: 'acme-dns', dnsNames: ['client.acme.example'] }),
    // RFC 6960 §4.2.2.2: a delegated responder carries id-kp-OCSPSigning, issued by the CA it answers for.
    leafA({ name: 'partner-a-ocsp-signer', commonName: 'Acme OCSP responder', extendedKeyUsage: [EKU.ocspSigning], ocspUrl: undefined, crlUrl: undefined }),
  ]);

  const rootB = await createTestCa({ name: 'partner-b-root', commonName: 'Bolt Root CA', organization: 'Bolt', pathLength: 0, keyAlgorithm, notBefore: at(-1), notAfter: at(365) });
  const leafB = await issueTestCertificate(rootB, {
    name: 'partner-b-leaf',
    organization: 'Bolt',
    commonName: 'bolt-billing',
    uris: ['spiffe://bolt.example/billing'],
    keyAlgorithm,
    notBefore: new Date(now.getTime() - SKEW_MS),
    notAfter: at(30),
  });

  const constrainedCa = await createTestCa({
    name: 'partner-a-constrained',
    commonName: 'Acme Constrained CA',
    organization: 'Acme',
    issuer: rootA,
    pathLength: 0,
    nameConstraints: { permitted: [{ dns: '.acme.example' }] },
    keyAlgorithm,
    notBefore: at(-1),
    notAfter: at(180),
  });
  const [inside, outside] = await Promise.all([
    issueTestCertificate(constrainedCa, { name: 'constrained-inside', organization: 'Acme', commonName: 'svc-inside', dnsNames: ['svc.acme.example'], keyAlgorithm, notAfter: at(30) }),
    issueTestCertificate(constrainedCa, { name: 'constrained-outside', organization: 'Acme', commonName: 'svc-outside', dnsNames: ['svc.evil.example'], keyAlgorithm, notAfter: at(30) }),
  ]);

  const selfSigned = await issueTestCertificate(null, { name: 'self-signed', organization: 'Pinned Ltd', commonName: 'pinned-client', keyAlgorithm, notAfter: at(30) });

  const pki: Omit<TestPki, 'writePki'> = {
    server: { ca: serverCa, cert: serverCert },
    partnerA: { root: rootA, intermediate: intermediateA, good, revoked, expired, notYetValid, wrongEku, noEku, spiffe, dns, ocspSigner },
    partnerB: { root: rootB, leaf: leafB },
    constrained: { ca: constrainedCa, inside, outside },
    selfSigned,
  };
  return { ...pki, writePki: (dir) => writeTestPki(dir, pki) };
}

/** A CA: self-signed when `issuer` is null/absent, else issued by it. */
export async function createTestCa(spec: TestCaSpec): Promise<TestCa> {
  const x509 = await loadX509();
  const keyAlgorithm = spec.keyAlgorithm ?? spec.issuer?.keyAlgorithm ?? 'ec';
  const keys = await generateKeys(keyAlgorithm);
  const issuer = spec.issuer ?? null;
  const isCa = spec.ca === undefined ? true : spec.ca;
  const pathLength = spec.pathLength === undefined ? (issuer === null ? 1 : 0) : spec.pathLength;
  const keyUsage = spec.keyUsage === undefined ? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign : spec.keyUsage;
  const subject = nameOf(spec.organization, spec.commonName ?? spec.name);
  const extensions: X509.Extension[] = [
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(issuer?.keys.publicKey ?? keys.publicKey),
    ...(await revocationExtensions(spec)),
    ...(spec.extraExtensions ?? []),
  ];
  if (isCa !== null) extensions.push(new x509.BasicConstraintsExtension(isCa, isCa && pathLength !== null ? pathLength : undefined, true));
  if (keyUsage !== null) extensions.push(new x509.KeyUsagesExtension(keyUsage, true));
  if (spec.nameConstraints) extensions.push(new x509.Extension('2.5.29.30', true, await nameConstraintsDer(spec.nameConstraints)));
  if (spec.extendedKeyUsage) extensions.push(new x509.ExtendedKeyUsageExtension([...spec.extendedKeyUsage], false));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialNumber(),
    subject,
    issuer: issuer ? new x509.X509Certificate(issuer.certPem).subjectName : subject,
    notBefore: spec.notBefore ?? new Date(Date.now() - DAY_MS),
    notAfter: spec.notAfter ?? new Date(Date.now() + 365 * DAY_MS),
    publicKey: keys.publicKey,
    signingKey: issuer?.keys.privateKey ?? keys.privateKey,
    signingAlgorithm: signingAlgorithm(issuer?.keyAlgorithm ?? keyAlgorithm),
    extensions,
  });
  const certPem = `${cert.toString('pem')}\n`;
  return { name: spec.name, issuer, certPem, keyPem: exportKey(keys.privateKey), certificate: new X509Certificate(certPem), keyAlgorithm, keys };
}

/** A leaf (basicConstraints CA:FALSE) issued by `issuer`, or self-signed when `issuer` is null. */
export async function issueTestCertificate(issuer: TestCa | null, spec: TestCertificateSpec): Promise<TestLeaf> {
  const x509 = await loadX509();
  const keyAlgorithm = spec.keyAlgorithm ?? issuer?.keyAlgorithm ?? 'ec';
  const keys = await generateKeys(keyAlgorithm);
  const subject = spec.subject ?? nameOf(spec.organization, spec.commonName ?? spec.name);
  const keyUsage = spec.keyUsage === undefined ? x509.KeyUsageFlags.digitalSignature | (keyAlgorithm === 'rsa' ? x509.KeyUsageFlags.keyEncipherment : 0) : spec.keyUsage;
  const extendedKeyUsage = spec.extendedKeyUsage === undefined ? [EKU.clientAuth] : spec.extendedKeyUsage;
  const extensions: X509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(issuer?.keys.publicKey ?? keys.publicKey),
    ...(await revocationExtensions(spec)),
    ...(spec.extraExtensions ?? []),
  ];
  if (keyUsage !== null) extensions.push(new x509.KeyUsagesExtension(keyUsage, true));
  if (extendedKeyUsage !== null) extensions.push(new x509.ExtendedKeyUsageExtension([...extendedKeyUsage], false));
  const altNames = [
    ...(spec.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(spec.uris ?? []).map((value) => ({ type: 'url' as const, value })),
    ...(spec.emails ?? []).map((value) => ({ type: 'email' as const, value })),
    ...(spec.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
  ];
  if (altNames.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(altNames, false));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialNumber(),
    subject,
    issuer: issuer ? new x509.X509Certificate(issuer.certPem).subjectName : subject,
    notBefore: spec.notBefore ?? new Date(Date.now() - SKEW_MS),
    notAfter: spec.notAfter ?? new Date(Date.now() + 30 * DAY_MS),
    publicKey: keys.publicKey,
    signingKey: issuer?.keys.privateKey ?? keys.privateKey,
    signingAlgorithm: signingAlgorithm(issuer?.keyAlgorithm ?? keyAlgorithm),
    extensions,
  });
  const certPem = `${cert.toString('pem')}\n`;
  const certificate = new X509Certificate(certPem);
  const intermediates: TestCa[] = [];
  for (let ca = issuer; ca !== null && ca.issuer !== null; ca = ca.issuer) intermediates.push(ca);
  return {
    name: spec.name,
    issuer,
    certPem,
    keyPem: exportKey(keys.privateKey),
    certificate,
    presented: [certificate, ...intermediates.map((ca) => ca.certificate)],
    chainPem: [certPem, ...intermediates.map((ca) => ca.certPem)].join(''),
    fingerprint: certificate.fingerprint256.replaceAll(':', '').toLowerCase(),
  };
}

export interface CrlSpec {
  /** Certificates to list as revoked, with their revocation time (default: now). */
  readonly revoked?: ReadonlyArray<{ readonly certificate: X509Certificate; readonly at?: Date }>;
  readonly thisUpdate?: Date;
  /** Default: thisUpdate + 1 day. */
  readonly nextUpdate?: Date;
  /** Sign with another CA's key (for "CRL signed by the wrong issuer" tests) while naming `ca` as issuer. */
  readonly signer?: CertificateAuthority;
}

/** A v2 CRL issued by `ca` (DER), with an authority key identifier and CRL number. */
export async function createTestCrl(ca: CertificateAuthority, spec: CrlSpec = {}): Promise<Buffer> {
  const x509 = await loadX509();
  const thisUpdate = spec.thisUpdate ?? new Date(Date.now() - 60_000);
  const signer = spec.signer ?? ca;
  const crl = await x509.X509CrlGenerator.create({
    issuer: new x509.X509Certificate(ca.certPem).subjectName,
    thisUpdate,
    nextUpdate: spec.nextUpdate ?? new Date(thisUpdate.getTime() + DAY_MS),
    // With a reason each entry has an extension: without one @peculiar/x509 writes an empty
    // crlEntryExtensions, which RFC 5280 forbids (SIZE (1..MAX)) and the gateway refuses.
    entries: (spec.revoked ?? []).map((entry) => ({
      serialNumber: entry.certificate.serialNumber.toLowerCase(),
      revocationDate: entry.at ?? new Date(),
      reason: x509.X509CrlReason.keyCompromise,
    })),
    extensions: [await x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey), new x509.Extension('2.5.29.20', false, derInteger(randomBytes(8)))],
    signingKey: signer.keys.privateKey,
    signingAlgorithm: signingAlgorithm(signer.keyAlgorithm),
  });
  return Buffer.from(crl.rawData);
}

/**
 * An `openssl ocsp -index` file: one line per certificate (`V` valid, `R` revoked), tab-separated
 * as `openssl ca` writes its database.
 */
export function openSslIndex(entries: ReadonlyArray<{ readonly certificate: X509Certificate; readonly revokedAt?: Date }>): string {
  const time = (date: Date): string => `${date.toISOString().replace(/[-:T]/g, '').slice(2, 14)}Z`;
  return entries
    .map(({ certificate, revokedAt }) =>
      [revokedAt ? 'R' : 'V', time(certificate.validToDate), revokedAt ? time(revokedAt) : '', certificate.serialNumber.toUpperCase(), 'unknown', `/${certificate.subject.split('\n').join('/')}`].join('\t'),
    )
    .map((line) => `${line}\n`)
    .join('');
}

// --- Files ------------------------------------------------------------------------------------

async function writeTestPki(dir: string, pki: Omit<TestPki, 'writePki'>): Promise<TestPkiFiles> {
  const absolute = resolve(dir);
  await mkdir(absolute, { recursive: true, mode: 0o700 });
  const put = async (name: string, text: string, mode = 0o644): Promise<string> => {
    const path = join(absolute, name);
    await writeFile(path, text, { mode });
    return path;
  };
  const leaf = async (issued: TestLeaf): Promise<LeafFiles> => ({
    cert: await put(`${issued.name}.crt`, issued.certPem),
    key: await put(`${issued.name}.key`, issued.keyPem, 0o600),
    chain: await put(`${issued.name}-chain.crt`, issued.chainPem),
  });
  const a = pki.partnerA;
  return {
    dir: absolute,
    server: {
      ca: await put('server-ca.crt', pki.server.ca.certPem),
      cert: await put('server.crt', pki.server.cert.certPem),
      key: await put('server.key', pki.server.cert.keyPem, 0o600),
    },
    partnerA: {
      root: await put(`${a.root.name}.crt`, a.root.certPem),
      intermediate: await put(`${a.intermediate.name}.crt`, a.intermediate.certPem),
      caBundle: await put('partner-a-ca-bundle.crt', a.root.certPem + a.intermediate.certPem),
      intermediateKey: await put(`${a.intermediate.name}.key`, a.intermediate.keyPem, 0o600),
      leaves: {
        good: await leaf(a.good),
        revoked: await leaf(a.revoked),
        expired: await leaf(a.expired),
        notYetValid: await leaf(a.notYetValid),
        wrongEku: await leaf(a.wrongEku),
        noEku: await leaf(a.noEku),
        spiffe: await leaf(a.spiffe),
        dns: await leaf(a.dns),
        ocspSigner: await leaf(a.ocspSigner),
      },
    },
    partnerB: { root: await put(`${pki.partnerB.root.name}.crt`, pki.partnerB.root.certPem), leaf: await leaf(pki.partnerB.leaf) },
    constrained: { ca: await put(`${pki.constrained.ca.name}.crt`, pki.constrained.ca.certPem), inside: await leaf(pki.constrained.inside), outside: await leaf(pki.constrained.outside) },
    selfSigned: await leaf(pki.selfSigned),
  };
}

// --- Internals --------------------------------------------------------------------------------

function nameOf(organization: string | undefined, commonName: string): X509.JsonName {
  return organization === undefined ? [{ CN: [commonName] }] : [{ O: [organization] }, { CN: [commonName] }];
}

async function revocationExtensions(spec: { readonly ocspUrl?: string | undefined; readonly crlUrl?: string | undefined }): Promise<X509.Extension[]> {
  const x509 = await loadX509();
  const extensions: X509.Extension[] = [];
  if (spec.ocspUrl !== undefined) extensions.push(new x509.AuthorityInfoAccessExtension({ ocsp: [spec.ocspUrl] }, false));
  if (spec.crlUrl !== undefined) extensions.push(new x509.CRLDistributionPointsExtension([spec.crlUrl], false));
  return extensions;
}

/** NameConstraints (RFC 5280 §4.2.1.10), DER-encoded by hand: @peculiar/x509 has no class for it. */
async function nameConstraintsDer(spec: NameConstraintsSpec): Promise<Buffer> {
  const x509 = await loadX509();
  const subtree = (entry: SubtreeSpec): Buffer => {
    let base: Buffer;
    if ('dns' in entry) base = tlv(0x82, Buffer.from(entry.dns, 'ascii'));
    else if ('uri' in entry) base = tlv(0x86, Buffer.from(entry.uri, 'ascii'));
    else if ('email' in entry) base = tlv(0x81, Buffer.from(entry.email, 'ascii'));
    else if ('ip' in entry) base = tlv(0x87, cidrBytes(entry.ip));
    else base = tlv(0xa4, Buffer.from(new x509.Name(entry.dn).toArrayBuffer()));
    return tlv(0x30, base);
  };
  const parts: Buffer[] = [];
  if (spec.permitted?.length) parts.push(tlv(0xa0, Buffer.concat(spec.permitted.map(subtree))));
  if (spec.excluded?.length) parts.push(tlv(0xa1, Buffer.concat(spec.excluded.map(subtree))));
  return tlv(0x30, Buffer.concat(parts));
}

function cidrBytes(cidr: string): Buffer {
  const [address, bitsText] = cidr.split('/');
  const family = isIP(address ?? '');
  if (family === 0 || bitsText === undefined) throw new TypeError(`expected an IP CIDR, got ${cidr}`);
  const size = family === 4 ? 4 : 16;
  const bytes = family === 4 ? Buffer.from(address!.split('.').map(Number)) : ipv6Bytes(address!);
  const bits = Number(bitsText);
  const mask = Buffer.alloc(size);
  for (let bit = 0; bit < bits; bit += 1) mask[bit >> 3]! |= 0x80 >> (bit & 7);
  return Buffer.concat([bytes, mask]);
}

function ipv6Bytes(address: string): Buffer {
  const [head, tail] = address.split('::');
  const groups = (text: string | undefined): number[] => (text ? text.split(':').map((group) => Number.parseInt(group, 16)) : []);
  const left = groups(head);
  const right = groups(tail);
  const all = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  const bytes = Buffer.alloc(16);
  all.forEach((group, index) => bytes.writeUInt16BE(group, index * 2));
  return bytes;
}

function tlv(tag: number, content: Buffer): Buffer {
  const length = content.length;
  const header =
    length < 0x80 ? Buffer.from([tag, length]) : length < 0x100 ? Buffer.from([tag, 0x81, length]) : Buffer.from([tag, 0x82, length >> 8, length & 0xff]);
  return Buffer.concat([header, content]);
}

function derInteger(bytes: Buffer): Buffer {
  const positive = bytes[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes;
  return tlv(0x02, positive);
}

/** 16 random bytes, positive, without a leading zero octet (RFC 5280 §4.1.2.2). */
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

function exportKey(privateKey: webcrypto.CryptoKey): string {
  return KeyObject.from(privateKey).export({ type: 'pkcs8', format: 'pem' }).toString();
}
