/**
 * Work held back to the end of the event loop's current turn and then run together.
 *
 * Why: every socket write that makes a sleeping reader runnable costs a wake-up, and across cores
 * (on a VM above all) that wake-up is the most expensive part of a small response — measured on
 * the 2-core bench VM, ~11 µs of a ~95 µs proxied request when each response was written the
 * moment its upstream answer was parsed. The upstream answers that one turn of the loop parses
 * (one epoll batch) are written back to back here instead, so a client process woken by the first
 * write is still awake for the next ones (docs/benchmarks.md, "Responses written at the end of the
 * loop's turn").
 *
 * Bounded: a task waits at most until the current turn's I/O callbacks are done (`setImmediate`
 * runs in the check phase right after them), never for another event.
 */

type Task = () => void;

let queued: Task[] = [];
let scheduled = false;

/** Runs `task` after the I/O callbacks of the current loop turn, in the order tasks were queued. */
export function atEndOfTurn(task: Task): void {
  queued.push(task);
  if (!scheduled) {
    scheduled = true;
    setImmediate(runQueued);
  }
}

function runQueued(): void {
  // Tasks queued while these run (a write that fails synchronously, say) go to the next turn.
  const tasks = queued;
  queued = [];
  scheduled = false;
  for (const task of tasks) {
    try {
      task();
    } catch (error) {
      // One failing task must not strand the others; each task handles its own failures, so
      // this is a bug: surface it the way an uncaught exception in a callback would be.
      queueMicrotask(() => {
        throw error;
      });
    }
  }
}
