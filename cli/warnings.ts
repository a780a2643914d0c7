/**
 * The library's embed() warnings are per call; the CLI embeds a long input in chunks, so the
 * three warnings it knows (missing prefix, double prefix, truncation) are summed over chunks
 * and printed once with totals. Any other warning is printed once, as the library wrote it.
 */
const NO_PREFIX = /^(\d+) of (\d+) inputs? to an e5 model starts? with neither/;
const DOUBLE_PREFIX = /^(\d+) inputs? already starts? with a prefix; '([^']*)'/;
const TRUNCATED = /^(\d+) inputs? (?:was|were) truncated to (\d+) tokens/;

const plural = (n: number, one: string, many: string) => (n === 1 ? one : many);

export class WarningTally {
  private noPrefix = 0;
  private noPrefixOf = 0;
  private doubled = 0;
  private prefix = '';
  private truncated = 0;
  private truncatedTo = 0;
  private seen = 0;
  private readonly other: string[] = [];

  add(message: string): void {
    let m: RegExpExecArray | null;
    if ((m = NO_PREFIX.exec(message))) {
      this.noPrefix += Number(m[1]);
      this.noPrefixOf += Number(m[2]);
    } else if ((m = DOUBLE_PREFIX.exec(message))) {
      this.doubled += Number(m[1]);
      this.prefix = m[2];
    } else if ((m = TRUNCATED.exec(message))) {
      this.truncated += Number(m[1]);
      this.truncatedTo = Number(m[2]);
    } else if (!this.other.includes(message)) {
      this.other.push(message);
    }
  }

  /** Every input embedded, so chunks without a warning still count towards "N of M". */
  countInputs(n: number): void {
    this.seen += n;
  }

  messages(): string[] {
    const out: string[] = [];
    if (this.noPrefix) {
      const of = Math.max(this.noPrefixOf, this.seen);
      out.push(`${this.noPrefix} of ${of} ${plural(of, 'input', 'inputs')} to an e5 model ${plural(this.noPrefix, 'starts', 'start')} with neither 'query: ' nor 'passage: ' (e5 was trained with these prefixes; see --prefix)`);
    }
    if (this.doubled) {
      out.push(`${this.doubled} ${plural(this.doubled, 'input already starts', 'inputs already start')} with a prefix; '${this.prefix}' was added in front anyway`);
    }
    if (this.truncated) {
      out.push(`${this.truncated} ${plural(this.truncated, 'input was', 'inputs were')} truncated to ${this.truncatedTo} tokens`);
    }
    return [...out, ...this.other];
  }
}
