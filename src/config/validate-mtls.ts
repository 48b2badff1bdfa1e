/**
 * Semantic checks of mutual TLS (issue 4): partner trust that can actually authenticate someone,
 * revocation settings that say where the status comes from, soft-fail only when acknowledged,
 * and credentials / routes / listeners that agree with each other.
 */
import { caBundle, readable } from './file-checks.ts';
import type { ValidationContext } from './checks.ts';
import type { ConfigView } from './config-view.ts';
import type { ConfigPath, PendingIssue } from './issues.ts';
import { REVOCATION_SOFT_FAIL_ACK } from './schema.ts';
import { namePatternProblem } from '../pki/client-certificate.ts';

export function mtlsChecks(view: ConfigView): PendingIssue[] {
  const issues: PendingIssue[] = [];
  view.partners.entries.forEach((partner, partnerIndex) => {
    const at = (...rest: (string | number)[]): ConfigPath => ['partners', partnerIndex, ...rest];
    const mtls = partner.mtls;
    if (mtls !== undefined && mtls.ca.length === 0 && mtls.pinned.length === 0) {
      // SECURITY.md API8: an empty CA set would trust nothing, or — worse, in some stacks — anything.
      issues.push({ code: 'CONFIG_INVALID_TYPE', path: at('mtls'), message: 'mtls needs "ca" (CA certificates) or "pinned" (certificate fingerprints): with neither, no certificate can authenticate this partner' });
    }
    for (const [key, kind] of [['subjects', 'subject'], ['san_dns', 'san_dns'], ['san_uri', 'san_uri']] as const) {
      (mtls?.[key] ?? []).forEach((pattern, index) => {
        const problem = namePatternProblem(kind, pattern);
        if (problem !== null) issues.push({ code: 'CONFIG_INVALID_VALUE', path: at('mtls', key, index), message: problem });
      });
    }
    const revocation = mtls?.revocation;
    if (revocation) {
      const crl = revocation.crl;
      if (crl && crl.file === undefined && crl.url === undefined && !crl.from_certificate) {
        issues.push({ code: 'CONFIG_INVALID_TYPE', path: at('mtls', 'revocation', 'crl'), message: 'a CRL source is needed: "file", "url", or "from_certificate: true"' });
      }
      if (crl && crl.file !== undefined && crl.url !== undefined) {
        issues.push({ code: 'CONFIG_CONFLICT', path: at('mtls', 'revocation', 'crl', 'url'), message: '"file" and "url" are both set: the CRL comes from one of them' });
      }
      const ocsp = revocation.ocsp;
      if (ocsp && ocsp.url === undefined && !ocsp.from_certificate) {
        issues.push({ code: 'CONFIG_INVALID_TYPE', path: at('mtls', 'revocation', 'ocsp'), message: 'an OCSP responder is needed: "url", or "from_certificate: true"' });
      }
      if (!crl && !ocsp) {
        issues.push({ code: 'CONFIG_INVALID_TYPE', path: at('mtls', 'revocation'), message: 'revocation needs "crl" or "ocsp" (or remove the section: revocations made through the gateway apply anyway)' });
      }
      if ((crl?.from_certificate || ocsp?.from_certificate) && revocation.allowed_hosts.length === 0) {
        issues.push({
          code: 'CONFIG_INVALID_TYPE',
          path: at('mtls', 'revocation', 'allowed_hosts'),
          message: '"from_certificate" needs "allowed_hosts": the gateway fetches only from hosts the configuration names, never from wherever a certificate points (SSRF)',
        });
      }
      if (revocation.on_unavailable === 'allow' && revocation.acknowledge === undefined) {
        issues.push({
          code: 'CONFIG_INSECURE_UNACKNOWLEDGED',
          path: at('mtls', 'revocation', 'on_unavailable'),
          message: `soft-fail accepts revoked certificates while their status cannot be checked; set "acknowledge: ${REVOCATION_SOFT_FAIL_ACK}"`,
        });
      }
    }
    const mtlsCredentials = partner.credentials.entries.map((credential, index) => ({ credential, index })).filter(({ credential }) => credential.type === 'mtls');
    // A section that failed its schema is reported there; it is not "missing".
    const mtlsWritten = view.partners.written[partnerIndex]?.has('mtls') === true;
    for (const { index } of mtlsCredentials) {
      if (!mtlsWritten) {
        issues.push({ code: 'CONFIG_DANGLING_REF', path: at('credentials', index, 'type'), message: 'an "mtls" credential needs the partner\'s "mtls" section (which certificates authenticate it)' });
      }
    }
    for (const { index } of mtlsCredentials.slice(1)) {
      issues.push({ code: 'CONFIG_DUPLICATE_ID', path: at('credentials', index, 'type'), message: 'a partner has at most one "mtls" credential: its certificates are told apart by the "mtls" section' });
    }
  });

  const zonesWithClientCertificates = new Set(
    view.listeners.entries.filter((listener) => listener.tls !== undefined && listener.tls.client_certificates !== 'none').map((listener) => listener.zone),
  );
  // Zones where a listener's `tls` did not parse: what it asks for is unknown, so say nothing.
  const zonesUnknown = new Set(
    view.listeners.entries.filter((listener, index) => listener.tls === undefined && view.listeners.written[index]?.has('tls')).map((listener) => listener.zone),
  );
  view.listeners.entries.forEach((listener, index) => {
    if (listener.tls?.refuse_at_handshake && listener.tls.client_certificates === 'none') {
      issues.push({ code: 'CONFIG_CONFLICT', path: ['listeners', index, 'tls', 'refuse_at_handshake'], message: '"refuse_at_handshake" needs "client_certificates: request" or "require"' });
    }
  });
  const needsCertificates = (route: (typeof view.routes.entries)[number]): boolean => route.credentials?.includes('mtls') === true;
  view.routes.entries.forEach((route, index) => {
    if (needsCertificates(route) && route.zone !== undefined && !zonesWithClientCertificates.has(route.zone) && !zonesUnknown.has(route.zone)) {
      issues.push({
        code: 'CONFIG_CONFLICT',
        path: ['routes', index, 'credentials'],
        message: `route accepts "mtls" but no listener of zone "${route.zone}" asks for client certificates (tls.client_certificates: request or require)`,
      });
    }
  });
  return issues;
}

export function mtlsFileChecks(view: ConfigView, context: ValidationContext): Promise<PendingIssue[]>[] {
  const checks: Promise<PendingIssue[]>[] = [];
  view.partners.entries.forEach((partner, partnerIndex) => {
    partner.mtls?.ca.forEach((written, index) => checks.push(caBundle(context.files, ['partners', partnerIndex, 'mtls', 'ca', index], written)));
    const crlFile = partner.mtls?.revocation?.crl?.file;
    if (crlFile !== undefined) {
      // Its signature and freshness are judged at run time (an expired CRL is refused then, not at load).
      const path: ConfigPath = ['partners', partnerIndex, 'mtls', 'revocation', 'crl', 'file'];
      checks.push(readable(context.files, path, crlFile).then((data) => (Buffer.isBuffer(data) ? [] : [data])));
    }
  });
  return checks;
}
