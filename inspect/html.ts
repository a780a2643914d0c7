/**
 * A self-contained HTML attention viewer: one file, inline CSS + JS, no libraries, no network.
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

// ---------------------------------------------------------------------------------------------
// The page

export function renderAttentionHtml(d: AttentionViewData): string {
  checkAttentionViewData(d);
  const payload = buildViewPayload(d);
  const csp = [
    "default-src 'none'",
    `script-src ${cspHash(BOOT_JS)} ${cspHash(VIEWER_JS)}`,
    "style-src 'unsafe-inline'",
    "img-src data:",
    "base-uri 'none'",
    "form-action 'none'",
  ].join('; ');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="e5-tfjs inspect (${VIEW_FORMAT})">
<title>${escapeHtml(payload.title)}</title>
<style>${CSS}</style>
</head>
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
<script>${VIEWER_JS}</script>
</body>
</html>
`;
}

const CSS = `
:root { --fg: #1d2330; --muted: #6b7280; --line: #e5e7eb; --accent: #1f5fbf; font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: var(--fg); }
body { margin: 0; padding: 12px 18px; font-size: 13px; background: #fff; }
h1 { font-size: 18px; margin: 0 0 2px; }
h2 { font-size: 14px; margin: 0 0 2px; }
.muted, .hint { color: var(--muted); }
.hint { margin: 0 0 8px; font-size: 12px; max-width: 460px; }
.controls { display: flex; flex-wrap: wrap; align-items: center; gap: 6px 12px; margin: 8px 0 10px; padding-bottom: 10px; border-bottom: 1px solid var(--line); }
select, button { font: inherit; }
#row { max-width: 420px; }
#heads { display: inline-flex; flex-wrap: wrap; gap: 3px; }
.head-btn { min-width: 26px; padding: 1px 4px; border: 2px solid transparent; border-radius: 4px; color: #fff; cursor: pointer; font-size: 11px; opacity: .3; }
.head-btn.on { opacity: 1; border-color: #0003; }
main { display: flex; flex-wrap: wrap; gap: 18px 36px; align-items: flex-start; }
.col { display: flex; flex-direction: column; gap: 22px; }
section { min-width: 0; }
#head-view { display: flex; align-items: flex-start; }
.tokens { display: flex; flex-direction: column; }
.tok { height: 18px; line-height: 18px; width: 120px; padding: 0 6px; box-sizing: border-box; white-space: pre; overflow: hidden; text-overflow: ellipsis; cursor: default; font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; border-radius: 3px; }
.tokens.left .tok { text-align: right; }
.tok.hover { outline: 1px solid var(--fg); }
#lines { display: block; }
table.grid { border-collapse: separate; border-spacing: 2px; }
table.grid th { font-weight: normal; color: var(--muted); font-size: 10px; padding: 0 2px; }
table.grid tr.current th { color: var(--accent); font-weight: bold; }
canvas.thumb { display: block; image-rendering: pixelated; cursor: pointer; border: 1px solid var(--line); }
canvas.thumb.sel { outline: 2px solid var(--accent); outline-offset: 1px; }
#chart svg { display: block; }
#chart .axis { stroke: #9ca3af; stroke-width: 1; }
#chart .gridline { stroke: var(--line); stroke-width: 1; }
#chart text { font-size: 10px; fill: var(--muted); }
#chart .series { fill: none; stroke-width: 2; }
#chart .series.dim { opacity: .15; }
#chart .cursor { stroke: var(--accent); stroke-dasharray: 3 3; }
#legend { list-style: none; padding: 0; margin: 6px 0 0; max-width: 380px; }
#legend li { display: flex; gap: 6px; align-items: center; margin: 2px 0; cursor: default; }
#legend .sw { width: 14px; height: 3px; flex: none; }
#legend .txt { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
`;

/** Runs first: count uncaught errors into <body data-errors> so a headless test can read them from the DOM. */
const BOOT_JS = `
(function () {
  var n = 0;
  function count() { n += 1; document.body.setAttribute('data-errors', String(n)); }
  window.addEventListener('error', count);
  window.addEventListener('unhandledrejection', count);
})();
`;

// Plain ES5-style JS on purpose (no build step, no template literals: this file is a TS template).
const VIEWER_JS = `
(function () {
  'use strict';
  var P = JSON.parse(document.getElementById('attention-data').textContent);
  var L = P.numLayers, H = P.numHeads, SCALE = P.quantization.scale;
  var ROW_PX = 18, LINES_W = 200, MIN_LINE = 0.01, THUMB_RES = 64;
  var SVG = 'http://www.w3.org/2000/svg';
  var body = document.body;
  var state = { row: 0, layer: 0, heads: [], hover: null };
  for (var h0 = 0; h0 < H; h0++) state.heads.push(true);

  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }
  function svg(tag, attrs) {
    var e = document.createElementNS(SVG, tag);
    for (var k in attrs) e.setAttribute(k, String(attrs[k]));
    return e;
  }
  function hue(h) { return Math.round((h * 137.508) % 360); }
  function headColor(h) { return 'hsl(' + hue(h) + ',68%,46%)'; }
  function seriesColor(k) { return 'hsl(' + Math.round((k * 137.508 + 210) % 360) + ',62%,42%)'; }
  function clip(s, n) { return s.length > n ? s.slice(0, n - 1) + '\\u2026' : s; }

  // ---- data: uint8 [L,H,T,T] per row, decoded on first use
  var decoded = {};
  function rowAttention(r) {
    if (!decoded[r]) {
      var s = atob(P.rows[r].attention), u = new Uint8Array(s.length);
      for (var i = 0; i < s.length; i++) u[i] = s.charCodeAt(i);
      decoded[r] = u;
    }
    return decoded[r];
  }
  function T() { return P.rows[state.row].tokens.length; }
  function weight(a, t, l, h, i, j) { return a[((l * H + h) * t + i) * t + j] * SCALE; }
  function selectedHeads() {
    var out = [];
    for (var h = 0; h < H; h++) if (state.heads[h]) out.push(h);
    return out;
  }

  // ---- header and controls
  function renderHeader() {
    $('title').textContent = P.title;
    document.title = P.title;
    $('meta').textContent = P.model + ' \\u00b7 ' + P.backend + ' \\u00b7 ' + L + ' layers \\u00d7 ' + H + ' heads \\u00b7 ' + P.rows.length + ' text' + (P.rows.length === 1 ? '' : 's');
    var rowSel = $('row');
    P.rows.forEach(function (row, r) {
      var o = el('option', null, '#' + r + ' (' + row.tokens.length + ' tokens) ' + clip(row.text, 60));
      o.value = String(r);
      o.title = row.text;
      rowSel.appendChild(o);
    });
    rowSel.addEventListener('change', function () { selectRow(+rowSel.value); });
    var layerSel = $('layer');
    for (var l = 0; l < L; l++) {
      var o = el('option', null, String(P.layerLabels[l]));
      o.value = String(l);
      layerSel.appendChild(o);
    }
    layerSel.addEventListener('change', function () { select(+layerSel.value, null); });
    var heads = $('heads');
    for (var h = 0; h < H; h++) {
      var b = el('button', 'head-btn', String(h));
      b.type = 'button';
      b.title = 'head ' + h + ' (click: toggle, double-click: only this head)';
      b.style.background = headColor(h);
      b.dataset.head = String(h);
      heads.appendChild(b);
    }
    heads.addEventListener('click', function (e) {
      var h = e.target.dataset && e.target.dataset.head;
      if (h == null) return;
      state.heads[+h] = !state.heads[+h];
      update();
    });
    heads.addEventListener('dblclick', function (e) {
      var h = e.target.dataset && e.target.dataset.head;
      if (h != null) select(state.layer, [+h]);
    });
    $('all-heads').addEventListener('click', function () { setHeads(null); update(); });
    $('no-heads').addEventListener('click', function () { setHeads([]); update(); });
  }
  function setHeads(list) {
    for (var h = 0; h < H; h++) state.heads[h] = list == null || list.indexOf(h) >= 0;
  }
  function syncControls() {
    $('row').value = String(state.row);
    $('layer').value = String(state.layer);
    var btns = $('heads').children;
    for (var h = 0; h < btns.length; h++) btns[h].classList.toggle('on', state.heads[h]);
    $('head-view-title').textContent = 'Head view \\u2014 layer ' + state.layer + ', heads ' + (selectedHeads().length === H ? 'all' : selectedHeads().join(', ') || 'none');
  }

  // ---- head view: two token columns and a canvas of lines between them
  var headView = { left: [], right: [], canvas: null };
  function buildHeadView() {
    var root = $('head-view');
    root.textContent = '';
    var toks = P.rows[state.row].tokens, left = el('div', 'tokens left'), right = el('div', 'tokens right');
    headView.left = []; headView.right = [];
    toks.forEach(function (t, i) {
      [['left', left, headView.left], ['right', right, headView.right]].forEach(function (side) {
        var d = el('div', 'tok', t);
        d.title = i + ': ' + t;
        d.addEventListener('mouseenter', function () { state.hover = { side: side[0], index: i }; drawHeadView(); });
        d.addEventListener('mouseleave', function () { state.hover = null; drawHeadView(); });
        side[1].appendChild(d);
        side[2].push(d);
      });
    });
    var c = el('canvas');
    c.id = 'lines';
    var dpr = window.devicePixelRatio || 1;
    c.width = LINES_W * dpr; c.height = toks.length * ROW_PX * dpr;
    c.style.width = LINES_W + 'px'; c.style.height = toks.length * ROW_PX + 'px';
    headView.canvas = c;
    root.appendChild(left); root.appendChild(c); root.appendChild(right);
  }
  function drawHeadView() {
    var t = T(), a = rowAttention(state.row), l = state.layer, heads = selectedHeads(), hv = state.hover;
    var c = headView.canvas, ctx = c.getContext('2d'), dpr = c.width / LINES_W;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, LINES_W, t * ROW_PX);
    ctx.lineWidth = 1.5;
    var drawn = 0;
    heads.forEach(function (h) {
      ctx.strokeStyle = headColor(h);
      for (var i = 0; i < t; i++) {
        if (hv && hv.side === 'left' && hv.index !== i) continue;
        for (var j = 0; j < t; j++) {
          if (hv && hv.side === 'right' && hv.index !== j) continue;
          var w = weight(a, t, l, h, i, j);
          if (w < MIN_LINE) continue; // near-invisible lines only cost time
          ctx.globalAlpha = w;
          ctx.beginPath();
          ctx.moveTo(0, (i + 0.5) * ROW_PX);
          ctx.lineTo(LINES_W, (j + 0.5) * ROW_PX);
          ctx.stroke();
          drawn++;
        }
      }
    });
    ctx.globalAlpha = 1;
    // shade the other column by the mean weight over the selected heads
    for (var k = 0; k < t; k++) {
      headView.left[k].classList.toggle('hover', !!hv && hv.side === 'left' && hv.index === k);
      headView.right[k].classList.toggle('hover', !!hv && hv.side === 'right' && hv.index === k);
      headView.left[k].style.background = '';
      headView.right[k].style.background = '';
      if (!hv || heads.length === 0) continue;
      var s = 0;
      heads.forEach(function (h) { s += hv.side === 'left' ? weight(a, t, l, h, hv.index, k) : weight(a, t, l, h, k, hv.index); });
      var shade = 'rgba(255,140,0,' + (s / heads.length).toFixed(3) + ')';
      (hv.side === 'left' ? headView.right : headView.left)[k].style.background = shade;
    }
    body.dataset.headViewTokens = String(t);
    body.dataset.headViewLines = String(drawn);
  }

  // ---- layers x heads grid of thumbnails
  var thumbs = [];
  function buildGrid() {
    var root = $('grid'), t = T(), a = rowAttention(state.row);
    root.textContent = '';
    thumbs = [];
    var res = Math.min(t, THUMB_RES), cell = Math.max(24, Math.min(64, Math.floor(560 / H)));
    var table = el('table', 'grid'), head = el('tr');
    head.appendChild(el('th'));
    for (var h = 0; h < H; h++) head.appendChild(el('th', null, 'H' + h));
    table.appendChild(head);
    for (var l = 0; l < L; l++) {
      var tr = el('tr', 'layer');
      tr.appendChild(el('th', null, 'L' + P.layerLabels[l]));
      thumbs.push([]);
      for (var h2 = 0; h2 < H; h2++) {
        var td = el('td'), c = el('canvas', 'thumb');
        c.width = res; c.height = res;
        c.style.width = cell + 'px'; c.style.height = cell + 'px';
        c.title = 'layer ' + P.layerLabels[l] + ', head ' + h2;
        c.dataset.layer = String(l); c.dataset.head = String(h2);
        paintThumb(c, a, t, l, h2, res);
        td.appendChild(c); tr.appendChild(td);
        thumbs[l].push(c);
      }
      table.appendChild(tr);
    }
    table.addEventListener('click', function (e) {
      var d = e.target.dataset;
      if (d && d.layer != null) select(+d.layer, [+d.head]);
    });
    root.appendChild(table);
  }
  /** Max-pools the T x T matrix to res x res (keeps sharp heads visible for long inputs), shade = sqrt(weight). */
  function paintThumb(c, a, t, l, h, res) {
    var ctx = c.getContext('2d'), img = ctx.createImageData(res, res), px = img.data, step = t / res;
    for (var y = 0; y < res; y++) {
      for (var x = 0; x < res; x++) {
        var v = 0;
        for (var i = Math.floor(y * step); i < Math.floor((y + 1) * step); i++)
          for (var j = Math.floor(x * step); j < Math.floor((x + 1) * step); j++) v = Math.max(v, weight(a, t, l, h, i, j));
        var s = Math.sqrt(v), o = (y * res + x) * 4;
        px[o] = Math.round(255 + (24 - 255) * s);
        px[o + 1] = Math.round(255 + (64 - 255) * s);
        px[o + 2] = Math.round(255 + (140 - 255) * s);
        px[o + 3] = 255;
      }
    }
    ctx.putImageData(img, 0, 0);
  }
  function syncGrid() {
    var rows = $('grid').querySelectorAll('tr.layer');
    for (var l = 0; l < thumbs.length; l++) {
      rows[l].classList.toggle('current', l === state.layer);
      for (var h = 0; h < H; h++) thumbs[l][h].classList.toggle('sel', l === state.layer && state.heads[h]);
    }
  }

  // ---- layer-wise similarity chart
  var series = [];
  function renderChart() {
    var lw = P.layerwise;
    if (!lw) return;
    $('chart-section').hidden = false;
    var W = 380, HT = 250, m = { l: 40, r: 10, t: 10, b: 30 }, D = L + 1;
    var lo = Infinity, hi = -Infinity;
    lw.scores.forEach(function (q) { q.forEach(function (s) { s.forEach(function (v) { lo = Math.min(lo, v); hi = Math.max(hi, v); }); }); });
    var pad = Math.max((hi - lo) * 0.08, 0.01);
    lo -= pad; hi += pad;
    function X(d) { return m.l + (W - m.l - m.r) * (D === 1 ? 0.5 : d / (D - 1)); }
    function Y(v) { return m.t + (HT - m.t - m.b) * (1 - (v - lo) / (hi - lo)); }
    var s = svg('svg', { width: W, height: HT, viewBox: '0 0 ' + W + ' ' + HT, role: 'img' });
    for (var k = 0; k <= 4; k++) {
      var v = lo + (hi - lo) * k / 4;
      s.appendChild(svg('line', { 'class': 'gridline', x1: m.l, x2: W - m.r, y1: Y(v), y2: Y(v) }));
      var lab = svg('text', { x: m.l - 4, y: Y(v) + 3, 'text-anchor': 'end' });
      lab.textContent = v.toFixed(3);
      s.appendChild(lab);
    }
    var every = Math.max(1, Math.ceil(D / 12));
    for (var d = 0; d < D; d += every) {
      var tl = svg('text', { x: X(d), y: HT - m.b + 13, 'text-anchor': 'middle' });
      tl.textContent = d === 0 ? 'emb' : String(d);
      s.appendChild(tl);
    }
    var xl = svg('text', { x: (m.l + W - m.r) / 2, y: HT - 3, 'text-anchor': 'middle' });
    xl.textContent = 'depth (layer output)';
    s.appendChild(xl);
    s.appendChild(svg('line', { 'class': 'axis', x1: m.l, x2: m.l, y1: m.t, y2: HT - m.b }));
    s.appendChild(svg('line', { 'class': 'axis', x1: m.l, x2: W - m.r, y1: HT - m.b, y2: HT - m.b }));
    s.appendChild(svg('line', { 'class': 'cursor', id: 'depth-cursor', x1: 0, x2: 0, y1: m.t, y2: HT - m.b }));
    var legend = $('legend'), n = 0;
    lw.scores.forEach(function (perP, qi) {
      perP.forEach(function (vals, pi) {
        var color = seriesColor(n++);
        var pts = vals.map(function (v, d) { return X(d).toFixed(1) + ',' + Y(v).toFixed(1); }).join(' ');
        var line = svg('polyline', { 'class': 'series', points: pts, stroke: color });
        var tip = svg('title', {});
        tip.textContent = 'q' + qi + ' \\u00b7 p' + pi + ': ' + vals[vals.length - 1].toFixed(4) + ' at the last layer';
        line.appendChild(tip);
        s.appendChild(line);
        series.push(line);
        var li = el('li'), sw = el('span', 'sw');
        sw.style.background = color;
        li.appendChild(sw);
        li.appendChild(el('span', 'txt', 'q' + qi + ' \\u00b7 p' + pi + '  ' + clip(lw.queries[qi], 40) + '  \\u2192  ' + clip(lw.passages[pi], 60)));
        li.title = 'query: ' + lw.queries[qi] + '\\npassage: ' + lw.passages[pi];
        li.addEventListener('mouseenter', function () { series.forEach(function (o) { o.classList.toggle('dim', o !== line); }); });
        li.addEventListener('mouseleave', function () { series.forEach(function (o) { o.classList.remove('dim'); }); });
        legend.appendChild(li);
      });
    });
    $('chart').appendChild(s);
    renderChart.X = X;
  }
  function syncChart() {
    var c = $('depth-cursor');
    if (!c) return;
    var x = renderChart.X(state.layer + 1); // layer l's output is depth l + 1
    c.setAttribute('x1', x); c.setAttribute('x2', x);
  }

  // ---- state changes
  function select(layer, heads) {
    state.layer = layer;
    if (heads) setHeads(heads);
    update();
  }
  function selectRow(r) {
    state.row = r;
    state.hover = null;
    buildHeadView();
    buildGrid();
    update();
  }
  function update() {
    syncControls();
    drawHeadView();
    syncGrid();
    syncChart();
    body.dataset.selectedRow = String(state.row);
    body.dataset.selectedLayer = String(state.layer);
    body.dataset.selectedHeads = selectedHeads().join(',');
  }
  /** #row=1&layer=5&heads=3,7 */
  function readHash() {
    var q = {};
    location.hash.replace(/^#/, '').split('&').forEach(function (kv) {
      var p = kv.split('=');
      if (p[0]) q[p[0]] = decodeURIComponent(p[1] || '');
    });
    var r = parseInt(q.row, 10), l = parseInt(q.layer, 10);
    if (r >= 0 && r < P.rows.length) state.row = r;
    if (l >= 0 && l < L) state.layer = l;
    if (q.heads) setHeads(q.heads.split(',').map(Number).filter(function (h) { return h >= 0 && h < H; }));
  }

  renderHeader();
  readHash();
  renderChart();
  selectRow(state.row);
  body.dataset.renderedRows = String($('row').options.length);
  body.dataset.renderedLayers = String($('grid').querySelectorAll('tr.layer').length);
  body.dataset.renderedHeads = String($('grid').querySelectorAll('tr.layer')[0].querySelectorAll('canvas.thumb').length);
  body.dataset.renderedThumbnails = String($('grid').querySelectorAll('canvas.thumb').length);
  body.dataset.chartLines = String(series.length);
  body.dataset.status = 'ready';
})();
`;
