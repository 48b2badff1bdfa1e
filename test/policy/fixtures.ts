// Hand-built snapshot pieces for policy tests: grants and rules go through the real compilers;
// partners, routes and principals are plain objects shaped like the snapshot's.
import assert from 'node:assert/strict';
import type { Principal } from '../../src/authn/principal.ts';
import type { GrantConfig, PolicyRuleConfig } from '../../src/config/schema.ts';
import type { CompiledApi, CompiledCredential, CompiledPartner, CompiledRoute, CompiledUpstream } from '../../src/config/snapshot.ts';
import { authorize, type AuthorizationRequest } from '../../src/policy/authorize.ts';
import { compileGrant } from '../../src/policy/grants.ts';
import { compileRule } from '../../src/policy/rules.ts';
import type { AuthorizationDecision, CompiledGrant, CompiledRule } from '../../src/policy/types.ts';

type ConstraintsConfig = NonNullable<GrantConfig['constraints']>;
type TimeWindowInput = Omit<NonNullable<ConstraintsConfig['time_windows']>[number], 'days'> & { days?: NonNullable<ConstraintsConfig['time_windows']>[number]['days'] };

export interface GrantInput {
  api?: string;
  environments?: string[];
  scopes?: string[];
  constraints?: Omit<Partial<ConstraintsConfig>, 'time_windows'> & { time_windows?: TimeWindowInput[] };
}

const ALL_DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;

/** A grant config with the schema's defaults filled in (what zod would produce). */
export function grantConfig(input: GrantInput = {}): GrantConfig {
  const constraints = input.constraints;
  return {
    api: input.api ?? 'orders',
    environments: input.environments ?? ['production'],
    scopes: input.scopes ?? [],
    ...(constraints === undefined
      ? {}
      : {
          constraints: {
            ...constraints,
            timezone: constraints.timezone ?? 'UTC',
            time_windows: constraints.time_windows?.map((window) => ({ ...window, days: window.days ?? [...ALL_DAYS] })),
          },
        }),
  };
}

/** A compiled grant; fails the test if the config does not compile. */
export function grant(input: GrantInput = {}, partnerId = 'acme', index = 0): CompiledGrant {
  const result = compileGrant(grantConfig(input), partnerId, index);
  assert.ok(result.ok, !result.ok ? `${result.path.join('.')}: ${result.message}` : '');
  return result.grant;
}

/** A compiled rule; fails the test if it does not compile. */
export function rule(config: PolicyRuleConfig, scope = 'policies'): CompiledRule {
  const result = compileRule(config, scope);
  assert.ok(result.ok, !result.ok ? result.message : '');
  return result.rule;
}

const upstream: CompiledUpstream = {
  id: 'backend',
  origin: 'http://127.0.0.1:9000',
  authority: '127.0.0.1:9000',
  preserveHost: false,
  servername: null,
  basePath: '',
  connections: 1,
  connectTimeoutMs: 1000,
  headersTimeoutMs: 1000,
  bodyTimeoutMs: 1000,
  keepAliveTimeoutMs: 1000,
  tls: null,
};

export function api(overrides: Partial<CompiledApi> = {}): CompiledApi {
  return { id: 'orders', name: null, audience: 'https://api.example.test/orders', sensitivity: 'internal', policies: [], introspection: null, requireSenderConstrained: false, tokenLifetimeMs: null, ...overrides };
}

export function route(overrides: Partial<CompiledRoute> = {}): CompiledRoute {
  const routeApi = overrides.api === undefined ? api() : overrides.api;
  return {
    id: 'list-orders',
    zone: 'partner',
    hosts: null,
    methods: ['GET'],
    path: '/orders/{id}',
    upstream,
    apiId: routeApi?.id ?? null,
    auth: 'required',
    maxBodyBytes: null,
    api: routeApi,
    credentials: ['jwt'],
    scopes: ['orders:read'],
    transactionType: 'read',
    sensitivity: 'internal',
    purpose: null,
    policies: [],
    rateLimit: null,
    requireSenderConstrained: false,
    ...overrides,
  };
}

/** A partner; `grants` are grouped by API like the snapshot does. */
export function partner(overrides: Partial<Omit<CompiledPartner, 'grants'>> & { grants?: CompiledGrant[] } = {}): CompiledPartner {
  const { grants = [grant({ scopes: ['orders:read', 'orders:write'] })], ...rest } = overrides;
  const byApi = new Map<string, CompiledGrant[]>();
  for (const g of grants) byApi.set(g.apiId, [...(byApi.get(g.apiId) ?? []), g]);
  return {
    id: 'acme',
    name: 'Acme Corp',
    owner: null,
    contact: null,
    tier: 'standard',
    attributes: {},
    status: 'active',
    agreement: { id: 'MSA-17', expiresAt: Date.parse('2030-01-01T00:00:00Z') },
    policies: [],
    limits: { rate: null, quotas: [], maxConcurrent: null },
    sourceNetworks: null,
    mtls: null,
    requireSenderConstrained: false,
    ...rest,
    grants: byApi,
  };
}

export function principal(overrides: Partial<Principal> & { scopeList?: string[] } = {}): Principal {
  const { scopeList = ['orders:read'], ...rest } = overrides;
  const owner = rest.partner ?? partner();
  const credential: CompiledCredential = { id: 'acme-jwt', type: 'jwt', partnerId: owner.id, issuerId: 'idp', clientId: 'acme-client', rateLimit: null };
  return {
    partner: owner,
    credential,
    credentialType: 'jwt',
    longLived: false,
    claims: Object.assign(Object.create(null) as Record<string, unknown>, { sub: 'acme-client', client_id: 'acme-client', scope: scopeList.join(' ') }),
    scopes: new Set(scopeList),
    tokenId: 'jti-1',
    issuer: 'https://idp.example.test',
    expiresAt: null,
    ...rest,
  };
}

/** Friday 2025-06-06 12:00 UTC unless told otherwise. */
export const NOON_FRIDAY = new Date('2025-06-06T12:00:00Z');

export function request(overrides: Partial<AuthorizationRequest> = {}): AuthorizationRequest {
  return {
    method: 'GET',
    path: '/orders/42',
    host: 'api.partner.test',
    params: { id: '42' },
    sourceIp: '10.1.2.3',
    environment: 'production',
    purpose: null,
    now: NOON_FRIDAY,
    ...overrides,
  };
}

export interface Scenario {
  partner?: CompiledPartner;
  route?: CompiledRoute;
  principal?: Partial<Principal> & { scopeList?: string[] };
  request?: Partial<AuthorizationRequest>;
  explain?: boolean;
}

/** Runs `authorize` over the default scenario with the given parts replaced. */
export function decide(scenario: Scenario = {}): AuthorizationDecision {
  const owner = scenario.partner ?? partner();
  return authorize({
    principal: principal({ partner: owner, ...scenario.principal }),
    route: scenario.route ?? route(),
    request: request(scenario.request),
    // The explanation is what most tests read; the request path runs without it (authorize.test.ts).
    explain: scenario.explain ?? true,
  });
}

/** Asserts a refusal with `reason` and returns it. */
export function refused(decision: AuthorizationDecision, reason: string): Extract<AuthorizationDecision, { allowed: false }> {
  assert.equal(decision.allowed, false, `expected a refusal with ${reason}, got allowed; steps:\n${explain(decision)}`);
  assert.ok(!decision.allowed);
  assert.equal(decision.reason, reason, explain(decision));
  return decision;
}

/** Asserts an allowing decision and returns it. */
export function allowed(decision: AuthorizationDecision): Extract<AuthorizationDecision, { allowed: true }> {
  assert.ok(decision.allowed, `expected allowed, got ${!decision.allowed ? decision.reason : ''}; steps:\n${explain(decision)}`);
  return decision;
}

/** The explanation as `portcullis explain` would print it: one `outcome check: detail` per line. */
export function explain(decision: AuthorizationDecision): string {
  return decision.steps.map((step) => `${step.outcome} ${step.check}: ${step.detail}`).join('\n');
}
