/**
 * A one-line progress indicator for CLI commands (ECOSYSTEM.md §2.16). Progress goes to stderr so
 * stdout stays the command's result, safe to pipe.
 *
 * On a TTY the line is rewritten in place (`\r` + clear) and updates are throttled to about 10 Hz,
 * so a fast loop of updates does not flood the terminal; the latest message always shows. Anywhere
 * else (CI logs, a pipe, a test) each step is one plain line, because `\r` there only garbles.
 */
import { clearLine, cursorTo } from 'node:readline';

export interface ProgressStream {
  write(text: string): boolean;
  readonly isTTY?: boolean;
  readonly columns?: number;
}

export interface Progress {
  /** Shows what is happening now. */
  step(message: string): void;
  /** Clears the progress line; prints `message` as a final line if given. */
  done(message?: string): void;
}

export interface ProgressOptions {
  /** Default `process.stderr`. */
  readonly stream?: ProgressStream;
  /** Minimum time between two rewrites of the TTY line. Default 100 ms. */
  readonly intervalMs?: number;
  /** No output at all (e.g. under `--json`). */
  readonly quiet?: boolean;
}

export function createProgress(options: ProgressOptions = {}): Progress {
  const stream = options.stream ?? process.stderr;
  if (options.quiet) return { step() {}, done() {} };
  if (!stream.isTTY) {
    return {
      step: (message) => void stream.write(`${message}\n`),
      done: (message) => void (message === undefined || stream.write(`${message}\n`)),
    };
  }
  return ttyProgress(stream, options.intervalMs ?? 100);
}

function ttyProgress(stream: ProgressStream, intervalMs: number): Progress {
  let lastDrawn = -Infinity;
  let pending: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  let shown = false;

  const draw = (message: string): void => {
    // A line wider than the terminal wraps, and `\r` would then only rewrite its last row.
    // Some pseudo-terminals report 0 columns; treat that as unknown.
    const width = stream.columns || 80;
    const text = message.length >= width ? `${message.slice(0, Math.max(0, width - 2))}…` : message;
    clearLine(stream as NodeJS.WritableStream, 0);
    cursorTo(stream as NodeJS.WritableStream, 0);
    stream.write(text);
    shown = true;
    lastDrawn = performance.now();
  };

  return {
    step(message) {
      const wait = lastDrawn + intervalMs - performance.now();
      if (wait <= 0 && timer === undefined) return draw(message);
      pending = message;
      // unref: a pending redraw must never keep the process alive.
      timer ??= setTimeout(() => {
        timer = undefined;
        if (pending !== undefined) draw(pending);
        pending = undefined;
      }, Math.max(0, wait)).unref();
    },
    done(message) {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      pending = undefined;
      if (shown) {
        clearLine(stream as NodeJS.WritableStream, 0);
        cursorTo(stream as NodeJS.WritableStream, 0);
        shown = false;
      }
      if (message !== undefined) stream.write(`${message}\n`);
    },
  };
}
