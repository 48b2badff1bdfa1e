/**
 * The X.509 details revocation checking needs and `node:crypto.X509Certificate` does not expose:
 * the DER of the issuer name, the serial as encoded, the CRL distribution points (RFC 5280
 * §4.2.1.13) and OCSP responders (RFC 5280 §4.2.2.1), and signature verification of CRLs and
 * OCSP responses by their AlgorithmIdentifier. Parsing is pkijs (ECOSYSTEM.md §2.10); every
 * signature is checked by `node:crypto`, synchronously, with the key of a certificate the
 * caller already trusts.
 */
import { X509Certificate, createHash, verify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import * as pkijs from 'pkijs';

/** What the checks need to know about the certificate whose status is asked. */
export interface SubjectCertificateInfo {
  /** Serial number as encoded (DER INTEGER content), lowercase hex without leading zeros: the CRL and OCSP lookup key. */
  readonly serial: string;
  /** The serial's DER INTEGER content octets, for the OCSP CertID. */
  readonly serialBytes: Buffer;
  /** DER of the certificate's issuer Name: a CRL counts only when its issuer is byte-identical (RFC 5280 §6.3.3 (b)). */
  readonly issuerNameDer: Buffer;
  /** http(s) URIs of the CRL distribution points (full names only, no reasons subset, no indirect cRLIssuer). */
  readonly crlUrls: readonly string[];
  /** http(s) URIs of the OCSP responders named in Authority Information Access (id-ad-ocsp). */
  readonly ocspUrls: readonly string[];
}

/** What the checks need to know about the issuer (the CA that signed the certificate). */
export interface IssuerInfo {
  /** SHA-256 of the issuer certificate's DER, hex: identifies the issuer in cache keys. */
  readonly fingerprint: string;
  /** DER of the issuer certificate's subject Name. */
  readonly subjectDer: Buffer;
  /** The subjectPublicKey BIT STRING value (no tag, length or unused-bits octet): input of the OCSP key hash (RFC 6960 §4.1.1). */
  readonly publicKeyBits: Buffer;
  /** Parsed once: `X509Certificate.publicKey` builds a new KeyObject on every access. */
  readonly publicKey: KeyObject;
  readonly certificate: X509Certificate;
}

const OID_CRL_DISTRIBUTION_POINTS = '2.5.29.31';
const OID_AUTHORITY_INFO_ACCESS = '1.3.6.1.5.5.7.1.1';
const OID_AD_OCSP = '1.3.6.1.5.5.7.48.1';
const GENERAL_NAME_URI = 6;

/** DER INTEGER content as the lookup key: lowercase hex, leading zeros dropped, "0" for zero. */
export function serialKey(content: Uint8Array): string {
  const hex = Buffer.from(content.buffer, content.byteOffset, content.byteLength).toString('hex').replace(/^0+/, '');
  return hex === '' ? '0' : hex;
}

function bytesOf(view: ArrayBuffer | Uint8Array): Buffer {
  return view instanceof Uint8Array ? Buffer.from(view.buffer, view.byteOffset, view.byteLength) : Buffer.from(view);
}

/** DER of a parsed Name as it was in the input (never re-encoded, so comparisons are byte for byte). */
export function nameDer(name: pkijs.RelativeDistinguishedNames): Buffer {
  if (name.valueBeforeDecode.byteLength > 0) return Buffer.from(name.valueBeforeDecode.slice(0));
  return bytesOf(name.toSchema().toBER());
}

function httpUri(name: pkijs.GeneralName): string | null {
  if (name.type !== GENERAL_NAME_URI || typeof name.value !== 'string') return null;
  return /^https?:\/\//i.test(name.value) ? name.value : null;
}

export function describeSubjectCertificate(certificate: X509Certificate): SubjectCertificateInfo {
  const parsed = pkijs.Certificate.fromBER(certificate.raw);
  const serialBytes = bytesOf(parsed.serialNumber.valueBlock.valueHexView);
  const crlUrls: string[] = [];
  const ocspUrls: string[] = [];
  for (const extension of parsed.extensions ?? []) {
    if (extension.extnID === OID_CRL_DISTRIBUTION_POINTS && extension.parsedValue instanceof pkijs.CRLDistributionPoints) {
      for (const point of extension.parsedValue.distributionPoints) {
        // A point limited to some reasons, or whose CRL another authority signs (indirect CRL,
        // RFC 5280 §5.2.5), does not give a complete answer for this issuer: not used.
        if (point.reasons !== undefined || point.cRLIssuer !== undefined) continue;
        if (!Array.isArray(point.distributionPoint)) continue;
        for (const name of point.distributionPoint) {
          const uri = httpUri(name);
          if (uri !== null) crlUrls.push(uri);
        }
      }
    } else if (extension.extnID === OID_AUTHORITY_INFO_ACCESS && extension.parsedValue instanceof pkijs.InfoAccess) {
      for (const description of extension.parsedValue.accessDescriptions) {
        if (description.accessMethod !== OID_AD_OCSP) continue;
        const uri = httpUri(description.accessLocation);
        if (uri !== null) ocspUrls.push(uri);
      }
    }
  }
  return { serial: serialKey(serialBytes), serialBytes, issuerNameDer: nameDer(parsed.issuer), crlUrls, ocspUrls };
}

export function describeIssuer(certificate: X509Certificate): IssuerInfo {
  const parsed = pkijs.Certificate.fromBER(certificate.raw);
  return {
    fingerprint: createHash('sha256').update(certificate.raw).digest('hex'),
    subjectDer: nameDer(parsed.subject),
    publicKeyBits: bytesOf(parsed.subjectPublicKeyInfo.subjectPublicKey.valueBlock.valueHexView),
    publicKey: certificate.publicKey,
    certificate,
  };
}

/** The hash algorithms accepted in an OCSP CertID (RFC 6960 §4.1.1 `hashAlgorithm`), by OID. */
export const CERT_ID_HASHES: Readonly<Record<string, string>> = {
  '1.3.14.3.2.26': 'sha1',
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};

/**
 * Signature algorithms accepted on CRLs and OCSP responses: the digest passed to
 * `crypto.verify` (null for EdDSA) and the key type it needs. SHA-1 and MD5 signatures are not
 * accepted (collisions are practical); RSASSA-PSS is not supported yet: both fail closed.
 */
const SIGNATURE_ALGORITHMS: Readonly<Record<string, { readonly digest: string | null; readonly keyType: string }>> = {
  '1.2.840.113549.1.1.11': { digest: 'sha256', keyType: 'rsa' },
  '1.2.840.113549.1.1.12': { digest: 'sha384', keyType: 'rsa' },
  '1.2.840.113549.1.1.13': { digest: 'sha512', keyType: 'rsa' },
  '1.2.840.10045.4.3.2': { digest: 'sha256', keyType: 'ec' },
  '1.2.840.10045.4.3.3': { digest: 'sha384', keyType: 'ec' },
  '1.2.840.10045.4.3.4': { digest: 'sha512', keyType: 'ec' },
  '1.3.101.112': { digest: null, keyType: 'ed25519' },
  '1.3.101.113': { digest: null, keyType: 'ed448' },
};

/**
 * Verifies `signature` over `data` with `key` under the algorithm `oid`. Returns null when it
 * verifies, else why not (for the operator's log and the `unavailable` detail).
 */
export function checkSignature(oid: string, data: Uint8Array, signature: Uint8Array, key: KeyObject): string | null {
  const algorithm = SIGNATURE_ALGORITHMS[oid];
  if (algorithm === undefined) return `signature algorithm ${oid} is not accepted`;
  if (key.asymmetricKeyType !== algorithm.keyType) return `signature algorithm ${oid} does not fit the signer's ${key.asymmetricKeyType ?? 'unknown'} key`;
  try {
    // ECDSA signatures in X.509 and OCSP are DER-encoded (RFC 5758 §3.2), node's default.
    return verify(algorithm.digest, data, key, signature) ? null : 'signature does not verify with the issuer\'s key';
  } catch (error) {
    return `signature could not be checked: ${(error as Error).message}`;
  }
}
