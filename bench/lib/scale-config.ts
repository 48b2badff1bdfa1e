/**
 * The configuration of the config-scale benchmark (`config-scale.ts`, issue 8): a valid
 * Portcullis file with many partners and routes, shaped like a real partner programme rather
 * than one entry copied N times.
 *
 * - APIs `api-000`…: each with an `audience`, ten routes (list / create / get / update / delete
 *   orders, order items, customers, files; literal segments, `{param}`s and a `{rest*}`), read
 *   routes needing `<api>:read`, write routes `<api>:write`; one API in ten has a CEL rule.
 * - Upstreams: one service per 20 APIs, all on the one local upstream origin (nginx answers any
 *   path), each with its own base path.
 * - Partners `partner-00000`…: an agreement, owner and contact; credentials in a fixed mix
 *   (of every 20: 13 a JWT credential bound to the token's `sub`, 3 an API key, 3 both, 1 the
 *   client certificate alone, pinned by fingerprint); grants to up to three APIs with the read
 *   scope, one partner in three also the write scope; one in four its own rate limit.
 * - One issuer (`partner_claim: sub`) whose keys are a local `jwks_file`.
 *
 * Partner 0 is the load partner: a JWT credential (`sub` = `LOAD_CLIENT`), no rate limit, and
 * read access to the first API, whose `get-order` route (`/api-000/orders/{id}`) is the one the
 * benchmark loads. `generation` toggles a real change for reloads; `invalid` adds a dangling
 * reference, so a reload of it must be refused.
 *
 * Deterministic for given options (API keys too: `apiKeyFor`), so that two generations differ
 * only by the change a reload is meant to apply.
 */
import { createHash } from 'node:crypto';
import { API_KEY_ID_LENGTH, API_KEY_PREFIX, apiKeySha256 } from '../../src/authn/api-key.ts';

export const ROUTES_PER_API = 10;
export const ISSUER_ID = 'scale-idp';
export const ISSUER = 'https://idp.scale.localhost';
export const LOAD_PARTNER = 'partner-00000';
/** The load partner's token `sub` (the issuer's `partner_claim`). */
export const LOAD_CLIENT = 'client-00000';
export const APIS_PER_UPSTREAM = 20;

export interface ScaleConfigOptions {
  partners: number;
  apis: number;
  /** Origin of the upstream every service points at, e.g. `http://127.0.0.1:8080`. */
  upstreamOrigin: string;
  listenerPort: number;
  opsPort: number;
  /** Hostname the partner listener serves. */
  host: string;
  /** Absolute paths: the gateway's data folder, decision log and the issuer's JWKS file. */
  dataDir: string;
  decisionLog: string;
  jwksFile: string;
  /** Odd: partner-00001 also gets the write scope on its grants and the `reload-probe` route exists. */
  generation?: number;
  /** Adds a route to an upstream that does not exist (CONFIG_DANGLING_REF): a reload must refuse it. */
  invalid?: boolean;
  /** Seed of the API keys (`apiKeyFor`). Default `portcullis-scale`. */
  seed?: string;
}

/** A router lookup the benchmark times, and what it must find. */
export interface Lookup {
  name: 'early' | 'late' | 'param' | 'miss';
  method: string;
  path: string;
  /** Route id it must match; null: a 404 (`not_found`). */
  routeId: string | null;
}

export interface ScaleConfig {
  yaml: string;
  partners: number;
  routes: number;
  credentials: { jwt: number; apiKey: number; mtls: number };
  /** The route wrk loads: a `{id}` path of the first API, for the load partner. */
  load: { path: string; routeId: string; audience: string; scope: string };
  lookups: Lookup[];
}

interface RouteShape {
  name: string;
  methods: string[];
  /** Template after `/<api>`. */
  path: string;
  write: boolean;
  /** A concrete path after `/<api>` that this route matches. */
  example: string;
}

const ROUTE_SHAPES: readonly RouteShape[] = [
  { name: 'list-orders', methods: ['GET'], path: '/orders', write: false, example: '/orders' },
  { name: 'create-order', methods: ['POST'], path: '/orders', write: true, example: '/orders' },
  { name: 'get-order', methods: ['GET', 'HEAD'], path: '/orders/{id}', write: false, example: '/orders/12345' },
  { name: 'update-order', methods: ['PUT', 'PATCH'], path: '/orders/{id}', write: true, example: '/orders/12345' },
  { name: 'delete-order', methods: ['DELETE'], path: '/orders/{id}', write: true, example: '/orders/12345' },
  { name: 'list-items', methods: ['GET'], path: '/orders/{id}/items', write: false, example: '/orders/12345/items' },
  { name: 'get-item', methods: ['GET'], path: '/orders/{id}/items/{item}', write: false, example: '/orders/12345/items/7' },
  { name: 'get-customer', methods: ['GET'], path: '/customers/{customer}', write: false, example: '/customers/c-42' },
  { name: 'customer-orders', methods: ['GET'], path: '/customers/{customer}/orders', write: false, example: '/customers/c-42/orders' },
  { name: 'files', methods: ['GET'], path: '/files/{path*}', write: false, example: '/files/reports/2026/q1.pdf' },
];
if (ROUTE_SHAPES.length !== ROUTES_PER_API) throw new Error('internal: ROUTE_SHAPES must hold ROUTES_PER_API shapes');

const pad = (n: number, width: number) => String(n).padStart(width, '0');

export function apiId(index: number, apis: number): string {
  return `api-${pad(index, Math.max(3, String(apis - 1).length))}`;
}

export function partnerId(index: number, partners: number): string {
  return `partner-${pad(index, Math.max(5, String(partners - 1).length))}`;
}

/** Which APIs partner `index` is granted: up to three, spread over the table, the first API for partner 0. */
export function grantedApis(index: number, apis: number): number[] {
  return [...new Set([0, 1, 2].map((k) => (index * 7 + k * 31) % apis))];
}

type CredentialMix = 'jwt' | 'api_key' | 'jwt+api_key' | 'mtls';

/**
 * Of every 20 consecutive partners: 13 JWT, 3 API key, 3 both, 1 certificate alone; spread
 * (7 is coprime with 20), so that even 10 partners hold a mix. Partner 0: JWT.
 */
export function credentialMix(index: number): CredentialMix {
  const slot = (index * 7) % 20;
  if (slot < 13) return 'jwt';
  if (slot < 16) return 'api_key';
  if (slot < 19) return 'jwt+api_key';
  return 'mtls';
}

const KEY_ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

/**
 * Partner `index`'s API key, in the format `portcullis apikey create` prints
 * (`pcs_<12-character id>_<43-character secret>`), derived from `seed` instead of drawn at random:
 * the same options give the same file. Only `keyId` and `sha256` (the project's own hash) go into
 * the configuration.
 */
export function apiKeyFor(seed: string, index: number): { key: string; keyId: string; sha256: string } {
  const material = createHash('sha512').update(`${seed}:api-key:${index}`).digest();
  let keyId = '';
  for (let i = 0; i < API_KEY_ID_LENGTH; i++) keyId += KEY_ID_ALPHABET[material[i]! % KEY_ID_ALPHABET.length];
  const key = `${API_KEY_PREFIX}${keyId}_${material.subarray(32, 64).toString('base64url')}`;
  return { key, keyId, sha256: apiKeySha256(key).toString('hex') };
}

/** A stand-in certificate fingerprint (the schema's `sha256:<64 hex>`): unique, derived from the index. */
function pinnedFingerprint(index: number): string {
  return `sha256:${pad(index, 16).repeat(4)}`;
}

export function scaleConfig(options: ScaleConfigOptions): ScaleConfig {
  const { partners, apis } = options;
  if (!Number.isInteger(partners) || partners < 1) throw new Error(`partners must be a positive integer (got ${partners})`);
  if (!Number.isInteger(apis) || apis < 1) throw new Error(`apis must be a positive integer (got ${apis})`);
  const toggled = (options.generation ?? 0) % 2 === 1;
  const out: string[] = [];
  const audience = (api: string) => `https://${api}.scale.localhost`;

  out.push(
    `# generated by bench/lib/scale-config.ts: ${partners} partners, ${apis * ROUTES_PER_API} routes (generation ${options.generation ?? 0}${options.invalid ? ', INVALID on purpose' : ''})`,
    'version: 1',
    'gateway:',
    `  data_dir: ${JSON.stringify(options.dataDir)}`,
    `  decision_log: ${JSON.stringify(options.decisionLog)}`,
    'ops:',
    '  address: 127.0.0.1',
    `  port: ${options.opsPort}`,
    'listeners:',
    '  - name: partners',
    '    zone: partner',
    '    address: 127.0.0.1',
    `    port: ${options.listenerPort}`,
    `    hostnames: [${options.host}]`,
    'upstreams:',
  );
  const upstreams = Math.ceil(apis / APIS_PER_UPSTREAM);
  for (let u = 0; u < upstreams; u++) {
    out.push(`  - id: service-${pad(u, 2)}`, `    url: ${options.upstreamOrigin}/service-${pad(u, 2)}`, '    connections: 64');
  }
  out.push(
    'issuers:',
    `  - id: ${ISSUER_ID}`,
    `    issuer: ${ISSUER}`,
    `    jwks_file: ${JSON.stringify(options.jwksFile)}`,
    '    algorithms: [ES256]',
    '    partner_claim: sub',
    '    max_token_lifetime: 1h',
    'apis:',
  );
  for (let a = 0; a < apis; a++) {
    const id = apiId(a, apis);
    out.push(`  - id: ${id}`, `    name: API ${a}`, `    audience: ${audience(id)}`);
    if (a % 10 === 0) {
      out.push('    policies:', '      - id: trial-reads-only', '        require: request.method == "GET" || partner.tier != "trial"');
    }
  }

  const credentials = { jwt: 0, apiKey: 0, mtls: 0 };
  out.push('partners:');
  for (let p = 0; p < partners; p++) {
    const id = partnerId(p, partners);
    const number = id.slice('partner-'.length);
    const mix = credentialMix(p);
    out.push(
      `  - id: ${id}`,
      `    name: Partner ${p}`,
      '    owner: team-partnerships',
      `    contact: security@${id}.example`,
      `    tier: ${p % 5 === 4 ? 'trial' : 'standard'}`,
      '    agreement:',
      `      id: AGR-${number}`,
      '      expires: 2099-12-31',
      '    credentials:',
    );
    if (mix === 'jwt' || mix === 'jwt+api_key') {
      out.push(`      - id: ${id}-jwt`, '        type: jwt', `        issuer: ${ISSUER_ID}`, `        client_id: client-${number}`);
      credentials.jwt++;
    }
    if (mix === 'api_key' || mix === 'jwt+api_key') {
      const key = apiKeyFor(options.seed ?? 'portcullis-scale', p);
      out.push(`      - id: ${id}-key`, '        type: api_key', `        key_id: ${key.keyId}`, `        sha256: ${key.sha256}`, '        expires: 2099-06-30T00:00:00Z');
      credentials.apiKey++;
    }
    if (mix === 'mtls') {
      out.push(`      - id: ${id}-cert`, '        type: mtls');
      credentials.mtls++;
    }
    out.push('    grants:');
    const write = p % 3 === 0 || (toggled && p === 1);
    for (const a of grantedApis(p, apis)) {
      const api = apiId(a, apis);
      out.push(`      - api: ${api}`, `        scopes: [${api}:read${write ? `, ${api}:write` : ''}]`);
    }
    if (p !== 0 && p % 4 === 0) out.push('    rate_limit: { rate: 100/s, burst: 50 }');
    if (mix === 'mtls') out.push('    mtls:', `      pinned: ["${pinnedFingerprint(p)}"]`, `      san_uri: ["spiffe://${id}.example/*"]`);
  }

  out.push('routes:');
  let routes = 0;
  for (let a = 0; a < apis; a++) {
    const api = apiId(a, apis);
    const upstream = `service-${pad(Math.floor(a / APIS_PER_UPSTREAM), 2)}`;
    for (const shape of ROUTE_SHAPES) {
      out.push(
        `  - id: ${api}-${shape.name}`,
        '    zone: partner',
        `    api: ${api}`,
        `    methods: [${shape.methods.join(', ')}]`,
        `    path: /${api}${shape.path}`,
        `    upstream: ${upstream}`,
        '    auth: required',
        `    credentials: ${shape.write ? '[jwt]' : '[jwt, api_key]'}`,
        `    scopes: [${api}:${shape.write ? 'write' : 'read'}]`,
        `    transaction_type: ${shape.write ? 'write' : 'read'}`,
      );
      routes++;
    }
  }
  if (toggled) {
    const api = apiId(0, apis);
    out.push('  - id: reload-probe', '    zone: partner', `    api: ${api}`, '    methods: [GET]', '    path: /reload-probe/{n}', '    upstream: service-00', `    scopes: [${api}:read]`);
  }
  if (options.invalid) {
    const api = apiId(0, apis);
    out.push('  - id: invalid-on-purpose', '    zone: partner', `    api: ${api}`, '    methods: [GET]', '    path: /invalid/{n}', '    upstream: no-such-upstream', `    scopes: [${api}:read]`);
  }
  out.push('');

  const first = apiId(0, apis);
  const middle = apiId(Math.floor(apis / 2), apis);
  const last = apiId(apis - 1, apis);
  return {
    yaml: out.join('\n'),
    partners,
    routes,
    credentials,
    load: { path: `/${first}/orders/12345`, routeId: `${first}-get-order`, audience: audience(first), scope: `${first}:read` },
    lookups: [
      { name: 'early', method: 'GET', path: `/${first}/orders`, routeId: `${first}-list-orders` },
      { name: 'late', method: 'GET', path: `/${last}/customers/c-42/orders`, routeId: `${last}-customer-orders` },
      { name: 'param', method: 'GET', path: `/${middle}/orders/12345/items/7`, routeId: `${middle}-get-item` },
      { name: 'miss', method: 'GET', path: `/${middle}/orders/12345/invoices`, routeId: null },
    ],
  };
}
