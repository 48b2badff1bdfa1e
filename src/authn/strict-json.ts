/**
 * A strict JSON parser for untrusted documents (tokens, dependency responses).
 *
 * `JSON.parse` is not enough for security decisions (SECURITY.md §1.8): it silently keeps the
 * *last* of two members with the same name, so `{"alg":"RS256","alg":"none"}` — or the same
 * written `{"alg":"RS256","\u0061lg":"none"}` — means something other than what a second reader
 * may see. RFC 7515 §4 and RFC 7519 §4 let a JOSE parser either reject duplicates or keep the
 * last; we reject (SECURITY.md JWT-13). Duplicates are detected on the *decoded* name, so escape
 * spellings cannot slip past, and the check is exact (no Unicode normalisation).
 *
 * Also, per SECURITY.md JWT-17 / JWT-20:
 * - depth and members per object or array are bounded, so a small input cannot cost much;
 * - objects have a null prototype: `__proto__`, `constructor` or `toString` are ordinary own
 *   members, never inherited behaviour, and `Object.hasOwn` is the only way a lookup succeeds;
 * - numbers must be finite doubles (RFC 8259 §6 allows an implementation to limit range;
 *   `1e400` would silently become `Infinity`);
 * - strings must be well-formed UTF-16: an escaped lone surrogate (`"\ud800"`) is refused
 *   (RFC 8259 §8.2: its meaning is unpredictable across parsers).
 *
 * The grammar is RFC 8259 exactly: no comments, no trailing commas, no single quotes, no
 * leading zeros or `+`, whitespace only SP / HTAB / LF / CR, control characters escaped.
 * The result is plain data: null-prototype objects, arrays, strings, numbers, booleans, null.
 */

export interface StrictJsonLimits {
  /** Most nested containers (an object holding an array is depth 2). */
  readonly maxDepth: number;
  /** Most members of one object, or elements of one array. */
  readonly maxMembers: number;
}

export const DEFAULT_STRICT_JSON_LIMITS: StrictJsonLimits = Object.freeze({ maxDepth: 8, maxMembers: 64 });

export type StrictJsonError = 'syntax' | 'duplicate_member' | 'too_deep' | 'too_many_members';

export type StrictJsonResult =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly error: StrictJsonError; readonly detail: string };

/** Thrown inside the parser only; never escapes `parseStrictJson`. */
class StrictJsonFailure {
  readonly error: StrictJsonError;
  readonly detail: string;
  constructor(error: StrictJsonError, detail: string) {
    this.error = error;
    this.detail = detail;
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const MINUS = 0x2d;
const PLUS = 0x2b;
const DOT = 0x2e;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;

/** RFC 8259 §7: the single-character escapes. */
const SIMPLE_ESCAPES: ReadonlyMap<string, string> = new Map([
  ['"', '"'],
  ['\\', '\\'],
  ['/', '/'],
  ['b', '\b'],
  ['f', '\f'],
  ['n', '\n'],
  ['r', '\r'],
  ['t', '\t'],
]);

/**
 * Parses `text` as one JSON value, refusing duplicate members and anything beyond `limits`.
 * Never throws.
 */
export function parseStrictJson(text: string, limits: StrictJsonLimits = DEFAULT_STRICT_JSON_LIMITS): StrictJsonResult {
  const parser = new Parser(text, limits);
  try {
    parser.skipWhitespace();
    const value = parser.parseValue(0);
    parser.skipWhitespace();
    if (parser.pos !== text.length) parser.fail('syntax', 'unexpected data after the JSON value');
    return { ok: true, value };
  } catch (failure) {
    if (failure instanceof StrictJsonFailure) return { ok: false, error: failure.error, detail: failure.detail };
    throw failure;
  }
}

class Parser {
  readonly text: string;
  readonly limits: StrictJsonLimits;
  pos = 0;

  constructor(text: string, limits: StrictJsonLimits) {
    this.text = text;
    this.limits = limits;
  }

  fail(error: StrictJsonError, detail: string): never {
    throw new StrictJsonFailure(error, detail);
  }

  /** RFC 8259 §2: `ws = *( %x20 / %x09 / %x0A / %x0D )`. */
  skipWhitespace(): void {
    const text = this.text;
    let pos = this.pos;
    while (pos < text.length) {
      const code = text.charCodeAt(pos);
      if (code !== 0x20 && code !== 0x09 && code !== 0x0a && code !== 0x0d) break;
      pos++;
    }
    this.pos = pos;
  }

  /** `depth` is the number of containers already open around this value. */
  parseValue(depth: number): unknown {
    const code = this.text.charCodeAt(this.pos);
    if (code === OPEN_BRACE) return this.parseObject(depth + 1);
    if (code === OPEN_BRACKET) return this.parseArray(depth + 1);
    if (code === QUOTE) return this.parseString();
    if (code === MINUS || (code >= DIGIT_0 && code <= DIGIT_9)) return this.parseNumber();
    if (this.text.startsWith('true', this.pos)) return this.literal(4, true);
    if (this.text.startsWith('false', this.pos)) return this.literal(5, false);
    if (this.text.startsWith('null', this.pos)) return this.literal(4, null);
    return this.fail('syntax', this.pos >= this.text.length ? 'unexpected end of JSON' : `unexpected character at offset ${this.pos}`);
  }

  literal<T>(length: number, value: T): T {
    this.pos += length;
    return value;
  }

  enter(depth: number): void {
    if (depth > this.limits.maxDepth) this.fail('too_deep', `JSON nests deeper than ${this.limits.maxDepth} levels`);
  }

  parseObject(depth: number): Record<string, unknown> {
    this.enter(depth);
    const object: Record<string, unknown> = Object.create(null);
    this.pos++; // {
    this.skipWhitespace();
    if (this.text.charCodeAt(this.pos) === CLOSE_BRACE) {
      this.pos++;
      return object;
    }
    let members = 0;
    for (;;) {
      if (this.text.charCodeAt(this.pos) !== QUOTE) this.fail('syntax', `expected a member name at offset ${this.pos}`);
      const name = this.parseString();
      // The decoded name is compared, so `"\u0061lg"` collides with `"alg"` (SECURITY.md §1.8).
      if (Object.hasOwn(object, name)) this.fail('duplicate_member', `duplicate member ${describeName(name)}`);
      if (++members > this.limits.maxMembers) this.fail('too_many_members', `an object has more than ${this.limits.maxMembers} members`);
      this.skipWhitespace();
      if (this.text.charCodeAt(this.pos) !== COLON) this.fail('syntax', `expected ':' at offset ${this.pos}`);
      this.pos++;
      this.skipWhitespace();
      // A null-prototype object has no `__proto__` setter: this defines an own member.
      object[name] = this.parseValue(depth);
      this.skipWhitespace();
      const next = this.text.charCodeAt(this.pos);
      this.pos++;
      if (next === CLOSE_BRACE) return object;
      if (next !== COMMA) this.fail('syntax', `expected ',' or '}' at offset ${this.pos - 1}`);
      this.skipWhitespace();
    }
  }

  parseArray(depth: number): unknown[] {
    this.enter(depth);
    const array: unknown[] = [];
    this.pos++; // [
    this.skipWhitespace();
    if (this.text.charCodeAt(this.pos) === CLOSE_BRACKET) {
      this.pos++;
      return array;
    }
    for (;;) {
      if (array.length === this.limits.maxMembers) this.fail('too_many_members', `an array has more than ${this.limits.maxMembers} elements`);
      array.push(this.parseValue(depth));
      this.skipWhitespace();
      const next = this.text.charCodeAt(this.pos);
      this.pos++;
      if (next === CLOSE_BRACKET) return array;
      if (next !== COMMA) this.fail('syntax', `expected ',' or ']' at offset ${this.pos - 1}`);
      this.skipWhitespace();
    }
  }

  /** RFC 8259 §7. `this.pos` is on the opening quote. */
  parseString(): string {
    const text = this.text;
    let pos = this.pos + 1;
    let result = '';
    let runStart = pos;
    for (;;) {
      if (pos >= text.length) this.fail('syntax', 'unterminated string');
      const code = text.charCodeAt(pos);
      if (code === QUOTE) {
        result += text.slice(runStart, pos);
        this.pos = pos + 1;
        return result;
      }
      if (code < 0x20) this.fail('syntax', `unescaped control character in a string at offset ${pos}`);
      if (code >= 0xd800 && code <= 0xdfff) {
        // Raw surrogates: accept only a well-formed pair (input decoded from UTF-8 always is).
        const low = text.charCodeAt(pos + 1);
        if (code > 0xdbff || !(low >= 0xdc00 && low <= 0xdfff)) this.fail('syntax', `lone surrogate in a string at offset ${pos}`);
        pos += 2;
        continue;
      }
      if (code !== BACKSLASH) {
        pos++;
        continue;
      }
      result += text.slice(runStart, pos);
      const escape = text[pos + 1];
      if (escape === 'u') {
        const unit = this.hex4(pos + 2);
        pos += 6;
        if (unit >= 0xd800 && unit <= 0xdbff) {
          // RFC 8259 §7: a character outside the BMP is escaped as a surrogate pair.
          const low = text.startsWith('\\u', pos) ? this.hex4(pos + 2) : -1;
          if (!(low >= 0xdc00 && low <= 0xdfff)) this.fail('syntax', `escaped lone surrogate in a string at offset ${pos - 6}`);
          result += String.fromCharCode(unit, low);
          pos += 6;
        } else if (unit >= 0xdc00 && unit <= 0xdfff) {
          this.fail('syntax', `escaped lone surrogate in a string at offset ${pos - 6}`);
        } else {
          result += String.fromCharCode(unit);
        }
      } else {
        const replacement = escape === undefined ? undefined : SIMPLE_ESCAPES.get(escape);
        if (replacement === undefined) this.fail('syntax', `invalid escape in a string at offset ${pos}`);
        result += replacement;
        pos += 2;
      }
      runStart = pos;
    }
  }

  hex4(at: number): number {
    let value = 0;
    for (let i = at; i < at + 4; i++) {
      const digit = hexDigit(this.text.charCodeAt(i));
      if (digit < 0) this.fail('syntax', `invalid \\u escape at offset ${at - 2}`);
      value = value * 16 + digit;
    }
    return value;
  }

  /** RFC 8259 §6: `[ minus ] int [ frac ] [ exp ]`, `int = zero / ( digit1-9 *DIGIT )`. */
  parseNumber(): number {
    const text = this.text;
    const start = this.pos;
    let pos = start;
    if (text.charCodeAt(pos) === MINUS) pos++;
    const first = text.charCodeAt(pos);
    if (first === DIGIT_0) {
      pos++;
    } else if (first > DIGIT_0 && first <= DIGIT_9) {
      pos = skipDigits(text, pos);
    } else {
      this.fail('syntax', `invalid number at offset ${start}`);
    }
    if (text.charCodeAt(pos) === DOT) {
      const end = skipDigits(text, pos + 1);
      if (end === pos + 1) this.fail('syntax', `invalid number at offset ${start}`);
      pos = end;
    }
    const e = text.charCodeAt(pos);
    if (e === 0x65 || e === 0x45) {
      pos++;
      const sign = text.charCodeAt(pos);
      if (sign === PLUS || sign === MINUS) pos++;
      const end = skipDigits(text, pos);
      if (end === pos) this.fail('syntax', `invalid number at offset ${start}`);
      pos = end;
    }
    const value = Number(text.slice(start, pos));
    if (!Number.isFinite(value)) this.fail('syntax', `number out of range at offset ${start}`);
    this.pos = pos;
    return value;
  }
}

function skipDigits(text: string, pos: number): number {
  while (pos < text.length) {
    const code = text.charCodeAt(pos);
    if (code < DIGIT_0 || code > DIGIT_9) break;
    pos++;
  }
  return pos;
}

function hexDigit(code: number): number {
  if (code >= DIGIT_0 && code <= DIGIT_9) return code - DIGIT_0;
  const lower = code | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

/** A member name for an operator-facing detail: quoted, escaped, and bounded in length. */
function describeName(name: string): string {
  return JSON.stringify(name.length > 64 ? `${name.slice(0, 64)}…` : name);
}
