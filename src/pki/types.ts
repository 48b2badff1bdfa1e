/**
 * Mutual TLS contracts (issue 4): what the configuration compiles into for each partner, and what
 * the transport-identity stage learns about a client certificate. Trust is per partner
 * (SECURITY.md item 10): a CA trusted for partner A never authenticates partner B.
 */
import type { X509Certificate } from 'node:crypto';

export interface RevocationPolicy {
  readonly crl: {
    /** A CRL file (PEM or DER) with its contents read at load time. */
    readonly file: { readonly path: string; readonly contents: Buffer } | null;
    readonly url: string | null;
    readonly fromCertificate: boolean;
    readonly refreshMs: number;
    readonly timeoutMs: number;
  } | null;
  readonly ocsp: {
    readonly url: string | null;
    readonly fromCertificate: boolean;
    readonly timeoutMs: number;
    readonly maxCacheMs: number;
  } | null;
  /** Hosts a certificate may name as its CRL distribution point or OCSP responder (SSRF guard). */
  readonly allowedHosts: readonly string[];
  /** Soft-fail (acknowledged): an unknown status lets the request through, marked. */
  readonly softFail: boolean;
}

/** One partner's mTLS trust, compiled. */
export interface PartnerTrust {
  readonly partnerId: string;
  /** CA certificates the partner's chains must end at (roots or intermediates), parsed once. */
  readonly anchors: readonly X509Certificate[];
  /** Pinned leaf fingerprints: SHA-256 of the DER, lowercase hex (no `sha256:` prefix). */
  readonly pinned: ReadonlySet<string>;
  /** Name patterns; null = no constraint of that kind. A certificate must match every list given. */
  readonly subjects: readonly string[] | null;
  readonly sanDns: readonly string[] | null;
  readonly sanUri: readonly string[] | null;
  readonly revocation: RevocationPolicy | null;
}

/** What a client certificate says, for the context, the record and the binding checks. */
export interface CertificateFacts {
  /** SHA-256 of the DER, lowercase hex. */
  readonly fingerprintSha256: string;
  /** RFC 8705 §3.1 `x5t#S256`: base64url SHA-256 of the DER, no padding. */
  readonly x5t: string;
  readonly subject: string;
  readonly issuer: string;
  /** Serial number, lowercase hex without leading zeros. */
  readonly serial: string;
  readonly notBefore: string;
  readonly notAfter: string;
  readonly sanDns: readonly string[];
  readonly sanUri: readonly string[];
}

export type CertificateRefusal =
  | 'tls.certificate_missing'
  | 'tls.cert_expired'
  | 'tls.cert_not_yet_valid'
  | 'tls.eku'
  | 'tls.untrusted_ca'
  | 'tls.name_constraints'
  | 'tls.name_mismatch'
  | 'tls.partner_ambiguous';

export type IdentifyResult =
  | {
      readonly ok: true;
      readonly partnerId: string;
      readonly facts: CertificateFacts;
      readonly leaf: X509Certificate;
      /** The leaf's issuer (for CRL/OCSP), or null for a pinned self-signed certificate. */
      readonly issuer: X509Certificate | null;
      /** How it was trusted: `chain` to an anchor, or `pinned`. */
      readonly via: 'chain' | 'pinned';
    }
  | { readonly ok: false; readonly reason: CertificateRefusal; readonly detail: string; readonly facts: CertificateFacts | null };

export type RevocationStatus =
  | { readonly status: 'good'; readonly source: 'crl' | 'ocsp' | 'none' }
  | { readonly status: 'revoked'; readonly source: 'crl' | 'ocsp'; readonly detail: string }
  | { readonly status: 'unavailable'; readonly detail: string };
