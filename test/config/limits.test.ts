/**
 * The configuration of issue 7 through the real loader: `state`, `admin`, `rate_limits`,
 * `abuse`, and the partner / credential / route limits — schema, semantic checks
 * (`validate-limits.ts`) with their `line:col CODE path`, and the compiled snapshot values.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { INSECURE_ACKS } from '../../src/config/schema.ts';
import { BASE, brief, issuesOf, runCli, snapshotOf, tempDir, writeText } from './helpers.ts';

/** BASE is five lines: whatever follows it starts at line 6. */
const config = (rest: string): string => `${BASE}${rest}`;

const REDIS_URL = 'redis://127.0.0.1:6379/0';

describe('state', () => {
  it('defaults to the embedded driver, its SQLite file in the data folder', async (t) => {
    const dir = await tempDir(t);
    const snapshot = await snapshotOf(t, BASE, dir);
    assert.deepEqual(snapshot.state, { driver: 'embedded', sqlitePath: join(dir, '.portcullis', 'state.sqlite'), redis: null, propagationTimeoutMs: 1000 });
    assert.deepEqual(snapshot.warnings, []);

    const moved = await snapshotOf(t, `${config('state: { propagation_timeout: 250ms }\n')}gateway: { data_dir: var/portcullis }\n`, dir);
    assert.equal(moved.state.sqlitePath, join(dir, 'var', 'portcullis', 'state.sqlite'));
    assert.equal(moved.state.propagationTimeoutMs, 250);
  });

  it('compiles a single Redis server, with its defaults', async (t) => {
    const snapshot = await snapshotOf(t, config(`state:\n  driver: redis\n  redis: { url: "${REDIS_URL}" }\n`));
    assert.equal(snapshot.state.driver, 'redis');
    assert.deepEqual(snapshot.state.redis, {
      mode: 'single',
      url: REDIS_URL,
      sentinel: null,
      clusterNodes: [],
      keyPrefix: 'portcullis:',
      connectTimeoutMs: 2000,
      commandTimeoutMs: 1000,
      serveLastKnownForMs: null,
    });
  });

  it('compiles Sentinel nodes into host and port, and Cluster seed nodes', async (t) => {
    const sentinel = await snapshotOf(
      t,
      config(`state:
  driver: redis
  redis:
    sentinel: { name: mymaster, nodes: ["10.0.0.1:26379", "sentinel-b.internal:26380"] }
    key_prefix: "prod:gw:"
    connect_timeout: 500ms
    command_timeout: 250ms
`),
    );
    assert.deepEqual(sentinel.state.redis, {
      mode: 'sentinel',
      url: null,
      sentinel: { name: 'mymaster', nodes: [{ host: '10.0.0.1', port: 26379 }, { host: 'sentinel-b.internal', port: 26380 }] },
      clusterNodes: [],
      keyPrefix: 'prod:gw:',
      connectTimeoutMs: 500,
      commandTimeoutMs: 250,
      serveLastKnownForMs: null,
    });
    const cluster = await snapshotOf(t, config('state:\n  driver: redis\n  redis: { cluster: { nodes: ["redis://10.0.0.1:7000", "rediss://10.0.0.2:7000"] } }\n'));
    assert.equal(cluster.state.redis?.mode, 'cluster');
    assert.deepEqual(cluster.state.redis?.clusterNodes, ['redis://10.0.0.1:7000', 'rediss://10.0.0.2:7000']);
  });

  it('refuses driver redis without a redis section', async (t) => {
    const issues = await issuesOf(t, config('state:\n  driver: redis\n'));
    assert.deepEqual(brief(issues), ['7:11 CONFIG_INVALID_TYPE state.driver']);
    assert.match(issues[0]!.message, /driver "redis" needs a "state\.redis" section/);
  });

  it('refuses a redis section with the embedded driver, written or by default', async (t) => {
    const written = await issuesOf(t, config(`state:\n  driver: embedded\n  redis: { url: "${REDIS_URL}" }\n`));
    assert.deepEqual(brief(written), ['8:3 CONFIG_CONFLICT state.redis']);
    assert.match(written[0]!.message, /the driver is "embedded": set "driver: redis" or remove the section/);
    const defaulted = await issuesOf(t, config(`state:\n  redis: { url: "${REDIS_URL}" }\n`));
    assert.deepEqual(brief(defaulted), ['7:3 CONFIG_CONFLICT state.redis']);
  });

  it('needs exactly one of url, sentinel and cluster', async (t) => {
    const two = await issuesOf(
      t,
      config(`state:
  driver: redis
  redis:
    url: "${REDIS_URL}"
    cluster: { nodes: ["redis://10.0.0.1:7000"] }
`),
    );
    assert.deepEqual(brief(two), ['10:5 CONFIG_CONFLICT state.redis.cluster']);
    assert.match(two[0]!.message, /url and cluster are both set/);
    const none = await issuesOf(t, config('state:\n  driver: redis\n  redis:\n    key_prefix: "gw:"\n'));
    assert.deepEqual(brief(none), ['8:3 CONFIG_INVALID_TYPE state.redis']);
    assert.match(none[0]!.message, /exactly one of "url", "sentinel" or "cluster" is needed/);
  });

  it('refuses a URL that is not redis:// or rediss://, and a sentinel node without a port', async (t) => {
    const issues = await issuesOf(t, config('state:\n  driver: redis\n  redis:\n    url: "http://127.0.0.1:6379"\n'));
    assert.ok(brief(issues).includes('9:10 CONFIG_INVALID_VALUE state.redis.url'), brief(issues).join('\n'));
    const sentinel = await issuesOf(t, config('state:\n  driver: redis\n  redis:\n    sentinel: { name: m, nodes: ["10.0.0.1"] }\n'));
    assert.ok(brief(sentinel).includes('9:34 CONFIG_INVALID_VALUE state.redis.sentinel.nodes[0]'), brief(sentinel).join('\n'));
  });

  it(
    'reports a bad redis url once, not also as "none of url, sentinel, cluster"',
    async (t) => {
      const issues = await issuesOf(t, config('state:\n  driver: redis\n  redis:\n    url: "http://127.0.0.1:6379"\n'));
      assert.deepEqual(brief(issues), ['9:10 CONFIG_INVALID_VALUE state.redis.url']);
    },
  );

  it('refuses serve_last_known without its acknowledgement', async (t) => {
    const issues = await issuesOf(t, config(`state:\n  driver: redis\n  redis:\n    url: "${REDIS_URL}"\n    on_disconnect: serve_last_known\n`));
    assert.deepEqual(brief(issues), ['10:20 CONFIG_INSECURE_UNACKNOWLEDGED state.redis.on_disconnect']);
    assert.ok(issues[0]!.message.includes(INSECURE_ACKS.serveLastKnownState), issues[0]!.message);
  });

  it('accepts serve_last_known with the exact acknowledgement, and warns at every load', async (t) => {
    const snapshot = await snapshotOf(
      t,
      config(`state:
  driver: redis
  redis:
    url: "${REDIS_URL}"
    on_disconnect: serve_last_known
    serve_last_known_for: 2m
    acknowledge: "${INSECURE_ACKS.serveLastKnownState}"
`),
    );
    assert.equal(snapshot.state.redis?.serveLastKnownForMs, 120_000);
    assert.equal(snapshot.warnings.length, 1);
    assert.match(snapshot.warnings[0]!, /gateway\.yaml:10:20 state\.redis\.on_disconnect: while Redis is unreachable the gateway serves the last known revocations for up to 120000 ms/);
    // The default window, and fail_closed compiles to "never serve stale state".
    const defaulted = await snapshotOf(t, config(`state:\n  driver: redis\n  redis:\n    url: "${REDIS_URL}"\n    on_disconnect: serve_last_known\n    acknowledge: "${INSECURE_ACKS.serveLastKnownState}"\n`));
    assert.equal(defaulted.state.redis?.serveLastKnownForMs, 30_000);
  });

  it(
    'reports a wrong acknowledgement once, as CONFIG_INSECURE_UNACKNOWLEDGED at the acknowledgement',
    async (t) => {
      const issues = await issuesOf(t, config(`state:\n  driver: redis\n  redis:\n    url: "${REDIS_URL}"\n    on_disconnect: serve_last_known\n    acknowledge: "yes"\n`));
      assert.deepEqual(brief(issues), ['11:18 CONFIG_INSECURE_UNACKNOWLEDGED state.redis.acknowledge']);
      const headers = await issuesOf(t, config('rate_limits:\n  headers:\n    enabled: true\n    acknowledge: "yes"\n'));
      assert.deepEqual(brief(headers), ['9:18 CONFIG_INSECURE_UNACKNOWLEDGED rate_limits.headers.acknowledge']);
    },
  );

  it('serves the last known state for at most 10 minutes', async (t) => {
    const text = (window: string) =>
      config(`state:
  driver: redis
  redis:
    url: "${REDIS_URL}"
    on_disconnect: serve_last_known
    serve_last_known_for: ${window}
    acknowledge: "${INSECURE_ACKS.serveLastKnownState}"
`);
    const issues = await issuesOf(t, text('601s'));
    assert.deepEqual(brief(issues), ['11:27 CONFIG_INVALID_VALUE state.redis.serve_last_known_for']);
    assert.match(issues[0]!.message, /at most 10m/);
    assert.equal((await snapshotOf(t, text('10m'))).state.redis?.serveLastKnownForMs, 600_000);
  });
});

describe('admin tokens', () => {
  const HASH_A = 'a'.repeat(64);
  const HASH_B = 'b'.repeat(64);

  it('compiles tokens into a map from SHA-256 to holder', async (t) => {
    const snapshot = await snapshotOf(t, config(`admin:\n  tokens:\n    - { id: alice, sha256: ${HASH_A} }\n    - { id: deploy-bot, sha256: ${HASH_B} }\n`));
    assert.deepEqual([...snapshot.adminTokens], [[HASH_A, 'alice'], [HASH_B, 'deploy-bot']]);
    assert.equal((await snapshotOf(t, BASE)).adminTokens.size, 0);
  });

  it('refuses a duplicate holder id and a token listed twice, at the later entry', async (t) => {
    const issues = await issuesOf(
      t,
      config(`admin:
  tokens:
    - { id: alice, sha256: ${HASH_A} }
    - { id: alice, sha256: ${HASH_B} }
    - { id: bob, sha256: ${HASH_A} }
`),
    );
    assert.deepEqual(brief(issues), ['9:13 CONFIG_DUPLICATE_ID admin.tokens[1].id', '10:26 CONFIG_DUPLICATE_ID admin.tokens[2].sha256']);
    assert.match(issues[0]!.message, /duplicate admin token id "alice" \(also tokens\[0\]\)/);
    assert.match(issues[1]!.message, /the same token is listed twice \(also tokens\[0\]\)/);
  });

  it('refuses a SHA-256 that is not 64 lowercase hex digits', async (t) => {
    const issues = await issuesOf(t, config(`admin:\n  tokens:\n    - { id: alice, sha256: ${'A'.repeat(64)} }\n`));
    assert.deepEqual(brief(issues), ['8:28 CONFIG_INVALID_VALUE admin.tokens[0].sha256']);
  });
});

describe('rates and bursts', () => {
  const partnerRate = (limit: string) => config(`partners:\n  - id: acme\n    rate_limit: ${limit}\n`);

  it('compiles a rate into its emission interval, keeping the text as written', async (t) => {
    for (const [written, intervalMs] of [['100/s', 10], ['6000/m', 10], ['100000/h', 36], ['1/h', 3_600_000], ['3/s', 1000 / 3]] as const) {
      const snapshot = await snapshotOf(t, partnerRate(`{ rate: ${written} }`));
      assert.deepEqual(snapshot.partners.get('acme')!.limits.rate, { text: written, emissionIntervalMs: intervalMs, burst: 0 }, written);
    }
  });

  it('refuses rates in other units, zero, and other spellings', async (t) => {
    for (const written of ['10/d', '0/s', '1.5/s', '100 / s', '100/S', '1000000000/s', '100']) {
      const issues = await issuesOf(t, partnerRate(`{ rate: "${written}" }`));
      assert.deepEqual(brief(issues), ['8:25 CONFIG_INVALID_VALUE partners[0].rate_limit.rate'], written);
      assert.match(issues[0]!.message, /expected a rate such as 100\/s, 6000\/m or 100000\/h/);
    }
  });

  it('takes a burst from 0 to 1000000, a whole number', async (t) => {
    assert.equal((await snapshotOf(t, partnerRate('{ rate: 10/s, burst: 1000000 }'))).partners.get('acme')!.limits.rate?.burst, 1_000_000);
    assert.equal((await snapshotOf(t, partnerRate('{ rate: 10/s, burst: 0 }'))).partners.get('acme')!.limits.rate?.burst, 0);
    assert.deepEqual(brief(await issuesOf(t, partnerRate('{ rate: 10/s, burst: -1 }'))), ['8:38 CONFIG_INVALID_VALUE partners[0].rate_limit.burst']);
    assert.deepEqual(brief(await issuesOf(t, partnerRate('{ rate: 10/s, burst: 1000001 }'))), ['8:38 CONFIG_INVALID_VALUE partners[0].rate_limit.burst']);
    assert.deepEqual(brief(await issuesOf(t, partnerRate('{ rate: 10/s, burst: 1.5 }'))), ['8:38 CONFIG_INVALID_TYPE partners[0].rate_limit.burst']);
  });

  it('needs a rate: a burst alone is refused', async (t) => {
    const issues = await issuesOf(t, partnerRate('{ burst: 5 }'));
    assert.deepEqual(brief(issues), ['8:5 CONFIG_INVALID_TYPE partners[0].rate_limit.rate']);
  });
});

describe('partner limits and tiers', () => {
  const TIERS = `rate_limits:
  tiers:
    standard:
      rate_limit: { rate: 10/s, burst: 20 }
      quotas: [{ limit: 1000, per: day }]
      max_concurrent: 5
    gold:
      rate_limit: { rate: 6000/m, burst: 500 }
      quotas: [{ limit: 100000, per: month, timezone: Europe/Berlin }, { limit: 10000, per: day }]
      max_concurrent: 50
`;

  it('gives a partner its tier limits, and its own settings override them one by one', async (t) => {
    const snapshot = await snapshotOf(
      t,
      config(`${TIERS}partners:
  - { id: plain }
  - { id: golden, tier: gold }
  - id: own-rate
    tier: gold
    rate_limit: { rate: 1/s }
  - id: no-quotas
    tier: gold
    quotas: []
    max_concurrent: 2
`),
    );
    const limits = (id: string) => snapshot.partners.get(id)!.limits;
    assert.deepEqual(limits('plain'), {
      rate: { text: '10/s', emissionIntervalMs: 100, burst: 20 },
      quotas: [{ limit: 1000, per: 'day', timezone: 'UTC' }],
      maxConcurrent: 5,
    });
    assert.deepEqual(limits('golden'), {
      rate: { text: '6000/m', emissionIntervalMs: 10, burst: 500 },
      quotas: [
        { limit: 100000, per: 'month', timezone: 'Europe/Berlin' },
        { limit: 10000, per: 'day', timezone: 'UTC' },
      ],
      maxConcurrent: 50,
    });
    assert.deepEqual(limits('own-rate'), { ...limits('golden'), rate: { text: '1/s', emissionIntervalMs: 1000, burst: 0 } });
    // An explicit empty list is "no quota", not "the tier's".
    assert.deepEqual(limits('no-quotas'), { rate: limits('golden').rate, quotas: [], maxConcurrent: 2 });
  });

  it('leaves a partner without limits when nothing is configured', async (t) => {
    const snapshot = await snapshotOf(t, config('partners:\n  - { id: acme, tier: gold }\n'));
    assert.deepEqual(snapshot.partners.get('acme')!.limits, { rate: null, quotas: [], maxConcurrent: null });
    assert.equal(snapshot.partners.get('acme')!.sourceNetworks, null);
    // An empty tiers map defines no tier, so no partner's tier can be missing from it.
    assert.ok(await snapshotOf(t, config('rate_limits: { tiers: {} }\npartners:\n  - { id: acme, tier: silver }\n')));
  });

  it('refuses a partner tier that a non-empty tiers map lacks, the default standard included', async (t) => {
    const issues = await issuesOf(
      t,
      config(`rate_limits:
  tiers:
    gold: { max_concurrent: 10 }
partners:
  - id: acme
    tier: silver
  - id: globex
  - { id: initech, tier: gold }
`),
    );
    assert.deepEqual(brief(issues), ['11:11 CONFIG_DANGLING_REF partners[0].tier', '12:5 CONFIG_DANGLING_REF partners[1].tier']);
    assert.match(issues[0]!.message, /tier "silver" has no entry in rate_limits\.tiers \(defined: gold\)/);
    assert.match(issues[1]!.message, /tier "standard" has no entry/);
  });

  it('compiles partner source networks, and refuses a block with host bits set', async (t) => {
    const snapshot = await snapshotOf(t, config('partners:\n  - id: acme\n    source_networks: [203.0.113.0/24, "2001:db8::/32"]\n'));
    const networks = snapshot.partners.get('acme')!.sourceNetworks!;
    assert.equal(networks.check('203.0.113.77', 'ipv4'), true);
    assert.equal(networks.check('198.51.100.1', 'ipv4'), false);
    assert.equal(networks.check('2001:db8::1', 'ipv6'), true);

    const issues = await issuesOf(t, config('partners:\n  - id: acme\n    source_networks: [203.0.113.0/24, 10.0.0.1/8]\n'));
    assert.deepEqual(brief(issues), ['8:39 CONFIG_INVALID_VALUE partners[0].source_networks[1]']);
    assert.match(issues[0]!.message, /host bits are set; the block would be 10\.0\.0\.0\/8/);
  });

  it('refuses a quota time zone that is not an IANA name, on a partner and on a tier', async (t) => {
    const issues = await issuesOf(
      t,
      config(`rate_limits:
  tiers:
    gold: { quotas: [{ limit: 10, per: month, timezone: Mars/Olympus }] }
partners:
  - id: acme
    tier: gold
    quotas:
      - { limit: 10, per: day, timezone: Europe/Berln }
`),
    );
    assert.deepEqual(brief(issues), ['8:57 CONFIG_INVALID_VALUE rate_limits.tiers.gold.quotas[0].timezone', '13:42 CONFIG_INVALID_VALUE partners[0].quotas[0].timezone']);
    assert.match(issues[1]!.message, /unknown time zone "Europe\/Berln"/);
  });

  it(
    'refuses a bare UTC offset as a quota time zone, as grants do',
    async (t) => {
      const issues = await issuesOf(t, config('partners:\n  - id: acme\n    quotas: [{ limit: 10, per: day, timezone: "+02:00" }]\n'));
      assert.deepEqual(brief(issues), ['8:47 CONFIG_INVALID_VALUE partners[0].quotas[0].timezone']);
    },
  );

  it('refuses a quota per week and a limit of zero', async (t) => {
    const issues = await issuesOf(t, config('partners:\n  - id: acme\n    quotas: [{ limit: 0, per: week }]\n'));
    assert.deepEqual(brief(issues), ['8:23 CONFIG_INVALID_VALUE partners[0].quotas[0].limit', '8:31 CONFIG_INVALID_VALUE partners[0].quotas[0].per']);
  });
});

describe('credential and route rate limits', () => {
  /** One partner with a credential of each type, and routes with and without their own limit. */
  async function identityConfig(dir: string): Promise<string> {
    await writeText(dir, 'assertion.pem', generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString());
    return config(`issuers:
  - { id: idp, issuer: "https://idp.test", jwks_uri: "https://idp.test/jwks", algorithms: [ES256] }
introspection:
  - id: as
    url: https://as.test/introspect
    client_id: gateway
    auth: { method: private_key_jwt, key: assertion.pem, alg: ES256 }
apis:
  - { id: orders, audience: "https://api.test/orders" }
partners:
  - id: acme
    credentials:
      - { id: acme-jwt, type: jwt, issuer: idp, client_id: acme, rate_limit: { rate: 5/s, burst: 1 } }
      - { id: acme-opaque, type: introspection, endpoint: as, client_id: acme-rs, rate_limit: { rate: 60/m } }
      - { id: acme-key, type: api_key, key_id: abcdefghijkl, sha256: ${'c'.repeat(64)}, expires: 2030-01-01, rate_limit: { rate: 3600/h, burst: 10 } }
      - { id: acme-free, type: jwt, issuer: idp, client_id: acme-free }
    grants: [{ api: orders }]
routes:
  - { id: list, zone: partner, api: orders, methods: [GET], path: /orders, upstream: backend, credentials: [jwt, introspection, api_key], rate_limit: { rate: 20/s, burst: 5 } }
  - { id: create, zone: partner, api: orders, methods: [POST], path: /orders, upstream: backend, rate_limit: { rate: 2/s, per: credential } }
  - { id: show, zone: partner, api: orders, methods: [GET], path: "/orders/{id}", upstream: backend }
`);
  }

  it('compiles a credential rate limit on every credential type', async (t) => {
    const dir = await tempDir(t);
    const { credentials } = await snapshotOf(t, await identityConfig(dir), dir);
    assert.deepEqual(credentials.jwt.get('idp')!.get('acme')!.rateLimit, { text: '5/s', emissionIntervalMs: 200, burst: 1 });
    assert.deepEqual(credentials.introspection.get('as')!.get('acme-rs')!.rateLimit, { text: '60/m', emissionIntervalMs: 1000, burst: 0 });
    assert.deepEqual(credentials.apiKeys.get('abcdefghijkl')!.rateLimit, { text: '3600/h', emissionIntervalMs: 1000, burst: 10 });
    assert.equal(credentials.jwt.get('idp')!.get('acme-free')!.rateLimit, null);
  });

  it('compiles a route rate limit, counted per partner unless per credential', async (t) => {
    const dir = await tempDir(t);
    const snapshot = await snapshotOf(t, await identityConfig(dir), dir);
    const route = (id: string) => snapshot.routes.find((candidate) => candidate.id === id)!;
    assert.deepEqual(route('list').rateLimit, { text: '20/s', emissionIntervalMs: 50, burst: 5, per: 'partner' });
    assert.deepEqual(route('create').rateLimit, { text: '2/s', emissionIntervalMs: 500, burst: 0, per: 'credential' });
    assert.equal(route('show').rateLimit, null);
  });

  it('refuses a route limit counted per anything else', async (t) => {
    const dir = await tempDir(t);
    const text = (await identityConfig(dir)).replace('per: credential', 'per: source');
    const issues = await issuesOf(t, text, dir);
    assert.deepEqual(brief(issues), ['25:128 CONFIG_INVALID_VALUE routes[1].rate_limit.per']);
  });

  it(
    'refuses a rate limit on an anonymous route, where no identity exists to count',
    async (t) => {
      const text = `version: 1
listeners:
  - { name: public, zone: public, port: 8080, hostnames: [localhost] }
upstreams:
  - { id: backend, url: "http://127.0.0.1:9000" }
routes:
  - id: health
    zone: public
    methods: [GET]
    path: /health
    upstream: backend
    auth: none
    rate_limit: { rate: 1/s }
`;
      const issues = await issuesOf(t, text);
      assert.deepEqual(brief(issues), ['13:5 CONFIG_CONFLICT routes[0].rate_limit']);
    },
  );
});

describe('rate_limits mode and headers', () => {
  it('defaults to local mode without headers, and compiles shared mode', async (t) => {
    assert.deepEqual((await snapshotOf(t, BASE)).rateLimits, { mode: 'local', headers: false });
    assert.deepEqual((await snapshotOf(t, config('rate_limits: { mode: shared }\n'))).rateLimits, { mode: 'shared', headers: false });
    assert.deepEqual(brief(await issuesOf(t, config('rate_limits: { mode: global }\n'))), ['6:22 CONFIG_INVALID_VALUE rate_limits.mode']);
  });

  it('sends RateLimit headers only with the exact acknowledgement, and warns at every load', async (t) => {
    const snapshot = await snapshotOf(t, config(`rate_limits:\n  headers:\n    enabled: true\n    acknowledge: "${INSECURE_ACKS.rateLimitHeaders}"\n`));
    assert.equal(snapshot.rateLimits.headers, true);
    assert.equal(snapshot.warnings.length, 1);
    assert.match(snapshot.warnings[0]!, /gateway\.yaml:7:3 rate_limits\.headers: RateLimit headers follow an Internet-Draft and may change/);

    const missing = await issuesOf(t, config('rate_limits:\n  headers:\n    enabled: true\n'));
    assert.deepEqual(brief(missing), ['7:3 CONFIG_INVALID_TYPE rate_limits.headers.acknowledge']);
    const wrong = await issuesOf(t, config('rate_limits:\n  headers:\n    enabled: true\n    acknowledge: "yes"\n'));
    assert.deepEqual(
      wrong.map(({ line, col, path }) => `${line}:${col} ${path}`),
      ['9:18 rate_limits.headers.acknowledge'],
    );
    // There is no "off" switch to get wrong: without the section there are no headers.
    const off = await issuesOf(t, config(`rate_limits:\n  headers:\n    enabled: false\n    acknowledge: "${INSECURE_ACKS.rateLimitHeaders}"\n`));
    assert.deepEqual(brief(off), ['8:14 CONFIG_INVALID_VALUE rate_limits.headers.enabled']);
  });
});

describe('abuse', () => {
  const DEFAULT_THRESHOLD = { max: 100, windowMs: 60_000, blockMs: 300_000 };

  it('is on by default: 100 per minute, blocked five minutes', async (t) => {
    assert.deepEqual((await snapshotOf(t, BASE)).abuse, { perSource: DEFAULT_THRESHOLD, perCredential: DEFAULT_THRESHOLD });
  });

  it('compiles thresholds, and "off" in either spelling turns one off', async (t) => {
    const snapshot = await snapshotOf(t, config('abuse:\n  auth_failures_per_source: { max: 5, window: 10s, block: 1m }\n  denials_per_credential: off\n'));
    assert.deepEqual(snapshot.abuse, { perSource: { max: 5, windowMs: 10_000, blockMs: 60_000 }, perCredential: null });
    const quoted = await snapshotOf(t, config('abuse:\n  auth_failures_per_source: "off"\n'));
    assert.deepEqual(quoted.abuse, { perSource: null, perCredential: DEFAULT_THRESHOLD });
  });

  it('refuses other words, a whole-section off, and incomplete thresholds', async (t) => {
    assert.deepEqual(brief(await issuesOf(t, config('abuse:\n  auth_failures_per_source: on\n'))), ['7:29 CONFIG_INVALID_VALUE abuse.auth_failures_per_source']);
    assert.deepEqual(brief(await issuesOf(t, config('abuse:\n  denials_per_credential: false\n'))), ['7:27 CONFIG_INVALID_VALUE abuse.denials_per_credential']);
    assert.deepEqual(brief(await issuesOf(t, config('abuse: off\n'))), ['6:8 CONFIG_INVALID_TYPE abuse']);
    const partial = await issuesOf(t, config('abuse:\n  auth_failures_per_source: { max: 0, window: 1m, block: 5m }\n'));
    assert.deepEqual(brief(partial), ['7:36 CONFIG_INVALID_VALUE abuse.auth_failures_per_source.max']);
  });
});

describe('portcullis schema', () => {
  it('describes the new sections and fields', async () => {
    const { code, stdout, stderr } = await runCli(['schema']);
    assert.equal(code, 0, stderr);
    type Node = { description?: string; properties?: Record<string, Node>; items?: Node; anyOf?: Node[]; default?: unknown };
    const schema = JSON.parse(stdout) as Node;
    const top = schema.properties!;
    for (const key of ['state', 'admin', 'rate_limits', 'abuse']) assert.ok(top[key]?.description, `${key} has a description`);
    assert.deepEqual(Object.keys(top['state']!.properties!).sort(), ['driver', 'propagation_timeout', 'redis']);
    assert.ok(top['state']!.properties!['redis']!.properties!['acknowledge']!.description!.includes(INSECURE_ACKS.serveLastKnownState));
    const partner = top['partners']!.items!.properties!;
    for (const key of ['rate_limit', 'quotas', 'max_concurrent', 'source_networks']) assert.ok(partner[key]?.description, `partners[].${key}`);
    assert.ok(top['routes']!.items!.properties!['rate_limit']!.properties!['per']);
  });
});
