/**
 * PEM checks for certificate and key files, run at load so a bad file is a precise config error
 * instead of a TLS failure on the first connection. Messages never quote file contents.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';

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
