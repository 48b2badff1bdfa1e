/**
 * Requests in flight per partner, on this instance (`max_concurrent`, SECURITY.md item 12 and
 * API4). A slot is taken when the request passes the rate-limit stage and given back when the
 * exchange ends, whatever the outcome; the release function may be called any number of times,
 * so every path that ends a request can call it without counting twice.
 */
export class ConcurrencyLimiter {
  /** Partners with at least one request in flight; an entry goes when its count drops to zero. */
  readonly #inFlight = new Map<string, number>();

  /**
   * Takes a slot for `partnerId`, or returns null when `max` are already in flight. A null `max`
   * means no limit: nothing is counted and the release does nothing.
   */
  acquire(partnerId: string, max: number | null): (() => void) | null {
    if (max === null) return noop;
    const current = this.#inFlight.get(partnerId) ?? 0;
    // A reload that lowers `max` below what is in flight refuses new requests until enough end.
    if (current >= max) return null;
    this.#inFlight.set(partnerId, current + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const remaining = (this.#inFlight.get(partnerId) ?? 1) - 1;
      if (remaining <= 0) this.#inFlight.delete(partnerId);
      else this.#inFlight.set(partnerId, remaining);
    };
  }

  /** Requests of `partnerId` in flight (counted ones only). */
  inFlight(partnerId: string): number {
    return this.#inFlight.get(partnerId) ?? 0;
  }
}

const noop = (): void => {};
