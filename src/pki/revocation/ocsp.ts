/**
 * OCSP client (RFC 6960) with a cache of verified answers.
 *
 * A query is one POST of an OCSPRequest (§4.1.1: CertID with SHA-1 hashes of the issuer's name
 * and key, the serial; a random nonce, RFC 8954) to the responder, within the timeout and a size
 * cap, `application/ocsp-response` required. The answer counts only when (§3.2, §4.2.2.2):
 * - the responder says `successful` with a BasicOCSPResponse;
 * - the signature verifies with the key of its signer, and the signer is the issuer itself, or a
 *   certificate included in the response that the issuer signed, that carries id-kp-OCSPSigning
 *   and is within its validity (a delegated responder); nothing else is authorised;
 * - a SingleResponse is about exactly our CertID; its thisUpdate is not in the future (beyond a
 *   small skew), its nextUpdate has not passed, and without a nextUpdate it is recent;
 * - when it echoes a nonce, it is ours (a responder that ignores nonces is accepted: most
 *   pre-sign their answers, RFC 5019 §2.1, and nextUpdate bounds the replay window).
 *
 * Caching: `good` until min(nextUpdate, received + maxCacheMs), never beyond nextUpdate; `revoked`
 * until nextUpdate; `unknown` and every failure are never cached. At most one query per
 * certificate and responder is in flight: concurrent checks share it.
 */
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { log } from '../../log.ts';
import { displayUrl } from './fetch.ts';
import { CERT_ID_HASHES, checkSignature, nameDer } from './x509.ts';
import type { IssuerInfo, SubjectCertificateInfo } from './x509.ts';

/** Largest OCSP response accepted: a few KB with a responder certificate; anything near this is not one. */
export const MAX_OCSP_RESPONSE_BYTES = 64 * 1024;
/** How far in the future a thisUpdate may be (responder clock ahead of ours); OpenSSL's default too. */
export const OCSP_CLOCK_SKEW_MS = 5 * 60_000;
/**
 * An answer without nextUpdate ("newer information is always available", §4.2.2.1) counts only
 * when its thisUpdate is this recent, and is cached for at most this long (or `maxCacheMs`).
 */
export const OCSP_MAX_AGE_WITHOUT_NEXT_UPDATE_MS = 5 * 60_000;
/** Most cached answers kept; past it, expired ones go first, then the oldest. */
export const MAX_OCSP_CACHE_ENTRIES = 50_000;
/** A failing responder is logged at most this often. */
const FAILURE_LOG_INTERVAL_MS = 10_000;

const OID_SHA1 = '1.3.14.3.2.26';
const OID_OCSP_BASIC = '1.3.6.1.5.5.7.48.1.1';
const OID_OCSP_NONCE = '1.3.6.1.5.5.7.48.1.2';
const OID_KP_OCSP_SIGNING = '1.3.6.1.5.5.7.3.9';
const NONCE_BYTES = 32;

/** OCSPResponseStatus (§4.2.1). */
const RESPONSE_STATUS: Readonly<Record<number, string>> = {
  0: 'successful',
  1: 'malformedRequest',
  2: 'internalError',
  3: 'tryLater',
  5: 'sigRequired',
  6: 'unauthorized',
};

export type OcspVerdict =
  | { readonly kind: 'good' }
  | { readonly kind: 'revoked'; readonly detail: string }
  | { readonly kind: 'unavailable'; readonly detail: string };

export interface OcspQueryOptions {
  readonly timeoutMs: number;
  readonly maxCacheMs: number;
}

export interface OcspStats {
  readonly cached: number;
  readonly inFlight: number;
  readonly queries: number;
  readonly failures: number;
  readonly cacheHits: number;
}

export interface OcspClientOptions {
  readonly now: () => number;
  /** POSTs a DER request (timeout, size cap, `application/ocsp-response` required, no redirects). */
  readonly post: (url: URL, body: Uint8Array, timeoutMs: number) => Promise<Buffer>;
}

interface CachedAnswer {
  readonly verdict: OcspVerdict;
  readonly expiresAt: number;
}

class OcspError extends Error {
  override readonly name = 'OcspError';
}

export class OcspClient {
  readonly #options: OcspClientOptions;
  readonly #cache = new Map<string, CachedAnswer>();
  readonly #inFlight = new Map<string, Promise<OcspVerdict>>();
  readonly #lastFailureLog = new Map<string, number>();
  #queries = 0;
  #failures = 0;
  #cacheHits = 0;

  constructor(options: OcspClientOptions) {
    this.#options = options;
  }

  /**
   * The status of `subject` at `responder`: from the cache synchronously, else a Promise of one
   * (shared) query. `key` identifies the certificate, its issuer, the responder and `maxCacheMs`
   * (the caller builds it once per certificate and policy).
   */
  status(key: string, subject: SubjectCertificateInfo, issuer: IssuerInfo, responder: URL, options: OcspQueryOptions): OcspVerdict | Promise<OcspVerdict> {
    const cached = this.#cache.get(key);
    if (cached !== undefined) {
      if (this.#options.now() < cached.expiresAt) {
        this.#cacheHits += 1;
        return cached.verdict;
      }
      this.#cache.delete(key);
    }
    const pending = this.#inFlight.get(key);
    if (pending !== undefined) return pending;
    const query = this.#query(subject, issuer, responder, options, key).finally(() => this.#inFlight.delete(key));
    this.#inFlight.set(key, query);
    return query;
  }

  stats(): OcspStats {
    return { cached: this.#cache.size, inFlight: this.#inFlight.size, queries: this.#queries, failures: this.#failures, cacheHits: this.#cacheHits };
  }

  clear(): void {
    this.#cache.clear();
  }

  async #query(subject: SubjectCertificateInfo, issuer: IssuerInfo, responder: URL, options: OcspQueryOptions, key: string): Promise<OcspVerdict> {
    this.#queries += 1;
    const where = `OCSP responder ${displayUrl(responder)}`;
    try {
      const certId = expectedCertId(subject, issuer, OID_SHA1);
      const nonce = randomBytes(NONCE_BYTES);
      const body = buildRequest(certId, subject, nonce);
      const answer = await this.#options.post(responder, body, options.timeoutMs);
      const receivedAt = this.#options.now();
      const { verdict, expiresAt } = evaluateResponse(answer, { subject, issuer, nonce, now: receivedAt, maxCacheMs: options.maxCacheMs, where });
      if (expiresAt > receivedAt) this.#store(key, { verdict, expiresAt });
      return verdict;
    } catch (error) {
      this.#failures += 1;
      const detail = error instanceof Error ? error.message : String(error);
      this.#logFailure(responder, detail);
      return { kind: 'unavailable', detail: detail.startsWith('OCSP responder') ? detail : `${where}: ${detail}` };
    }
  }

  #store(key: string, answer: CachedAnswer): void {
    if (this.#cache.size >= MAX_OCSP_CACHE_ENTRIES) {
      const now = this.#options.now();
      for (const [candidate, entry] of this.#cache) if (entry.expiresAt <= now) this.#cache.delete(candidate);
      // Still full: Map order is insertion order, so the first entries are the oldest.
      for (const candidate of this.#cache.keys()) {
        if (this.#cache.size < MAX_OCSP_CACHE_ENTRIES) break;
        this.#cache.delete(candidate);
      }
    }
    this.#cache.set(key, answer);
  }

  #logFailure(responder: URL, detail: string): void {
    const now = Date.now();
    const last = this.#lastFailureLog.get(responder.origin) ?? Number.NEGATIVE_INFINITY;
    if (now - last < FAILURE_LOG_INTERVAL_MS) return;
    this.#lastFailureLog.set(responder.origin, now);
    log('warn', 'revocation.ocsp_failed', { responder: displayUrl(responder), error: detail });
  }
}

interface CertIdValues {
  readonly hashOid: string;
  readonly issuerNameHash: Buffer;
  readonly issuerKeyHash: Buffer;
}

/** §4.1.1: hashes over the DER of the certificate's issuer name and over the issuer's subjectPublicKey value. */
function expectedCertId(subject: SubjectCertificateInfo, issuer: IssuerInfo, hashOid: string): CertIdValues {
  const algorithm = CERT_ID_HASHES[hashOid];
  if (algorithm === undefined) throw new OcspError(`CertID hash algorithm ${hashOid} is not supported`);
  return {
    hashOid,
    issuerNameHash: createHash(algorithm).update(subject.issuerNameDer).digest(),
    issuerKeyHash: createHash(algorithm).update(issuer.publicKeyBits).digest(),
  };
}

function buildRequest(certId: CertIdValues, subject: SubjectCertificateInfo, nonce: Buffer): Uint8Array {
  const reqCert = new pkijs.CertID({
    hashAlgorithm: new pkijs.AlgorithmIdentifier({ algorithmId: certId.hashOid, algorithmParams: new asn1js.Null() }),
    issuerNameHash: new asn1js.OctetString({ valueHex: certId.issuerNameHash }),
    issuerKeyHash: new asn1js.OctetString({ valueHex: certId.issuerKeyHash }),
    serialNumber: new asn1js.Integer({ valueHex: subject.serialBytes }),
  });
  const request = new pkijs.OCSPRequest();
  request.tbsRequest.requestList = [new pkijs.Request({ reqCert })];
  // RFC 8954 §2.1: Nonce ::= OCTET STRING (SIZE(1..32)), itself the extnValue's content.
  request.tbsRequest.requestExtensions = [
    new pkijs.Extension({ extnID: OID_OCSP_NONCE, extnValue: new asn1js.OctetString({ valueHex: nonce }).toBER() }),
  ];
  return new Uint8Array(request.toSchema(true).toBER());
}

interface EvaluationContext {
  readonly subject: SubjectCertificateInfo;
  readonly issuer: IssuerInfo;
  readonly nonce: Buffer;
  readonly now: number;
  readonly maxCacheMs: number;
  readonly where: string;
}

/** Parses and checks a response; throws `OcspError` when it cannot be trusted. `unknown` is an untrusted answer too. */
export function evaluateResponse(der: Buffer, context: EvaluationContext): { verdict: OcspVerdict; expiresAt: number } {
  const { where, now } = context;
  let response: pkijs.OCSPResponse;
  try {
    response = pkijs.OCSPResponse.fromBER(der);
  } catch (error) {
    throw new OcspError(`${where} answered something that is not an OCSP response: ${(error as Error).message}`);
  }
  const status = response.responseStatus.valueBlock.valueDec;
  if (status !== 0) throw new OcspError(`${where} answered ${RESPONSE_STATUS[status] ?? `status ${status}`}`);
  if (response.responseBytes === undefined || response.responseBytes.responseType !== OID_OCSP_BASIC) {
    throw new OcspError(`${where} answered a response type other than id-pkix-ocsp-basic`);
  }
  let basic: pkijs.BasicOCSPResponse;
  try {
    basic = pkijs.BasicOCSPResponse.fromBER(response.responseBytes.response.valueBlock.valueHexView);
  } catch (error) {
    throw new OcspError(`${where} answered a malformed BasicOCSPResponse: ${(error as Error).message}`);
  }
  const signerProblem = authenticate(basic, context);
  if (signerProblem !== null) throw new OcspError(`${where}: ${signerProblem}`);

  const data = basic.tbsResponseData;
  const echoed = data.responseExtensions?.find((extension) => extension.extnID === OID_OCSP_NONCE);
  if (echoed !== undefined) {
    const expected = Buffer.from(new asn1js.OctetString({ valueHex: context.nonce }).toBER());
    if (!Buffer.from(echoed.extnValue.valueBlock.valueHexView).equals(expected)) throw new OcspError(`${where} answered with another request's nonce`);
  }

  const matching = data.responses.filter((single) => certIdMatches(single.certID, context));
  if (matching.length === 0) throw new OcspError(`${where} answered about another certificate (no SingleResponse for serial ${context.subject.serial})`);

  let verdict: OcspVerdict = { kind: 'good' };
  let expiresAt = Number.POSITIVE_INFINITY;
  for (const single of matching) {
    const thisUpdate = single.thisUpdate.getTime();
    const nextUpdate = single.nextUpdate?.getTime() ?? null;
    if (!Number.isFinite(thisUpdate)) throw new OcspError(`${where} answered without a valid thisUpdate`);
    if (thisUpdate > now + OCSP_CLOCK_SKEW_MS) throw new OcspError(`${where} answered with thisUpdate ${iso(thisUpdate)} in the future`);
    if (nextUpdate !== null && now >= nextUpdate) throw new OcspError(`${where} answered with nextUpdate ${iso(nextUpdate)} already passed`);
    if (nextUpdate === null && thisUpdate < now - OCSP_MAX_AGE_WITHOUT_NEXT_UPDATE_MS) {
      throw new OcspError(`${where} answered without nextUpdate and with thisUpdate ${iso(thisUpdate)} older than ${OCSP_MAX_AGE_WITHOUT_NEXT_UPDATE_MS / 60_000} minutes`);
    }
    const tag = (single.certStatus as { idBlock?: { tagClass?: number; tagNumber?: number } }).idBlock;
    // CertStatus ::= CHOICE { good [0], revoked [1], unknown [2] } (context-specific tags).
    if (tag?.tagClass !== 3 || tag.tagNumber === undefined || tag.tagNumber > 2) throw new OcspError(`${where} answered a malformed certStatus`);
    if (tag.tagNumber === 2) throw new OcspError(`${where} answered "unknown" for serial ${context.subject.serial} (it does not know this certificate)`);
    if (tag.tagNumber === 1) {
      verdict = { kind: 'revoked', detail: `${where} answered "revoked" for serial ${context.subject.serial}${revocationTime(single.certStatus)}` };
      expiresAt = Math.min(expiresAt, nextUpdate ?? now + context.maxCacheMs);
    } else if (verdict.kind === 'good') {
      const bound = nextUpdate ?? now + Math.min(context.maxCacheMs, OCSP_MAX_AGE_WITHOUT_NEXT_UPDATE_MS);
      expiresAt = Math.min(expiresAt, bound, now + context.maxCacheMs);
    }
  }
  return { verdict, expiresAt };
}

function certIdMatches(certId: pkijs.CertID, context: EvaluationContext): boolean {
  const hashOid = certId.hashAlgorithm.algorithmId;
  if (CERT_ID_HASHES[hashOid] === undefined) return false;
  // A responder may answer with another hash algorithm than we asked with; compute ours with it.
  const expected = expectedCertId(context.subject, context.issuer, hashOid);
  return (
    Buffer.from(certId.issuerNameHash.valueBlock.valueHexView).equals(expected.issuerNameHash) &&
    Buffer.from(certId.issuerKeyHash.valueBlock.valueHexView).equals(expected.issuerKeyHash) &&
    Buffer.from(certId.serialNumber.valueBlock.valueHexView).equals(context.subject.serialBytes)
  );
}

interface SignerCandidate {
  readonly label: string;
  readonly subjectDer: Buffer;
  readonly keyHash: Buffer;
  readonly publicKey: KeyObject;
  /** null for the issuer itself; the certificate of a would-be delegated responder. */
  readonly certificate: X509Certificate | null;
}

/**
 * §4.2.2.2: the response is signed by the issuer (the CA that issued the certificate), or by a
 * delegated responder: a certificate included in the response, issued directly by that CA, with
 * id-kp-OCSPSigning in its extended key usage. Returns null when so, else why not.
 */
function authenticate(basic: pkijs.BasicOCSPResponse, context: EvaluationContext): string | null {
  const { issuer, now } = context;
  const candidates: SignerCandidate[] = [
    {
      label: 'the issuing CA',
      subjectDer: issuer.subjectDer,
      keyHash: createHash('sha1').update(issuer.publicKeyBits).digest(),
      publicKey: issuer.publicKey,
      certificate: null,
    },
  ];
  for (const included of basic.certs ?? []) {
    try {
      const certificate = new X509Certificate(Buffer.from(included.toSchema().toBER()));
      candidates.push({
        label: `responder certificate "${certificate.subject.replace(/\n/g, ', ')}"`,
        subjectDer: nameDer(included.subject),
        keyHash: createHash('sha1').update(included.subjectPublicKeyInfo.subjectPublicKey.valueBlock.valueHexView).digest(),
        publicKey: certificate.publicKey,
        certificate,
      });
    } catch {
      // An unparseable included certificate authorises nothing; the others may still.
    }
  }
  const responderId: unknown = basic.tbsResponseData.responderID;
  // ResponderID ::= CHOICE { byName [1] Name, byKey [2] KeyHash } (SHA-1 of the subjectPublicKey value).
  const named = (candidate: SignerCandidate): boolean =>
    responderId instanceof pkijs.RelativeDistinguishedNames
      ? nameDer(responderId).equals(candidate.subjectDer)
      : responderId instanceof asn1js.OctetString && Buffer.from(responderId.valueBlock.valueHexView).equals(candidate.keyHash);
  const namedCandidates = candidates.filter(named);
  if (namedCandidates.length === 0) return 'the response is signed by a responder that is neither the issuing CA nor a certificate included in the response';
  const tbs = basic.tbsResponseData.tbsView;
  const signature = basic.signature.valueBlock.valueHexView;
  const problems: string[] = [];
  for (const candidate of namedCandidates) {
    const signatureProblem = checkSignature(basic.signatureAlgorithm.algorithmId, tbs, signature, candidate.publicKey);
    if (signatureProblem !== null) {
      problems.push(`${candidate.label}: ${signatureProblem}`);
      continue;
    }
    const authorisationProblem = candidate.certificate === null ? null : delegationProblem(candidate.certificate, issuer, now);
    if (authorisationProblem === null) return null;
    problems.push(`${candidate.label} is not authorised to answer for this CA: ${authorisationProblem}`);
  }
  return `response signature not accepted (${problems.join('; ')})`;
}

function delegationProblem(responder: X509Certificate, issuer: IssuerInfo, now: number): string | null {
  if (!responder.checkIssued(issuer.certificate) || !responder.verify(issuer.publicKey)) return 'it is not issued by the CA that issued the certificate';
  const extendedKeyUsage = (responder.keyUsage as string[] | undefined) ?? [];
  if (!extendedKeyUsage.includes(OID_KP_OCSP_SIGNING)) return 'it lacks the id-kp-OCSPSigning extended key usage';
  if (now < responder.validFromDate.getTime() || now > responder.validToDate.getTime()) return 'it is outside its validity period';
  return null;
}

function revocationTime(certStatus: unknown): string {
  // RevokedInfo ::= SEQUENCE { revocationTime GeneralizedTime, revocationReason [0] EXPLICIT CRLReason OPTIONAL }
  const first = (certStatus as { valueBlock?: { value?: unknown[] } }).valueBlock?.value?.[0];
  if (first instanceof asn1js.GeneralizedTime) {
    const time = first.toDate().getTime();
    if (Number.isFinite(time)) return ` (revoked ${iso(time)})`;
  }
  return '';
}

function iso(time: number): string {
  return new Date(time).toISOString();
}
