// Stage 7 writes each decision record straight to JSON (src/pipeline/audit.ts decisionJson) and
// the trail chains that string as it is, trusting it to be canonical. These tests hold it to that
// for every shape a record takes and for hostile caller-controlled text: the string must be what
// `canonicalJson` writes of it, what the generic `serializeRecord` makes of the same record, and
// a line `audit verify` recomputes the hash of.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LINE_LIMITS, chainHash, chainedLine, lineHash } from '../../src/audit/chain-format.ts';
import { SerializedRecord, serializeRecord } from '../../src/audit/trail.ts';
import { canonicalJson } from '../../src/config/config-hash.ts';
import { decisionForTrail, decisionJson, decisionRecord, millis } from '../../src/pipeline/audit.ts';
import type { Outcome } from '../../src/pipeline/audit.ts';
import type { DecisionInput } from '../../src/pipeline/context.ts';

const HOSTILE = ['', 'a"b', 'back\\slash', '\u0000\u001f\u007f', '\u2028\u2029', 'é ü', '😀', '\ud800 lone', '</script>', '{"portcullis":{}}', '},"x":"'];

const PRINCIPAL = {
  partner: { id: 'acme', tier: 'gold', agreement: { id: 'AGR-7' } },
  credential: { id: 'acme-rs256' },
  credentialType: 'jwt',
  longLived: false,
  tokenId: 'jti-1',
  issuer: 'https://idp.example.test',
  scopes: new Set(['orders:read', 'orders:write']),
};
const TLS = { protocol: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256', alpn: 'h2', sni: 'api.example.test' };
const CERTIFICATE = {
  partnerId: 'acme',
  facts: { fingerprintSha256: 'ab'.repeat(32), subject: 'CN=acme', issuer: 'CN=ca', notAfter: '2030-01-01T00:00:00.000Z', serial: '01' },
};

function context(overrides: Partial<Record<keyof DecisionInput, unknown>>): DecisionInput {
  const startedAt = 5_000_000_000n;
  return {
    requestId: '0b7d2f7c-2f0e-4a8e-9d0b-5f1c5d6f4f1e',
    startedAt,
    receivedAt: new Date('2026-12-07T12:00:00.123Z'),
    snapshot: { hash: 'f'.repeat(64) },
    listener: { name: 'partners', zone: 'partner' },
    httpVersion: '1.1',
    method: 'GET',
    clientIp: '127.0.0.1',
    clientPort: 40_000,
    host: 'api.example.test',
    path: '/orders',
    traceId: '',
    spanId: '',
    route: { id: 'orders-read', apiId: 'orders', upstream: { id: 'orders-backend' } },
    tls: null,
    clientCertificate: null,
    principal: null,
    flags: [],
    decidedBy: null,
    purpose: null,
    upstreamCalled: false,
    upstreamStatus: null,
    upstreamStartedAt: null,
    upstreamHeadersAt: null,
    ...overrides,
  } as unknown as DecisionInput;
}

const ENDED = 5_001_234_567n;

/** Every shape: with and without a principal (token or not, agreement or not), TLS, a client certificate, an upstream call, a detail. */
function shapes(): Array<[DecisionInput, Outcome]> {
  const allowed: Outcome = { reason: 'allowed', decision: 'allow', status: 200 };
  const denied: Outcome = { reason: 'token.expired', decision: 'deny', status: 401, detail: 'signature does not verify' };
  const cases: Array<[DecisionInput, Outcome]> = [
    [context({}), denied],
    [context({ route: null }), { reason: 'route.not_found', decision: 'deny', status: 404 }],
    [context({ principal: PRINCIPAL, upstreamCalled: true, upstreamStatus: 200, upstreamStartedAt: 5_000_100_000n, upstreamHeadersAt: 5_000_900_000n }), allowed],
    [context({ principal: { ...PRINCIPAL, tokenId: null, issuer: null, longLived: true, partner: { ...PRINCIPAL.partner, agreement: null } } }), allowed],
    [context({ principal: { ...PRINCIPAL, scopes: new Set() }, purpose: 'fraud-review', decidedBy: 'grant:orders#0', tls: TLS }), allowed],
    [context({ principal: PRINCIPAL, tls: TLS, clientCertificate: CERTIFICATE, flags: ['source_network_violation', 'revocation_soft_fail'] }), allowed],
    [context({ tls: { protocol: null, cipher: null, alpn: null, sni: null } }), { reason: 'http.client_closed', decision: 'deny', status: null }],
    [context({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', upstreamCalled: true, upstreamStatus: 502, upstreamStartedAt: 5_000_000_000n }), { reason: 'upstream.bad_response', decision: 'allow', status: 502, detail: 'x' }],
    [context({ httpVersion: '2.0', method: 'PATCH', startedAt: ENDED }), { reason: 'gateway.internal_error', decision: 'error', status: 500 }],
  ];
  for (const text of HOSTILE) {
    cases.push([
      context({
        method: text,
        host: text,
        path: `/${text}`,
        principal: { ...PRINCIPAL, partner: { ...PRINCIPAL.partner, id: text }, scopes: new Set([text, 'b']) },
        purpose: text,
        tls: { ...TLS, sni: text },
        clientCertificate: { partnerId: text, facts: { ...CERTIFICATE.facts, subject: text, issuer: text } },
      }),
      { ...denied, detail: text },
    ]);
  }
  return cases;
}

test('a decision record is written as canonical JSON, identical to what serializeRecord makes of the same record, for every shape', () => {
  for (const [ctx, outcome] of shapes()) {
    const { json, portcullisClose } = decisionJson(ctx, outcome, ENDED);
    const parsed = JSON.parse(json) as Record<string, unknown>;
    assert.equal(json, canonicalJson(parsed));
    const generic = serializeRecord(parsed);
    assert.ok(generic instanceof SerializedRecord, String(generic));
    assert.equal(json, generic.json);
    assert.equal(portcullisClose, generic.record.portcullisClose);
    assert.deepEqual(decisionRecord(ctx, outcome, ENDED), parsed);
  }
});

test('the trail gets the record as written, naming its partner, and a stream line of it verifies', () => {
  for (const [ctx, outcome] of shapes()) {
    const serialized = decisionForTrail(ctx, outcome, ENDED);
    assert.ok(serialized instanceof SerializedRecord);
    const record = JSON.parse(serialized.json) as { portcullis: { partner: { id: string } | null } };
    assert.equal(serialized.partnerId, record.portcullis.partner?.id ?? null);
    assert.equal(serialized.record.bytes, Buffer.byteLength(serialized.json));
    assert.deepEqual(serialized.record.body, record);
    const prev = 'c'.repeat(64);
    const chain = { stream: 'combined', seq: 3, prev, hash: chainHash(prev, 'combined', 3, serialized.json) };
    const line = JSON.parse(chainedLine(serialized.record, chain, '"combined"')) as { portcullis: { chain: unknown } };
    assert.deepEqual(line.portcullis.chain, chain);
    assert.equal(lineHash(prev, line), chain.hash);
  }
});

test('caller-controlled text is bounded and can never add a member to the record', () => {
  const long = 'a'.repeat(5000);
  const { json } = decisionJson(context({ path: long, host: long, method: long }), { reason: 'allowed', decision: 'allow', status: 200 }, ENDED);
  const record = JSON.parse(json) as { url: { path: string }; http: { request: { method: string } }; portcullis: { host: string } };
  assert.equal(record.url.path.length, 2048);
  assert.equal(record.http.request.method.length, 2048);
  assert.equal(record.portcullis.host.length, 2048);
  const forged = JSON.parse(decisionJson(context({ path: '","forged":"1' }), { reason: 'allowed', decision: 'allow', status: 200 }, ENDED).json) as Record<string, unknown>;
  assert.deepEqual(Object.keys(forged), ['@timestamp', 'event', 'http', 'portcullis', 'source', 'span', 'trace', 'url']);
  assert.deepEqual(forged['url'], { path: '","forged":"1' });
});

test('a record listing more scopes than a line may hold goes to the trail as an object, which the trail refuses saying why', () => {
  const scopes = new Set(Array.from({ length: LINE_LIMITS.maxMembers + 1 }, (_, i) => `s${i}`));
  const record = decisionForTrail(context({ principal: { ...PRINCIPAL, scopes } }), { reason: 'allowed', decision: 'allow', status: 200 }, ENDED);
  assert.ok(!(record instanceof SerializedRecord));
  assert.match(String(serializeRecord(record)), /more than 512 members/);
  const atLimit = new Set([...scopes].slice(0, LINE_LIMITS.maxMembers));
  assert.ok(decisionForTrail(context({ principal: { ...PRINCIPAL, scopes: atLimit } }), { reason: 'allowed', decision: 'allow', status: 200 }, ENDED) instanceof SerializedRecord);
});

test('latencies are written as JSON writes the number of milliseconds, without formatting a double', () => {
  const values = [0, 1, 9, 10, 100, 999, 1000, 1001, 1010, 1100, 12_345, 999_999, 1_000_000, 86_400_000_123, 1e15 - 1, 1e15, Number.MAX_SAFE_INTEGER];
  for (let micros = 0; micros < 200_000; micros += 7) values.push(micros);
  for (let i = 0; i < 20_000; i++) values.push(Math.floor(Math.random() * 10 ** (1 + (i % 15))));
  for (const micros of values) assert.equal(millis(micros), JSON.stringify(micros / 1000), `${micros} µs`);
  // Anything else takes JSON's own formatting.
  for (const odd of [-1, -1234, 0.5, Number.MAX_SAFE_INTEGER + 2, Number.NaN, Number.POSITIVE_INFINITY]) assert.equal(millis(odd), JSON.stringify(odd / 1000));
});
