/**
 * The one table of `node:diagnostics_channel` channels the gateway publishes (STYLE.md item 13,
 * after undici's `lib/core/diagnostics.js`). Modules on the request path publish facts here and
 * import nothing else from observability: metrics (and later traces) subscribe. A publisher
 * checks `hasSubscribers` first, so a channel nobody listens to costs one property read.
 *
 * Messages carry bounded values only (configuration ids, fixed result words): never a token, a
 * credential id or a subject, because every subscriber may turn them into labels.
 */
import diagnosticsChannel from 'node:diagnostics_channel';

/** One fetch of an issuer's JWKS (scheduled refresh or unknown `kid`), after it ended. */
export interface JwksFetchMessage {
  /** The issuer's configuration id (not its URL): bounded by the configuration. */
  readonly issuer: string;
  /**
   * `success`: the issuer answered with a valid set, now served; `error`: the fetch failed
   * (network, HTTP status, size, time); `invalid`: the issuer answered with a set that was
   * refused whole (the previous one is kept).
   */
  readonly result: 'success' | 'error' | 'invalid';
}

/** One lookup in the verified-token cache. */
export interface TokenCacheLookupMessage {
  /**
   * `hit`: served from the cache; `miss`: no entry; `stale`: an entry existed but could not be
   * served (past its lifetime or `exp`, before `nbf`, or its issuer's keys rotated): dropped.
   */
  readonly result: 'hit' | 'miss' | 'stale';
}

export const jwksFetchChannel = diagnosticsChannel.channel('portcullis:jwks:fetch');
export const tokenCacheLookupChannel = diagnosticsChannel.channel('portcullis:token-cache:lookup');

/** Frozen messages for the fixed results, so publishing on the hot path allocates nothing. */
export const TOKEN_CACHE_LOOKUP: Readonly<Record<TokenCacheLookupMessage['result'], TokenCacheLookupMessage>> = Object.freeze({
  hit: Object.freeze({ result: 'hit' }),
  miss: Object.freeze({ result: 'miss' }),
  stale: Object.freeze({ result: 'stale' }),
});

/** One write cycle of the audit trail that touched the disk (write + sync), after it ended. */
export interface AuditWriteMessage {
  readonly durationSeconds: number;
}

export const auditWriteChannel = diagnosticsChannel.channel('portcullis:audit:write');

/** Audit records a copy sink (stdout, OTLP) could not deliver; the trail's file still has them. */
export interface AuditSinkFailureMessage {
  readonly sink: 'stdout' | 'otlp';
  /** How many lines the failure covers. */
  readonly records: number;
}

export const auditSinkFailureChannel = diagnosticsChannel.channel('portcullis:audit:sink-failure');
