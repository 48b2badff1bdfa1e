/**
 * Copies of the combined stream beyond the file (docs/audit.md "Sinks"). The file stays the
 * source of truth — it alone is verified and its failure alone refuses requests (AU-04) — so a
 * sink is fed each line only once it is in the file, and a sink that fails or falls behind never
 * blocks or fails the trail: it counts what it could not deliver, logs once per episode, and
 * publishes on `portcullis:audit:sink-failure` for the metrics.
 */
import { auditSinkFailureChannel } from '../../observability/channels.ts';
import type { AuditSinkFailureMessage } from '../../observability/channels.ts';

export interface AuditSink {
  readonly name: 'stdout' | 'otlp';
  /** One chained line of the combined stream, exactly as written (newline included), and its object. Never throws. */
  write(line: Buffer, record: Record<string, unknown>): void;
  /** Lines this sink could not deliver (dropped or failed to export). */
  failures(): number;
  /** Delivers what is buffered (bounded by the sink's timeout), then stops. Never rejects. */
  close(): Promise<void>;
}


export function publishSinkFailure(sink: AuditSink['name'], records: number): void {
  if (auditSinkFailureChannel.hasSubscribers) auditSinkFailureChannel.publish({ sink, records } satisfies AuditSinkFailureMessage);
}
