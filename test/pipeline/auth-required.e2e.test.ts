// DESIGN.md bar: no configuration path forwards an unauthenticated request to a route that
// requires authentication. Random (seeded) configurations are loaded into a real gateway and
// probed with random requests; every request that reached the upstream must have matched a
// route with `auth: none`, and such routes can only exist in the public zone.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'undici';
import { startHarness } from '../helpers/harness.ts';
import { accessToken, generateTestKey, jwks } from '../helpers/tokens.ts';
import type { Harness } from '../helpers/harness.ts';
import { loadConfig } from '../../src/config/load.ts';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Mulberry32: a small seeded generator, so a failure can be replayed from its seed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ZONES = ['public', 'partner', 'internal'] as const;
const SEGMENTS = ['a', 'b', 'orders', '{id}', 'items', '{rest*}'];
const METHODS = ['GET', 'POST', 'PUT', 'DELETE'];
const HOSTS = ['one.test', 'two.test'];

interface GeneratedRoute {
  id: string;
  zone: (typeof ZONES)[number];
  path: string;
  methods: string[];
  auth: 'required' | 'none' | undefined;
}

function generate(rand: () => number, seed: number): { yaml: string; routes: GeneratedRoute[] } {
  const pick = <T,>(list: readonly T[]): T => list[Math.floor(rand() * list.length)]!;
  const routes: GeneratedRoute[] = [];
  const count = 1 + Math.floor(rand() * 6);
  for (let i = 0; i < count; i++) {
    const depth = 1 + Math.floor(rand() * 3);
    const segments = Array.from({ length: depth }, (_, index) => {
      const segment = pick(SEGMENTS);
      if (segment === '{rest*}') return index < depth - 1 ? 'x' : `{rest${i}*}`;
      return segment === '{id}' ? `{p${i}x${index}}` : segment;
    });
    const zone = pick(ZONES);
    // `auth: none` is only valid in the public zone; omitted means required.
    const auth = zone === 'public' ? pick(['required', 'none', undefined] as const) : pick(['required', undefined] as const);
    const methods = [...new Set([pick(METHODS), pick(METHODS)])];
    routes.push({ id: `r${seed}-${i}`, zone, path: '/' + segments.join('/'), methods, auth });
  }
  const routeYaml = routes
    .map(
      (route) =>
        `  - id: ${route.id}\n    zone: ${route.zone}\n    methods: [${route.methods.join(', ')}]\n    path: ${route.path}\n    upstream: sample\n` +
        (route.auth === 'none' ? '    auth: none\n' : `    api: orders\n${route.auth ? `    auth: ${route.auth}\n` : ''}`),
    )
    .join('');
  return {
    routes,
    yaml: `version: 1
listeners:
${ZONES.map((zone) => `  - name: ${zone}\n    zone: ${zone}\n    port: 0\n    hostnames: [${HOSTS.join(', ')}]\n`).join('')}upstreams:
  - id: sample
    url: {{UPSTREAM}}
issuers:
  - id: idp
    issuer: https://idp.example.test
    jwks_file: idp.jwks.json
    algorithms: [ES256]
apis:
  - id: orders
    audience: https://api.example.test/orders
routes:
${routeYaml}`,
  };
}

let h: Harness;
const agent = new Agent({ connections: 8 });
before(async () => {
  // A real issuer key set: tokens below are forged with another key, as an attacker would.
  h = await startHarness(generate(random(1), 0).yaml, { files: { 'idp.jwks.json': jwks(generateTestKey('ES256')) } });
});
after(async () => {
  await agent.close();
  await h?.close();
});

test('auth: none outside the public zone is refused by validation', async () => {
  const path = join(h.dir, 'partner-open.yaml');
  await writeFile(
    path,
    `version: 1\nlisteners:\n  - name: p\n    zone: partner\n    port: 0\n    hostnames: [p.test]\nupstreams:\n  - id: u\n    url: http://127.0.0.1:1\nroutes:\n  - id: open\n    zone: partner\n    methods: [GET]\n    path: /open\n    upstream: u\n    auth: none\n`,
  );
  const result = await loadConfig(path);
  assert.equal(result.ok, false);
  if (!result.ok) assert.ok(result.issues.some((issue) => issue.code === 'CONFIG_CONFLICT' && issue.path === 'routes[0].auth'), JSON.stringify(result.issues));
});

test('across random configurations and requests, only auth: none routes are ever forwarded without a credential', async () => {
  let forwarded = 0;
  let probes = 0;
  const attacker = generateTestKey('ES256');
  for (let seed = 1; seed <= 25; seed++) {
    const rand = random(seed);
    const { yaml, routes } = generate(rand, seed);
    await h.writeConfig(yaml);
    const reloaded = await h.gateway.reload();
    if (!reloaded.ok) {
      // Random routes can conflict (same template twice): such a config never serves at all.
      assert.ok(reloaded.issues.every((issue) => issue.code === 'CONFIG_CONFLICT'), `seed ${seed}: ${JSON.stringify(reloaded.issues)}`);
      continue;
    }
    const open = new Set(routes.filter((route) => route.auth === 'none').map((route) => route.id));
    const seenBefore = h.upstream.seen.length;
    const recordsBefore = (await h.records()).length;
    for (let i = 0; i < 30; i++) {
      const route = routes[Math.floor(rand() * routes.length)]!;
      const zone = ZONES[Math.floor(rand() * ZONES.length)]!;
      const path = route.path.replace(/\{[a-z0-9]+\*?\}/g, () => (rand() < 0.5 ? 'v1' : 'v2/x'));
      const method = METHODS[Math.floor(rand() * METHODS.length)]!;
      const headers: Record<string, string> = { host: HOSTS[Math.floor(rand() * HOSTS.length)]! };
      const spoof = rand();
      if (spoof < 0.2) headers['authorization'] = `Bearer ${accessToken(attacker, { iss: 'https://idp.example.test', aud: 'https://api.example.test/orders', clientId: 'acme', scope: 'orders:read' })}`;
      else if (spoof < 0.3) headers['x-partner-id'] = 'acme';
      else if (spoof < 0.4) headers['authorization'] = 'Basic YWRtaW46YWRtaW4=';
      const response = await request(`${h.url(zone)}${path}`, { method, headers, dispatcher: agent, body: method === 'POST' || method === 'PUT' ? '{}' : null });
      await response.body.dump();
      probes++;
    }
    const records = (await h.waitForRecords(recordsBefore + 30)).slice(recordsBefore);
    assert.equal(records.length, 30, `seed ${seed}: one record per probe`);
    for (const record of records) {
      if (record.portcullis.upstream.called) {
        assert.ok(open.has(record.portcullis.route), `seed ${seed}: forwarded on ${record.portcullis.route}, which requires authentication`);
        assert.equal(record.portcullis.zone, 'public');
        forwarded++;
      } else if (record.portcullis.route !== null && !open.has(record.portcullis.route) && record.event.reason.startsWith('token.')) {
        assert.equal(record.http.response.status_code, 401);
      }
    }
    const calledRecords = records.filter((record) => record.portcullis.upstream.called).length;
    assert.equal(h.upstream.seen.length - seenBefore, calledRecords, `seed ${seed}: the upstream saw exactly the allowed requests`);
  }
  assert.ok(probes >= 300, `${probes} probes`);
  assert.ok(forwarded > 0, 'some open routes were exercised, so the check can fail');
});
