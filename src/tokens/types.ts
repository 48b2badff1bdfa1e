/**
 * Contracts of the token service (issue 5): its signing keys, and what its HTTP endpoints need
 * from the rest of the gateway. The endpoints live under the configured listener:
 * `/oauth2/token`, `/oauth2/jwks`, `/oauth2/introspect`, `/oauth2/revoke` and
 * `/.well-known/oauth-authorization-server` (RFC 8414).
 */
import type { KeyObject } from 'node:crypto';
import type { Snapshot } from '../config/snapshot.ts';
import type { StateStore } from '../state/store.ts';
import type { NonceSource } from '../authn/dpop.ts';

/** One signing key of the token service, as kept in the state store. */
export interface TokenKey {
  readonly kid: string;
  readonly alg: 'ES256' | 'EdDSA' | 'PS256' | 'RS256';
  readonly publicJwk: Readonly<Record<string, unknown>>;
  /** ms since the epoch. */
  readonly createdAt: number;
  /** When it starts signing (after a rotation's publish delay), ms since the epoch. */
  readonly activeFrom: number;
  /** When it stopped signing (a newer key took over), or null while it is the active key. */
  readonly retiredAt: number | null;
  /** When it leaves the JWKS (retiredAt + key_overlap), or null. */
  readonly removeAt: number | null;
}

export interface TokenKeys {
  /** Signs a JWS with the active key: header `{ alg, typ, kid }`. */
  sign(payload: Readonly<Record<string, unknown>>, typ: string): Promise<string>;
  /** The public keys to publish (active and overlapping), as a JWKS document. */
  jwks(): { readonly keys: ReadonlyArray<Readonly<Record<string, unknown>>> };
  /** Public key objects by kid, for the gateway's own validation (no network round trip). */
  publicKey(kid: string): KeyObject | undefined;
  /** Every key, newest first (for `portcullis keys list`). */
  list(): readonly TokenKey[];
  /**
   * Adds a new key: it is published at once but signs only after `publishDelayMs` (so caches of
   * the JWKS learn it first); the previous active key is retired and removed after the overlap.
   */
  rotate(options: { readonly publishDelayMs: number; readonly overlapMs: number }): Promise<TokenKey>;
  /** Called when another instance changed the keys (state store event), or on a timer. */
  refresh(): Promise<void>;
  close(): void;
}

/** What the token service's endpoints use from the gateway. */
export interface TokenServiceDeps {
  readonly snapshot: () => Snapshot;
  readonly store: StateStore;
  readonly keys: TokenKeys;
  /** Appends an audit record (src/audit/event-record.ts); false when the trail refuses it. */
  readonly audit: (record: object, partnerId: string | null) => boolean;
  readonly auditHealthy: () => boolean;
  readonly dpopNonces: NonceSource;
}
