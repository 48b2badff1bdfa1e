/**
 * A field-by-field view of the configuration for the semantic checks.
 *
 * Each field of each list entry is parsed on its own with the schema's own field schema, so a
 * listener with a bad port still offers its valid name, zone and hostnames. That lets the
 * semantic checks run even when the schema pass failed — a file with a wrong port and a dangling
 * route reference reports both at once — and a field that failed its schema is simply absent
 * here, so no check reports the same mistake twice.
 */
import type { z } from 'zod';
import { api, config, listener, partner, route, upstream } from './schema.ts';
import type { Config, ListenerConfig, RouteConfig, UpstreamConfig } from './schema.ts';

export type ApiConfig = Config['apis'][number];
export type PartnerConfig = Config['partners'][number];

/** The fields of `T` that parsed; absent when missing or invalid. */
export type Lenient<T> = { readonly [K in keyof T]?: T[K] };

export interface SectionView<T> {
  /** One entry per list item, at the item's index. */
  readonly entries: readonly Lenient<T>[];
  /** False when the section is present but is not a list: nothing in it can be relied on. */
  readonly isList: boolean;
}

export interface ConfigView {
  readonly listeners: SectionView<ListenerConfig>;
  readonly upstreams: SectionView<UpstreamConfig>;
  readonly apis: SectionView<ApiConfig>;
  readonly partners: SectionView<PartnerConfig>;
  readonly routes: SectionView<RouteConfig>;
  readonly ops: Lenient<Config['ops']>;
}

export function configView(data: unknown): ConfigView {
  const root = isRecord(data) ? data : {};
  return {
    listeners: section(listener, root['listeners']),
    upstreams: section(upstream, root['upstreams']),
    apis: section(api, root['apis']),
    partners: section(partner, root['partners']),
    routes: section(route, root['routes']),
    ops: isRecord(root['ops']) || root['ops'] === undefined ? fields(config.shape.ops.unwrap(), root['ops'] ?? {}) : {},
  };
}

/** True when every entry has a usable `key`, so "not among them" really means "not defined". */
export function allHave<T>(view: SectionView<T>, key: keyof T): boolean {
  return view.isList && view.entries.every((entry) => entry[key] !== undefined);
}

function section<S extends z.ZodObject>(schema: S, raw: unknown): SectionView<z.output<S>> {
  if (raw === undefined) return { entries: [], isList: true };
  if (!Array.isArray(raw)) return { entries: [], isList: false };
  return { entries: raw.map((item) => fields(schema, item)), isList: true };
}

function fields<S extends z.ZodObject>(schema: S, raw: unknown): Lenient<z.output<S>> {
  const item = isRecord(raw) ? raw : {};
  const out: Record<string, unknown> = {};
  for (const [key, fieldSchema] of Object.entries(schema.shape as Record<string, z.ZodType>)) {
    const result = fieldSchema.safeParse(item[key]);
    if (result.success && result.data !== undefined) out[key] = result.data;
  }
  return out as Lenient<z.output<S>>;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
