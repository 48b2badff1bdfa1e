/**
 * The per-request metrics (request duration, decisions, upstream duration, requests in flight)
 * as plain numbers the request path updates directly, exported through prom-client's registry at
 * scrape time. prom-client parses and hashes a label object on every observation, even through a
 * label child: that cost more than the rest of the metrics work of a request. Here a series is an
 * object the caller looks up once per label combination and then updates with a few additions.
 *
 * Only what the registry reads is implemented: `name`, `help`, `type`, `get()` and `reset()`.
 * The text is prom-client's own (its registry formats the values), so a scrape looks the same.
 */
import type { Registry } from 'prom-client';

type Labels = Readonly<Record<string, string>>;

interface ExportedValue {
  readonly labels: Labels;
  /** Written after `labels` (prom-client puts a bucket's `le` first, then the series' labels). */
  readonly sharedLabels?: Labels;
  readonly value: number;
  readonly metricName?: string;
}

interface ExportedMetric {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge' | 'histogram';
  readonly values: ExportedValue[];
  readonly aggregator: 'sum';
}

interface SeriesDefinition {
  readonly name: string;
  readonly help: string;
  readonly labels: readonly string[];
}

/** Label values by name, in the order the definition declares them. */
function labelsOf(names: readonly string[], values: readonly string[]): Labels {
  if (values.length !== names.length) throw new Error(`expected ${names.length} label values, got ${values.length}`);
  const labels: Record<string, string> = {};
  names.forEach((name, index) => (labels[name] = values[index]!));
  return labels;
}

abstract class HotMetric<Series> {
  readonly name: string;
  readonly help: string;
  readonly aggregator = 'sum' as const;
  protected readonly labelNames: readonly string[];
  protected readonly series = new Map<string, { readonly labels: Labels; readonly series: Series }>();

  constructor(definition: SeriesDefinition, registry: Registry) {
    this.name = definition.name;
    this.help = definition.help;
    this.labelNames = definition.labels;
    // The registry only calls get() (and reset()); it is typed for prom-client's own classes.
    registry.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  /** The series of these label values, created on first use. Callers keep it: no lookup per update. */
  of(...values: string[]): Series {
    const key = values.join('\u0000');
    let entry = this.series.get(key);
    if (entry === undefined) {
      entry = { labels: labelsOf(this.labelNames, values), series: this.create() };
      this.series.set(key, entry);
    }
    return entry.series;
  }

  reset(): void {
    this.series.clear();
  }

  protected abstract create(): Series;
  abstract get(): Promise<ExportedMetric>;

  protected exported(type: ExportedMetric['type'], values: ExportedValue[]): ExportedMetric {
    return { name: this.name, help: this.help, type, aggregator: this.aggregator, values };
  }
}

export class HotCounterSeries {
  value = 0;
  inc(by = 1): void {
    this.value += by;
  }
}

export class HotCounter extends HotMetric<HotCounterSeries> {
  readonly type = 'counter' as const;
  protected create(): HotCounterSeries {
    return new HotCounterSeries();
  }
  async get(): Promise<ExportedMetric> {
    return this.exported(this.type, [...this.series.values()].map(({ labels, series }) => ({ labels, value: series.value })));
  }
}

export class HotGaugeSeries {
  value = 0;
  inc(): void {
    this.value += 1;
  }
  dec(): void {
    this.value -= 1;
  }
}

export class HotGauge extends HotMetric<HotGaugeSeries> {
  readonly type = 'gauge' as const;
  protected create(): HotGaugeSeries {
    return new HotGaugeSeries();
  }
  async get(): Promise<ExportedMetric> {
    return this.exported(this.type, [...this.series.values()].map(({ labels, series }) => ({ labels, value: series.value })));
  }
}

export class HotHistogramSeries {
  /** Observations per bucket (not cumulative); the last slot counts those above every bound. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  readonly #bounds: Float64Array;

  constructor(bounds: Float64Array) {
    this.#bounds = bounds;
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    // A NaN would poison the sum for good: prom-client refuses one, so does this.
    if (!Number.isFinite(value)) throw new TypeError(`not a finite number: ${value}`);
    const bounds = this.#bounds;
    let index = 0;
    while (index < bounds.length && value > bounds[index]!) index++;
    this.counts[index]! += 1;
    this.sum += value;
    this.count += 1;
  }
}

export class HotHistogram extends HotMetric<HotHistogramSeries> {
  readonly type = 'histogram' as const;
  readonly #bounds: Float64Array;

  constructor(definition: SeriesDefinition & { readonly buckets: readonly number[] }, registry: Registry) {
    super(definition, registry);
    if (definition.labels.includes('le')) throw new Error('"le" is reserved for histogram buckets');
    const bounds = [...definition.buckets];
    if (bounds.some((bound, index) => !Number.isFinite(bound) || (index > 0 && bound <= bounds[index - 1]!))) throw new Error('histogram buckets must be finite and increasing');
    this.#bounds = Float64Array.from(bounds);
  }

  protected create(): HotHistogramSeries {
    return new HotHistogramSeries(this.#bounds);
  }

  async get(): Promise<ExportedMetric> {
    const values: ExportedValue[] = [];
    for (const { labels, series } of this.series.values()) {
      let cumulative = 0;
      this.#bounds.forEach((bound, index) => {
        cumulative += series.counts[index]!;
        values.push({ labels: { le: String(bound) }, sharedLabels: labels, value: cumulative, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { le: '+Inf' }, sharedLabels: labels, value: series.count, metricName: `${this.name}_bucket` });
      values.push({ labels: {}, sharedLabels: labels, value: series.sum, metricName: `${this.name}_sum` });
      values.push({ labels: {}, sharedLabels: labels, value: series.count, metricName: `${this.name}_count` });
    }
    return this.exported(this.type, values);
  }
}
