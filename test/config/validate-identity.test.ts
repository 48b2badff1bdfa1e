/**
 * Semantic checks of issuers, introspection endpoints and partner credentials: ids, transport,
 * the files they name (JWKS, CA, keys — generated per run), and credential uniqueness.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { generateTestKey, jwks } from '../helpers/tokens.ts';
import { BASE, brief, issuesOf, loadText, snapshotOf, tempDir, writeSelfSigned, writeText } from './helpers.ts';

const issuer = (fields: string) => `${BASE}issuers:\n  - { id: idp, issuer: "https://idp.test", algorithms: [ES256], ${fields} }\n`;

function pem(key: ReturnType<typeof generateKeyPairSync>['privateKey']): string {
  return key.export({ format: 'pem', type: 'pkcs8' }).toString();
}

describe('issuers', () => {
  it('accepts each key source on its own', async (t) => {
    const dir = await tempDir(t);
    await writeText(dir, 'jwks.json', jwks(generateTestKey('ES256')));
    for (const source of ['jwks_uri: "https://idp.test/jwks"', 'discovery: "https://idp.test/.well-known/openid-configuration"', 'jwks_file: jwks.json']) {
      const result = await loadText(t, issuer(source), dir);
      assert.ok(result.ok, `${source}: ${JSON.stringify(!result.ok && result.issues)}`);
    }
  });

  it('reports duplicate ids and duplicate iss values at the later entry', async (t) => {
    const text = `${BASE}issuers:
  - { id: idp, issuer: "https://idp.test", jwks_uri: "https://idp.test/jwks", algorithms: [ES256] }
  - { id: idp, issuer: "https://other.test", jwks_uri: "https://other.test/jwks", algorithms: [ES256] }
  - { id: idp2, issuer: "https://idp.test", jwks_uri: "https://idp.test/jwks", algorithms: [ES256] }
`;
    const issues = await issuesOf(t, text);
    assert.deepEqual(brief(issues), ['8:11 CONFIG_DUPLICATE_ID issuers[1].id', '9:25 CONFIG_DUPLICATE_ID issuers[2].issuer']);
    assert.equal(issues[0]!.message, 'duplicate issuer id "idp": first defined at line 7');
    assert.equal(issues[1]!.message, 'duplicate issuer (iss) "https://idp.test": first defined at line 7');
  });

  it('needs exactly one key source: none is a missing key, two conflict at the second', async (t) => {
    const none = await issuesOf(t, issuer('leeway: 10s'));
    assert.deepEqual(brief(none), ['7:5 CONFIG_INVALID_TYPE issuers[0]']);
    assert.equal(none[0]!.message, 'missing key source: set exactly one of "jwks_uri", "discovery", "jwks_file"');

    const three = await issuesOf(t, issuer('jwks_uri: "https://idp.test/jwks", discovery: "https://idp.test/meta", jwks_file: "nowhere.json"'));
    const conflicts = three.filter((issue) => issue.code === 'CONFIG_CONFLICT');
    assert.deepEqual(
      conflicts.map((issue) => `${issue.path}: ${issue.message}`),
      [
        'issuers[0].discovery: "jwks_uri" and "discovery" are both set: an issuer has exactly one key source',
        'issuers[0].jwks_file: "jwks_uri" and "jwks_file" are both set: an issuer has exactly one key source',
      ],
    );
  });

  it('counts a key source with a bad value as set, and reports the value once', async (t) => {
    const issues = await issuesOf(t, issuer('jwks_uri: "ftp://idp.test/jwks"'));
    assert.deepEqual(brief(issues), ['7:75 CONFIG_INVALID_VALUE issuers[0].jwks_uri']);
  });

  it('allows at most 60s of leeway', async (t) => {
    assert.ok((await loadText(t, issuer('jwks_uri: "https://idp.test/jwks", leeway: 60s'))).ok);
    const issues = await issuesOf(t, issuer('jwks_uri: "https://idp.test/jwks", leeway: 61s'));
    assert.deepEqual(brief(issues), ['7:108 CONFIG_INVALID_VALUE issuers[0].leeway']);
    assert.match(issues[0]!.message, /^leeway is at most 60s \(got 61s\)/);
  });

  it('fetches keys over https, or plain http only from a loopback host', async (t) => {
    for (const url of ['http://127.0.0.1:9999/jwks', 'http://127.8.9.10/jwks', 'http://[::1]:8080/jwks', 'http://localhost/jwks']) {
      const result = await loadText(t, issuer(`jwks_uri: "${url}"`));
      assert.ok(result.ok, `${url}: ${JSON.stringify(!result.ok && result.issues)}`);
    }
    for (const [key, url] of [
      ['jwks_uri', 'http://idp.test/jwks'],
      ['jwks_uri', 'http://128.0.0.1/jwks'],
      ['jwks_uri', 'http://126.255.255.255/jwks'],
      ['jwks_uri', 'http://10.0.0.1/jwks'],
      ['discovery', 'http://localhost.evil.test/meta'],
      ['discovery', 'http://[::2]/meta'],
    ] as const) {
      const issues = await issuesOf(t, issuer(`${key}: "${url}"`));
      assert.deepEqual(
        issues.map((issue) => `${issue.code} ${issue.path}`),
        [`CONFIG_INVALID_VALUE issuers[0].${key}`],
        url,
      );
      assert.match(issues[0]!.message, /^keys and token checks must travel over https: http:\/\/ is only allowed to a loopback host/);
    }
  });

  it('refuses credentials in a key URL', async (t) => {
    const issues = await issuesOf(t, issuer('jwks_uri: "https://user:secret@idp.test/jwks"'));
    assert.deepEqual(issues.map((issue) => issue.message), ['the URL must not carry credentials (user:password@)']);
  });

  it('reads a JWKS file relative to the config file and checks it is JSON', async (t) => {
    const dir = await tempDir(t);
    const missing = await issuesOf(t, issuer('jwks_file: keys/jwks.json'), dir);
    assert.deepEqual(brief(missing), ['7:76 CONFIG_FILE_UNREADABLE issuers[0].jwks_file']);
    assert.equal(missing[0]!.message, `cannot read ${join(dir, 'keys/jwks.json')}: no such file (ENOENT)`);

    await writeText(dir, 'jwks.json', '{"keys": [{"kty": "EC", "d": "hunter2-private"');
    const broken = await issuesOf(t, issuer('jwks_file: jwks.json'), dir);
    assert.deepEqual(brief(broken), ['7:76 CONFIG_INVALID_VALUE issuers[0].jwks_file']);
    assert.match(broken[0]!.message, /jwks\.json: not valid JSON/);
    assert.ok(!broken[0]!.message.includes('hunter2'), 'the message must not quote the file');

    await writeText(dir, 'jwks.json', Buffer.from([0x7b, 0xff, 0x7d]).toString('latin1'));
    const latin = await issuesOf(t, issuer('jwks_file: jwks.json'), dir);
    assert.match(latin[0]!.message, /not valid JSON|not valid UTF-8/);
  });

  it('reports each problem of the key set at the jwks_file position', async (t) => {
    const dir = await tempDir(t);
    // An RS256 key for an issuer that only allows ES256, and a symmetric key: both refused.
    const rsa = generateTestKey('RS256');
    await writeText(dir, 'jwks.json', JSON.stringify({ keys: [rsa.publicJwk, { kty: 'oct', k: 'c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0', alg: 'HS256', kid: 'h' }] }));
    const issues = await issuesOf(t, issuer('jwks_file: jwks.json'), dir);
    assert.equal(issues.length, 2);
    assert.match(issues[0]!.message, /key 0 .*RS256/);
    assert.match(issues[1]!.message, /key 1 .*symmetric/);
    assert.ok(issues.every((issue) => issue.code === 'CONFIG_INVALID_VALUE' && issue.path === 'issuers[0].jwks_file' && issue.line === 7 && issue.col === 76));
    assert.ok(issues.every((issue) => issue.message.startsWith(`${join(dir, 'jwks.json')}: `)));
  });

  it('checks an issuer CA bundle, and refuses one that would never be used', async (t) => {
    const dir = await tempDir(t);
    await writeSelfSigned(dir, 'ca');
    assert.ok((await loadText(t, issuer('jwks_uri: "https://idp.test/jwks", ca: ca.crt'), dir)).ok);
    const notPem = await issuesOf(t, issuer('jwks_uri: "https://idp.test/jwks", ca: ca.key'), dir);
    assert.deepEqual(brief(notPem), ['7:104 CONFIG_INVALID_VALUE issuers[0].ca']);
    assert.match(notPem[0]!.message, /no PEM certificate/);

    await writeText(dir, 'jwks.json', jwks(generateTestKey('ES256')));
    const unused = await issuesOf(t, issuer('jwks_file: jwks.json, ca: ca.crt'), dir);
    assert.deepEqual(brief(unused), ['7:91 CONFIG_CONFLICT issuers[0].ca']);
    const plain = await issuesOf(t, issuer('jwks_uri: "http://127.0.0.1/jwks", ca: ca.crt'), dir);
    assert.deepEqual(plain.map((issue) => `${issue.code} ${issue.path}`), ['CONFIG_CONFLICT issuers[0].ca']);
  });
});

const endpoint = (auth: string, extra = '') =>
  `${BASE}introspection:\n  - id: as\n    url: https://as.test/introspect\n    client_id: gateway\n${extra}    auth: ${auth}\n`;

describe('introspection endpoints', () => {
  it('accepts a private_key_jwt key usable with its algorithm', async (t) => {
    const dir = await tempDir(t);
    await writeText(dir, 'es256.pem', pem(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey));
    await writeText(dir, 'rsa.pem', pem(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey));
    await writeText(dir, 'ed.pem', pem(generateKeyPairSync('ed25519').privateKey));
    for (const [file, alg] of [['es256.pem', 'ES256'], ['rsa.pem', 'RS256'], ['rsa.pem', 'PS384'], ['ed.pem', 'EdDSA']]) {
      const result = await loadText(t, endpoint(`{ method: private_key_jwt, key: ${file}, alg: ${alg} }`), dir);
      assert.ok(result.ok, `${file} ${alg}: ${JSON.stringify(!result.ok && result.issues)}`);
    }
  });

  it('refuses a private_key_jwt key that cannot sign with its algorithm', async (t) => {
    const dir = await tempDir(t);
    await writeText(dir, 'p256.pem', pem(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey));
    await writeText(dir, 'rsa1024.pem', pem(generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey));
    await writeText(dir, 'public.pem', generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'pem', type: 'spki' }).toString());
    const cases = [
      ['p256.pem', 'ES384', /ES384 needs an EC P-384 key, but the file holds an EC key on curve prime256v1$/],
      ['p256.pem', 'RS256', /RS256 needs an RSA key, but the file holds an EC key on curve prime256v1$/],
      ['rsa1024.pem', 'PS256', /the RSA key has 1024 bits; PS256 needs at least 2048$/],
      ['public.pem', 'ES256', /no PEM private key/],
      ['missing.pem', 'ES256', /no such file/],
    ] as const;
    for (const [file, alg, message] of cases) {
      const issues = await issuesOf(t, endpoint(`{ method: private_key_jwt, key: ${file}, alg: ${alg} }`), dir);
      assert.deepEqual(brief(issues).map((line) => line.replace(/^\d+:\d+ /, '')), [`${file === 'missing.pem' ? 'CONFIG_FILE_UNREADABLE' : 'CONFIG_INVALID_VALUE'} introspection[0].auth.key`], file);
      assert.equal(issues[0]!.line, 10);
      assert.match(issues[0]!.message, message);
    }
  });

  it('checks tls_client_auth certificate and key like listener files', async (t) => {
    const dir = await tempDir(t);
    await writeSelfSigned(dir, 'one');
    await writeSelfSigned(dir, 'two');
    assert.ok((await loadText(t, endpoint('{ method: tls_client_auth, cert: one.crt, key: one.key }'), dir)).ok);
    const issues = await issuesOf(t, endpoint('{ method: tls_client_auth, cert: one.crt, key: two.key }'), dir);
    assert.deepEqual(brief(issues), ['10:58 CONFIG_INVALID_VALUE introspection[0].auth.key']);
    assert.match(issues[0]!.message, /does not match the certificate/);
  });

  it('refuses plain http to a non-loopback endpoint, and duplicate ids', async (t) => {
    const text = `${BASE}introspection:
  - { id: as, url: "http://as.test/introspect", client_id: gw, auth: { method: client_secret_basic, secret: s, insecure_shared_secret: "I understand a shared client secret is a long-lived credential" } }
  - { id: as, url: "http://127.0.0.1:9000/introspect", client_id: gw, auth: { method: client_secret_basic, secret: s, insecure_shared_secret: "I understand a shared client secret is a long-lived credential" } }
`;
    const issues = await issuesOf(t, text);
    assert.deepEqual(brief(issues), ['7:20 CONFIG_INVALID_VALUE introspection[0].url', '8:11 CONFIG_DUPLICATE_ID introspection[1].id']);
    assert.match(issues[0]!.message, /^keys and token checks must travel over https/);
  });

  it('loads a shared client secret only when acknowledged, and warns at every load', async (t) => {
    const ack = 'I understand a shared client secret is a long-lived credential';
    const snapshot = await snapshotOf(t, endpoint(`{ method: client_secret_basic, secret: s3cret, insecure_shared_secret: "${ack}" }`));
    assert.equal(snapshot.warnings.length, 1);
    assert.match(snapshot.warnings[0]!, /introspection\[0\]\.auth: the gateway authenticates to introspection endpoint "as" with a shared client secret/);
    assert.ok(!snapshot.warnings[0]!.includes('s3cret'));
    const issues = await issuesOf(t, endpoint('{ method: client_secret_basic, secret: s3cret, insecure_shared_secret: yes }'));
    assert.deepEqual(issues.map((issue) => issue.code), ['CONFIG_INSECURE_UNACKNOWLEDGED']);
  });
});

const PARTNER_CREDENTIALS = `${BASE}issuers:
  - { id: idp, issuer: "https://idp.test", jwks_uri: "https://idp.test/jwks", algorithms: [ES256] }
  - { id: idp2, issuer: "https://idp2.test", jwks_uri: "https://idp2.test/jwks", algorithms: [ES256] }
introspection:
  - { id: as, url: "https://as.test/introspect", client_id: gw, auth: { method: client_secret_basic, secret: s, insecure_shared_secret: "I understand a shared client secret is a long-lived credential" } }
partners:
  - id: acme
    credentials:
      - { id: acme-jwt, type: jwt, issuer: idp, client_id: acme }
      - { id: acme-key, type: api_key, key_id: abcdefghijkl, sha256: "${'0'.repeat(64)}", expires: 2030-01-31 }
  - id: globex
    credentials:
      - { id: globex-jwt, type: jwt, issuer: idp2, client_id: acme }
      - { id: globex-opaque, type: introspection, endpoint: as, client_id: globex }
`;

describe('partner credentials', () => {
  it('accepts one client id at two different issuers', async (t) => {
    const snapshot = await snapshotOf(t, PARTNER_CREDENTIALS);
    assert.equal(snapshot.credentials.jwt.get('idp2')!.get('acme')!.partnerId, 'globex');
  });

  it('reports a credential id used twice, across partners, naming the first holder', async (t) => {
    const issues = await issuesOf(t, PARTNER_CREDENTIALS.replace('{ id: globex-jwt,', '{ id: acme-jwt,'));
    assert.deepEqual(brief(issues), ['18:15 CONFIG_DUPLICATE_ID partners[1].credentials[0].id']);
    assert.equal(issues[0]!.message, 'duplicate credential id "acme-jwt": already used by partner "acme" at line 14');
  });

  it('reports a client id two partners share at one issuer or endpoint, and a shared API key id', async (t) => {
    const text = PARTNER_CREDENTIALS.replace('issuer: idp2, client_id: acme', 'issuer: idp, client_id: acme')
      .replace('endpoint: as, client_id: globex }', `endpoint: as, client_id: globex }
      - { id: globex-opaque2, type: introspection, endpoint: as, client_id: globex }
      - { id: globex-key, type: api_key, key_id: abcdefghijkl, sha256: "${'1'.repeat(64)}", expires: 2030-01-31 }`);
    const issues = await issuesOf(t, text);
    assert.deepEqual(brief(issues), [
      '18:62 CONFIG_DUPLICATE_ID partners[1].credentials[0].client_id',
      '20:77 CONFIG_DUPLICATE_ID partners[1].credentials[2].client_id',
      '21:50 CONFIG_DUPLICATE_ID partners[1].credentials[3].key_id',
    ]);
    assert.equal(issues[0]!.message, 'duplicate client_id "acme" at issuer "idp": already used by partner "acme" at line 14');
    assert.equal(issues[1]!.message, 'duplicate client_id "globex" at endpoint "as": already used at line 19');
    assert.equal(issues[2]!.message, 'duplicate API key id "abcdefghijkl": already used by partner "acme" at line 15');
  });

  it('reports an unknown issuer or endpoint, listing the defined ones', async (t) => {
    const text = PARTNER_CREDENTIALS.replace('issuer: idp2, client_id', 'issuer: idp3, client_id').replace('endpoint: as,', 'endpoint: as2,');
    const issues = await issuesOf(t, text);
    assert.deepEqual(brief(issues), ['18:46 CONFIG_DANGLING_REF partners[1].credentials[0].issuer', '19:61 CONFIG_DANGLING_REF partners[1].credentials[1].endpoint']);
    assert.equal(issues[0]!.message, 'unknown issuer "idp3" (defined issuers: idp, idp2)');
    assert.equal(issues[1]!.message, 'unknown introspection endpoint "as2" (defined introspection endpoints: as)');
  });

  it('still reports the duplicate id of a credential whose other fields are wrong', async (t) => {
    const issues = await issuesOf(t, PARTNER_CREDENTIALS.replace('{ id: globex-jwt, type: jwt, issuer: idp2,', '{ id: acme-jwt, type: jwt, issuer: "Not An Id",'));
    assert.deepEqual(brief(issues), ['18:15 CONFIG_DUPLICATE_ID partners[1].credentials[0].id', '18:44 CONFIG_INVALID_VALUE partners[1].credentials[0].issuer']);
  });
});

describe('dates', () => {
  it('refuses a day that does not exist instead of rolling it over into the next month', async (t) => {
    const text = `${BASE}partners:
  - id: acme
    agreement: { id: MSA-1, expires: 2027-02-29 }
    credentials:
      - { id: k, type: api_key, key_id: abcdefghijkl, sha256: "${'a'.repeat(64)}", expires: "2027-04-31T10:00:00Z" }
`;
    const issues = await issuesOf(t, text);
    assert.deepEqual(brief(issues), ['8:38 CONFIG_INVALID_VALUE partners[0].agreement.expires', '10:140 CONFIG_INVALID_VALUE partners[0].credentials[0].expires']);
    assert.equal(issues[0]!.message, 'not a valid calendar date');
    assert.ok((await loadText(t, text.replace('2027-02-29', '2028-02-29').replace('2027-04-31', '2027-04-30'))).ok);
  });
});
