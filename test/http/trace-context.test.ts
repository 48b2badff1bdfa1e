// W3C Trace Context traceparent: strict parse, continue the trace, always a new span.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { newTraceparent, parseTraceparent } from '../../src/http/trace-context.ts';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';
const VALID = `00-${TRACE}-${PARENT}-01`;

describe('parseTraceparent', () => {
  test('a valid version-00 value', () => {
    assert.deepEqual(parseTraceparent(VALID), { traceId: TRACE, parentId: PARENT, flags: '01' });
  });

  const invalid: readonly [string | undefined, string][] = [
    [undefined, 'absent'],
    ['', 'empty'],
    [`01-${TRACE}-${PARENT}-01`, 'another version'],
    [`ff-${TRACE}-${PARENT}-01`, 'version ff'],
    [`00-${TRACE}-${PARENT}-01-extra`, 'version 00 with trailing data'],
    [`${VALID} `, 'trailing space'],
    [` ${VALID}`, 'leading space'],
    [`00-${TRACE.toUpperCase()}-${PARENT}-01`, 'uppercase trace id'],
    [`00-${TRACE}-${PARENT.toUpperCase()}-01`, 'uppercase parent id'],
    [`00-${TRACE}-${PARENT}-0A`, 'uppercase flags'],
    [`00-${'0'.repeat(32)}-${PARENT}-01`, 'all-zero trace id'],
    [`00-${TRACE}-${'0'.repeat(16)}-01`, 'all-zero parent id'],
    [`00-${TRACE.slice(1)}g-${PARENT}-01`, 'non-hex trace id'],
    [`00-${TRACE}-${PARENT.slice(1)}-01-`, 'short parent id'],
    [`00_${TRACE}_${PARENT}_01`, 'wrong separators'],
    [`00-${TRACE}-${PARENT}-1`, 'short flags'],
    [`0-0${TRACE}-${PARENT}-01`, 'shifted fields'],
  ];
  for (const [value, why] of invalid) {
    test(`invalid: ${why}`, () => assert.equal(parseTraceparent(value), null));
  }
});

const FORMAT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$/;

describe('newTraceparent', () => {
  test('continues the incoming trace with a fresh span and keeps the sampled flag', () => {
    const incoming = parseTraceparent(VALID);
    const next = newTraceparent(incoming);
    assert.equal(next.traceId, TRACE);
    assert.notEqual(next.spanId, PARENT);
    assert.equal(next.traceparent, `00-${TRACE}-${next.spanId}-01`);
  });

  test('only the sampled flag is carried over', () => {
    assert.match(newTraceparent(parseTraceparent(`00-${TRACE}-${PARENT}-ff`)).traceparent, /-01$/);
    assert.match(newTraceparent(parseTraceparent(`00-${TRACE}-${PARENT}-fe`)).traceparent, /-00$/);
  });

  test('starts a new trace without an incoming one', () => {
    const next = newTraceparent(null);
    const parts = FORMAT.exec(next.traceparent);
    assert.ok(parts, next.traceparent);
    assert.equal(parts[1], next.traceId);
    assert.equal(parts[2], next.spanId);
    assert.notEqual(next.traceId, '0'.repeat(32));
    assert.equal(parts[3], '00');
  });

  test('what we send parses as valid', () => {
    const next = newTraceparent(null);
    assert.deepEqual(parseTraceparent(next.traceparent), { traceId: next.traceId, parentId: next.spanId, flags: '00' });
  });

  test('ids are fresh every time, across pool refills', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const { spanId, traceId } = newTraceparent(null);
      assert.match(spanId, /^[0-9a-f]{16}$/);
      assert.match(traceId, /^[0-9a-f]{32}$/);
      seen.add(spanId);
      seen.add(traceId);
    }
    assert.equal(seen.size, 4000);
  });
});
