/**
 * Forges JWS compact tokens byte by byte for tests: any header, any payload (objects or raw
 * text), signed with real keys generated per run — including the malformed and hostile shapes
 * a well-behaved JOSE library would refuse to produce.
 */
import { generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';

export interface TestKey {
  readonly kid: string;
  readonly alg: 'RS256' | 'ES256' | 'EdDSA';
  readonly privateKey: KeyObject;
  readonly publicJwk: Record<string, unknown>;
}

export function generateTestKey(alg: TestKey['alg'], kid = `${alg.toLowerCase()}-${randomUUID().slice(0, 8)}`, rsaBits = 2048): TestKey {
  const pair =
    alg === 'RS256'
      ? generateKeyPairSync('rsa', { modulusLength: rsaBits })
      : alg === 'ES256'
        ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
        : generateKeyPairSync('ed25519');
  const publicJwk = { ...pair.publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
  return { kid, alg, privateKey: pair.privateKey, publicJwk };
}

export function jwks(...keys: TestKey[]): string {
  return JSON.stringify({ keys: keys.map((key) => key.publicJwk) });
}

export const b64url = (data: string | Buffer): string => Buffer.from(data).toString('base64url');

export function signingInput(header: object | string, payload: object | string): string {
  const encode = (part: object | string): string => b64url(typeof part === 'string' ? part : JSON.stringify(part));
  return `${encode(header)}.${encode(payload)}`;
}

export function signRaw(key: TestKey | KeyObject, alg: string, input: string): Buffer {
  const privateKey = 'privateKey' in key ? key.privateKey : key;
  if (alg === 'ES256') return sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  if (alg === 'EdDSA') return sign(null, Buffer.from(input), privateKey);
  return sign('sha256', Buffer.from(input), privateKey);
}

/** A token with exactly this header and payload, validly signed by `key`. */
export function forge(key: TestKey, header: object | string, payload: object | string): string {
  const input = signingInput(header, payload);
  const alg = typeof header === 'string' ? key.alg : ((header as { alg?: string }).alg ?? key.alg);
  return `${input}.${b64url(signRaw(key, alg === 'none' ? key.alg : alg, input))}`;
}

export interface ClaimsOptions {
  readonly iss: string;
  readonly aud: string | string[];
  readonly clientId: string;
  readonly scope?: string;
  readonly lifetime?: number;
  readonly now?: number;
}

export function standardClaims(options: ClaimsOptions): Record<string, unknown> {
  const now = options.now ?? Math.floor(Date.now() / 1000);
  return {
    iss: options.iss,
    sub: options.clientId,
    client_id: options.clientId,
    aud: options.aud,
    iat: now,
    exp: now + (options.lifetime ?? 300),
    jti: randomUUID(),
    ...(options.scope !== undefined ? { scope: options.scope } : {}),
  };
}

export function accessToken(key: TestKey, options: ClaimsOptions, extraHeader: Record<string, unknown> = {}, extraClaims: Record<string, unknown> = {}): string {
  return forge(key, { alg: key.alg, typ: 'at+jwt', kid: key.kid, ...extraHeader }, { ...standardClaims(options), ...extraClaims });
}

