// The error catalogue and docs/errors.md must list the same entries (STYLE.md item 1).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CONFIG_ERRORS, PROBLEMS, REASONS } from '../src/errors.ts';

const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');

function tableRows(heading: string): string[][] {
  const section = doc.split(/^## /m).find((part) => part.startsWith(heading));
  assert.ok(section, `docs/errors.md has a "## ${heading}" section`);
  return section
    .split('\n')
    .filter((line) => line.startsWith('| ') && !line.startsWith('|---'))
    .slice(1)
    .map((line) => line.split('|').slice(1, -1).map((cell) => cell.trim().replace(/^`|`$/g, '')));
}

test('every problem code is documented with its status and title, and nothing else is', () => {
  const rows = tableRows('Problem codes');
  const documented = new Map(rows.map(([code, status, title]) => [code, { status: Number(status), title }]));
  assert.deepEqual([...documented.keys()].sort(), Object.keys(PROBLEMS).sort());
  for (const [code, definition] of Object.entries(PROBLEMS)) {
    assert.deepEqual(documented.get(code), { status: definition.status, title: definition.title }, code);
  }
});

test('every reason is documented with the problem code it maps to, and nothing else is', () => {
  const rows = tableRows('Reasons');
  const documented = new Map(rows.map(([reason, code]) => [reason, code === '—' ? null : code]));
  assert.deepEqual([...documented.keys()].sort(), Object.keys(REASONS).sort());
  for (const [reason, code] of Object.entries(REASONS)) assert.equal(documented.get(reason), code, reason);
});

test('every configuration error code is documented, and nothing else is', () => {
  const rows = tableRows('Configuration error codes');
  const documented = new Map(rows.map(([code, meaning]) => [code, meaning]));
  assert.deepEqual([...documented.keys()].sort(), Object.keys(CONFIG_ERRORS).sort());
  for (const [code, meaning] of Object.entries(CONFIG_ERRORS)) assert.equal(documented.get(code), meaning, code);
});

test('gateway refusals and upstream failures never share a problem code', () => {
  const upstreamCodes = new Set(Object.entries(REASONS).filter(([reason]) => reason.startsWith('upstream.')).map(([, code]) => code));
  for (const [reason, code] of Object.entries(REASONS)) {
    if (!reason.startsWith('upstream.') && code !== null) assert.ok(!upstreamCodes.has(code), `${reason} shares ${code}`);
  }
});
