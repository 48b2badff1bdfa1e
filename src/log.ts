/**
 * The application log (lifecycle, reloads, warnings): JSON lines on stderr, apart from the
 * decision log. Few call sites, none on the request path, so no logging library.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export type LogListener = (entry: { level: LogLevel; event: string; [key: string]: unknown }) => void;

let listener: LogListener | null = null;
let quiet = process.env['PORTCULLIS_LOG'] === 'silent';

/** Tests and the demo can observe or silence the log. */
export function setLogListener(next: LogListener | null, options?: { quiet?: boolean }): void {
  listener = next;
  if (options?.quiet !== undefined) quiet = options.quiet;
}

export function log(level: LogLevel, event: string, fields: Record<string, unknown> = {}): void {
  const entry = { '@timestamp': new Date().toISOString(), level, event, ...fields };
  listener?.(entry);
  if (!quiet) process.stderr.write(JSON.stringify(entry) + '\n');
}
