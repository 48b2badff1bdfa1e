/**
 * Every certificate the configuration names, read from the compiled snapshot (no file I/O: the
 * snapshot holds the PEM contents read at load), for `portcullis report certificates` and the
 * expiry gauge (issue 4: certificate lifecycle visibility). An expired partner CA or upstream
 * client certificate fails requests just as surely as an expired listener certificate; this
 * lists them all in one place, with the owner to call.
 *
 * A PEM bundle yields one entry per certificate: the first certificate of a served or presented
 * chain is the leaf (`listener_certificate`, `*_client_certificate`), the rest its chain
 * (`listener_chain`, `*_client_chain`); every certificate of a CA file is a CA. Pinned partner
 * fingerprints name a certificate the gateway never holds: they are listed with unknown dates.
 */
import { X509Certificate } from 'node:crypto';
import { certificateFacts } from './client-certificate.ts';
import type { Snapshot } from '../config/snapshot.ts';

export const INVENTORY_KINDS = [
  'listener_certificate',
  'listener_chain',
  'partner_ca',
  'partner_pin',
  'upstream_ca',
  'upstream_client_certificate',
  'upstream_client_chain',
  'issuer_ca',
  'introspection_ca',
  'introspection_client_certificate',
  'introspection_client_chain',
] as const;

export type InventoryKind = (typeof INVENTORY_KINDS)[number];

export interface InventoryEntry {
  readonly kind: InventoryKind;
  /** Listener name, partner id, upstream id, issuer id or introspection endpoint id. */
  readonly owner: string;
  /** RFC 4514 DN, most specific first (the form partner `subjects` patterns use); null for a pin. */
  readonly subject: string | null;
  readonly issuer: string | null;
  /** Lowercase hex without leading zeros; null for a pin. */
  readonly serial: string | null;
  /** SHA-256 of the DER, lowercase hex (a pin's value without `sha256:`). */
  readonly fingerprintSha256: string;
  /** ISO 8601; null when unknown (a pin). */
  readonly notBefore: string | null;
  readonly notAfter: string | null;
}

const CERTIFICATE_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** Every certificate `snapshot` names, in configuration order (listeners, partners, upstreams, issuers, introspection). */
export function certificateInventory(snapshot: Snapshot): InventoryEntry[] {
  const entries: InventoryEntry[] = [];
  const addChain = (pem: Buffer | null, leafKind: InventoryKind, chainKind: InventoryKind, owner: string): void => {
    if (pem === null) return;
    pemCertificates(pem).forEach((certificate, index) => entries.push(entryOf(certificate, index === 0 ? leafKind : chainKind, owner)));
  };
  const addAll = (certificates: readonly X509Certificate[], kind: InventoryKind, owner: string): void => {
    for (const certificate of certificates) entries.push(entryOf(certificate, kind, owner));
  };

  for (const listener of snapshot.listeners) {
    if (listener.tls !== null) addChain(listener.tls.cert, 'listener_certificate', 'listener_chain', listener.name);
  }
  for (const partner of snapshot.partners.values()) {
    if (partner.mtls === null) continue;
    addAll(partner.mtls.anchors, 'partner_ca', partner.id);
    for (const pin of partner.mtls.pinned) {
      entries.push({ kind: 'partner_pin', owner: partner.id, subject: null, issuer: null, serial: null, fingerprintSha256: pin, notBefore: null, notAfter: null });
    }
  }
  for (const upstream of snapshot.upstreams.values()) {
    if (upstream.tls === null) continue;
    if (upstream.tls.ca !== null) addAll(pemCertificates(upstream.tls.ca), 'upstream_ca', upstream.id);
    addChain(upstream.tls.cert, 'upstream_client_certificate', 'upstream_client_chain', upstream.id);
  }
  for (const issuer of snapshot.issuers.values()) {
    if (issuer.ca !== null) addAll(pemCertificates(issuer.ca), 'issuer_ca', issuer.id);
  }
  for (const endpoint of snapshot.introspection.values()) {
    if (endpoint.ca !== null) addAll(pemCertificates(endpoint.ca), 'introspection_ca', endpoint.id);
    if (endpoint.auth.method === 'tls_client_auth') addChain(endpoint.auth.cert, 'introspection_client_certificate', 'introspection_client_chain', endpoint.id);
  }
  return entries;
}

/**
 * The certificates of a PEM bundle. The configuration was validated, so every block parses; one
 * that does not (a file validation does not look into) is left out rather than reported with
 * invented dates.
 */
function pemCertificates(pem: Buffer): X509Certificate[] {
  const certificates: X509Certificate[] = [];
  for (const block of pem.toString('latin1').match(CERTIFICATE_BLOCK) ?? []) {
    try {
      certificates.push(new X509Certificate(block));
    } catch {
      // Left out (see above).
    }
  }
  return certificates;
}

function entryOf(certificate: X509Certificate, kind: InventoryKind, owner: string): InventoryEntry {
  const base = { kind, owner, notBefore: certificate.validFromDate.toISOString(), notAfter: certificate.validToDate.toISOString() };
  try {
    // The same names and serial as the transport-identity stage records, so a row of the report
    // can be matched with a decision record or pasted into a partner's `subjects`.
    const facts = certificateFacts(certificate);
    return { ...base, subject: facts.subject, issuer: facts.issuer, serial: facts.serial, fingerprintSha256: facts.fingerprintSha256 };
  } catch {
    // A certificate node parses but the stricter DER reader does not: node's own rendering.
    return {
      ...base,
      subject: certificate.subject.split('\n').reverse().join(','),
      issuer: certificate.issuer.split('\n').reverse().join(','),
      serial: certificate.serialNumber.toLowerCase().replace(/^0+(?=.)/, ''),
      fingerprintSha256: certificate.fingerprint256.replaceAll(':', '').toLowerCase(),
    };
  }
}

/** The earliest expiry per (kind, owner), in seconds since the epoch: the expiry gauge's series. Pins have none. */
export function earliestExpiries(entries: readonly InventoryEntry[]): Array<{ kind: InventoryKind; owner: string; notAfterSeconds: number }> {
  const earliest = new Map<string, { kind: InventoryKind; owner: string; notAfterSeconds: number }>();
  for (const entry of entries) {
    if (entry.notAfter === null) continue;
    const seconds = Date.parse(entry.notAfter) / 1000;
    const key = `${entry.kind}\n${entry.owner}`;
    const known = earliest.get(key);
    if (known === undefined || seconds < known.notAfterSeconds) earliest.set(key, { kind: entry.kind, owner: entry.owner, notAfterSeconds: seconds });
  }
  return [...earliest.values()];
}
