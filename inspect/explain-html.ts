/**
 * The "why this score" page (`e5 explain --html`): one self-contained file like the attention
 * viewer (inspect/html.ts) — inline CSS and JS (inspect/viewer/explain.js), no libraries, no
 * network, the same Content-Security-Policy (sha256 of our inline scripts, `default-src 'none'`)
 * and the same escaping of the JSON payload.
 *
 *   - the score and the completeness check;
 *   - each text's tokens coloured by attribution (red adds to the score, blue takes from it);
 *   - the token-pair matrix as a heatmap, query tokens down, passage tokens across, the value of a
 *     cell on hover (and in its title);
 *   - the head grid (layers × heads) in heads mode;
 *   - links to related pages (the attention viewer of the same texts).
 *
 * After rendering, <body> carries a summary for headless tests: data-status="ready",
 * data-rendered-cells (heatmap cells), data-rendered-query-tokens, data-rendered-passage-tokens,
 * data-rendered-heads (grid cells), data-links, data-errors (uncaught errors, counted by boot.js).
 */
import type { ExplainResult } from '../e5/explain';
import { AttentionViewError, checkLinks, jsonForScript, pageHead, PageLink } from './html';
import { BOOT_JS, EXPLAIN_CSS, EXPLAIN_JS } from './viewer/assets';

export const EXPLAIN_VIEW_FORMAT = 'e5-explain-view/1';

export interface ExplainViewData {
  title?: string;
  model: string;
  backend: string;
  result: ExplainResult;
  links?: PageLink[];
}

/** What the page reads (all numbers as float64 JSON). */
export interface ExplainPayload {
  format: typeof EXPLAIN_VIEW_FORMAT;
  title: string;
  model: string;
  backend: string;
  mode: ExplainResult['mode'];
  layer: number | null;
  steps: number;
  score: number;
  completeness: { sum: number; target: number; error: number };
  query: { text: string; tokens: string[]; special: boolean[]; attributions: number[] | null };
  passage: { text: string; tokens: string[]; special: boolean[]; attributions: number[] | null };
  pairs: number[][] | null;
  heads: number[][] | null;
  links: PageLink[];
}

/** The counts and values the page relies on; throws AttentionViewError (the viewers' one error type). */
export function checkExplainViewData(d: ExplainViewData): void {
  const r = d.result;
  const finite = (xs: number[], field: string) => {
    const bad = xs.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0) throw new AttentionViewError('non_finite', `${field}[${bad}]`, String(xs[bad]));
  };
  for (const [name, t] of [['query', r.query], ['passage', r.passage]] as const) {
    if (!t.tokens.length) throw new AttentionViewError('empty', `${name}.tokens`, 'a text needs at least one token');
    if (t.attributions) {
      if (t.attributions.length !== t.tokens.length) throw new AttentionViewError('length_mismatch', `${name}.attributions`, `${t.attributions.length} values for ${t.tokens.length} tokens`);
      finite(t.attributions, `${name}.attributions`);
    }
  }
  if (r.pairs) {
    if (r.pairs.length !== r.query.tokens.length) throw new AttentionViewError('length_mismatch', 'pairs', `${r.pairs.length} rows for ${r.query.tokens.length} query tokens`);
    r.pairs.forEach((row, i) => {
      if (row.length !== r.passage.tokens.length) throw new AttentionViewError('length_mismatch', `pairs[${i}]`, `${row.length} values for ${r.passage.tokens.length} passage tokens`);
      finite(row, `pairs[${i}]`);
    });
  }
  r.heads?.forEach((row, l) => finite(row, `heads[${l}]`));
  finite([r.score], 'score');
  checkLinks(d.links, 'links');
}

export function buildExplainPayload(d: ExplainViewData): ExplainPayload {
  const r = d.result;
  const text = (t: ExplainResult['query']) => ({ text: t.modelText, tokens: t.tokens, special: t.special, attributions: t.attributions });
  return {
    format: EXPLAIN_VIEW_FORMAT,
    title: d.title ?? 'Why this score',
    model: d.model,
    backend: d.backend,
    mode: r.mode,
    layer: r.layer,
    steps: r.steps,
    score: r.score,
    completeness: { sum: r.completeness.sum, target: r.completeness.target, error: r.completeness.error },
    query: text(r.query),
    passage: text(r.passage),
    pairs: r.pairs,
    heads: r.heads,
    links: d.links ?? [],
  };
}

export function renderExplainHtml(d: ExplainViewData): string {
  checkExplainViewData(d);
  const payload = buildExplainPayload(d);
  return `${pageHead({ title: payload.title, generator: `e5-tfjs explain (${EXPLAIN_VIEW_FORMAT})`, css: EXPLAIN_CSS, scripts: [BOOT_JS, EXPLAIN_JS] })}
<body data-status="loading" data-errors="0">
<script>${BOOT_JS}</script>
<header>
  <h1 id="title"></h1>
  <div id="meta" class="muted"></div>
  <div id="score"></div>
</header>
<main>
  <section id="texts-section">
    <h2>Tokens</h2>
    <p class="hint" id="tokens-hint">Each token coloured by its attribution C<sub>t</sub>·e<sub>other</sub>: red adds to the score, blue takes from it (hover for the value). [CLS] and [SEP] are the reference's own and get none.</p>
    <div class="text-row"><span class="side">query</span><div id="query-tokens" class="tokens"></div></div>
    <div class="text-row"><span class="side">passage</span><div id="passage-tokens" class="tokens"></div></div>
  </section>
  <section id="pairs-section" hidden>
    <h2>Token pairs</h2>
    <p class="hint">A[i][j] = C<sup>q</sup><sub>i</sub>·C<sup>p</sup><sub>j</sub>: query tokens down, passage tokens across. Hover a cell for its value.</p>
    <div id="readout" class="readout">&nbsp;</div>
    <div id="heatmap"></div>
  </section>
  <section id="heads-section" hidden>
    <h2>Heads</h2>
    <p class="hint">Integrated gradient of the score with respect to a gate on each head's output (layers down, heads across); a row sums to the score minus the score with that layer's heads zeroed.</p>
    <div id="head-readout" class="readout">&nbsp;</div>
    <div id="head-grid"></div>
  </section>
</main>
<script type="application/json" id="explain-data">${jsonForScript(payload)}</script>
<script>${EXPLAIN_JS}</script>
</body>
</html>
`;
}
