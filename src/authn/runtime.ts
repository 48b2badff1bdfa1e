/**
 * The credential checkers of one snapshot: a JWT verifier over the issuers' key sets, one
 * introspection client per endpoint. Key sets outlive snapshots (they hold fetched keys and
 * timers) and are synced on every reload; verifiers and their caches are rebuilt per snapshot,
 * so a reload that changes an issuer's rules can never be answered from a cache filled under
 * the old ones.
 */
import type { Snapshot } from '../config/snapshot.ts';
import { KeySets } from './jwks/key-sets.ts';
import { createJwtVerifier } from './jwt/verify.ts';
import { VerifiedTokenCache } from './jwt/cache.ts';
import { createIntrospectionClient } from './introspection.ts';

export type JwtVerifier = ReturnType<typeof createJwtVerifier>;
export type IntrospectionClient = ReturnType<typeof createIntrospectionClient>;

export interface CredentialCheckers {
  readonly jwt: JwtVerifier;
  readonly introspection: ReadonlyMap<string, IntrospectionClient>;
  close(): void;
}

export class AuthnRuntime {
  readonly keySets: KeySets;

  /** `tokenServiceJwks`: the token service's own keys (src/tokens/keys.ts), trusted without a fetch. */
  constructor(dataDir: string, options: { tokenServiceJwks?: () => unknown } = {}) {
    this.keySets = new KeySets({ dataDir, ...(options.tokenServiceJwks ? { tokenServiceJwks: options.tokenServiceJwks } : {}) });
  }

  /** Brings the key sets in line with the snapshot and builds its checkers. */
  async prepare(snapshot: Snapshot): Promise<CredentialCheckers> {
    await this.keySets.sync(snapshot.issuers);
    const jwt = createJwtVerifier({ issuersByIss: snapshot.issuersByIss, keySets: this.keySets, cache: new VerifiedTokenCache() });
    const introspection = new Map([...snapshot.introspection].map(([id, endpoint]) => [id, createIntrospectionClient(endpoint)] as const));
    return {
      jwt,
      introspection,
      close() {
        for (const client of introspection.values()) client.close();
      },
    };
  }

  /** True when every remote key set has keys (fetched or from the on-disk cache). */
  keysReady(snapshot: Snapshot): boolean {
    for (const id of snapshot.issuers.keys()) if (!this.keySets.get(id)?.ready()) return false;
    return true;
  }

  close(): void {
    this.keySets.closeAll();
  }
}
