import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listSegments, segmentsByStream } from '../../src/audit/chain-format.ts';

test('segmentsByStream: every stream\'s segments from one listing, oldest first, the same as listSegments per stream', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-segments-'));
  try {
    await mkdir(join(dir, 'partners'));
    const files = [
      'combined.jsonl',
      'combined.20261124T000000.000Z.jsonl',
      'combined.20261123T165312.123Z-1.jsonl',
      'combined.20261123T165312.123Z.jsonl',
      'notes.txt',
      'partners/acme.jsonl',
      'partners/acme.20261123T000000.000Z.jsonl',
      'partners/globex.20261122T000000.000Z.jsonl', // a partner whose live file is gone
      'partners/acme.20261123T000000.000Z.jsonl.tmp',
      'partners/initech.jsonl',
    ];
    for (const file of files) await writeFile(join(dir, file), '');
    const all = await segmentsByStream(dir);
    assert.deepEqual(Object.fromEntries(all), {
      combined: ['combined.20261123T165312.123Z.jsonl', 'combined.20261123T165312.123Z-1.jsonl', 'combined.20261124T000000.000Z.jsonl'],
      'partner/acme': ['partners/acme.20261123T000000.000Z.jsonl'],
      'partner/globex': ['partners/globex.20261122T000000.000Z.jsonl'],
    });
    for (const stream of ['combined', 'partner/acme', 'partner/globex', 'partner/initech']) {
      assert.deepEqual(all.get(stream) ?? [], await listSegments(dir, stream), stream);
    }
    assert.deepEqual(Object.fromEntries(await segmentsByStream(join(dir, 'missing'))), {});
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
