#!/usr/bin/env node
// Entry point of the `portcullis` bin. Portcullis runs on Node 24 (TypeScript type stripping,
// node:sqlite). When this file is started by an older system Node (e.g. `npx portcullis` on a
// machine with Node 20), it re-executes itself with the Node 24 that the `node` npm package
// installed into the project, forwarding arguments, signals and the exit code.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const major = Number(process.versions.node.split('.')[0]);

if (major >= 24 && process.features.typescript) {
  const { runCli } = await import('../src/cli/main.ts');
  runCli();
} else {
  const node24 = join(root, 'node_modules', 'node', 'bin', 'node');
  if (!existsSync(node24)) {
    process.stderr.write(`portcullis needs Node 24 or later (this is ${process.version}); run "npm install" in ${root} first.\n`);
    process.exit(1);
  }
  const child = spawn(node24, [join(root, 'src', 'cli', 'main.ts'), ...process.argv.slice(2)], { stdio: 'inherit' });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => {
    if (signal) process.kill(process.pid, signal);
    else process.exit(code ?? 1);
  });
}
