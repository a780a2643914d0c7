/**
 * A scan as a self-contained HTML heat grid: layers down, heads across (one column for a layer scan),
 * each cell coloured by the metric's change when it is ablated (red: retrieval gets worse, blue:
 * better; the scale is the largest |Δ| of the grid) and labelled with Δ. Clicking a cell (or the URL
 * hash `#cell=3.5`) lists the queries whose metric that ablation changed, largest change first.
 *
 * No network, no external file: the data is JSON in a <script type="application/json"> (escaped as
 * inspect/html.ts escapes it) and the only script is allowed by its sha256 in the page's
 * Content-Security-Policy. The body's data-* attributes report what was drawn (for the tests).
 */
import { escapeHtml, jsonForScript, pageHead } from '../inspect/html';
import { sideText } from './ablation';
import type { ScanResult } from './scan';

export const SCAN_VIEW_FORMAT = 'e5-scan-grid/1';

interface ScanPayload {
  format: string;
  title: string;
  metric: string;
  baseline: number;
  rows: number;
  cols: number;
  colLabel: string;
  queryIds: string[];
  cells: Array<{ label: string; row: number; col: number; value: number; delta: number; perQuery: number[] }>;
}

const CSS = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.2em; margin: 0 0 .3em; }
.note { color: #555; margin: .2em 0; }
table.grid { border-collapse: collapse; margin: 1em 0; }
table.grid th { font-weight: 600; padding: 2px 6px; color: #444; }
table.grid td { width: 4.2em; height: 2em; text-align: center; font: 12px ui-monospace, monospace; border: 1px solid #fff; cursor: pointer; }
table.grid td.missing { background: #eee; color: #999; cursor: default; }
table.grid td.selected { outline: 2px solid #000; }
#details table { border-collapse: collapse; }
#details td, #details th { padding: 1px 8px; text-align: right; font: 12px ui-monospace, monospace; }
#details td:first-child, #details th:first-child { text-align: left; }
`;

const VIEW_JS = `(function () {
  var body = document.body;
  try {
    var d = JSON.parse(document.getElementById('scan-data').textContent);
    var maxAbs = 0;
    d.cells.forEach(function (c) { maxAbs = Math.max(maxAbs, Math.abs(c.delta)); });
    function colour(delta) {
      if (maxAbs === 0 || delta === 0) return 'rgb(255,255,255)';
      var t = Math.min(1, Math.abs(delta) / maxAbs), v = Math.round(255 * (1 - 0.75 * t));
      return delta < 0 ? 'rgb(255,' + v + ',' + v + ')' : 'rgb(' + v + ',' + v + ',255)';
    }
    function fmt(v) { return (v > 0 ? '+' : '') + v.toFixed(4); }
    var byPos = {};
    d.cells.forEach(function (c) { byPos[c.row + ',' + c.col] = c; });
    var table = document.getElementById('grid');
    var head = document.createElement('tr');
    head.appendChild(document.createElement('th'));
    for (var h = 0; h < d.cols; h++) {
      var th = document.createElement('th');
      th.textContent = d.cols === 1 ? d.colLabel : d.colLabel + ' ' + h;
      head.appendChild(th);
    }
    table.appendChild(head);
    var drawn = 0, missing = 0;
    for (var l = 0; l < d.rows; l++) {
      var tr = document.createElement('tr');
      var label = document.createElement('th');
      label.textContent = 'layer ' + l;
      tr.appendChild(label);
      for (var k = 0; k < d.cols; k++) {
        var td = document.createElement('td'), c = byPos[l + ',' + k];
        if (c) {
          td.textContent = c.delta === 0 ? '0' : fmt(c.delta);
          td.style.background = colour(c.delta);
          td.title = c.label + ': ' + d.metric + ' ' + c.value.toFixed(5) + ' (' + fmt(c.delta) + ')';
          td.dataset.cell = c.label;
          td.dataset.delta = String(c.delta);
          td.addEventListener('click', (function (label) { return function () { location.hash = 'cell=' + label; }; })(c.label));
          drawn++;
        } else {
          td.className = 'missing';
          td.textContent = '\\u00b7';
          td.title = 'not computed';
          missing++;
        }
        tr.appendChild(td);
      }
      table.appendChild(tr);
    }
    body.dataset.renderedCells = String(drawn);
    body.dataset.missingCells = String(missing);
    function select() {
      var m = /cell=([0-9.]+)/.exec(location.hash), details = document.getElementById('details');
      details.textContent = '';
      Array.prototype.forEach.call(document.querySelectorAll('td.selected'), function (e) { e.classList.remove('selected'); });
      var c = m && d.cells.filter(function (x) { return x.label === m[1]; })[0];
      if (!c) { body.dataset.selectedCell = ''; return; }
      var td = document.querySelector('td[data-cell="' + c.label + '"]');
      if (td) td.classList.add('selected');
      var rows = c.perQuery.map(function (v, i) { return [d.queryIds[i], v]; }).filter(function (r) { return r[1] !== 0; });
      rows.sort(function (a, b) { return Math.abs(b[1]) - Math.abs(a[1]); });
      var h2 = document.createElement('h2');
      h2.textContent = c.label + ': ' + rows.length + ' of ' + d.queryIds.length + ' queries change ' + d.metric;
      details.appendChild(h2);
      var t = document.createElement('table'), hr = document.createElement('tr');
      ['query', 'Δ ' + d.metric].forEach(function (x) { var th = document.createElement('th'); th.textContent = x; hr.appendChild(th); });
      t.appendChild(hr);
      rows.forEach(function (r) {
        var row = document.createElement('tr');
        [r[0], fmt(r[1])].forEach(function (x) { var cell = document.createElement('td'); cell.textContent = x; row.appendChild(cell); });
        t.appendChild(row);
      });
      details.appendChild(t);
      body.dataset.selectedCell = c.label;
      body.dataset.detailRows = String(rows.length);
    }
    window.addEventListener('hashchange', select);
    select();
    body.dataset.status = 'ready';
  } catch (e) {
    body.dataset.errors = String(Number(body.dataset.errors) + 1);
    body.dataset.status = 'error';
    console.error(e && e.stack || String(e));
  }
})();`;

export function buildScanPayload(r: ScanResult): ScanPayload {
  const ki = r.baseline.settings.k.indexOf(r.metric.k);
  const what = r.scan === 'heads' ? 'each head' : "each layer's heads";
  return {
    format: SCAN_VIEW_FORMAT,
    title: `${r.baseline.dataset.name}: ${r.metric.label} with ${what} ${r.mode}-ablated (${sideText(r.side)})`,
    metric: r.metric.label,
    baseline: r.baseline.means[r.metric.name][ki],
    rows: r.shape.layers,
    cols: r.scan === 'heads' ? r.shape.heads : 1,
    colLabel: r.scan === 'heads' ? 'head' : 'all heads',
    queryIds: r.queryIds,
    cells: r.cells.map((c) => ({ label: c.label, row: c.layer, col: c.head ?? 0, value: c.means[r.metric.name][ki], delta: c.delta[r.metric.name][ki], perQuery: c.perQueryDelta })),
  };
}

export function renderScanHtml(r: ScanResult): string {
  const p = buildScanPayload(r);
  const notes = [
    `model ${r.baseline.model.id}; ${r.baseline.counts.queriesEvaluated} queries, ${r.baseline.dataset.corpusSize} passages (split ${r.baseline.dataset.split})`,
    `${p.metric} without ablation: ${p.baseline.toFixed(5)}. Each cell: ${p.metric} with it ablated minus that (red: worse, blue: better). Click a cell for its queries.`,
    ...(r.meanReference ? [`mean ablation: a head's output becomes its mean over ${r.meanReference}`] : []),
  ];
  return `${pageHead({ title: p.title, generator: `e5-tfjs eval (${SCAN_VIEW_FORMAT})`, css: CSS, scripts: [VIEW_JS], viewport: false })}
<body data-status="loading" data-errors="0">
<h1>${escapeHtml(p.title)}</h1>
${notes.map((n) => `<p class="note">${escapeHtml(n)}</p>`).join('\n')}
<table class="grid" id="grid"></table>
<div id="details"></div>
<script type="application/json" id="scan-data">${jsonForScript(p)}</script>
<script>${VIEW_JS}</script>
</body>
</html>
`;
}
