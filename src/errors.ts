/**
 * The one error catalogue.
 *
 * Two vocabularies, kept apart on purpose (STYLE.md items 1–3):
 * - `Reason` is the precise, internal, stable machine reason of a decision. It goes to the
 *   decision record, metrics labels and the log. Never free text. Category prefixes follow
 *   the SECURITY.md taxonomy (`http.*`, `route.*`, `token.*`, `upstream.*`, …).
 * - `ProblemCode` is what the caller sees in the RFC 9457 body. Several reasons may share one
 *   public code, so a caller learns no more than it needs (e.g. every bad token is
 *   `invalid_token`, SECURITY.md JWT-16), while the operator keeps the precise reason.
 *
 * Gateway refusals and upstream failures never share a code (DESIGN.md). Codes are never reused
 * or renamed; `docs/errors.md` lists every entry and `test/errors.test.ts` fails on drift.
 */

export interface ProblemDefinition {
  readonly status: number;
  readonly title: string;
}

export const PROBLEMS = {
  bad_request: { status: 400, title: 'Malformed request' },
  path_not_canonical: { status: 400, title: 'Request path is not in canonical form' },
  request_framing_invalid: { status: 400, title: 'Ambiguous or invalid request framing' },
  credential_missing: { status: 401, title: 'Authentication required' },
  invalid_token: { status: 401, title: 'The access token is not valid' },
  invalid_request: { status: 400, title: 'The credentials of the request are ambiguous or misplaced' },
  invalid_api_key: { status: 401, title: 'The API key is not valid' },
  certificate_required: { status: 401, title: 'A client certificate is required' },
  invalid_client_certificate: { status: 401, title: 'The client certificate is not accepted' },
  invalid_dpop_proof: { status: 401, title: 'The DPoP proof is not valid' },
  use_dpop_nonce: { status: 401, title: 'The DPoP proof must carry the server nonce' },
  insufficient_scope: { status: 403, title: 'The token lacks a scope this operation requires' },
  partner_suspended: { status: 403, title: 'The partner is suspended' },
  partner_offboarded: { status: 403, title: 'The partner has been offboarded' },
  agreement_expired: { status: 403, title: 'The partner has no current agreement' },
  grant_denied: { status: 403, title: 'The partner is not granted this operation under these conditions' },
  purpose_denied: { status: 403, title: 'The declared purpose is missing or not allowed here' },
  policy_denied: { status: 403, title: 'A policy rule denied the request' },
  source_not_allowed: { status: 403, title: 'The partner may not call from this network address' },
  rate_limited: { status: 429, title: 'Rate limit exceeded' },
  quota_exceeded: { status: 429, title: 'Quota for the current period exhausted' },
  concurrency_limited: { status: 429, title: 'Too many requests in flight for this partner' },
  temporarily_blocked: { status: 429, title: 'Temporarily blocked after repeated failures' },
  dependency_unavailable: { status: 503, title: 'A service needed to check the credential is unavailable' },
  state_unavailable: { status: 503, title: 'Revocation state cannot be confirmed, so the request is refused' },
  audit_unavailable: { status: 503, title: 'The request cannot be recorded, so it is not forwarded' },
  route_not_found: { status: 404, title: 'No route for this request' },
  method_not_allowed: { status: 405, title: 'Method not allowed on this route' },
  request_timeout: { status: 408, title: 'Request not received in time' },
  body_too_large: { status: 413, title: 'Request body too large' },
  host_not_allowed: { status: 421, title: 'Host not served by this listener' },
  header_too_large: { status: 431, title: 'Request header fields too large' },
  internal_error: { status: 500, title: 'Internal gateway error' },
  upstream_unreachable: { status: 502, title: 'Upstream could not be reached' },
  upstream_bad_response: { status: 502, title: 'Upstream sent an invalid response' },
  upstream_unavailable: { status: 503, title: 'Upstream unavailable' },
  upstream_timeout: { status: 504, title: 'Upstream did not answer in time' },
} as const satisfies Record<string, ProblemDefinition>;

export type ProblemCode = keyof typeof PROBLEMS;

/**
 * Every decision reason, and the public problem it maps to. `allowed` is the reason of a
 * request that was forwarded (its outcome is then the upstream's status).
 */
export const REASONS = {
  'allowed': null,
  // answered by the gateway itself: RFC 9728 protected-resource metadata
  'gateway.resource_metadata': null,
  // …or the token service's endpoints (issue 5): issuance has its own event records
  'gateway.token_service': null,
  // ingress (stage 1)
  'http.malformed': 'bad_request',
  'http.framing_ambiguous': 'request_framing_invalid',
  'http.transfer_encoding_invalid': 'request_framing_invalid',
  'http.host_missing': 'bad_request',
  'http.host_duplicate': 'bad_request',
  'http.host_mismatch': 'bad_request',
  'http.target_invalid': 'bad_request',
  'http.header_name_invalid': 'bad_request',
  'http.upgrade_refused': 'bad_request',
  'http.path_not_canonical': 'path_not_canonical',
  'http.host_not_allowed': 'host_not_allowed',
  'http.header_too_large': 'header_too_large',
  'http.timeout': 'request_timeout',
  'http.body_too_large': 'body_too_large',
  // The client went away (or broke the stream) before the exchange completed; nothing is sent.
  'http.client_closed': 'bad_request',
  // routing
  'route.not_found': 'route_not_found',
  'route.method_not_allowed': 'method_not_allowed',
  // credential (stage 3): until a credential type is configured every protected route refuses.
  // transport identity (stage 2): client certificates, per partner (SECURITY.md §1.7 tls.*)
  'tls.certificate_missing': 'certificate_required',
  'tls.cert_expired': 'invalid_client_certificate',
  'tls.cert_not_yet_valid': 'invalid_client_certificate',
  'tls.eku': 'invalid_client_certificate',
  'tls.untrusted_ca': 'invalid_client_certificate',
  'tls.name_constraints': 'invalid_client_certificate',
  'tls.name_mismatch': 'invalid_client_certificate',
  'tls.partner_ambiguous': 'invalid_client_certificate',
  'tls.revoked_crl': 'invalid_client_certificate',
  'tls.revoked_ocsp': 'invalid_client_certificate',
  'tls.revoked_gateway': 'invalid_client_certificate',
  'tls.revocation_unavailable': 'dependency_unavailable',
  'tls.partner_mismatch': 'invalid_token',
  'token.missing': 'credential_missing',
  // A token was presented but no configured issuer can verify it.
  'token.issuer_unknown': 'invalid_token',
  // RFC 6750 §2 / §3.1: more than one credential, or a token where none may be (query string).
  'request.multiple_credentials': 'invalid_request',
  'request.token_in_query': 'invalid_request',
  'request.authorization_malformed': 'invalid_token',
  // token validation (SECURITY.md §2.1, §2.2): one public code, precise reasons (JWT-16)
  'token.malformed': 'invalid_token',
  'token.too_large': 'invalid_token',
  'token.encoding': 'invalid_token',
  'token.duplicate_member': 'invalid_token',
  'token.jwe_unsupported': 'invalid_token',
  'token.nested_unsupported': 'invalid_token',
  'token.header_param_forbidden': 'invalid_token',
  'token.crit_unsupported': 'invalid_token',
  'token.alg_not_allowed': 'invalid_token',
  'token.typ_invalid': 'invalid_token',
  'token.kid_unknown': 'invalid_token',
  'token.signature_invalid': 'invalid_token',
  'token.claim_missing': 'invalid_token',
  'token.claim_invalid': 'invalid_token',
  'token.aud_mismatch': 'invalid_token',
  'token.expired': 'invalid_token',
  'token.not_yet_valid': 'invalid_token',
  'token.iat_future': 'invalid_token',
  'token.lifetime_too_long': 'invalid_token',
  'token.inactive': 'invalid_token',
  // sender-constrained tokens (RFC 8705 §3, RFC 9449 §7): one public code, precise reasons
  'binding.cnf_x5t_mismatch': 'invalid_token',
  'binding.cnf_jkt_mismatch': 'invalid_token',
  'binding.dpop_as_bearer': 'invalid_token',
  'binding.dpop_unbound': 'invalid_token',
  'binding.sender_constraint_required': 'invalid_token',
  'binding.cnf_invalid': 'invalid_token',
  'dpop.missing': 'invalid_dpop_proof',
  'dpop.multiple': 'invalid_dpop_proof',
  'dpop.malformed': 'invalid_dpop_proof',
  'dpop.typ_invalid': 'invalid_dpop_proof',
  'dpop.alg_not_allowed': 'invalid_dpop_proof',
  'dpop.jwk_invalid': 'invalid_dpop_proof',
  'dpop.signature_invalid': 'invalid_dpop_proof',
  'dpop.htm_mismatch': 'invalid_dpop_proof',
  'dpop.htu_mismatch': 'invalid_dpop_proof',
  'dpop.iat_invalid': 'invalid_dpop_proof',
  'dpop.replayed': 'invalid_dpop_proof',
  'dpop.ath_mismatch': 'invalid_dpop_proof',
  'dpop.nonce_required': 'use_dpop_nonce',
  'dpop.nonce_invalid': 'use_dpop_nonce',
  // revocation through the gateway (issue 7): bites on the next request, whatever is cached
  'token.revoked': 'invalid_token',
  'credential.revoked': 'invalid_token',
  // a valid credential that belongs to no configured partner credential
  'credential.unknown': 'invalid_token',
  'api_key.invalid': 'invalid_api_key',
  'api_key.expired': 'invalid_api_key',
  'api_key.revoked': 'invalid_api_key',
  // authorization (stage 4)
  'partner.suspended': 'partner_suspended',
  'partner.offboarded': 'partner_offboarded',
  'partner.agreement_missing': 'agreement_expired',
  'partner.agreement_expired': 'agreement_expired',
  'scope.insufficient': 'insufficient_scope',
  'grant.missing': 'grant_denied',
  'grant.environment': 'grant_denied',
  'grant.scope_not_granted': 'grant_denied',
  'grant.time_window': 'grant_denied',
  'grant.transaction_type': 'grant_denied',
  'grant.purpose': 'grant_denied',
  'grant.source_network': 'grant_denied',
  'purpose.missing': 'purpose_denied',
  'purpose.not_allowed': 'purpose_denied',
  'policy.denied': 'policy_denied',
  'partner.source_network': 'source_not_allowed',
  // stage 5: rate limits, quotas, abuse protection
  'ratelimit.exceeded': 'rate_limited',
  'quota.exceeded': 'quota_exceeded',
  'concurrency.exceeded': 'concurrency_limited',
  'abuse.source_blocked': 'temporarily_blocked',
  'abuse.credential_blocked': 'temporarily_blocked',
  // fail closed when what checks a credential cannot be reached
  'dependency.jwks_unavailable': 'dependency_unavailable',
  'dependency.introspection_unavailable': 'dependency_unavailable',
  // no audit record, no forwarding: the trail is failing or cannot keep up
  'audit.unavailable': 'audit_unavailable',
  'state.unavailable': 'state_unavailable',
  // proxy (stage 6)
  'upstream.unreachable': 'upstream_unreachable',
  'upstream.bad_response': 'upstream_bad_response',
  'upstream.unavailable': 'upstream_unavailable',
  'upstream.timeout': 'upstream_timeout',
  // the gateway itself
  'gateway.internal_error': 'internal_error',
} as const satisfies Record<string, ProblemCode | null>;

export type Reason = keyof typeof REASONS;
/** Reasons that end a request with a problem response (those that map to a problem code). */
export type RefusalReason = { [K in Reason]: (typeof REASONS)[K] extends null ? never : K }[Reason];

export function problemFor(reason: RefusalReason): { code: ProblemCode } & ProblemDefinition {
  const code = REASONS[reason];
  return { code, ...PROBLEMS[code] };
}

/** Base of the `type` URI of problem documents (RFC 9457 §3.1.1: a non-dereferenceable URI is allowed). */
export const PROBLEM_TYPE_BASE = 'urn:portcullis:problem:';

/**
 * Configuration errors: printed as `file:line:col CODE path: message`.
 */
export const CONFIG_ERRORS = {
  CONFIG_FILE_UNREADABLE: 'The configuration file (or a file it references) cannot be read',
  CONFIG_YAML_SYNTAX: 'The file is not valid YAML (includes duplicate keys)',
  CONFIG_UNKNOWN_KEY: 'A key that the schema does not define',
  CONFIG_INVALID_TYPE: 'A value of the wrong type, or a required key that is missing',
  CONFIG_INVALID_VALUE: 'A value of the right type that is out of range or malformed',
  CONFIG_ENV_UNSET: 'A ${VAR} reference to an environment variable that is not set',
  CONFIG_DANGLING_REF: 'A reference to an id that is not defined (upstream, api, zone, listener)',
  CONFIG_DUPLICATE_ID: 'Two entries of one kind share an id, name or address',
  CONFIG_CONFLICT: 'Settings that are each valid but contradict each other',
  CONFIG_INSECURE_UNACKNOWLEDGED: 'An insecure option without its exact acknowledgement string',
} as const;

export type ConfigErrorCode = keyof typeof CONFIG_ERRORS;
