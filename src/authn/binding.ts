/**
 * Sender-constrained access tokens: does the token's confirmation claim (`cnf`, RFC 7800 §3.1)
 * match what this request proved? (SECURITY.md §0 item 7, MT-04, MT-07, DP-05, DP-06.)
 *
 * - `cnf["x5t#S256"]` (RFC 8705 §3.1): the SHA-256 thumbprint of the client certificate of *this*
 *   TLS connection must equal it. No certificate, or another one — a renewed certificate too
 *   (RFC 8705 §6.3: binding survives renewal only through a new token) — refuses the token.
 * - `cnf.jkt` (RFC 9449 §6.1): the token must arrive with the `DPoP` scheme and a proof whose key
 *   has that RFC 7638 thumbprint; sent as `Bearer` it is refused (RFC 9449 §7.2: no downgrade).
 * - A token bound both ways must satisfy both.
 *
 * The same function serves verified JWT claims and introspection responses (RFC 7662 §2.2, RFC
 * 8705 §3.2 and RFC 9449 §6.2 put `cnf` there too; SECURITY.md IN-03). Every refusal maps to 401
 * `invalid_token` (with the `DPoP` challenge for a DPoP request).
 */

export type BindingReason =
  | 'binding.cnf_x5t_mismatch'
  | 'binding.cnf_jkt_mismatch'
  | 'binding.dpop_as_bearer'
  | 'binding.dpop_unbound'
  | 'binding.sender_constraint_required'
  | 'binding.cnf_invalid';

export interface BindingInput {
  /** Verified token claims, or a verified introspection response. */
  readonly claims: Readonly<Record<string, unknown>>;
  /** The `Authorization` scheme the token came with. */
  readonly scheme: 'Bearer' | 'DPoP';
  /** `x5t#S256` of this connection's client certificate (base64url SHA-256 of the DER), or null. */
  readonly certificateX5t: string | null;
  /** RFC 7638 thumbprint of the verified DPoP proof's key, or null when there is no verified proof. */
  readonly dpopJkt: string | null;
  /** The partner, API or route accepts sender-constrained tokens only. */
  readonly required: boolean;
}

export type BindingResult =
  | {
      readonly ok: true;
      /** What the token is bound to; `dpop` when it is bound to both a certificate and a DPoP key (both were checked). */
      readonly boundTo: 'certificate' | 'dpop' | null;
    }
  | { readonly ok: false; readonly reason: BindingReason; readonly detail: string };

/** A base64url SHA-256 digest: 32 bytes, 43 characters, canonical final character (RFC 4648 §3.5). */
const SHA256_BASE64URL = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;

const CERTIFICATE_METHOD = 'x5t#S256';
const DPOP_METHOD = 'jkt';

export function checkBinding(input: BindingInput): BindingResult {
  const cnf = readConfirmation(input.claims);
  if (!cnf.ok) return cnf;
  const { x5t, jkt } = cnf;

  if (jkt !== null) {
    // RFC 9449 §7.2 (DP-06): a DPoP-bound token is useless without its key; accepting it as a
    // bearer token would make a stolen one usable again.
    if (input.scheme !== 'DPoP') return refuse('binding.dpop_as_bearer', 'the token is DPoP-bound ("cnf.jkt") but was presented as a bearer token');
    if (input.dpopJkt === null) return refuse('binding.cnf_jkt_mismatch', 'the token is DPoP-bound but the request has no verified DPoP proof');
    // RFC 9449 §4.3 check 12, §6.1 (DP-05).
    if (!equalThumbprints(jkt, input.dpopJkt)) return refuse('binding.cnf_jkt_mismatch', 'the DPoP proof is signed with another key than the one the token is bound to ("cnf.jkt")');
  } else if (input.scheme === 'DPoP') {
    // RFC 9449 §7.1: the DPoP scheme carries DPoP-bound tokens; a proof alongside a bearer token
    // proves nothing about that token.
    return refuse('binding.dpop_unbound', 'the token was presented with the DPoP scheme but is not DPoP-bound (no "cnf.jkt")');
  }

  if (x5t !== null) {
    // RFC 8705 §3.1 (MT-04, MT-07): this connection's certificate, not one seen before.
    if (input.certificateX5t === null) return refuse('binding.cnf_x5t_mismatch', 'the token is bound to a client certificate ("cnf.x5t#S256") but this connection presented none');
    if (!equalThumbprints(x5t, input.certificateX5t)) return refuse('binding.cnf_x5t_mismatch', 'the token is bound to another client certificate than the one on this connection ("cnf.x5t#S256")');
  }

  if (jkt !== null) return { ok: true, boundTo: 'dpop' };
  if (x5t !== null) return { ok: true, boundTo: 'certificate' };
  if (input.required) return refuse('binding.sender_constraint_required', 'a sender-constrained token is required, and this token has no "cnf" binding');
  return { ok: true, boundTo: null };
}

type Confirmation = { readonly ok: true; readonly x5t: string | null; readonly jkt: string | null } | { readonly ok: false; readonly reason: BindingReason; readonly detail: string };

/**
 * RFC 7800 §3.1: `cnf` is a JSON object of confirmation methods. A `cnf` we cannot read, or one
 * that names only methods we do not check (`jwk`, `kid`, `jwe`, …), means the issuer bound the
 * token to something this gateway cannot verify: refused, never treated as unbound.
 */
function readConfirmation(claims: Readonly<Record<string, unknown>>): Confirmation {
  if (!Object.hasOwn(claims, 'cnf')) return { ok: true, x5t: null, jkt: null };
  const cnf = claims['cnf'];
  if (typeof cnf !== 'object' || cnf === null || Array.isArray(cnf)) return refuse('binding.cnf_invalid', '"cnf" is not a JSON object');
  const members = cnf as Record<string, unknown>;
  const x5t = Object.hasOwn(members, CERTIFICATE_METHOD) ? members[CERTIFICATE_METHOD] : null;
  const jkt = Object.hasOwn(members, DPOP_METHOD) ? members[DPOP_METHOD] : null;
  if (x5t !== null && (typeof x5t !== 'string' || !SHA256_BASE64URL.test(x5t))) return refuse('binding.cnf_invalid', '"cnf.x5t#S256" is not a base64url SHA-256 thumbprint');
  if (jkt !== null && (typeof jkt !== 'string' || !SHA256_BASE64URL.test(jkt))) return refuse('binding.cnf_invalid', '"cnf.jkt" is not a base64url SHA-256 thumbprint');
  if (x5t === null && jkt === null) {
    const names = Object.keys(members);
    return refuse('binding.cnf_invalid', names.length === 0 ? '"cnf" is empty' : `"cnf" names no confirmation method this gateway checks (${names.slice(0, 5).map((name) => JSON.stringify(name.slice(0, 32))).join(', ')})`);
  }
  return { ok: true, x5t: x5t as string | null, jkt: jkt as string | null };
}

/** Constant-time comparison, so timing never tells how much of a thumbprint matched. */
/** Constant time over the length of equal-length thumbprints (base64url, ASCII), without allocating. */
function equalThumbprints(expected: string, actual: string): boolean {
  if (expected.length !== actual.length) return false;
  let difference = 0;
  for (let index = 0; index < expected.length; index++) difference |= expected.charCodeAt(index) ^ actual.charCodeAt(index);
  return difference === 0;
}

function refuse(reason: BindingReason, detail: string): { readonly ok: false; readonly reason: BindingReason; readonly detail: string } {
  return { ok: false, reason, detail };
}
