// What counts as abuse: authentication failures (401) against the source address, probing
// refusals of authorization against the credential; nothing else. Thresholds come from the
// configuration, `off` switches a counter off, and the start of a block is logged once.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { AbuseGuard } from '../../src/abuse/guard.ts';
import { isAuthenticationFailure, isAuthorizationDenial, observeOutcome } from '../../src/abuse/observe.ts';
import { REASONS } from '../../src/errors.ts';
import type { Reason } from '../../src/errors.ts';
import type { Snapshot } from '../../src/config/snapshot.ts';
import { setLogListener } from '../../src/log.ts';
import { BASE_CONFIG, apiKeyCredential, loadSnapshot } from '../ratelimit/snapshot.ts';

let snapshot: Snapshot;
let snapshotOff: Snapshot;
const logged: Array<Record<string, unknown>> = [];

before(async () => {
  const partners = `
routes:
  - { id: orders, zone: partner, methods: [GET], path: /orders, upstream: sample, api: orders, credentials: [api_key] }
partners:
  - id: acme
    agreement: { id: AGR-1, expires: 2099-12-31 }
    credentials:
      - ${apiKeyCredential('acme-key', 'aaaaaaaaaaaa')}
    grants:
      - { api: orders }
`;
  snapshot = await loadSnapshot(`${BASE_CONFIG}${partners}
abuse:
  auth_failures_per_source: { max: 2, window: 10s, block: 30s }
  denials_per_credential: { max: 3, window: 10s, block: 60s }
`);
  snapshotOff = await loadSnapshot(`${BASE_CONFIG}${partners}
abuse:
  auth_failures_per_source: off
  denials_per_credential: off
`);
  setLogListener((entry) => logged.push(entry), { quiet: true });
});
after(() => setLogListener(null, { quiet: false }));

const facts = (reason: Reason, credentialId: string | null = null, clientIp = '192.0.2.10') => ({ clientIp, credentialId, reason, status: null });

test('the configured thresholds are what the guard applies', () => {
  assert.deepEqual(snapshot.abuse.perSource, { max: 2, windowMs: 10_000, blockMs: 30_000 });
  assert.deepEqual(snapshot.abuse.perCredential, { max: 3, windowMs: 10_000, blockMs: 60_000 });
  assert.deepEqual(snapshotOff.abuse, { perSource: null, perCredential: null });
});

test('every 401 reason is an authentication failure; authorization probing is a denial; nothing else is either', () => {
  for (const reason of Object.keys(REASONS) as Reason[]) {
    const code = REASONS[reason];
    const unauthenticated = ['credential_missing', 'invalid_token', 'invalid_api_key', 'certificate_required', 'invalid_client_certificate', 'invalid_dpop_proof'].includes(code ?? '');
    assert.equal(isAuthenticationFailure(reason), unauthenticated, reason);
  }
  for (const reason of ['grant.missing', 'grant.source_network', 'scope.insufficient', 'purpose.missing', 'policy.denied', 'partner.source_network'] as const) {
    assert.equal(isAuthorizationDenial(reason), true, reason);
  }
  for (const reason of ['allowed', 'partner.suspended', 'partner.agreement_expired', 'ratelimit.exceeded', 'abuse.credential_blocked', 'token.expired', 'upstream.timeout'] as const) {
    assert.equal(isAuthorizationDenial(reason), false, reason);
  }
});

test('401s block the source after max, with one warn line; allowed requests and upstream 401s do not count', () => {
  const guard = new AbuseGuard();
  const t0 = 1_000_000;
  logged.length = 0;
  // An upstream that answers 401 is not an authentication failure at the gateway.
  for (let i = 0; i < 10; i++) observeOutcome(guard, snapshot, { ...facts('allowed', 'acme-key'), status: 401 }, t0);
  assert.equal(guard.sourceBlocked('192.0.2.10', t0), null);

  assert.deepEqual(observeOutcome(guard, snapshot, facts('token.signature_invalid'), t0), { blockedSource: false, blockedCredential: false });
  assert.deepEqual(observeOutcome(guard, snapshot, facts('token.missing'), t0 + 1), { blockedSource: false, blockedCredential: false });
  assert.deepEqual(observeOutcome(guard, snapshot, facts('api_key.invalid'), t0 + 2), { blockedSource: true, blockedCredential: false });
  assert.deepEqual(guard.sourceBlocked('192.0.2.10', t0 + 3), { untilMs: t0 + 2 + 30_000 });
  const warnings = logged.filter((entry) => entry['event'] === 'abuse.source_blocked');
  assert.equal(warnings.length, 1);
  assert.equal(warnings[0]!['level'], 'warn');
  assert.equal(warnings[0]!['source'], '192.0.2.10');
  assert.equal(warnings[0]!['until'], new Date(t0 + 2 + 30_000).toISOString());
});

test('authorization denials block the credential; status and agreement refusals do not count', () => {
  const guard = new AbuseGuard();
  logged.length = 0;
  for (let i = 0; i < 10; i++) observeOutcome(guard, snapshot, facts('partner.suspended', 'acme-key'), 5000 + i);
  assert.equal(guard.credentialBlocked('acme-key', 5100), null);
  const results = ['grant.missing', 'scope.insufficient', 'policy.denied', 'partner.source_network'].map((reason, i) =>
    observeOutcome(guard, snapshot, facts(reason as Reason, 'acme-key'), 6000 + i),
  );
  assert.deepEqual(results.map((r) => r.blockedCredential), [false, false, false, true]);
  assert.ok(guard.credentialBlocked('acme-key', 6010));
  assert.equal(guard.sourceBlocked('192.0.2.10', 6010), null, 'denials do not count against the address');
  assert.equal(logged.filter((entry) => entry['event'] === 'abuse.credential_blocked').length, 1);
  assert.equal(logged.find((entry) => entry['event'] === 'abuse.credential_blocked')!['credential'], 'acme-key');
  // Without an authenticated credential there is nothing to count a denial against.
  const other = new AbuseGuard();
  for (let i = 0; i < 10; i++) observeOutcome(other, snapshot, facts('grant.missing', null), 7000 + i);
  assert.equal(other.size.credentialCounters, 0);
});

test('`off` counts nothing', () => {
  const guard = new AbuseGuard();
  for (let i = 0; i < 50; i++) {
    const result = observeOutcome(guard, snapshotOff, facts(i % 2 === 0 ? 'token.expired' : 'grant.missing', 'acme-key'), 9000 + i);
    assert.deepEqual(result, { blockedSource: false, blockedCredential: false });
  }
  assert.deepEqual(guard.size, { sourceCounters: 0, sourceBlocks: 0, credentialCounters: 0, credentialBlocks: 0 });
});
