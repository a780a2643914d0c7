// Offsets come back in code points (as the npm `tokenizers` binding reports them). JavaScript strings
// are indexed in UTF-16 units, which differ as soon as the text holds an astral character (emoji,
// CJK Extension B, ...). This converts, so `text.slice(start, end)` highlights the right thing.

/** Maps [start, end) code-point offsets of `text` to UTF-16 offsets. */
export function toUtf16Offsets(text: string, offsets: ReadonlyArray<readonly [number, number]>): Array<[number, number]> {
  // utf16At[k] = UTF-16 index of code point k (plus one entry for the end of the string).
  const utf16At: number[] = [];
  for (let i = 0; i < text.length; i++) {
    utf16At.push(i);
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
  }
  utf16At.push(text.length);
  const at = (k: number) => utf16At[Math.min(Math.max(k, 0), utf16At.length - 1)];
  return offsets.map(([s, e]) => [at(s), at(e)]);
}
