/**
 * A real OpenID provider (`oidc-provider` from npm) on loopback, for end-to-end tests: the
 * gateway discovers its keys, verifies its JWT access tokens and introspects its opaque ones
 * exactly as it would in production — no stub stands in for the authorization server.
 *
 * It runs in the test process: oidc-provider's Koa app behind a `node:http` server on
 * `http://127.0.0.1:<port>` (loopback http is what the gateway allows for issuers and
 * introspection endpoints). Only the client credentials grant is offered, with resource
 * indicators (RFC 8707) choosing the audience and the token format of each resource.
 *
 * Key rotation replaces the provider instance behind the same listening socket: the port never
 * closes, so a JWKS refetch that a new `kid` triggers in the gateway always finds the provider
 * (a stop/start on the port would leave a window in which that refetch fails, and the test of
 * "no failed request during a rotation" would then measure the harness, not the gateway).
 * Clients, issued opaque tokens and revocations live in a per-instance store that survives the
 * swap. `stop()` / `start()` take the provider off and back onto its port for the
 * "dependency down" tests.
 *
 * oidc-provider ships no TypeScript types (and @types/oidc-provider is not installed), so it is
 * loaded through a dynamic import and only the few members used here are typed below.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { Agent, request } from 'undici';
import { SignJWT, calculateJwkThumbprint, exportJWK, exportPKCS8, generateKeyPair, importJWK } from 'jose';
import type { JWK } from 'jose';

/** Algorithms the helper can sign with; all asymmetric, as the gateway requires (SECURITY.md JWT-01). */
const SIGNING_ALGORITHMS = ['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA'] as const;
export type ProviderSigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];

export interface OidcClientOptions {
  readonly clientId: string;
  /** Scopes the client may request (RFC 6749 §3.3). */
  readonly scopes: readonly string[];
  /** How the client authenticates at the token, introspection and revocation endpoints (RFC 6749 §2.3, RFC 7523 §2.2). */
  readonly auth: 'private_key_jwt' | 'client_secret_basic';
  /**
   * `private_key_jwt`: the client's PRIVATE JWKs (each with `kid` and `alg`). Their public halves
   * are registered at the provider; the first one signs the assertions this helper sends.
   */
  readonly jwks?: readonly JWK[];
  /** `client_secret_basic`: the client secret. */
  readonly secret?: string;
}

export interface OidcResourceOptions {
  /** Resource indicator (RFC 8707 §2: an absolute URI) and the `aud` of tokens issued for it. */
  readonly audience: string;
  /** Scopes this resource understands; a token for it carries only requested scopes among these. */
  readonly scopes: readonly string[];
  /** Access token lifetime in seconds. Default 300. */
  readonly accessTokenTTL?: number;
  /** `jwt` (RFC 9068, default) or `opaque` (only usable through introspection, RFC 7662). */
  readonly format?: 'jwt' | 'opaque';
}

export interface OidcProviderOptions {
  /** Port to listen on; default 0 (a free port, kept across `stop()` / `start()` and rotations). */
  readonly port?: number;
  /** The provider's PRIVATE signing JWKs; the first signs. Default: one fresh ES256 key. */
  readonly keys?: readonly JWK[];
  readonly clients: readonly OidcClientOptions[];
  readonly resources: readonly OidcResourceOptions[];
}

export interface TokenRequest {
  /** The resource (its audience) the token is for. */
  readonly resource: string;
  /** Scopes to request; omitted means none. */
  readonly scope?: readonly string[];
}

export interface TokenResponse {
  readonly access_token: string;
  readonly token_type: string;
  readonly expires_in: number;
  readonly scope?: string;
}

export interface OidcProvider {
  /** The issuer identifier (`iss`), `http://127.0.0.1:<port>`, without a trailing slash. */
  readonly issuer: string;
  /** Base URL; the same as `issuer`. */
  readonly url: string;
  readonly port: number;
  /** `<issuer>/.well-known/openid-configuration` (OpenID Connect Discovery 1.0 §4). */
  readonly discoveryUrl: string;
  readonly jwksUri: string;
  readonly tokenEndpoint: string;
  readonly introspectionEndpoint: string;
  readonly revocationEndpoint: string;
  /** Errors the provider raised while handling requests; a healthy run leaves this empty. */
  readonly serverErrors: readonly Error[];
  /** Client credentials grant (RFC 6749 §4.4); returns the access token. */
  token(clientId: string, request: TokenRequest): Promise<string>;
  /** The whole token response, for tests that look at `expires_in`, `scope` or `token_type`. */
  tokenResponse(clientId: string, request: TokenRequest): Promise<TokenResponse>;
  /** Like `token`, but refuses a resource that is not configured for opaque tokens. */
  opaqueToken(clientId: string, request: TokenRequest): Promise<string>;
  /** Revokes a token at the provider (RFC 7009 §2.1), authenticated as `clientId`. */
  revoke(clientId: string, token: string): Promise<void>;
  /** Introspects a token at the provider (RFC 7662 §2.1), authenticated as `clientId`. */
  introspect(clientId: string, token: string): Promise<Record<string, unknown>>;
  /** The JWKS the provider publishes right now (public keys only). */
  publishedJwks(): { keys: JWK[] };
  /**
   * Replaces the provider's key set: from now on it publishes `newKeys` and signs with the first.
   * Keep an old key in the set to let tokens it signed verify until they expire.
   */
  rotateKeys(newKeys: readonly JWK[]): Promise<void>;
  /** Stops listening (open connections are cut); clients, tokens and keys are kept. */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
  close(): Promise<void>;
}

/** A fresh private signing JWK with `kid` (its RFC 7638 thumbprint), `alg` and `use: sig`. */
export async function generateSigningKey(alg: ProviderSigningAlgorithm = 'ES256'): Promise<JWK> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg.startsWith('RS') || alg.startsWith('PS') ? { modulusLength: 2048 } : {}) });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, kid: await calculateJwkThumbprint(jwk), alg, use: 'sig' };
}

/** The public half of a private JWK (RFC 7517 §4, RFC 7518 §6: drop every private member). */
export function publicJwk(jwk: JWK): JWK {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, oth: _oth, k: _k, priv: _priv, ...rest } = jwk as JWK & { priv?: string };
  return rest;
}

/** The PKCS#8 PEM of a private JWK, for gateway configs that take a key file. */
export async function privateJwkToPem(jwk: JWK): Promise<string> {
  const key = await importJWK(jwk, jwk.alg, { extractable: true });
  if (key instanceof Uint8Array) throw new TypeError('expected an asymmetric private key');
  return exportPKCS8(key);
}

// ---------------------------------------------------------------------------------------------
// The slice of oidc-provider's API used here (it ships JavaScript without type declarations).

type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

interface ProviderInstance {
  callback(): RequestListener;
  on(event: string, listener: (...args: any[]) => void): unknown;
}

interface OidcProviderModule {
  Provider: new (issuer: string, configuration: Record<string, unknown>) => ProviderInstance;
  errors: { InvalidTarget: new (description?: string) => Error };
}

// A non-literal specifier keeps tsc from resolving the untyped package (TS7016).
const OIDC_PROVIDER_PACKAGE: string = 'oidc-provider';

// ---------------------------------------------------------------------------------------------
// Storage shared by successive provider instances (rotation must not forget issued tokens).

interface StoredEntry {
  payload: Record<string, unknown>;
  /** ms since the epoch, or null when the model has no expiry. */
  expiresAt: number | null;
}

/**
 * An oidc-provider adapter (`adapter` configuration) backed by one Map per helper instance. The
 * package's own memory adapter is a module-wide singleton shared by every provider in the test
 * process; this one keeps each provider's tokens to itself and lets them outlive a rotation.
 */
function adapterFor(store: Map<string, StoredEntry>) {
  return class MapAdapter {
    readonly model: string;
    constructor(model: string) {
      this.model = model;
    }
    key(id: string): string {
      return `${this.model}:${id}`;
    }
    async upsert(id: string, payload: Record<string, unknown>, expiresIn?: number): Promise<void> {
      store.set(this.key(id), { payload: structuredClone(payload), expiresAt: typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : null });
    }
    async find(id: string): Promise<Record<string, unknown> | undefined> {
      const entry = store.get(this.key(id));
      if (!entry) return undefined;
      if (entry.expiresAt !== null && entry.expiresAt <= Date.now()) {
        store.delete(this.key(id));
        return undefined;
      }
      return structuredClone(entry.payload);
    }
    async findByUid(uid: string): Promise<Record<string, unknown> | undefined> {
      for (const [key, entry] of store) if (key.startsWith(`${this.model}:`) && entry.payload['uid'] === uid) return this.find(key.slice(this.model.length + 1));
      return undefined;
    }
    async findByUserCode(userCode: string): Promise<Record<string, unknown> | undefined> {
      for (const [key, entry] of store) if (key.startsWith(`${this.model}:`) && entry.payload['userCode'] === userCode) return this.find(key.slice(this.model.length + 1));
      return undefined;
    }
    async consume(id: string): Promise<void> {
      const entry = store.get(this.key(id));
      if (entry) entry.payload['consumed'] = Math.floor(Date.now() / 1000);
    }
    async destroy(id: string): Promise<void> {
      store.delete(this.key(id));
    }
    async revokeByGrantId(grantId: string): Promise<void> {
      for (const [key, entry] of store) if (entry.payload['grantId'] === grantId) store.delete(key);
    }
  };
}

// ---------------------------------------------------------------------------------------------

const DEFAULT_ACCESS_TOKEN_TTL_SECONDS = 300;
const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

function requireSigningKeys(keys: readonly JWK[], what: string): void {
  if (keys.length === 0) throw new TypeError(`${what}: at least one key is needed`);
  for (const key of keys) {
    if (typeof key.kid !== 'string' || typeof key.alg !== 'string') throw new TypeError(`${what}: every key needs a kid and an alg (see generateSigningKey)`);
    if (!(SIGNING_ALGORITHMS as readonly string[]).includes(key.alg)) throw new TypeError(`${what}: alg ${key.alg} is not one of ${SIGNING_ALGORITHMS.join(', ')}`);
    if (key.d === undefined) throw new TypeError(`${what}: keys must be private JWKs`);
  }
  if (new Set(keys.map((key) => key.kid)).size !== keys.length) throw new TypeError(`${what}: duplicate kid`);
}

export async function startOidcProvider(options: OidcProviderOptions): Promise<OidcProvider> {
  const { Provider, errors } = (await import(OIDC_PROVIDER_PACKAGE)) as OidcProviderModule;

  const keys0 = options.keys ?? [await generateSigningKey('ES256')];
  requireSigningKeys(keys0, 'keys');
  const clients = new Map(options.clients.map((client) => [client.clientId, client]));
  if (clients.size !== options.clients.length) throw new TypeError('duplicate clientId');
  for (const client of options.clients) {
    if (client.auth === 'private_key_jwt') requireSigningKeys(client.jwks ?? [], `client ${client.clientId} jwks`);
    if (client.auth === 'client_secret_basic' && !client.secret) throw new TypeError(`client ${client.clientId}: client_secret_basic needs a secret`);
  }
  const resources = new Map(options.resources.map((resource) => [resource.audience, resource]));
  if (resources.size !== options.resources.length) throw new TypeError('duplicate resource audience');
  const allScopes = new Set([...options.clients.flatMap((client) => client.scopes), ...options.resources.flatMap((resource) => resource.scopes)]);

  const store = new Map<string, StoredEntry>();
  const serverErrors: Error[] = [];
  let signingKeys: readonly JWK[] = keys0;
  let handler: RequestListener = (_req, res) => res.writeHead(503).end();

  const server: Server = createServer((req, res) => handler(req, res));
  let port = options.port ?? 0;
  await listen(server, port);
  port = (server.address() as AddressInfo).port;
  const issuer = `http://127.0.0.1:${port}`;

  const buildProvider = (keys: readonly JWK[]): ProviderInstance => {
    const signer = keys[0]!;
    const configuration: Record<string, unknown> = {
      adapter: adapterFor(store),
      jwks: { keys: keys.map((key) => ({ ...key })) },
      clients: options.clients.map((client) => ({
        client_id: client.clientId,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        // oidc-provider refuses an empty scope string: a client without scopes omits it.
        ...(client.scopes.length > 0 ? { scope: client.scopes.join(' ') } : {}),
        token_endpoint_auth_method: client.auth,
        ...(client.auth === 'private_key_jwt'
          ? { jwks: { keys: client.jwks!.map(publicJwk) } }
          : { client_secret: client.secret }),
      })),
      // Without this, a client's default ID token algorithm (RS256) would need an RSA key in the
      // key set even when the provider only holds EC keys.
      clientDefaults: { grant_types: ['client_credentials'], response_types: [], id_token_signed_response_alg: signer.alg },
      scopes: [...allScopes],
      // The provider signs tokens and accepts client assertions with these only: oidc-provider's
      // defaults leave out ES384 and let clients use HS256, which no partner key here may be.
      enabledJWA: { idTokenSigningAlgValues: [...SIGNING_ALGORITHMS], clientAuthSigningAlgValues: [...SIGNING_ALGORITHMS] },
      features: {
        devInteractions: { enabled: false },
        clientCredentials: { enabled: true },
        // RFC 7662: the gateway is an authenticated client of this endpoint. Any confidential
        // client may introspect (every client here is one); public clients never.
        introspection: { enabled: true, allowedPolicy: async (_ctx: unknown, client: { clientAuthMethod: string }) => client.clientAuthMethod !== 'none' },
        // RFC 7009 §2.1: a client may revoke only its own tokens.
        revocation: { enabled: true, allowedPolicy: async (_ctx: unknown, client: { clientId: string }, token: { clientId: string }) => token.clientId === client.clientId },
        resourceIndicators: {
          enabled: true,
          // RFC 8707 §2: `resource` picks the audience and the format. A request naming none
          // gets an opaque token without `aud`, which no resource accepts (the helper's
          // `token()` always names one).
          defaultResource: async () => undefined,
          useGrantedResource: async () => false,
          getResourceServerInfo: async (_ctx: unknown, indicator: string) => {
            const resource = resources.get(indicator);
            if (!resource) throw new errors.InvalidTarget();
            const format = resource.format ?? 'jwt';
            return {
              audience: resource.audience,
              scope: resource.scopes.join(' '),
              accessTokenTTL: resource.accessTokenTTL ?? DEFAULT_ACCESS_TOKEN_TTL_SECONDS,
              accessTokenFormat: format,
              // Pin the signing key by kid so "the first key signs" holds however the keystore
              // would otherwise rank several keys of one algorithm.
              ...(format === 'jwt' ? { jwt: { sign: { alg: signer.alg, kid: signer.kid } } } : {}),
            };
          },
        },
      },
      // RFC 9068 §2.2 asks `sub` of a client-credentials token to be the client; the JWT format
      // sets it already, and putting it in `extra` gives opaque tokens' introspection responses
      // the same claim (RFC 7662 §2.2 `sub`).
      extraTokenClaims: async (_ctx: unknown, token: { kind: string; clientId: string }) => (token.kind === 'ClientCredentials' ? { sub: token.clientId } : undefined),
      ttl: {
        ClientCredentials: (_ctx: unknown, token: { resourceServer?: { accessTokenTTL?: number } }) => token.resourceServer?.accessTokenTTL ?? DEFAULT_ACCESS_TOKEN_TTL_SECONDS,
      },
      cookies: { keys: [randomUUID()] },
      findAccount: async () => undefined,
    };
    const provider = new Provider(issuer, configuration);
    provider.on('server_error', (_ctx: unknown, error: Error) => serverErrors.push(error));
    // Koa logs unhandled errors itself unless someone listens; record them instead.
    provider.on('error', (error: Error) => serverErrors.push(error));
    return provider;
  };

  const install = (keys: readonly JWK[]): void => {
    const provider = buildProvider(keys);
    handler = provider.callback();
    signingKeys = keys;
  };
  install(keys0);

  const agent = new Agent({ connections: 16 });
  const endpoint = (path: string): string => `${issuer}${path}`;
  const tokenEndpoint = endpoint('/token');
  const introspectionEndpoint = endpoint('/token/introspection');
  const revocationEndpoint = endpoint('/token/revocation');

  /** Client authentication (RFC 6749 §2.3) for a POST to the token, introspection or revocation endpoint. */
  const authenticate = async (clientId: string, form: URLSearchParams): Promise<Record<string, string>> => {
    const client = clients.get(clientId);
    if (!client) throw new Error(`unknown client ${clientId}`);
    if (client.auth === 'client_secret_basic') {
      // RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
      const userPass = `${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.secret!)}`;
      return { authorization: `Basic ${Buffer.from(userPass).toString('base64')}` };
    }
    const signer = client.jwks![0]!;
    const now = Math.floor(Date.now() / 1000);
    // RFC 7523 §3: iss = sub = client_id, aud = the authorization server (its issuer
    // identifier, as draft-ietf-oauth-rfc7523bis requires), a unique jti, a short exp.
    const assertion = await new SignJWT({})
      .setProtectedHeader({ alg: signer.alg!, kid: signer.kid! })
      .setIssuer(client.clientId)
      .setSubject(client.clientId)
      .setAudience(issuer)
      .setJti(randomUUID())
      .setIssuedAt(now)
      .setExpirationTime(now + 60)
      .sign(await importJWK(signer, signer.alg));
    form.set('client_id', client.clientId);
    form.set('client_assertion_type', CLIENT_ASSERTION_TYPE);
    form.set('client_assertion', assertion);
    return {};
  };

  const post = async (clientId: string, url: string, form: URLSearchParams): Promise<{ status: number; body: any }> => {
    const headers = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', ...(await authenticate(clientId, form)) };
    const response = await request(url, { method: 'POST', headers, body: form.toString(), dispatcher: agent });
    const text = await response.body.text();
    let body: unknown = text;
    try {
      body = text === '' ? undefined : JSON.parse(text);
    } catch {
      // not JSON: keep the text for the error message
    }
    return { status: response.statusCode, body };
  };

  const tokenResponse = async (clientId: string, { resource, scope }: TokenRequest): Promise<TokenResponse> => {
    const form = new URLSearchParams({ grant_type: 'client_credentials', resource });
    if (scope && scope.length > 0) form.set('scope', scope.join(' '));
    const { status, body } = await post(clientId, tokenEndpoint, form);
    if (status !== 200 || typeof body?.access_token !== 'string') throw new Error(`token request failed: ${status} ${JSON.stringify(body)}`);
    return body as TokenResponse;
  };

  let closed = false;
  return {
    issuer,
    url: issuer,
    port,
    discoveryUrl: endpoint('/.well-known/openid-configuration'),
    jwksUri: endpoint('/jwks'),
    tokenEndpoint,
    introspectionEndpoint,
    revocationEndpoint,
    serverErrors,
    tokenResponse,
    async token(clientId, tokenRequest) {
      return (await tokenResponse(clientId, tokenRequest)).access_token;
    },
    async opaqueToken(clientId, tokenRequest) {
      if (resources.get(tokenRequest.resource)?.format !== 'opaque') throw new Error(`resource ${tokenRequest.resource} is not configured with format: opaque`);
      return (await tokenResponse(clientId, tokenRequest)).access_token;
    },
    async revoke(clientId, token) {
      const { status, body } = await post(clientId, revocationEndpoint, new URLSearchParams({ token }));
      // RFC 7009 §2.2: 200 whether or not the token was known.
      if (status !== 200) throw new Error(`revocation failed: ${status} ${JSON.stringify(body)}`);
    },
    async introspect(clientId, token) {
      const { status, body } = await post(clientId, introspectionEndpoint, new URLSearchParams({ token }));
      if (status !== 200 || typeof body !== 'object' || body === null) throw new Error(`introspection failed: ${status} ${JSON.stringify(body)}`);
      return body as Record<string, unknown>;
    },
    publishedJwks() {
      return { keys: signingKeys.map(publicJwk) };
    },
    async rotateKeys(newKeys) {
      requireSigningKeys(newKeys, 'rotateKeys');
      install(newKeys);
    },
    async stop() {
      if (server.listening) await stopListening(server);
    },
    async start() {
      if (!server.listening) await listen(server, port);
    },
    async close() {
      if (closed) return;
      closed = true;
      if (server.listening) await stopListening(server);
      await agent.close();
    },
  };
}

function listen(server: Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    server.once('error', onError);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', onError);
      resolve();
    });
  });
}

function stopListening(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    // Keep-alive connections (the gateway's pooled ones included) would otherwise hold close().
    server.closeAllConnections();
  });
}
