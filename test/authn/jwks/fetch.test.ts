import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent } from 'undici';
import { KeyFetchError, MAX_DOCUMENT_BYTES, checkKeyUrl, createKeyFetchAgent, fetchIssuerKeySet, isLoopbackHost } from '../../../src/authn/jwks/fetch.ts';
import type { CompiledIssuer, KeySource } from '../../../src/config/snapshot.ts';
import { createCa, issueServerCertificate } from '../../../src/pki/dev-ca.ts';
import { jwksOf, signingKey, startIssuerServer } from './issuer-server.ts';
import type { IssuerServer } from './issuer-server.ts';

const ISS = 'https://idp.example';
let server: IssuerServer;
let agent: Agent;
const key = signingKey('ES256', 'k1');

function issuer(source: KeySource, overrides: Partial<CompiledIssuer> = {}): CompiledIssuer {
  return {
    id: 'idp',
    issuer: ISS,
    source,
    ca: null,
    algorithms: new Set(['ES256']),
    typ: 'at+jwt',
    leewayMs: 30_000,
    maxLifetimeMs: 3_600_000,
    partnerClaim: 'client_id',
    refreshIntervalMs: 600_000,
    unknownKidCooldownMs: 30_000,
    fetchTimeoutMs: 300,
    ...overrides,
  };
}

const fromJwksUri = (path: string, overrides: Partial<CompiledIssuer> = {}): CompiledIssuer => issuer({ kind: 'jwks_uri', url: `${server.origin}${path}` }, overrides);

async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof KeyFetchError, `expected a KeyFetchError, got ${String(error)}`);
    return error.message;
  }
  assert.fail('expected the fetch to be refused');
}

before(async () => {
  server = await startIssuerServer();
  agent = createKeyFetchAgent({ ca: null, fetchTimeoutMs: 300 });
});

after(async () => {
  await agent.destroy();
  await server.close();
});

test('fetches a JWK Set served as JSON', async () => {
  server.serve('/jwks', { body: jwksOf(key), contentType: 'application/jwk-set+json' });
  server.serve('/jwks-charset', { body: jwksOf(key), contentType: 'application/json; charset=utf-8' });
  const fetched = await fetchIssuerKeySet(fromJwksUri('/jwks'), agent);
  assert.deepEqual(fetched, { jwks: jwksOf(key), url: `${server.origin}/jwks` });
  assert.deepEqual((await fetchIssuerKeySet(fromJwksUri('/jwks-charset'), agent)).jwks, jwksOf(key));
});

test('plain http only to loopback IP literals; no credentials in the URL', async () => {
  assert.equal(isLoopbackHost('127.0.0.1'), true);
  assert.equal(isLoopbackHost('127.8.9.10'), true);
  assert.equal(isLoopbackHost('[::1]'), true);
  for (const host of ['localhost', '10.0.0.1', '128.0.0.1', '127.example.com', '[::2]']) assert.equal(isLoopbackHost(host), false, host);
  assert.equal(checkKeyUrl('https://idp.example/jwks', 'jwks_uri').href, 'https://idp.example/jwks');
  assert.throws(() => checkKeyUrl('http://idp.example/jwks', 'jwks_uri'), /must use https \(plain http only to a loopback address/);
  assert.throws(() => checkKeyUrl('http://localhost:8080/jwks', 'jwks_uri'), /must use https/);
  assert.throws(() => checkKeyUrl('ftp://idp.example/jwks', 'jwks_uri'), /must use https/);
  assert.throws(() => checkKeyUrl('https://user:pw@idp.example/jwks', 'jwks_uri'), /must not carry credentials/);
  assert.throws(() => checkKeyUrl('not a url', 'jwks_uri'), /is not a URL/);
  // Refused before any connection: TEST-NET-1 would otherwise hang until the timeout.
  const started = Date.now();
  assert.match(await refusal(fetchIssuerKeySet(issuer({ kind: 'jwks_uri', url: 'http://192.0.2.1/jwks' }), agent)), /must use https/);
  assert.ok(Date.now() - started < 100);
});

test('refuses any status but 200, and follows no redirect', async () => {
  server.serve('/error', { status: 500, body: { error: 'down' } });
  assert.match(await refusal(fetchIssuerKeySet(fromJwksUri('/error'), agent)), /answered 500, expected 200/);
  server.serve('/moved', { status: 302, body: {}, headers: { location: `${server.origin}/elsewhere` } });
  server.serve('/elsewhere', { body: jwksOf(key) });
  assert.match(await refusal(fetchIssuerKeySet(fromJwksUri('/moved'), agent)), /answered 302, expected 200 \(redirects are not followed\)/);
  assert.equal(server.count('/elsewhere'), 0);
});

test('refuses a document that is not JSON by media type, syntax or encoding', async () => {
  server.serve('/html', { body: jwksOf(key), contentType: 'text/html' });
  assert.match(await refusal(fetchIssuerKeySet(fromJwksUri('/html'), agent)), /is not JSON \(content-type "text\/html"\)/);
  server.serve('/untyped', { body: jwksOf(key), contentType: null });
  assert.match(await refusal(fetchIssuerKeySet(fromJwksUri('/untyped'), agent)), /is not JSON \(content-type null\)/);
  server.serve('/broken', { body: Buffer.from('{"keys": ['), contentType: 'application/json' });
  assert.match(await refusal(fetchIssuerKeySet(fromJwksUri('/broken'), agent)), /is not valid JSON/);
  server.serve('/latin1', { body: Buffer.from([0x7b, 0x22, 0xe9, 0x22, 0x3a, 0x31, 0x7d]), contentType: 'application/json' });
  assert.match(await refusal(fetchIssuerKeySet(fromJwksUri('/latin1'), agent)), /is not valid UTF-8/);
});

test(`refuses a document over ${MAX_DOCUMENT_BYTES} bytes, declared or streamed`, async () => {
  const big = Buffer.from(JSON.stringify({ keys: [], padding: 'x'.repeat(MAX_DOCUMENT_BYTES) }));
  server.serve('/big', { body: big });
  assert.match(await refusal(fetchIssuerKeySet(fromJwksUri('/big'), agent)), /larger than 262144 bytes/);
  server.serve('/big-chunked', { body: big, behaviour: 'chunked' });
  assert.match(await refusal(fetchIssuerKeySet(fromJwksUri('/big-chunked'), agent)), /larger than 262144 bytes/);
  // Just under the cap is fine.
  const fits = Buffer.from(JSON.stringify({ keys: [], padding: 'x'.repeat(MAX_DOCUMENT_BYTES - 100) }));
  server.serve('/fits', { body: fits, behaviour: 'chunked' });
  assert.equal(((await fetchIssuerKeySet(fromJwksUri('/fits'), agent)).jwks as { padding: string }).padding.length, MAX_DOCUMENT_BYTES - 100);
});

test('gives up at the timeout: no answer, or an answer too slow to finish', async () => {
  server.serve('/hang', { behaviour: 'hang' });
  let started = Date.now();
  assert.match(await refusal(fetchIssuerKeySet(fromJwksUri('/hang'), agent)), /no answer within 300 ms/);
  assert.ok(Date.now() - started < 1500, 'the timeout bounds the wait');
  server.serve('/drip', { behaviour: 'drip', body: jwksOf(key) });
  started = Date.now();
  assert.match(await refusal(fetchIssuerKeySet(fromJwksUri('/drip'), agent)), /not received within 300 ms/);
  assert.ok(Date.now() - started < 1500, 'a body that keeps trickling is still bounded');
});

test('discovery: the metadata must name exactly the configured issuer, then its jwks_uri is fetched', async () => {
  server.serve('/jwks', { body: jwksOf(key) });
  server.serve('/.well-known/openid-configuration', { body: { issuer: ISS, jwks_uri: `${server.origin}/jwks` } });
  const discovery = issuer({ kind: 'discovery', url: `${server.origin}/.well-known/openid-configuration` });
  const before = server.count('/jwks');
  assert.deepEqual(await fetchIssuerKeySet(discovery, agent), { jwks: jwksOf(key), url: `${server.origin}/jwks` });
  assert.equal(server.count('/jwks'), before + 1);

  for (const [metadata, problem] of [
    [{ issuer: `${ISS}/`, jwks_uri: `${server.origin}/jwks` }, /names issuer "https:\/\/idp.example\/", not the configured "https:\/\/idp.example" \(compared exactly\)/],
    [{ issuer: ISS.toUpperCase(), jwks_uri: `${server.origin}/jwks` }, /names issuer "HTTPS:\/\/IDP.EXAMPLE"/],
    [{ jwks_uri: `${server.origin}/jwks` }, /names issuer null/],
    [{ issuer: ISS }, /has no "jwks_uri"/],
    [{ issuer: ISS, jwks_uri: 'http://keys.example/jwks' }, /jwks_uri from the issuer metadata http:\/\/keys.example must use https/],
    [[ISS], /is not a JSON object/],
  ] as const) {
    server.serve('/.well-known/openid-configuration', { body: metadata });
    const countBefore = server.count('/jwks');
    assert.match(await refusal(fetchIssuerKeySet(discovery, agent)), problem);
    assert.equal(server.count('/jwks'), countBefore, 'no key set is fetched for a refused metadata document');
  }
});

test('https: the issuer CA is the only trust anchor', async () => {
  const ca = await createCa({ commonName: 'jwks test CA' });
  const leaf = await issueServerCertificate(ca, { ipAddresses: ['127.0.0.1'] });
  const tlsServer = await startIssuerServer({ tls: { cert: leaf.certPem, key: leaf.keyPem } });
  tlsServer.serve('/jwks', { body: jwksOf(key) });
  const withCa = issuer({ kind: 'jwks_uri', url: `${tlsServer.origin}/jwks` }, { ca: Buffer.from(ca.certPem), fetchTimeoutMs: 2000 });
  const trusting = createKeyFetchAgent(withCa);
  const systemStore = createKeyFetchAgent({ ca: null, fetchTimeoutMs: 2000 });
  try {
    assert.deepEqual((await fetchIssuerKeySet(withCa, trusting)).jwks, jwksOf(key));
    assert.match(await refusal(fetchIssuerKeySet(withCa, systemStore)), /certificate/i);
  } finally {
    await trusting.destroy();
    await systemStore.destroy();
    await tlsServer.close();
  }
});
