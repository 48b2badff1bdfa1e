/**
 * The imported keys of one validated key set, indexed for the synchronous lookup a verification
 * needs. Keys are imported once here (one WebCrypto key per usable algorithm), never per request.
 */
import { importJWK } from 'jose';
import type { CryptoKey } from 'jose';
import type { VerificationKey } from './key-set.ts';
import type { ValidatedKey } from './validate.ts';

export class KeyIndex {
  /** kid → alg → key. */
  readonly #byKid: ReadonlyMap<string, ReadonlyMap<string, VerificationKey>>;
  /** alg → the key without kid (validation allows at most one per algorithm). */
  readonly #withoutKid: ReadonlyMap<string, VerificationKey>;
  /** Identity of the set: equal identities hold the same (kid, alg, key) triples. */
  readonly identity: string;
  /** Number of JWKs (a key usable with two algorithms counts once). */
  readonly size: number;
  readonly kids: readonly string[];

  private constructor(keys: readonly VerificationKey[], identity: string, size: number) {
    const byKid = new Map<string, Map<string, VerificationKey>>();
    const withoutKid = new Map<string, VerificationKey>();
    for (const key of keys) {
      if (key.kid === undefined) withoutKid.set(key.alg, key);
      else {
        let byAlg = byKid.get(key.kid);
        if (!byAlg) byKid.set(key.kid, (byAlg = new Map()));
        byAlg.set(key.alg, key);
      }
    }
    this.#byKid = byKid;
    this.#withoutKid = withoutKid;
    this.identity = identity;
    this.size = size;
    this.kids = [...byKid.keys()];
  }

  /** Imports every (key, algorithm) pair. Throws when a key cannot be imported. */
  static async build(validated: readonly ValidatedKey[]): Promise<KeyIndex> {
    const keys: VerificationKey[] = [];
    for (const entry of validated) {
      for (const alg of entry.algorithms) {
        let key: CryptoKey;
        try {
          // Only the public members reach the import (ValidatedKey.jwk), so no `key_ops`, `ext`
          // or `use` of the published key can widen what the imported key may do.
          key = (await importJWK(entry.jwk, alg)) as CryptoKey;
        } catch (error) {
          const label = entry.kid === undefined ? `key ${entry.index} (no kid)` : `key ${entry.index} (kid ${JSON.stringify(entry.kid)})`;
          throw new Error(`${label}: cannot be imported for ${alg}: ${error instanceof Error ? error.message : String(error)}`);
        }
        keys.push(Object.freeze({ kid: entry.kid, alg, key }));
      }
    }
    return new KeyIndex(keys, KeyIndex.identityOf(validated), validated.length);
  }

  /** The identity `build` would give these keys, computed without importing them. */
  static identityOf(validated: readonly ValidatedKey[]): string {
    const triples: string[] = [];
    for (const entry of validated) {
      for (const alg of entry.algorithms) triples.push(JSON.stringify([entry.kid ?? null, alg, entry.fingerprint]));
    }
    return triples.sort().join('\n');
  }

  /** A key without kid matches only a token without kid, and the reverse. */
  find(kid: string | undefined, alg: string): VerificationKey | undefined {
    return kid === undefined ? this.#withoutKid.get(alg) : this.#byKid.get(kid)?.get(alg);
  }
}
