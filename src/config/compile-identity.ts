/**
 * Compiles who may call: issuers (key sources, read files), introspection endpoints, partners
 * (agreement, grants by API, rules) and the credential index that maps a verified credential to
 * its partner in one map lookup. Runs only on a configuration that passed validation, so a
 * failure here is a bug and throws.
 */
import type { CompiledGrant } from '../policy/types.ts';
import type { PolicyCompiler } from './compile-policy.ts';
import { parseJson } from './file-checks.ts';
import { parseCertificates } from './pem.ts';
import type { PartnerTrust } from '../pki/types.ts';
import type { ReferencedFiles } from './files.ts';
import type { Config, IntrospectionConfig, IssuerConfig, PartnerConfig } from './schema.ts';
import type {
  CompiledCredential,
  CompiledIntrospection,
  CompiledIssuer,
  CompiledPartner,
  CredentialIndex,
  IntrospectionAuth,
  KeySource,
  PartnerLimits,
  RateLimitSpec,
  ClientCredential,
  CompiledTokenService,
} from './snapshot.ts';
import { TOKEN_SERVICE_ISSUER_ID } from './snapshot.ts';

const DAY_MS = 86_400_000;
const BARE_DATE = /^\d{4}-\d{2}-\d{2}$/;

/**
 * The first instant without access, in ms since the epoch. A bare date (`2027-01-31`) covers
 * that whole day in UTC, so access ends at the following midnight; a timestamp ends at itself.
 */
export function expiryInstant(written: string): number {
  return BARE_DATE.test(written) ? Date.parse(`${written}T00:00:00Z`) + DAY_MS : Date.parse(written);
}

/**
 * RFC 7515 §4.1.9: `typ` is compared case-insensitively and `application/` may be omitted
 * (RFC 8725 §3.11, RFC 9068 §2.1: `at+jwt` and `application/at+jwt` are the same type).
 */
export function normalizeTyp(typ: string): string {
  const lower = typ.toLowerCase();
  return lower.startsWith('application/') ? lower.slice('application/'.length) : lower;
}

export function compileIssuer(issuer: IssuerConfig, files: ReferencedFiles): CompiledIssuer {
  return {
    id: issuer.id,
    issuer: issuer.issuer,
    source: keySource(issuer, files),
    ca: issuer.ca !== undefined ? files.contents(issuer.ca) : null,
    algorithms: new Set(issuer.algorithms),
    typ: normalizeTyp(issuer.typ),
    leewayMs: issuer.leeway,
    maxLifetimeMs: issuer.max_token_lifetime,
    partnerClaim: issuer.partner_claim,
    refreshIntervalMs: issuer.refresh_interval,
    unknownKidCooldownMs: issuer.unknown_kid_cooldown,
    fetchTimeoutMs: issuer.fetch_timeout,
  };
}

function parsedJwks(files: ReferencedFiles, written: string): unknown {
  const json = parseJson(files.contents(written));
  if (!json.ok) throw new Error(`internal: ${written} was not validated before compile`);
  return json.value;
}

/** The token service, as the issuer the gateway's own validation trusts (keys from the state store). */
export function tokenServiceIssuer(service: CompiledTokenService): CompiledIssuer {
  return {
    id: TOKEN_SERVICE_ISSUER_ID,
    issuer: service.issuer,
    source: { kind: 'token_service' },
    ca: null,
    algorithms: new Set([service.algorithm]),
    typ: 'at+jwt',
    leewayMs: 5_000,
    maxLifetimeMs: service.maxTokenLifetimeMs,
    partnerClaim: 'client_id',
    refreshIntervalMs: 60_000,
    unknownKidCooldownMs: 1_000,
    fetchTimeoutMs: 1_000,
  };
}

function keySource(issuer: IssuerConfig, files: ReferencedFiles): KeySource {
  if (issuer.jwks_uri !== undefined) return { kind: 'jwks_uri', url: issuer.jwks_uri };
  if (issuer.discovery !== undefined) return { kind: 'discovery', url: issuer.discovery };
  if (issuer.jwks_file === undefined) throw new Error(`internal: issuer "${issuer.id}" has no key source after validation`);
  // The same bytes validation parsed and checked (ReferencedFiles reads each file once per load).
  const json = parseJson(files.contents(issuer.jwks_file));
  if (!json.ok) throw new Error(`internal: ${issuer.jwks_file} was not validated before compile`);
  return { kind: 'file', path: files.resolve(issuer.jwks_file), jwks: json.value };
}

export function compileIntrospection(endpoint: IntrospectionConfig, files: ReferencedFiles): CompiledIntrospection {
  return {
    id: endpoint.id,
    url: endpoint.url,
    issuer: endpoint.issuer ?? null,
    ca: endpoint.ca !== undefined ? files.contents(endpoint.ca) : null,
    clientId: endpoint.client_id,
    auth: introspectionAuth(endpoint.auth, files),
    cacheTtlMs: endpoint.cache_ttl,
    negativeCacheTtlMs: endpoint.negative_cache_ttl,
    timeoutMs: endpoint.timeout,
    maxRequestsPerSecond: endpoint.max_requests_per_second,
  };
}

function introspectionAuth(auth: IntrospectionConfig['auth'], files: ReferencedFiles): IntrospectionAuth {
  switch (auth.method) {
    case 'private_key_jwt':
      return { method: 'private_key_jwt', key: files.contents(auth.key), alg: auth.alg, kid: auth.kid ?? null };
    case 'tls_client_auth':
      return { method: 'tls_client_auth', cert: files.contents(auth.cert), key: files.contents(auth.key) };
    case 'client_secret_basic':
      return { method: 'client_secret_basic', secret: auth.secret };
  }
}

export function compilePartner(partner: PartnerConfig, policy: PolicyCompiler, tiers: Config['rate_limits']['tiers'], files: ReferencedFiles): CompiledPartner {
  // Grants by API, in configuration order; the index in the partner's list names each grant.
  const grants = new Map<string, CompiledGrant[]>();
  partner.grants.forEach((grant, index) => {
    grants.set(grant.api, [...(grants.get(grant.api) ?? []), policy.grant(grant, partner.id, index)]);
  });
  return {
    id: partner.id,
    name: partner.name ?? null,
    owner: partner.owner ?? null,
    contact: partner.contact ?? null,
    tier: partner.tier,
    // Null prototype: a policy asking for `attributes.constructor` finds only what was configured.
    attributes: Object.assign(Object.create(null) as Record<string, string | number | boolean>, partner.attributes),
    status: partner.status,
    agreement: partner.agreement ? { id: partner.agreement.id, expiresAt: expiryInstant(partner.agreement.expires) } : null,
    grants,
    policies: policy.rules(partner.policies, `partners[${partner.id}]`),
    limits: partnerLimits(partner, tiers),
    sourceNetworks: partner.source_networks ? policy.networks(partner.source_networks) : null,
    mtls: partner.mtls ? compileTrust(partner.id, partner.mtls, files) : null,
    requireSenderConstrained: partner.require_sender_constrained,
  };
}

type MtlsConfig = NonNullable<PartnerConfig['mtls']>;

/** A partner's mTLS trust: its own anchors (never another partner's), pins, name patterns, revocation. */
function compileTrust(partnerId: string, mtls: MtlsConfig, files: ReferencedFiles): PartnerTrust {
  const anchors = mtls.ca.flatMap((written) => {
    const parsed = parseCertificates(files.contents(written));
    if (!parsed.ok) throw new Error(`internal: CA file ${written} of partner "${partnerId}" failed after validation: ${parsed.reason}`);
    return parsed.value;
  });
  const revocation = mtls.revocation;
  return {
    partnerId,
    anchors,
    pinned: new Set(mtls.pinned.map((pin) => pin.slice('sha256:'.length))),
    subjects: mtls.subjects ?? null,
    sanDns: mtls.san_dns ?? null,
    sanUri: mtls.san_uri ?? null,
    revocation: revocation
      ? {
          crl: revocation.crl
            ? {
                file: revocation.crl.file !== undefined ? { path: files.resolve(revocation.crl.file), contents: files.contents(revocation.crl.file) } : null,
                url: revocation.crl.url ?? null,
                fromCertificate: revocation.crl.from_certificate,
                refreshMs: revocation.crl.refresh,
                timeoutMs: revocation.crl.timeout,
              }
            : null,
          ocsp: revocation.ocsp
            ? { url: revocation.ocsp.url ?? null, fromCertificate: revocation.ocsp.from_certificate, timeoutMs: revocation.ocsp.timeout, maxCacheMs: revocation.ocsp.max_cache }
            : null,
          allowedHosts: revocation.allowed_hosts,
          softFail: revocation.on_unavailable === 'allow',
        }
      : null,
  };
}

/** A partner's own limits, else its tier's (`rate_limits.tiers`), else none. */
function partnerLimits(partner: PartnerConfig, tiers: Config['rate_limits']['tiers']): PartnerLimits {
  const tier = tiers[partner.tier];
  const rate = partner.rate_limit ?? tier?.rate_limit;
  return {
    rate: rate ? rateLimitSpec(rate) : null,
    quotas: (partner.quotas ?? tier?.quotas ?? []).map((quota) => ({ limit: quota.limit, per: quota.per, timezone: quota.timezone })),
    maxConcurrent: partner.max_concurrent ?? tier?.max_concurrent ?? null,
  };
}

export function rateLimitSpec(limit: { rate: { text: string; emissionIntervalMs: number }; burst: number }): RateLimitSpec {
  return { text: limit.rate.text, emissionIntervalMs: limit.rate.emissionIntervalMs, burst: limit.burst };
}

/** One map lookup from a verified credential to its configured credential (and so its partner). */
export function credentialIndex(partners: readonly PartnerConfig[], files: ReferencedFiles): CredentialIndex {
  const jwt = new Map<string, Map<string, CompiledCredential>>();
  const introspection = new Map<string, Map<string, CompiledCredential>>();
  const apiKeys = new Map<string, CompiledCredential & { readonly type: 'api_key' }>();
  const mtls = new Map<string, CompiledCredential & { readonly type: 'mtls' }>();
  const clients = new Map<string, ClientCredential>();
  const within = (index: Map<string, Map<string, CompiledCredential>>, id: string): Map<string, CompiledCredential> => {
    let byClient = index.get(id);
    if (!byClient) index.set(id, (byClient = new Map()));
    return byClient;
  };
  for (const partner of partners) {
    for (const credential of partner.credentials) {
      switch (credential.type) {
        case 'jwt':
          within(jwt, credential.issuer).set(credential.client_id, {
            id: credential.id,
            type: 'jwt',
            partnerId: partner.id,
            issuerId: credential.issuer,
            clientId: credential.client_id,
            rateLimit: credential.rate_limit ? rateLimitSpec(credential.rate_limit) : null,
          });
          break;
        case 'introspection':
          within(introspection, credential.endpoint).set(credential.client_id, {
            id: credential.id,
            type: 'introspection',
            partnerId: partner.id,
            endpointId: credential.endpoint,
            clientId: credential.client_id,
            rateLimit: credential.rate_limit ? rateLimitSpec(credential.rate_limit) : null,
          });
          break;
        case 'api_key':
          apiKeys.set(credential.key_id, {
            id: credential.id,
            type: 'api_key',
            partnerId: partner.id,
            keyId: credential.key_id,
            sha256: Buffer.from(credential.sha256, 'hex'),
            expiresAt: expiryInstant(credential.expires),
            rateLimit: credential.rate_limit ? rateLimitSpec(credential.rate_limit) : null,
          });
          break;
        case 'mtls':
          mtls.set(partner.id, { id: credential.id, type: 'mtls', partnerId: partner.id, rateLimit: credential.rate_limit ? rateLimitSpec(credential.rate_limit) : null });
          break;
        case 'client': {
          const compiled: ClientCredential = {
            id: credential.id,
            type: 'client',
            partnerId: partner.id,
            clientId: credential.client_id,
            auth: credential.auth,
            jwks: credential.jwks_file !== undefined ? parsedJwks(files, credential.jwks_file) : null,
            jwksUri: credential.jwks_uri ?? null,
            secretSha256: credential.secret_sha256 !== undefined ? Buffer.from(credential.secret_sha256, 'hex') : null,
            tokenLifetimeMs: credential.token_lifetime ?? null,
            tokenExchange: credential.token_exchange,
            rateLimit: credential.rate_limit ? rateLimitSpec(credential.rate_limit) : null,
          };
          clients.set(credential.client_id, compiled);
          // Tokens the token service issues to this client bind to this credential on the data plane.
          within(jwt, TOKEN_SERVICE_ISSUER_ID).set(credential.client_id, compiled);
          break;
        }
      }
    }
  }
  return { jwt, introspection, apiKeys, mtls, clients };
}
