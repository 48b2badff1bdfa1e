/**
 * Validation of an issuer's JWK Set (RFC 7517 §5) before any key of it is used: at config load
 * for `jwks_file`, and for every set fetched or read back from the disk cache.
 *
 * One bad key refuses the whole set (SECURITY.md JWT-05): a set that mixes a weak or foreign key
 * with good ones says something is wrong at the issuer or on the way, and serving the good half
 * would hide it. The caller keeps the set it had (or has none: fail closed), and every problem
 * names the key by index and `kid` so the operator can act on the message alone.
 *
 * Only public asymmetric signature keys pass: RSA ≥ 2048 bits, EC P-256/P-384/P-521 on the
 * curve, Ed25519. Each key ends up with the algorithms it may verify, so that the token never
 * chooses the algorithm (RFC 8725 §3.1).
 */
import { createPublicKey, hash } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import type { JWK } from 'jose';
import { hasRocaFingerprint } from './roca.ts';

/** A key that passed every check, ready to import. */
export interface ValidatedKey {
  /** Position in the set's `keys` array. */
  readonly index: number;
  readonly kid: string | undefined;
  /**
   * The algorithms this key may verify: its own `alg`, or, when it has none, exactly the issuer's
   * algorithms that fit its type and curve. Never empty.
   */
  readonly algorithms: readonly string[];
  /** Only the public key members (`kty` and `n`/`e` or `crv`/`x`/`y`): nothing else reaches an import. */
  readonly jwk: JWK;
  readonly publicKey: KeyObject;
  /** SHA-256 (hex) of the key's DER SubjectPublicKeyInfo: the same key, however its JWK was written. */
  readonly fingerprint: string;
}

export type JwksValidation = { readonly ok: true; readonly keys: ValidatedKey[] } | { readonly ok: false; readonly problems: string[] };

/** More keys than this is not a rotation but a mistake (and each costs an import). */
export const MAX_KEYS_PER_SET = 100;
/** SECURITY.md JWT-02: a `kid` is an opaque lookup key of at most 256 printable ASCII characters. */
export const MAX_KID_LENGTH = 256;
/** RFC 7518 §3.3, §3.5: "A key of size 2048 bits or larger MUST be used". */
export const MIN_RSA_BITS = 2048;
/** Verification cost grows with the square of the modulus; above this a key costs more than it protects. */
export const MAX_RSA_BITS = 8192;

/** Members that only a private or symmetric key has (RFC 7518 §6.2.2, §6.3.2, §6.4.1; RFC 8037 §2). */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

const RSA_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'] as const;

/** RFC 7518 §3.4 binds each ECDSA algorithm to one curve; RFC 7518 §6.2.1.2: coordinates have the curve's full size. */
const EC_CURVES: Readonly<Record<string, { readonly algorithm: string; readonly coordinateBytes: number }>> = {
  'P-256': { algorithm: 'ES256', coordinateBytes: 32 },
  'P-384': { algorithm: 'ES384', coordinateBytes: 48 },
  'P-521': { algorithm: 'ES512', coordinateBytes: 66 },
};

const ED25519_PUBLIC_KEY_BYTES = 32;

/** FIPS 186 key generation keeps e below 2^256; a larger exponent only makes every verification slower. */
const MAX_RSA_EXPONENT = 1n << 256n;

const PRINTABLE_ASCII = /^[\x20-\x7e]+$/;
const BASE64URL_ALPHABET = /^[A-Za-z0-9_-]+$/;

export function validateJwks(json: unknown, algorithms: ReadonlySet<string>): JwksValidation {
  if (!isPlainObject(json)) return refuse('the key set is not a JSON object with a "keys" array (RFC 7517 §5)');
  const keys = json['keys'];
  if (!Array.isArray(keys)) return refuse('the key set has no "keys" array (RFC 7517 §5.1)');
  if (keys.length === 0) return refuse('the key set has no keys');
  if (keys.length > MAX_KEYS_PER_SET) return refuse(`the key set has ${keys.length} keys; at most ${MAX_KEYS_PER_SET} are accepted`);

  const problems: string[] = [];
  const validated: ValidatedKey[] = [];
  keys.forEach((entry: unknown, index) => {
    const result = validateKey(entry, index, algorithms);
    if (Array.isArray(result)) problems.push(...result);
    else validated.push(result);
  });
  problems.push(...ambiguities(keys));
  return problems.length > 0 ? { ok: false, problems } : { ok: true, keys: validated };
}

function refuse(problem: string): JwksValidation {
  return { ok: false, problems: [problem] };
}

/** The key's problems, or the validated key. */
function validateKey(entry: unknown, index: number, issuerAlgorithms: ReadonlySet<string>): ValidatedKey | string[] {
  if (!isPlainObject(entry)) return [`key ${index}: not a JSON object`];
  const label = keyLabel(entry, index);
  const problems: string[] = [];
  const problem = (text: string): void => void problems.push(`${label}: ${text}`);

  const kid = entry['kid'];
  if (kid !== undefined) {
    // RFC 7517 §4.5: a case-sensitive string; SECURITY.md JWT-02 bounds it so it stays an opaque lookup key.
    if (typeof kid !== 'string') problem('"kid" is not a string');
    else if (kid.length === 0 || kid.length > MAX_KID_LENGTH || !PRINTABLE_ASCII.test(kid)) {
      problem(`"kid" must be 1 to ${MAX_KID_LENGTH} printable ASCII characters`);
    }
  }

  const kty = entry['kty'];
  if (typeof kty !== 'string') return [...problems, `${label}: no "kty" (RFC 7517 §4.1)`];
  if (kty === 'oct') {
    // RFC 8725 §2.1: a verifier that accepts a symmetric key here can be made to check an HMAC
    // keyed with public material. An asymmetric issuer's set never has a reason to carry one.
    return [...problems, `${label}: a symmetric key (kty "oct"); HMAC keys never belong in an asymmetric issuer's key set`];
  }

  const privateMembers = PRIVATE_MEMBERS.filter((member) => Object.hasOwn(entry, member));
  if (privateMembers.length > 0) {
    problem(`contains private key members (${privateMembers.join(', ')}); a published key set holds public keys only`);
  }

  // RFC 7517 §4.2: "sig" is the only use a verification key may declare.
  const use = entry['use'];
  if (use !== undefined && use !== 'sig') problem(`"use" is ${describe(use)}, not "sig"`);

  // RFC 7517 §4.3: when present, key_ops must allow verification.
  const keyOps = entry['key_ops'];
  if (keyOps !== undefined && !(Array.isArray(keyOps) && keyOps.every((op) => typeof op === 'string') && keyOps.includes('verify'))) {
    problem('"key_ops" does not include "verify"');
  }

  const material = publicMaterial(entry, kty);
  if (typeof material === 'string') {
    problem(material);
    return problems;
  }

  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: material.jwk, format: 'jwk' });
  } catch {
    // RFC 8725 §3.4: invalid points (off the curve) must never reach a verification. OpenSSL
    // checks the point when it builds the key; an RSA key fails here only when malformed.
    problem(kty === 'EC' ? `the point is not on curve ${material.jwk.crv}` : `not a valid ${kty} public key`);
    return problems;
  }

  const usable = usableAlgorithms(entry['alg'], material.algorithms, issuerAlgorithms, material.description);
  if (typeof usable === 'string') problem(usable);

  if (problems.length > 0 || typeof usable === 'string') return problems;
  const fingerprint = hash('sha256', publicKey.export({ format: 'der', type: 'spki' }), 'hex');
  return { index, kid: kid as string | undefined, algorithms: usable, jwk: material.jwk, publicKey, fingerprint };
}

interface PublicMaterial {
  readonly jwk: JWK;
  /** Every algorithm this type and curve can verify. */
  readonly algorithms: readonly string[];
  /** e.g. "an RSA key", "an EC P-384 key", for messages. */
  readonly description: string;
}

/** The key's public members, checked for shape and strength, or what is wrong with them. */
function publicMaterial(entry: Record<string, unknown>, kty: string): PublicMaterial | string {
  switch (kty) {
    case 'RSA':
      return rsaMaterial(entry);
    case 'EC':
      return ecMaterial(entry);
    case 'OKP':
      return okpMaterial(entry);
    default:
      return `unsupported "kty" ${describe(kty)} (RSA, EC and OKP are accepted)`;
  }
}

function rsaMaterial(entry: Record<string, unknown>): PublicMaterial | string {
  const n = decodeBase64url(entry['n']);
  const e = decodeBase64url(entry['e']);
  if (!n) return '"n" is missing or not canonical base64url (RFC 7518 §6.3.1.1)';
  if (!e) return '"e" is missing or not canonical base64url (RFC 7518 §6.3.1.2)';
  const modulus = toBigInt(n);
  const exponent = toBigInt(e);
  const bits = modulus.toString(2).length;
  if (modulus === 0n || bits < MIN_RSA_BITS) return `the RSA modulus has ${modulus === 0n ? 0 : bits} bits; at least ${MIN_RSA_BITS} are required (RFC 7518 §3.3)`;
  if (bits > MAX_RSA_BITS) return `the RSA modulus has ${bits} bits; at most ${MAX_RSA_BITS} are accepted`;
  if ((modulus & 1n) === 0n) return 'the RSA modulus is even, so it is no product of two odd primes';
  // RFC 8017 §3.1: 3 ≤ e ≤ n − 1 and gcd(e, λ(n)) = 1, which needs an odd e. e = 1 makes the
  // "signature" equal to the padded message: anyone can forge one.
  if (exponent < 3n || (exponent & 1n) === 0n || exponent >= modulus || exponent >= MAX_RSA_EXPONENT) {
    const shown = exponent < 1n << 64n ? String(exponent) : `of ${exponent.toString(2).length} bits`;
    return `the RSA public exponent ${shown} is not an odd integer from 3 up to 2^256 and below the modulus (RFC 8017 §3.1)`;
  }
  if (hasRocaFingerprint(modulus)) return 'the RSA modulus has the ROCA fingerprint (CVE-2017-15361): it can be factored';
  return {
    jwk: { kty: 'RSA', n: entry['n'] as string, e: entry['e'] as string },
    algorithms: RSA_ALGORITHMS,
    description: 'an RSA key',
  };
}

function ecMaterial(entry: Record<string, unknown>): PublicMaterial | string {
  const crv = entry['crv'];
  const curve = typeof crv === 'string' && Object.hasOwn(EC_CURVES, crv) ? EC_CURVES[crv] : undefined;
  if (!curve) return `unsupported EC curve ${describe(crv)} (P-256, P-384 and P-521 are accepted)`;
  const x = decodeBase64url(entry['x']);
  const y = decodeBase64url(entry['y']);
  if (!x || !y) return '"x" or "y" is missing or not canonical base64url (RFC 7518 §6.2.1)';
  if (x.length !== curve.coordinateBytes || y.length !== curve.coordinateBytes) {
    return `the coordinates of a ${crv} point are ${curve.coordinateBytes} bytes each (RFC 7518 §6.2.1.2), got ${x.length} and ${y.length}`;
  }
  return {
    jwk: { kty: 'EC', crv: crv as string, x: entry['x'] as string, y: entry['y'] as string },
    algorithms: [curve.algorithm],
    description: `an EC ${crv} key`,
  };
}

function okpMaterial(entry: Record<string, unknown>): PublicMaterial | string {
  const crv = entry['crv'];
  if (crv === 'X25519' || crv === 'X448') return `curve ${crv} is for key agreement, not signatures (RFC 8037 §3.2)`;
  // RFC 8037 §3.1 also defines Ed448 for EdDSA, but the verifier (jose 6, WebCrypto) implements
  // EdDSA with Ed25519 only: a key it could never use is refused here, loudly, not at the first token.
  if (crv === 'Ed448') return 'curve Ed448 is not supported (EdDSA is verified with Ed25519 keys only)';
  if (crv !== 'Ed25519') return `unsupported OKP curve ${describe(crv)} (Ed25519 is accepted)`;
  const x = decodeBase64url(entry['x']);
  if (!x) return '"x" is missing or not canonical base64url (RFC 8037 §2)';
  if (x.length !== ED25519_PUBLIC_KEY_BYTES) return `an Ed25519 public key is ${ED25519_PUBLIC_KEY_BYTES} bytes, got ${x.length}`;
  return { jwk: { kty: 'OKP', crv: 'Ed25519', x: entry['x'] as string }, algorithms: ['EdDSA'], description: 'an Ed25519 key' };
}

/**
 * RFC 7517 §4.4 / RFC 8725 §3.1: a key's `alg` must fit the key and be one the issuer is
 * configured for. Without `alg`, the key may verify the issuer's algorithms that fit it.
 */
function usableAlgorithms(
  alg: unknown,
  fitting: readonly string[],
  issuerAlgorithms: ReadonlySet<string>,
  description: string,
): string[] | string {
  const allowed = [...issuerAlgorithms].join(', ');
  if (alg === undefined) {
    const usable = fitting.filter((candidate) => issuerAlgorithms.has(candidate));
    return usable.length > 0 ? usable : `no algorithm of this issuer (${allowed}) can be used with ${description}`;
  }
  if (typeof alg !== 'string') return '"alg" is not a string';
  if (!fitting.includes(alg)) return `"alg" ${describe(alg)} does not fit ${description} (${fitting.join(', ')} would)`;
  if (!issuerAlgorithms.has(alg)) return `"alg" ${describe(alg)} is not one of this issuer's algorithms (${allowed})`;
  return [alg];
}

/**
 * SECURITY.md JWT-05 / RFC 7517 §4.5: a `kid` names one key, so duplicates are refused. Keys
 * without `kid` answer tokens without `kid`, so two of them that verify the same algorithm are
 * just as ambiguous.
 */
function ambiguities(keys: readonly unknown[]): string[] {
  const problems: string[] = [];
  const firstWithKid = new Map<string, number>();
  const withoutKid: Array<{ index: number; algorithms: readonly string[] }> = [];
  keys.forEach((entry, index) => {
    if (!isPlainObject(entry)) return;
    const kid = entry['kid'];
    if (typeof kid === 'string') {
      const first = firstWithKid.get(kid);
      if (first === undefined) firstWithKid.set(kid, index);
      else problems.push(`keys ${first} and ${index} share "kid" ${describe(kid)}; a kid must name one key`);
    } else if (kid === undefined) {
      const alg = entry['alg'];
      withoutKid.push({ index, algorithms: typeof alg === 'string' ? [alg] : fittingAlgorithms(entry) });
    }
  });
  for (let i = 0; i < withoutKid.length; i++) {
    for (let j = i + 1; j < withoutKid.length; j++) {
      const shared = withoutKid[i]!.algorithms.filter((alg) => withoutKid[j]!.algorithms.includes(alg));
      if (shared.length > 0) {
        problems.push(`keys ${withoutKid[i]!.index} and ${withoutKid[j]!.index} both lack "kid" and both verify ${shared.join(', ')}; a token without kid could not name one`);
      }
    }
  }
  return problems;
}

function fittingAlgorithms(entry: Record<string, unknown>): readonly string[] {
  if (entry['kty'] === 'RSA') return RSA_ALGORITHMS;
  if (entry['kty'] === 'EC' && typeof entry['crv'] === 'string' && Object.hasOwn(EC_CURVES, entry['crv'])) return [EC_CURVES[entry['crv']]!.algorithm];
  if (entry['kty'] === 'OKP' && entry['crv'] === 'Ed25519') return ['EdDSA'];
  return [];
}

/**
 * RFC 7515 §2 / RFC 4648 §5: the URL-safe alphabet, no padding, no whitespace, canonical final
 * bits. Node's decoder skips characters it does not know, so the round trip is the check.
 */
function decodeBase64url(value: unknown): Buffer | null {
  if (typeof value !== 'string' || value.length % 4 === 1 || !BASE64URL_ALPHABET.test(value)) return null;
  const bytes = Buffer.from(value, 'base64url');
  return bytes.toString('base64url') === value ? bytes : null;
}

/** RFC 7518 §2 Base64urlUInt, big-endian. Leading zero octets (which some libraries emit) do not change the value. */
function toBigInt(bytes: Buffer): bigint {
  return bytes.length === 0 ? 0n : BigInt(`0x${bytes.toString('hex')}`);
}

function keyLabel(entry: Record<string, unknown>, index: number): string {
  const kid = entry['kid'];
  return typeof kid === 'string' ? `key ${index} (kid ${describe(kid)})` : `key ${index} (no kid)`;
}

/** A value from the set, quoted and escaped for a log line, and cut short: it may be hostile. */
function describe(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
