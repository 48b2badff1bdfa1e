/**
 * The stdout sink: every line of the combined stream, byte for byte, as JSON lines on stdout
 * (for a container platform's log collector). A consumer that stops reading must not grow the
 * gateway's memory without bound: past `MAX_BUFFERED_BYTES` waiting in the stream, lines are
 * dropped and counted (the file still has them).
 */
import type { Writable } from 'node:stream';
import { log } from '../../log.ts';
import { publishSinkFailure } from './sink.ts';
import type { AuditSink } from './sink.ts';

const MAX_BUFFERED_BYTES = 16 * 1024 * 1024;

export function openStdoutSink(output: Writable = process.stdout): AuditSink {
  let dropped = 0;
  let dropping = false;
  let broken = false;
  output.on('error', (error: Error) => {
    if (broken) return;
    broken = true;
    log('error', 'audit.sink_failed', { sink: 'stdout', error: String(error) });
  });
  return {
    name: 'stdout',
    write(line) {
      if (broken || output.writableLength > MAX_BUFFERED_BYTES) {
        dropped += 1;
        publishSinkFailure('stdout', 1);
        if (!dropping) {
          dropping = true;
          log('error', 'audit.sink_dropping', { sink: 'stdout', reason: broken ? 'stdout is closed' : `more than ${MAX_BUFFERED_BYTES} bytes waiting` });
        }
        return;
      }
      if (dropping) {
        dropping = false;
        log('info', 'audit.sink_recovered', { sink: 'stdout', dropped_total: dropped });
      }
      output.write(line);
    },
    failures: () => dropped,
    close: () => Promise.resolve(),
  };
}
