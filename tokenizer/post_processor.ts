// Truncation and the post-processor (HF `utils::truncation` and `processors::template`):
// [CLS] A [SEP] / [CLS] A [SEP] B [SEP] with token_type_ids from the template.

/** Tokens of one input sequence before special tokens: ids, strings, original code-point offsets. */
export interface RawEncoding {
  ids: number[];
  tokens: string[];
  starts: number[];
  ends: number[];
}

export type TemplatePiece =
  | { kind: 'special'; id: string; typeId: number }
  | { kind: 'sequence'; sequence: 'A' | 'B'; typeId: number };

export interface TemplateProcessing {
  single: TemplatePiece[];
  pair: TemplatePiece[];
  /** Special token name (as used in the template) -> ids and token strings. */
  specialTokens: Map<string, { ids: number[]; tokens: string[] }>;
}

/** How many tokens the template adds (HF `added_tokens(is_pair)`); 0 without a post-processor. */
export function numAddedTokens(tpl: TemplateProcessing | null, isPair: boolean): number {
  if (!tpl) return 0;
  let n = 0;
  for (const p of isPair ? tpl.pair : tpl.single) if (p.kind === 'special') n += tpl.specialTokens.get(p.id)!.ids.length;
  return n;
}

/**
 * Lengths to keep for A and B (HF `truncate_encodings`, strategy longest_first, stride 0, direction
 * right) within `budget` = maxLength minus the special tokens. With n1 the shorter: if n1 fits in
 * half the budget (or in what the longer one leaves), only the longer is cut; otherwise both get
 * half and the longer one gets the odd token (B when equal).
 *
 * lenA/lenB are the lengths HF compares, which are not always the full lengths: tokenizers 0.23 stops
 * tokenizing a text after the first word that reaches maxLength tokens (see encodeSequence), so two
 * long texts often compare "equal" and B gets the odd token although A is longer.
 */
export function truncateLongestFirst(lenA: number, lenB: number | null, budget: number): [number, number] {
  if (budget <= 0) return [0, 0];
  if (lenA + (lenB ?? 0) <= budget) return [lenA, lenB ?? 0];
  if (lenB === null) return [budget, 0];
  let n1 = lenA;
  let n2 = lenB;
  const swap = n1 > n2; // make n1 the shorter
  if (swap) [n1, n2] = [n2, n1];
  n2 = n1 > budget ? n1 : Math.max(n1, budget - n1);
  if (n1 + n2 > budget) {
    n1 = Math.floor(budget / 2);
    n2 = n1 + (budget % 2);
  }
  if (swap) [n1, n2] = [n2, n1];
  return [Math.min(n1, lenA), Math.min(n2, lenB)];
}

export function truncateRaw(e: RawEncoding, n: number): RawEncoding {
  if (e.ids.length <= n) return e;
  return { ids: e.ids.slice(0, n), tokens: e.tokens.slice(0, n), starts: e.starts.slice(0, n), ends: e.ends.slice(0, n) };
}

/** A finished sequence of tokens (before padding). */
export interface Assembled {
  ids: number[];
  typeIds: number[];
  tokens: string[];
  starts: number[];
  ends: number[];
  specialTokensMask: number[];
}

/**
 * Applies the template (HF `TemplateProcessing::apply_template`). Sequences take the template's
 * type id even when special tokens are not added; special tokens get offsets (0, 0). Without a
 * post-processor, A has type 0 and B type 1 (HF's default `process`).
 */
export function postProcess(tpl: TemplateProcessing | null, a: RawEncoding, b: RawEncoding | null, addSpecialTokens: boolean): Assembled {
  const out: Assembled = { ids: [], typeIds: [], tokens: [], starts: [], ends: [], specialTokensMask: [] };
  const pushSequence = (e: RawEncoding, typeId: number) => {
    for (let i = 0; i < e.ids.length; i++) {
      out.ids.push(e.ids[i]);
      out.typeIds.push(typeId);
      out.tokens.push(e.tokens[i]);
      out.starts.push(e.starts[i]);
      out.ends.push(e.ends[i]);
      out.specialTokensMask.push(0);
    }
  };
  if (!tpl) {
    pushSequence(a, 0);
    if (b) pushSequence(b, 1);
    return out;
  }
  for (const piece of b ? tpl.pair : tpl.single) {
    if (piece.kind === 'sequence') {
      pushSequence(piece.sequence === 'A' ? a : b!, piece.typeId);
    } else if (addSpecialTokens) {
      const sp = tpl.specialTokens.get(piece.id)!;
      for (let i = 0; i < sp.ids.length; i++) {
        out.ids.push(sp.ids[i]);
        out.typeIds.push(piece.typeId);
        out.tokens.push(sp.tokens[i]);
        out.starts.push(0);
        out.ends.push(0);
        out.specialTokensMask.push(1);
      }
    }
  }
  return out;
}
