/**
 * Runs `task` for every item, at most `limit` at a time. A trail with thousands of partner
 * streams opens, reads and closes a file or two for each at start: one after another that is
 * thousands of round trips to the thread pool; a few dozen in flight keep it busy instead.
 * The first failure stops new tasks and is thrown once the running ones have ended.
 */
export async function forEachConcurrently<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { readonly error: unknown } | null = null;
  const worker = async (): Promise<void> => {
    while (failure === null && next < items.length) {
      const item = items[next++]!;
      try {
        await task(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== null) throw (failure as { readonly error: unknown }).error;
}
