// SECURITY.md API2 at the token endpoint: failed client authentications count against the
// source address like any 401 on the data plane; once blocked, the address gets 429 before any
// assertion is looked at — and a valid client from that address too, until the block ends.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { request } from 'undici';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import type { CryptoKey } from 'jose';
import { startHarness } from '../helpers/harness.ts';
import type { Harness } from '../helpers/harness.ts';

const ISSUER = 'https://gw.example.test';
const HOST = 'gw.example.test';
const ORDERS = 'https://api.example.test/orders';

let h: Harness;
let clientKey: CryptoKey;
let strangerKey: CryptoKey;

before(async () => {
  const pair = await generateKeyPair('ES256', { extractable: true });
  clientKey = pair.privateKey;
  strangerKey = (await generateKeyPair('ES256')).privateKey;
  const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'client-1', alg: 'ES256', use: 'sig' };
  h = await startHarness(
    `
version: 1
abuse:
  auth_failures_per_source: { max: 2, window: 1m, block: 1m }
listeners:
  - { name: api, zone: partner, port: 0, hostnames: [${HOST}] }
upstreams:
  - { id: sample, url: "{{UPSTREAM}}" }
token_service: { issuer: "${ISSUER}", listener: api, allow_bearer_tokens: "I understand tokens issued without mTLS or DPoP can be replayed by whoever holds them" }
apis:
  - { id: orders, audience: "${ORDERS}" }
routes:
  - { id: orders, zone: partner, methods: [GET], path: /orders, upstream: sample, api: orders }
partners:
  - id: acme
    agreement: { id: MSA-1, expires: 2099-12-31 }
    credentials:
      - { id: acme-app, type: client, client_id: acme-app, auth: private_key_jwt, jwks_file: client.jwks }
    grants:
      - { api: orders }
`,
    { files: { 'client.jwks': JSON.stringify({ keys: [jwk] }) } },
  );
});
after(async () => h?.close());

async function tokenRequest(key: CryptoKey): Promise<number> {
  const now = Math.floor(Date.now() / 1000);
  const assertion = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'client-1' }).setIssuer('acme-app').setSubject('acme-app').setAudience(ISSUER).setIssuedAt(now).setExpirationTime(now + 60).setJti(randomUUID()).sign(key);
  const response = await request(`${h.url('api')}/oauth2/token`, {
    method: 'POST',
    headers: { host: HOST, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: assertion,
      resource: ORDERS,
    }).toString(),
  });
  await response.body.dump();
  return response.statusCode;
}

test('assertions signed by the wrong key block the address after the threshold; then even a valid client gets 429', async () => {
  assert.equal(await tokenRequest(clientKey), 200);
  const failures = [await tokenRequest(strangerKey), await tokenRequest(strangerKey), await tokenRequest(strangerKey)];
  assert.deepEqual(failures, [401, 401, 401]);
  assert.equal(await tokenRequest(clientKey), 429);
  const records = await h.records();
  assert.equal(records.at(-1)?.event.reason, 'abuse.source_blocked');
  assert.ok(h.logLines.some((entry) => entry.event === 'abuse.source_blocked'));
});
