/**
 * Live revocation status of a partner's client certificate (issue 4 "Revocation, live"): CRL
 * (`crl.ts`) and/or OCSP (`ocsp.ts`) as the partner's `RevocationPolicy` says.
 *
 * How the methods combine, when both are configured:
 * - `revoked` from either wins (a loaded CRL that lists the serial, or cannot answer at all,
 *   settles the check without asking OCSP);
 * - `good` needs every configured method to say `good`: one `good` and one that cannot answer is
 *   `unavailable` (fail closed, SECURITY.md; `on_unavailable: allow` is the pipeline's business);
 * - the `good` record names `ocsp` as its source when OCSP was asked (the fresher answer), else `crl`.
 * With neither configured the answer is `good` from source `none`.
 *
 * Within CRL checking, the sources are the file, the URL and (with `fromCertificate`) the
 * certificate's distribution point. A source whose CRL is another CA's does not apply; the serial
 * on any applicable CRL is `revoked`; `good` needs at least one applicable CRL and no source
 * that could not answer; a distribution point on a host that is not on `allowedHosts` is never
 * fetched and counts as a source that could not answer. OCSP asks the configured responder, or
 * (with `fromCertificate`) the first responder in the certificate's AIA whose host is allowed.
 *
 * `check` answers synchronously from cache when it can, the common path: a cached OCSP answer
 * and a CRL that is not due for refresh cost a few Map lookups. It returns a Promise only when it
 * must wait for a fetch, and it never throws or rejects: anything unexpected is `unavailable`.
 */
import type { X509Certificate } from 'node:crypto';
import type { Agent } from 'undici';
import type { RevocationPolicy, RevocationStatus } from '../types.ts';
import { CrlSource, MAX_CRL_BYTES } from './crl.ts';
import type { CrlLocation, CrlSourceStats, CrlVerdict } from './crl.ts';
import { createRevocationAgent, displayUrl, fetchDocument, hostAllowed, parseFetchUrl } from './fetch.ts';
import { MAX_OCSP_RESPONSE_BYTES, OcspClient } from './ocsp.ts';
import type { OcspStats, OcspVerdict } from './ocsp.ts';
import { describeIssuer, describeSubjectCertificate } from './x509.ts';
import type { IssuerInfo, SubjectCertificateInfo } from './x509.ts';

export interface RevocationCheckerOptions {
  /** Clock (ms since the epoch) for freshness and caching. Default `Date.now`. */
  readonly now?: () => number;
}

export interface RevocationStats {
  readonly checks: number;
  /** Checks answered without waiting for any fetch. */
  readonly synchronous: number;
  readonly crl: { readonly sources: readonly CrlSourceStats[] };
  readonly ocsp: OcspStats;
}

/** Parsed certificates kept (by fingerprint); parsing is the costly part of a cached check. */
const MAX_PARSED_CERTIFICATES = 10_000;
/** CRL sources kept; each one holds its CRL's serials. */
const MAX_CRL_SOURCES = 1_000;

const GOOD_NONE: RevocationStatus = Object.freeze({ status: 'good', source: 'none' });
const GOOD_CRL: RevocationStatus = Object.freeze({ status: 'good', source: 'crl' });
const GOOD_OCSP: RevocationStatus = Object.freeze({ status: 'good', source: 'ocsp' });

interface CheckPlan {
  readonly crlSources: readonly CrlSource[];
  /** Configured or certificate-named CRL sources that cannot be used (bad URL, host not allowed): each one `unavailable`. */
  readonly crlProblems: readonly CrlVerdict[];
  readonly ocsp: { readonly responder: URL; readonly key: string } | { readonly problem: RevocationStatus } | null;
}

type MaybePromise<T> = T | Promise<T>;

export class RevocationChecker {
  readonly #now: () => number;
  readonly #shutdown = new AbortController();
  readonly #subjects = new Map<string, SubjectCertificateInfo>();
  readonly #issuers = new Map<string, IssuerInfo>();
  readonly #crlSources = new Map<string, CrlSource>();
  readonly #plans = new WeakMap<SubjectCertificateInfo, WeakMap<RevocationPolicy, WeakMap<IssuerInfo, CheckPlan>>>();
  readonly #ocsp: OcspClient;
  #agent: Agent | null = null;
  #closed = false;
  #checks = 0;
  #synchronous = 0;

  constructor(options: RevocationCheckerOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#ocsp = new OcspClient({
      now: this.#now,
      post: (url, body, timeoutMs) =>
        fetchDocument(url, {
          dispatcher: this.#dispatcher(),
          timeoutMs,
          maxBytes: MAX_OCSP_RESPONSE_BYTES,
          what: 'OCSP responder',
          method: 'POST',
          body,
          // RFC 6960 Appendix A.1.
          headers: { 'content-type': 'application/ocsp-request', accept: 'application/ocsp-response' },
          mediaTypes: ['application/ocsp-response'],
          signal: this.#shutdown.signal,
        }),
    });
  }

  check(leaf: X509Certificate, issuer: X509Certificate, policy: RevocationPolicy): RevocationStatus | Promise<RevocationStatus> {
    this.#checks += 1;
    if (this.#closed) return unavailable('the revocation checker is closed');
    if (policy.crl === null && policy.ocsp === null) {
      this.#synchronous += 1;
      return GOOD_NONE;
    }
    let answer: MaybePromise<RevocationStatus>;
    try {
      answer = this.#check(leaf, issuer, policy);
    } catch (error) {
      answer = unavailable(`revocation check failed: ${(error as Error).message}`);
    }
    if (!(answer instanceof Promise)) {
      this.#synchronous += 1;
      return answer;
    }
    return answer.catch((error: unknown) => unavailable(`revocation check failed: ${error instanceof Error ? error.message : String(error)}`));
  }

  stats(): RevocationStats {
    return {
      checks: this.#checks,
      synchronous: this.#synchronous,
      crl: { sources: [...this.#crlSources.values()].map((source) => source.stats()) },
      ocsp: this.#ocsp.stats(),
    };
  }

  /** Stops fetching: fetches in flight are aborted, and every later check is `unavailable`. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#shutdown.abort();
    for (const source of this.#crlSources.values()) source.close();
    this.#crlSources.clear();
    this.#ocsp.clear();
    // destroy, not close: a fetch hanging on a dead responder must not hold the process open.
    void this.#agent?.destroy().catch(() => undefined);
    this.#agent = null;
  }

  #check(leaf: X509Certificate, issuerCertificate: X509Certificate, policy: RevocationPolicy): MaybePromise<RevocationStatus> {
    const subject = this.#subject(leaf);
    const issuer = this.#issuer(issuerCertificate);
    const plan = this.#plan(subject, issuer, policy);
    const crl = policy.crl === null ? null : this.#checkCrl(plan, subject);
    // Settled without waiting: a listed serial or a CRL that cannot answer decides alone, OCSP is not asked.
    if (crl !== null && !(crl instanceof Promise) && crl.status !== 'good') return crl;
    const ocsp = policy.ocsp === null ? null : this.#checkOcsp(plan, subject, issuer, policy.ocsp);
    if (crl instanceof Promise || ocsp instanceof Promise) {
      return Promise.all([crl, ocsp]).then(([crlStatus, ocspStatus]) => combine(crlStatus, ocspStatus));
    }
    return combine(crl, ocsp);
  }

  /**
   * What checking this certificate under this policy involves (sources, responder, cache key),
   * worked out on the first check and kept while the certificate's parse is cached and the
   * policy object lives (a reload compiles new policies, hence new plans): the common path only
   * runs it.
   */
  #plan(subject: SubjectCertificateInfo, issuer: IssuerInfo, policy: RevocationPolicy): CheckPlan {
    let byPolicy = this.#plans.get(subject);
    if (byPolicy === undefined) {
      byPolicy = new WeakMap();
      this.#plans.set(subject, byPolicy);
    }
    let byIssuer = byPolicy.get(policy);
    if (byIssuer === undefined) {
      byIssuer = new WeakMap();
      byPolicy.set(policy, byIssuer);
    }
    let plan = byIssuer.get(issuer);
    // A source dropped from the table (too many sources) is rebuilt rather than used closed.
    if (plan === undefined || plan.crlSources.some((source) => source.closed)) {
      plan = this.#makePlan(subject, issuer, policy);
      byIssuer.set(issuer, plan);
    }
    return plan;
  }

  #makePlan(subject: SubjectCertificateInfo, issuer: IssuerInfo, policy: RevocationPolicy): CheckPlan {
    const crlSources: CrlSource[] = [];
    const crlProblems: string[] = [];
    const crl = policy.crl;
    if (crl !== null) {
      const locations: CrlLocation[] = [];
      if (crl.file !== null) locations.push({ kind: 'file', path: crl.file.path, initial: crl.file.contents });
      if (crl.url !== null) {
        try {
          locations.push({ kind: 'url', url: parseFetchUrl(crl.url, 'CRL URL'), from: 'configuration' });
        } catch (error) {
          crlProblems.push((error as Error).message);
        }
      }
      if (crl.fromCertificate) {
        const chosen = pickCertificateUrl(subject.crlUrls, policy.allowedHosts, 'CRL distribution point');
        if (chosen instanceof URL) {
          // The configured URL may be the same one: one source, one fetch.
          if (!locations.some((location) => location.kind === 'url' && location.url.href === chosen.href)) locations.push({ kind: 'url', url: chosen, from: 'certificate' });
        } else if (chosen !== null || locations.length === 0) {
          crlProblems.push(chosen ?? 'the certificate names no http(s) CRL distribution point');
        }
      }
      if (locations.length === 0 && crlProblems.length === 0) crlProblems.push('no CRL source is configured');
      for (const location of locations) {
        const source = this.#crlSource(location, issuer, crl.refreshMs, crl.timeoutMs);
        // A reload hands over the file contents it read: newer ones apply at once.
        if (location.kind === 'file') source.offer(location.initial);
        crlSources.push(source);
      }
    }
    let ocsp: CheckPlan['ocsp'] = null;
    if (policy.ocsp !== null) {
      let responder: URL | string;
      if (policy.ocsp.url !== null) {
        try {
          responder = parseFetchUrl(policy.ocsp.url, 'OCSP responder URL');
        } catch (error) {
          responder = (error as Error).message;
        }
      } else if (policy.ocsp.fromCertificate) {
        responder = pickCertificateUrl(subject.ocspUrls, policy.allowedHosts, 'OCSP responder') ?? 'the certificate names no http(s) OCSP responder';
      } else {
        responder = 'no OCSP responder is configured';
      }
      ocsp =
        typeof responder === 'string'
          ? { problem: unavailable(responder) }
          : { responder, key: `${responder.href}\n${issuer.fingerprint}\n${subject.serial}\n${policy.ocsp.maxCacheMs}` };
    }
    return { crlSources, crlProblems: crlProblems.map((detail) => ({ kind: 'unavailable', detail })), ocsp };
  }

  #checkCrl(plan: CheckPlan, subject: SubjectCertificateInfo): MaybePromise<RevocationStatus> {
    const { crlSources, crlProblems } = plan;
    // The common case, one source: no arrays.
    if (crlSources.length === 1 && crlProblems.length === 0) {
      const verdict = crlSources[0]!.lookup(subject);
      return verdict instanceof Promise ? verdict.then((settled) => combineCrl([settled])) : combineCrl([verdict]);
    }
    const verdicts: Array<MaybePromise<CrlVerdict>> = [...crlProblems];
    for (const source of crlSources) verdicts.push(source.lookup(subject));
    if (verdicts.some((verdict) => verdict instanceof Promise)) return Promise.all(verdicts).then(combineCrl);
    return combineCrl(verdicts as CrlVerdict[]);
  }

  #checkOcsp(plan: CheckPlan, subject: SubjectCertificateInfo, issuer: IssuerInfo, ocsp: NonNullable<RevocationPolicy['ocsp']>): MaybePromise<RevocationStatus> {
    const target = plan.ocsp!;
    if ('problem' in target) return target.problem;
    const verdict = this.#ocsp.status(target.key, subject, issuer, target.responder, { timeoutMs: ocsp.timeoutMs, maxCacheMs: ocsp.maxCacheMs });
    return verdict instanceof Promise ? verdict.then(fromOcsp) : fromOcsp(verdict);
  }

  #crlSource(location: CrlLocation, issuer: IssuerInfo, refreshMs: number, timeoutMs: number): CrlSource {
    const where = location.kind === 'file' ? `file\n${location.path}` : `url\n${location.url.href}`;
    const key = `${where}\n${issuer.fingerprint}\n${refreshMs}\n${timeoutMs}`;
    let source = this.#crlSources.get(key);
    if (source === undefined) {
      if (this.#crlSources.size >= MAX_CRL_SOURCES) {
        const oldest = this.#crlSources.keys().next().value!;
        this.#crlSources.get(oldest)!.close();
        this.#crlSources.delete(oldest);
      }
      source = new CrlSource(location, issuer, {
        refreshMs,
        timeoutMs,
        now: this.#now,
        fetch: (url, fetchTimeoutMs) =>
          fetchDocument(url, {
            dispatcher: this.#dispatcher(),
            timeoutMs: fetchTimeoutMs,
            maxBytes: MAX_CRL_BYTES,
            what: 'CRL',
            method: 'GET',
            // RFC 5280 §4.2.1.13 names the DER type; servers label it many ways, and the signature is what counts.
            headers: { accept: 'application/pkix-crl, application/x-pkcs7-crl;q=0.9, */*;q=0.5' },
            signal: this.#shutdown.signal,
          }),
      });
      this.#crlSources.set(key, source);
    }
    return source;
  }

  #subject(leaf: X509Certificate): SubjectCertificateInfo {
    const key = leaf.fingerprint256;
    let info = this.#subjects.get(key);
    if (info === undefined) {
      info = describeSubjectCertificate(leaf);
      remember(this.#subjects, key, info, MAX_PARSED_CERTIFICATES);
    }
    return info;
  }

  #issuer(issuer: X509Certificate): IssuerInfo {
    const key = issuer.fingerprint256;
    let info = this.#issuers.get(key);
    if (info === undefined) {
      info = describeIssuer(issuer);
      remember(this.#issuers, key, info, MAX_PARSED_CERTIFICATES);
    }
    return info;
  }

  #dispatcher(): Agent {
    this.#agent ??= createRevocationAgent();
    return this.#agent;
  }
}

function remember<T>(map: Map<string, T>, key: string, value: T, limit: number): void {
  if (map.size >= limit) map.delete(map.keys().next().value!);
  map.set(key, value);
}

/**
 * The first URL the certificate names whose host is allowed (SECURITY.md API7: URLs from a
 * certificate are fetched only from allow-listed hosts). A string says why none is usable;
 * null when the certificate names none at all.
 */
function pickCertificateUrl(urls: readonly string[], allowedHosts: readonly string[], what: string): URL | string | null {
  if (urls.length === 0) return null;
  const refused: string[] = [];
  for (const raw of urls) {
    let url: URL;
    try {
      url = parseFetchUrl(raw, what);
    } catch (error) {
      refused.push((error as Error).message);
      continue;
    }
    if (hostAllowed(url, allowedHosts)) return url;
    refused.push(`${displayUrl(url)} (host ${url.host} is not in allowed_hosts)`);
  }
  return `the certificate's ${what} is not fetched: ${refused.join('; ')}`;
}

function combineCrl(verdicts: readonly CrlVerdict[]): RevocationStatus {
  const revoked = verdicts.find((verdict) => verdict.kind === 'revoked');
  if (revoked !== undefined) return { status: 'revoked', source: 'crl', detail: revoked.detail };
  const failing = verdicts.filter((verdict) => verdict.kind === 'unavailable');
  if (failing.length > 0) return unavailable(failing.map((verdict) => verdict.detail).join('; '));
  if (verdicts.some((verdict) => verdict.kind === 'good')) return GOOD_CRL;
  return unavailable(`no CRL covers the certificate's issuer: ${verdicts.map((verdict) => ('detail' in verdict ? verdict.detail : '')).join('; ')}`);
}

function fromOcsp(verdict: OcspVerdict): RevocationStatus {
  if (verdict.kind === 'good') return GOOD_OCSP;
  if (verdict.kind === 'revoked') return { status: 'revoked', source: 'ocsp', detail: verdict.detail };
  return unavailable(verdict.detail);
}

function combine(crl: RevocationStatus | null, ocsp: RevocationStatus | null): RevocationStatus {
  if (crl?.status === 'revoked') return crl;
  if (ocsp?.status === 'revoked') return ocsp;
  if (crl?.status === 'unavailable') return ocsp?.status === 'unavailable' ? unavailable(`${crl.detail}; ${ocsp.detail}`) : crl;
  if (ocsp?.status === 'unavailable') return ocsp;
  return ocsp ?? crl ?? GOOD_NONE;
}

function unavailable(detail: string): RevocationStatus {
  return { status: 'unavailable', detail };
}
