import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDurationMs, parseWrk, wrkArgs } from '../lib/wrk.ts';

const REPORT = `Running 10s test @ http://127.0.0.1:41005/bench/hello
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.21ms    3.02ms  61.36ms   91.12%
    Req/Sec    12.13k     1.20k   14.02k    71.00%
  Latency Distribution
     50%    3.61ms
     75%    4.52ms
     90%    6.03ms
     99%   17.20ms
  120713 requests in 10.00s, 27.17MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:  12068.93
Transfer/sec:      2.72MB
@@wrk-cpu-ticks 612 388
`;

test('parses throughput, percentiles and errors from a wrk --latency report', () => {
  const result = parseWrk(REPORT);
  assert.equal(result.requests, 120713);
  assert.equal(result.seconds, 10);
  assert.equal(result.requestsPerSecond, 12068.93);
  assert.deepEqual(result.latencyMs, { '50': 3.61, '75': 4.52, '90': 6.03, '99': 17.2 });
  assert.deepEqual(result.socketErrors, { connect: 0, read: 2, write: 0, timeout: 3 });
  assert.equal(result.non2xx3xx, 7);
});

test('a clean report has no errors', () => {
  const clean = REPORT.replace(/  Socket errors.*\n/, '').replace(/  Non-2xx.*\n/, '');
  const result = parseWrk(clean);
  assert.deepEqual(result.socketErrors, { connect: 0, read: 0, write: 0, timeout: 0 });
  assert.equal(result.non2xx3xx, 0);
});

test('converts every wrk time unit to milliseconds', () => {
  assert.equal(parseDurationMs('850.00us'), 0.85);
  assert.equal(parseDurationMs('1.50ms'), 1.5);
  assert.equal(parseDurationMs('1.02s'), 1020);
  assert.equal(parseDurationMs('2.00m'), 120_000);
  assert.throws(() => parseDurationMs('1.0x'));
});

test('refuses output without the latency distribution', () => {
  assert.throws(() => parseWrk(REPORT.replace(/  Latency Distribution[\s\S]*?99%.*\n/, '')), /could not parse wrk output/);
});

test('builds the wrk command line with headers last before the URL', () => {
  assert.deepEqual(wrkArgs({ url: 'http://127.0.0.1:1/bench/hello', headers: { Host: 'localhost' }, cpu: 0, threads: 1, connections: 50, seconds: 10 }), [
    '-t1',
    '-c50',
    '-d10s',
    '--latency',
    '-H',
    'Host: localhost',
    'http://127.0.0.1:1/bench/hello',
  ]);
});

test('a wrk script goes before the URL, its arguments after "--"', () => {
  const args = wrkArgs({
    url: 'http://127.0.0.1:1/bench/hello',
    headers: { Host: 'localhost' },
    cpu: 0,
    threads: 2,
    connections: 50,
    seconds: 3,
    script: { path: '/b/rotate-tokens.lua', args: ['2', '/t/tokens.txt', '/t/tokens.position'] },
  });
  assert.deepEqual(args.slice(4), ['-H', 'Host: localhost', '-s', '/b/rotate-tokens.lua', 'http://127.0.0.1:1/bench/hello', '--', '2', '/t/tokens.txt', '/t/tokens.position']);
});
