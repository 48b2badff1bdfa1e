/**
 * Legacy API keys: for partners that cannot do better than a static secret.
 *
 * A key is `pcs_<key id>_<secret>`: a recognisable prefix (so secret scanners and people can
 * tell a leaked Portcullis key at a glance), a public 12-character key id (the lookup handle,
 * like a user name), and 32 random bytes in base64url. The gateway stores only the SHA-256 of
 * the whole key and its expiry; the key itself is shown once, by `portcullis apikey create`.
 *
 * A plain SHA-256 is the right hash here, not a password hash: the secret has 256 bits of
 * entropy, so there is nothing to brute-force, and a per-request key-stretching cost would be
 * an availability problem (SECURITY.md §0.1).
 */
import { createHash, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import type { CompiledCredential, CredentialIndex } from '../config/snapshot.ts';

export const API_KEY_PREFIX = 'pcs_';
export const API_KEY_ID_LENGTH = 12;
export const API_KEY_SECRET_BYTES = 32;

const KEY_ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
/** 32 bytes in unpadded base64url are 43 characters. */
const SECRET_LENGTH = Math.ceil((API_KEY_SECRET_BYTES * 8) / 6);
const API_KEY_LENGTH = API_KEY_PREFIX.length + API_KEY_ID_LENGTH + 1 + SECRET_LENGTH;
const API_KEY_FORMAT = new RegExp(`^${API_KEY_PREFIX}([a-z0-9]{${API_KEY_ID_LENGTH}})_([A-Za-z0-9_-]{${SECRET_LENGTH}})$`);

export type ApiKeyCredential = CompiledCredential & { readonly type: 'api_key' };

export interface GeneratedApiKey {
  /** The whole key: shown once, never stored. */
  readonly key: string;
  /** The public key id (goes into the configuration). */
  readonly keyId: string;
  /** SHA-256 of the whole key, lowercase hex (goes into the configuration). */
  readonly sha256: string;
}

export type ApiKeyVerification =
  | { readonly ok: true; readonly credential: ApiKeyCredential }
  | { readonly ok: false; readonly reason: 'api_key.invalid' | 'api_key.expired'; readonly detail: string };

export function generateApiKey(): GeneratedApiKey {
  let keyId = '';
  // randomInt is uniform over the alphabet (no modulo bias).
  for (let i = 0; i < API_KEY_ID_LENGTH; i++) keyId += KEY_ID_ALPHABET[randomInt(KEY_ID_ALPHABET.length)];
  const key = `${API_KEY_PREFIX}${keyId}_${randomBytes(API_KEY_SECRET_BYTES).toString('base64url')}`;
  return { key, keyId, sha256: apiKeySha256(key).toString('hex') };
}

export function apiKeySha256(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

/**
 * Compared against when the key id is unknown, so that an unknown id and a wrong secret take
 * the same path (hash, then constant-time compare): timing tells an attacker nothing about
 * which key ids exist.
 */
const NO_KEY_DIGEST = Buffer.alloc(32);

/**
 * Checks a presented key against the configured keys: strict format, lookup by key id,
 * constant-time comparison of SHA-256 digests, then expiry — in that order, so an expired key
 * is reported as expired only to someone who holds it. Details never contain the key.
 */
export function verifyApiKey(presented: string, index: CredentialIndex['apiKeys'], now: number): ApiKeyVerification {
  const keyId = parseKeyId(presented);
  if (keyId === null) return { ok: false, reason: 'api_key.invalid', detail: 'not a Portcullis API key (expected pcs_<12-character id>_<43-character secret>)' };
  const credential = index.get(keyId);
  const expected = credential !== undefined && credential.sha256.length === NO_KEY_DIGEST.length ? credential.sha256 : NO_KEY_DIGEST;
  const matches = timingSafeEqual(apiKeySha256(presented), expected);
  if (credential === undefined) return { ok: false, reason: 'api_key.invalid', detail: `no API key with id ${keyId} is configured` };
  if (!matches || expected === NO_KEY_DIGEST) return { ok: false, reason: 'api_key.invalid', detail: `the secret of API key ${keyId} does not match` };
  if (now >= credential.expiresAt) {
    return { ok: false, reason: 'api_key.expired', detail: `API key ${keyId} expired at ${new Date(credential.expiresAt).toISOString()}` };
  }
  return { ok: true, credential };
}

/** The key id of a well-formed key, or null. Only the public key id ever leaves this function. */
function parseKeyId(presented: string): string | null {
  if (presented.length !== API_KEY_LENGTH) return null;
  const match = API_KEY_FORMAT.exec(presented);
  if (match === null) return null;
  // Strict base64url (RFC 4648 §3.5): 43 characters carry 258 bits, so the last character's
  // two spare bits must be zero; otherwise several strings would name the same secret.
  const secret = match[2]!;
  if (Buffer.from(secret, 'base64url').toString('base64url') !== secret) return null;
  return match[1]!;
}
