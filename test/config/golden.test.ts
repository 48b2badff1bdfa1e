/**
 * Golden expected-error files: `golden/<name>.yaml` is loaded and its issues, formatted as
 * `portcullis validate` prints them, must equal `golden/<name>.error.txt` line for line.
 * After an intended change, review the diff of `UPDATE_GOLDEN=1 node --test test/config/golden.test.ts`.
 */
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { describe, it } from 'node:test';
import { formatIssue, loadConfig } from '../../src/config/load.ts';
import { REPO_ROOT } from './helpers.ts';

const GOLDEN_DIR = join(REPO_ROOT, 'test/config/golden');
const cases = (await readdir(GOLDEN_DIR)).filter((name) => name.endsWith('.yaml')).sort();

describe('golden expected-error files', () => {
  it('has cases', () => assert.ok(cases.length >= 3));

  for (const name of cases) {
    it(name, async () => {
      const result = await loadConfig(join(GOLDEN_DIR, name), { env: {} });
      assert.equal(result.ok, false, `${name} should be refused`);
      // The file column is the bare name, so the goldens do not depend on the working directory.
      const actual = (result.ok ? [] : result.issues).map((issue) => `${formatIssue({ ...issue, file: basename(issue.file) })}\n`).join('');
      const expectedPath = join(GOLDEN_DIR, name.replace(/\.yaml$/, '.error.txt'));
      if (process.env['UPDATE_GOLDEN'] === '1') await writeFile(expectedPath, actual);
      assert.equal(actual, await readFile(expectedPath, 'utf8'));
    });
  }
});
