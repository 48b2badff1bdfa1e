// End to end against a real OpenID provider (oidc-provider from npm) on loopback: the gateway
// discovers the provider's keys, accepts its RFC 9068 access tokens, keeps accepting new ones
// through key rotations without a restart or a failed request, keeps working from its key
// caches (in memory, then on disk) while the provider is down, and checks opaque tokens at the
// provider's RFC 7662 introspection endpoint, failing closed when that endpoint is down.
//
// Every key, secret and token is generated during the run; nothing is committed.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Agent, request } from 'undici';
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import type { JWK } from 'jose';
import { generateSigningKey, privateJwkToPem, startOidcProvider } from '../helpers/oidc-provider.ts';
import type { OidcProvider } from '../helpers/oidc-provider.ts';
import type { Harness } from '../helpers/harness.ts';
import { INTROSPECTION_SECRET_ACK } from '../../src/config/schema.ts';

const ORDERS = 'https://orders.example.test';
/** Another resource of the same provider, whose tokens carry the same scope names. */
const BILLING = 'https://billing.example.test';
/** A resource for which the provider issues opaque tokens only. */
const LEDGER = 'https://ledger.example.test';
const PARTNER_CLIENT = 'acme-orders';
const GATEWAY_BASIC_CLIENT = 'portcullis-basic';
const GATEWAY_KEY_CLIENT = 'portcullis-key';
/** A client allowed only `orders:read`, authenticating with a secret at the token endpoint. */
const NARROW_CLIENT = 'narrow';
const HOST = 'api.example.test';

interface Setup {
  provider: OidcProvider;
  /** The provider's signing keys, in the order of rotation. */
  providerKeys: JWK[];
  partnerKey: JWK;
  gatewayIntrospectionKey: JWK;
  gatewaySecret: string;
}

async function setUp(): Promise<Setup> {
  const providerKeys = [await generateSigningKey('ES256'), await generateSigningKey('ES256'), await generateSigningKey('ES256')];
  const partnerKey = await generateSigningKey('ES256');
  const gatewayIntrospectionKey = await generateSigningKey('ES256');
  const gatewaySecret = randomBytes(32).toString('base64url');
  const provider = await startOidcProvider({
    keys: [providerKeys[0]!],
    clients: [
      { clientId: PARTNER_CLIENT, scopes: ['orders:read', 'orders:write', 'ledger:read'], auth: 'private_key_jwt', jwks: [partnerKey] },
      { clientId: GATEWAY_BASIC_CLIENT, scopes: [], auth: 'client_secret_basic', secret: gatewaySecret },
      { clientId: GATEWAY_KEY_CLIENT, scopes: [], auth: 'private_key_jwt', jwks: [gatewayIntrospectionKey] },
      { clientId: NARROW_CLIENT, scopes: ['orders:read'], auth: 'client_secret_basic', secret: randomBytes(32).toString('base64url') },
    ],
    resources: [
      { audience: ORDERS, scopes: ['orders:read', 'orders:write'] },
      { audience: BILLING, scopes: ['orders:read'] },
      { audience: LEDGER, scopes: ['ledger:read'], format: 'opaque' },
    ],
  });
  return { provider, providerKeys, partnerKey, gatewayIntrospectionKey, gatewaySecret };
}

// ---------------------------------------------------------------------------------------------
// The helper on its own: these hold whatever state the gateway is in, and show that what the
// gateway tests below rely on is really what the provider does.

describe('the OpenID provider helper', () => {
  let setup: Setup;
  before(async () => {
    setup = await setUp();
  });
  after(async () => {
    await setup.provider.close();
  });

  test('discovery names the issuer and its endpoints; the JWKS holds public keys only', async () => {
    const { provider } = setup;
    const metadata = (await (await fetch(provider.discoveryUrl)).json()) as Record<string, unknown>;
    assert.equal(metadata['issuer'], provider.issuer);
    assert.equal(provider.issuer, `http://127.0.0.1:${provider.port}`);
    assert.equal(metadata['jwks_uri'], provider.jwksUri);
    assert.equal(metadata['token_endpoint'], provider.tokenEndpoint);
    assert.equal(metadata['introspection_endpoint'], provider.introspectionEndpoint);
    assert.ok((metadata['grant_types_supported'] as string[]).includes('client_credentials'));
    const jwks = (await (await fetch(provider.jwksUri)).json()) as { keys: JWK[] };
    assert.deepEqual(jwks.keys.map((key) => key.kid), [setup.providerKeys[0]!.kid]);
    for (const key of jwks.keys) {
      assert.equal(key.d, undefined, 'no private member is published');
      assert.equal(key.alg, 'ES256');
      assert.equal(key.use, 'sig');
    }
  });

  test('a client-credentials token is an RFC 9068 JWT with every claim the gateway requires', async () => {
    const { provider } = setup;
    const token = await provider.token(PARTNER_CLIENT, { resource: ORDERS, scope: ['orders:read'] });
    const header = decodeProtectedHeader(token);
    assert.equal(header.typ, 'at+jwt');
    assert.equal(header.alg, 'ES256');
    assert.equal(header.kid, setup.providerKeys[0]!.kid);
    const jwks = createLocalJWKSet((await (await fetch(provider.jwksUri)).json()) as { keys: JWK[] });
    const { payload } = await jwtVerify(token, jwks, { issuer: provider.issuer, audience: ORDERS, typ: 'at+jwt', algorithms: ['ES256'] });
    assert.equal(payload['client_id'], PARTNER_CLIENT);
    assert.equal(payload.sub, PARTNER_CLIENT);
    assert.equal(payload['scope'], 'orders:read');
    assert.equal(typeof payload.jti, 'string');
    assert.equal(typeof payload.iat, 'number');
    assert.equal(payload.exp! - payload.iat!, 300);
  });

  test('scopes are cut to what the resource knows and the client may hold; an unknown resource gets no token', async () => {
    const { provider } = setup;
    const response = await provider.tokenResponse(PARTNER_CLIENT, { resource: BILLING, scope: ['orders:read', 'orders:write'] });
    assert.equal(response.token_type, 'Bearer');
    assert.equal(response.scope, 'orders:read');
    assert.equal(decodeJwt(response.access_token)['scope'], 'orders:read');
    assert.equal(decodeJwt(response.access_token).aud, BILLING);
    // Unknown scope values are dropped (OpenID Connect Core §3.1.2.1), not granted.
    assert.equal(decodeJwt(await provider.token(PARTNER_CLIENT, { resource: ORDERS, scope: ['admin'] }))['scope'], undefined);
    await assert.rejects(provider.token(PARTNER_CLIENT, { resource: 'https://unknown.example.test', scope: ['orders:read'] }), /invalid_target/);
    // A known scope outside the client's own list is refused (RFC 6749 §5.2 invalid_scope).
    await assert.rejects(provider.token(NARROW_CLIENT, { resource: ORDERS, scope: ['orders:write'] }), /invalid_scope/);
    assert.equal(decodeJwt(await provider.token(NARROW_CLIENT, { resource: ORDERS, scope: ['orders:read'] }))['client_id'], NARROW_CLIENT);
  });

  test('opaque tokens introspect as active for both client authentication methods, and inactive once revoked', async () => {
    const { provider } = setup;
    const token = await provider.opaqueToken(PARTNER_CLIENT, { resource: LEDGER, scope: ['ledger:read'] });
    assert.ok(!token.includes('.'), 'an opaque token is not JWT-shaped');
    for (const client of [GATEWAY_BASIC_CLIENT, GATEWAY_KEY_CLIENT]) {
      const body = await provider.introspect(client, token);
      assert.equal(body['active'], true, client);
      assert.equal(body['client_id'], PARTNER_CLIENT);
      assert.equal(body['sub'], PARTNER_CLIENT);
      assert.equal(body['aud'], LEDGER);
      assert.equal(body['scope'], 'ledger:read');
      assert.equal(body['iss'], provider.issuer);
      assert.equal(body['token_type'], 'Bearer');
      assert.equal(typeof body['exp'], 'number');
    }
    assert.deepEqual(await provider.introspect(GATEWAY_BASIC_CLIENT, 'x'.repeat(43)), { active: false });
    await provider.revoke(PARTNER_CLIENT, token);
    assert.deepEqual(await provider.introspect(GATEWAY_BASIC_CLIENT, token), { active: false });
    await assert.rejects(provider.opaqueToken(PARTNER_CLIENT, { resource: ORDERS, scope: ['orders:read'] }), /not configured with format: opaque/);
  });

  test('the introspection endpoint refuses a caller with the wrong secret', async () => {
    const { provider } = setup;
    const response = await request(provider.introspectionEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${GATEWAY_BASIC_CLIENT}:wrong`).toString('base64')}` },
      body: 'token=abc',
    });
    assert.equal(response.statusCode, 401);
    assert.equal(((await response.body.json()) as { error: string }).error, 'invalid_client');
  });

  test('rotation swaps the published keys and the signer on the same port; stop/start keeps state', async () => {
    const { provider, providerKeys } = setup;
    const before = await provider.token(PARTNER_CLIENT, { resource: ORDERS, scope: ['orders:read'] });
    const opaque = await provider.opaqueToken(PARTNER_CLIENT, { resource: LEDGER, scope: ['ledger:read'] });
    await provider.rotateKeys([providerKeys[1]!, providerKeys[0]!]);
    const jwks = (await (await fetch(provider.jwksUri)).json()) as { keys: JWK[] };
    assert.deepEqual(jwks.keys.map((key) => key.kid), [providerKeys[1]!.kid, providerKeys[0]!.kid]);
    assert.deepEqual(provider.publishedJwks().keys.map((key) => key.kid), [providerKeys[1]!.kid, providerKeys[0]!.kid]);
    const afterRotation = await provider.token(PARTNER_CLIENT, { resource: ORDERS, scope: ['orders:read'] });
    assert.equal(decodeProtectedHeader(afterRotation).kid, providerKeys[1]!.kid);
    // The old key is still published, so a token it signed still verifies.
    await jwtVerify(before, createLocalJWKSet(jwks), { issuer: provider.issuer, audience: ORDERS });
    assert.equal((await provider.introspect(GATEWAY_BASIC_CLIENT, opaque))['active'], true, 'opaque tokens survive a rotation');

    await provider.stop();
    await assert.rejects(fetch(provider.discoveryUrl));
    await provider.start();
    assert.equal((await provider.introspect(GATEWAY_KEY_CLIENT, opaque))['active'], true, 'and a stop/start');
    await provider.rotateKeys([providerKeys[0]!]);
    assert.deepEqual(setup.provider.serverErrors, []);
  });
});

// ---------------------------------------------------------------------------------------------
// Through the gateway.

type IntrospectionAuthChoice = 'client_secret_basic' | 'private_key_jwt' | 'private_key_jwt_unregistered';

function gatewayConfig(setup: Setup, introspectionAuth: IntrospectionAuthChoice): string {
  const { provider, gatewaySecret } = setup;
  const auth =
    introspectionAuth === 'client_secret_basic'
      ? `    client_id: ${GATEWAY_BASIC_CLIENT}
    auth:
      method: client_secret_basic
      secret: ${gatewaySecret}
      insecure_shared_secret: "${INTROSPECTION_SECRET_ACK}"`
      : `    client_id: ${GATEWAY_KEY_CLIENT}
    auth:
      method: private_key_jwt
      key: ${introspectionAuth === 'private_key_jwt' ? 'introspection-client.key' : 'unregistered.key'}
      alg: ES256
      kid: ${setup.gatewayIntrospectionKey.kid}`;
  return `version: 1
gateway:
  data_dir: {{DIR}}/data
  decision_log: {{DIR}}/decisions.jsonl
  drain_timeout: 5s
listeners:
  - name: partner
    zone: partner
    port: 0
    hostnames: [${HOST}]
upstreams:
  - id: backend
    url: {{UPSTREAM}}
issuers:
  - id: idp
    issuer: ${provider.issuer}
    discovery: ${provider.discoveryUrl}
    algorithms: [ES256]
    # Three rotations happen within seconds in this test; real rotations are far apart.
    unknown_kid_cooldown: 500ms
introspection:
  - id: idp-introspection
    url: ${provider.introspectionEndpoint}
    issuer: ${provider.issuer}
${auth}
    # Short, so the test can watch a revocation bite once the cached answer runs out.
    cache_ttl: 1s
    negative_cache_ttl: 1s
apis:
  - id: orders
    audience: ${ORDERS}
  - id: ledger
    audience: ${LEDGER}
partners:
  - id: acme
    agreement:
      id: agr-acme-1
      expires: "2099-12-31"
    credentials:
      - id: acme-jwt
        type: jwt
        issuer: idp
        client_id: ${PARTNER_CLIENT}
      - id: acme-opaque
        type: introspection
        endpoint: idp-introspection
        client_id: ${PARTNER_CLIENT}
    grants:
      - api: orders
        scopes: [orders:read, orders:write]
      - api: ledger
        scopes: [ledger:read]
routes:
  - id: orders-read
    zone: partner
    api: orders
    methods: [GET]
    path: /orders/{id}
    upstream: backend
    credentials: [jwt]
    scopes: [orders:read]
  - id: ledger-read
    zone: partner
    api: ledger
    methods: [GET]
    path: /ledger/{id}
    upstream: backend
    credentials: [introspection]
    scopes: [ledger:read]
`;
}

interface GatewayAnswer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Record<string, unknown> | null;
}

describe('the gateway in front of the provider', () => {
  let setup: Setup;
  let h: Harness;
  const agent = new Agent({ connections: 16 });

  let startGateway: typeof import('../../src/server/gateway.ts').startGateway;

  before(async () => {
    // Loaded here rather than at the top of the file, so the provider checks above run (and
    // report) on their own even when the gateway does not load.
    const { startHarness } = await import('../helpers/harness.ts');
    ({ startGateway } = await import('../../src/server/gateway.ts'));
    setup = await setUp();
    const unregistered = await generateSigningKey('ES256');
    h = await startHarness(gatewayConfig(setup, 'client_secret_basic'), {
      files: {
        'introspection-client.key': await privateJwkToPem(setup.gatewayIntrospectionKey),
        'unregistered.key': await privateJwkToPem(unregistered),
      },
    });
  });
  after(async () => {
    await agent.close();
    await h?.close();
    await setup?.provider.close();
  });

  const call = async (path: string, token: string | null, base = h.url('partner')): Promise<GatewayAnswer> => {
    const headers: Record<string, string> = { host: HOST };
    if (token !== null) headers['authorization'] = `Bearer ${token}`;
    const response = await request(`${base}${path}`, { method: 'GET', headers, dispatcher: agent });
    const text = await response.body.text();
    let body: Record<string, unknown> | null = null;
    try {
      body = JSON.parse(text) as Record<string, unknown>;
    } catch {
      body = null;
    }
    return { status: response.statusCode, headers: response.headers, body };
  };
  /**
   * The decision record of one answer, found by request id: a refusal carries it in
   * `X-Request-Id`, a forwarded request in what the upstream saw (the recording upstream echoes it).
   */
  const recordOf = async (answer: GatewayAnswer): Promise<Record<string, any>> => {
    const echoed = (answer.body?.['headers'] as Record<string, string> | undefined)?.['x-request-id'];
    const requestId = answer.headers['x-request-id'] ?? echoed;
    assert.equal(typeof requestId, 'string', 'the answer names its request id');
    const deadline = Date.now() + 3000;
    for (;;) {
      const record = (await h.records()).find((entry) => entry.http.request.id === requestId);
      if (record) return record;
      assert.ok(Date.now() < deadline, `no decision record for request ${requestId}`);
    }
  };
  const ordersToken = (scope: string[] = ['orders:read'], resource = ORDERS): Promise<string> => setup.provider.token(PARTNER_CLIENT, { resource, scope });
  const ledgerToken = (): Promise<string> => setup.provider.opaqueToken(PARTNER_CLIENT, { resource: LEDGER, scope: ['ledger:read'] });

  test('(a) a token from the provider is accepted and the upstream is reached', async () => {
    const seen = h.upstream.seen.length;
    const token = await ordersToken();
    const answer = await call('/orders/42', token);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(h.upstream.seen.length, seen + 1);
    assert.equal(h.upstream.seen.at(-1)!.path, '/orders/42');
    const record = await recordOf(answer);
    assert.equal(record.portcullis.reason, 'allowed');
    assert.equal(record.portcullis.upstream.called, true);
    assert.equal(record.portcullis.partner.id, 'acme');
    assert.equal(record.portcullis.credential.id, 'acme-jwt');
    assert.equal(record.portcullis.token.iss, setup.provider.issuer);
    assert.equal(record.portcullis.token.jti, decodeJwt(token).jti);
  });

  test('(b) a token for another audience of the same provider is refused with invalid_token', async () => {
    const seen = h.upstream.seen.length;
    const answer = await call('/orders/42', await ordersToken(['orders:read'], BILLING));
    assert.equal(answer.status, 401);
    assert.equal(answer.body?.['code'], 'invalid_token');
    assert.match(String(answer.headers['www-authenticate']), /^Bearer realm="[^"]*", error="invalid_token"/);
    assert.equal(h.upstream.seen.length, seen, 'not forwarded');
    assert.equal((await recordOf(answer)).portcullis.reason, 'token.aud_mismatch');
  });

  test('(c) a token without the route\'s scope is refused with insufficient_scope and the scope named', async () => {
    const seen = h.upstream.seen.length;
    const answer = await call('/orders/42', await ordersToken(['orders:write']));
    assert.equal(answer.status, 403);
    assert.equal(answer.body?.['code'], 'insufficient_scope');
    const challenge = String(answer.headers['www-authenticate']);
    assert.match(challenge, /error="insufficient_scope"/);
    assert.match(challenge, /scope="orders:read"/);
    assert.equal(h.upstream.seen.length, seen, 'not forwarded');
    assert.equal((await recordOf(answer)).portcullis.reason, 'scope.insufficient');
  });

  test('(f) opaque tokens are checked at the provider\'s introspection endpoint, and its outage fails closed', async () => {
    const { provider } = setup;
    // client_secret_basic (the configuration the harness started with).
    const token = await ledgerToken();
    const seen = h.upstream.seen.length;
    const accepted = await call('/ledger/7', token);
    assert.equal(accepted.status, 200, JSON.stringify(accepted.body));
    assert.equal(h.upstream.seen.length, seen + 1);
    const acceptedRecord = await recordOf(accepted);
    assert.equal(acceptedRecord.portcullis.credential.id, 'acme-opaque');
    assert.equal(acceptedRecord.portcullis.credential.type, 'introspection');

    // Unknown and revoked tokens are inactive: 401, never forwarded.
    const unknown = await call('/ledger/7', randomBytes(32).toString('base64url'));
    assert.equal(unknown.status, 401);
    assert.equal(unknown.body?.['code'], 'invalid_token');
    assert.equal((await recordOf(unknown)).portcullis.reason, 'token.inactive');
    const revokedBeforeUse = await ledgerToken();
    await provider.revoke(PARTNER_CLIENT, revokedBeforeUse);
    assert.equal((await call('/ledger/7', revokedBeforeUse)).status, 401);

    // A token revoked after it was accepted stops working once the cached answer (cache_ttl 1s) expires.
    await provider.revoke(PARTNER_CLIENT, token);
    await new Promise((resolve) => setTimeout(resolve, 1200));
    const revoked = await call('/ledger/7', token);
    assert.equal(revoked.status, 401);
    assert.equal(revoked.body?.['code'], 'invalid_token');
    assert.equal(h.upstream.seen.length, seen + 1, 'no inactive token was forwarded');

    // private_key_jwt (RFC 7523) instead of a shared secret.
    await h.writeConfig(gatewayConfig(setup, 'private_key_jwt'));
    const reloaded = await h.gateway.reload();
    assert.ok(reloaded.ok, JSON.stringify(reloaded));
    const byKey = await call('/ledger/8', await ledgerToken());
    assert.equal(byKey.status, 200, JSON.stringify(byKey.body));

    // The provider refuses a gateway key it does not know: that is the gateway's dependency
    // failing, not the caller's token (SECURITY.md IN-04) → 503.
    await h.writeConfig(gatewayConfig(setup, 'private_key_jwt_unregistered'));
    assert.ok((await h.gateway.reload()).ok);
    const refusedGateway = await call('/ledger/8', await ledgerToken());
    assert.equal(refusedGateway.status, 503, JSON.stringify(refusedGateway.body));
    assert.equal(refusedGateway.body?.['code'], 'dependency_unavailable');
    assert.equal((await recordOf(refusedGateway)).portcullis.reason, 'dependency.introspection_unavailable');
    await h.writeConfig(gatewayConfig(setup, 'private_key_jwt'));
    assert.ok((await h.gateway.reload()).ok);

    // Endpoint down: a token the gateway has not seen cannot be checked → 503, never a pass.
    const unseen = await ledgerToken();
    await provider.stop();
    try {
      const seenBefore = h.upstream.seen.length;
      const down = await call('/ledger/9', unseen);
      assert.equal(down.status, 503, JSON.stringify(down.body));
      assert.equal(down.body?.['code'], 'dependency_unavailable');
      assert.ok(down.headers['retry-after'] !== undefined, 'Retry-After on 503');
      assert.equal((await recordOf(down)).portcullis.reason, 'dependency.introspection_unavailable');
      assert.equal(h.upstream.seen.length, seenBefore, 'not forwarded');
    } finally {
      await provider.start();
    }
    // Back up: the same token is accepted (the outage was not cached as a verdict on it).
    assert.equal((await call('/ledger/9', unseen)).status, 200);
  });

  test('(d) tokens keep being accepted through key rotations at the provider, without a restart or a failed request', async () => {
    const { provider, providerKeys } = setup;
    const [k1, k2, k3] = providerKeys as [JWK, JWK, JWK];
    assert.equal(decodeProtectedHeader(await ordersToken()).kid, k1.kid, 'the provider signs with k1 before the rotations');

    const acceptedByKid = new Map<string, number>();
    const failures: string[] = [];
    let requests = 0;
    const seenBefore = h.upstream.seen.length;
    const deadline = Date.now() + 3000;
    const worker = async (): Promise<void> => {
      while (Date.now() < deadline) {
        const token = await ordersToken();
        const kid = decodeProtectedHeader(token).kid!;
        const answer = await call('/orders/1', token);
        requests++;
        if (answer.status === 200) acceptedByKid.set(kid, (acceptedByKid.get(kid) ?? 0) + 1);
        else failures.push(`${answer.status} ${String(answer.body?.['code'])} kid=${kid}`);
      }
    };
    const rotations = (async () => {
      const at = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
      await at(700);
      // New key first (it signs), the old one still published for tokens already out.
      await provider.rotateKeys([k2, k1]);
      await at(700);
      // The old key is retired.
      await provider.rotateKeys([k2]);
      await at(700);
      // And the next rotation: a second new kid the gateway has never seen.
      await provider.rotateKeys([k3, k2]);
    })();
    await Promise.all([worker(), worker(), worker(), worker(), rotations]);

    assert.deepEqual(failures, [], `${failures.length} of ${requests} requests failed`);
    assert.ok(requests >= 40, `only ${requests} requests in 3 s`);
    for (const key of [k1, k2, k3]) assert.ok((acceptedByKid.get(key.kid!) ?? 0) > 0, `tokens signed by ${key.kid} were accepted: ${JSON.stringify([...acceptedByKid])}`);
    assert.equal(h.upstream.seen.length - seenBefore, requests, 'every request reached the upstream');
    assert.equal(decodeProtectedHeader(await ordersToken()).kid, k3.kid);
    assert.equal((await call('/orders/2', await ordersToken())).status, 200);
    assert.deepEqual(provider.serverErrors, []);
  });

  test('(e) with the provider down, known keys keep working, and a restarted gateway serves from its on-disk key cache', async () => {
    const { provider } = setup;
    const used = await ordersToken();
    const fresh = await ordersToken();
    const afterRestart = await ordersToken();
    assert.equal((await call('/orders/3', used)).status, 200, 'keys are fetched and cached while the provider is up');

    await provider.stop();
    try {
      await assert.rejects(fetch(provider.jwksUri), 'the provider is really down');
      assert.equal((await call('/orders/3', used)).status, 200, 'a token already seen');
      assert.equal((await call('/orders/3', fresh)).status, 200, 'a token never seen, signed by a cached key');

      // A new gateway process state: nothing in memory, only the data_dir on disk.
      await h.gateway.shutdown();
      const restarted = await startGateway({ configPath: h.configPath });
      try {
        const url = restarted.addresses().listeners.find((entry) => entry.name === 'partner')!.url;
        const seen = h.upstream.seen.length;
        const answer = await call('/orders/4', afterRestart, url);
        assert.equal(answer.status, 200, JSON.stringify(answer.body));
        assert.equal(h.upstream.seen.length, seen + 1);
        // A bad token is still refused: the cache serves keys, not verdicts.
        const forged = `${afterRestart.slice(0, afterRestart.lastIndexOf('.'))}.${Buffer.alloc(64).toString('base64url')}`;
        assert.equal((await call('/orders/4', forged, url)).status, 401);
      } finally {
        await restarted.shutdown();
      }
    } finally {
      await provider.start();
    }
  });
});
