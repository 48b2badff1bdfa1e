/**
 * The authorization decision (pipeline stage 4). Deny by default: a request is allowed only when
 * every link holds, checked in this order, and the first broken link decides the reason:
 *
 *   1. partner status        partner.suspended / partner.offboarded
 *   2. agreement              partner.agreement_missing / partner.agreement_expired
 *   3. a grant for the API    grant.missing
 *   then, per grant of the partner for that API, in configuration order:
 *   4. environment            grant.environment
 *   5. scopes                 scope.insufficient (token), grant.scope_not_granted (grant)
 *   6. route purpose          purpose.missing / purpose.not_allowed
 *   7. grant constraints      grant.time_window, grant.transaction_type, grant.purpose, grant.source_network
 *   and, once a grant passes every check:
 *   8. policy rules           policy.denied (route rules — global, API, route — then the partner's)
 *
 * The request is allowed when any grant passes 4–7 and no rule denies; when no grant passes, the
 * first grant's failure is reported. Every check appends a line to the explanation.
 */
import type { Principal } from '../authn/principal.ts';
import type { CompiledRoute } from '../config/snapshot.ts';
import type { RefusalReason } from '../errors.ts';
import type { AuthorizationDecision, CompiledGrant, ExplanationStep, PolicyVariables } from './types.ts';
import { describeRuleOutcome, describeTimeWindows, list } from './explain.ts';
import { fromAllowedNetwork, wallClock, withinTimeWindows } from './grants.ts';
import { isPrototypeName } from './prototype-names.ts';
import { policyContext } from './rules.ts';

export interface AuthorizationRequest {
  readonly method: string;
  /** The canonical path (as routed and forwarded). */
  readonly path: string;
  readonly host: string;
  readonly params: Readonly<Record<string, string>>;
  readonly sourceIp: string;
  /** The listener's environment. */
  readonly environment: string;
  /** The declared purpose (`declaredPurpose()`), or null. */
  readonly purpose: string | null;
  readonly now: Date;
}

export interface AuthorizationInput {
  readonly principal: Principal;
  readonly route: CompiledRoute;
  readonly request: AuthorizationRequest;
  /** Fill `steps` with every check and why (`portcullis explain`); otherwise `steps` is empty. */
  readonly explain?: boolean;
}

interface Refusal {
  readonly reason: RefusalReason;
  readonly detail: string;
  readonly decidedBy: string | null;
  readonly requiredScopes?: readonly string[];
}

export function authorize(input: AuthorizationInput): AuthorizationDecision {
  const { principal, route, request } = input;
  const partner = principal.partner;
  const steps: ExplanationStep[] = [];
  // The steps are for `portcullis explain` (and its tests); on the request path only a refusal's
  // detail is used, so the text of a passed check is written only when someone reads it.
  const explaining = input.explain === true;
  const record: RecordStep = (check, outcome, detail) => {
    if (explaining) steps.push({ stage: 'authorization', check, outcome, detail: typeof detail === 'string' ? detail : detail() });
  };
  const refuse = (refusal: Refusal): AuthorizationDecision => ({ allowed: false, ...refusal, steps });

  // 1. Only an active partner is let through (offboarding and suspension bite immediately).
  if (partner.status !== 'active') {
    const detail = `partner ${partner.id} is ${partner.status}`;
    record('partner.status', 'fail', detail);
    return refuse({ reason: partner.status === 'suspended' ? 'partner.suspended' : 'partner.offboarded', detail, decidedBy: null });
  }
  record('partner.status', 'pass', () => `partner ${partner.id} is active`);

  // 2. No current agreement, no access. Written `!(now < expiry)` so an invalid clock reads as expired.
  if (partner.agreement === null) {
    const detail = `partner ${partner.id} has no agreement`;
    record('partner.agreement', 'fail', detail);
    return refuse({ reason: 'partner.agreement_missing', detail, decidedBy: null });
  }
  const agreement = partner.agreement;
  if (!(request.now.getTime() < agreement.expiresAt)) {
    const detail = `agreement ${agreement.id} of partner ${partner.id} ended at ${isoTime(agreement.expiresAt)}`;
    record('partner.agreement', 'fail', detail);
    return refuse({ reason: 'partner.agreement_expired', detail, decidedBy: null });
  }
  record('partner.agreement', 'pass', () => `agreement ${agreement.id} is current (until ${isoTime(agreement.expiresAt)})`);

  // 3. A grant of this partner for the route's API.
  const apiId = route.api?.id ?? route.apiId;
  if (apiId === null) {
    const detail = `route ${route.id} belongs to no API, so no grant can cover it`;
    record('grant', 'fail', detail);
    return refuse({ reason: 'grant.missing', detail, decidedBy: null });
  }
  const grants = partner.grants.get(apiId) ?? [];
  if (grants.length === 0) {
    const detail = `partner ${partner.id} has no grant for API ${apiId}`;
    record('grant', 'fail', detail);
    return refuse({ reason: 'grant.missing', detail, decidedBy: null });
  }
  record('grant', 'pass', () => `partner ${partner.id} has ${grants.length === 1 ? 'a grant' : `${grants.length} grants`} for API ${apiId}: ${list(grants.map((g) => g.id))}`);

  // 4–7, per grant: the first grant that passes them all allows.
  const requestChecks = new RequestChecks(principal, route, request, record);
  let firstFailure: Refusal | null = null;
  let allowingGrant: CompiledGrant | null = null;
  for (const grant of grants) {
    const failure = checkGrant(grant, route, request, requestChecks, record);
    if (failure === null) {
      allowingGrant = grant;
      break;
    }
    firstFailure ??= failure;
  }
  if (allowingGrant === null) return refuse(firstFailure!);

  // 8. Policy rules: route rules (global → API → route, as compiled), then the partner's.
  const rules = [...route.policies, ...partner.policies];
  if (rules.length === 0) {
    record('policy.rule', 'skip', () => `no policy rules apply to route ${route.id} and partner ${partner.id}`);
  } else {
    // Converted once; every rule reads the same context.
    const context = policyContext(policyVariables(input, apiId, allowingGrant));
    for (const rule of rules) {
      const outcome = rule.evaluate(context);
      if (outcome.outcome === 'pass') {
        record('policy.rule', 'pass', () => describeRuleOutcome(rule, outcome));
        continue;
      }
      const detail = describeRuleOutcome(rule, outcome);
      record('policy.rule', 'fail', detail);
      const why = outcome.outcome === 'error' ? ` (evaluation error: ${outcome.message})` : '';
      return refuse({ reason: 'policy.denied', detail: `policy.${rule.reason}${why}`, decidedBy: rule.id });
    }
  }

  record('decision', 'pass', () => `allowed by grant ${allowingGrant.id}${rules.length > 0 ? ` and ${rules.length} policy rule${rules.length === 1 ? '' : 's'}` : ''}`);
  return { allowed: true, grant: allowingGrant, rules: rules.map((rule) => rule.id), steps };
}

/** A step of the explanation; the detail of a passed check is a function, called only when explaining. */
type RecordStep = (check: string, outcome: ExplanationStep['outcome'], detail: string | (() => string)) => void;

/** Steps 4–7 for one grant; null when the grant covers the request. */
function checkGrant(grant: CompiledGrant, route: CompiledRoute, request: AuthorizationRequest, requestChecks: RequestChecks, record: RecordStep): Refusal | null {
  const fail = (reason: RefusalReason, check: string, detail: string): Refusal => {
    record(check, 'fail', detail);
    return { reason, detail, decidedBy: grant.id };
  };

  // 4. Environment (the listener's: a sandbox grant never reaches production).
  if (!grant.environments.has(request.environment)) {
    return fail('grant.environment', 'grant.environment', `grant ${grant.id} does not cover environment ${request.environment} (covers ${list(grant.environments)})`);
  }
  record('grant.environment', 'pass', () => `grant ${grant.id} covers environment ${request.environment}`);

  // 5. Scopes: the token must carry each scope the route requires, and the grant must include
  // it, so a token cannot carry a scope the partner was never granted. Exact string match
  // (SECURITY.md AT-07: `orders:read` does not satisfy `orders:read:all`, nor the reverse).
  const tokenScopes = requestChecks.tokenScopes();
  if (tokenScopes !== null) return tokenScopes;
  if (route.scopes.length > 0) {
    const notGranted = route.scopes.filter((scope) => !hasScope(grant.scopes, scope));
    if (notGranted.length > 0) {
      return fail('grant.scope_not_granted', 'scope.grant', `grant ${grant.id} does not include ${notGranted.join(' ')} (it grants ${list(grant.scopes)})`);
    }
    record('scope.grant', 'pass', () => `grant ${grant.id} includes ${route.scopes.join(' ')}`);
  }

  // 6. The route's purpose requirement.
  const purpose = requestChecks.routePurpose();
  if (purpose !== null) return purpose;

  // 7. Constraints of the grant.
  const constraints = grant.constraints;
  if (constraints === null) {
    record('grant.constraints', 'skip', () => `grant ${grant.id} has no constraints`);
    return null;
  }
  if (constraints.timeWindows !== null) {
    const clock = wallClock(constraints.timezone, request.now);
    const inside = withinTimeWindows(constraints, request.now, clock);
    const detail = describeTimeWindows(constraints, clock, inside);
    if (!inside) return fail('grant.time_window', 'grant.time_window', detail);
    record('grant.time_window', 'pass', detail);
  }
  if (constraints.transactionTypes !== null) {
    const allowed = list(constraints.transactionTypes);
    if (route.transactionType === null) {
      return fail('grant.transaction_type', 'grant.transaction_type', `route ${route.id} declares no transaction type; grant ${grant.id} allows only ${allowed}`);
    }
    if (!constraints.transactionTypes.has(route.transactionType)) {
      return fail('grant.transaction_type', 'grant.transaction_type', `transaction type ${route.transactionType} is not allowed by grant ${grant.id} (allows ${allowed})`);
    }
    record('grant.transaction_type', 'pass', () => `transaction type ${route.transactionType} is allowed by grant ${grant.id}`);
  }
  if (constraints.purposes !== null) {
    const allowed = list(constraints.purposes);
    if (request.purpose === null) {
      return fail('grant.purpose', 'grant.purpose', `no purpose declared; grant ${grant.id} allows only ${allowed}`);
    }
    if (!constraints.purposes.has(request.purpose)) {
      return fail('grant.purpose', 'grant.purpose', `purpose ${request.purpose} is not allowed by grant ${grant.id} (allows ${allowed})`);
    }
    record('grant.purpose', 'pass', () => `purpose ${request.purpose} is allowed by grant ${grant.id}`);
  }
  if (constraints.sourceNetworks !== null) {
    const networks = list(constraints.sourceNetworkList ?? []);
    if (!fromAllowedNetwork(constraints, request.sourceIp)) {
      return fail('grant.source_network', 'grant.source_network', `source address ${request.sourceIp} is outside ${networks} (grant ${grant.id})`);
    }
    record('grant.source_network', 'pass', () => `source address ${request.sourceIp} is inside ${networks}`);
  }
  return null;
}

/**
 * The checks of steps 5 and 6 that depend on the request, not on the grant: run at most once
 * however many grants are tried, and explained once.
 */
class RequestChecks {
  readonly #principal: Principal;
  readonly #route: CompiledRoute;
  readonly #request: AuthorizationRequest;
  readonly #record: RecordStep;
  #tokenScopes: Refusal | null | undefined;
  #routePurpose: Refusal | null | undefined;

  constructor(principal: Principal, route: CompiledRoute, request: AuthorizationRequest, record: RecordStep) {
    this.#principal = principal;
    this.#route = route;
    this.#request = request;
    this.#record = record;
  }

  /** Null when the token carries every scope the route requires. */
  tokenScopes(): Refusal | null {
    if (this.#tokenScopes !== undefined) return this.#tokenScopes;
    const route = this.#route;
    const carried = this.#principal.scopes;
    if (route.scopes.length === 0) {
      this.#record('scope.token', 'skip', () => `route ${route.id} requires no scopes`);
      return (this.#tokenScopes = null);
    }
    const missing = route.scopes.filter((scope) => !hasScope(carried, scope));
    if (missing.length > 0) {
      const detail = `token lacks ${missing.join(' ')} (route ${route.id} requires ${route.scopes.join(' ')}; the ${this.#principal.credentialType} credential carries ${carried.size === 0 ? 'no scopes' : [...carried].join(' ')})`;
      this.#record('scope.token', 'fail', detail);
      // RFC 6750 §3.1: the `scope` attribute of the challenge lists the scopes needed.
      return (this.#tokenScopes = { reason: 'scope.insufficient', detail, decidedBy: null, requiredScopes: route.scopes });
    }
    this.#record('scope.token', 'pass', () => `token carries ${route.scopes.join(' ')}`);
    return (this.#tokenScopes = null);
  }

  /** Null when the route requires no purpose, or the declared one is allowed there. */
  routePurpose(): Refusal | null {
    if (this.#routePurpose !== undefined) return this.#routePurpose;
    const route = this.#route;
    const purpose = this.#request.purpose;
    if (route.purpose === null) {
      this.#record('purpose', 'skip', () => `route ${route.id} requires no declared purpose`);
      return (this.#routePurpose = null);
    }
    const allowed = list(route.purpose.allowed);
    if (purpose === null) {
      const from = [route.purpose.header && `header ${route.purpose.header}`, route.purpose.claim && `claim ${route.purpose.claim}`].filter(Boolean).join(' or ');
      const detail = `no purpose declared${from ? ` (${from})` : ''}; route ${route.id} allows ${allowed}`;
      this.#record('purpose', 'fail', detail);
      return (this.#routePurpose = { reason: 'purpose.missing', detail, decidedBy: null });
    }
    if (!route.purpose.allowed.has(purpose)) {
      const detail = `purpose ${purpose} is not allowed on route ${route.id} (allows ${allowed})`;
      this.#record('purpose', 'fail', detail);
      return (this.#routePurpose = { reason: 'purpose.not_allowed', detail, decidedBy: null });
    }
    this.#record('purpose', 'pass', () => `purpose ${purpose} is allowed on route ${route.id}`);
    return (this.#routePurpose = null);
  }
}

/** ISO 8601 text of an instant, cached: `toISOString()` costs about a microsecond. */
const isoTimes = new Map<number, string>();
function isoTime(epochMs: number): string {
  let text = isoTimes.get(epochMs);
  if (text === undefined) {
    text = new Date(epochMs).toISOString();
    // Agreement expiries are few (one per partner); the bound only guards against misuse.
    if (isoTimes.size < 10_000) isoTimes.set(epochMs, text);
  }
  return text;
}

/** Exact membership; a prototype member name is never a scope (SECURITY.md JWT-20). */
function hasScope(scopes: ReadonlySet<string>, scope: string): boolean {
  return !isPrototypeName(scope) && scopes.has(scope);
}

/**
 * What the rules see. `request.scopes` is the token's scopes that the allowing grant includes:
 * a scope the partner was never granted gains nothing, in rules either.
 */
export function policyVariables(input: AuthorizationInput, apiId: string, grant: CompiledGrant): PolicyVariables {
  const { principal, route, request } = input;
  const partner = principal.partner;
  return {
    partner: { id: partner.id, tier: partner.tier, status: partner.status, attributes: partner.attributes, agreement_id: partner.agreement?.id ?? '' },
    credential: { id: principal.credential.id, type: principal.credentialType, long_lived: principal.longLived },
    token: principal.claims,
    request: {
      method: request.method,
      path: request.path,
      host: request.host,
      params: request.params,
      purpose: request.purpose ?? '',
      source_ip: request.sourceIp,
      time: request.now,
      environment: request.environment,
      scopes: [...principal.scopes].filter((scope) => hasScope(grant.scopes, scope)),
    },
    route: { id: route.id, api: apiId, sensitivity: route.sensitivity, transaction_type: route.transactionType ?? '' },
  };
}
