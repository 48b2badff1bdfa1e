import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Row, Sample } from '../lib/report.ts';
import { goalsOf, median, pairedRatio, resultsTable, summarise, verdicts } from '../lib/report.ts';

function sample(round: number, rps: number, p99: number, cpuPerReq: number): Sample {
  const requests = rps * 10;
  return {
    round,
    requests,
    seconds: 10,
    requestsPerSecond: rps,
    latencyMs: { '50': p99 / 4, '99': p99 },
    socketErrors: { connect: 0, read: 0, write: 0, timeout: 0 },
    non2xx3xx: 0,
    cpuMicros: cpuPerReq * requests,
    upstreamCpuMicros: 20 * requests,
    loadGenCpuMicros: 30 * requests,
    windowSeconds: 10,
    loadCoreBusy: 40,
    loadCoreOther: 1,
    serverCoreBusy: 100,
    serverCoreOther: 1,
    steal: 0,
    rssBytes: 100 * 2 ** 20,
  };
}

function rows(gatewayRps: number[], gatewayP99: number): Row[] {
  return [
    {
      target: 'portcullis-plain',
      description: '',
      status: 'ok',
      baseline: false,
      goal: { against: 'fastify-proxy', minThroughputRatio: 1.3, lowerP99: true },
      cpuOf: 'gateway',
      samples: gatewayRps.map((rps, i) => sample(i + 1, rps, gatewayP99, 80)),
    },
    {
      target: 'fastify-proxy',
      description: '',
      status: 'ok',
      baseline: true,
      cpuOf: 'proxy',
      samples: [sample(1, 4000, 20, 200), sample(2, 4200, 18, 200), sample(3, 3900, 25, 200)],
    },
  ];
}

test('median of odd and even counts', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.ok(Number.isNaN(median([])));
});

test('summarises medians of the rounds and ratios to the baseline', () => {
  const table = rows([6000, 5000, 5600], 10);
  summarise(table);
  assert.equal(table[0]!.summary!.requestsPerSecond, 5600);
  assert.equal(table[1]!.summary!.requestsPerSecond, 4000);
  // Per round 6000/4000, 5000/4200, 5600/3900: the median of those, not 5600 / 4000.
  assert.equal(table[0]!.summary!.throughputRatio, 5600 / 3900);
  assert.equal(table[1]!.summary!.p99Ms, 20);
  assert.equal(table[0]!.summary!.p99Ratio, 0.5);
  assert.equal(table[0]!.summary!.cpuMicrosPerRequest, 80);
  assert.match(resultsTable(table), /\| portcullis-plain \| +5,600 \|/);
});

test('a ratio pairs the rounds: a machine whose speed drifts during the run moves both sides of a round alike', () => {
  // Five interleaved rounds of one run on a VM whose speed changed by half during it.
  const row = { samples: [5315, 6041, 6418, 8838, 8402].map((rps, i) => sample(i + 1, rps, 10, 100)) };
  const base = { samples: [7465, 6989, 11153, 9523, 9559].map((rps, i) => sample(i + 1, rps, 10, 100)) };
  const paired = pairedRatio(row, base, (x) => x.requestsPerSecond);
  assert.equal(paired, 6041 / 6989); // the median of 0.71, 0.86, 0.58, 0.93, 0.88
  assert.ok(Math.abs(median(row.samples.map((x) => x.requestsPerSecond)) / median(base.samples.map((x) => x.requestsPerSecond)) - 0.67) < 0.01, 'the medians, from different rounds, would say 0.67×');
  // With no round in common: the ratio of the medians.
  assert.equal(pairedRatio({ samples: [sample(9, 3000, 10, 100)] }, base, (x) => x.requestsPerSecond), 3000 / 9523);
});

test('verdict MET when throughput ratio and p99 both hold', () => {
  const table = rows([6000, 5000, 5600], 10);
  summarise(table);
  assert.deepEqual(verdicts(table), [
    'portcullis-plain: 1.44× fastify-proxy throughput (target ≥ 1.3×), p99 10.00 ms vs 20.00 ms (target: lower): MET',
  ]);
});

test('verdict NOT MET when throughput is short or p99 is higher', () => {
  const slow = rows([4800, 4800, 4800], 10);
  summarise(slow);
  assert.match(verdicts(slow)[0]!, /1\.20× .*: NOT MET$/);
  const jittery = rows([6000, 6000, 6000], 30);
  summarise(jittery);
  assert.match(verdicts(jittery)[0]!, /1\.50× .*p99 30\.00 ms vs 20\.00 ms.*: NOT MET$/);
});

test('a skipped target gets a "not measured" verdict', () => {
  const table = rows([], 10);
  table[0]!.status = 'skipped';
  table[0]!.reason = 'src/cli/commands/serve.ts does not exist yet';
  summarise(table);
  assert.deepEqual(verdicts(table), ['portcullis-plain: not measured: portcullis-plain skipped (src/cli/commands/serve.ts does not exist yet)']);
});

/** portcullis-plain (6,000 req/s, 80 µs/req), a JWT row with a cost budget, an uncached one compared only. */
function jwtRows(jwtRps: number, uncachedRps: number): Row[] {
  const table = rows([6000, 6000, 6000], 10);
  table.push(
    {
      target: 'portcullis-jwt-es256',
      description: '',
      status: 'ok',
      baseline: false,
      goal: { against: 'portcullis-plain', minThroughputRatio: 0.75, lowerP99: false },
      cpuOf: 'gateway',
      samples: [sample(1, jwtRps, 12, 100)],
    },
    {
      target: 'portcullis-jwt-es256-uncached',
      description: '',
      status: 'ok',
      baseline: false,
      compare: 'portcullis-plain',
      cpuOf: 'gateway',
      samples: [sample(1, uncachedRps, 30, 300)],
    },
  );
  summarise(table);
  return table;
}

test('a goal below 1× is a cost budget: MET when the row keeps at least that share', () => {
  const lines = verdicts(jwtRows(4800, 2400));
  assert.equal(
    lines[1],
    'portcullis-jwt-es256: 0.80× portcullis-plain throughput (costs 20%; target ≥ 0.75×, a cost of at most 25%), CPU 100.0 vs 80.0 µs/req, p99 12.00 ms vs 10.00 ms: MET',
  );
  assert.equal(
    lines[2],
    'portcullis-jwt-es256-uncached: 0.40× portcullis-plain throughput (costs 60%), CPU 300.0 vs 80.0 µs/req, p99 30.00 ms vs 10.00 ms: no target, reported only',
  );
  assert.match(verdicts(jwtRows(4200, 2400))[1]!, /0\.70× .*costs 30%.*: NOT MET$/);
});

test('a failed row gets a "not measured" line against its comparison too', () => {
  const table = jwtRows(4800, 2400);
  table[3]!.status = 'failed';
  table[3]!.reason = '12 non-2xx/3xx responses in round 1';
  delete table[3]!.summary;
  assert.equal(verdicts(table)[2], 'portcullis-jwt-es256-uncached: not measured: portcullis-jwt-es256-uncached failed (12 non-2xx/3xx responses in round 1)');
});

/** Issue 8: a row with several goals, against HAProxy (wrk) and an mTLS row (TLS load generator). */
function peerRows(fullRps: number, fullP99: number): Row[] {
  const row = (target: string, rps: number, p99: number, extra: Partial<Row> = {}): Row => ({
    target,
    description: '',
    status: 'ok',
    baseline: false,
    cpuOf: 'proxy',
    loadGenerator: 'wrk',
    samples: [sample(1, rps, p99, 100)],
    ...extra,
  });
  const table = [
    row('portcullis-full-rs256', fullRps, fullP99, {
      cpuOf: 'gateway',
      goal: [
        { against: 'haproxy-jwt-rs256', minThroughputRatio: 1, lowerP99: true },
        { against: 'fastify-jwt-rs256', minThroughputRatio: 2, lowerP99: false },
      ],
    }),
    row('portcullis-full-mtls-bound', 9000, 8, { cpuOf: 'gateway', loadGenerator: 'tls-load', goal: [{ against: 'fastify-jwt-rs256', minThroughputRatio: 2, lowerP99: false }] }),
    row('haproxy-jwt-rs256', 10000, 6, { baseline: true }),
    row('fastify-jwt-rs256', 4000, 20),
  ];
  summarise(table);
  return table;
}

test('goalsOf: none, one goal, a list', () => {
  const goal = { against: 'x', minThroughputRatio: 1, lowerP99: false };
  assert.deepEqual(goalsOf({}), []);
  assert.deepEqual(goalsOf({ goal }), [goal]);
  assert.deepEqual(goalsOf({ goal: [goal, goal] }), [goal, goal]);
});

test('a row with several goals gets one verdict line per goal, each MET or NOT MET on its own', () => {
  const lines = verdicts(peerRows(11000, 5));
  assert.equal(lines[0], 'portcullis-full-rs256: 1.10× haproxy-jwt-rs256 throughput (target ≥ 1×), p99 5.00 ms vs 6.00 ms (target: lower): MET');
  assert.equal(lines[1], 'portcullis-full-rs256: 2.75× fastify-jwt-rs256 throughput (target ≥ 2×), p99 5.00 ms vs 20.00 ms: MET');
  const slower = verdicts(peerRows(7000, 7));
  assert.match(slower[0]!, /^portcullis-full-rs256: 0\.70× haproxy-jwt-rs256 .*: NOT MET$/);
  assert.match(slower[1]!, /^portcullis-full-rs256: 1\.75× fastify-jwt-rs256 .*: NOT MET$/);
  const fasterButJittery = verdicts(peerRows(11000, 9));
  assert.match(fasterButJittery[0]!, /p99 9\.00 ms vs 6\.00 ms \(target: lower\): NOT MET$/);
  assert.match(fasterButJittery[1]!, /: MET$/);
});

test('a failed row with several goals gets one "not measured" line; a missing comparison row is named', () => {
  const table = peerRows(11000, 5);
  table[0]!.status = 'failed';
  table[0]!.reason = 'process 42 exited during the run';
  delete table[0]!.summary;
  table[3]!.status = 'skipped';
  delete table[3]!.summary;
  assert.deepEqual(verdicts(table), [
    'portcullis-full-rs256: not measured: portcullis-full-rs256 failed (process 42 exited during the run)',
    'portcullis-full-mtls-bound: not measured: fastify-jwt-rs256 skipped',
  ]);
});

test('a ratio across load generators is labelled, in the verdict and in the table', () => {
  const table = peerRows(11000, 5);
  const lines = verdicts(table);
  assert.equal(
    lines[2],
    'portcullis-full-mtls-bound: 2.25× fastify-jwt-rs256 throughput (target ≥ 2×), p99 8.00 ms vs 20.00 ms [across load generators: the TLS load generator vs wrk]: MET',
  );
  assert.doesNotMatch(lines[0]!, /across/);
  const text = resultsTable(table);
  assert.match(text, /\| portcullis-full-mtls-bound \| +9,000 \|.*\| +0\.90× † \| +1\.33× † \|/);
  assert.match(text, /\| portcullis-full-rs256 +\| +11,000 \|.*\| +1\.10× \| +0\.83× \|/);
  assert.match(text, /\n† across load generators: the row was driven by the TLS load generator, haproxy-jwt-rs256 by wrk/);
  // No mark, no note, when every row had the same generator.
  const sameGenerator = peerRows(11000, 5).filter((row) => row.loadGenerator === 'wrk');
  assert.doesNotMatch(resultsTable(sameGenerator), /†/);
});
