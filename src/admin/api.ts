/**
 * The admin API (issue 7, `docs/admin.md`): revocations and partner status changes, on the ops
 * listener (`/admin/…`, loopback by default; SECURITY.md API8).
 *
 * Every call carries `Authorization: Bearer <token>` (RFC 6750 §2.1) whose SHA-256 is one of
 * `admin.tokens`; the holder id is the actor of every change. The order of checks is fixed so a
 * bad call never changes anything (DESIGN.md "Bars"): authenticate → route and method → read
 * and validate the body → check the audit trail can take the record → change the store → record
 * the change. A change that cannot be recorded is not made (503), a store that fails is a 503,
 * and nothing half-done is reported as success.
 *
 * Refusals are RFC 9457 problem documents with their own code vocabulary (`ADMIN_PROBLEMS`,
 * type `urn:portcullis:admin-problem:<code>`), kept apart from the data-plane catalogue in
 * `src/errors.ts`: the same word (`partner_offboarded`) means a different thing to a partner
 * than to an operator. Unlike data-plane refusals, admin problems carry a precise `detail`: the
 * caller is an authenticated operator (or, for 401, learns nothing about the tokens).
 */
// The default export, not a named import: the API test spies on `timingSafeEqual` to prove the
// admin token is compared in constant time against every configured token.
import crypto from 'node:crypto';
import type http from 'node:http';
import { z } from 'zod';
import { log } from '../log.ts';
import { eventRecord } from '../audit/event-record.ts';
import type { EventAction, EventInput } from '../audit/event-record.ts';
import { parseStrictJson } from '../authn/strict-json.ts';
import type { Snapshot } from '../config/snapshot.ts';
import type { AdminHandler } from '../server/ops.ts';
import type { PartnerStatus, PartnerStatusChange, Propagation, Revocation, RevocationKind, StateStore } from '../state/store.ts';

export interface AdminDeps {
  readonly store: StateStore;
  readonly snapshot: () => Snapshot;
  /** Appends an audit record to the trail (combined + the partner's stream); false if the trail cannot take it. */
  readonly audit: (record: object, partnerId: string | null) => boolean;
  readonly auditHealthy: () => boolean;
}

/** Stable codes of the admin API's problem documents; `docs/admin.md` lists every one. */
export const ADMIN_PROBLEMS = {
  unauthenticated: { status: 401, title: 'Admin authentication required' },
  not_found: { status: 404, title: 'No such admin endpoint' },
  method_not_allowed: { status: 405, title: 'Method not allowed on this admin endpoint' },
  body_too_large: { status: 413, title: 'Request body too large' },
  invalid_json: { status: 400, title: 'The request body is not a JSON object' },
  invalid_request: { status: 400, title: 'The request is not valid' },
  revocation_not_found: { status: 404, title: 'No such revocation' },
  partner_not_found: { status: 404, title: 'No such partner' },
  partner_offboarded: { status: 409, title: 'The partner has been offboarded; offboarding is final' },
  audit_unavailable: { status: 503, title: 'The change cannot be recorded, so it is not made' },
  state_unavailable: { status: 503, title: 'The state store cannot be reached' },
  internal_error: { status: 500, title: 'Internal error' },
} as const satisfies Record<string, { readonly status: number; readonly title: string }>;

export type AdminProblemCode = keyof typeof ADMIN_PROBLEMS;

export const ADMIN_PROBLEM_TYPE_BASE = 'urn:portcullis:admin-problem:';
export const ADMIN_REALM = 'portcullis-admin';
export const MAX_ADMIN_BODY_BYTES = 16 * 1024;

const KINDS = ['token', 'credential', 'certificate'] as const satisfies readonly RevocationKind[];
const PARTNER_ACTIONS = ['suspend', 'resume', 'offboard'] as const;
type PartnerAction = (typeof PARTNER_ACTIONS)[number];

const MAX_JTI_LENGTH = 256;
const MAX_REASON_LENGTH = 500;
const MAX_ISSUER_DN_LENGTH = 1024;
/** RFC 5280 §4.1.2.2: at most 20 octets; a little room for leading zero octets as written. */
const MAX_SERIAL_HEX = 64;
const PRINTABLE_ASCII = /^[\x20-\x7e]+$/;
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/;
/** RFC 3339 with an offset (what `toISOString` writes, and what operators type). */
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;

class AdminRefusal extends Error {
  readonly code: AdminProblemCode;
  readonly headers: Record<string, string>;
  constructor(code: AdminProblemCode, detail: string, headers: Record<string, string> = {}) {
    super(detail);
    this.code = code;
    this.headers = headers;
  }
}

// ---------------------------------------------------------------------------------------------
// Key syntax per kind (the store's `Revocation.key` contract, src/state/store.ts)
// ---------------------------------------------------------------------------------------------

export type KeyCheck = { readonly ok: true; readonly key: string; readonly warning?: string } | { readonly ok: false; readonly problem: string };

/**
 * Normalises a revocation key as written by an operator into the form the gateway matches.
 * Credential existence is checked by the caller (it needs the snapshot).
 */
export function normaliseRevocationKey(kind: RevocationKind, written: string): KeyCheck {
  switch (kind) {
    case 'token':
      if (written.length < 1 || written.length > MAX_JTI_LENGTH) return { ok: false, problem: `a token key (its jti) must be 1–${MAX_JTI_LENGTH} characters, not ${written.length}` };
      if (!PRINTABLE_ASCII.test(written)) return { ok: false, problem: 'a token key (its jti) must be printable ASCII' };
      return { ok: true, key: written };
    case 'credential':
      if (!/^[a-z0-9][a-z0-9_.-]{0,62}$/.test(written)) return { ok: false, problem: `"${preview(written)}" is not a credential id (lowercase letters, digits, "_", "-", ".")` };
      return { ok: true, key: written };
    case 'certificate':
      return normaliseCertificateKey(written);
  }
}

/**
 * `sha256:<hex>` — 64 hex digits, or 32 colon-separated pairs as `openssl x509 -fingerprint
 * -sha256` and `X509Certificate.fingerprint256` print them; the prefix may be left out (64 hex
 * digits can only be a SHA-256 here) — becomes `sha256:<64 lowercase hex>`. `serial:<hex>@<issuer DN>` becomes the
 * lowercase serial without leading zeros and the issuer as `X509Certificate.issuer` prints it.
 */
export function normaliseCertificateKey(written: string): KeyCheck {
  const text = written.trim();
  const fingerprint = /^(?:sha256:)?((?:[0-9a-f]{64})|(?:[0-9a-f]{2}(?::[0-9a-f]{2}){31}))$/i.exec(text);
  if (fingerprint) {
    return { ok: true, key: `sha256:${fingerprint[1]!.replaceAll(':', '').toLowerCase()}` };
  }
  if (/^sha256:/i.test(text)) return { ok: false, problem: 'a certificate fingerprint must be sha256: followed by 64 hex digits (or 32 colon-separated hex pairs)' };
  const serial = /^serial:([0-9a-f:]+)@([\s\S]+)$/i.exec(text);
  if (!serial) {
    return { ok: false, problem: 'a certificate key must be sha256:<64 hex digits> (its SHA-256 fingerprint) or serial:<hex serial>@<issuer DN>' };
  }
  const digits = serial[1]!.replaceAll(':', '').toLowerCase();
  if (digits.length === 0 || digits.length > MAX_SERIAL_HEX || serial[1]!.startsWith(':') || serial[1]!.endsWith(':')) {
    return { ok: false, problem: `the serial number must be 1–${MAX_SERIAL_HEX} hex digits (colons between pairs allowed)` };
  }
  const issuer = normaliseIssuerDn(serial[2]!);
  if (!issuer.ok) return issuer;
  const key = `serial:${digits.replace(/^0+(?=.)/, '')}@${issuer.key}`;
  return issuer.warning ? { ok: true, key, warning: issuer.warning } : { ok: true, key };
}

/**
 * Node prints an issuer one attribute per line, in certificate order, with `,` escaped as `\,`
 * (`O=Example\nCN=Example CA`). Operators usually have the one-line form `openssl x509 -noout
 * -issuer` prints (`issuer=O = Example, CN = Example CA`): same order, so it converts exactly.
 * The RFC 4514 order (most specific first, `CN=…, O=…, C=…`) would silently never match; it
 * cannot be told apart in general, so the common shape of it earns a warning.
 */
function normaliseIssuerDn(written: string): KeyCheck {
  let text = written.trim().replace(/^issuer\s*=\s*/i, '');
  if (text.length === 0 || text.length > MAX_ISSUER_DN_LENGTH) return { ok: false, problem: `the issuer DN must be 1–${MAX_ISSUER_DN_LENGTH} characters` };
  if (/[\u0000-\u0009\u000b-\u001f\u007f]/.test(text)) return { ok: false, problem: 'the issuer DN must not contain control characters (other than the line breaks between attributes)' };
  const parts = text.includes('\n') ? text.split('\n') : splitUnescaped(text, ',');
  const attributes: string[] = [];
  for (const part of parts) {
    const attribute = part.trim().replace(/^([A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)+)\s*=\s*/, '$1=');
    if (!/^([A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)+)=./.test(attribute)) {
      return { ok: false, problem: `"${preview(part.trim())}" in the issuer DN is not an attribute (TYPE=value, e.g. CN=Example CA)` };
    }
    attributes.push(attribute);
  }
  text = attributes.join('\n');
  const first = attributes[0]!.split('=', 1)[0]!.toUpperCase();
  const last = attributes.at(-1)!.split('=', 1)[0]!.toUpperCase();
  if (attributes.length > 1 && first === 'CN' && (last === 'C' || last === 'DC')) {
    return {
      ok: true,
      key: text,
      warning: 'the issuer DN starts with CN and ends with C/DC: if it was written most-specific-first (RFC 4514), it will never match; write it in certificate order (as openssl x509 -noout -issuer prints it) or revoke by sha256 fingerprint',
    };
  }
  return { ok: true, key: text };
}

function splitUnescaped(text: string, separator: string): string[] {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < text.length; i++) {
    const char = text[i]!;
    if (char === '\\' && i + 1 < text.length) {
      current += char + text[i + 1]!;
      i++;
    } else if (char === separator) {
      parts.push(current);
      current = '';
    } else {
      current += char;
    }
  }
  parts.push(current);
  return parts;
}

function preview(text: string): string {
  const shown = text.length > 64 ? `${text.slice(0, 64)}…` : text;
  return JSON.stringify(shown).slice(1, -1);
}

// ---------------------------------------------------------------------------------------------
// Request bodies
// ---------------------------------------------------------------------------------------------

const reasonSchema = z
  .string({ error: (issue) => (issue.input === undefined ? 'is required (why this change is made)' : 'must be a string') })
  .refine((text) => text.trim().length >= 1, 'must not be empty')
  .refine((text) => text.length <= MAX_REASON_LENGTH, `must be at most ${MAX_REASON_LENGTH} characters`)
  .refine((text) => !CONTROL_CHARACTERS.test(text), 'must not contain control characters');

const revocationBody = z
  .object({
    kind: z.enum(KINDS, { error: (issue) => (issue.input === undefined ? 'is required' : `must be one of ${KINDS.join(', ')}`) }),
    key: z.string({ error: (issue) => (issue.input === undefined ? 'is required' : 'must be a string') }),
    reason: reasonSchema,
    expires_at: z
      .string({ error: 'must be an RFC 3339 timestamp string' })
      .refine((text) => TIMESTAMP.test(text) && !Number.isNaN(Date.parse(text)), 'must be an RFC 3339 timestamp with an offset, e.g. 2026-12-01T00:00:00Z')
      .optional(),
  })
  .strict();

const partnerActionBody = z.object({ reason: reasonSchema }).strict();

function zodProblem(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => {
      if (issue.code === 'unrecognized_keys') return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((key) => `"${preview(key)}"`).join(', ')}`;
      const path = issue.path.map(String).join('.');
      return path ? `${path} ${issue.message}` : issue.message;
    })
    .join('; ');
}

// ---------------------------------------------------------------------------------------------
// The handler
// ---------------------------------------------------------------------------------------------

interface Call {
  readonly req: http.IncomingMessage;
  readonly res: http.ServerResponse;
  readonly sourceIp: string | null;
  readonly snapshot: Snapshot;
  /** The token holder, once authenticated. */
  actor: string | null;
  /** The audit action this call attempts (for the refusal record of a change that fails). */
  attempted: EventAction | null;
  partnerId: string | null;
}

export function createAdminHandler(deps: AdminDeps): AdminHandler {
  return (req, res) => {
    const call: Call = { req, res, sourceIp: req.socket.remoteAddress ?? null, snapshot: deps.snapshot(), actor: null, attempted: null, partnerId: null };
    handle(deps, call).catch((error: unknown) => {
      if (error instanceof AdminRefusal) {
        refuse(deps, call, error);
        return;
      }
      log('error', 'admin.internal_error', { message: error instanceof Error ? error.message : String(error) });
      sendProblem(call, 'internal_error', 'the admin API failed unexpectedly; see the gateway log');
    });
  };
}

async function handle(deps: AdminDeps, call: Call): Promise<void> {
  const rawPath = (call.req.url ?? '/').split('?', 1)[0]!;
  authenticate(call);
  const segments = rawPath.split('/').slice(2);
  const method = call.req.method ?? 'GET';

  if (segments.length === 1 && segments[0] === 'revocations') {
    if (method === 'GET') return listRevocations(deps, call);
    if (method === 'POST') return createRevocation(deps, call);
    throw methodNotAllowed('GET, POST');
  }
  if (segments.length === 3 && segments[0] === 'revocations') {
    if (method !== 'DELETE') throw methodNotAllowed('DELETE');
    return removeRevocation(deps, call, segments[1]!, segments[2]!);
  }
  if (segments.length === 3 && segments[0] === 'partners' && (PARTNER_ACTIONS as readonly string[]).includes(segments[2]!)) {
    if (method !== 'POST') throw methodNotAllowed('POST');
    return changePartnerStatus(deps, call, segments[1]!, segments[2] as PartnerAction);
  }
  if (segments.length > 2 && segments[0] === 'revocations') {
    throw new AdminRefusal('not_found', 'no such admin endpoint: a revocation is addressed as /admin/revocations/{kind}/{key}, with the key URL-encoded (a "/" in it as %2F)');
  }
  throw new AdminRefusal('not_found', `no admin endpoint at ${preview(rawPath)}; see docs/admin.md`);
}

/**
 * RFC 6750 §2.1 bearer token, compared by SHA-256 digest against every configured token with
 * `timingSafeEqual` and no early exit, so the time taken says nothing about which digests exist.
 */
function authenticate(call: Call): void {
  const tokens = call.snapshot.adminTokens;
  const challenge = `Bearer realm="${ADMIN_REALM}"`;
  if (tokens.size === 0) {
    throw new AdminRefusal('unauthenticated', 'the admin API has no tokens configured (admin.tokens), so it refuses every call; create one with `portcullis admin token`', {
      'www-authenticate': challenge,
    });
  }
  const header = call.req.headers.authorization;
  const match = header === undefined ? null : /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(header);
  if (match === null) {
    throw new AdminRefusal('unauthenticated', header === undefined ? 'an admin token is required: Authorization: Bearer <token>' : 'the Authorization header is not a bearer token (Authorization: Bearer <token>)', {
      'www-authenticate': header === undefined ? challenge : `${challenge}, error="invalid_request"`,
    });
  }
  const presented = crypto.createHash('sha256').update(match[1]!, 'utf8').digest();
  let holder: string | null = null;
  for (const [sha256, id] of tokens) {
    const expected = Buffer.from(sha256, 'hex');
    if (expected.length === presented.length && crypto.timingSafeEqual(presented, expected) && holder === null) holder = id;
  }
  if (holder === null) {
    throw new AdminRefusal('unauthenticated', 'the admin token is not valid', { 'www-authenticate': `${challenge}, error="invalid_token"` });
  }
  call.actor = holder;
}

function methodNotAllowed(allow: string): AdminRefusal {
  return new AdminRefusal('method_not_allowed', `allowed here: ${allow}`, { allow });
}

async function listRevocations(deps: AdminDeps, call: Call): Promise<void> {
  const listed = await storeCall(() => deps.store.list());
  sendJson(call, 200, {
    revocations: listed.revocations.map(revocationJson),
    partners: listed.partners.map(partnerChangeJson),
  });
}

async function createRevocation(deps: AdminDeps, call: Call): Promise<void> {
  call.attempted = 'revocation.created';
  const parsed = revocationBody.safeParse(await readJsonBody(call));
  if (!parsed.success) throw new AdminRefusal('invalid_request', zodProblem(parsed.error));
  const body = parsed.data;
  const normalised = normaliseRevocationKey(body.kind, body.key);
  if (!normalised.ok) throw new AdminRefusal('invalid_request', `key: ${normalised.problem}`);
  if (body.kind === 'credential') {
    const partnerId = credentialPartner(call.snapshot, normalised.key);
    if (partnerId === null) throw new AdminRefusal('invalid_request', `key: no credential "${normalised.key}" in the current configuration`);
    call.partnerId = partnerId;
  }
  const now = Date.now();
  const expiresAt = body.expires_at === undefined ? null : Date.parse(body.expires_at);
  if (expiresAt !== null && expiresAt <= now) throw new AdminRefusal('invalid_request', 'expires_at is in the past: nothing to revoke');
  requireAuditable(deps);

  const revocation: Revocation = { kind: body.kind, key: normalised.key, reason: body.reason, actor: call.actor!, at: now, expiresAt };
  const propagation = await storeCall(() => deps.store.revoke(revocation));
  const recorded = recordChange(deps, call, 'revocation.created', body.reason, propagation, { kind: revocation.kind, key: revocation.key, expiresAt });
  sendJson(call, 201, {
    revocation: revocationJson(revocation),
    propagation: propagationJson(propagation),
    audit_recorded: recorded,
    ...(normalised.warning ? { warnings: [normalised.warning] } : {}),
  });
}

async function removeRevocation(deps: AdminDeps, call: Call, kindSegment: string, keySegment: string): Promise<void> {
  call.attempted = 'revocation.removed';
  const kind = decodeSegment(kindSegment, 'kind');
  if (!(KINDS as readonly string[]).includes(kind)) throw new AdminRefusal('invalid_request', `kind must be one of ${KINDS.join(', ')}, not "${preview(kind)}"`);
  const normalised = normaliseRevocationKey(kind as RevocationKind, decodeSegment(keySegment, 'key'));
  if (!normalised.ok) throw new AdminRefusal('invalid_request', `key: ${normalised.problem}`);
  if (kind === 'credential') call.partnerId = credentialPartner(call.snapshot, normalised.key);
  requireAuditable(deps);

  const result = await storeCall(() => deps.store.unrevoke(kind as RevocationKind, normalised.key, call.actor!));
  if (!result.removed) throw new AdminRefusal('revocation_not_found', `no ${kind} revocation with key "${preview(normalised.key)}"`);
  const recorded = recordChange(deps, call, 'revocation.removed', null, result.propagation, { kind, key: normalised.key, expiresAt: null });
  sendJson(call, 200, { removed: { kind, key: normalised.key }, propagation: propagationJson(result.propagation), audit_recorded: recorded });
}

async function changePartnerStatus(deps: AdminDeps, call: Call, idSegment: string, action: PartnerAction): Promise<void> {
  call.attempted = action === 'suspend' ? 'partner.suspended' : action === 'resume' ? 'partner.resumed' : 'partner.offboarded';
  const partnerId = decodeSegment(idSegment, 'partner id');
  const partner = call.snapshot.partners.get(partnerId);
  // A typo in the id is the likelier mistake, so it is reported before the body.
  if (partner === undefined) throw new AdminRefusal('partner_not_found', `no partner "${preview(partnerId)}" in the current configuration`);
  call.partnerId = partner.id;
  const parsed = partnerActionBody.safeParse(await readJsonBody(call));
  if (!parsed.success) throw new AdminRefusal('invalid_request', zodProblem(parsed.error));
  const { reason } = parsed.data;

  const view = deps.store.revocations.current();
  if ('unavailable' in view) throw new AdminRefusal('state_unavailable', `the partner's current status cannot be read: ${view.unavailable}`);
  const override = view.partnerStatus(partner.id);
  const effective = effectiveStatus(partner.status, override?.status ?? null);
  if (effective === 'offboarded') {
    throw new AdminRefusal(
      'partner_offboarded',
      `partner "${partner.id}" is offboarded (${override ? `by ${override.actor} at ${new Date(override.at).toISOString()}` : 'in the configuration'}); offboarding is final and cannot be ${action === 'offboard' ? 'repeated' : action === 'resume' ? 'undone' : 'changed to a suspension'}`,
    );
  }
  requireAuditable(deps);

  const now = Date.now();
  const change: PartnerStatusChange | null = action === 'resume' ? null : { partnerId: partner.id, status: action === 'suspend' ? 'suspended' : 'offboarded', reason, actor: call.actor!, at: now };
  const propagation = await storeCall(() => deps.store.setPartnerStatus(partner.id, change, call.actor!));
  const recorded = recordChange(deps, call, call.attempted, reason, propagation, null);
  const status = effectiveStatus(partner.status, change?.status ?? null);
  sendJson(call, 200, {
    partner: {
      id: partner.id,
      status,
      configured_status: partner.status,
      override: change === null ? null : partnerChangeJson(change),
    },
    ...(action === 'resume'
      ? { detail: `the runtime override is removed; the configured status (${partner.status}) applies${partner.status === 'active' ? '' : ' — change it in the configuration to reinstate the partner'}` }
      : {}),
    propagation: propagationJson(propagation),
    audit_recorded: recorded,
  });
}

const STATUS_RANK = { active: 0, suspended: 1, offboarded: 2 } as const satisfies Record<PartnerStatus, number>;

/** As the gateway applies it (src/pipeline/credential.ts): a runtime status only ever restricts. */
function effectiveStatus(configured: PartnerStatus, override: PartnerStatus | null): PartnerStatus {
  return override !== null && STATUS_RANK[override] > STATUS_RANK[configured] ? override : configured;
}

/** The partner of a configured credential, or null when no credential has that id. */
function credentialPartner(snapshot: Snapshot, credentialId: string): string | null {
  const { jwt, introspection, apiKeys } = snapshot.credentials;
  for (const byClient of [...jwt.values(), ...introspection.values()]) {
    for (const credential of byClient.values()) if (credential.id === credentialId) return credential.partnerId;
  }
  for (const credential of apiKeys.values()) if (credential.id === credentialId) return credential.partnerId;
  return null;
}

function decodeSegment(segment: string, what: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new AdminRefusal('invalid_request', `the ${what} in the path is not valid percent-encoded UTF-8`);
  }
}

function requireAuditable(deps: AdminDeps): void {
  if (!deps.auditHealthy()) throw new AdminRefusal('audit_unavailable', 'the audit trail cannot take records right now (see the gateway log and /readyz); nothing was changed');
}

async function storeCall<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    log('error', 'admin.state_failed', { message: error instanceof Error ? error.message : String(error) });
    throw new AdminRefusal('state_unavailable', `the state store failed: ${error instanceof Error ? error.message : String(error)}; the change was not confirmed — list the revocations to see the current state`);
  }
}

function recordChange(
  deps: AdminDeps,
  call: Call,
  action: EventAction,
  note: string | null,
  propagation: Propagation,
  revocation: EventInput['revocation'],
): boolean {
  propagation = { ...propagation, elapsedMs: roundedMs(propagation.elapsedMs) };
  const record = eventRecord({
    action,
    outcome: 'success',
    reason: 'applied',
    actor: call.actor,
    partnerId: call.partnerId,
    configHash: call.snapshot.hash,
    note,
    revocation,
    propagation,
    sourceIp: call.sourceIp,
  });
  const recorded = deps.audit(record, call.partnerId);
  // The change is made and pushed; undoing a revocation because its record failed would be the
  // unsafe direction. The trail was healthy a moment ago, so this is rare and loud.
  if (!recorded) log('error', 'admin.audit_failed', { action, actor: call.actor, message: 'the change was applied but its audit record could not be appended' });
  log('info', 'admin.change', {
    action,
    actor: call.actor,
    partner_id: call.partnerId,
    ...(revocation ? { kind: revocation.kind, revocation_key: revocation.key } : {}),
    instances: propagation.instances,
    acknowledged: propagation.acknowledged,
    elapsed_ms: propagation.elapsedMs,
  });
  return recorded;
}

/**
 * Every refused change attempt, and every failed authentication, is recorded (`admin.refused`);
 * a refused read is not. No secret goes into the record: never the presented token.
 */
function refuse(deps: AdminDeps, call: Call, refusal: AdminRefusal): void {
  const unauthenticated = refusal.code === 'unauthenticated';
  if ((unauthenticated || call.attempted !== null) && refusal.code !== 'audit_unavailable') {
    deps.audit(
      eventRecord({
        action: 'admin.refused',
        outcome: 'failure',
        reason: unauthenticated ? (call.snapshot.adminTokens.size === 0 ? 'no_admin_tokens' : call.req.headers.authorization === undefined ? 'token_missing' : 'token_invalid') : refusal.code,
        actor: call.actor,
        partnerId: call.partnerId,
        configHash: call.snapshot.hash,
        note: `${call.req.method ?? ''} ${(call.req.url ?? '').split('?', 1)[0]!.slice(0, 200)}${call.attempted ? ` (${call.attempted})` : ''}: ${refusal.message}`,
        sourceIp: call.sourceIp,
      }),
      call.partnerId,
    );
  }
  if (unauthenticated) log('warn', 'admin.unauthenticated', { source_ip: call.sourceIp, detail: refusal.message });
  sendProblem(call, refusal.code, refusal.message, refusal.headers);
}

// ---------------------------------------------------------------------------------------------
// I/O
// ---------------------------------------------------------------------------------------------

/** Reads at most `MAX_ADMIN_BODY_BYTES`; the body must be UTF-8 JSON (duplicate members refused). */
async function readJsonBody(call: Call): Promise<unknown> {
  const { req } = call;
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > MAX_ADMIN_BODY_BYTES) {
    throw new AdminRefusal('body_too_large', `the body is ${declared} bytes; at most ${MAX_ADMIN_BODY_BYTES} are accepted`);
  }
  const contentType = req.headers['content-type'];
  if (contentType !== undefined && !/^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i.test(contentType)) {
    throw new AdminRefusal('invalid_json', `content-type must be application/json, not "${preview(contentType)}"`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_ADMIN_BODY_BYTES) throw new AdminRefusal('body_too_large', `the body exceeds ${MAX_ADMIN_BODY_BYTES} bytes`);
      chunks.push(chunk);
    }
  } catch (error) {
    if (error instanceof AdminRefusal) throw error;
    // The client went away or broke the framing: nothing to answer, nothing changed.
    throw new AdminRefusal('invalid_json', `the body could not be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  if (size === 0) throw new AdminRefusal('invalid_json', 'a JSON object body is required');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks));
  } catch {
    throw new AdminRefusal('invalid_json', 'the body is not valid UTF-8');
  }
  const parsed = parseStrictJson(text);
  if (!parsed.ok) throw new AdminRefusal('invalid_json', `the body is not valid JSON: ${parsed.detail}`);
  if (typeof parsed.value !== 'object' || parsed.value === null || Array.isArray(parsed.value)) throw new AdminRefusal('invalid_json', 'the body must be a JSON object');
  // The strict parser returns null-prototype objects; the schema wants ordinary ones.
  return { ...(parsed.value as Record<string, unknown>) };
}

function sendJson(call: Call, status: number, body: object): void {
  const text = `${JSON.stringify(body)}\n`;
  write(call, status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), 'cache-control': 'no-store' }, text);
}

function sendProblem(call: Call, code: AdminProblemCode, detail: string, headers: Record<string, string> = {}): void {
  const problem = ADMIN_PROBLEMS[code];
  const text = `${JSON.stringify({ type: ADMIN_PROBLEM_TYPE_BASE + code, title: problem.title, status: problem.status, code, detail })}\n`;
  const responseHeaders: Record<string, string> = {
    'content-type': 'application/problem+json',
    'content-length': String(Buffer.byteLength(text)),
    'cache-control': 'no-store',
    ...headers,
  };
  // A body we did not read (refused before reading, or cut short at the limit) would otherwise
  // be drained from a client we no longer trust, or desynchronise the connection.
  const { headers: requestHeaders } = call.req;
  const hasBody = (requestHeaders['content-length'] !== undefined && requestHeaders['content-length'] !== '0') || requestHeaders['transfer-encoding'] !== undefined;
  if (hasBody && !call.req.readableEnded) responseHeaders['connection'] = 'close';
  write(call, problem.status, responseHeaders, text);
}

function write(call: Call, status: number, headers: Record<string, string>, text: string): void {
  const { res, req } = call;
  if (res.headersSent || res.writableEnded || res.destroyed) return;
  res.writeHead(status, headers);
  res.end(req.method === 'HEAD' ? undefined : text);
}

// ---------------------------------------------------------------------------------------------
// JSON shapes (snake_case, timestamps as RFC 3339)
// ---------------------------------------------------------------------------------------------

function revocationJson(revocation: Revocation): object {
  return {
    kind: revocation.kind,
    key: revocation.key,
    reason: revocation.reason,
    actor: revocation.actor,
    at: new Date(revocation.at).toISOString(),
    expires_at: revocation.expiresAt === null ? null : new Date(revocation.expiresAt).toISOString(),
  };
}

function partnerChangeJson(change: PartnerStatusChange): object {
  return { partner_id: change.partnerId, status: change.status, reason: change.reason, actor: change.actor, at: new Date(change.at).toISOString() };
}

function propagationJson(propagation: Propagation): object {
  return { instances: propagation.instances, acknowledged: propagation.acknowledged, elapsed_ms: roundedMs(propagation.elapsedMs) };
}

/** Hundredths of a millisecond: finer digits are timer noise. */
function roundedMs(ms: number): number {
  return Math.round(ms * 100) / 100;
}
