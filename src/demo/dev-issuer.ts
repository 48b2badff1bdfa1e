/**
 * The demo's stand-in for a partner's identity provider: one ES256 signing key kept in the demo
 * data dir, its public JWKS (which `examples/demo.yaml` trusts through `jwks_file`), and short-lived
 * RFC 9068 access tokens signed with it.
 *
 * There is no token service yet, so the demo mints the tokens it prints. Nothing here is for
 * production: the private key sits on disk next to the demo's other throwaway keys.
 *
 * Files (created on first start, reused afterwards while they are consistent):
 *   dev-issuer.key        the private key, PKCS#8 PEM, mode 0600
 *   dev-issuer.jwks.json  {"keys":[{kty,crv,x,y,kid,alg:"ES256",use:"sig"}]}, mode 0644
 */
import { createPrivateKey, createPublicKey, generateKeyPair, randomUUID, type KeyObject } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { isDeepStrictEqual, promisify } from 'node:util';
import { SignJWT, calculateJwkThumbprint } from 'jose';

/** The `iss` of every demo token; `examples/demo.yaml` names the same value. */
export const DEV_ISSUER = 'https://issuer.portcullis.localhost/demo';

/** File names inside the issuer's directory. */
export const DEV_ISSUER_FILES = {
  privateKey: 'dev-issuer.key',
  jwks: 'dev-issuer.jwks.json',
} as const;

/**
 * Longest lifetime of a demo token. RFC 9068 leaves it to the issuer; ECOSYSTEM.md §4.7 asks for
 * 5–15 minutes, so a token copied out of a terminal stops working soon.
 */
export const DEV_TOKEN_MAX_LIFETIME_SECONDS = 900;

const ALGORITHM = 'ES256';
/** RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`. */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;

export interface MintOptions {
  /** The partner credential's client id: both `client_id` and `sub` (RFC 9068 §2.2, no resource owner). */
  readonly clientId: string;
  /** Scope tokens; space-joined into `scope` (RFC 9068 §2.2.3). Omitted from the token when empty. */
  readonly scopes: readonly string[];
  /** The API's resource identifier, the token's only `aud`. */
  readonly audience: string;
  /** Seconds from now to `exp`; 1 to 900, default 900. */
  readonly lifetimeSeconds?: number;
}

export interface DevIssuer {
  /** `iss` of the tokens. */
  readonly issuer: string;
  /** `kid` of the signing key: its RFC 7638 JWK thumbprint. */
  readonly kid: string;
  readonly paths: { readonly privateKey: string; readonly jwks: string };
  /** True when the key was found on disk, false when it was created now. */
  readonly reused: boolean;
  /** Why an existing key was not reused (absent when there was none, or it was reused). */
  readonly replacedBecause?: string;
  mintAccessToken(options: MintOptions): Promise<string>;
}

export interface DevIssuerOptions {
  /** Clock for `iat`/`exp`, in ms since the epoch. Default `Date.now`. */
  readonly now?: () => number;
}

type KeyCheck = { readonly usable: true; readonly privateKey: KeyObject; readonly kid: string } | { readonly usable: false; readonly reason: string; readonly missing: boolean };

/**
 * Reuses the signing key in `dir` when both files are present, the key is a P-256 private key
 * readable by its owner only, and the JWKS publishes exactly that key; otherwise creates a new key
 * pair and writes both files. `dir` is created 0700 if missing.
 */
export async function loadOrCreateDevIssuer(dir: string, options: DevIssuerOptions = {}): Promise<DevIssuer> {
  const absolute = resolve(dir);
  const paths = { privateKey: join(absolute, DEV_ISSUER_FILES.privateKey), jwks: join(absolute, DEV_ISSUER_FILES.jwks) };
  const check = await checkDevIssuer(paths);
  let privateKey: KeyObject;
  let kid: string;
  if (check.usable) {
    ({ privateKey, kid } = check);
  } else {
    privateKey = (await promisify(generateKeyPair)('ec', { namedCurve: 'P-256' })).privateKey;
    kid = await thumbprint(privateKey);
    await mkdir(absolute, { recursive: true, mode: 0o700 });
    // Key first: a crash between the two writes leaves a JWKS that no longer matches, which the
    // next start detects and repairs, rather than a published key whose private half is lost.
    await writeAtomically(paths.privateKey, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 0o600);
    await writeAtomically(paths.jwks, `${JSON.stringify(await jwksOf(privateKey, kid), null, 2)}\n`, 0o644);
  }
  const now = options.now ?? Date.now;
  return {
    issuer: DEV_ISSUER,
    kid,
    paths,
    reused: check.usable,
    ...(!check.usable && !check.missing ? { replacedBecause: check.reason } : {}),
    mintAccessToken: (mint) => mintAccessToken(privateKey, kid, now, mint),
  };
}

/** Signs an RFC 9068 access token; throws a TypeError or RangeError naming the bad option. */
async function mintAccessToken(privateKey: KeyObject, kid: string, now: () => number, options: MintOptions): Promise<string> {
  const { clientId, audience, scopes } = options;
  const lifetime = options.lifetimeSeconds ?? DEV_TOKEN_MAX_LIFETIME_SECONDS;
  if (typeof clientId !== 'string' || clientId === '') throw new TypeError('mintAccessToken: clientId must be a non-empty string');
  if (typeof audience !== 'string' || audience === '') throw new TypeError('mintAccessToken: audience must be a non-empty string');
  const badScope = scopes.find((scope) => typeof scope !== 'string' || !SCOPE_TOKEN.test(scope));
  if (badScope !== undefined) throw new TypeError(`mintAccessToken: ${JSON.stringify(badScope)} is not an RFC 6749 §3.3 scope token`);
  if (!Number.isInteger(lifetime) || lifetime < 1 || lifetime > DEV_TOKEN_MAX_LIFETIME_SECONDS) {
    throw new RangeError(`mintAccessToken: lifetimeSeconds must be an integer from 1 to ${DEV_TOKEN_MAX_LIFETIME_SECONDS}, got ${lifetime}`);
  }
  const issuedAt = Math.floor(now() / 1000);
  // RFC 9068 §2.2: iss, exp, aud, sub, client_id, iat and jti are required; with no resource
  // owner (client credentials) `sub` identifies the client. §2.2.3: `scope` is space-delimited.
  const claims: Record<string, string> = { client_id: clientId };
  const uniqueScopes = [...new Set(scopes)];
  if (uniqueScopes.length > 0) claims['scope'] = uniqueScopes.join(' ');
  return new SignJWT(claims)
    // RFC 9068 §2.1: `typ` is `at+jwt`, so the token cannot pass for an ID token or any other JWT.
    .setProtectedHeader({ alg: ALGORITHM, typ: 'at+jwt', kid })
    .setIssuer(DEV_ISSUER)
    .setSubject(clientId)
    .setAudience(audience)
    .setIssuedAt(issuedAt)
    .setExpirationTime(issuedAt + lifetime)
    .setJti(randomUUID())
    .sign(privateKey);
}

async function checkDevIssuer(paths: { privateKey: string; jwks: string }): Promise<KeyCheck> {
  const keyPem = await readIfPresent(paths.privateKey);
  const jwksText = await readIfPresent(paths.jwks);
  if (keyPem === null) return { usable: false, reason: `${DEV_ISSUER_FILES.privateKey} is missing`, missing: true };
  if (jwksText === null) return { usable: false, reason: `${DEV_ISSUER_FILES.jwks} is missing`, missing: false };
  // A signing key others can read may have been copied: anyone holding it can mint tokens the
  // demo gateway accepts. Replace it rather than trust it (POSIX modes only).
  if (process.platform !== 'win32') {
    const { mode } = await stat(paths.privateKey);
    if ((mode & 0o077) !== 0) {
      return { usable: false, reason: `${DEV_ISSUER_FILES.privateKey} is readable by others (mode ${(mode & 0o777).toString(8)})`, missing: false };
    }
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(keyPem);
  } catch {
    return { usable: false, reason: `${DEV_ISSUER_FILES.privateKey} is not a PEM private key`, missing: false };
  }
  if (privateKey.asymmetricKeyType !== 'ec' || privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    return { usable: false, reason: `${DEV_ISSUER_FILES.privateKey} is not a P-256 key (${ALGORITHM} needs one)`, missing: false };
  }
  const kid = await thumbprint(privateKey);
  let published: unknown;
  try {
    published = JSON.parse(jwksText);
  } catch {
    return { usable: false, reason: `${DEV_ISSUER_FILES.jwks} is not JSON`, missing: false };
  }
  if (!isDeepStrictEqual(published, await jwksOf(privateKey, kid))) {
    return { usable: false, reason: `${DEV_ISSUER_FILES.jwks} does not publish exactly the key in ${DEV_ISSUER_FILES.privateKey}`, missing: false };
  }
  return { usable: true, privateKey, kid };
}

/** The public JWKS of the key: one key, its algorithm and use pinned (RFC 7517 §4.2, §4.4; SECURITY.md JWT-01, JWT-05). */
async function jwksOf(privateKey: KeyObject, kid: string): Promise<{ keys: Array<Record<string, string>> }> {
  const { kty, crv, x, y } = createPublicKey(privateKey).export({ format: 'jwk' });
  return { keys: [{ kty: kty!, crv: crv!, x: x!, y: y!, kid, alg: ALGORITHM, use: 'sig' }] };
}

/** RFC 7638 thumbprint: a `kid` derived from the key itself, so it changes whenever the key does. */
function thumbprint(privateKey: KeyObject): Promise<string> {
  const { kty, crv, x, y } = createPublicKey(privateKey).export({ format: 'jwk' });
  return calculateJwkThumbprint({ kty: kty!, crv: crv!, x: x!, y: y! }, 'sha256');
}

async function readIfPresent(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

/** Temporary name, then rename: a crash never leaves a truncated key or JWKS behind. */
async function writeAtomically(path: string, text: string, mode: number): Promise<void> {
  const temporary = `${path}.${process.pid}.tmp`;
  // `wx` after removing a leftover: the mode applies only to a file this call creates.
  await rm(temporary, { force: true });
  await writeFile(temporary, text, { mode, flag: 'wx' });
  await rename(temporary, path);
}
