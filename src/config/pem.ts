/**
 * PEM checks for certificate and key files, run at load so a bad file is a precise config error
 * instead of a TLS failure on the first connection. Messages never quote file contents.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import type { SigningAlgorithm } from './schema.ts';

const CERTIFICATE_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;
const PRIVATE_KEY_BLOCK = /-----BEGIN (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----/;

export type Parsed<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: string };

/** Every certificate of a PEM bundle, leaf first. At least one is required. */
export function parseCertificates(data: Buffer): Parsed<X509Certificate[]> {
  const blocks = data.toString('latin1').match(CERTIFICATE_BLOCK);
  if (!blocks) return { ok: false, reason: 'no PEM certificate (-----BEGIN CERTIFICATE-----) found' };
  const certificates: X509Certificate[] = [];
  for (const [index, block] of blocks.entries()) {
    try {
      certificates.push(new X509Certificate(block));
    } catch {
      return { ok: false, reason: `PEM certificate #${index + 1} cannot be parsed` };
    }
  }
  return { ok: true, value: certificates };
}

export function parsePrivateKey(data: Buffer): Parsed<KeyObject> {
  const text = data.toString('latin1');
  if (!PRIVATE_KEY_BLOCK.test(text)) return { ok: false, reason: 'no PEM private key (-----BEGIN PRIVATE KEY-----) found' };
  if (text.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----') || text.includes('Proc-Type: 4,ENCRYPTED')) {
    return { ok: false, reason: 'the private key is encrypted; Portcullis needs an unencrypted key file (protect it with file permissions)' };
  }
  try {
    return { ok: true, value: createPrivateKey(data) };
  } catch {
    return { ok: false, reason: 'the PEM private key cannot be parsed' };
  }
}

/** True when `key` is the private key of the certificate's public key. */
export function keyMatchesCertificate(certificate: X509Certificate, key: KeyObject): boolean {
  try {
    return certificate.checkPrivateKey(key);
  } catch {
    // Mismatched key types (an EC key for an RSA certificate) throw instead of returning false.
    return false;
  }
}

/** The key type (and curve) each JWS algorithm signs with: RFC 7518 §3.3–3.5, RFC 8037 §3.1. */
const KEY_FOR_ALGORITHM: Record<SigningAlgorithm, { readonly types: readonly string[]; readonly curve?: string; readonly label: string }> = {
  RS256: { types: ['rsa'], label: 'an RSA key' },
  RS384: { types: ['rsa'], label: 'an RSA key' },
  RS512: { types: ['rsa'], label: 'an RSA key' },
  PS256: { types: ['rsa', 'rsa-pss'], label: 'an RSA key' },
  PS384: { types: ['rsa', 'rsa-pss'], label: 'an RSA key' },
  PS512: { types: ['rsa', 'rsa-pss'], label: 'an RSA key' },
  ES256: { types: ['ec'], curve: 'prime256v1', label: 'an EC P-256 key' },
  ES384: { types: ['ec'], curve: 'secp384r1', label: 'an EC P-384 key' },
  ES512: { types: ['ec'], curve: 'secp521r1', label: 'an EC P-521 key' },
  // jose (which signs our assertions) implements EdDSA with Ed25519 only.
  EdDSA: { types: ['ed25519'], label: 'an Ed25519 key' },
};

/** RFC 7518 §3.3 and §3.5: RSA keys of 2048 bits or more. */
const MIN_RSA_BITS = 2048;

/** Null when `key` can sign with `alg`; otherwise why not. */
export function keyUsableWith(key: KeyObject, alg: SigningAlgorithm): string | null {
  const expected = KEY_FOR_ALGORITHM[alg];
  const type = key.asymmetricKeyType ?? 'unknown';
  const details = key.asymmetricKeyDetails ?? {};
  const actual = type === 'ec' ? `an EC key on curve ${details.namedCurve ?? 'unknown'}` : `a key of type ${type}`;
  if (!expected.types.includes(type) || (expected.curve !== undefined && details.namedCurve !== expected.curve)) {
    return `${alg} needs ${expected.label}, but the file holds ${actual}`;
  }
  if ((type === 'rsa' || type === 'rsa-pss') && (details.modulusLength ?? 0) < MIN_RSA_BITS) {
    return `the RSA key has ${details.modulusLength ?? 0} bits; ${alg} needs at least ${MIN_RSA_BITS}`;
  }
  return null;
}
