/**
 * Token exchange (RFC 8693) at `POST /oauth2/token` over real HTTP, with a configuration through
 * the real loader, a real embedded state store, the real signing keys (src/tokens/keys.ts) and
 * DPoP proofs made by jose: an exchange narrows (one audience, fewer scopes, shorter lifetime,
 * purpose, act) and never widens; expired, revoked, foreign-partner and foreign-issuer subject
 * tokens are refused; every outcome is recorded (SECURITY.md §2.9).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CompactSign, calculateJwkThumbprint, compactVerify, decodeProtectedHeader, exportJWK, generateKeyPair } from 'jose';
import { loadConfig } from '../../src/config/load.ts';
import type { Snapshot } from '../../src/config/snapshot.ts';
import { createNonceSource } from '../../src/authn/dpop.ts';
import { openEmbeddedStore } from '../../src/state/embedded.ts';
import type { StateStore } from '../../src/state/store.ts';
import { JWT_BEARER_ASSERTION_TYPE } from '../../src/tokens/client-auth.ts';
import { ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT_TYPE } from '../../src/tokens/exchange.ts';
import { openTokenKeys } from '../../src/tokens/keys.ts';
import { handleTokenRequest } from '../../src/tokens/token-endpoint.ts';
import type { TokenKeys, TokenServiceDeps } from '../../src/tokens/types.ts';
import { forge, generateTestKey, jwks } from '../helpers/tokens.ts';
import type { TestKey } from '../helpers/tokens.ts';

const ISSUER = 'https://tokens.example.test';
const ORDERS = 'https://api.example.test/orders';
const BILLING = 'https://api.example.test/billing';

let dir: string;
let snapshot: Snapshot;
let store: StateStore;
let keys: TokenKeys;
let server: Server;
let url: string;
const records: Array<Record<string, any>> = [];
const clientKey: TestKey = generateTestKey('ES256', 'client-key-1');

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portcullis-exchange-'));
  await writeFile(join(dir, 'client.jwks'), jwks(clientKey));
  await writeFile(
    join(dir, 'gateway.yaml'),
    `version: 1
listeners:
  - { name: tokens, zone: partner, port: 8443, hostnames: [tokens.example.test] }
upstreams:
  - { id: backend, url: "http://127.0.0.1:9000" }
apis:
  - { id: orders, audience: "${ORDERS}" }
  - { id: billing, audience: "${BILLING}" }
token_service: { issuer: "${ISSUER}", listener: tokens, token_lifetime: 10m, max_token_lifetime: 15m }
partners:
  - id: acme
    agreement: { id: AGR-7, expires: 2099-12-31 }
    credentials:
      - { id: acme-jwt, type: client, client_id: acme-app, auth: private_key_jwt, jwks_file: client.jwks, token_exchange: true }
      - { id: acme-plain-jwt, type: client, client_id: acme-plain, auth: private_key_jwt, jwks_file: client.jwks }
      - { id: acme-agent-jwt, type: client, client_id: acme-agent, auth: private_key_jwt, jwks_file: client.jwks, token_lifetime: 2m, token_exchange: true }
    grants:
      - { api: orders, scopes: ["orders:read", "orders:write"] }
      - { api: billing, scopes: ["billing:read"] }
  - id: globex
    agreement: { id: AGR-9, expires: 2099-12-31 }
    credentials:
      - { id: globex-jwt, type: client, client_id: globex-app, auth: private_key_jwt, jwks_file: client.jwks, token_exchange: true }
    grants: [{ api: orders, scopes: ["orders:read", "orders:write"] }]
`,
  );
  const loaded = await loadConfig(join(dir, 'gateway.yaml'), { offline: true });
  assert.ok(loaded.ok, JSON.stringify(!loaded.ok && loaded.issues));
  snapshot = loaded.snapshot;
  store = await openEmbeddedStore({ path: join(dir, 'state.sqlite'), propagationTimeoutMs: 1000 });
  keys = await openTokenKeys({ store, algorithm: 'ES256' });
  const deps: TokenServiceDeps = {
    snapshot: () => snapshot,
    store,
    keys,
    audit: (record) => {
      records.push(record as Record<string, any>);
      return true;
    },
    auditHealthy: () => true,
    dpopNonces: createNonceSource({ lifetimeMs: 60_000 }),
  };
  server = createServer((req, res) => {
    void handleTokenRequest(req, res, { tlsSocket: null, sourceIp: req.socket.remoteAddress ?? null, endpointUrl: url }, deps);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/oauth2/token`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  keys.close();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: Record<string, any>;
}

function clientAssertion(clientId: string): string {
  const now = Math.floor(Date.now() / 1000);
  return forge(clientKey, { alg: 'ES256', kid: clientKey.kid }, { iss: clientId, sub: clientId, aud: ISSUER, iat: now, exp: now + 60, jti: randomUUID() });
}

async function dpopProof(): Promise<{ proof: string; jkt: string }> {
  const pair = await generateKeyPair('ES256', { extractable: true });
  const jwk = await exportJWK(pair.publicKey);
  const payload = { jti: randomUUID(), htm: 'POST', htu: url, iat: Math.floor(Date.now() / 1000) };
  const proof = await new CompactSign(new TextEncoder().encode(JSON.stringify(payload))).setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk }).sign(pair.privateKey);
  return { proof, jkt: await calculateJwkThumbprint(jwk, 'sha256') };
}

async function post(params: Record<string, string>, dpop?: string): Promise<Answer> {
  const proof = dpop ?? (await dpopProof()).proof;
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: proof }, body: new URLSearchParams(params).toString() });
  return { status: response.status, headers: Object.fromEntries(response.headers), body: (await response.json()) as Record<string, any> };
}

/** A subject token from the client credentials grant: acme-app, orders, both scopes, 10 min. */
async function subjectToken(clientId = 'acme-app', extra: Record<string, string> = {}): Promise<string> {
  const answer = await post({ grant_type: 'client_credentials', client_assertion_type: JWT_BEARER_ASSERTION_TYPE, client_assertion: clientAssertion(clientId), resource: ORDERS, ...extra });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return answer.body['access_token'] as string;
}

/** A token signed by the token service's real key with exactly these claims (for edge cases). */
async function signedByService(overrides: Record<string, unknown>): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const claims = { iss: ISSUER, sub: 'acme-app', aud: ORDERS, client_id: 'acme-app', iat: now, exp: now + 600, jti: randomUUID(), scope: 'orders:read orders:write', partner_id: 'acme', agreement_id: 'AGR-7', ...overrides };
  for (const [name, value] of Object.entries(claims)) if (value === undefined) delete (claims as Record<string, unknown>)[name];
  return keys.sign(claims, 'at+jwt');
}

function exchange(subject: string, extra: Record<string, string> = {}, clientId = 'acme-agent'): Record<string, string> {
  return {
    grant_type: TOKEN_EXCHANGE_GRANT_TYPE,
    client_assertion_type: JWT_BEARER_ASSERTION_TYPE,
    client_assertion: clientAssertion(clientId),
    subject_token: subject,
    subject_token_type: ACCESS_TOKEN_TYPE,
    ...extra,
  };
}

async function claimsOf(token: string): Promise<Record<string, any>> {
  const header = decodeProtectedHeader(token);
  const key = keys.publicKey(header.kid!);
  assert.ok(key, 'signed by a key of the token service');
  const { payload, protectedHeader } = await compactVerify(token, key);
  assert.equal(protectedHeader.typ, 'at+jwt');
  return JSON.parse(new TextDecoder().decode(payload)) as Record<string, any>;
}

function assertRefused(answer: Answer, status: number, error: string, reason: string): void {
  assert.equal(answer.status, status, JSON.stringify(answer.body));
  assert.equal(answer.body['error'], error);
  assert.equal(answer.body['access_token'], undefined);
  assert.equal(answer.headers['cache-control'], 'no-store');
  const record = records.at(-1)!;
  assert.equal(record['event']['action'], 'token.refused');
  assert.equal(record['event']['reason'], reason);
}

// ---------------------------------------------------------------------------------------------

describe('who may exchange', () => {
  it('a client not allowed token exchange (the default, SECURITY.md TX-06) is unauthorized_client', async () => {
    const { proof } = await dpopProof();
    assertRefused(await post(exchange(await subjectToken(), {}, 'acme-plain'), proof), 400, 'unauthorized_client', 'exchange.not_allowed');
  });
});

describe('narrowing', () => {
  it('issues a narrower token: one audience, fewer scopes, shorter lifetime, purpose, act; RFC 8693 §2.2.1 answer; recorded', async () => {
    const subject = await subjectToken();
    const subjectClaims = await claimsOf(subject);
    const { proof, jkt } = await dpopProof();
    const answer = await post(exchange(subject, { resource: ORDERS, scope: 'orders:read', expires_in: '60', purpose: 'nightly-reconciliation' }), proof);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(answer.body['issued_token_type'], ACCESS_TOKEN_TYPE);
    assert.equal(answer.body['token_type'], 'DPoP');
    assert.equal(answer.body['expires_in'], 60);
    assert.equal(answer.body['scope'], 'orders:read');
    assert.equal(answer.body['refresh_token'], undefined);
    assert.equal(answer.headers['cache-control'], 'no-store');

    const claims = await claimsOf(answer.body['access_token']);
    assert.equal(claims['iss'], ISSUER);
    assert.equal(claims['sub'], 'acme-app', 'the subject stays the subject token\'s');
    assert.equal(claims['client_id'], 'acme-agent', 'issued to the caller');
    assert.deepEqual(claims['act'], { sub: 'acme-agent' });
    assert.equal(claims['aud'], ORDERS);
    assert.equal(claims['scope'], 'orders:read');
    assert.equal(claims['purpose'], 'nightly-reconciliation');
    assert.equal(claims['exp'] - claims['iat'], 60);
    assert.ok(claims['exp'] <= subjectClaims['exp']);
    assert.deepEqual(claims['cnf'], { jkt }, 'bound to the caller\'s DPoP key');
    assert.equal(claims['partner_id'], 'acme');
    assert.notEqual(claims['jti'], subjectClaims['jti']);

    const record = records.at(-1)!;
    assert.equal(record['event']['action'], 'token.exchanged');
    assert.deepEqual(record['event']['type'], ['creation']);
    assert.deepEqual(record['portcullis']['exchange'], { subject_jti: subjectClaims['jti'], subject: 'acme-app', actors: ['acme-agent'], purpose: 'nightly-reconciliation' });
    assert.equal(record['portcullis']['token']['jti'], claims['jti']);
    assert.deepEqual(record['portcullis']['token']['scopes'], ['orders:read']);
    assert.equal(record['portcullis']['token']['api'], 'orders');
    assert.ok(!JSON.stringify(records).includes(subject), 'the subject token is never recorded');
    assert.ok(!JSON.stringify(records).includes(answer.body['access_token']), 'the new token is never recorded');
  });

  it('without scope or audience: the subject token\'s scopes and audience, the caller\'s configured lifetime', async () => {
    const answer = await post(exchange(await subjectToken()));
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(answer.body['scope'], 'orders:read orders:write');
    assert.equal(answer.body['expires_in'], 120, 'acme-agent\'s 2m, below the subject token\'s remaining 10m');
    assert.equal((await claimsOf(answer.body['access_token']))['aud'], ORDERS);
  });

  it('the lifetime never exceeds what the subject token has left', async () => {
    const subject = await signedByService({ exp: Math.floor(Date.now() / 1000) + 30 });
    const answer = await post(exchange(subject));
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.ok(answer.body['expires_in'] <= 30 && answer.body['expires_in'] >= 29, String(answer.body['expires_in']));
    const claims = await claimsOf(answer.body['access_token']);
    assert.ok(claims['exp'] <= (await claimsOf(subject))['exp']);
  });

  it('nested act (RFC 8693 §4.1): an exchanged token exchanged again keeps the previous actor; the chain is bounded', async () => {
    const first = await post(exchange(await subjectToken(), { scope: 'orders:read', purpose: 'task-1' }));
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const second = await post(exchange(first.body['access_token'], {}, 'acme-app'));
    assert.equal(second.status, 200, JSON.stringify(second.body));
    const claims = await claimsOf(second.body['access_token']);
    assert.deepEqual(claims['act'], { sub: 'acme-app', act: { sub: 'acme-agent' } });
    assert.equal(claims['sub'], 'acme-app');
    assert.equal(claims['purpose'], 'task-1', 'the task stays the task');
    assert.equal(claims['scope'], 'orders:read');
    assert.deepEqual(records.at(-1)!['portcullis']['exchange']['actors'], ['acme-app', 'acme-agent']);

    const third = await post(exchange(second.body['access_token']));
    assert.equal(third.status, 200, JSON.stringify(third.body));
    assert.deepEqual((await claimsOf(third.body['access_token']))['act'], { sub: 'acme-agent', act: { sub: 'acme-app', act: { sub: 'acme-agent' } } });
    assertRefused(await post(exchange(third.body['access_token'])), 400, 'invalid_grant', 'exchange.actor_chain_too_deep');
    assertRefused(await post(exchange(first.body['access_token'], { purpose: 'another-task' })), 400, 'invalid_request', 'exchange.purpose_conflict');
  });
});

describe('widening is refused', () => {
  it('a scope the subject token lacks is invalid_scope, even when the partner is granted it', async () => {
    const narrow = await subjectToken('acme-app', { scope: 'orders:read' });
    assertRefused(await post(exchange(narrow, { scope: 'orders:read orders:write' })), 400, 'invalid_scope', 'scope.exceeds_subject');
    assertRefused(await post(exchange(await subjectToken(), { scope: 'orders:admin' })), 400, 'invalid_scope', 'scope.exceeds_subject');
  });

  it('another audience is invalid_target, even one the partner is granted', async () => {
    assertRefused(await post(exchange(await subjectToken(), { resource: BILLING })), 400, 'invalid_target', 'target.not_in_subject');
    assertRefused(await post(exchange(await subjectToken(), { audience: BILLING })), 400, 'invalid_target', 'target.not_in_subject');
  });

  it('a longer lifetime than the subject token has left, or than configured, is refused', async () => {
    assertRefused(await post(exchange(await subjectToken(), { expires_in: '3600' })), 400, 'invalid_request', 'exchange.lifetime_too_long');
    // 121 s: within the subject token's 10 min, above acme-agent's 2 min.
    assertRefused(await post(exchange(await subjectToken(), { expires_in: '121' })), 400, 'invalid_request', 'exchange.lifetime_too_long');
    const short = await signedByService({ exp: Math.floor(Date.now() / 1000) + 30 });
    assertRefused(await post(exchange(short, { expires_in: '60' })), 400, 'invalid_request', 'exchange.lifetime_too_long');
  });
});

describe('subject tokens refused', () => {
  it('an expired subject token is invalid_grant', async () => {
    const now = Math.floor(Date.now() / 1000);
    assertRefused(await post(exchange(await signedByService({ iat: now - 600, exp: now - 1 }))), 400, 'invalid_grant', 'subject_token.expired');
  });

  it('a revoked subject token is invalid_grant', async () => {
    const subject = await subjectToken();
    const { jti, exp } = await claimsOf(subject);
    assert.equal((await post(exchange(subject))).status, 200, 'usable before the revocation');
    await store.revoke({ kind: 'token', key: jti, reason: 'test', actor: 'test', at: Date.now(), expiresAt: exp * 1000 });
    assertRefused(await post(exchange(subject)), 400, 'invalid_grant', 'subject_token.revoked');
    assert.equal(records.at(-1)!['portcullis']['exchange']['subject_jti'], jti);
  });

  it('another partner\'s subject token is invalid_grant', async () => {
    const acme = await subjectToken();
    assertRefused(await post(exchange(acme, {}, 'globex-app')), 400, 'invalid_grant', 'subject_token.partner_mismatch');
    assert.equal(records.at(-1)!['portcullis']['partner']['id'], 'globex');
  });

  it('a token of another issuer is invalid_grant: another key, or our key with another iss', async () => {
    const stranger = generateTestKey('ES256');
    const now = Math.floor(Date.now() / 1000);
    const foreign = forge(stranger, { alg: 'ES256', typ: 'at+jwt', kid: stranger.kid }, { iss: 'https://idp.other.test', sub: 'acme-app', aud: ORDERS, client_id: 'acme-app', iat: now, exp: now + 300, jti: randomUUID(), scope: 'orders:read', partner_id: 'acme' });
    assertRefused(await post(exchange(foreign)), 400, 'invalid_grant', 'subject_token.key_unknown');
    // The same claims and our kid, but the stranger's signature.
    const ourKid = decodeProtectedHeader(await subjectToken()).kid!;
    const impostor = forge(stranger, { alg: 'ES256', typ: 'at+jwt', kid: ourKid }, { iss: ISSUER, sub: 'acme-app', aud: ORDERS, client_id: 'acme-app', iat: now, exp: now + 300, jti: randomUUID(), scope: 'orders:read', partner_id: 'acme' });
    assertRefused(await post(exchange(impostor)), 400, 'invalid_grant', 'subject_token.signature_invalid');
    assertRefused(await post(exchange(await signedByService({ iss: 'https://idp.other.test' }))), 400, 'invalid_grant', 'subject_token.iss_invalid');
  });

  it('a token of another kind (a DPoP proof), another declared type, an actor token, or no subject token is invalid_request', async () => {
    assertRefused(await post(exchange((await dpopProof()).proof)), 400, 'invalid_request', 'subject_token.type_mismatch');
    assertRefused(await post(exchange(await subjectToken(), { subject_token_type: 'urn:ietf:params:oauth:token-type:id_token' })), 400, 'invalid_request', 'exchange.subject_token_type_unsupported');
    const subject = await subjectToken();
    assertRefused(await post(exchange(subject, { actor_token: subject, actor_token_type: ACCESS_TOKEN_TYPE })), 400, 'invalid_request', 'exchange.actor_token_unsupported');
    const params = exchange(subject);
    delete params['subject_token'];
    assertRefused(await post(params), 400, 'invalid_request', 'exchange.subject_token_missing');
  });

  it('a may_act that does not name the caller is invalid_grant (RFC 8693 §4.4); one that does is honoured', async () => {
    assertRefused(await post(exchange(await signedByService({ may_act: { sub: 'someone-else' } }))), 400, 'invalid_grant', 'subject_token.may_act_denied');
    assert.equal((await post(exchange(await signedByService({ may_act: { sub: 'acme-agent' } })))).status, 200);
  });
});
