/**
 * What the credential stage establishes: exactly one partner and one credential, with the
 * token's claims and scopes when the credential was a token.
 */
import type { CredentialType } from '../config/schema.ts';
import type { CompiledCredential, CompiledPartner } from '../config/snapshot.ts';

export interface Principal {
  readonly partner: CompiledPartner;
  readonly credential: CompiledCredential;
  readonly credentialType: CredentialType;
  /** API keys are long-lived credentials; every use is flagged on the decision record. */
  readonly longLived: boolean;
  /** Verified claims (null-prototype object), or an empty object for API keys. */
  readonly claims: Readonly<Record<string, unknown>>;
  /** Scopes of the token (space-delimited `scope` claim, exact tokens); empty for API keys. */
  readonly scopes: ReadonlySet<string>;
  /** Token id (`jti`) and issuer, when the credential was a token. */
  readonly tokenId: string | null;
  readonly issuer: string | null;
  /** Token expiry (seconds since the epoch), when known. */
  readonly expiresAt: number | null;
}
