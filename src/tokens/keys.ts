/**
 * The token service's signing keys (issue 5 "Keys"; ECOSYSTEM.md §2.1: jose, rotating keys
 * published in a JWKS with `kid`s and an overlap window).
 *
 * The keys live in the state store as one JSON document (`token-service:keys`), private keys as
 * private JWKs: every instance signs with the same key and publishes the same JWKS. With the
 * embedded driver that document sits in the 0600 SQLite file of the data folder; with Redis the
 * private keys are held by the Redis server too, so its access control and persistence are part
 * of the token service's key protection (docs/tokens.md says so).
 *
 * Timeline of a rotation (all times in the document, so every instance agrees):
 *   rotate at T: new key K2 { createdAt: T, activeFrom: T + publishDelay } is published at once;
 *   K1 keeps signing until T + publishDelay (its `retiredAt`), so JWKS caches learn K2 first;
 *   K1 stays in the JWKS until `removeAt` = retiredAt + overlap, so tokens it signed still verify.
 * Which key signs and which keys are published is decided at each call from the clock, so no
 * timer is needed for a rotation to take effect; `refresh()` only picks up another instance's
 * (or the CLI's) change of the document.
 */
import { createPrivateKey, createPublicKey, generateKeyPair } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { CompactSign, calculateJwkThumbprint } from 'jose';
import type { JWK } from 'jose';
import type { StateStore } from '../state/store.ts';
import type { TokenKey, TokenKeys } from './types.ts';
import { log } from '../log.ts';

export type TokenSigningAlgorithm = TokenKey['alg'];

/** State store key of the key document, and of the lock that serialises its writers. */
export const TOKEN_KEYS_STATE_KEY = 'token-service:keys';
const LOCK_KEY = `${TOKEN_KEYS_STATE_KEY}:lock`;
/** A writer that dies holding the lock blocks others at most this long. */
const LOCK_TTL_MS = 10_000;
const LOCK_POLL_MS = 25;
const DOCUMENT_VERSION = 1;

const ALGORITHMS: ReadonlySet<string> = new Set(['ES256', 'EdDSA', 'PS256', 'RS256']);

interface StoredKey extends TokenKey {
  /** When it starts signing (createdAt + publish delay). */
  readonly activeFrom: number;
  readonly privateJwk: JWK;
}

interface LoadedKey {
  readonly stored: StoredKey;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

export interface OpenTokenKeysOptions {
  readonly store: StateStore;
  /** The configured `token_service.algorithm`: a first key, or an algorithm change, gets a key of it. */
  readonly algorithm: TokenSigningAlgorithm;
  /** ms since the epoch. Default `Date.now`. */
  readonly now?: () => number;
}

/**
 * Opens the keys: reads the document, or generates the first key when there is none (two
 * instances starting together: one generates under the lock, the other waits and reads it).
 * When no current key has the configured algorithm (the operator changed it), a key of that
 * algorithm is added and signs at once: tokens of the old algorithm would be refused anyway by
 * the gateway's own validation, which accepts only the configured one.
 */
export async function openTokenKeys(options: OpenTokenKeysOptions): Promise<TokenKeys> {
  const { store, algorithm } = options;
  if (!ALGORITHMS.has(algorithm)) throw new Error(`token service: unsupported signing algorithm ${JSON.stringify(algorithm)}`);
  const now = options.now ?? Date.now;
  const keys = new StoreTokenKeys(store, now, algorithm);
  await keys.refresh();
  if (!keys.hasSigningKeyOf(algorithm)) {
    await keys.update((current) => {
      if (current.some((key) => key.stored.alg === algorithm && isCurrent(key.stored, now()))) return null;
      return { alg: algorithm, publishDelayMs: 0, overlapMs: 0 };
    });
  }
  return keys;
}

interface RotationPlan {
  readonly alg: TokenSigningAlgorithm;
  readonly publishDelayMs: number;
  readonly overlapMs: number;
}

class StoreTokenKeys implements TokenKeys {
  readonly #store: StateStore;
  readonly #now: () => number;
  readonly #algorithm: TokenSigningAlgorithm;
  /** Newest first. */
  #keys: readonly LoadedKey[] = [];
  #raw: string | null = null;

  constructor(store: StateStore, now: () => number, algorithm: TokenSigningAlgorithm) {
    this.#store = store;
    this.#now = now;
    this.#algorithm = algorithm;
  }

  async sign(payload: Readonly<Record<string, unknown>>, typ: string): Promise<string> {
    const key = this.#signingKey(this.#now());
    if (!key) throw new Error('token service: no signing key is active');
    return new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
      .setProtectedHeader({ alg: key.stored.alg, typ, kid: key.stored.kid })
      .sign(key.privateKey);
  }

  jwks(): { readonly keys: ReadonlyArray<Readonly<Record<string, unknown>>> } {
    const now = this.#now();
    return { keys: this.#keys.filter((key) => isPublished(key.stored, now)).map((key) => ({ ...key.stored.publicJwk })) };
  }

  publicKey(kid: string): KeyObject | undefined {
    const now = this.#now();
    const key = this.#keys.find((candidate) => candidate.stored.kid === kid);
    return key && isPublished(key.stored, now) ? key.publicKey : undefined;
  }

  list(): readonly TokenKey[] {
    return this.#keys.map(({ stored }) => ({
      kid: stored.kid,
      alg: stored.alg,
      publicJwk: stored.publicJwk,
      createdAt: stored.createdAt,
      activeFrom: stored.activeFrom,
      retiredAt: stored.retiredAt,
      removeAt: stored.removeAt,
    }));
  }

  async rotate(options: { readonly publishDelayMs: number; readonly overlapMs: number }): Promise<TokenKey> {
    const { publishDelayMs, overlapMs } = options;
    if (!Number.isSafeInteger(publishDelayMs) || publishDelayMs < 0) throw new Error('publish delay must be a whole number of ms ≥ 0');
    if (!Number.isSafeInteger(overlapMs) || overlapMs < 0) throw new Error('overlap must be a whole number of ms ≥ 0');
    const added = await this.update(() => ({ alg: this.#algorithm, publishDelayMs, overlapMs }));
    if (!added) throw new Error('token service: rotation did not add a key');
    return added;
  }

  async refresh(): Promise<void> {
    const raw = await this.#store.get(TOKEN_KEYS_STATE_KEY);
    if (raw === null) {
      if (this.#raw !== null) {
        // Someone deleted the document: keep serving what we have rather than sign with nothing.
        log('error', 'token_service.keys_missing', { key: TOKEN_KEYS_STATE_KEY, serving: `${this.#keys.length} keys loaded before` });
        return;
      }
      // First start: one instance generates under the lock; another one finds the key once it has the lock.
      await this.update((current) => (current.length === 0 ? { alg: this.#algorithm, publishDelayMs: 0, overlapMs: 0 } : null));
      return;
    }
    if (raw === this.#raw) return;
    this.#keys = parseDocument(raw);
    this.#raw = raw;
  }

  close(): void {
    this.#keys = [];
    this.#raw = null;
  }

  hasSigningKeyOf(alg: string): boolean {
    const now = this.#now();
    return this.#keys.some((key) => key.stored.alg === alg && isCurrent(key.stored, now));
  }

  /**
   * Read-modify-write of the document under the lock: `plan` sees the stored keys (fresh) and
   * says which key to add, or null for no change. Returns the key added.
   */
  async update(plan: (current: readonly LoadedKey[]) => RotationPlan | null): Promise<TokenKey | null> {
    await this.#lock();
    try {
      const raw = await this.#store.get(TOKEN_KEYS_STATE_KEY);
      const current = raw === null ? [] : parseDocument(raw);
      this.#keys = current;
      this.#raw = raw;
      const wanted = plan(current);
      if (wanted === null) return null;
      const now = this.#now();
      const activeFrom = now + wanted.publishDelayMs;
      const fresh = await generateStoredKey(wanted.alg, now, activeFrom);
      const kept = current
        // Keys past their removal date are gone from the JWKS already: drop them from the store.
        .filter((key) => key.stored.removeAt === null || key.stored.removeAt > now)
        .map(({ stored }) => {
          if (stored.retiredAt !== null && stored.retiredAt <= activeFrom) return stored;
          // Still (or about to be) signing: it stops when the new key starts, and stays published for the overlap.
          return { ...stored, retiredAt: activeFrom, removeAt: activeFrom + wanted.overlapMs };
        });
      const document = JSON.stringify({ version: DOCUMENT_VERSION, keys: [fresh, ...kept] });
      await this.#store.set(TOKEN_KEYS_STATE_KEY, document, null);
      this.#keys = parseDocument(document);
      this.#raw = document;
      log('info', 'token_service.key_added', { kid: fresh.kid, alg: fresh.alg, active_from: new Date(activeFrom).toISOString(), retired: kept.map((key) => key.kid) });
      return this.list()[0]!;
    } finally {
      await this.#store.delete(LOCK_KEY).catch(() => undefined);
    }
  }

  async #lock(): Promise<void> {
    for (let waited = 0; waited < LOCK_TTL_MS + 1_000; waited += LOCK_POLL_MS) {
      if (await this.#store.setIfAbsent(LOCK_KEY, LOCK_TTL_MS)) return;
      await new Promise((resolveDelay) => setTimeout(resolveDelay, LOCK_POLL_MS));
    }
    throw new Error(`token service: the key lock (${LOCK_KEY}) was not released within ${LOCK_TTL_MS} ms`);
  }

  /** The key that signs at `now`: published, started, not retired; the newest such one. */
  #signingKey(now: number): LoadedKey | undefined {
    let best: LoadedKey | undefined;
    for (const key of this.#keys) {
      if (!isCurrent(key.stored, now)) continue;
      if (!best || key.stored.activeFrom > best.stored.activeFrom) best = key;
    }
    return best;
  }
}

/** Signs at `now`. */
function isCurrent(key: StoredKey, now: number): boolean {
  return key.activeFrom <= now && (key.retiredAt === null || key.retiredAt > now);
}

/** In the JWKS at `now` (published from creation, before it signs, until its removal). */
function isPublished(key: StoredKey, now: number): boolean {
  return key.removeAt === null || key.removeAt > now;
}

const generateKeyPairAsync = promisify(generateKeyPair);

async function generateStoredKey(alg: TokenSigningAlgorithm, createdAt: number, activeFrom: number): Promise<StoredKey> {
  const { privateKey } =
    alg === 'ES256'
      ? await generateKeyPairAsync('ec', { namedCurve: 'P-256' })
      : alg === 'EdDSA'
        ? await generateKeyPairAsync('ed25519')
        : // RFC 7518 §3.3/§3.5 require ≥ 2048 bits; 3072 matches the 128-bit level of P-256 (NIST SP 800-57).
          await generateKeyPairAsync('rsa', { modulusLength: 3072 });
  const privateJwk = privateKey.export({ format: 'jwk' }) as JWK;
  const bare = publicMembers(createPublicKey(privateKey).export({ format: 'jwk' }) as JWK);
  // RFC 7638 thumbprint: the same key always has the same kid, on every instance.
  const kid = await calculateJwkThumbprint(bare, 'sha256');
  return {
    kid,
    alg,
    publicJwk: { ...bare, kid, alg, use: 'sig' },
    createdAt,
    activeFrom,
    retiredAt: null,
    removeAt: null,
    privateJwk,
  };
}

function publicMembers(jwk: JWK): JWK {
  if (jwk.kty === 'RSA') return { kty: 'RSA', n: jwk.n!, e: jwk.e! };
  if (jwk.kty === 'EC') return { kty: 'EC', crv: jwk.crv!, x: jwk.x!, y: jwk.y! };
  return { kty: jwk.kty!, crv: jwk.crv!, x: jwk.x! };
}

/** Parses and checks the stored document; anything odd refuses the whole document (fail closed). */
function parseDocument(raw: string): LoadedKey[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new Error(`token service: the key document (${TOKEN_KEYS_STATE_KEY}) is not JSON`);
  }
  const document = parsed as { version?: unknown; keys?: unknown };
  if (typeof parsed !== 'object' || parsed === null || document.version !== DOCUMENT_VERSION || !Array.isArray(document.keys)) {
    throw new Error(`token service: the key document (${TOKEN_KEYS_STATE_KEY}) is not version ${DOCUMENT_VERSION} with a "keys" array`);
  }
  const loaded = document.keys.map((entry: unknown, index: number): LoadedKey => {
    const key = entry as Partial<StoredKey>;
    const problem = (what: string): Error => new Error(`token service: key ${index} of ${TOKEN_KEYS_STATE_KEY}: ${what}`);
    if (typeof entry !== 'object' || entry === null) throw problem('not an object');
    if (typeof key.kid !== 'string' || typeof key.alg !== 'string' || !ALGORITHMS.has(key.alg)) throw problem('bad kid or alg');
    for (const field of ['createdAt', 'activeFrom'] as const) if (!Number.isSafeInteger(key[field])) throw problem(`bad ${field}`);
    for (const field of ['retiredAt', 'removeAt'] as const) if (key[field] !== null && !Number.isSafeInteger(key[field])) throw problem(`bad ${field}`);
    if (typeof key.privateJwk !== 'object' || key.privateJwk === null || typeof key.publicJwk !== 'object' || key.publicJwk === null) throw problem('missing JWK');
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey({ key: key.privateJwk, format: 'jwk' });
    } catch (error) {
      throw problem(`private key unusable: ${(error as Error).message}`);
    }
    const publicKey = createPublicKey(privateKey);
    const stored = key as StoredKey;
    // The published key is derived from the private key, never taken from the document as written.
    const publicJwk = Object.freeze({ ...publicMembers(publicKey.export({ format: 'jwk' }) as JWK), kid: stored.kid, alg: stored.alg, use: 'sig' });
    return { stored: Object.freeze({ ...stored, publicJwk }), privateKey, publicKey };
  });
  return loaded.sort((a, b) => b.stored.createdAt - a.stored.createdAt);
}
