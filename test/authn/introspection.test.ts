// The introspection client against a real RFC 7662 endpoint on loopback: the endpoint checks
// the client authentication it receives (private_key_jwt signature, Basic credentials, the TLS
// client certificate) and answers per token, so every mapping below crosses a real socket.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { jwtVerify, decodeProtectedHeader } from 'jose';
import { createIntrospectionClient, refuseByShape } from '../../src/authn/introspection.ts';
import type { IntrospectionClient, IntrospectionOutcome } from '../../src/authn/introspection.ts';
import type { CompiledIntrospection, IntrospectionAuth } from '../../src/config/snapshot.ts';
import { CACHE_MAX_ENTRIES, ExpiringLruCache, cacheKey } from '../../src/authn/introspection/cache.ts';
import { setLogListener } from '../../src/log.ts';
import { createCa, issueClientCertificate, issueServerCertificate } from '../../src/pki/dev-ca.ts';

const AUDIENCE = 'https://api.example/orders';
const ISSUER = 'https://as.example';
const CLIENT_ID = 'portcullis-gateway';

/** The test clock: the client reads it, and the endpoint computes `exp` and verifies assertions with it. */
let clock = Date.now();
const now = (): number => clock;
const seconds = (): number => Math.floor(clock / 1000);

type Answer = { status?: number; contentType?: string; json?: unknown; raw?: string | Buffer; hang?: boolean };

/** What the endpoint answers for each token, at the test clock's `nowSeconds`; anything unknown is inactive. */
function answerFor(token: string, nowSeconds: number): Answer {
  const baseSeconds = nowSeconds;
  const active = { active: true, client_id: 'partner-client', aud: AUDIENCE, iss: ISSUER, scope: 'orders:read orders:write', exp: baseSeconds + 3600, iat: baseSeconds, jti: 'jti-1', token_type: 'Bearer', sub: 'partner-client' };
  switch (token) {
    case 'active-token':
      return { json: active };
    case 'aud-array-token':
      return { json: { ...active, aud: ['https://other.example', AUDIENCE] } };
    case 'short-lived-token':
      return { json: { ...active, exp: baseSeconds + 10 } };
    case 'no-exp-token': {
      const { exp: _exp, ...rest } = active;
      return { json: rest };
    }
    case 'inactive-token':
      return { json: { active: false } };
    case 'string-true-token':
      return { json: { ...active, active: 'true' } };
    case 'one-token':
      return { json: { ...active, active: 1 } };
    case 'missing-active-token': {
      const { active: _active, ...rest } = active;
      return { json: rest };
    }
    case 'error-500-token':
      return { status: 500, json: { error: 'server_error' } };
    case 'slow-token':
      return { hang: true };
    case 'not-json-token':
      return { raw: '{"active": true,' };
    case 'html-token':
      return { contentType: 'text/html', raw: '<html>active</html>' };
    case 'redirect-token':
      return { status: 302, raw: '' };
    case 'array-token':
      return { raw: '[{"active":true}]' };
    case 'bad-utf8-token':
      return { raw: Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]) };
    case 'duplicate-active-token':
      return { raw: `{"active":false,"client_id":"partner-client","aud":"${AUDIENCE}","\\u0061ctive":true}` };
    case 'huge-token':
      return { json: { ...active, padding: 'x'.repeat(70 * 1024) } };
    case 'wrong-iss-token':
      return { json: { ...active, iss: 'https://rogue-as.example' } };
    case 'numeric-iss-token':
      return { json: { ...active, iss: 7 } };
    case 'no-aud-token': {
      const { aud: _aud, ...rest } = active;
      return { json: rest };
    }
    case 'other-aud-token':
      return { json: { ...active, aud: ['https://other.example'] } };
    case 'bad-aud-token':
      return { json: { ...active, aud: [AUDIENCE, 5] } };
    case 'expired-token':
      return { json: { ...active, exp: baseSeconds - 1 } };
    case 'string-exp-token':
      return { json: { ...active, exp: String(baseSeconds + 3600) } };
    case 'nbf-future-token':
      return { json: { ...active, nbf: baseSeconds + 600 } };
    case 'iat-future-token':
      return { json: { ...active, iat: baseSeconds + 600 } };
    case 'no-client-id-token': {
      const { client_id: _clientId, ...rest } = active;
      return { json: rest };
    }
    case 'numeric-client-id-token':
      return { json: { ...active, client_id: 42 } };
    case 'scope-array-token':
      return { json: { ...active, scope: ['orders:read'] } };
    case 'scope-double-space-token':
      return { json: { ...active, scope: 'orders:read  orders:write' } };
    case 'dpop-token':
      return { json: { ...active, token_type: 'DPoP' } };
    case 'cnf-token':
      return { json: { ...active, cnf: { 'x5t#S256': 'bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2' } } };
    case 'proto-token':
      return { raw: `{"active":true,"client_id":"partner-client","aud":"${AUDIENCE}","__proto__":{"admin":true},"scope":"orders:read"}` };
    default:
      return { json: { active: false } };
  }
}

interface FakeEndpoint {
  readonly url: string;
  /** Every call that passed client authentication, in order. */
  readonly calls: Array<{ token: string; form: URLSearchParams; headers: IncomingMessage['headers'] }>;
  /** Calls refused for bad client authentication, with why. */
  readonly refusedAuth: string[];
  callsFor(token: string): number;
  close(): Promise<void>;
}

type Authenticate = (req: IncomingMessage, form: URLSearchParams) => Promise<string | null>;

async function startFakeEndpoint(authenticate: Authenticate, tls?: { cert: string; key: string; ca: string }): Promise<FakeEndpoint> {
  const calls: FakeEndpoint['calls'] = [];
  const refusedAuth: string[] = [];
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      void (async () => {
        const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
        // RFC 7662 §2.1: POST, form-encoded, `token` plus the hint.
        if (req.method !== 'POST' || req.headers['content-type'] !== 'application/x-www-form-urlencoded' || form.get('token_type_hint') !== 'access_token' || form.getAll('token').length !== 1) {
          res.writeHead(400).end();
          return;
        }
        const problem = await authenticate(req, form);
        if (problem !== null) {
          refusedAuth.push(problem);
          res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"invalid_client"}');
          return;
        }
        const token = form.get('token')!;
        calls.push({ token, form, headers: req.headers });
        const answer = answerFor(token, seconds());
        if (answer.hang) return; // never answers; the connection is closed with the server
        const body = answer.raw ?? JSON.stringify(answer.json);
        res.writeHead(answer.status ?? 200, { 'content-type': answer.contentType ?? 'application/json' }).end(body);
      })();
    });
  };
  const server: Server = tls ? createHttpsServer({ cert: tls.cert, key: tls.key, ca: tls.ca, requestCert: true, rejectUnauthorized: true }, handler) : createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}/oauth2/introspect`,
    calls,
    refusedAuth,
    callsFor: (token) => calls.filter((call) => call.token === token).length,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function endpointConfig(url: string, auth: IntrospectionAuth, overrides: Partial<CompiledIntrospection> = {}): CompiledIntrospection {
  return {
    id: 'corp-as',
    url,
    issuer: ISSUER,
    ca: null,
    clientId: CLIENT_ID,
    auth,
    cacheTtlMs: 60_000,
    negativeCacheTtlMs: 5_000,
    timeoutMs: 300,
    maxRequestsPerSecond: 1000,
    ...overrides,
  };
}

const pem = (key: KeyObject): Buffer => Buffer.from(key.export({ type: 'pkcs8', format: 'pem' }));

/** RFC 7523 §3, checked as a strict authorization server would. */
function privateKeyJwtVerifier(publicKey: KeyObject, url: () => string, seenJtis: Set<string>): Authenticate {
  return async (req, form) => {
    if (req.headers.authorization !== undefined) return 'two client authentication methods';
    if (form.get('client_assertion_type') !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer') return 'wrong client_assertion_type';
    const assertion = form.get('client_assertion');
    if (assertion === null) return 'no client_assertion';
    try {
      const { payload, protectedHeader } = await jwtVerify(assertion, publicKey, {
        algorithms: ['ES256'],
        issuer: CLIENT_ID,
        subject: CLIENT_ID,
        audience: url(),
        typ: 'JWT',
        currentDate: new Date(clock),
        requiredClaims: ['jti', 'exp', 'iat'],
      });
      if (protectedHeader.kid !== 'gateway-key-1') return 'wrong kid';
      if (typeof payload.aud !== 'string') return 'aud is not a single string';
      if (payload.exp! - payload.iat! > 60) return 'assertion lives longer than 60 s';
      if (seenJtis.has(payload.jti!)) return 'replayed jti';
      seenJtis.add(payload.jti!);
      return null;
    } catch (error) {
      return `assertion rejected: ${(error as Error).message}`;
    }
  };
}

function expectRefusal(outcome: IntrospectionOutcome, reason: string, detail?: RegExp): void {
  assert.equal(outcome.ok, false, `expected a refusal with ${reason}`);
  if (outcome.ok) return;
  assert.equal(outcome.reason, reason, outcome.detail);
  if (detail) assert.match(outcome.detail, detail);
}

const logLines: Array<{ level: string; event: string; [key: string]: unknown }> = [];
before(() => setLogListener((entry) => logLines.push(entry), { quiet: true }));
after(() => setLogListener(null));

describe('private_key_jwt endpoint: answers mapped to outcomes', () => {
  const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jtis = new Set<string>();
  let endpoint: FakeEndpoint;
  let client: IntrospectionClient;

  before(async () => {
    clock = Date.now();
    endpoint = await startFakeEndpoint(privateKeyJwtVerifier(keys.publicKey, () => endpoint.url, jtis));
    client = createIntrospectionClient(endpointConfig(endpoint.url, { method: 'private_key_jwt', key: pem(keys.privateKey), alg: 'ES256', kid: 'gateway-key-1' }), { now });
  });
  after(async () => {
    client.close();
    await endpoint.close();
  });

  test('an active token: claims, client id, exact scopes, jti and exp; every call carries a fresh, verified assertion', async () => {
    const outcome = await client.introspect('active-token', AUDIENCE);
    assert.equal(outcome.ok, true);
    if (!outcome.ok) return;
    assert.equal(outcome.clientId, 'partner-client');
    assert.deepEqual([...outcome.scopes].sort(), ['orders:read', 'orders:write']);
    assert.equal(outcome.jti, 'jti-1');
    assert.equal(outcome.exp, (outcome.claims['iat'] as number) + 3600);
    assert.equal(outcome.cached, false);
    assert.equal(Object.getPrototypeOf(outcome.claims), null);
    assert.ok(Object.isFrozen(outcome.claims));
    await client.introspect('aud-array-token', AUDIENCE);
    assert.deepEqual(endpoint.refusedAuth, []);
    assert.equal(jtis.size, 2, 'one assertion per call, each with its own jti');
    const assertion = endpoint.calls[0]!.form.get('client_assertion')!;
    assert.deepEqual(decodeProtectedHeader(assertion), { alg: 'ES256', typ: 'JWT', kid: 'gateway-key-1' });
    assert.equal(endpoint.calls[0]!.form.get('client_id'), null);
  });

  test('aud as an array containing the audience, and a response without exp, are accepted', async () => {
    const fromArray = await client.introspect('aud-array-token', AUDIENCE);
    assert.equal(fromArray.ok, true);
    const withoutExp = await client.introspect('no-exp-token', AUDIENCE);
    assert.equal(withoutExp.ok && withoutExp.exp, null);
  });

  const cases: Array<[token: string, reason: string, detail: RegExp]> = [
    ['inactive-token', 'token.inactive', /active: false/],
    ['string-true-token', 'token.inactive', /"active" is a string/],
    ['one-token', 'token.inactive', /"active" is a number/],
    ['missing-active-token', 'token.inactive', /"active" is missing/],
    ['error-500-token', 'dependency.introspection_unavailable', /HTTP 500/],
    ['slow-token', 'dependency.introspection_unavailable', /no answer within 300ms/],
    ['not-json-token', 'dependency.introspection_unavailable', /unusable/],
    ['html-token', 'dependency.introspection_unavailable', /application\/json/],
    ['redirect-token', 'dependency.introspection_unavailable', /HTTP 302/],
    ['array-token', 'dependency.introspection_unavailable', /not a JSON object/],
    ['bad-utf8-token', 'dependency.introspection_unavailable', /UTF-8/],
    ['duplicate-active-token', 'dependency.introspection_unavailable', /duplicate|twice/i],
    ['huge-token', 'dependency.introspection_unavailable', /larger than 65536 bytes/],
    ['wrong-iss-token', 'token.issuer_unknown', /iss is not the issuer configured/],
    ['numeric-iss-token', 'token.claim_invalid', /iss is a number/],
    ['no-aud-token', 'token.aud_mismatch', /no aud/],
    ['other-aud-token', 'token.aud_mismatch', /does not contain/],
    ['bad-aud-token', 'token.claim_invalid', /aud/],
    ['expired-token', 'token.expired', /exp is past/],
    ['string-exp-token', 'token.claim_invalid', /exp is a string/],
    ['nbf-future-token', 'token.not_yet_valid', /nbf/],
    ['iat-future-token', 'token.iat_future', /iat/],
    ['no-client-id-token', 'token.claim_missing', /client_id/],
    ['numeric-client-id-token', 'token.claim_invalid', /client_id is a number/],
    ['scope-array-token', 'token.claim_invalid', /scope/],
    ['scope-double-space-token', 'token.claim_invalid', /scope/],
    ['dpop-token', 'token.claim_invalid', /DPoP but cnf.jkt is missing/],
  ];
  test('a certificate-bound token passes introspection with its cnf: the credential stage checks the binding', async () => {
    const outcome = await client.introspect('cnf-token', AUDIENCE);
    assert.equal(outcome.ok, true);
    assert.deepEqual(outcome.ok && { ...(outcome.claims['cnf'] as object) }, { 'x5t#S256': 'bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2' });
  });
  for (const [token, reason, detail] of cases) {
    test(`${token} → ${reason}`, async () => {
      const outcome = await client.introspect(token, AUDIENCE);
      expectRefusal(outcome, reason, detail);
      assert.ok(!(!outcome.ok && outcome.detail.includes(token)), 'the detail never echoes the token');
      assert.equal(endpoint.callsFor(token), 1, 'the endpoint was asked');
    });
  }

  test('a __proto__ member is an own claim that cannot reach Object.prototype', async () => {
    const outcome = await client.introspect('proto-token', AUDIENCE);
    assert.equal(outcome.ok, true);
    if (!outcome.ok) return;
    assert.equal(Object.getPrototypeOf(outcome.claims), null);
    assert.equal((outcome.claims['__proto__'] as { admin?: unknown }).admin, true);
    assert.equal(({} as Record<string, unknown>)['admin'], undefined);
  });

  test('the same token judged for another API is a separate question (audience is part of the cache key)', async () => {
    const forOrders = await client.introspect('other-aud-token', 'https://other.example');
    assert.equal(forOrders.ok, true);
    expectRefusal(await client.introspect('other-aud-token', AUDIENCE), 'token.aud_mismatch');
  });
});

describe('what is never sent to the endpoint', () => {
  let endpoint: FakeEndpoint;
  let client: IntrospectionClient;
  before(async () => {
    endpoint = await startFakeEndpoint(async () => null);
    client = createIntrospectionClient(endpointConfig(endpoint.url, { method: 'client_secret_basic', secret: 's' }), { now });
  });
  after(async () => {
    client.close();
    await endpoint.close();
  });

  test('JWS- and JWE-shaped tokens are refused as token.malformed, synchronously, without a call (IN-06)', () => {
    const jws = 'eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl';
    const jwe = 'eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..aXY.Y2lwaGVy.dGFn';
    for (const token of [jws, jwe]) {
      const outcome = client.introspect(token, AUDIENCE);
      assert.ok(!(outcome instanceof Promise));
      expectRefusal(outcome, 'token.malformed', /JWT-shaped token goes to JWT validation/);
    }
    assert.equal(endpoint.calls.length, 0);
  });

  test('too long and non-b64token tokens are refused without a call', () => {
    expectRefusal(client.introspect('a'.repeat(8193), AUDIENCE) as IntrospectionOutcome, 'token.too_large');
    expectRefusal(client.introspect('two words', AUDIENCE) as IntrospectionOutcome, 'token.malformed', /b64token/);
    expectRefusal(client.introspect('', AUDIENCE) as IntrospectionOutcome, 'token.malformed');
    assert.equal(endpoint.calls.length, 0);
  });

  test('an opaque token with dots that is not a JOSE shape is still opaque (e.g. prefix.signature)', async () => {
    assert.equal(refuseByShape('ory_at_abc.def'), null);
    assert.equal(refuseByShape('a.b.c.d'), null);
    await client.introspect('ory_at_abc.def', AUDIENCE);
    assert.equal(endpoint.callsFor('ory_at_abc.def'), 1);
  });
});

describe('cache: keyed on a hash, bounded by exp and cache_ttl, negative answers briefly, failures never', () => {
  let endpoint: FakeEndpoint;
  let client: IntrospectionClient;
  before(async () => {
    clock = Date.now();
    endpoint = await startFakeEndpoint(async () => null);
    client = createIntrospectionClient(endpointConfig(endpoint.url, { method: 'client_secret_basic', secret: 's' }), { now });
  });
  after(async () => {
    client.close();
    await endpoint.close();
  });

  test('a hit is answered synchronously and makes no call; after cache_ttl the endpoint is asked again', async () => {
    const start = clock;
    const first = await client.introspect('active-token', AUDIENCE);
    assert.equal(first.ok && first.cached, false);
    clock = start + 59_999;
    const hit = client.introspect('active-token', AUDIENCE);
    assert.ok(!(hit instanceof Promise), 'a cache hit is synchronous');
    assert.equal(hit.ok && hit.cached, true);
    assert.equal(endpoint.callsFor('active-token'), 1);
    clock = start + 60_000;
    const again = await client.introspect('active-token', AUDIENCE);
    assert.equal(again.ok && again.cached, false);
    assert.equal(endpoint.callsFor('active-token'), 2);
  });

  test('an active answer is never cached past the token\'s exp', async () => {
    const start = clock;
    const first = await client.introspect('short-lived-token', AUDIENCE);
    assert.equal(first.ok, true);
    const expMs = (first.ok ? first.exp! : 0) * 1000;
    assert.ok(expMs - start <= 10_000 && expMs > start);
    clock = expMs - 1;
    const hit = client.introspect('short-lived-token', AUDIENCE);
    assert.ok(!(hit instanceof Promise));
    assert.equal(hit.ok && hit.cached, true);
    clock = expMs;
    const asked = client.introspect('short-lived-token', AUDIENCE);
    assert.ok(asked instanceof Promise, 'at exp the entry is gone, well before cache_ttl');
    await asked;
    assert.equal(endpoint.callsFor('short-lived-token'), 2);
  });

  test('an inactive answer is cached for negative_cache_ttl, then asked again', async () => {
    const start = clock;
    expectRefusal(await client.introspect('inactive-token', AUDIENCE), 'token.inactive');
    clock = start + 4_999;
    const hit = client.introspect('inactive-token', AUDIENCE);
    assert.ok(!(hit instanceof Promise));
    expectRefusal(hit, 'token.inactive');
    assert.equal(endpoint.callsFor('inactive-token'), 1);
    clock = start + 5_000;
    expectRefusal(await client.introspect('inactive-token', AUDIENCE), 'token.inactive');
    assert.equal(endpoint.callsFor('inactive-token'), 2);
  });

  test('dependency failures are never cached: every request asks again', async () => {
    for (const token of ['error-500-token', 'not-json-token', 'slow-token']) {
      expectRefusal(await client.introspect(token, AUDIENCE), 'dependency.introspection_unavailable');
      const second = client.introspect(token, AUDIENCE);
      assert.ok(second instanceof Promise, `${token}: not answered from a cache`);
      expectRefusal(await second, 'dependency.introspection_unavailable');
      assert.equal(endpoint.callsFor(token), 2, token);
    }
  });

  test('concurrent requests with one token share one call', async () => {
    const [a, b] = await Promise.all([client.introspect('aud-array-token', AUDIENCE), client.introspect('aud-array-token', AUDIENCE)]);
    assert.equal(a.ok && b.ok, true);
    assert.equal(endpoint.callsFor('aud-array-token'), 1);
  });

  test('close() empties the cache and refuses further calls as unavailable', async () => {
    const closing = createIntrospectionClient(endpointConfig(endpoint.url, { method: 'client_secret_basic', secret: 's' }), { now });
    await closing.introspect('active-token', AUDIENCE);
    closing.close();
    expectRefusal(closing.introspect('active-token', AUDIENCE) as IntrospectionOutcome, 'dependency.introspection_unavailable', /closed/);
  });
});

describe('call budget (IN-07)', () => {
  let endpoint: FakeEndpoint;
  before(async () => {
    endpoint = await startFakeEndpoint(async () => null);
  });
  after(() => endpoint.close());

  test('cache misses beyond max_requests_per_second are refused without a call, and the budget refills with time', async () => {
    clock = Date.now();
    const client = createIntrospectionClient(endpointConfig(endpoint.url, { method: 'client_secret_basic', secret: 's' }, { maxRequestsPerSecond: 3 }), { now });
    try {
      for (const token of ['junk-1', 'junk-2', 'junk-3']) expectRefusal(await client.introspect(token, AUDIENCE), 'token.inactive');
      const over = client.introspect('junk-4', AUDIENCE);
      assert.ok(!(over instanceof Promise));
      expectRefusal(over, 'dependency.introspection_unavailable', /call budget of 3 calls per second/);
      assert.equal(endpoint.callsFor('junk-4'), 0);
      // Cache hits cost nothing from the budget.
      expectRefusal(client.introspect('junk-1', AUDIENCE) as IntrospectionOutcome, 'token.inactive');
      clock += 334; // one third of a second refills one call
      expectRefusal(await client.introspect('junk-4', AUDIENCE), 'token.inactive');
      expectRefusal(client.introspect('junk-5', AUDIENCE) as IntrospectionOutcome, 'dependency.introspection_unavailable', /call budget/);
      assert.equal(endpoint.calls.length, 4);
    } finally {
      client.close();
    }
  });
});

describe('client_secret_basic (RFC 6749 §2.3.1)', () => {
  const clientId = 'gateway client:1';
  const secret = 'p@ss:wörd+/';
  let endpoint: FakeEndpoint;
  before(async () => {
    endpoint = await startFakeEndpoint(async (req) => {
      const header = req.headers.authorization ?? '';
      if (!header.startsWith('Basic ')) return 'no Basic credentials';
      const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      const formDecode = (text: string): string => decodeURIComponent(text.replaceAll('+', ' '));
      const [id, pass] = [formDecode(decoded.slice(0, colon)), formDecode(decoded.slice(colon + 1))];
      return id === clientId && pass === secret ? null : `wrong credentials for ${id}`;
    });
  });
  after(() => endpoint.close());

  test('id and secret are form-encoded before Basic, so ":" and non-ASCII survive', async () => {
    const client = createIntrospectionClient(endpointConfig(endpoint.url, { method: 'client_secret_basic', secret }, { clientId }), { now });
    try {
      const outcome = await client.introspect('active-token', AUDIENCE);
      assert.equal(outcome.ok, true, outcome.ok ? '' : outcome.detail);
      const header = endpoint.calls.at(-1)!.headers.authorization!;
      assert.equal(Buffer.from(header.slice(6), 'base64').toString('utf8'), 'gateway+client%3A1:p%40ss%3Aw%C3%B6rd%2B%2F');
    } finally {
      client.close();
    }
  });

  test('401 from the endpoint (our credentials refused) is a 503-class failure with one alert per interval, never inactive', async () => {
    clock = Date.now();
    logLines.length = 0;
    const client = createIntrospectionClient(endpointConfig(endpoint.url, { method: 'client_secret_basic', secret: 'wrong' }, { clientId }), { now });
    try {
      expectRefusal(await client.introspect('active-token', AUDIENCE), 'dependency.introspection_unavailable', /HTTP 401/);
      expectRefusal(await client.introspect('active-token', AUDIENCE), 'dependency.introspection_unavailable', /HTTP 401/);
      let alerts = logLines.filter((line) => line.event === 'introspection.rejected_our_credentials');
      assert.equal(alerts.length, 1, 'the second refusal within the interval is counted, not logged');
      assert.equal(alerts[0]!.level, 'error');
      assert.equal(alerts[0]!['endpoint'], 'corp-as');
      clock += 10_000;
      await client.introspect('active-token', AUDIENCE);
      alerts = logLines.filter((line) => line.event === 'introspection.rejected_our_credentials');
      assert.equal(alerts.length, 2);
      assert.equal(alerts[1]!['suppressed'], 1);
      assert.ok(!JSON.stringify(logLines).includes('active-token'), 'the log never carries the token');
    } finally {
      client.close();
    }
  });
});

describe('private_key_jwt: a bad assertion key is refused by the endpoint, and a key that cannot sign the alg fails at construction', () => {
  test('an assertion signed with the wrong key gets 401 → dependency.introspection_unavailable', async () => {
    const registered = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    let endpoint: FakeEndpoint | undefined;
    endpoint = await startFakeEndpoint(privateKeyJwtVerifier(registered.publicKey, () => endpoint!.url, new Set()));
    const client = createIntrospectionClient(endpointConfig(endpoint.url, { method: 'private_key_jwt', key: pem(other.privateKey), alg: 'ES256', kid: 'gateway-key-1' }), { now });
    try {
      expectRefusal(await client.introspect('active-token', AUDIENCE), 'dependency.introspection_unavailable', /HTTP 401/);
      assert.match(endpoint.refusedAuth[0]!, /signature/);
    } finally {
      client.close();
      await endpoint.close();
    }
  });

  test('keys that do not fit their algorithm are refused when the client is built', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const url = 'http://127.0.0.1:9/introspect';
    assert.throws(() => createIntrospectionClient(endpointConfig(url, { method: 'private_key_jwt', key: pem(ec.privateKey), alg: 'RS256', kid: null })), /cannot sign RS256/);
    assert.throws(() => createIntrospectionClient(endpointConfig(url, { method: 'private_key_jwt', key: pem(ec.privateKey), alg: 'ES384', kid: null })), /prime256v1.*ES384/);
    assert.throws(() => createIntrospectionClient(endpointConfig(url, { method: 'private_key_jwt', key: pem(rsa1024.privateKey), alg: 'RS256', kid: null })), /2048 bits/);
  });

  test('tls_client_auth over plain http is refused when the client is built', () => {
    assert.throws(() => createIntrospectionClient(endpointConfig('http://127.0.0.1:9/introspect', { method: 'tls_client_auth', cert: Buffer.from('x'), key: Buffer.from('y') })), /needs an https:\/\/ URL/);
  });
});

describe('tls_client_auth (RFC 8705 §2)', () => {
  test('the client certificate is presented on the connection, client_id in the body, the endpoint verified with the configured CA', async () => {
    const serverCa = await createCa({ commonName: 'AS server CA' });
    const clientCa = await createCa({ commonName: 'AS client CA' });
    const serverCert = await issueServerCertificate(serverCa, { ipAddresses: ['127.0.0.1'] });
    const gatewayCert = await issueClientCertificate(clientCa, { commonName: CLIENT_ID });
    const endpoint = await startFakeEndpoint(
      async (req, form) => {
        const peer = (req.socket as TLSSocket).getPeerX509Certificate();
        if (!peer || peer.fingerprint256 !== new X509Certificate(gatewayCert.certPem).fingerprint256) return 'not the registered certificate';
        return form.get('client_id') === CLIENT_ID ? null : 'client_id missing or wrong';
      },
      { cert: serverCert.certPem, key: serverCert.keyPem, ca: clientCa.certPem },
    );
    const auth: IntrospectionAuth = { method: 'tls_client_auth', cert: Buffer.from(gatewayCert.certPem), key: Buffer.from(gatewayCert.keyPem) };
    const client = createIntrospectionClient(endpointConfig(endpoint.url, auth, { ca: Buffer.from(serverCa.certPem) }), { now });
    const untrusting = createIntrospectionClient(endpointConfig(endpoint.url, auth), { now });
    try {
      const outcome = await client.introspect('active-token', AUDIENCE);
      assert.equal(outcome.ok, true, outcome.ok ? '' : outcome.detail);
      assert.deepEqual(endpoint.refusedAuth, []);
      // Without the CA the endpoint's certificate does not verify: unavailable, never allowed.
      expectRefusal(await untrusting.introspect('aud-array-token', AUDIENCE), 'dependency.introspection_unavailable', /call failed/);
    } finally {
      client.close();
      untrusting.close();
      await endpoint.close();
    }
  });
});

describe('the cache and the JSON reader, directly', () => {
  test('the cache key holds a SHA-256 of the token, never the token, and differs per audience', () => {
    const token = 'opaque-secret-token-value';
    const key = cacheKey(token, AUDIENCE);
    assert.ok(!key.includes(token));
    assert.match(key, /^[A-Za-z0-9_-]{43} /);
    assert.notEqual(key, cacheKey(token, 'https://other.example'));
    assert.equal(key, cacheKey(token, AUDIENCE));
  });

  test('bounded LRU: beyond the bound the least recently used entry goes; expired entries are not returned', () => {
    assert.equal(CACHE_MAX_ENTRIES, 10_000);
    const cache = new ExpiringLruCache<string>(2);
    cache.set('a', 'A', 100);
    cache.set('b', 'B', 100);
    assert.equal(cache.get('a', 0), 'A'); // a is now the most recently used
    cache.set('c', 'C', 100);
    assert.equal(cache.size, 2);
    assert.equal(cache.get('b', 0), undefined, 'b was least recently used');
    assert.equal(cache.get('a', 0), 'A');
    assert.equal(cache.get('c', 99), 'C');
    assert.equal(cache.get('c', 100), undefined, 'expired at its expiry instant');
    assert.equal(cache.size, 1);
  });

});
