// An independent reading of one stream file, straight from chain-format.ts: every line parses,
// seq runs 1, 2, 3 … without gaps, prev is the previous hash, each hash recomputes with
// lineHash, and each checkpoint's signature verifies with the given public key.
import assert from 'node:assert/strict';
import { verify } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { CHECKPOINT_ACTION, GENESIS_HASH, checkpointMessage, lineHash } from '../../src/audit/chain-format.ts';

export interface Line {
  '@timestamp'?: string;
  event?: { action?: string };
  portcullis: {
    chain: { stream: string; seq: number; prev: string; hash: string };
    checkpoint?: { key_id: string; alg: string; signature: string };
    recovered?: { discarded_bytes: number };
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

export async function readStream(path: string): Promise<Line[]> {
  const text = await readFile(path, 'utf8');
  assert.ok(text.endsWith('\n'), `${path} ends with a newline`);
  return text.slice(0, -1).split('\n').map((line) => JSON.parse(line) as Line);
}

/** Checks the whole chain of `lines`; returns the checkpoints it saw. */
export function assertChain(lines: readonly Line[], stream: string, publicKeyPem: string, keyId: string): Line[] {
  let prev = GENESIS_HASH;
  const checkpoints: Line[] = [];
  lines.forEach((line, index) => {
    const chain = line.portcullis.chain;
    assert.equal(chain.stream, stream, `line ${index + 1} stream`);
    assert.equal(chain.seq, index + 1, `line ${index + 1} seq`);
    assert.equal(chain.prev, prev, `line ${index + 1} prev`);
    const { hash, ...withoutHash } = chain;
    assert.equal(lineHash(chain.prev, { ...line, portcullis: { ...line.portcullis, chain: withoutHash } }), hash, `line ${index + 1} hash`);
    if (line.event?.action === CHECKPOINT_ACTION) {
      const checkpoint = line.portcullis.checkpoint!;
      assert.equal(checkpoint.alg, 'Ed25519');
      assert.equal(checkpoint.key_id, keyId);
      const message = Buffer.from(checkpointMessage(stream, chain.seq, chain.prev));
      assert.ok(verify(null, message, publicKeyPem, Buffer.from(checkpoint.signature, 'base64url')), `checkpoint at seq ${chain.seq} verifies`);
      checkpoints.push(line);
    }
    prev = hash;
  });
  return checkpoints;
}

export function records(lines: readonly Line[]): Line[] {
  return lines.filter((line) => line.event?.action === 'gateway.request');
}
