/**
 * The key sets of all configured issuers, kept in line with the configuration across reloads.
 *
 * A reload follows build → start → swap → close (STYLE.md item 8): a new or changed issuer's
 * set is started (disk cache, first fetch) while the previous set keeps answering, then swapped
 * in; an unchanged issuer keeps its set, keys, timers and cooldown; a removed issuer's set is
 * closed. Lookups are by issuer id, so a token's issuer picks its keys (SECURITY.md JWT-07).
 */
import type { CompiledIssuer } from '../../config/snapshot.ts';
import { createKeySet } from './key-set.ts';
import type { ManagedKeySet } from './key-set.ts';

interface Entry {
  readonly issuer: CompiledIssuer;
  readonly keySet: ManagedKeySet;
}

/**
 * True when a set built for `previous` serves `next` as well: the same `iss`, key source (and
 * for a file, the same content), algorithms, CA and fetch timings.
 */
export function sameKeySource(previous: CompiledIssuer, next: CompiledIssuer): boolean {
  if (previous.issuer !== next.issuer) return false;
  if (previous.source.kind !== next.source.kind) return false;
  if (previous.source.kind === 'file' && next.source.kind === 'file') {
    if (previous.source.path !== next.source.path || JSON.stringify(previous.source.jwks) !== JSON.stringify(next.source.jwks)) return false;
  } else if ((previous.source.kind === 'jwks_uri' || previous.source.kind === 'discovery') && (next.source.kind === 'jwks_uri' || next.source.kind === 'discovery') && previous.source.url !== next.source.url) {
    return false;
  }
  if (previous.algorithms.size !== next.algorithms.size || [...next.algorithms].some((alg) => !previous.algorithms.has(alg))) return false;
  if ((previous.ca === null) !== (next.ca === null) || (previous.ca && next.ca && !previous.ca.equals(next.ca))) return false;
  return (
    previous.refreshIntervalMs === next.refreshIntervalMs &&
    previous.unknownKidCooldownMs === next.unknownKidCooldownMs &&
    previous.fetchTimeoutMs === next.fetchTimeoutMs
  );
}

export class KeySets {
  readonly #dataDir: string;
  readonly #now: (() => number) | undefined;
  readonly #tokenServiceJwks: (() => unknown) | undefined;
  readonly #entries = new Map<string, Entry>();
  /** Syncs run one after another: a reload during a reload waits for it. */
  #queue: Promise<void> = Promise.resolve();
  #closed = false;

  /** `tokenServiceJwks`: the token service's JWKS in memory (src/tokens/keys.ts), null until its keys are open. */
  constructor(options: { dataDir: string; now?: () => number; tokenServiceJwks?: () => unknown }) {
    this.#dataDir = options.dataDir;
    this.#now = options.now;
    this.#tokenServiceJwks = options.tokenServiceJwks;
  }

  /** Re-reads the token service's keys now: after they were opened, rotated or refreshed from the state store. */
  async reloadTokenService(): Promise<void> {
    await Promise.all([...this.#entries.values()].filter((entry) => entry.issuer.source.kind === 'token_service').map((entry) => entry.keySet.reloadLocal()));
  }

  /** Brings the sets in line with `issuers`. Resolves once every new set has had its first load. */
  sync(issuers: ReadonlyMap<string, CompiledIssuer>): Promise<void> {
    const run = this.#queue.then(() => this.#sync(issuers));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #sync(issuers: ReadonlyMap<string, CompiledIssuer>): Promise<void> {
    if (this.#closed) return;
    const started: Array<[string, Entry]> = [];
    for (const [id, issuer] of issuers) {
      const current = this.#entries.get(id);
      if (current && sameKeySource(current.issuer, issuer)) continue;
      const keySet = createKeySet(issuer, {
        dataDir: this.#dataDir,
        ...(this.#now ? { now: this.#now } : {}),
        ...(this.#tokenServiceJwks ? { tokenServiceJwks: this.#tokenServiceJwks } : {}),
      });
      started.push([id, { issuer, keySet }]);
    }
    // start() never rejects; allSettled keeps one odd failure from stranding the others unswapped.
    await Promise.allSettled(started.map(([, entry]) => entry.keySet.start()));
    if (this.#closed) {
      for (const [, entry] of started) entry.keySet.close();
      return;
    }
    for (const [id, entry] of started) {
      this.#entries.get(id)?.keySet.close();
      this.#entries.set(id, entry);
    }
    for (const [id, entry] of this.#entries) {
      if (issuers.has(id)) continue;
      entry.keySet.close();
      this.#entries.delete(id);
    }
  }

  get(issuerId: string): ManagedKeySet | undefined {
    return this.#entries.get(issuerId)?.keySet;
  }

  closeAll(): void {
    this.#closed = true;
    for (const entry of this.#entries.values()) entry.keySet.close();
    this.#entries.clear();
  }
}
