// A record is serialized once (trail.ts serializeRecord) for the decision log and every stream
// of the trail: that one string must be exactly the canonical form `audit verify` recomputes from
// the line, whatever the record's key order. (The gateway's decision records are written as
// canonical JSON directly: test/pipeline/audit.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chainHash, chainedLine, hashedBody, lineHash } from '../../src/audit/chain-format.ts';
import { canonicalJson } from '../../src/config/config-hash.ts';
import { SerializedRecord, serializeRecord } from '../../src/audit/trail.ts';

function serialized(record: object): SerializedRecord {
  const result = serializeRecord(record);
  assert.ok(result instanceof SerializedRecord, `refused: ${String(result)}`);
  return result;
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
  // The trail trusts a SerializedRecord's json: nothing but serializeRecord (and, for producers
  // that write canonical JSON themselves, serializedFromCanonicalJson) can make one.
  assert.throws(() => Reflect.construct(SerializedRecord, [Symbol('SerializedRecord'), { json: '{}' }, null]), /serializeRecord and serializedFromCanonicalJson only/);
});
