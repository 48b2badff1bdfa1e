/**
 * Delivery of state events to this process's subscribers, shared by both drivers: in the order
 * the store applied them, each once, even when a subscriber causes a new change while it is
 * being called (that change is delivered after the current one); a failing subscriber is its
 * own problem — the store and the other subscribers go on.
 */
import type { StateEvent } from './store.ts';

export class StateEventFanout {
  readonly #listeners = new Set<(event: StateEvent) => void>();
  readonly #pending: StateEvent[] = [];
  #emitting = false;

  subscribe(listener: (event: StateEvent) => void): () => void {
    if (typeof listener !== 'function') throw new TypeError('state: listener must be a function');
    // A wrapper, so subscribing the same function twice gives two independent subscriptions.
    const entry = (event: StateEvent): void => listener(event);
    this.#listeners.add(entry);
    return () => {
      this.#listeners.delete(entry);
    };
  }

  emit(events: readonly StateEvent[]): void {
    if (events.length === 0) return;
    this.#pending.push(...events);
    if (this.#emitting) return;
    this.#emitting = true;
    try {
      for (let index = 0; index < this.#pending.length; index++) {
        const event = this.#pending[index]!;
        for (const listener of [...this.#listeners]) {
          try {
            listener(event);
          } catch {
            // A failing subscriber is its own problem; the store and the other subscribers go on.
          }
        }
      }
    } finally {
      this.#pending.length = 0;
      this.#emitting = false;
    }
  }

  clear(): void {
    this.#listeners.clear();
  }
}
