// The declared purpose: header first, then claim; only a short id counts.
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { describe, test } from 'node:test';
import { declaredPurpose } from '../../src/policy/purpose.ts';

const route = { purpose: { header: 'x-purpose', claim: 'purpose', allowed: new Set(['fraud_check', 'kyc']) } };
const claims = (value: unknown): Record<string, unknown> => Object.assign(Object.create(null) as Record<string, unknown>, { purpose: value });
const none = Object.create(null) as Record<string, unknown>;

describe('declaredPurpose', () => {
  test('no purpose requirement on the route: null, whatever the request says', () => {
    assert.equal(declaredPurpose({ purpose: null }, { 'x-purpose': 'kyc' }, claims('kyc')), null);
  });

  test('the header wins over the claim', () => {
    assert.equal(declaredPurpose(route, { 'x-purpose': 'kyc' }, claims('fraud_check')), 'kyc');
  });

  test('the claim when the header is absent', () => {
    assert.equal(declaredPurpose(route, {}, claims('fraud_check')), 'fraud_check');
  });

  test('neither: null', () => {
    assert.equal(declaredPurpose(route, {}, none), null);
  });

  test('a purpose that is not an allowed one is still returned (the decision refuses it)', () => {
    assert.equal(declaredPurpose(route, { 'x-purpose': 'marketing' }, none), 'marketing');
  });

  const notAPurpose: readonly [unknown, string][] = [
    ['', 'empty'],
    ['KYC', 'uppercase'],
    ['kyc, marketing', 'a list'],
    ['kyc ', 'trailing space'],
    ['x'.repeat(64), 'too long'],
    ['-kyc', 'leading dash'],
    ['kyc\n', 'a newline'],
    ['constructor', 'a prototype member name (JWT-20)'],
  ];
  for (const [value, why] of notAPurpose) {
    test(`not a short id (${why}) counts as absent`, () => {
      assert.equal(declaredPurpose(route, { 'x-purpose': value as string }, none), null);
      assert.equal(declaredPurpose(route, {}, claims(value)), null);
    });
  }

  test('a header sent twice (an array) is not one purpose', () => {
    const headers = { 'x-purpose': ['kyc', 'kyc'] } as unknown as IncomingHttpHeaders;
    assert.equal(declaredPurpose(route, headers, none), null);
  });

  test('an invalid header falls through to the claim', () => {
    assert.equal(declaredPurpose(route, { 'x-purpose': 'KYC!' }, claims('kyc')), 'kyc');
  });

  test('claims that are not strings count as absent', () => {
    for (const value of [42, true, ['kyc'], { id: 'kyc' }, null]) assert.equal(declaredPurpose(route, {}, claims(value)), null, JSON.stringify(value));
  });

  test('a route reading only the claim ignores the header, and the reverse', () => {
    const claimOnly = { purpose: { header: null, claim: 'purpose', allowed: new Set(['kyc']) } };
    const headerOnly = { purpose: { header: 'x-purpose', claim: null, allowed: new Set(['kyc']) } };
    assert.equal(declaredPurpose(claimOnly, { 'x-purpose': 'kyc' }, none), null);
    assert.equal(declaredPurpose(headerOnly, {}, claims('kyc')), null);
  });

  test('an inherited member is never a claim or header', () => {
    const inherits = { purpose: { header: 'constructor', claim: 'toString', allowed: new Set(['kyc']) } };
    assert.equal(declaredPurpose(inherits, {}, {}), null);
  });
});
