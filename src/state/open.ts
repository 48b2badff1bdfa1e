/**
 * Opens the configured state driver. The Redis client is loaded only when Redis is configured,
 * so the embedded default pulls in no network client.
 */
import type { CompiledState } from '../config/snapshot.ts';
import type { StateStore } from './store.ts';

export async function openStateStore(state: CompiledState, options: { instanceId?: string } = {}): Promise<StateStore> {
  if (state.driver === 'redis') {
    if (state.redis === null) throw new Error('state.driver is redis but state.redis is not configured');
    const { openRedisStore } = await import('./redis.ts');
    return openRedisStore({ ...state.redis, propagationTimeoutMs: state.propagationTimeoutMs, ...(options.instanceId ? { instanceId: options.instanceId } : {}) });
  }
  const { openEmbeddedStore } = await import('./embedded.ts');
  return openEmbeddedStore({ path: state.sqlitePath, propagationTimeoutMs: state.propagationTimeoutMs, ...(options.instanceId ? { instanceId: options.instanceId } : {}) });
}
