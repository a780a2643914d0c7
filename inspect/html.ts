/**
 * A self-contained HTML attention viewer: one file, inline CSS + JS (inspect/viewer/), no libraries,
 * no network.
 *
 *   - row selector (one text of the batch)
 *   - head view like bertviz: tokens in two columns, lines from query i (left) to key j (right) with
 *     opacity = attention weight, one colour per head; hover a token to see only its lines
 *   - layers × heads overview: one small attention-matrix thumbnail (canvas) per layer and head;
 *     click one to select that layer/head
 *   - layer-wise similarity chart (inline SVG) when `layerwise` is given
 *
 * Data encoding (keeps a 24-layer × 16-head × 64-token row near 2 MB instead of ~9 MB of decimals):
 * attention probabilities are quantized to uint8, q = round(clamp(p, 0, 1) * 255) (max error 1/510 ≈
 * 0.002, invisible at screen resolution), laid out [L,H,T,T] row-major per text and base64-encoded.
 * The payload is JSON in a <script type="application/json">, with `<`, `>`, `&`, U+2028 and U+2029
 * written as \uXXXX so no token text can close the script element. All page text is set through
 * `textContent`. A Content-Security-Policy with `default-src 'none'` and the sha256 of our two inline
 * scripts forbids every network request and any injected script, should escaping ever fail.
 *
 * After rendering, <body> carries a summary for headless tests (`data-status="ready"`,
 * `data-rendered-layers`, `data-rendered-heads`, `data-rendered-thumbnails`, `data-chart-lines`,
 * `data-errors` = uncaught errors counted by window.onerror). `file.html#row=1&layer=5&heads=3,7`
 * opens with that selection.
 */
import { createHash } from 'node:crypto';
import { BOOT_JS, VIEW_CSS, VIEW_JS } from './viewer/assets';

export interface AttentionViewData {
  title?: string;
  model: string; // model path or id
  backend: string; // e.g. "wasm (2 threads)"
  texts: string[]; // one per row
  /** per row, WordPiece token strings incl. [CLS]/[SEP] (only real tokens, no padding) */
  tokens: string[][];
  /** attention[layer][row] = Float32Array of H*T*T (post-softmax, [H,T,T] row-major, T = tokens[row].length) */
  attention: Float32Array[][];
  numHeads: number;
  /** the model's layer number of each entry of `attention` (default 0..L-1; e.g. [1, 3] for --layers 1,3) */
  layerIndices?: number[];
  /** optional layer-wise similarity: for each query i and passage j, similarity per depth (L+1 values: embeddings output, then each layer) */
  layerwise?: { queries: string[]; passages: string[]; scores: number[][][] /* [q][p][depth] */ };
  /** links to related pages (e.g. `e5 explain --html` of the same texts), shown in the header; relative or http(s) hrefs */
  links?: PageLink[];
}

export interface PageLink {
  href: string;
  label: string;
}

/** A link the page may show: a relative path or an http(s) URL (no javascript:, data: …). */
export function checkLinks(links: PageLink[] | undefined, what: string): void {
  (links ?? []).forEach((l, i) => {
    if (typeof l?.href !== 'string' || typeof l.label !== 'string') throw new AttentionViewError('bad_field', `${what}[${i}]`, 'expected {href, label} strings');
    if (/^\s*[a-z][a-z0-9+.-]*:/i.test(l.href) && !/^\s*https?:/i.test(l.href)) {
      throw new AttentionViewError('bad_field', `${what}[${i}].href`, `${JSON.stringify(l.href)}: only relative paths and http(s) URLs`);
    }
  });
}

export type AttentionViewErrorCode =
  | 'bad_field' // missing or mistyped field
  | 'empty' // no rows, no layers, or a row without tokens
  | 'length_mismatch' // counts that must agree do not (rows, layers, H*T*T, depths)
  | 'not_probability' // NaN, or an attention value outside [0, 1] (pre-softmax scores passed by mistake?)
  | 'non_finite' // NaN or ±Inf in a layer-wise score
  | 'bad_row'; // row index out of range

export class AttentionViewError extends Error {
  override readonly name = 'AttentionViewError';
  readonly code: AttentionViewErrorCode;
  /** Where the problem is, e.g. `attention[3][1]` or `layerwise.scores[0][2]`. */
  readonly field: string;

  constructor(code: AttentionViewErrorCode, field: string, detail: string) {
    super(`attention view: ${field}: ${detail} [${code}]`);
    this.code = code;
    this.field = field;
  }
}

/** Rounding slack for "post-softmax": float32 sums can land a hair outside [0, 1]. */
const PROBABILITY_SLACK = 1e-3;

/** Checks every count and value the viewer and the bertviz export rely on; throws AttentionViewError. */
export function checkAttentionViewData(d: AttentionViewData): void {
  const H = d.numHeads;
  if (!Number.isSafeInteger(H) || H < 1) throw new AttentionViewError('bad_field', 'numHeads', `expected a positive integer, got ${H}`);
  if (!Array.isArray(d.texts) || !Array.isArray(d.tokens)) throw new AttentionViewError('bad_field', 'texts/tokens', 'expected arrays');
  if (d.layerIndices !== undefined && (!Array.isArray(d.layerIndices) || d.layerIndices.length !== d.attention?.length || !d.layerIndices.every((l) => Number.isSafeInteger(l) && l >= 0))) {
    throw new AttentionViewError('length_mismatch', 'layerIndices', `expected one non-negative layer number per attention layer (${d.attention?.length}), got ${JSON.stringify(d.layerIndices)}`);
  }
  const B = d.tokens.length;
  if (B === 0) throw new AttentionViewError('empty', 'tokens', 'no rows');
  if (d.texts.length !== B) throw new AttentionViewError('length_mismatch', 'texts', `${d.texts.length} texts for ${B} token rows`);
  d.tokens.forEach((row, r) => {
    if (!Array.isArray(row) || row.length === 0) throw new AttentionViewError('empty', `tokens[${r}]`, 'a row needs at least one token');
    const bad = row.findIndex((t) => typeof t !== 'string');
    if (bad >= 0) throw new AttentionViewError('bad_field', `tokens[${r}][${bad}]`, 'expected a string');
  });
  const L = d.attention.length;
  if (L === 0) throw new AttentionViewError('empty', 'attention', 'no layers');
  d.attention.forEach((layer, l) => {
    if (layer.length !== B) throw new AttentionViewError('length_mismatch', `attention[${l}]`, `${layer.length} rows, expected ${B}`);
    layer.forEach((a, r) => checkPattern(a, `attention[${l}][${r}]`, H, d.tokens[r].length));
  });
  if (d.layerwise) checkLayerwise(d.layerwise, L + 1);
  checkLinks(d.links, 'links');
}

function checkPattern(a: Float32Array, field: string, H: number, T: number): void {
  if (!(a instanceof Float32Array)) throw new AttentionViewError('bad_field', field, 'expected a Float32Array');
  if (a.length !== H * T * T) {
    throw new AttentionViewError('length_mismatch', field, `${a.length} values, expected H*T*T = ${H}*${T}*${T} = ${H * T * T}`);
  }
  for (let k = 0; k < a.length; k++) {
    const p = a[k];
    if (!(p >= -PROBABILITY_SLACK && p <= 1 + PROBABILITY_SLACK)) {
      const h = Math.floor(k / (T * T));
      const i = Math.floor(k / T) % T;
      throw new AttentionViewError('not_probability', field, `value ${p} at head ${h}, query ${i}, key ${k % T} is not in [0, 1]`);
    }
  }
}

function checkLayerwise(lw: NonNullable<AttentionViewData['layerwise']>, depths: number): void {
  const { queries, passages, scores } = lw;
  if (scores.length !== queries.length) {
    throw new AttentionViewError('length_mismatch', 'layerwise.scores', `${scores.length} query rows for ${queries.length} queries`);
  }
  scores.forEach((perPassage, q) => {
    if (perPassage.length !== passages.length) {
      throw new AttentionViewError('length_mismatch', `layerwise.scores[${q}]`, `${perPassage.length} entries for ${passages.length} passages`);
    }
    perPassage.forEach((series, p) => {
      const field = `layerwise.scores[${q}][${p}]`;
      if (series.length !== depths) {
        throw new AttentionViewError('length_mismatch', field, `${series.length} depths, expected L+1 = ${depths} (embeddings, then each layer)`);
      }
      const bad = series.findIndex((s) => !Number.isFinite(s));
      if (bad >= 0) throw new AttentionViewError('non_finite', `${field}[${bad}]`, `${series[bad]}`);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Payload

export const VIEW_FORMAT = 'e5-attention-view/1';
export const QUANT_LEVELS = 255;

/** What the page reads. `rows[r].attention` = base64 of uint8 [L,H,T,T], value = byte / 255. */
export interface ViewPayload {
  format: typeof VIEW_FORMAT;
  title: string;
  model: string;
  backend: string;
  numLayers: number;
  /** the model's layer number of each shown layer */
  layerLabels: number[];
  numHeads: number;
  quantization: { type: 'uint8'; scale: number };
  rows: { text: string; tokens: string[]; attention: string }[];
  layerwise: AttentionViewData['layerwise'] | null;
  links: PageLink[];
}

export function quantizeProbabilities(a: Float32Array, out: Uint8Array, offset: number): void {
  for (let k = 0; k < a.length; k++) out[offset + k] = Math.round(Math.min(Math.max(a[k], 0), 1) * QUANT_LEVELS);
}

export function buildViewPayload(d: AttentionViewData): ViewPayload {
  const L = d.attention.length;
  const rows = d.tokens.map((tokens, r) => {
    const perLayer = d.numHeads * tokens.length * tokens.length;
    const bytes = new Uint8Array(L * perLayer); // [L,H,T,T]
    for (let l = 0; l < L; l++) quantizeProbabilities(d.attention[l][r], bytes, l * perLayer);
    return { text: d.texts[r], tokens, attention: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64') };
  });
  return {
    format: VIEW_FORMAT,
    title: d.title ?? 'Attention',
    model: d.model,
    backend: d.backend,
    numLayers: L,
    layerLabels: d.layerIndices ?? Array.from({ length: L }, (_, l) => l),
    numHeads: d.numHeads,
    quantization: { type: 'uint8', scale: 1 / QUANT_LEVELS },
    rows,
    layerwise: d.layerwise ?? null,
    links: d.links ?? [],
  };
}

// ---------------------------------------------------------------------------------------------
// Escaping

/** JSON that is safe inside <script>: no `<` (so no `</script` or `<!--`), `>`, `&`, or JS line separators. */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function cspHash(script: string): string {
  return `'sha256-${createHash('sha256').update(script, 'utf8').digest('base64')}'`;
}

/**
 * The start of every self-contained page (the attention view, e5 explain's, e5 eval's scan grid), up
 * to </head>: a Content-Security-Policy under which only `scripts` (by their sha256) run, inline
 * styles apply, data: images load when `images`, and nothing else is fetched or submitted.
 */
export function pageHead(o: { title: string; generator: string; css: string; scripts: string[]; images?: boolean; viewport?: boolean }): string {
  const csp = [
    "default-src 'none'",
    `script-src ${o.scripts.map(cspHash).join(' ')}`,
    "style-src 'unsafe-inline'",
    ...(o.images ? ['img-src data:'] : []),
    "base-uri 'none'",
    "form-action 'none'",
  ].join('; ');
  const viewport = o.viewport === false ? '' : '<meta name="viewport" content="width=device-width, initial-scale=1">\n';
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
${viewport}<meta name="generator" content="${o.generator}">
<title>${escapeHtml(o.title)}</title>
<style>${o.css}</style>
</head>`;
}

// ---------------------------------------------------------------------------------------------
// The page

export function renderAttentionHtml(d: AttentionViewData): string {
  checkAttentionViewData(d);
  const payload = buildViewPayload(d);
  return `${pageHead({ title: payload.title, generator: `e5-tfjs inspect (${VIEW_FORMAT})`, css: VIEW_CSS, scripts: [BOOT_JS, VIEW_JS], images: true })}
<body data-status="loading" data-errors="0">
<script>${BOOT_JS}</script>
<header>
  <h1 id="title"></h1>
  <div id="meta" class="muted"></div>
  <div class="controls">
    <label>Text <select id="row"></select></label>
    <label>Layer <select id="layer"></select></label>
    <span class="heads-label">Heads</span><span id="heads"></span>
    <button id="all-heads" type="button">all</button><button id="no-heads" type="button">none</button>
  </div>
</header>
<main>
  <div class="col">
    <section id="chart-section" hidden>
      <h2>Layer-wise similarity</h2>
      <p class="hint">Cosine similarity of mean-pooled, normalized hidden states at each depth (0 = embeddings); the dashed line marks the selected layer.</p>
      <div id="chart"></div>
      <ul id="legend"></ul>
    </section>
    <section id="head-view-section">
      <h2 id="head-view-title">Head view</h2>
      <p class="hint">Lines from each token (left, query) to the tokens it attends to (right, key); opacity = weight. Hover a token to isolate it.</p>
      <div id="head-view"></div>
    </section>
  </div>
  <section id="grid-section">
    <h2>Layers × heads</h2>
    <p class="hint">Each thumbnail is one attention matrix (rows = queries, columns = keys, shade = √weight). Click to select.</p>
    <div id="grid"></div>
  </section>
</main>
<script type="application/json" id="attention-data">${jsonForScript(payload)}</script>
<script>${VIEW_JS}</script>
</body>
</html>
`;
}
