/**
 * Stage 2 — transport identity: what the TLS connection proves. It records the negotiated
 * protocol, cipher, SNI and ALPN; on a listener that asks for client certificates it decides
 * whether the certificate authenticates a partner (that partner's own CAs or pins, validity,
 * clientAuth EKU, name constraints, name patterns — SECURITY.md item 10), then whether it is
 * revoked: through the gateway (checked on every request), or by its CA (CRL / OCSP, cached).
 *
 * The chain is judged once per connection and per configuration (a WeakMap on the socket);
 * revocation is judged per request, so a revocation never waits for a connection to close.
 * A refusal here is a 401 with a precise reason and a record, not a handshake reset
 * (ECOSYSTEM.md §2.10), unless the listener chose `refuse_at_handshake`: then the listener
 * closes a connection no partner accepts before any HTTP (`connectionIdentity`).
 */
import { X509Certificate } from 'node:crypto';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import type { Snapshot } from '../config/snapshot.ts';
import { identifyClient } from '../pki/client-certificate.ts';
import type { IdentifyResult } from '../pki/types.ts';
import { requestRevocations } from './context.ts';
import type { RequestContext, StageOutcome, TlsFacts } from './context.ts';

/** Certificates considered from what the client sent (leaf first). */
const MAX_PRESENTED = 8;
const RETRY_AFTER_SECONDS = '5';

export interface ConnectionIdentity {
  readonly snapshot: Snapshot;
  /** null: no certificate presented. */
  readonly result: IdentifyResult | null;
  /** The keys a revocation through the gateway would be stored under (computed once per connection). */
  readonly revocationKeys: { readonly fingerprint: string; readonly serial: string } | null;
}

const identities = new WeakMap<TLSSocket, ConnectionIdentity>();
/** What the handshake settled does not change over the connection: read once. */
const connectionFacts = new WeakMap<TLSSocket, TlsFacts>();

function tlsFacts(socket: TLSSocket): TlsFacts {
  let facts = connectionFacts.get(socket);
  if (facts === undefined) {
    const servername = socket.servername;
    facts = {
      protocol: socket.getProtocol(),
      cipher: socket.getCipher()?.name ?? null,
      sni: typeof servername === 'string' ? servername : null,
      alpn: typeof socket.alpnProtocol === 'string' ? socket.alpnProtocol : null,
    };
    connectionFacts.set(socket, facts);
  }
  return facts;
}

export function transportIdentity(ctx: RequestContext): StageOutcome | Promise<StageOutcome> {
  const socket = ctx.tlsSocket;
  if (!socket) return undefined;
  ctx.tls = tlsFacts(socket);
  const mode = ctx.listener.tls?.clientCertificates ?? 'none';
  if (mode === 'none') return undefined;

  const identity = connectionIdentity(socket, ctx.snapshot);
  const result = identity.result;
  if (result === null) {
    return mode === 'require' ? { reason: 'tls.certificate_missing', detail: 'the listener requires a client certificate; none was presented' } : undefined;
  }
  if (!result.ok) {
    if (result.facts) ctx.clientCertificate = { partnerId: null, facts: result.facts };
    return { reason: result.reason, detail: result.detail };
  }
  ctx.clientCertificate = { partnerId: result.partnerId, facts: result.facts };

  // Revoked through the gateway (admin API / CLI): bites on the next request (issue 7).
  const revocations = requestRevocations(ctx);
  if ('unavailable' in revocations) return { reason: 'state.unavailable', detail: revocations.unavailable, headers: { 'retry-after': RETRY_AFTER_SECONDS } };
  const { facts } = result;
  const keys = identity.revocationKeys!;
  const revoked = revocations.revoked('certificate', keys.fingerprint) ?? revocations.revoked('certificate', keys.serial);
  if (revoked) {
    return { reason: 'tls.revoked_gateway', detail: `certificate ${facts.fingerprintSha256} revoked by ${revoked.actor} at ${new Date(revoked.at).toISOString()}: ${revoked.reason}` };
  }

  // Revoked by its CA: CRL / OCSP, per the partner's policy (answered from cache when possible).
  const policy = ctx.snapshot.partners.get(result.partnerId)?.mtls?.revocation ?? null;
  if (policy === null || result.issuer === null) return undefined;
  const status = ctx.services.certificateRevocation.check(result.leaf, result.issuer, policy);
  return status instanceof Promise ? status.then((answer) => judge(ctx, answer, policy.softFail)) : judge(ctx, status, policy.softFail);
}

function judge(ctx: RequestContext, status: Awaited<ReturnType<RequestContext['services']['certificateRevocation']['check']>>, softFail: boolean): StageOutcome {
  if (status.status === 'good') return undefined;
  if (status.status === 'revoked') return { reason: status.source === 'crl' ? 'tls.revoked_crl' : 'tls.revoked_ocsp', detail: status.detail };
  if (softFail) {
    // Acknowledged soft-fail: let through, and say so on the record and in the metrics.
    ctx.flags.push('revocation_soft_fail');
    return undefined;
  }
  return { reason: 'tls.revocation_unavailable', detail: status.detail, headers: { 'retry-after': RETRY_AFTER_SECONDS } };
}

/** The connection's certificate judged under `snapshot` (once per connection and configuration). */
export function connectionIdentity(socket: TLSSocket, snapshot: Snapshot): ConnectionIdentity {
  const known = identities.get(socket);
  // A reload may change every partner's trust: judge the connection again under the new one.
  if (known && known.snapshot === snapshot) return known;
  const presented = presentedChain(socket);
  const result = presented.length === 0 ? null : identifyClient(presented, snapshot.partnerTrusts, Date.now());
  const identity: ConnectionIdentity = {
    snapshot,
    result,
    revocationKeys: result?.ok ? { fingerprint: `sha256:${result.facts.fingerprintSha256}`, serial: `serial:${result.facts.serial}@${result.leaf.issuer}` } : null,
  };
  identities.set(socket, identity);
  return identity;
}

/** The chain the client sent, leaf first (node links each certificate to its issuer; the last links to itself). */
function presentedChain(socket: TLSSocket): X509Certificate[] {
  const peer: Partial<DetailedPeerCertificate> | null = socket.getPeerCertificate(true);
  // Without a certificate node returns an empty object.
  if (!peer || !peer.raw) return [];
  const chain: X509Certificate[] = [];
  const seen = new Set<string>();
  let current: DetailedPeerCertificate | undefined = peer as DetailedPeerCertificate;
  while (current && current.raw && chain.length < MAX_PRESENTED) {
    const fingerprint = current.fingerprint256;
    if (seen.has(fingerprint)) break;
    seen.add(fingerprint);
    chain.push(new X509Certificate(current.raw));
    current = current.issuerCertificate;
  }
  return chain;
}
