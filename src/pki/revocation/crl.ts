/**
 * Certificate revocation lists (RFC 5280 §5) for one issuer: from a file (re-read when it
 * changes), a configured URL, or the certificate's distribution point (the checker allows that
 * only for hosts on the partner's allow-list).
 *
 * A CRL is trusted only when (RFC 5280 §6.3.3):
 * - it parses, its inner and outer signature algorithms agree (§5.1.1.2), and it carries no
 *   critical extension we do not process (§5.2: delta CRLs, issuing distribution points and
 *   indirect entries are refused rather than half-understood);
 * - its signature verifies with the key of the issuer of the certificate being checked, and its
 *   issuer name is byte-identical to that certificate's issuer name;
 * - it has a nextUpdate (§5.1.2.5: conforming CAs always set it) that has not passed, and its
 *   thisUpdate is not in the future (beyond a small clock skew);
 * - it is not older than the CRL it would replace (a replayed old CRL is no rollback path).
 * Only the outer structure of a download is read before its signature is checked; the entries
 * are read after, with the strict DER reader of `der.ts` (pkijs and @peculiar/x509 stop at about
 * 2,000 entries and take ~35 µs per entry; this takes ~1 µs: 300,000 entries in ~0.3 s, which
 * blocks the event loop that long once per new CRL). Revoked serials go into a Map for O(1) lookups.
 *
 * Freshness: a source is refreshed when `refreshMs` has passed since the last fetch, and ahead of
 * its nextUpdate, whichever comes first. A check that finds the source due waits for the
 * refresh (one in flight per source, shared by every caller), so a new revocation is enforced on
 * the first check after the cached CRL is due; every other check answers synchronously. A failed
 * refresh keeps the CRL in use until its own nextUpdate and is retried after a short back-off.
 * A file is checked for changes (mtime, size, inode) at most once per `FILE_CHECK_INTERVAL_MS`.
 */
import { readFile, stat } from 'node:fs/promises';
import { log } from '../../log.ts';
import { DerError, TAG, childrenOf, contentOf, decodeOid, decodeTime, expectElement, isTime, readElement } from './der.ts';
import type { Element } from './der.ts';
import { displayUrl } from './fetch.ts';
import { checkSignature } from './x509.ts';
import type { IssuerInfo, SubjectCertificateInfo } from './x509.ts';

/** Largest CRL accepted, from a file or over HTTP. */
export const MAX_CRL_BYTES = 10 * 1024 * 1024;
/** How far in the future a thisUpdate may be (the CA's clock running ahead of ours). */
export const CRL_CLOCK_SKEW_MS = 5 * 60_000;
/** Two fetches of one source are at least this far apart, whatever `refreshMs` says. */
export const MIN_REFRESH_SPACING_MS = 1_000;
/** After a failed refresh, the next attempt waits this long (or `refreshMs` if shorter, never below the minimum spacing). */
export const FAILED_REFRESH_RETRY_MS = 5_000;
/** A CRL file is looked at (one `stat`) at most this often. */
export const FILE_CHECK_INTERVAL_MS = 1_000;
/** A URL source is refreshed this far ahead of nextUpdate (or a tenth of the CRL's validity, if shorter). */
export const REFRESH_AHEAD_MS = 5 * 60_000;

export class CrlError extends Error {
  override readonly name = 'CrlError';
}

/**
 * A CRL split into its parts (RFC 5280 §5.1): its signature not checked yet and its entries not
 * read yet, so that only the outer structure of an unauthenticated download is ever parsed.
 */
export interface CrlEnvelope {
  /** DER of the CRL's issuer Name. */
  readonly issuerDer: Buffer;
  readonly thisUpdate: number;
  readonly nextUpdate: number | null;
  /** The signed part (TBSCertList), as received. */
  readonly tbs: Buffer;
  readonly signatureOid: string;
  readonly signature: Buffer;
  /** The bytes it was read from (PEM or DER), to notice an unchanged file without reading it again. */
  readonly raw: Buffer;
  readonly der: Buffer;
  readonly revokedCertificates: Element | null;
  readonly extensions: Element | null;
}

export interface ParsedCrl extends CrlEnvelope {
  /** Revoked serials (lookup keys, see `serialKey`) → offset of the entry's revocationDate in `der`. */
  readonly revoked: ReadonlyMap<string, number>;
}

/** When the CRL says the serial was revoked (ms since the epoch), or null when it does not list it. */
export function revocationDate(crl: ParsedCrl, serial: string): number | null {
  const offset = crl.revoked.get(serial);
  if (offset === undefined) return null;
  try {
    return decodeTime(crl.der, readElement(crl.der, offset, crl.der.length));
  } catch {
    return Number.NaN;
  }
}

/** `serialKey` of the INTEGER content at `der[start..end)`, without copying it. */
function serialKeyAt(der: Buffer, start: number, end: number): string {
  let first = start;
  while (first < end && der[first] === 0) first += 1;
  if (first === end) return '0';
  const hex = der.toString('hex', first, end);
  return hex.charCodeAt(0) === 0x30 ? hex.slice(1) : hex;
}

const PEM_CRL = /-----BEGIN X509 CRL-----([A-Za-z0-9+/=\s]+)-----END X509 CRL-----/;

/**
 * Reads the outer structure of a CRL (DER, or the first `X509 CRL` PEM block): CertificateList
 * and the top level of TBSCertList. Throws `CrlError`.
 *
 * Parsed with the strict DER reader of `der.ts`, not pkijs: asn1js refuses CRLs of more than
 * about 2,000 entries (its 10,000-node limit) and takes ~35 µs per entry.
 */
export function openCrl(input: Buffer): CrlEnvelope {
  let der = input;
  const head = input.subarray(0, 64).toString('latin1').trimStart();
  if (head.startsWith('-----BEGIN')) {
    const match = PEM_CRL.exec(input.toString('latin1'));
    if (match === null) throw new CrlError('not a CRL: PEM without an "X509 CRL" block');
    der = Buffer.from(match[1]!.replace(/\s+/g, ''), 'base64');
  }
  try {
    // CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm, signatureValue BIT STRING }
    const list = expectElement(der, 0, der.length, TAG.sequence, 'CertificateList');
    if (list.end !== der.length) throw new DerError('trailing data after the CRL');
    const [tbs, algorithm, signature, extra] = [...childrenOf(der, list)];
    if (tbs?.tag !== TAG.sequence || algorithm?.tag !== TAG.sequence || signature?.tag !== TAG.bitString || extra !== undefined) {
      throw new DerError('CertificateList is not SEQUENCE { TBSCertList, AlgorithmIdentifier, BIT STRING }');
    }
    const signatureBits = contentOf(der, signature);
    if (signatureBits.length < 1 || signatureBits[0] !== 0) throw new DerError('signatureValue has unused bits');

    const fields = [...childrenOf(der, tbs)];
    let index = 0;
    let version = 0;
    if (fields[index]?.tag === TAG.integer) {
      const content = contentOf(der, fields[index]!);
      if (content.length !== 1 || content[0] !== 1) throw new DerError('TBSCertList version is not v2');
      version = 1;
      index += 1;
    }
    const innerAlgorithm = fields[index++];
    const issuer = fields[index++];
    const thisUpdate = fields[index++];
    if (innerAlgorithm?.tag !== TAG.sequence || issuer?.tag !== TAG.sequence || thisUpdate === undefined || !isTime(thisUpdate)) {
      throw new DerError('TBSCertList does not start with signature, issuer, thisUpdate');
    }
    let nextUpdate: Element | null = null;
    if (fields[index] !== undefined && isTime(fields[index]!)) nextUpdate = fields[index++]!;
    let revokedCertificates: Element | null = null;
    if (fields[index]?.tag === TAG.sequence) revokedCertificates = fields[index++]!;
    let extensions: Element | null = null;
    if (fields[index]?.tag === TAG.context0) extensions = fields[index++]!;
    if (index !== fields.length) throw new DerError('unexpected field in TBSCertList');
    // §5.1.2.1: extensions only in v2 CRLs.
    if (extensions !== null && version !== 1) throw new DerError('a v1 CRL with extensions');
    // §5.1.1.2: the algorithm outside must be the one inside, byte for byte.
    if (!Buffer.from(der.subarray(algorithm.start, algorithm.end)).equals(der.subarray(innerAlgorithm.start, innerAlgorithm.end))) {
      throw new CrlError('the signature algorithm inside the CRL differs from the one outside (RFC 5280 §5.1.1.2)');
    }
    const oid = expectElement(der, algorithm.contentStart, algorithm.end, TAG.oid, 'signatureAlgorithm');
    return {
      issuerDer: der.subarray(issuer.start, issuer.end),
      thisUpdate: decodeTime(der, thisUpdate),
      nextUpdate: nextUpdate === null ? null : decodeTime(der, nextUpdate),
      tbs: der.subarray(tbs.start, tbs.end),
      signatureOid: decodeOid(contentOf(der, oid)),
      signature: Buffer.from(signatureBits.subarray(1)),
      raw: input,
      der,
      revokedCertificates,
      extensions,
    };
  } catch (error) {
    if (error instanceof CrlError) throw error;
    throw new CrlError(`not a CRL: ${(error as Error).message}`);
  }
}

/**
 * Reads the entries of a CRL whose signature has been checked. A critical extension, of the CRL
 * (§5.2) or of an entry (§5.3), is refused: none is processed here (delta CRLs, issuing
 * distribution points, indirect CRLs), and §5.2 forbids using a CRL with one we cannot process.
 */
export function readRevocations(crl: CrlEnvelope): Map<string, number> {
  const { der } = crl;
  try {
    if (crl.extensions !== null) {
      const [list, extra] = [...childrenOf(der, crl.extensions)];
      if (list?.tag !== TAG.sequence || extra !== undefined) throw new DerError('crlExtensions is not [0] EXPLICIT Extensions');
      const critical = criticalExtension(der, list);
      if (critical !== null) throw new CrlError(`the CRL has a critical extension ${critical} that is not supported (delta, partitioned and indirect CRLs are not)`);
    }
    const revoked = new Map<string, number>();
    if (crl.revokedCertificates === null) return revoked;
    // The hot loop of a large CRL: elements are read in place, no iterator or array per entry.
    const list = crl.revokedCertificates;
    for (let offset = list.contentStart; offset < list.end; ) {
      // revokedCertificates SEQUENCE OF SEQUENCE { userCertificate INTEGER, revocationDate Time, crlEntryExtensions Extensions OPTIONAL }
      const entry = expectElement(der, offset, list.end, TAG.sequence, 'revokedCertificates entry');
      const serial = expectElement(der, entry.contentStart, entry.end, TAG.integer, 'userCertificate');
      const date = readElement(der, serial.end, entry.end);
      if (serial.end === serial.contentStart || !isTime(date)) throw new DerError('a revokedCertificates entry is not { serial, revocationDate, extensions? }');
      if (date.end < entry.end) {
        const entryExtensions = expectElement(der, date.end, entry.end, TAG.sequence, 'crlEntryExtensions');
        if (entryExtensions.end !== entry.end) throw new DerError('unexpected field in a revokedCertificates entry');
        const critical = criticalExtension(der, entryExtensions);
        if (critical !== null) throw new CrlError(`a CRL entry has a critical extension ${critical} that is not supported`);
      }
      // The date is decoded only when a check finds the serial (see `revocationDate`).
      revoked.set(serialKeyAt(der, serial.contentStart, serial.end), date.start);
      offset = entry.end;
    }
    return revoked;
  } catch (error) {
    if (error instanceof CrlError) throw error;
    throw new CrlError(`malformed CRL: ${(error as Error).message}`);
  }
}

/** The OID of the first critical extension in `Extensions ::= SEQUENCE SIZE (1..MAX) OF Extension`, or null. */
function criticalExtension(der: Buffer, extensions: Element): string | null {
  if (extensions.end === extensions.contentStart) throw new DerError('empty Extensions (SIZE (1..MAX))');
  for (let offset = extensions.contentStart; offset < extensions.end; ) {
    // Extension ::= SEQUENCE { extnID OBJECT IDENTIFIER, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
    const extension = expectElement(der, offset, extensions.end, TAG.sequence, 'Extension');
    const id = expectElement(der, extension.contentStart, extension.end, TAG.oid, 'extnID');
    const second = readElement(der, id.end, extension.end);
    if (second.tag === TAG.boolean) {
      const value = expectElement(der, second.end, extension.end, TAG.octetString, 'extnValue');
      if (value.end !== extension.end || second.end - second.contentStart !== 1) throw new DerError('malformed Extension');
      // DER encodes TRUE as 0xff and omits a FALSE (DEFAULT); any non-zero octet is read as TRUE.
      if (der[second.contentStart] !== 0) return decodeOid(contentOf(der, id));
    } else if (second.tag !== TAG.octetString || second.end !== extension.end) {
      throw new DerError('malformed Extension');
    }
    offset = extension.end;
  }
  return null;
}

/** Reads and indexes a whole CRL without checking its signature (reports, tests). Throws `CrlError`. */
export function parseCrl(input: Buffer): ParsedCrl {
  const envelope = openCrl(input);
  return { ...envelope, revoked: readRevocations(envelope) };
}

/** Where a source's CRL comes from. */
export type CrlLocation =
  | { readonly kind: 'file'; readonly path: string; /** Contents read when the configuration was loaded. */ readonly initial: Buffer }
  | { readonly kind: 'url'; readonly url: URL; readonly from: 'configuration' | 'certificate' };

export type CrlVerdict =
  | { readonly kind: 'good' }
  | { readonly kind: 'revoked'; readonly detail: string }
  | { readonly kind: 'unavailable'; readonly detail: string }
  /** The source's CRL is another CA's: it says nothing about this certificate. */
  | { readonly kind: 'not_applicable'; readonly detail: string };

export interface CrlSourceStats {
  readonly location: string;
  readonly issuer: string;
  readonly loaded: boolean;
  readonly thisUpdate: string | null;
  readonly nextUpdate: string | null;
  readonly entries: number;
  readonly loads: number;
  readonly failures: number;
  readonly lastError: string | null;
}

export interface CrlSourceOptions {
  readonly refreshMs: number;
  readonly timeoutMs: number;
  readonly now: () => number;
  /** Fetches a URL (GET, with the timeout, the size cap and no redirects). */
  readonly fetch: (url: URL, timeoutMs: number) => Promise<Buffer>;
}

const NO_REVOCATIONS: ReadonlyMap<string, number> = new Map();

interface InstalledCrl {
  readonly crl: ParsedCrl;
  /** Issued by another CA than this source's issuer: not applicable, and not verifiable with its key. */
  readonly foreign: boolean;
}

interface FileStamp {
  readonly mtimeMs: number;
  readonly size: number;
  readonly ino: number;
}

/** The CRL of one location as trusted for one issuer. */
export class CrlSource {
  readonly #location: CrlLocation;
  readonly #issuer: IssuerInfo;
  readonly #options: CrlSourceOptions;
  readonly #where: string;
  #current: InstalledCrl | null = null;
  #nextRefreshAt = 0;
  #inFlight: Promise<void> | null = null;
  #lastError: string | null = null;
  #fileStamp: FileStamp | null = null;
  /** The file contents a configuration load handed over last (identity, not value: compared once per load). */
  #offered: Buffer | null = null;
  #loads = 0;
  #failures = 0;
  #closed = false;

  constructor(location: CrlLocation, issuer: IssuerInfo, options: CrlSourceOptions) {
    this.#location = location;
    this.#issuer = issuer;
    this.#options = options;
    this.#where = location.kind === 'file' ? `CRL file ${location.path}` : `CRL ${displayUrl(location.url)}`;
    if (location.kind === 'file') {
      // The contents read at load time serve at once, without I/O on the first request; the
      // first look at the file (after the check interval) picks up any change since.
      const now = options.now();
      this.#offered = location.initial;
      try {
        this.#install(location.initial, now);
        this.#nextRefreshAt = now + FILE_CHECK_INTERVAL_MS;
      } catch (error) {
        this.#failed((error as Error).message, now);
        // Unusable contents: read the file again on first use rather than wait for the back-off.
        this.#nextRefreshAt = now;
      }
    }
  }

  /** The verdict for a certificate of this source's issuer; a Promise only while the source is being (re)loaded. */
  lookup(subject: SubjectCertificateInfo): CrlVerdict | Promise<CrlVerdict> {
    if (this.#inFlight !== null) return this.#inFlight.then(() => this.#evaluate(subject));
    if (this.#options.now() >= this.#nextRefreshAt) return this.#refresh().then(() => this.#evaluate(subject));
    return this.#evaluate(subject);
  }

  /**
   * Contents of the file read by a (re)load of the configuration: when they differ from the CRL
   * in use they are installed at once, so a reload never serves an older CRL than it read.
   */
  offer(contents: Buffer): void {
    if (contents === this.#offered || this.#closed) return;
    this.#offered = contents;
    if (this.#current !== null && this.#current.crl.raw.equals(contents)) return;
    const now = this.#options.now();
    try {
      this.#install(contents, now);
    } catch (error) {
      this.#failed((error as Error).message, now);
    }
  }

  close(): void {
    this.#closed = true;
  }

  get closed(): boolean {
    return this.#closed;
  }

  stats(): CrlSourceStats {
    const crl = this.#current?.crl ?? null;
    return {
      location: this.#where,
      issuer: this.#issuer.certificate.subject,
      loaded: crl !== null,
      thisUpdate: crl ? new Date(crl.thisUpdate).toISOString() : null,
      nextUpdate: crl?.nextUpdate != null ? new Date(crl.nextUpdate).toISOString() : null,
      entries: crl?.revoked.size ?? 0,
      loads: this.#loads,
      failures: this.#failures,
      lastError: this.#lastError,
    };
  }

  #evaluate(subject: SubjectCertificateInfo): CrlVerdict {
    const installed = this.#current;
    if (installed === null) {
      const why = this.#lastError ?? 'not loaded';
      // Fetch errors already name the URL.
      return { kind: 'unavailable', detail: why.startsWith(this.#where) ? why : `${this.#where}: ${why}` };
    }
    const { crl } = installed;
    if (installed.foreign || !crl.issuerDer.equals(subject.issuerNameDer)) {
      return { kind: 'not_applicable', detail: `${this.#where} is issued by another CA than the certificate` };
    }
    const now = this.#options.now();
    // §6.3.3 (a)(2): past nextUpdate the CRL proves nothing; the failed refresh says why there is no newer one.
    if (crl.nextUpdate === null || now >= crl.nextUpdate) {
      const failure = this.#lastError === null ? '' : `; last refresh failed: ${this.#lastError}`;
      return { kind: 'unavailable', detail: `${this.#where} is past its nextUpdate ${isoOrNone(crl.nextUpdate)}${failure}` };
    }
    if (crl.revoked.has(subject.serial)) {
      const revokedAt = revocationDate(crl, subject.serial);
      const when = revokedAt !== null && Number.isFinite(revokedAt) ? ` (revoked ${new Date(revokedAt).toISOString()})` : '';
      return { kind: 'revoked', detail: `serial ${subject.serial} is listed on ${this.#where}${when}` };
    }
    return { kind: 'good' };
  }

  #refresh(): Promise<void> {
    if (this.#inFlight !== null) return this.#inFlight;
    const run = this.#load()
      .catch((error: unknown) => {
        if (!this.#closed) this.#failed(error instanceof Error ? error.message : String(error), this.#options.now());
      })
      .finally(() => {
        this.#inFlight = null;
      });
    this.#inFlight = run;
    return run;
  }

  async #load(): Promise<void> {
    const location = this.#location;
    if (location.kind === 'file') {
      // Scheduled before the I/O: a failure below keeps this schedule, a file is never hammered.
      this.#nextRefreshAt = this.#options.now() + FILE_CHECK_INTERVAL_MS;
      let stamp: FileStamp;
      try {
        const info = await stat(location.path);
        stamp = { mtimeMs: info.mtimeMs, size: info.size, ino: info.ino };
      } catch (error) {
        throw new CrlError(`cannot be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
      }
      const previous = this.#fileStamp;
      // Unchanged since the last look: nothing to do, even if that version was refused (it is
      // parsed again only once it changes, so a broken file costs one stat per interval).
      if (previous !== null && previous.mtimeMs === stamp.mtimeMs && previous.size === stamp.size && previous.ino === stamp.ino) return;
      if (stamp.size > MAX_CRL_BYTES) throw new CrlError(`larger than ${MAX_CRL_BYTES} bytes`);
      let contents: Buffer;
      try {
        contents = await readFile(location.path);
      } catch (error) {
        throw new CrlError(`cannot be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
      }
      if (this.#closed) return;
      this.#fileStamp = stamp;
      if (this.#current !== null && this.#lastError === null && this.#current.crl.raw.equals(contents)) return;
      this.#install(contents, this.#options.now());
      return;
    }
    const contents = await this.#options.fetch(location.url, this.#options.timeoutMs);
    if (this.#closed) return;
    const now = this.#options.now();
    const crl = this.#install(contents, now);
    this.#nextRefreshAt = now + this.#refreshDelay(crl, now);
  }

  /** Until the next fetch of a URL source: `refreshMs`, or earlier so the next CRL is in before this one's nextUpdate. */
  #refreshDelay(crl: ParsedCrl, now: number): number {
    let delay = this.#options.refreshMs;
    if (crl.nextUpdate !== null) {
      const ahead = Math.min(REFRESH_AHEAD_MS, Math.max(0, crl.nextUpdate - crl.thisUpdate) / 10);
      delay = Math.min(delay, crl.nextUpdate - ahead - now);
    }
    return Math.max(delay, MIN_REFRESH_SPACING_MS);
  }

  /** Validates and swaps in a CRL (one synchronous assignment), or throws and changes nothing. */
  #install(contents: Buffer, now: number): ParsedCrl {
    const envelope = openCrl(contents);
    const foreign = !envelope.issuerDer.equals(this.#issuer.subjectDer);
    let revoked: ReadonlyMap<string, number> = NO_REVOCATIONS;
    if (!foreign) {
      const problem = checkSignature(envelope.signatureOid, envelope.tbs, envelope.signature, this.#issuer.publicKey);
      if (problem !== null) throw new CrlError(`refused: ${problem}`);
      if (envelope.nextUpdate === null) throw new CrlError(`refused: it has no nextUpdate (RFC 5280 §5.1.2.5)`);
      if (envelope.thisUpdate > now + CRL_CLOCK_SKEW_MS) throw new CrlError(`refused: its thisUpdate ${isoOrNone(envelope.thisUpdate)} is in the future`);
      if (now >= envelope.nextUpdate) throw new CrlError(`refused: it is past its nextUpdate ${isoOrNone(envelope.nextUpdate)}`);
      const current = this.#current;
      if (current !== null && !current.foreign && envelope.thisUpdate < current.crl.thisUpdate) {
        throw new CrlError(`refused: its thisUpdate ${isoOrNone(envelope.thisUpdate)} is older than the CRL in use (${isoOrNone(current.crl.thisUpdate)})`);
      }
      // Only now, authenticated, are its entries read (a foreign CRL's never are: they are not used).
      revoked = readRevocations(envelope);
    }
    const crl: ParsedCrl = { ...envelope, revoked };
    const replaced = this.#current;
    this.#current = { crl, foreign };
    this.#loads += 1;
    const recovered = this.#lastError !== null;
    this.#lastError = null;
    if (replaced === null || !replaced.crl.raw.equals(crl.raw) || recovered) {
      log('info', 'revocation.crl_loaded', {
        source: this.#where,
        issuer: this.#issuer.certificate.subject,
        foreign,
        entries: crl.revoked.size,
        this_update: isoOrNone(crl.thisUpdate),
        next_update: isoOrNone(crl.nextUpdate),
      });
    }
    return crl;
  }

  #failed(message: string, now: number): void {
    this.#failures += 1;
    this.#lastError = message;
    if (this.#location.kind === 'url') {
      this.#nextRefreshAt = now + Math.max(MIN_REFRESH_SPACING_MS, Math.min(this.#options.refreshMs, FAILED_REFRESH_RETRY_MS));
    }
    const crl = this.#current?.crl ?? null;
    const serving = crl !== null && crl.nextUpdate !== null && now < crl.nextUpdate;
    // Without a usable CRL every certificate of this issuer is `unavailable`: an error, not a warning.
    log(serving ? 'warn' : 'error', 'revocation.crl_refresh_failed', {
      source: this.#where,
      issuer: this.#issuer.certificate.subject,
      error: message,
      serving: serving ? `previous CRL until its nextUpdate ${isoOrNone(crl.nextUpdate)}` : 'nothing: revocation status unavailable',
    });
  }
}

function isoOrNone(time: number | null): string {
  return time === null ? 'none' : new Date(time).toISOString();
}
