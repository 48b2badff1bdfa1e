// Hot reload: a good config swaps atomically under load with no failed request; a bad one is
// refused with precise errors and the old config keeps serving; a request keeps the snapshot
// it started on; a change in the config folder is picked up by the watcher.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'undici';
import { startHarness } from '../helpers/harness.ts';
import type { Harness } from '../helpers/harness.ts';

const config = (extraRoute = '', upstreamUrl = '{{UPSTREAM}}') => `
version: 1
listeners:
  - name: public
    zone: public
    port: 0
    hostnames: [localhost]
upstreams:
  - id: sample
    url: ${upstreamUrl}
routes:
  - id: status
    zone: public
    methods: [GET]
    path: /status
    upstream: sample
    auth: none
  - id: slow
    zone: public
    methods: [GET]
    path: /slow/{ms}
    upstream: sample
    auth: none
${extraRoute}`;

const NEW_ROUTE = `  - id: fresh
    zone: public
    methods: [GET]
    path: /fresh
    upstream: sample
    auth: none
`;

let h: Harness;
const agent = new Agent({ connections: 16 });

before(async () => {
  h = await startHarness(config(), { watch: true });
});
after(async () => {
  await agent.close();
  await h?.close();
});

async function status(path: string): Promise<number> {
  const response = await request(`${h.url('public')}${path}`, { headers: { host: 'localhost' }, dispatcher: agent });
  await response.body.dump();
  return response.statusCode;
}

test('good and bad reloads under load: no failed request, the good one applies, the bad one changes nothing', async () => {
  let stop = false;
  const failures: string[] = [];
  let completed = 0;
  const worker = async (): Promise<void> => {
    while (!stop) {
      try {
        const code = await status('/status');
        if (code !== 200) failures.push(`status ${code}`);
        completed++;
      } catch (error) {
        failures.push(String(error));
      }
    }
  };
  const workers = Array.from({ length: 8 }, worker);
  const hashBefore = h.gateway.snapshot.hash;

  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(await status('/fresh'), 404);
  await h.writeConfig(config(NEW_ROUTE));
  const good = await h.gateway.reload();
  assert.equal(good.ok, true);
  assert.equal(await status('/fresh'), 200);
  const hashAfterGood = h.gateway.snapshot.hash;
  assert.notEqual(hashAfterGood, hashBefore);

  await new Promise((resolve) => setTimeout(resolve, 200));
  await h.writeConfig(config(NEW_ROUTE).replace('port: 0', 'port: 70000').replace('upstream: sample\n    auth: none\n', 'upstream: nowhere\n    auth: none\n'));
  const bad = await h.gateway.reload();
  assert.equal(bad.ok, false);
  if (!bad.ok) {
    assert.ok(bad.issues.some((issue) => issue.code === 'CONFIG_INVALID_VALUE' && issue.path === 'listeners[0].port'), JSON.stringify(bad.issues));
    assert.ok(bad.issues.every((issue) => issue.line > 0 && issue.col > 0));
  }
  assert.equal(h.gateway.snapshot.hash, hashAfterGood, 'the running config is untouched');
  assert.equal(await status('/fresh'), 200);
  assert.ok(h.logLines.some((line) => line.event === 'config.reload_refused' && /gateway\.yaml:\d+:\d+ CONFIG_/.test(String(line['issue']))));

  await new Promise((resolve) => setTimeout(resolve, 200));
  stop = true;
  await Promise.all(workers);
  assert.deepEqual(failures, []);
  assert.ok(completed > 50, `${completed} requests completed under reload`);
  // Restore a good file so the watcher test below starts from a known state.
  await h.writeConfig(config(NEW_ROUTE));
  await h.gateway.reload();
});

test('a request keeps the snapshot it started on, even when a reload removes its route and upstream', async () => {
  const hashBefore = h.gateway.snapshot.hash;
  const slow = request(`${h.url('public')}/slow/600`, { headers: { host: 'localhost' }, dispatcher: agent });
  await new Promise((resolve) => setTimeout(resolve, 150));
  // Remove /slow and point the upstream elsewhere (a closed port): the old pool must drain.
  await h.writeConfig(config(NEW_ROUTE, 'http://127.0.0.1:9').replace(/  - id: slow[\s\S]*?auth: none\n/, ''));
  const result = await h.gateway.reload();
  assert.equal(result.ok, true);
  const response = await slow;
  assert.equal(response.statusCode, 200);
  await response.body.dump();
  assert.equal(await status('/slow/1'), 404);
  const record = (await h.waitForRecords(1)).find((entry) => entry.url.path === '/slow/600' && entry.event.reason === 'allowed');
  assert.ok(record, 'the in-flight request was recorded as allowed');
  assert.equal(record.portcullis.config_hash, hashBefore);
  await h.writeConfig(config(NEW_ROUTE));
  assert.equal((await h.gateway.reload()).ok, true);
});

test('a change in the config folder is reloaded by the watcher', async () => {
  assert.equal(await status('/watched'), 404);
  await h.writeConfig(config(NEW_ROUTE + NEW_ROUTE.replaceAll('fresh', 'watched')));
  const deadline = Date.now() + 5000;
  let code = 404;
  while (Date.now() < deadline && code !== 200) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    code = await status('/watched');
  }
  assert.equal(code, 200, JSON.stringify(h.logLines.slice(-5)));
  const reloaded = h.logLines.find((line) => line.event === 'config.reloaded');
  assert.ok(reloaded);
  // How long the reload took, from its start to the swap.
  assert.ok(Number.isInteger(reloaded['duration_ms']) && (reloaded['duration_ms'] as number) >= 0, JSON.stringify(reloaded));
});
