/**
 * A strict JSON parser for headers and indexes we must not misread (safetensors headers,
 * model.safetensors.index.json).
 *
 * JSON.parse keeps the last of two equal keys without a word; a header with two entries for one tensor
 * would then load whichever came last. This small RFC 8259 parser rejects duplicates at every depth, keeps
 * numbers as their source text (so 1e3, 1.0 and 2^64 cannot sneak into a shape), and objects as Maps
 * (so "__proto__" is just a key).
 */

export class JsonNumber {
  constructor(readonly text: string) {}
}
export type JsonValue = null | boolean | string | JsonNumber | JsonValue[] | JsonObject;
export type JsonObject = Map<string, JsonValue>;

export class JsonSyntaxError extends Error {
  constructor(
    readonly kind: 'syntax' | 'duplicate_key',
    message: string,
    readonly position: number, // UTF-16 offset in the text
    readonly path: readonly string[], // object keys from the root to where it happened (incl. a duplicate key)
  ) {
    super(message);
  }
}

const MAX_JSON_DEPTH = 64; // BERT headers are 3 deep; the limit keeps hostile input off the call stack

const CH = {
  quote: 0x22, backslash: 0x5c, slash: 0x2f, comma: 0x2c, colon: 0x3a, minus: 0x2d, plus: 0x2b, dot: 0x2e,
  lbrace: 0x7b, rbrace: 0x7d, lbracket: 0x5b, rbracket: 0x5d, zero: 0x30, nine: 0x39, e: 0x65, E: 0x45,
} as const;

class StrictJsonParser {
  private pos = 0;
  private readonly path: string[] = [];

  constructor(private readonly s: string) {}

  parseDocument(): JsonValue {
    this.skipWhitespace();
    const value = this.parseValue(0);
    this.skipWhitespace();
    if (this.pos < this.s.length) this.fail('unexpected text after the JSON value');
    return value;
  }

  private fail(what: string, kind: 'syntax' | 'duplicate_key' = 'syntax', at = this.pos, key?: string): never {
    const where = this.path.length ? ` in ${this.path.map((k) => JSON.stringify(k)).join(' > ')}` : '';
    const path = key === undefined ? [...this.path] : [...this.path, key];
    throw new JsonSyntaxError(kind, `${what}${where} at character ${at}`, at, path);
  }

  private describeHere(): string {
    if (this.pos >= this.s.length) return 'end of input';
    const c = this.s.codePointAt(this.pos)!;
    return c >= 0x20 && c < 0x7f ? `'${String.fromCodePoint(c)}'` : `U+${c.toString(16).toUpperCase().padStart(4, '0')}`;
  }

  private skipWhitespace(): void {
    const s = this.s;
    while (this.pos < s.length) {
      const c = s.charCodeAt(this.pos);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
      this.pos++;
    }
  }

  private expect(code: number, what: string): void {
    if (this.s.charCodeAt(this.pos) !== code) this.fail(`expected ${what}, found ${this.describeHere()}`);
    this.pos++;
  }

  private parseValue(depth: number): JsonValue {
    const c = this.s.charCodeAt(this.pos); // NaN at end of input
    if (c === CH.lbrace || c === CH.lbracket) {
      if (depth >= MAX_JSON_DEPTH) this.fail(`nesting deeper than ${MAX_JSON_DEPTH} levels`);
      return c === CH.lbrace ? this.parseObject(depth) : this.parseArray(depth);
    }
    if (c === CH.quote) return this.parseString();
    if (c === CH.minus || (c >= CH.zero && c <= CH.nine)) return this.parseNumber();
    for (const [word, value] of [['true', true], ['false', false], ['null', null]] as const) {
      if (this.s.startsWith(word, this.pos)) {
        this.pos += word.length;
        return value;
      }
    }
    return this.fail(`expected a JSON value, found ${this.describeHere()}`);
  }

  private parseObject(depth: number): JsonObject {
    const out: JsonObject = new Map();
    this.pos++; // {
    this.skipWhitespace();
    if (this.s.charCodeAt(this.pos) === CH.rbrace) {
      this.pos++;
      return out;
    }
    for (;;) {
      const keyAt = this.pos;
      if (this.s.charCodeAt(this.pos) !== CH.quote) this.fail(`expected a string key, found ${this.describeHere()}`);
      const key = this.parseString();
      if (out.has(key)) this.fail(`duplicate key ${JSON.stringify(key)}`, 'duplicate_key', keyAt, key);
      this.skipWhitespace();
      this.expect(CH.colon, "':'");
      this.skipWhitespace();
      this.path.push(key);
      out.set(key, this.parseValue(depth + 1));
      this.path.pop();
      this.skipWhitespace();
      const c = this.s.charCodeAt(this.pos);
      this.pos++;
      if (c === CH.rbrace) return out;
      if (c !== CH.comma) {
        this.pos--;
        this.fail(`expected ',' or '}', found ${this.describeHere()}`);
      }
      this.skipWhitespace();
    }
  }

  private parseArray(depth: number): JsonValue[] {
    const out: JsonValue[] = [];
    this.pos++; // [
    this.skipWhitespace();
    if (this.s.charCodeAt(this.pos) === CH.rbracket) {
      this.pos++;
      return out;
    }
    for (;;) {
      out.push(this.parseValue(depth + 1));
      this.skipWhitespace();
      const c = this.s.charCodeAt(this.pos);
      this.pos++;
      if (c === CH.rbracket) return out;
      if (c !== CH.comma) {
        this.pos--;
        this.fail(`expected ',' or ']', found ${this.describeHere()}`);
      }
      this.skipWhitespace();
    }
  }

  private parseString(): string {
    const s = this.s;
    const start = this.pos;
    this.pos++; // opening quote
    let out = '';
    let chunk = this.pos;
    for (;;) {
      if (this.pos >= s.length) this.fail('unterminated string', 'syntax', start);
      const c = s.charCodeAt(this.pos);
      if (c === CH.quote) {
        out += s.slice(chunk, this.pos);
        this.pos++;
        return out;
      }
      if (c < 0x20) this.fail('unescaped control character in string');
      if (c !== CH.backslash) {
        this.pos++;
        continue;
      }
      out += s.slice(chunk, this.pos);
      out += this.parseEscape();
      chunk = this.pos;
    }
  }

  private parseEscape(): string {
    const e = this.s[this.pos + 1];
    this.pos += 2;
    switch (e) {
      case '"': return '"';
      case '\\': return '\\';
      case '/': return '/';
      case 'b': return '\b';
      case 'f': return '\f';
      case 'n': return '\n';
      case 'r': return '\r';
      case 't': return '\t';
      case 'u': {
        const hi = this.parseHex4();
        if (hi >= 0xdc00 && hi <= 0xdfff) this.fail('lone low surrogate escape');
        if (hi < 0xd800 || hi > 0xdbff) return String.fromCharCode(hi);
        // A high surrogate must be followed by an escaped low one: lone surrogates are not Unicode text
        // (serde_json, used by the reference implementation, refuses them too).
        if (this.s.charCodeAt(this.pos) !== CH.backslash || this.s[this.pos + 1] !== 'u') this.fail('lone high surrogate escape');
        this.pos += 2;
        const lo = this.parseHex4();
        if (lo < 0xdc00 || lo > 0xdfff) this.fail('high surrogate escape not followed by a low one');
        return String.fromCharCode(hi, lo);
      }
      default:
        this.pos -= 2;
        return this.fail('invalid escape sequence');
    }
  }

  private parseHex4(): number {
    const hex = this.s.slice(this.pos, this.pos + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail('invalid \\u escape');
    this.pos += 4;
    return parseInt(hex, 16);
  }

  private parseNumber(): JsonNumber {
    const s = this.s;
    const start = this.pos;
    const isDigit = (i: number) => s.charCodeAt(i) >= CH.zero && s.charCodeAt(i) <= CH.nine;
    const digits = () => {
      if (!isDigit(this.pos)) this.fail('malformed number');
      while (isDigit(this.pos)) this.pos++;
    };
    if (s.charCodeAt(this.pos) === CH.minus) this.pos++;
    if (s.charCodeAt(this.pos) === CH.zero) this.pos++;
    else digits();
    if (s.charCodeAt(this.pos) === CH.dot) {
      this.pos++;
      digits();
    }
    const c = s.charCodeAt(this.pos);
    if (c === CH.e || c === CH.E) {
      this.pos++;
      const sign = s.charCodeAt(this.pos);
      if (sign === CH.plus || sign === CH.minus) this.pos++;
      digits();
    }
    return new JsonNumber(s.slice(start, this.pos));
  }
}

/** Parses RFC 8259 JSON; throws JsonSyntaxError on bad syntax, duplicate keys or nesting > 64. */
export function parseJsonStrict(text: string): JsonValue {
  return new StrictJsonParser(text).parseDocument();
}

/** A JSON number written as a plain non-negative integer that fits a double exactly, else undefined. */
export function jsonSafeInteger(v: JsonValue): number | undefined {
  if (!(v instanceof JsonNumber) || !/^(0|[1-9][0-9]{0,15})$/.test(v.text)) return undefined;
  const n = Number(v.text);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** For messages: "an array", "the number 1.5", "the string \"x\"", "null". */
export function describeJson(v: JsonValue): string {
  if (v === null) return 'null';
  if (v instanceof JsonNumber) return `the number ${v.text.length > 40 ? v.text.slice(0, 40) + '…' : v.text}`;
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Map) return 'an object';
  return typeof v === 'string' ? `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}` : `${v}`;
}
