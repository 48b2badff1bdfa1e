/**
 * The key that signs audit checkpoints: Ed25519 (RFC 8032), either the operator's PEM file or
 * one generated on first start and reused afterwards, so checkpoints of every run verify with
 * the same `audit-signing.pub`.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { link, mkdir, open, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { log } from '../log.ts';

export const PRIVATE_KEY_FILE = 'audit-signing.key';
export const PUBLIC_KEY_FILE = 'audit-signing.pub';

export interface CheckpointSigner {
  /** First 16 hex digits of the SHA-256 of the public key's SPKI DER. */
  readonly keyId: string;
  readonly publicKeyPem: string;
  /** Ed25519 signature of `message`, base64url (RFC 4648 §5). */
  sign(message: string): string;
}

export class SigningKeyError extends Error {
  override readonly name = 'SigningKeyError';
}

export async function loadCheckpointSigner(options: { signingKeyPath: string | null; keyDir: string }): Promise<CheckpointSigner> {
  const privateKey =
    options.signingKeyPath !== null ? await readConfiguredKey(options.signingKeyPath) : await loadOrGenerateKey(options.keyDir);
  return signerFor(privateKey);
}

export function signerFor(privateKey: KeyObject): CheckpointSigner {
  const publicKey = createPublicKey(privateKey);
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  return {
    keyId: createHash('sha256').update(spki).digest('hex').slice(0, 16),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }) as string,
    // Ed25519 hashes internally (RFC 8032 §5.1.6): Node takes `null` as the digest for it.
    sign: (message) => sign(null, Buffer.from(message, 'utf8'), privateKey).toString('base64url'),
  };
}

async function readConfiguredKey(path: string): Promise<KeyObject> {
  let pem: string;
  try {
    pem = await readFile(path, 'utf8');
  } catch (error) {
    throw new SigningKeyError(`audit signing key ${path} cannot be read: ${(error as Error).message}`);
  }
  return parseEd25519PrivateKey(pem, path);
}

function parseEd25519PrivateKey(pem: string, path: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch (error) {
    throw new SigningKeyError(`audit signing key ${path} is not an unencrypted PEM private key: ${(error as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new SigningKeyError(
      `audit signing key ${path} is a ${key.asymmetricKeyType ?? 'unknown'} key; checkpoints are signed with Ed25519 only ` +
        '(create one with `openssl genpkey -algorithm ed25519`)',
    );
  }
  return key;
}

/**
 * The generated key: created once with mode 0600 in a 0700 folder. It is written to a temporary
 * file and linked into place, so a crash never leaves a half-written key behind and two processes
 * starting together end up with the same key (the second link fails, and it reads the first).
 */
async function loadOrGenerateKey(keyDir: string): Promise<KeyObject> {
  const privatePath = join(keyDir, PRIVATE_KEY_FILE);
  const publicPath = join(keyDir, PUBLIC_KEY_FILE);
  await mkdir(keyDir, { recursive: true, mode: 0o700 });
  let privateKey: KeyObject;
  const existing = await readIfExists(privatePath);
  if (existing !== null) {
    privateKey = parseEd25519PrivateKey(existing, privatePath);
    const mode = (await stat(privatePath)).mode;
    if ((mode & 0o077) !== 0) log('warn', 'audit.signing_key_exposed', { path: privatePath, mode: (mode & 0o777).toString(8) });
  } else {
    const generated = generateKeyPairSync('ed25519').privateKey;
    const pem = generated.export({ type: 'pkcs8', format: 'pem' }) as string;
    await writeDurably(privatePath, pem, 0o600);
    // Whoever linked first wins; read back what is in place.
    privateKey = parseEd25519PrivateKey(await readFile(privatePath, 'utf8'), privatePath);
    log('info', 'audit.signing_key_generated', { path: privatePath });
  }
  const publicPem = createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }) as string;
  const publishedPem = await readIfExists(publicPath);
  if (publishedPem === null) {
    await writeDurably(publicPath, publicPem, 0o644);
  } else if (publishedPem.trim() !== publicPem.trim()) {
    // Refuse rather than overwrite: verifiers trust this file, so a mismatch needs a human.
    throw new SigningKeyError(`${publicPath} is not the public half of ${privatePath}; remove it to have it written again`);
  }
  return privateKey;
}

async function readIfExists(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

/** Writes `text` to `path` only if it does not exist yet, never exposing a partial file there. */
async function writeDurably(path: string, text: string, mode: number): Promise<void> {
  const temporary = `${path}.${process.pid}.tmp`;
  const handle = await open(temporary, 'wx', mode);
  try {
    await handle.writeFile(text, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await link(temporary, path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  } finally {
    await unlink(temporary);
  }
}
