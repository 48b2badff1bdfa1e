/**
 * How the gateway authenticates itself to an introspection endpoint (RFC 7662 §2.1: the
 * endpoint MUST require client authentication, so token scanning is not free; SECURITY.md IN-01).
 * Everything that can be checked is checked when the client is built, so a key that does not
 * fit its algorithm fails the configuration load rather than every request.
 */
import { createPrivateKey, randomBytes } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';
import type { CompiledIntrospection } from '../../config/snapshot.ts';
import type { SigningAlgorithm } from '../../config/schema.ts';

/** RFC 7523 §2.2. */
export const JWT_BEARER_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** Lifetime of one client assertion: one call, so short (RFC 7523 §3 item 4; NHI7 asks for ≤ 5 min). */
export const ASSERTION_LIFETIME_SECONDS = 60;
const MIN_RSA_BITS = 2048;

export interface CallCredentials {
  /** Form parameters added to the request body. */
  readonly params: ReadonlyArray<[string, string]>;
  /** Request headers (only `authorization` for client_secret_basic). */
  readonly headers: Readonly<Record<string, string>>;
}

export interface ClientAuthentication {
  /** TLS material for the connection: the client certificate of `tls_client_auth`, else empty. */
  readonly tls: { readonly cert?: Buffer; readonly key?: Buffer };
  /** Credentials for one call. `private_key_jwt` signs a fresh assertion each time. */
  forCall(): CallCredentials | Promise<CallCredentials>;
}

export function prepareClientAuthentication(endpoint: CompiledIntrospection, now: () => number): ClientAuthentication {
  const auth = endpoint.auth;
  switch (auth.method) {
    case 'private_key_jwt': {
      const key = createPrivateKey(auth.key);
      assertKeyFitsAlgorithm(key, auth.alg, endpoint.id);
      return {
        tls: {},
        forCall: async () => ({
          params: [
            ['client_assertion_type', JWT_BEARER_ASSERTION_TYPE],
            ['client_assertion', await signClientAssertion(endpoint, key, auth.alg, auth.kid, now())],
          ],
          headers: {},
        }),
      };
    }
    case 'tls_client_auth': {
      // RFC 8705 §2: the certificate authenticates; `client_id` names which client it is for.
      const credentials: CallCredentials = { params: [['client_id', endpoint.clientId]], headers: {} };
      return { tls: { cert: auth.cert, key: auth.key }, forCall: () => credentials };
    }
    case 'client_secret_basic': {
      const credentials: CallCredentials = { params: [], headers: { authorization: basicAuthorization(endpoint.clientId, auth.secret) } };
      return { tls: {}, forCall: () => credentials };
    }
  }
}

/**
 * RFC 7523 §3: `iss` and `sub` are our client id, `aud` identifies the recipient — here the
 * introspection endpoint's URL, as a single string (an array would invite the audience
 * injection that draft-ietf-oauth-rfc7523bis closes) — `exp` short, `jti` unique per call.
 * `typ` is plain `JWT` (RFC 7519 §5.1): `client-authentication+jwt` is still a draft's media
 * type, and authorization servers that predate it may refuse an unknown `typ`.
 */
async function signClientAssertion(endpoint: CompiledIntrospection, key: KeyObject, alg: SigningAlgorithm, kid: string | null, nowMs: number): Promise<string> {
  const issuedAt = Math.floor(nowMs / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg, typ: 'JWT', ...(kid !== null ? { kid } : {}) })
    .setIssuer(endpoint.clientId)
    .setSubject(endpoint.clientId)
    .setAudience(endpoint.url)
    .setJti(randomBytes(16).toString('base64url'))
    .setIssuedAt(issuedAt)
    .setExpirationTime(issuedAt + ASSERTION_LIFETIME_SECONDS)
    .sign(key);
}

/**
 * RFC 6749 §2.3.1: the client id and secret are each encoded with
 * application/x-www-form-urlencoded (Appendix B) *before* they are joined with `:` and base64'd,
 * so a `:` or non-ASCII character in either survives the trip.
 */
export function basicAuthorization(clientId: string, secret: string): string {
  return `Basic ${Buffer.from(`${formEncode(clientId)}:${formEncode(secret)}`, 'utf8').toString('base64')}`;
}

function formEncode(value: string): string {
  return new URLSearchParams([['', value]]).toString().slice(1);
}

/** Each algorithm takes exactly one kind of key (RFC 7518 §3.1, RFC 8037 §3.1; SECURITY.md JWT-01, JWT-05). */
function assertKeyFitsAlgorithm(key: KeyObject, alg: SigningAlgorithm, endpointId: string): void {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  const fits = (() => {
    switch (alg) {
      case 'RS256':
      case 'RS384':
      case 'RS512':
        return type === 'rsa' && (details.modulusLength ?? 0) >= MIN_RSA_BITS;
      case 'PS256':
      case 'PS384':
      case 'PS512':
        return (type === 'rsa' || type === 'rsa-pss') && (details.modulusLength ?? 0) >= MIN_RSA_BITS;
      case 'ES256':
        return type === 'ec' && details.namedCurve === 'prime256v1';
      case 'ES384':
        return type === 'ec' && details.namedCurve === 'secp384r1';
      case 'ES512':
        return type === 'ec' && details.namedCurve === 'secp521r1';
      case 'EdDSA':
        return type === 'ed25519';
    }
  })();
  if (!fits) {
    const size = details.modulusLength ? ` (${details.modulusLength} bits)` : details.namedCurve ? ` (${details.namedCurve})` : '';
    throw new TypeError(`introspection endpoint "${endpointId}": a ${type}${size} key cannot sign ${alg} client assertions${type === 'rsa' || type === 'rsa-pss' ? ` (RSA keys need at least ${MIN_RSA_BITS} bits)` : ''}`);
  }
}
