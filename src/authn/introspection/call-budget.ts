/**
 * The call budget of one introspection endpoint: a token bucket refilled at `perSecond` calls
 * per second, holding at most one second's worth. Every cache miss of the endpoint draws from
 * the same bucket, so junk tokens sprayed at the gateway cannot turn it into an amplifier
 * against the authorization server (SECURITY.md IN-07; RFC 7662 §4 on token scanning).
 */
export class CallBudget {
  readonly #perSecond: number;
  #available: number;
  #updatedAt: number;

  constructor(perSecond: number, nowMs: number) {
    this.#perSecond = perSecond;
    this.#available = perSecond;
    this.#updatedAt = nowMs;
  }

  /** Takes one call from the budget; false when none is left. */
  tryTake(nowMs: number): boolean {
    // A clock that steps back refills nothing (and never lets the bucket go negative).
    if (nowMs > this.#updatedAt) {
      this.#available = Math.min(this.#perSecond, this.#available + ((nowMs - this.#updatedAt) * this.#perSecond) / 1000);
      this.#updatedAt = nowMs;
    }
    if (this.#available < 1) return false;
    this.#available -= 1;
    return true;
  }
}
