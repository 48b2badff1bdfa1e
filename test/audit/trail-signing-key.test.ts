// The checkpoint signing key: the operator's Ed25519 PEM, or one generated on first start
// (0600, public half next to it) and reused; any other key type is refused by name.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, SigningKeyError, loadCheckpointSigner } from '../../src/audit/signing-key.ts';
import { setLogListener } from '../../src/log.ts';

let root: string;
before(async () => {
  process.umask(0o022);
  root = await mkdtemp(join(tmpdir(), 'portcullis-trail-key-'));
  setLogListener(null, { quiet: true });
});
after(async () => {
  setLogListener(null);
  await rm(root, { recursive: true, force: true });
});

test('a generated key is written once (0600, public half 0644 next to it) and reused on the next start', async () => {
  const keyDir = join(root, 'generated', 'audit-keys');
  const first = await loadCheckpointSigner({ signingKeyPath: null, keyDir });
  assert.equal((await stat(join(keyDir, PRIVATE_KEY_FILE))).mode & 0o777, 0o600);
  assert.equal((await stat(keyDir)).mode & 0o777, 0o700);
  const publicPem = await readFile(join(keyDir, PUBLIC_KEY_FILE), 'utf8');
  assert.equal(publicPem, first.publicKeyPem);
  const spki = createPublicKey(publicPem).export({ type: 'spki', format: 'der' });
  assert.equal(first.keyId, createHash('sha256').update(spki).digest('hex').slice(0, 16));

  const second = await loadCheckpointSigner({ signingKeyPath: null, keyDir });
  assert.equal(second.keyId, first.keyId);
  const signature = Buffer.from(second.sign('message'), 'base64url');
  assert.ok(verify(null, Buffer.from('message'), publicPem, signature));
  assert.equal(verify(null, Buffer.from('other'), publicPem, signature), false);
});

test('a published public key that is not the private key\'s half is refused, not overwritten', async () => {
  const keyDir = join(root, 'mismatch');
  await loadCheckpointSigner({ signingKeyPath: null, keyDir });
  const stranger = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }) as string;
  await writeFile(join(keyDir, PUBLIC_KEY_FILE), stranger);
  await assert.rejects(loadCheckpointSigner({ signingKeyPath: null, keyDir }), /is not the public half/);
  assert.equal(await readFile(join(keyDir, PUBLIC_KEY_FILE), 'utf8'), stranger);
});

test('a configured Ed25519 key signs; nothing is generated', async () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const path = join(root, 'configured.pem');
  await writeFile(path, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  const keyDir = join(root, 'unused-keys');
  const signer = await loadCheckpointSigner({ signingKeyPath: path, keyDir });
  assert.equal(signer.publicKeyPem, publicKey.export({ type: 'spki', format: 'pem' }));
  assert.ok(verify(null, Buffer.from('m'), publicKey, Buffer.from(signer.sign('m'), 'base64url')));
  assert.equal(await stat(keyDir).catch(() => null), null);
});

test('a configured key of another type, a public key or a missing file is refused with a clear error', async () => {
  const rsa = join(root, 'rsa.pem');
  await writeFile(rsa, generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
  await assert.rejects(
    loadCheckpointSigner({ signingKeyPath: rsa, keyDir: root }),
    (error: unknown) => error instanceof SigningKeyError && /is a rsa key; checkpoints are signed with Ed25519 only/.test(error.message),
  );
  const ec = join(root, 'ec.pem');
  await writeFile(ec, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
  await assert.rejects(loadCheckpointSigner({ signingKeyPath: ec, keyDir: root }), /is a ec key/);
  const pub = join(root, 'public.pem');
  await writeFile(pub, generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }));
  await assert.rejects(loadCheckpointSigner({ signingKeyPath: pub, keyDir: root }), /is not an unencrypted PEM private key/);
  await assert.rejects(loadCheckpointSigner({ signingKeyPath: join(root, 'absent.pem'), keyDir: root }), /cannot be read/);
});
