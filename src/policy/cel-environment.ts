/**
 * The one CEL environment every policy rule is compiled in (ECOSYSTEM.md §2.11: create it once,
 * parse and check at load time, evaluate per request). It declares exactly the variables of
 * `PolicyVariables` with their types, so an unknown variable, an unknown field of `partner`,
 * `credential`, `request` or `route`, or a type mismatch is a load-time error, never a
 * request-time surprise. `token` is a `map<string, dyn>`: claims differ per issuer.
 */
import { Environment } from '@marcbachmann/cel-js';

/**
 * Structural bounds checked while parsing (cel-js `limits`), plus our own bound on the source
 * length. A reasonable rule is a few dozen nodes; these leave room for long `in [...]` lists
 * without letting one rule cost more than microseconds.
 */
export const RULE_LIMITS = {
  maxSourceLength: 4096,
  maxAstNodes: 1024,
  maxDepth: 32,
  maxListElements: 256,
  maxMapEntries: 64,
  maxCallArguments: 8,
} as const;

// CEL message types: plain classes, so cel-js reads their declared fields only (an undeclared
// field is a type error at load time) and a value can be recognised by its constructor.

export class CelPartner {
  readonly id: string;
  readonly tier: string;
  readonly status: string;
  readonly attributes: ReadonlyMap<string, unknown>;
  readonly agreement_id: string;
  constructor(fields: CelPartner) {
    this.id = fields.id;
    this.tier = fields.tier;
    this.status = fields.status;
    this.attributes = fields.attributes;
    this.agreement_id = fields.agreement_id;
  }
}

export class CelCredential {
  readonly id: string;
  readonly type: string;
  readonly long_lived: boolean;
  constructor(fields: CelCredential) {
    this.id = fields.id;
    this.type = fields.type;
    this.long_lived = fields.long_lived;
  }
}

export class CelRequest {
  readonly method: string;
  readonly path: string;
  readonly host: string;
  readonly params: ReadonlyMap<string, string>;
  readonly purpose: string;
  readonly source_ip: string;
  readonly time: Date;
  readonly environment: string;
  readonly scopes: readonly string[];
  constructor(fields: CelRequest) {
    this.method = fields.method;
    this.path = fields.path;
    this.host = fields.host;
    this.params = fields.params;
    this.purpose = fields.purpose;
    this.source_ip = fields.source_ip;
    this.time = fields.time;
    this.environment = fields.environment;
    this.scopes = fields.scopes;
  }
}

export class CelRoute {
  readonly id: string;
  readonly api: string;
  readonly sensitivity: string;
  readonly transaction_type: string;
  constructor(fields: CelRoute) {
    this.id = fields.id;
    this.api = fields.api;
    this.sensitivity = fields.sensitivity;
    this.transaction_type = fields.transaction_type;
  }
}

/** The variables, their CEL types and what they mean (also the reference in docs/policy.md). */
export const POLICY_VARIABLE_TYPES = {
  partner: 'portcullis.Partner',
  credential: 'portcullis.Credential',
  token: 'map<string, dyn>',
  request: 'portcullis.Request',
  route: 'portcullis.Route',
} as const;

export const celEnvironment: Environment = new Environment({
  unlistedVariablesAreDyn: false,
  homogeneousAggregateLiterals: true,
  enableOptionalTypes: false,
  limits: {
    maxAstNodes: RULE_LIMITS.maxAstNodes,
    maxDepth: RULE_LIMITS.maxDepth,
    maxListElements: RULE_LIMITS.maxListElements,
    maxMapEntries: RULE_LIMITS.maxMapEntries,
    maxCallArguments: RULE_LIMITS.maxCallArguments,
  },
})
  .registerType('portcullis.Partner', {
    ctor: CelPartner,
    fields: { id: 'string', tier: 'string', status: 'string', attributes: 'map<string, dyn>', agreement_id: 'string' },
  })
  .registerType('portcullis.Credential', { ctor: CelCredential, fields: { id: 'string', type: 'string', long_lived: 'bool' } })
  .registerType('portcullis.Request', {
    ctor: CelRequest,
    fields: {
      method: 'string',
      path: 'string',
      host: 'string',
      params: 'map<string, string>',
      purpose: 'string',
      source_ip: 'string',
      time: 'google.protobuf.Timestamp',
      environment: 'string',
      scopes: 'list<string>',
    },
  })
  .registerType('portcullis.Route', {
    ctor: CelRoute,
    fields: { id: 'string', api: 'string', sensitivity: 'string', transaction_type: 'string' },
  })
  .registerVariable('partner', POLICY_VARIABLE_TYPES.partner, { description: 'The partner of the credential.' })
  .registerVariable('credential', POLICY_VARIABLE_TYPES.credential, { description: 'The credential that authenticated the request.' })
  .registerVariable('token', POLICY_VARIABLE_TYPES.token, { description: 'Verified claims of the token; empty for API keys.' })
  .registerVariable('request', POLICY_VARIABLE_TYPES.request, { description: 'The request being decided.' })
  .registerVariable('route', POLICY_VARIABLE_TYPES.route, { description: 'The matched route (one operation of an API).' });
