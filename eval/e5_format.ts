/**
 * How e5 turns a BEIR document into the text it embeds — copied from the authors' own evaluation.
 *
 * microsoft/unilm `e5/mteb_beir_eval.py` (RetrievalModel, commit 0822e37d):
 *
 *     def encode_queries(self, queries, **kwargs):
 *         input_texts = ['query: {}'.format(q) for q in queries]
 *     def encode_corpus(self, corpus, **kwargs):
 *         if args.doc_as_query:                       # set only for QuoraRetrieval
 *             return self.encode_queries([d['text'] for d in corpus], **kwargs)
 *         input_texts = ['{} {}'.format(doc.get('title', ''), doc['text']).strip() for doc in corpus]
 *         input_texts = ['passage: {}'.format(t) for t in input_texts]
 *
 * So: title, one space, text; then Python's str.strip() on the whole (an empty title leaves no
 * leading space); then the prefix. Queries are not stripped. The tokenizer gets max_length=512,
 * truncation=True, and pooling is 'avg' (scripts/eval_mteb_beir.sh passes --pool-type avg).
 *
 * The prefix itself is added by the Embedder (`prefix: 'passage'`), so these functions return the
 * text *after* the prefix.
 */

// Python's str.isspace() set (Unicode White_Space plus the ASCII separators U+001C..U+001F), which is
// what str.strip() removes. JavaScript's trim() differs: it also strips U+FEFF and keeps U+001C..U+001F
// and U+0085, so we do not use it.
const PY_WHITESPACE = new Set([
  0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680,
  0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a,
  0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
]);

/** Python's `s.strip()`: removes leading and trailing whitespace as `str.isspace()` defines it. */
export function pyStrip(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && PY_WHITESPACE.has(s.charCodeAt(start))) start++;
  while (end > start && PY_WHITESPACE.has(s.charCodeAt(end - 1))) end--;
  return s.slice(start, end);
}

/** The passage text e5's BEIR evaluation embeds, before 'passage: ' is prepended. */
export function e5PassageText(title: string, text: string): string {
  return pyStrip(`${title} ${text}`);
}

/**
 * What to embed for the corpus. `docAsQuery` is e5's Quora setting: the document text alone, embedded
 * with the *query* prefix (both sides of Quora are questions).
 */
export function corpusInputs(
  docs: { titles: readonly string[]; texts: readonly string[] },
  docAsQuery = false,
): { texts: string[]; prefix: 'query' | 'passage' } {
  if (docAsQuery) return { texts: [...docs.texts], prefix: 'query' };
  return { texts: docs.texts.map((t, i) => e5PassageText(docs.titles[i], t)), prefix: 'passage' };
}
