/**
 * A minimal, strict DER reader (ITU-T X.690 §10) for the one large structure revocation reads:
 * CRLs. asn1js (behind pkijs and @peculiar/x509) stops at 10,000 nodes, about 2,000 CRL entries,
 * and spends ~35 µs per entry; CAs publish CRLs with hundreds of thousands. This reader only
 * walks tag-length-value triples over the input buffer (no copies, no tree): a 10 MiB CRL is
 * read in tens of milliseconds.
 *
 * Strict on purpose: definite, minimally encoded lengths only; single-octet tags only; every
 * child must end exactly where its parent ends. Anything else throws `DerError`.
 */

export class DerError extends Error {
  override readonly name = 'DerError';
}

export const TAG = {
  boolean: 0x01,
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  oid: 0x06,
  utcTime: 0x17,
  generalizedTime: 0x18,
  sequence: 0x30,
  /** [0] constructed, context-specific: e.g. TBSCertList `crlExtensions`. */
  context0: 0xa0,
} as const;

/** One element: its tag, and where its content lies in the buffer (`contentStart`..`end`). */
export interface Element {
  readonly tag: number;
  readonly start: number;
  readonly contentStart: number;
  readonly end: number;
}

/** Reads the element at `offset`, which must end at or before `limit`. */
export function readElement(input: Uint8Array, offset: number, limit: number): Element {
  if (offset + 2 > limit) throw new DerError(`truncated element at offset ${offset}`);
  const tag = input[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError(`multi-octet tag at offset ${offset} is not supported`);
  const first = input[offset + 1]!;
  let length: number;
  let contentStart: number;
  if (first < 0x80) {
    length = first;
    contentStart = offset + 2;
  } else {
    const octets = first & 0x7f;
    if (octets === 0) throw new DerError(`indefinite length at offset ${offset} (not DER)`);
    if (octets > 4) throw new DerError(`length of element at offset ${offset} is too large`);
    if (offset + 2 + octets > limit) throw new DerError(`truncated length at offset ${offset}`);
    length = 0;
    for (let index = 0; index < octets; index += 1) length = length * 256 + input[offset + 2 + index]!;
    // X.690 §10.1: the shortest form; a long form for < 128 or with a leading zero octet is not DER.
    if (length < 0x80 || input[offset + 2]! === 0) throw new DerError(`non-minimal length at offset ${offset} (not DER)`);
    contentStart = offset + 2 + octets;
  }
  const end = contentStart + length;
  if (end > limit) throw new DerError(`element at offset ${offset} runs past its container`);
  return { tag, start: offset, contentStart, end };
}

/** The element at `offset` with the expected tag. */
export function expectElement(input: Uint8Array, offset: number, limit: number, tag: number, what: string): Element {
  const element = readElement(input, offset, limit);
  if (element.tag !== tag) throw new DerError(`${what}: expected tag 0x${tag.toString(16)}, found 0x${element.tag.toString(16)} at offset ${offset}`);
  return element;
}

/** The children of a constructed element, in order; they must fill it exactly. */
export function* childrenOf(input: Uint8Array, parent: Element): Generator<Element> {
  let offset = parent.contentStart;
  while (offset < parent.end) {
    const child = readElement(input, offset, parent.end);
    yield child;
    offset = child.end;
  }
}

export function contentOf(input: Uint8Array, element: Element): Uint8Array {
  return input.subarray(element.contentStart, element.end);
}

/** Dotted form of an OBJECT IDENTIFIER's content (X.690 §8.19), minimal base-128 required. */
export function decodeOid(content: Uint8Array): string {
  if (content.length === 0) throw new DerError('empty OBJECT IDENTIFIER');
  const arcs: number[] = [];
  let value = 0;
  let started = false;
  for (const octet of content) {
    if (!started && octet === 0x80) throw new DerError('non-minimal OBJECT IDENTIFIER arc');
    started = true;
    value = value * 128 + (octet & 0x7f);
    if (value > Number.MAX_SAFE_INTEGER) throw new DerError('OBJECT IDENTIFIER arc too large');
    if ((octet & 0x80) === 0) {
      if (arcs.length === 0) {
        const first = value < 40 ? 0 : value < 80 ? 1 : 2;
        arcs.push(first, value - first * 40);
      } else {
        arcs.push(value);
      }
      value = 0;
      started = false;
    }
  }
  if (started) throw new DerError('truncated OBJECT IDENTIFIER');
  return arcs.join('.');
}

const UTC_TIME = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/;
const GENERALIZED_TIME = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/;

/**
 * A Time (RFC 5280 §4.1.2.5): UTCTime `YYMMDDHHMMSSZ` (years 1950–2049) or GeneralizedTime
 * `YYYYMMDDHHMMSSZ`, both UTC with seconds and no fraction, as RFC 5280 requires. Milliseconds
 * since the epoch.
 */
export function decodeTime(input: Uint8Array, element: Element): number {
  const text = Buffer.from(contentOf(input, element)).toString('latin1');
  let parts: RegExpExecArray | null;
  let year: number;
  if (element.tag === TAG.utcTime) {
    parts = UTC_TIME.exec(text);
    if (parts === null) throw new DerError(`malformed UTCTime ${JSON.stringify(text.slice(0, 32))}`);
    const short = Number(parts[1]);
    year = short >= 50 ? 1900 + short : 2000 + short;
  } else if (element.tag === TAG.generalizedTime) {
    parts = GENERALIZED_TIME.exec(text);
    if (parts === null) throw new DerError(`malformed GeneralizedTime ${JSON.stringify(text.slice(0, 32))}`);
    year = Number(parts[1]);
  } else {
    throw new DerError(`expected a time, found tag 0x${element.tag.toString(16)} at offset ${element.start}`);
  }
  const [month, day, hour, minute, second] = [2, 3, 4, 5, 6].map((index) => Number(parts[index]));
  const time = Date.UTC(year, month! - 1, day!, hour!, minute!, second!);
  const check = new Date(time);
  // Date.UTC rolls 31 February over into March: a round trip rejects impossible dates.
  if (check.getUTCMonth() !== month! - 1 || check.getUTCDate() !== day! || check.getUTCHours() !== hour! || check.getUTCMinutes() !== minute! || check.getUTCSeconds() !== second!) {
    throw new DerError(`impossible date ${JSON.stringify(text)}`);
  }
  return time;
}

export function isTime(element: Element): boolean {
  return element.tag === TAG.utcTime || element.tag === TAG.generalizedTime;
}
