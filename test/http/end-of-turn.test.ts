import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { createServer, connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { atEndOfTurn } from '../../src/http/end-of-turn.ts';

test('tasks queued by the I/O callbacks of one turn run after all of them, together and in order', async () => {
  // Two sockets become readable in the same turn: both data callbacks run before any task does.
  const events: string[] = [];
  const server = createServer((socket) => {
    socket.on('data', (data) => {
      events.push(`read ${data}`);
      atEndOfTurn(() => events.push(`task ${data}`));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const clients = [connect(port, '127.0.0.1'), connect(port, '127.0.0.1')];
  await Promise.all(clients.map((client) => once(client, 'connect')));
  // Let the server accept both before anything is sent.
  await new Promise((resolve) => setTimeout(resolve, 50));
  clients[0]!.write('a');
  clients[1]!.write('b');
  await new Promise((resolve) => setTimeout(resolve, 50));
  for (const client of clients) client.destroy();
  server.close();
  assert.deepEqual(events.slice().sort(), ['read a', 'read b', 'task a', 'task b']);
  // Both reads come before both tasks; tasks keep the order they were queued in.
  assert.deepEqual(events.slice(0, 2).map((event) => event.split(' ')[0]), ['read', 'read']);
  assert.deepEqual(events.slice(2), events.slice(0, 2).map((event) => event.replace('read', 'task')));
});

test('a task waits for no other event: it runs before a timer due now', async () => {
  const events: string[] = [];
  await new Promise<void>((resolve) => {
    // From an I/O callback, the check phase (setImmediate) comes before the next turn's timers.
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      setTimeout(() => {
        events.push('timer');
        server.close();
        resolve();
      }, 0);
      atEndOfTurn(() => events.push('task'));
    });
  });
  assert.deepEqual(events, ['task', 'timer']);
});

test('a task queued by a running task goes to the next turn, and every task runs', async () => {
  const events: string[] = [];
  await new Promise<void>((resolve) => {
    atEndOfTurn(() => {
      events.push('first');
      atEndOfTurn(() => {
        events.push('queued by first');
        resolve();
      });
    });
    atEndOfTurn(() => events.push('second'));
  });
  assert.deepEqual(events, ['first', 'second', 'queued by first']);
});

test('a task that throws does not keep the rest of its turn from running, and the error is not swallowed', async () => {
  const script = `
    import { atEndOfTurn } from ${JSON.stringify(join(import.meta.dirname, '..', '..', 'src', 'http', 'end-of-turn.ts'))};
    atEndOfTurn(() => process.stdout.write('one '));
    atEndOfTurn(() => { throw new Error('task failed'); });
    atEndOfTurn(() => process.stdout.write('three '));
  `;
  const run = promisify(execFile)(process.execPath, ['--input-type=module', '-e', script]);
  const error = await run.then(
    () => assert.fail('the process should have exited with the uncaught error'),
    (failure: { code: number; stdout: string; stderr: string }) => failure,
  );
  assert.equal(error.stdout, 'one three ');
  assert.equal(error.code, 1);
  assert.match(error.stderr, /task failed/);
});
