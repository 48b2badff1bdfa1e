/**
 * A field-by-field view of the configuration for the semantic checks.
 *
 * Each field of each list entry is parsed on its own with the schema's own field schema, so a
 * listener with a bad port still offers its valid name, zone and hostnames. That lets the
 * semantic checks run even when the schema pass failed — a file with a wrong port and a dangling
 * route reference reports both at once — and a field that failed its schema is simply absent
 * here, so no check reports the same mistake twice.
 *
 * Lists inside entries that other checks look into item by item (partner credentials and
 * grants, policy rules) get the same treatment one level down: one bad rule does not hide the
 * duplicate id of the next.
 */
import type { z } from 'zod';
import { api, config, listener, partner, route, upstream } from './schema.ts';
import type {
  ApiConfig,
  Config,
  GrantConfig,
  IntrospectionConfig,
  IssuerConfig,
  ListenerConfig,
  PartnerConfig,
  PartnerCredentialConfig,
  PolicyRuleConfig,
  RouteConfig,
  UpstreamConfig,
} from './schema.ts';

/** The fields of `T` that parsed; absent when missing or invalid. */
export type Lenient<T> = { readonly [K in keyof T]?: T[K] };

export interface SectionView<T, F = Lenient<T>> {
  /** One entry per list item, at the item's index. */
  readonly entries: readonly F[];
  /** Each item parsed whole by its schema (defaults applied), or null when any part of it failed. */
  readonly complete: readonly (T | null)[];
  /**
   * The keys each item wrote in the source (before defaults): "set" versus "defaulted". Null
   * when the item is not a mapping at all (the schema reports it; nothing else should).
   */
  readonly written: readonly (ReadonlySet<string> | null)[];
  /** False when the section is present but is not a list: nothing in it can be relied on. */
  readonly isList: boolean;
}

export type RulesView = SectionView<PolicyRuleConfig>;

export type RouteView = Lenient<Omit<RouteConfig, 'policies'>> & { readonly policies: RulesView };
export type ApiView = Lenient<Omit<ApiConfig, 'policies'>> & { readonly policies: RulesView };
export type PartnerView = Lenient<Omit<PartnerConfig, 'credentials' | 'grants' | 'policies'>> & {
  readonly credentials: SectionView<PartnerCredentialConfig>;
  readonly grants: SectionView<GrantConfig>;
  readonly policies: RulesView;
};

export interface ConfigView {
  readonly listeners: SectionView<ListenerConfig>;
  readonly upstreams: SectionView<UpstreamConfig>;
  readonly issuers: SectionView<IssuerConfig>;
  readonly introspection: SectionView<IntrospectionConfig>;
  readonly apis: SectionView<ApiConfig, ApiView>;
  readonly partners: SectionView<PartnerConfig, PartnerView>;
  readonly routes: SectionView<RouteConfig, RouteView>;
  /** The global rules. */
  readonly policies: RulesView;
  readonly ops: Lenient<Config['ops']>;
  readonly state: Lenient<Omit<Config['state'], 'redis'>> & {
    readonly redis?: Lenient<NonNullable<Config['state']['redis']>>;
    /** Keys of `state.redis` as written (a key whose value is invalid still counts as set). */
    readonly redisWritten?: ReadonlySet<string>;
  };
  readonly admin: Lenient<Config['admin']>;
  readonly rateLimits: Lenient<Config['rate_limits']>;
  readonly tokenService: Lenient<NonNullable<Config['token_service']>> | null;
}

const issuer = config.shape.issuers.unwrap().element;
const introspectionEndpoint = config.shape.introspection.unwrap().element;
const policyRule = config.shape.policies.unwrap().element;
const grant = partner.shape.grants.unwrap().element;
const partnerCredential = partner.shape.credentials.unwrap().element;

export function configView(data: unknown): ConfigView {
  const root = isRecord(data) ? data : {};
  return {
    listeners: section(listener, root['listeners'], byField(listener)),
    upstreams: section(upstream, root['upstreams'], byField(upstream)),
    issuers: section(issuer, root['issuers'], byField(issuer)),
    introspection: section(introspectionEndpoint, root['introspection'], byField(introspectionEndpoint)),
    apis: section(api, root['apis'], (item) => ({ ...fields(api, item), policies: rules(item['policies']) })),
    partners: section(partner, root['partners'], (item) => ({
      ...fields(partner, item),
      credentials: credentials(item['credentials']),
      grants: section(grant, item['grants'], byField(grant)),
      policies: rules(item['policies']),
    })),
    routes: section(route, root['routes'], (item) => ({ ...fields(route, item), policies: rules(item['policies']) })),
    policies: rules(root['policies']),
    ops: isRecord(root['ops']) || root['ops'] === undefined ? fields(config.shape.ops.unwrap(), root['ops'] ?? {}) : {},
    state: stateView(root['state']),
    admin: isRecord(root['admin']) ? fields(config.shape.admin.unwrap(), root['admin']) : {},
    rateLimits: isRecord(root['rate_limits']) ? fields(config.shape.rate_limits.unwrap(), root['rate_limits']) : {},
    tokenService: isRecord(root['token_service']) ? fields(config.shape.token_service.unwrap(), root['token_service']) : null,
  };
}

/** `state`, with `redis` read field by field too (its checks look at single fields). */
function stateView(raw: unknown): ConfigView['state'] {
  if (!isRecord(raw)) return {};
  const stateSchema = config.shape.state.unwrap();
  const redisSchema = stateSchema.shape.redis.unwrap();
  const redis = raw['redis'];
  return { ...fields(stateSchema, raw), ...(isRecord(redis) ? { redis: fields(redisSchema, redis), redisWritten: new Set(Object.keys(redis)) } : {}) };
}

/** True when every entry has a usable `key`, so "not among them" really means "not defined". */
export function allHave<F>(view: SectionView<unknown, F>, key: keyof F): boolean {
  return view.isList && view.entries.every((entry) => entry[key] !== undefined);
}

function rules(raw: unknown): RulesView {
  return section(policyRule, raw, byField(policyRule));
}

/**
 * Partner credentials are a union on `type`: each is read field by field with the schema of
 * its own type. An unknown type still offers its `id` (every type has the same id rule).
 */
function credentials(raw: unknown): SectionView<PartnerCredentialConfig> {
  const options = partnerCredential.options;
  return section(partnerCredential, raw, (item) => {
    const option = options.find((candidate) => candidate.shape.type.value === item['type']);
    return (option ? fields(option, item) : fields(options[0], { id: item['id'] })) as Lenient<PartnerCredentialConfig>;
  });
}

/** A list section: each item read by `read` (field by field), and parsed whole by `schema`. */
function section<T, F>(schema: z.ZodType<T>, raw: unknown, read: (item: Record<string, unknown>) => F): SectionView<T, F> {
  if (raw === undefined) return { entries: [], complete: [], written: [], isList: true };
  if (!Array.isArray(raw)) return { entries: [], complete: [], written: [], isList: false };
  return {
    entries: raw.map((item) => read(isRecord(item) ? item : {})),
    complete: raw.map((item) => {
      const result = schema.safeParse(item);
      return result.success ? result.data : null;
    }),
    written: raw.map((item) => (isRecord(item) ? new Set(Object.keys(item)) : null)),
    isList: true,
  };
}

function byField<S extends z.ZodObject>(schema: S): (item: Record<string, unknown>) => Lenient<z.output<S>> {
  return (item) => fields(schema, item);
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
