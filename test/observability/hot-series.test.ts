import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { HotCounter, HotGauge, HotHistogram } from '../../src/observability/hot-series.ts';

const BUCKETS = [0.005, 0.01, 0.1, 1, 10];
const DEF = { name: 'test_duration_seconds', help: 'A test histogram.', labels: ['route', 'status_class'] };

describe('hot series', () => {
  it('a histogram scrapes exactly as prom-client’s own for the same observations', async () => {
    const hotRegistry = new Registry();
    const promRegistry = new Registry();
    const hot = new HotHistogram({ ...DEF, buckets: BUCKETS }, hotRegistry);
    const prom = new Histogram({ name: DEF.name, help: DEF.help, labelNames: DEF.labels, buckets: BUCKETS, registers: [promRegistry] });
    // Values on the bounds, between them, above the last one; two series.
    const observations: Array<[string, string, number]> = [
      ['a', '2xx', 0.005], ['a', '2xx', 0.0051], ['a', '2xx', 0.2], ['a', '2xx', 11], ['b', '4xx', 0], ['b', '4xx', 10], ['a', '2xx', 0.001],
    ];
    const series = new Map<string, ReturnType<HotHistogram['of']>>();
    for (const [route, status, value] of observations) {
      const key = `${route}/${status}`;
      if (!series.has(key)) series.set(key, hot.of(route, status));
      series.get(key)!.observe(value);
      prom.observe({ route, status_class: status }, value);
    }
    assert.equal(await hotRegistry.metrics(), await promRegistry.metrics());
    assert.match(await hotRegistry.metrics(), /test_duration_seconds_bucket\{le="0\.005",route="a",status_class="2xx"\} 2/);
  });

  it('a counter and a gauge scrape as prom-client’s, and of() returns the same series for the same labels', async () => {
    const hotRegistry = new Registry();
    const promRegistry = new Registry();
    const counter = new HotCounter({ name: 'test_decisions_total', help: 'Decisions.', labels: ['stage', 'reason'] }, hotRegistry);
    const gauge = new HotGauge({ name: 'test_in_flight', help: 'In flight.', labels: ['listener'] }, hotRegistry);
    const promCounter = new Counter({ name: 'test_decisions_total', help: 'Decisions.', labelNames: ['stage', 'reason'], registers: [promRegistry] });
    const promGauge = new Gauge({ name: 'test_in_flight', help: 'In flight.', labelNames: ['listener'], registers: [promRegistry] });
    assert.equal(counter.of('credential', 'token.expired'), counter.of('credential', 'token.expired'));
    counter.of('credential', 'token.expired').inc();
    counter.of('credential', 'token.expired').inc(2);
    counter.of('all', 'allowed').inc();
    promCounter.inc({ stage: 'credential', reason: 'token.expired' }, 3);
    promCounter.inc({ stage: 'all', reason: 'allowed' });
    gauge.of('public').inc();
    gauge.of('public').inc();
    gauge.of('public').dec();
    promGauge.inc({ listener: 'public' });
    assert.equal(await hotRegistry.metrics(), await promRegistry.metrics());
  });

  it('refuses what would corrupt a series: the wrong number of labels, a non-finite value, bad buckets', () => {
    const registry = new Registry();
    const hot = new HotHistogram({ ...DEF, buckets: BUCKETS }, registry);
    assert.throws(() => hot.of('only-one'), /expected 2 label values/);
    assert.throws(() => hot.of('a', '2xx').observe(Number.NaN), /not a finite number/);
    assert.throws(() => new HotHistogram({ ...DEF, name: 'other', buckets: [1, 1] }, registry), /increasing/);
    assert.throws(() => new HotHistogram({ ...DEF, name: 'le_label', labels: ['le'], buckets: [1] }, registry), /reserved/);
  });
});
