/**
 * The request context: what the stages know about one request, filled in stage by stage.
 * A stage reads the context and the snapshot, and never another stage's internals (DESIGN.md).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import type { CompiledListener, CompiledRoute, Snapshot } from '../config/snapshot.ts';
import type { RefusalReason } from '../errors.ts';
import type { UpstreamPool } from '../upstream/pools.ts';
import type { CredentialCheckers } from '../authn/runtime.ts';
import type { Principal } from '../authn/principal.ts';
import type { RevocationSet, RevocationView } from '../state/store.ts';
import type { RateLimiter } from '../ratelimit/limiter.ts';
import type { ConcurrencyLimiter } from '../ratelimit/concurrency.ts';
import type { AbuseGuard } from '../abuse/guard.ts';
import type { RevocationChecker } from '../pki/revocation/checker.ts';
import type { CertificateFacts } from '../pki/types.ts';
import type { NonceSource } from '../authn/dpop.ts';
import type { TokenServiceDeps } from '../tokens/types.ts';

export type DownstreamRequest = IncomingMessage | Http2ServerRequest;
export type DownstreamResponse = ServerResponse | Http2ServerResponse;

/** Why a stage ended the request: a stable reason, private detail for the log, extra headers. */
export interface Refusal {
  readonly reason: RefusalReason;
  /** Operator-facing detail: goes to the decision record, never to the caller. */
  readonly detail?: string;
  /** Response headers specific to this refusal (`Allow`, `WWW-Authenticate`, …). */
  readonly headers?: Readonly<Record<string, string>>;
}

/** A stage either lets the request continue (`undefined`) or ends it with a refusal. */
export type StageOutcome = Refusal | undefined;

export interface TlsFacts {
  readonly protocol: string | null;
  readonly cipher: string | null;
  readonly sni: string | null;
  readonly alpn: string | null;
}

/** Process-wide services the stages use (they outlive a configuration generation). */
export interface RequestServices {
  /** Revocations and partner status changes made at run time (src/state/). */
  readonly revocations: RevocationView;
  readonly limiter: RateLimiter;
  readonly concurrency: ConcurrencyLimiter;
  readonly abuse: AbuseGuard;
  /** CRL / OCSP status of client certificates, cached (src/pki/revocation/). */
  readonly certificateRevocation: RevocationChecker;
  /** Single use of DPoP proofs: true the first time a key is seen (StateStore.setIfAbsent). */
  readonly replay: (key: string, ttlMs: number) => Promise<boolean>;
  /** Server nonces for DPoP proofs (RFC 9449 §8), when `dpop.nonce` is on. */
  readonly dpopNonces: NonceSource;
  /** The token service's endpoints, when `token_service` is configured and its keys are open. */
  readonly tokenService: TokenServiceDeps | null;
}

export interface RequestContext {
  readonly requestId: string;
  /** `process.hrtime.bigint()` when the request head was received. */
  readonly startedAt: bigint;
  readonly receivedAt: Date;
  readonly snapshot: Snapshot;
  /** Upstream pools of the snapshot this request started on. */
  readonly pools: ReadonlyMap<string, UpstreamPool>;
  /** Credential checkers of that snapshot. */
  readonly checkers: CredentialCheckers;
  /** Whether the audit trail accepts records right now. */
  readonly auditHealthy: () => boolean;
  readonly services: RequestServices;
  readonly listener: CompiledListener;
  readonly req: DownstreamRequest;
  readonly res: DownstreamResponse;
  /** `1.0`, `1.1` or `2.0`. */
  readonly httpVersion: string;
  readonly method: string;
  readonly clientIp: string;
  readonly clientPort: number;
  readonly tlsSocket: TLSSocket | null;

  // ingress
  host: string;
  /** The canonical path: routed, authorised and forwarded unchanged. */
  path: string;
  query: string;
  traceId: string;
  spanId: string;
  traceparent: string;

  // routing
  route: CompiledRoute | null;
  params: Readonly<Record<string, string>>;

  // transport identity
  tls: TlsFacts | null;
  /** The client certificate, when one was presented: whose it is (null when no partner's trust accepted it) and what it says. */
  clientCertificate: { readonly partnerId: string | null; readonly facts: CertificateFacts } | null;

  // credential
  principal: Principal | null;

  // authorization
  /** The grant or rule that decided (allowed: the grant; denied: the grant or rule that refused). */
  decidedBy: string | null;
  /** Ids of the policy rules evaluated. */
  rules: readonly string[];
  /** The token's scopes that the allowing grant includes: all the upstream is told about. */
  grantedScopes: ReadonlySet<string> | null;
  purpose: string | null;
  /** The gateway answered the request itself (protected-resource metadata, the token service). */
  servedByGateway: boolean;
  /** Which of its own answers: the reason on the record. */
  servedReason: 'gateway.resource_metadata' | 'gateway.token_service';

  /** The revocation set as this request sees it (read once, by the first stage that needs it). */
  revocations: RevocationSet | { readonly unavailable: string } | null;

  // rate limit (stage 5)
  /** Marks on the decision record (`portcullis.flags`), e.g. `source_network_violation`. */
  flags: string[];
  /** Releases the partner's concurrency slot; called once when the exchange ends. */
  releaseConcurrency: (() => void) | null;
  /** Headers added to the forwarded response (RateLimit headers, when enabled). */
  responseHeaders: Record<string, string> | null;

  // proxy
  upstreamCalled: boolean;
  upstreamStatus: number | null;
  /** `process.hrtime.bigint()` when the upstream request was sent / its headers arrived. */
  upstreamStartedAt: bigint | null;
  upstreamHeadersAt: bigint | null;
  /** The refusal that ended the request, if one did. */
  refusal: Refusal | null;
  /** Set when the exchange failed after the response had started (no refusal can be sent then). */
  lateFailure: Refusal | null;
}

/** What a decision record needs: a request context, or what a connection-level error knows. */
export type DecisionInput = Pick<
  RequestContext,
  | 'requestId'
  | 'startedAt'
  | 'receivedAt'
  | 'snapshot'
  | 'listener'
  | 'httpVersion'
  | 'method'
  | 'clientIp'
  | 'clientPort'
  | 'host'
  | 'path'
  | 'traceId'
  | 'spanId'
  | 'route'
  | 'tls'
  | 'clientCertificate'
  | 'principal'
  | 'flags'
  | 'decidedBy'
  | 'purpose'
  | 'upstreamCalled'
  | 'upstreamStatus'
  | 'upstreamStartedAt'
  | 'upstreamHeadersAt'
>;

/** The revocation set for this request: read once (embedded: one `data_version` check), then shared by the stages. */
export function requestRevocations(ctx: RequestContext): RevocationSet | { readonly unavailable: string } {
  ctx.revocations ??= ctx.services.revocations.current();
  return ctx.revocations;
}
