/**
 * Which partner a TLS client certificate authenticates (issue 4; SECURITY.md item 10 and MT-02;
 * RFC 8705 §2.1). Each partner is judged with its own trust only: its pinned fingerprints and its
 * own anchors. A chain is built from the leaf through the intermediates the client sent to one of
 * that partner's anchors (roots or intermediates), never through another partner's CA, so a CA
 * trusted for partner A cannot authenticate partner B. Then the RFC 5280 §6.1 checks that matter
 * for client authentication: signatures, validity windows, CA basic constraints and path length,
 * extended key usage and name constraints; then the partner's own name patterns.
 *
 * Policy choices, stricter than RFC 5280 where the RFC leaves room:
 * - The leaf must carry an extended key usage extension listing clientAuth. A leaf without the
 *   extension is refused (`tls.eku`) although RFC 5280 §4.2.1.12 reads absence as "any use", and
 *   anyExtendedKeyUsage alone is not enough: a partner's client certificate says what it is for.
 *   A CA whose EKU extension names neither clientAuth nor anyExtendedKeyUsage cannot issue client
 *   certificates (the nesting rule OpenSSL and Go apply).
 * - A leaf key usage extension, when present, must allow digitalSignature or keyAgreement (the
 *   TLS client signs the handshake; OpenSSL's SSL-client purpose check).
 * - An extension marked critical that this verifier does not process refuses the certificate
 *   (RFC 5280 §4.2). Certificate policies are recognised but not enforced (no policy OIDs are
 *   configured, RFC 5280 §6.1.1 user-initial-policy-set = anyPolicy).
 * - Name constraints (RFC 5280 §4.2.1.10) of every CA in the chain, anchors included, apply to
 *   every certificate below it (self-issued intermediates excepted). Supported forms: dNSName,
 *   uniformResourceIdentifier (host part), rfc822Name, iPAddress and directoryName. A constraint
 *   of another form refuses certificates carrying names of another form; a URI without a host
 *   fails any URI constraint; a leaf without DNS names has its host-like common names checked
 *   against DNS constraints, as OpenSSL does, so a CN cannot slip past them.
 * - Pinned certificates are still checked for validity, EKU and the partner's name patterns:
 *   a pin trusts the key and names in that certificate, not forever and not for any use.
 * - The pathLenConstraint counts every intermediate below the CA (self-issued ones too).
 *
 * Everything here is synchronous and does no I/O: it runs once per TLS connection (the
 * transport-identity stage caches the answer per socket). Anchors are parsed once (WeakMap), the
 * presented certificates once per call; at most 8 presented certificates are considered, paths are
 * at most 8 certificates long, and the search has a fixed budget, so a hostile client sending
 * look-alike CA certificates costs a bounded number of signature checks.
 */
import { createHash } from 'node:crypto';
import type { KeyObject, X509Certificate } from 'node:crypto';
import type { CertificateFacts, CertificateRefusal, IdentifyResult, PartnerTrust } from './types.ts';

/** Certificates considered from what the client sent (leaf first). */
const MAX_PRESENTED = 8;
/** Longest chain, leaf and anchor included. */
const MAX_CHAIN_LENGTH = 8;
/** Issuer checks (name/key-id match, then signature) per identification, across all partners. */
const MAX_ISSUER_CHECKS = 512;
/** Partial paths explored per identification, across all partners. */
const MAX_PATH_EXPANSIONS = 256;
/** Signature verdicts remembered across connections (a client reconnecting costs no new verification). */
const MAX_REMEMBERED_SIGNATURES = 4096;

const OID = {
  clientAuth: '1.3.6.1.5.5.7.3.2',
  anyExtendedKeyUsage: '2.5.29.37.0',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  nameConstraints: '2.5.29.30',
  crlDistributionPoints: '2.5.29.31',
  certificatePolicies: '2.5.29.32',
  policyMappings: '2.5.29.33',
  authorityKeyIdentifier: '2.5.29.35',
  policyConstraints: '2.5.29.36',
  extendedKeyUsage: '2.5.29.37',
  inhibitAnyPolicy: '2.5.29.54',
  authorityInfoAccess: '1.3.6.1.5.5.7.1.1',
  commonName: '2.5.4.3',
  emailAddress: '1.2.840.113549.1.9.1',
} as const;

/** Critical extensions this verifier understands (RFC 5280 §4.2: any other critical one refuses the certificate). */
const RECOGNISED_CRITICAL = new Set<string>([
  OID.subjectKeyIdentifier,
  OID.keyUsage,
  OID.subjectAltName,
  OID.basicConstraints,
  OID.nameConstraints,
  OID.crlDistributionPoints,
  OID.certificatePolicies,
  OID.policyMappings,
  OID.authorityKeyIdentifier,
  OID.policyConstraints,
  OID.extendedKeyUsage,
  OID.inhibitAnyPolicy,
  OID.authorityInfoAccess,
]);

/** RFC 5280 §4.2.1.3 bit numbers. */
const KEY_USAGE = { digitalSignature: 0, keyAgreement: 4, keyCertSign: 5 } as const;

/** RFC 4514 §3 short names, plus the ones OpenSSL prints; anything else is written as a dotted OID. */
const ATTRIBUTE_NAMES: ReadonlyArray<readonly [string, string]> = [
  ['CN', '2.5.4.3'],
  ['SN', '2.5.4.4'],
  ['serialNumber', '2.5.4.5'],
  ['C', '2.5.4.6'],
  ['L', '2.5.4.7'],
  ['ST', '2.5.4.8'],
  ['STREET', '2.5.4.9'],
  ['O', '2.5.4.10'],
  ['OU', '2.5.4.11'],
  ['title', '2.5.4.12'],
  ['postalCode', '2.5.4.17'],
  ['name', '2.5.4.41'],
  ['GN', '2.5.4.42'],
  ['initials', '2.5.4.43'],
  ['generationQualifier', '2.5.4.44'],
  ['dnQualifier', '2.5.4.46'],
  ['pseudonym', '2.5.4.65'],
  ['organizationIdentifier', '2.5.4.97'],
  ['DC', '0.9.2342.19200300.100.1.25'],
  ['UID', '0.9.2342.19200300.100.1.1'],
  ['emailAddress', OID.emailAddress],
];
const NAME_BY_OID = new Map(ATTRIBUTE_NAMES.map(([name, oid]) => [oid, name]));
const OID_BY_NAME = new Map(ATTRIBUTE_NAMES.flatMap(([name, oid]) => [[name.toLowerCase(), oid] as const]));
// Aliases OpenSSL accepts on input.
OID_BY_NAME.set('givenname', '2.5.4.42');
OID_BY_NAME.set('surname', '2.5.4.4');
OID_BY_NAME.set('e', OID.emailAddress);

// --- Public API ------------------------------------------------------------------------------

/** What a certificate says (fingerprints, names, serial, validity). Throws a TypeError if it cannot be parsed. */
export function certificateFacts(leaf: X509Certificate): CertificateFacts {
  return parsedCertificate(leaf).facts;
}

/**
 * Identifies the partner that `presented` (leaf first, as the client sent them) authenticates
 * among `trusts`, at `nowMs`. Exactly one partner accepting is a success; none gives the most
 * specific refusal (a partner whose anchors issued the chain beats "untrusted CA"); more than one
 * is `tls.partner_ambiguous`, since a certificate must name one partner.
 */
export function identifyClient(presented: readonly X509Certificate[], trusts: readonly PartnerTrust[], nowMs: number): IdentifyResult {
  if (presented.length === 0) return refuse('tls.certificate_missing', 'no client certificate was presented', null);
  let leaf: ParsedCertificate;
  try {
    leaf = parsedCertificate(presented[0]!);
  } catch (error) {
    return refuse('tls.untrusted_ca', `the client certificate cannot be parsed: ${(error as Error).message}`, null);
  }
  // The leaf's own DER again further up would only let a path loop back.
  const seen = new Set([leaf.fingerprint]);
  const intermediates: ParsedCertificate[] = [];
  for (const certificate of presented.slice(1, MAX_PRESENTED)) {
    const parsed = tryParse(certificate);
    if (parsed === null || seen.has(parsed.fingerprint)) continue;
    seen.add(parsed.fingerprint);
    intermediates.push(parsed);
  }

  const search = new SearchBudget();
  const accepted: Array<{ partnerId: string; issuer: ParsedCertificate | null; via: 'chain' | 'pinned' }> = [];
  let best: Failure | null = null;
  for (const trust of trusts) {
    const outcome = judgePartner(leaf, intermediates, trust, nowMs, search);
    if (outcome.ok) accepted.push({ partnerId: trust.partnerId, issuer: outcome.issuer, via: outcome.via });
    else if (outcome.failure !== null) best = moreSpecific(best, { ...outcome.failure, detail: `partner "${trust.partnerId}": ${outcome.failure.detail}` });
  }

  if (accepted.length === 1) {
    const [only] = accepted as [(typeof accepted)[number]];
    return { ok: true, partnerId: only.partnerId, facts: leaf.facts, leaf: leaf.certificate, issuer: only.issuer?.certificate ?? null, via: only.via };
  }
  if (accepted.length > 1) {
    return refuse('tls.partner_ambiguous', `the certificate authenticates several partners (${accepted.map((entry) => `"${entry.partnerId}"`).join(', ')}); their name patterns must tell them apart`, leaf.facts);
  }
  if (best === null) {
    const budget = search.exhausted ? ' (chain search budget exhausted)' : '';
    return refuse('tls.untrusted_ca', `no partner's CA certificates or pins trust this certificate${budget}`, leaf.facts);
  }
  return refuse(best.reason, best.detail, leaf.facts);
}

/**
 * Why a configured name pattern is unusable, or null when it is fine — for the configuration
 * checks, so a pattern that could never match is a load-time error rather than a silent refusal.
 */
export function namePatternProblem(kind: 'subject' | 'san_dns' | 'san_uri', pattern: string): string | null {
  try {
    if (kind === 'subject') compileSubjectPattern(pattern);
    else if (kind === 'san_dns') compileDnsPattern(pattern);
    else compileUriPattern(pattern);
    return null;
  } catch (error) {
    return (error as Error).message;
  }
}

// --- Judging one partner ---------------------------------------------------------------------

interface Failure {
  readonly reason: CertificateRefusal;
  readonly detail: string;
}

type PartnerOutcome =
  | { readonly ok: true; readonly issuer: ParsedCertificate | null; readonly via: 'chain' | 'pinned' }
  /** failure null: this partner's anchors and pins do not reach the certificate at all. */
  | { readonly ok: false; readonly failure: Failure | null };

/** How far a refusal got: the further, the more it says about the certificate. */
const SPECIFICITY: Readonly<Record<CertificateRefusal, number>> = {
  'tls.certificate_missing': 0,
  'tls.partner_ambiguous': 0,
  'tls.untrusted_ca': 1,
  'tls.cert_expired': 2,
  'tls.cert_not_yet_valid': 2,
  'tls.eku': 3,
  'tls.name_constraints': 4,
  'tls.name_mismatch': 5,
};

function moreSpecific(current: Failure | null, candidate: Failure): Failure {
  return current === null || SPECIFICITY[candidate.reason] > SPECIFICITY[current.reason] ? candidate : current;
}

function judgePartner(leaf: ParsedCertificate, intermediates: readonly ParsedCertificate[], trust: PartnerTrust, nowMs: number, search: SearchBudget): PartnerOutcome {
  const anchors = trust.anchors.map(tryParse).filter((anchor): anchor is ParsedCertificate => anchor !== null);
  const anchorFingerprints = new Set(anchors.map((anchor) => anchor.fingerprint));
  // A presented copy of an anchor is the anchor: the path ends there.
  const candidates = intermediates.filter((intermediate) => !anchorFingerprints.has(intermediate.fingerprint));
  let best: Failure | null = null;

  const extend = (path: readonly ParsedCertificate[]): readonly ParsedCertificate[] | null => {
    if (!search.expand()) return null;
    const current = path[path.length - 1]!;
    for (const anchor of anchors) {
      if (path.includes(anchor) || !search.issued(current, anchor)) continue;
      const complete = [...path, anchor];
      const failure = checkPath(complete, nowMs);
      if (failure === null) return complete;
      best = moreSpecific(best, failure);
    }
    // Room for one more intermediate and then an anchor.
    if (path.length + 2 > MAX_CHAIN_LENGTH) return null;
    for (const intermediate of candidates) {
      if (path.includes(intermediate) || !search.issued(current, intermediate)) continue;
      const found = extend([...path, intermediate]);
      if (found !== null) return found;
    }
    return null;
  };

  const chain = anchors.length > 0 ? extend([leaf]) : null;
  let trusted: PartnerOutcome | null = null;
  if (chain !== null) {
    trusted = { ok: true, issuer: chain[1]!, via: 'chain' };
  } else if (trust.pinned.has(leaf.fingerprint)) {
    const failure = checkPath([leaf], nowMs);
    if (failure === null) trusted = { ok: true, issuer: pinnedIssuer(leaf, [...candidates, ...anchors], search), via: 'pinned' };
    else best = moreSpecific(best, failure);
  }
  if (trusted === null) return { ok: false, failure: best };

  const mismatch = nameMismatch(leaf, compiledPatterns(trust));
  return mismatch === null ? trusted : { ok: false, failure: { reason: 'tls.name_mismatch', detail: mismatch } };
}

/** The issuer of a pinned certificate, for revocation checks: null when it is self-signed or its issuer was not sent. */
function pinnedIssuer(leaf: ParsedCertificate, candidates: readonly ParsedCertificate[], search: SearchBudget): ParsedCertificate | null {
  if (leaf.selfIssued) return null;
  return candidates.find((candidate) => search.issued(leaf, candidate)) ?? null;
}

/**
 * The RFC 5280 §6.1 checks of one path (leaf first, anchor last; a pinned leaf alone), in the
 * order of SPECIFICITY so the first failure found is the least specific one on this path.
 */
function checkPath(path: readonly ParsedCertificate[], nowMs: number): Failure | null {
  const leaf = path[0]!;
  for (const certificate of path) {
    if (certificate.unrecognisedCritical !== null) {
      return { reason: 'tls.untrusted_ca', detail: `${describe(certificate, leaf)} has a critical extension this gateway does not process (${certificate.unrecognisedCritical})` };
    }
  }
  let intermediatesBelow = 0;
  for (let index = 1; index < path.length; index += 1) {
    const ca = path[index]!;
    if (ca.basicConstraints === null || !ca.basicConstraints.ca) return { reason: 'tls.untrusted_ca', detail: `${describe(ca, leaf)} is not a CA (basicConstraints CA:TRUE missing)` };
    if (ca.keyUsage !== null && !hasBit(ca.keyUsage, KEY_USAGE.keyCertSign)) return { reason: 'tls.untrusted_ca', detail: `${describe(ca, leaf)} may not sign certificates (keyUsage without keyCertSign)` };
    const pathLength = ca.basicConstraints.pathLength;
    if (pathLength !== null && intermediatesBelow > pathLength) {
      return { reason: 'tls.untrusted_ca', detail: `${describe(ca, leaf)} allows ${pathLength} intermediate CA(s) below it, the chain has ${intermediatesBelow}` };
    }
    intermediatesBelow += 1;
  }

  for (const certificate of path) {
    if (nowMs < certificate.notBeforeMs) {
      return { reason: 'tls.cert_not_yet_valid', detail: `${describe(certificate, leaf)} is not valid before ${new Date(certificate.notBeforeMs).toISOString()}` };
    }
    if (nowMs > certificate.notAfterMs) {
      return { reason: 'tls.cert_expired', detail: `${describe(certificate, leaf)} expired at ${new Date(certificate.notAfterMs).toISOString()}` };
    }
  }

  if (leaf.extendedKeyUsage === null) return { reason: 'tls.eku', detail: 'the certificate has no extended key usage extension; clientAuth is required' };
  if (!leaf.extendedKeyUsage.includes(OID.clientAuth)) {
    return { reason: 'tls.eku', detail: `the certificate's extended key usage (${leaf.extendedKeyUsage.join(', ')}) does not include clientAuth` };
  }
  if (leaf.keyUsage !== null && !hasBit(leaf.keyUsage, KEY_USAGE.digitalSignature) && !hasBit(leaf.keyUsage, KEY_USAGE.keyAgreement)) {
    return { reason: 'tls.eku', detail: 'the certificate\'s key usage allows neither digitalSignature nor keyAgreement' };
  }
  for (const ca of path.slice(1)) {
    const usages = ca.extendedKeyUsage;
    if (usages !== null && !usages.includes(OID.clientAuth) && !usages.includes(OID.anyExtendedKeyUsage)) {
      return { reason: 'tls.eku', detail: `${describe(ca, leaf)} restricts its extended key usage to ${usages.join(', ')}, without clientAuth` };
    }
  }

  for (let index = path.length - 1; index >= 1; index -= 1) {
    const constraints = path[index]!.nameConstraints;
    if (constraints === null) continue;
    for (let below = index - 1; below >= 0; below -= 1) {
      const subject = path[below]!;
      // RFC 5280 §6.1.3 (b)/(c): self-issued intermediates are exempt, the leaf never is.
      if (below > 0 && subject.selfIssued) continue;
      const violation = nameConstraintViolation(constraints, subject, below === 0);
      if (violation !== null) return { reason: 'tls.name_constraints', detail: `${describe(subject, leaf)} violates the name constraints of ${describe(path[index]!, leaf)}: ${violation}` };
    }
  }
  return null;
}

function describe(certificate: ParsedCertificate, leaf: ParsedCertificate): string {
  return certificate === leaf ? 'the certificate' : `CA certificate "${certificate.facts.subject}"`;
}

/**
 * Verdicts of "issuer signed child", keyed by the SHA-256 of both DER encodings, so the same pair
 * of certificates is never verified twice in this process. Oldest first out.
 */
const rememberedSignatures = new Map<string, boolean>();

function issuedBy(child: ParsedCertificate, issuer: ParsedCertificate): boolean {
  const key = `${child.fingerprint}:${issuer.fingerprint}`;
  const known = rememberedSignatures.get(key);
  if (known !== undefined) return known;
  let verdict = false;
  try {
    // checkIssued: issuer name and key identifiers match (cheap); verify: the signature (costly).
    verdict = child.certificate.checkIssued(issuer.certificate) && child.certificate.verify(issuer.publicKey());
  } catch {
    verdict = false;
  }
  if (rememberedSignatures.size >= MAX_REMEMBERED_SIGNATURES) rememberedSignatures.delete(rememberedSignatures.keys().next().value!);
  rememberedSignatures.set(key, verdict);
  return verdict;
}

/** Issuer checks with a memo (each pair is checked once across partners) and a budget. */
class SearchBudget {
  #checks = 0;
  #expansions = 0;
  #memo = new Map<string, boolean>();
  exhausted = false;

  expand(): boolean {
    this.#expansions += 1;
    if (this.#expansions > MAX_PATH_EXPANSIONS) this.exhausted = true;
    return !this.exhausted;
  }

  issued(child: ParsedCertificate, issuer: ParsedCertificate): boolean {
    const key = `${child.id}:${issuer.id}`;
    const known = this.#memo.get(key);
    if (known !== undefined) return known;
    this.#checks += 1;
    if (this.#checks > MAX_ISSUER_CHECKS) {
      this.exhausted = true;
      return false;
    }
    const verdict = issuedBy(child, issuer);
    this.#memo.set(key, verdict);
    return verdict;
  }
}

function refuse(reason: CertificateRefusal, detail: string, facts: CertificateFacts | null): IdentifyResult {
  return { ok: false, reason, detail, facts };
}

// --- Name constraints (RFC 5280 §4.2.1.10) ---------------------------------------------------

type GeneralName =
  | { readonly kind: 'dns' | 'uri' | 'email'; readonly value: string }
  | { readonly kind: 'ip'; readonly value: Buffer }
  | { readonly kind: 'dn'; readonly value: readonly Rdn[] }
  | { readonly kind: 'other'; readonly tag: number };

interface NameConstraints {
  readonly permitted: readonly GeneralName[];
  readonly excluded: readonly GeneralName[];
}

function nameConstraintViolation(constraints: NameConstraints, certificate: ParsedCertificate, isLeaf: boolean): string | null {
  const names = constrainedNames(certificate, isLeaf);
  for (const kind of ['dns', 'uri', 'email', 'ip', 'dn', 'other'] as const) {
    const ofKind = names.filter((name) => name.kind === kind);
    if (ofKind.length === 0) continue;
    const permitted = constraints.permitted.filter((subtree) => subtree.kind === kind);
    const excluded = constraints.excluded.filter((subtree) => subtree.kind === kind);
    if (kind === 'other') {
      // Forms we cannot evaluate: refuse rather than guess (fail closed).
      if (permitted.length > 0 || excluded.length > 0) return 'a name form the gateway cannot check is constrained';
      continue;
    }
    for (const name of ofKind) {
      const shown = showName(name);
      if (name.kind === 'uri' && uriHost(name.value) === null && (permitted.length > 0 || excluded.length > 0)) return `${shown} has no host to check against the URI constraints`;
      if (excluded.some((subtree) => withinSubtree(name, subtree))) return `${shown} is in an excluded subtree`;
      if (permitted.length > 0 && !permitted.some((subtree) => withinSubtree(name, subtree))) return `${shown} is outside the permitted subtrees`;
    }
  }
  return null;
}

/** The names constraints apply to: SANs, the subject DN, its emailAddress attributes, and (leaf without DNS SAN) host-like CNs. */
function constrainedNames(certificate: ParsedCertificate, isLeaf: boolean): GeneralName[] {
  const names: GeneralName[] = [...certificate.subjectAltNames];
  if (certificate.subject.length > 0) names.push({ kind: 'dn', value: certificate.subject });
  for (const rdn of certificate.subject) {
    for (const attribute of rdn) {
      if (attribute.oid === OID.emailAddress && !attribute.hex) names.push({ kind: 'email', value: attribute.value });
    }
  }
  if (isLeaf && !certificate.subjectAltNames.some((name) => name.kind === 'dns')) {
    for (const rdn of certificate.subject) {
      for (const attribute of rdn) {
        if (attribute.oid === OID.commonName && !attribute.hex && /^[a-z0-9_*-]+(\.[a-z0-9_-]+)+\.?$/i.test(attribute.value)) names.push({ kind: 'dns', value: attribute.value });
      }
    }
  }
  return names;
}

function withinSubtree(name: GeneralName, subtree: GeneralName): boolean {
  if (name.kind === 'dns' && subtree.kind === 'dns') return dnsWithin(name.value, subtree.value);
  if (name.kind === 'uri' && subtree.kind === 'uri') {
    // RFC 5280: a URI constraint applies to the host (URIs without one are refused before this).
    const host = uriHost(name.value);
    return host !== null && hostWithin(host, subtree.value);
  }
  if (name.kind === 'email' && subtree.kind === 'email') return emailWithin(name.value, subtree.value);
  if (name.kind === 'ip' && subtree.kind === 'ip') return ipWithin(name.value, subtree.value);
  if (name.kind === 'dn' && subtree.kind === 'dn') return dnWithin(name.value, subtree.value);
  return false;
}

function dnsWithin(name: string, constraint: string): boolean {
  const host = name.toLowerCase().replace(/\.$/, '');
  const base = constraint.toLowerCase();
  if (base === '') return true;
  // ".example.com" (common practice, not in RFC 5280): subdomains only.
  if (base.startsWith('.')) return host.endsWith(base) && host.length > base.length;
  return host === base || host.endsWith(`.${base}`);
}

function hostWithin(host: string, constraint: string): boolean {
  const base = constraint.toLowerCase();
  if (base === '') return true;
  // RFC 5280: ".example.com" = any subdomain; otherwise the complete host.
  if (base.startsWith('.')) return host.endsWith(base) && host.length > base.length;
  return host === base;
}

function emailWithin(address: string, constraint: string): boolean {
  const at = address.lastIndexOf('@');
  if (at <= 0) return false;
  const local = address.slice(0, at);
  const domain = address.slice(at + 1).toLowerCase();
  const constraintAt = constraint.lastIndexOf('@');
  if (constraintAt >= 0) return local === constraint.slice(0, constraintAt) && domain === constraint.slice(constraintAt + 1).toLowerCase();
  return hostWithin(domain, constraint);
}

function ipWithin(address: Buffer, constraint: Buffer): boolean {
  if (constraint.length !== address.length * 2) return false;
  for (let index = 0; index < address.length; index += 1) {
    const mask = constraint[address.length + index]!;
    if ((address[index]! & mask) !== (constraint[index]! & mask)) return false;
  }
  return true;
}

function dnWithin(subject: readonly Rdn[], base: readonly Rdn[]): boolean {
  if (base.length > subject.length) return false;
  return base.every((rdn, index) => {
    const other = subject[index]!;
    return rdn.length === other.length && rdn.every((attribute) => other.some((candidate) => candidate.oid === attribute.oid && normaliseValue(candidate.value) === normaliseValue(attribute.value)));
  });
}

/** The lowercase host of a URI with an authority, without userinfo or port; null when it has none (or an IP literal). */
function uriHost(uri: string): string | null {
  const match = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)/i.exec(uri);
  if (!match) return null;
  const authority = match[1]!.slice(match[1]!.lastIndexOf('@') + 1);
  if (authority.startsWith('[')) return null;
  const host = authority.replace(/:\d*$/, '').toLowerCase();
  return host === '' ? null : host;
}

function showName(name: GeneralName): string {
  switch (name.kind) {
    case 'dns':
      return `DNS name "${name.value}"`;
    case 'uri':
      return `URI "${name.value}"`;
    case 'email':
      return `email "${name.value}"`;
    case 'ip':
      return `IP address ${name.value.length === 4 ? [...name.value].join('.') : name.value.toString('hex')}`;
    case 'dn':
      return `directory name "${formatName(name.value)}"`;
    default:
      return 'a name';
  }
}

// --- Partner name patterns -------------------------------------------------------------------

interface SubjectPattern {
  readonly rdns: ReadonlyArray<ReadonlyArray<{ readonly oid: string; readonly value: RegExp }>>;
}

interface CompiledPatterns {
  readonly subjects: readonly SubjectPattern[] | null;
  readonly sanDns: readonly RegExp[] | null;
  readonly sanUri: readonly RegExp[] | null;
}

const patternCache = new WeakMap<PartnerTrust, CompiledPatterns>();

function compiledPatterns(trust: PartnerTrust): CompiledPatterns {
  let compiled = patternCache.get(trust);
  if (compiled === undefined) {
    // An invalid pattern matches nothing (fail closed); the configuration checks report it (namePatternProblem).
    const each = <T>(patterns: readonly string[] | null, compile: (pattern: string) => T): T[] | null =>
      patterns === null
        ? null
        : patterns.flatMap((pattern) => {
            try {
              return [compile(pattern)];
            } catch {
              return [];
            }
          });
    compiled = { subjects: each(trust.subjects, compileSubjectPattern), sanDns: each(trust.sanDns, compileDnsPattern), sanUri: each(trust.sanUri, compileUriPattern) };
    patternCache.set(trust, compiled);
  }
  return compiled;
}

/** Every list the partner gives must be matched by at least one of the certificate's names (RFC 8705 §2.1.2). */
function nameMismatch(leaf: ParsedCertificate, patterns: CompiledPatterns): string | null {
  if (patterns.subjects !== null && !patterns.subjects.some((pattern) => subjectMatches(leaf.subject, pattern))) {
    return `subject "${leaf.facts.subject}" matches none of the partner's subject patterns`;
  }
  if (patterns.sanDns !== null && !leaf.facts.sanDns.some((name) => patterns.sanDns!.some((pattern) => pattern.test(name.toLowerCase())))) {
    return `DNS names [${leaf.facts.sanDns.join(', ')}] match none of the partner's san_dns patterns`;
  }
  if (patterns.sanUri !== null && !leaf.facts.sanUri.some((uri) => patterns.sanUri!.some((pattern) => pattern.test(normaliseUri(uri))))) {
    return `URIs [${leaf.facts.sanUri.join(', ')}] match none of the partner's san_uri patterns`;
  }
  return null;
}

const escapeRegExp = (text: string): string => text.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');

/** `*` stands for one whole label or part of one (`*.acme.example`, `client-*.acme.example`); case-insensitive. */
function compileDnsPattern(pattern: string): RegExp {
  const lower = pattern.toLowerCase();
  if (!/^[a-z0-9_*-]+(\.[a-z0-9_*-]+)*$/.test(lower)) throw new TypeError(`"${pattern}" is not a DNS name pattern (labels of letters, digits, "-", "_" or "*", separated by single dots)`);
  if (/\*\*/.test(lower)) throw new TypeError(`"${pattern}": "**" is not a pattern`);
  return new RegExp(`^${lower.split('*').map(escapeRegExp).join('[a-z0-9_-]+')}$`);
}

/**
 * `*` stands for one path segment (`spiffe://acme.example/ns/*`), or for one DNS label within the
 * authority. Scheme and host compare case-insensitively (RFC 3986 §6.2.2.1), the rest exactly.
 */
function compileUriPattern(pattern: string): RegExp {
  if (!/^[a-z][a-z0-9+.-]*:\S+$/i.test(pattern)) throw new TypeError(`"${pattern}" is not a URI pattern (scheme:…, no spaces)`);
  if (/\*\*/.test(pattern)) throw new TypeError(`"${pattern}": "**" is not a pattern`);
  const normalised = normaliseUri(pattern);
  const authority = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/.exec(normalised)?.[0] ?? '';
  const rest = normalised.slice(authority.length);
  // A path segment, but never "." or ".." (they would name another path after normalisation).
  const segment = '(?!\\.\\.?(?:[/?#]|$))[^/?#]+';
  const source = authority.split('*').map(escapeRegExp).join('[a-z0-9_-]+') + rest.split('*').map(escapeRegExp).join(segment);
  return new RegExp(`^${source}$`);
}

function normaliseUri(uri: string): string {
  const match = /^([a-z][a-z0-9+.-]*:)(\/\/[^/?#]*)?([\s\S]*)$/i.exec(uri);
  return match ? `${match[1]!.toLowerCase()}${(match[2] ?? '').toLowerCase()}${match[3]}` : uri;
}

/**
 * A subject DN, as RFC 4514 writes it (`CN=orders-client,O=Acme`, most specific first) or as
 * node's `X509Certificate.subject` prints it (one attribute per line, in certificate order). The
 * whole DN must match; `*` stands for one or more characters within one attribute value, `\*` is
 * a literal asterisk. Values compare case-insensitively with spaces collapsed (RFC 4517 caseIgnoreMatch).
 */
function compileSubjectPattern(pattern: string): SubjectPattern {
  const multiline = pattern.includes('\n');
  const rdnTexts = splitUnescaped(pattern.trim(), multiline ? '\n' : ',');
  if (!multiline) rdnTexts.reverse();
  const rdns = rdnTexts.map((rdnText) =>
    splitUnescaped(rdnText, '+').map((attributeText) => {
      const equals = indexOfUnescaped(attributeText, '=');
      if (equals <= 0) throw new TypeError(`"${attributeText.trim()}" is not an attribute (TYPE=value)`);
      const type = attributeText.slice(0, equals).trim();
      const oid = /^\d+(\.\d+)+$/.test(type) ? type : OID_BY_NAME.get(type.toLowerCase());
      if (oid === undefined) throw new TypeError(`unknown attribute type "${type}" (use a dotted OID)`);
      return { oid, value: valuePattern(attributeText.slice(equals + 1)) };
    }),
  );
  if (rdns.length === 0) throw new TypeError('empty subject pattern');
  return { rdns };
}

function valuePattern(escapedValue: string): RegExp {
  // Split into literal runs and wildcards, honouring RFC 4514 escapes (\, \+ \\ … and \XX hex pairs of UTF-8).
  const parts: Array<string | null> = [];
  let bytes: number[] = [];
  const flush = (): void => {
    if (bytes.length > 0) parts.push(new TextDecoder('utf-8', { fatal: true }).decode(new Uint8Array(bytes)));
    bytes = [];
  };
  const text = escapedValue.replace(/^[ \t]+/, '').replace(/(?<!\\)[ \t]+$/, '');
  for (let index = 0; index < text.length; index += 1) {
    const char = text[index]!;
    if (char === '\\') {
      const pair = text.slice(index + 1, index + 3);
      if (/^[0-9a-f]{2}$/i.test(pair)) {
        bytes.push(Number.parseInt(pair, 16));
        index += 2;
      } else if (index + 1 < text.length) {
        bytes.push(...Buffer.from(text[index + 1]!, 'utf8'));
        index += 1;
      } else {
        throw new TypeError('a value ends with a lone backslash');
      }
    } else if (char === '*') {
      flush();
      if (parts.at(-1) === null) throw new TypeError('"**" is not a pattern');
      parts.push(null);
    } else {
      bytes.push(...Buffer.from(char, 'utf8'));
    }
  }
  flush();
  if (parts.length === 0) throw new TypeError('an attribute value is empty');
  // Literal runs are folded like the values they are compared with; the whole value is already trimmed.
  const source = parts.map((part) => (part === null ? '.+' : escapeRegExp(part.replace(/\s+/g, ' ').toLowerCase()))).join('');
  return new RegExp(`^${source}$`, 's');
}

function splitUnescaped(text: string, separator: string): string[] {
  const parts: string[] = [];
  let start = 0;
  for (let index = 0; index < text.length; index += 1) {
    if (text[index] === '\\') index += 1;
    else if (text[index] === separator) {
      parts.push(text.slice(start, index));
      start = index + 1;
    }
  }
  parts.push(text.slice(start));
  return parts.map((part) => {
    // Trailing spaces stay when escaped (RFC 4514 `\ `).
    const trimmed = part.replace(/^\s+/, '').replace(/(?<!\\)\s+$/, '');
    if (trimmed === '') throw new TypeError('an empty name component');
    return trimmed;
  });
}

function indexOfUnescaped(text: string, char: string): number {
  for (let index = 0; index < text.length; index += 1) {
    if (text[index] === '\\') index += 1;
    else if (text[index] === char) return index;
  }
  return -1;
}

function subjectMatches(subject: readonly Rdn[], pattern: SubjectPattern): boolean {
  if (subject.length !== pattern.rdns.length) return false;
  return pattern.rdns.every((patternRdn, index) => {
    const rdn = subject[index]!;
    if (rdn.length !== patternRdn.length) return false;
    const unused = [...rdn];
    return patternRdn.every((expected) => {
      const at = unused.findIndex((attribute) => attribute.oid === expected.oid && expected.value.test(normaliseValue(attribute.value)));
      if (at < 0) return false;
      unused.splice(at, 1);
      return true;
    });
  });
}

function normaliseValue(value: string): string {
  return value.trim().replace(/\s+/g, ' ').toLowerCase();
}

// --- Parsing (DER, RFC 5280 §4.1) ------------------------------------------------------------

interface Attribute {
  readonly oid: string;
  /** The decoded string, or `#` and the hex of the DER for a value that is not a string (RFC 4514 §2.4). */
  readonly value: string;
  readonly hex: boolean;
}
type Rdn = readonly Attribute[];

interface ParsedCertificate {
  /** Per-process id, for the issuer-check memo. */
  readonly id: number;
  readonly certificate: X509Certificate;
  readonly fingerprint: string;
  readonly facts: CertificateFacts;
  readonly subject: readonly Rdn[];
  readonly selfIssued: boolean;
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
  readonly basicConstraints: { readonly ca: boolean; readonly pathLength: number | null } | null;
  /** Key usage bits (bit n of RFC 5280 §4.2.1.3 = 1 << n), null without the extension. */
  readonly keyUsage: number | null;
  readonly extendedKeyUsage: readonly string[] | null;
  readonly subjectAltNames: readonly GeneralName[];
  readonly nameConstraints: NameConstraints | null;
  /** The OID of the first critical extension not processed here, or null. */
  readonly unrecognisedCritical: string | null;
  /** The certificate's public key (node builds a new KeyObject on every `publicKey` read). */
  publicKey(): KeyObject;
}

const parsedCache = new WeakMap<X509Certificate, ParsedCertificate>();
let nextId = 1;

function tryParse(certificate: X509Certificate): ParsedCertificate | null {
  try {
    return parsedCertificate(certificate);
  } catch {
    return null;
  }
}

function parsedCertificate(certificate: X509Certificate): ParsedCertificate {
  let parsed = parsedCache.get(certificate);
  if (parsed === undefined) {
    try {
      parsed = parseCertificate(certificate);
    } catch (error) {
      throw new TypeError(error instanceof DerError ? error.message : `malformed certificate (${(error as Error).message})`);
    }
    parsedCache.set(certificate, parsed);
  }
  return parsed;
}

class DerError extends Error {}

interface Tlv {
  readonly tag: number;
  /** Where the TLV begins (its tag byte). */
  readonly offset: number;
  /** Where its contents begin. */
  readonly start: number;
  readonly end: number;
}

function readTlv(der: Uint8Array, offset: number, limit: number): Tlv {
  if (offset + 2 > limit) throw new DerError('truncated DER');
  const tag = der[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError('unsupported DER tag');
  let length = der[offset + 1]!;
  let start = offset + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0 || count > 4) throw new DerError('unsupported DER length');
    if (start + count > limit) throw new DerError('truncated DER');
    length = 0;
    for (let index = 0; index < count; index += 1) length = length * 256 + der[start + index]!;
    start += count;
  }
  const end = start + length;
  if (end > limit) throw new DerError('truncated DER');
  return { tag, offset, start, end };
}

function children(der: Uint8Array, parent: Tlv): Tlv[] {
  const found: Tlv[] = [];
  for (let offset = parent.start; offset < parent.end; ) {
    const child = readTlv(der, offset, parent.end);
    found.push(child);
    offset = child.end;
  }
  return found;
}

function expectTag(tlv: Tlv | undefined, tag: number, what: string): Tlv {
  if (tlv === undefined || tlv.tag !== tag) throw new DerError(`malformed ${what}`);
  return tlv;
}

function decodeOid(der: Uint8Array, tlv: Tlv): string {
  expectTag(tlv, 0x06, 'object identifier');
  if (tlv.end === tlv.start || tlv.end - tlv.start > 64 || der[tlv.end - 1]! & 0x80) throw new DerError('malformed object identifier');
  const arcs: number[] = [];
  let value = 0;
  let arcStart = true;
  for (let index = tlv.start; index < tlv.end; index += 1) {
    const byte = der[index]!;
    if (arcStart && byte === 0x80) throw new DerError('malformed object identifier');
    value = value * 128 + (byte & 0x7f);
    if (value > Number.MAX_SAFE_INTEGER / 128) throw new DerError('malformed object identifier');
    arcStart = (byte & 0x80) === 0;
    if (arcStart) {
      arcs.push(value);
      value = 0;
    }
  }
  const first = arcs[0]!;
  const root = first < 40 ? 0 : first < 80 ? 1 : 2;
  return [root, first - root * 40, ...arcs.slice(1)].join('.');
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A directory string (RFC 5280 §4.1.2.4), or null for a value of another ASN.1 type. */
function decodeString(der: Uint8Array, tlv: Tlv): string | null {
  const bytes = der.subarray(tlv.start, tlv.end);
  switch (tlv.tag) {
    case 0x0c: // UTF8String
      try {
        return utf8.decode(bytes);
      } catch {
        throw new DerError('invalid UTF-8 in a name');
      }
    case 0x12: // NumericString
    case 0x13: // PrintableString
    case 0x16: // IA5String
    case 0x1a: // VisibleString
    case 0x14: // TeletexString (T.61; Latin-1 is what every other verifier assumes)
      return Buffer.from(bytes).toString('latin1');
    case 0x1e: {
      // BMPString: UCS-2, big-endian.
      if (bytes.length % 2 !== 0) throw new DerError('malformed BMPString');
      const swapped = Buffer.from(bytes);
      swapped.swap16();
      return swapped.toString('utf16le');
    }
    case 0x1c: {
      // UniversalString: UCS-4, big-endian.
      if (bytes.length % 4 !== 0) throw new DerError('malformed UniversalString');
      let text = '';
      for (let index = 0; index < bytes.length; index += 4) {
        const codePoint = Buffer.from(bytes.subarray(index, index + 4)).readUInt32BE(0);
        if (codePoint > 0x10ffff) throw new DerError('malformed UniversalString');
        text += String.fromCodePoint(codePoint);
      }
      return text;
    }
    default:
      return null;
  }
}

function parseName(der: Uint8Array, tlv: Tlv): Rdn[] {
  expectTag(tlv, 0x30, 'name');
  return children(der, tlv).map((set) => {
    expectTag(set, 0x31, 'relative distinguished name');
    const attributes = children(der, set).map((sequence): Attribute => {
      const [type, value] = children(der, expectTag(sequence, 0x30, 'attribute'));
      if (type === undefined || value === undefined) throw new DerError('malformed attribute');
      const text = decodeString(der, value);
      return text === null
        ? { oid: decodeOid(der, type), value: `#${Buffer.from(der.subarray(value.offset, value.end)).toString('hex')}`, hex: true }
        : { oid: decodeOid(der, type), value: text, hex: false };
    });
    if (attributes.length === 0) throw new DerError('empty relative distinguished name');
    return attributes;
  });
}

function parseGeneralName(der: Uint8Array, tlv: Tlv): GeneralName {
  const ia5 = (): string => Buffer.from(der.subarray(tlv.start, tlv.end)).toString('latin1');
  switch (tlv.tag) {
    case 0x81:
      return { kind: 'email', value: ia5() };
    case 0x82:
      return { kind: 'dns', value: ia5() };
    case 0x86:
      return { kind: 'uri', value: ia5() };
    case 0x87:
      return { kind: 'ip', value: Buffer.from(der.subarray(tlv.start, tlv.end)) };
    case 0xa4: {
      // directoryName is EXPLICIT (Name is a CHOICE).
      const [name] = children(der, tlv);
      if (name === undefined) throw new DerError('malformed directoryName');
      return { kind: 'dn', value: parseName(der, name) };
    }
    default:
      return { kind: 'other', tag: tlv.tag };
  }
}

function parseNameConstraints(der: Uint8Array, value: Tlv): NameConstraints {
  const permitted: GeneralName[] = [];
  const excluded: GeneralName[] = [];
  for (const subtrees of children(der, expectTag(value, 0x30, 'name constraints'))) {
    if (subtrees.tag !== 0xa0 && subtrees.tag !== 0xa1) throw new DerError('malformed name constraints');
    for (const subtree of children(der, subtrees)) {
      const [base, ...bounds] = children(der, expectTag(subtree, 0x30, 'general subtree'));
      if (base === undefined) throw new DerError('malformed general subtree');
      // RFC 5280: minimum MUST be zero and maximum absent; any other bound cannot be honoured.
      for (const bound of bounds) {
        const isZeroMinimum = bound.tag === 0x80 && bound.end - bound.start === 1 && der[bound.start] === 0;
        if (!isZeroMinimum) throw new DerError('name constraints with minimum/maximum bounds are not supported');
      }
      const name = parseGeneralName(der, base);
      if (name.kind === 'ip' && name.value.length !== 8 && name.value.length !== 32) throw new DerError('malformed iPAddress name constraint');
      (subtrees.tag === 0xa0 ? permitted : excluded).push(name);
    }
  }
  return { permitted, excluded };
}

function parseCertificate(certificate: X509Certificate): ParsedCertificate {
  const der = certificate.raw;
  const root = readTlv(der, 0, der.length);
  if (root.tag !== 0x30 || root.end !== der.length) throw new DerError('malformed certificate');
  const [tbs] = children(der, root);
  const fields = children(der, expectTag(tbs, 0x30, 'tbsCertificate'));
  const offset = fields[0]?.tag === 0xa0 ? 1 : 0;
  const serial = expectTag(fields[offset], 0x02, 'serial number');
  const issuerTlv = expectTag(fields[offset + 2], 0x30, 'issuer');
  const subjectTlv = expectTag(fields[offset + 4], 0x30, 'subject');
  const issuer = parseName(der, issuerTlv);
  const subject = parseName(der, subjectTlv);

  let basicConstraints: ParsedCertificate['basicConstraints'] = null;
  let keyUsage: number | null = null;
  let extendedKeyUsage: string[] | null = null;
  let nameConstraints: NameConstraints | null = null;
  let unrecognisedCritical: string | null = null;
  const subjectAltNames: GeneralName[] = [];
  const extensionsWrapper = fields.slice(offset + 6).find((field) => field.tag === 0xa3);
  if (extensionsWrapper !== undefined) {
    const [list] = children(der, extensionsWrapper);
    const seen = new Set<string>();
    for (const extension of children(der, expectTag(list, 0x30, 'extensions'))) {
      const parts = children(der, expectTag(extension, 0x30, 'extension'));
      const oid = decodeOid(der, parts[0]!);
      // RFC 5280 §4.2: at most one instance of an extension.
      if (seen.has(oid)) throw new DerError(`duplicate extension ${oid}`);
      seen.add(oid);
      const critical = parts.length === 3 && parts[1]!.tag === 0x01 && der[parts[1]!.start] !== 0;
      const octets = expectTag(parts[parts.length - 1], 0x04, 'extension value');
      const value = readTlv(der, octets.start, octets.end);
      if (value.end !== octets.end) throw new DerError(`malformed extension ${oid}`);
      switch (oid) {
        case OID.basicConstraints: {
          const items = children(der, expectTag(value, 0x30, 'basic constraints'));
          let index = 0;
          let ca = false;
          if (items[index]?.tag === 0x01) {
            ca = der[items[index]!.start] !== 0;
            index += 1;
          }
          let pathLength: number | null = null;
          if (items[index] !== undefined) {
            const integer = expectTag(items[index], 0x02, 'pathLenConstraint');
            if (integer.end - integer.start > 2 || der[integer.start]! & 0x80) throw new DerError('malformed pathLenConstraint');
            pathLength = [...der.subarray(integer.start, integer.end)].reduce((total, byte) => total * 256 + byte, 0);
          }
          basicConstraints = { ca, pathLength };
          break;
        }
        case OID.keyUsage: {
          expectTag(value, 0x03, 'key usage');
          const bits = der.subarray(value.start + 1, value.end);
          keyUsage = 0;
          for (let bit = 0; bit < Math.min(bits.length * 8, 16); bit += 1) {
            if (bits[bit >> 3]! & (0x80 >> (bit & 7))) keyUsage |= 1 << bit;
          }
          break;
        }
        case OID.extendedKeyUsage:
          extendedKeyUsage = children(der, expectTag(value, 0x30, 'extended key usage')).map((item) => decodeOid(der, item));
          break;
        case OID.subjectAltName:
          for (const name of children(der, expectTag(value, 0x30, 'subject alternative name'))) subjectAltNames.push(parseGeneralName(der, name));
          break;
        case OID.nameConstraints:
          nameConstraints = parseNameConstraints(der, value);
          break;
        default:
          if (critical && !RECOGNISED_CRITICAL.has(oid)) unrecognisedCritical ??= oid;
      }
    }
  }

  let publicKey: KeyObject | undefined;
  const digest = createHash('sha256').update(der).digest();
  const fingerprint = digest.toString('hex');
  const serialHex = Buffer.from(der.subarray(serial.start, serial.end)).toString('hex').replace(/^0+(?=.)/, '');
  const facts: CertificateFacts = {
    fingerprintSha256: fingerprint,
    x5t: digest.toString('base64url'),
    subject: formatName(subject),
    issuer: formatName(issuer),
    serial: serialHex,
    notBefore: certificate.validFromDate.toISOString(),
    notAfter: certificate.validToDate.toISOString(),
    sanDns: subjectAltNames.flatMap((name) => (name.kind === 'dns' ? [name.value] : [])),
    sanUri: subjectAltNames.flatMap((name) => (name.kind === 'uri' ? [name.value] : [])),
  };
  return {
    id: nextId++,
    certificate,
    fingerprint,
    facts,
    subject,
    selfIssued: Buffer.compare(der.subarray(issuerTlv.start, issuerTlv.end), der.subarray(subjectTlv.start, subjectTlv.end)) === 0,
    notBeforeMs: certificate.validFromDate.getTime(),
    notAfterMs: certificate.validToDate.getTime(),
    basicConstraints,
    keyUsage,
    extendedKeyUsage,
    subjectAltNames,
    nameConstraints,
    unrecognisedCritical,
    publicKey() {
      publicKey ??= certificate.publicKey;
      return publicKey;
    },
  };
}

function hasBit(bits: number, bit: number): boolean {
  return (bits & (1 << bit)) !== 0;
}

/** RFC 4514 string of a DN: most specific RDN first, special characters escaped. */
function formatName(rdns: readonly Rdn[]): string {
  return [...rdns]
    .reverse()
    .map((rdn) => rdn.map((attribute) => `${NAME_BY_OID.get(attribute.oid) ?? attribute.oid}=${attribute.hex ? attribute.value : escapeValue(attribute.value)}`).join('+'))
    .join(',');
}

function escapeValue(value: string): string {
  return value
    .replace(/[\\"+,;<>=]/g, '\\$&')
    .replace(/[\u0000-\u001f\u007f]/g, (char) => `\\${char.charCodeAt(0).toString(16).padStart(2, '0').toUpperCase()}`)
    .replace(/^[ #]/, '\\$&')
    .replace(/ $/, '\\ ');
}
