/**
 * Connection pools to upstreams: one undici `Pool` per upstream (keep-alive, bounded
 * connections, timeouts, optional TLS and client certificate). Pools survive a reload when the
 * upstream's definition is unchanged, so a reload does not cost a round of new connections;
 * a pool whose upstream changed or disappeared is closed once its in-flight requests finish.
 */
import { createHash } from 'node:crypto';
import { Pool } from 'undici';
import type { CompiledUpstream } from '../config/snapshot.ts';

export interface UpstreamPool {
  readonly upstream: CompiledUpstream;
  readonly pool: Pool;
  /** Identity of the definition: equal keys can share one pool across snapshots. */
  readonly key: string;
}

export function upstreamKey(upstream: CompiledUpstream): string {
  const hash = createHash('sha256');
  const { tls, ...plain } = upstream;
  hash.update(JSON.stringify(plain));
  if (tls) {
    for (const part of [tls.ca, tls.cert, tls.key]) hash.update(part ?? '-').update('\0');
    hash.update(`${tls.servername}|${tls.rejectUnauthorized}`);
  }
  return hash.digest('hex');
}

export function createUpstreamPool(upstream: CompiledUpstream): UpstreamPool {
  const tls = upstream.tls;
  const pool = new Pool(upstream.origin, {
    connections: upstream.connections,
    pipelining: 1,
    keepAliveTimeout: upstream.keepAliveTimeoutMs,
    keepAliveMaxTimeout: Math.max(upstream.keepAliveTimeoutMs, 600_000),
    headersTimeout: upstream.headersTimeoutMs,
    bodyTimeout: upstream.bodyTimeoutMs,
    // Never let the upstream grow a response header section without bound.
    maxHeaderSize: 64 * 1024,
    connect: {
      timeout: upstream.connectTimeoutMs,
      ...(tls
        ? {
            ...(tls.ca ? { ca: tls.ca } : {}),
            ...(tls.cert ? { cert: tls.cert } : {}),
            ...(tls.key ? { key: tls.key } : {}),
            ...(tls.servername ? { servername: tls.servername } : {}),
            rejectUnauthorized: tls.rejectUnauthorized,
          }
        : {}),
    },
  });
  return { upstream, pool, key: upstreamKey(upstream) };
}

/**
 * Builds the pool set of a new snapshot, reusing the previous set's pools whose definition is
 * unchanged. Returns the pools the new set no longer uses, for the caller to close after drain.
 */
export function reconcilePools(
  upstreams: ReadonlyMap<string, CompiledUpstream>,
  previous: ReadonlyMap<string, UpstreamPool>,
): { pools: ReadonlyMap<string, UpstreamPool>; retired: UpstreamPool[] } {
  const byKey = new Map<string, UpstreamPool>();
  for (const entry of previous.values()) byKey.set(entry.key, entry);
  const pools = new Map<string, UpstreamPool>();
  for (const [id, upstream] of upstreams) {
    const reused = byKey.get(upstreamKey(upstream));
    if (reused) {
      pools.set(id, { ...reused, upstream });
      byKey.delete(reused.key);
    } else {
      pools.set(id, createUpstreamPool(upstream));
    }
  }
  return { pools, retired: [...byKey.values()] };
}
