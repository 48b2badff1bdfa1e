// A record is serialized once (trail.ts serializeRecord) for the decision log and every stream
// of the trail: that one string must be exactly the canonical form `audit verify` recomputes from
// the line, whatever the record's key order — and the decision records the gateway builds must be
// in canonical order already, or every request pays for sorting them again (issue 6).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chainHash, chainedLine, hashedBody, lineHash } from '../../src/audit/chain-format.ts';
import { canonicalJson } from '../../src/config/config-hash.ts';
import { SerializedRecord, serializeRecord } from '../../src/audit/trail.ts';
import { decisionRecord } from '../../src/pipeline/audit.ts';
import type { DecisionInput } from '../../src/pipeline/context.ts';

function serialized(record: object): SerializedRecord {
  const result = serializeRecord(record);
  assert.ok(result instanceof SerializedRecord, `refused: ${String(result)}`);
  return result;
}

/** Every object's keys in canonical order (what lets JSON.stringify stand for canonicalJson). */
function assertCanonicalOrder(value: unknown, path = '$'): void {
  if (value === null || typeof value !== 'object') return;
  if (Array.isArray(value)) return value.forEach((item, i) => assertCanonicalOrder(item, `${path}[${i}]`));
  const keys = Object.keys(value);
  assert.deepEqual(keys, [...keys].sort(), `keys of ${path} are not in canonical order`);
  for (const key of keys) assertCanonicalOrder((value as Record<string, unknown>)[key], `${path}.${key}`);
}

test('the shared serialization is the canonical form, whatever the key order or value types', () => {
  const records: object[] = [
    { b: 1, a: { d: [3, { z: 1, y: undefined, x: null }], c: 'é\u2028"' }, portcullis: { zone: 'p', api: null } },
    { event: { action: 'gateway.request' } },
    { portcullis: {}, '@timestamp': '2030-01-01T00:00:00.000Z' },
    { when: { at: new Date(0), '10': 1, '9': 2 }, list: [undefined, -0, Number.NaN, 1e21], portcullis: { partner: null } },
    { portcullis: { b: { y: 1, x: 2 }, a: [] }, 'key "quoted"': '\u0000' },
    // Already in canonical order: one JSON.stringify, `portcullis` found by what follows it.
    { '@timestamp': 'x', portcullis: {} },
    { a: 1, portcullis: { b: '}' }, z: undefined },
    { a: 1, portcullis: { b: 1 }, y: undefined, z: { q: '},"portcullis":{' } },
    { a: undefined, portcullis: { b: 'x' } },
  ];
  for (const record of records) {
    const { json } = serialized(record);
    assert.equal(json, canonicalJson(hashedBody(record as Record<string, unknown>)));
  }
});

test('a stream line is the canonical body with its chain fields: it parses back, and audit verify recomputes its hash', () => {
  const records = [
    { b: 2, a: 1 },
    { portcullis: {} },
    { portcullis: { z: 1, a: { c: 1, b: 2 } }, x: 'ü' },
    { '@timestamp': 'x', portcullis: {} },
    { a: 'ü', portcullis: { b: 1 }, z: { q: 'é' } },
  ];
  for (const record of records) {
    const { record: canonical } = serialized(record);
    const prev = 'a'.repeat(64);
    const stream = 'partner/acme';
    const chain = { stream, seq: 7, prev, hash: chainHash(prev, stream, 7, canonical.json) };
    const text = chainedLine(canonical, chain, JSON.stringify(stream));
    assert.ok(text.endsWith('\n') && !text.slice(0, -1).includes('\n'));
    const line = JSON.parse(text) as { portcullis: { chain: typeof chain } };
    assert.deepEqual(line.portcullis.chain, chain);
    assert.equal(lineHash(prev, line), chain.hash);
    const { chain: _chain, ...portcullis } = line.portcullis;
    assert.deepEqual({ ...line, portcullis }, JSON.parse(canonicalJson(hashedBody(record))));
    // The byte count the writer keeps for rotation is the line's (without its newline, plus it).
    assert.equal(canonical.bytes, Buffer.byteLength(canonical.json));
  }
});

test('what JSON cannot carry or the verifier would not read is refused, not serialized', () => {
  assert.match(String(serializeRecord({ n: 1n })), /bigint/);
  assert.match(String(serializeRecord({ f: () => 1 })), /function/);
  assert.match(String(serializeRecord({ portcullis: 'x' })), /not an object/);
  assert.match(String(serializeRecord({ event: { action: 'audit.checkpoint' } })), /reserved/);
  assert.match(String(serializeRecord({ portcullis: { chain: { stream: 'combined', seq: 1 } } })), /reserved/);
  // The trail trusts a SerializedRecord's json: nothing but serializeRecord can make one.
  assert.throws(() => Reflect.construct(SerializedRecord, [Symbol('SerializedRecord'), { json: '{}' }]), /serializeRecord only/);
});

function context(overrides: Partial<Record<keyof DecisionInput, unknown>>): DecisionInput {
  const started = process.hrtime.bigint();
  return {
    requestId: 'req-1',
    startedAt: started - 900_000n,
    receivedAt: new Date(0),
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
    decidedBy: 'rule:r',
    purpose: null,
    upstreamCalled: false,
    upstreamStatus: null,
    upstreamStartedAt: null,
    upstreamHeadersAt: null,
    ...overrides,
  } as unknown as DecisionInput;
}

test('decision records are built in canonical key order (the one-JSON.stringify path), with and without a principal or TLS', () => {
  const principal = {
    partner: { id: 'acme', tier: 'gold', agreement: { id: 'acme-2026' } },
    credential: { id: 'acme-rs256' },
    credentialType: 'jwt',
    longLived: false,
    tokenId: 'jti-1',
    issuer: 'https://idp.example.test',
    scopes: new Set(['orders:read']),
  };
  const tls = { protocol: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256', alpn: 'h2', sni: 'api.example.test' };
  const clientCertificate = { facts: { fingerprintSha256: 'ab', subject: 'CN=acme', issuer: 'CN=ca', notAfter: '2030-01-01T00:00:00.000Z', serial: '01' } };
  const contexts = [
    context({}),
    context({ principal, upstreamCalled: true, upstreamStatus: 200 }),
    context({ principal: { ...principal, tokenId: null, issuer: null }, tls }),
    context({ principal, tls, clientCertificate }),
  ];
  for (const [i, ctx] of contexts.entries()) {
    const record = decisionRecord(ctx, { reason: i === 0 ? 'api_key.invalid' : 'allowed', decision: i === 0 ? 'deny' : 'allow', status: 200, ...(i === 0 ? { detail: 'no token' } : {}) }, process.hrtime.bigint());
    assertCanonicalOrder(record);
    assert.equal(serialized(record).json, JSON.stringify(record));
  }
});
