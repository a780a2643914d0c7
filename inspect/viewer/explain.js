// @ts-check
// The "why this score" page of inspect/explain-html.ts (run in the browser): draws the tokens, the
// pair heatmap and the head grid from the JSON payload in the explain-data script element.
// Plain JavaScript, no libraries; every text is set through textContent.
(function () {
  'use strict';
  var P = JSON.parse(document.getElementById('explain-data').textContent);
  var body = document.body;

  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }
  function fmt(x) {
    if (x === 0) return '0';
    var a = Math.abs(x);
    return a >= 1e-3 && a < 1e5 ? x.toFixed(5) : x.toExponential(3);
  }
  /** Diverging colour: red for positive, blue for negative, white at 0; `scale` = the largest |value|. */
  function colour(v, scale) {
    var t = scale > 0 ? Math.min(1, Math.abs(v) / scale) : 0;
    var light = Math.round(100 - 55 * Math.sqrt(t));
    return 'hsl(' + (v >= 0 ? 4 : 214) + ',78%,' + light + '%)';
  }
  function maxAbs(rows) {
    var m = 0;
    rows.forEach(function (row) { row.forEach(function (v) { m = Math.max(m, Math.abs(v)); }); });
    return m;
  }

  function renderHeader() {
    $('title').textContent = P.title;
    document.title = P.title;
    var where = P.mode === 'heads' ? 'heads of every layer' : 'layer ' + P.layer;
    $('meta').textContent = P.model + ' \u00b7 ' + P.backend + ' \u00b7 ' + P.mode + ', ' + where + ', ' + P.steps + ' steps';
    P.links.forEach(function (link) {
      var a = el('a', 'page-link', link.label);
      a.setAttribute('href', link.href);
      $('meta').appendChild(document.createTextNode(' \u00b7 '));
      $('meta').appendChild(a);
    });
    var c = P.completeness;
    $('score').textContent = 'score ' + P.score.toFixed(4) + ' \u00b7 completeness: sum ' + fmt(c.sum) + ', target ' + fmt(c.target) + ', error ' + fmt(c.error);
  }

  function renderTokens(side, id) {
    var box = $(id), t = P[side];
    var scale = t.attributions ? maxAbs([t.attributions]) : 0;
    t.tokens.forEach(function (tok, k) {
      var span = el('span', 'tok' + (t.special[k] ? ' special' : ''), tok);
      if (t.attributions) {
        var v = t.attributions[k];
        span.style.background = colour(v, scale);
        span.title = '#' + k + ' ' + tok + ': ' + fmt(v);
      }
      box.appendChild(span);
    });
    return t.tokens.length;
  }

  /**
   * A heatmap of `rows` (values coloured against the largest |value|) into `container`: a header
   * row of `colHeads` (th elements), each row headed by rowLabel(i), each cell titled
   * cellTitle(i, j, v), and readout(i, j, v) shown in `readoutId` on hover. Returns the cell count.
   */
  function heatTable(container, cls, rows, colHeads, rowLabel, cellTitle, readoutId, readout) {
    var scale = maxAbs(rows), cells = 0;
    var table = el('table', cls);
    var head = el('tr');
    head.appendChild(el('th'));
    colHeads.forEach(function (th) { head.appendChild(th); });
    table.appendChild(head);
    rows.forEach(function (row, i) {
      var tr = el('tr');
      tr.appendChild(el('th', 'row', rowLabel(i)));
      row.forEach(function (v, j) {
        var td = el('td');
        td.style.background = colour(v, scale);
        td.title = cellTitle(i, j, v);
        td.dataset.i = String(i);
        td.dataset.j = String(j);
        tr.appendChild(td);
        cells++;
      });
      table.appendChild(tr);
    });
    table.addEventListener('mouseover', function (e) {
      var td = /** @type {HTMLElement} */ (e.target);
      if (td.tagName !== 'TD') return;
      var i = +td.dataset.i, j = +td.dataset.j;
      $(readoutId).textContent = readout(i, j, rows[i][j]);
    });
    $(container).appendChild(table);
    return cells;
  }

  function renderPairs() {
    if (!P.pairs) return 0;
    $('pairs-section').hidden = false;
    var q = P.query.tokens, p = P.passage.tokens;
    var cols = p.map(function (tok) { var th = el('th', 'col', tok); th.title = tok; return th; });
    return heatTable('heatmap', 'heat', P.pairs, cols, function (i) { return q[i]; },
      function (i, j, v) { return q[i] + ' \u00d7 ' + p[j] + ': ' + fmt(v); }, 'readout',
      function (i, j, v) { return 'query #' + i + ' ' + q[i] + ' \u00d7 passage #' + j + ' ' + p[j] + ': ' + fmt(v); });
  }

  function renderHeads() {
    if (!P.heads) return 0;
    $('heads-section').hidden = false;
    var cols = P.heads[0].map(function (_, h) { return el('th', 'hcol', String(h)); });
    var name = function (l, h, v) { return 'layer ' + l + ', head ' + h + ': ' + fmt(v); };
    return heatTable('head-grid', 'heat heads', P.heads, cols, String, name, 'head-readout', name);
  }

  renderHeader();
  if (!P.query.attributions) $('tokens-hint').textContent = 'The texts as the model saw them (heads mode attributes the score to heads, not tokens).';
  body.dataset.renderedQueryTokens = String(renderTokens('query', 'query-tokens'));
  body.dataset.renderedPassageTokens = String(renderTokens('passage', 'passage-tokens'));
  body.dataset.renderedCells = String(renderPairs());
  body.dataset.renderedHeads = String(renderHeads());
  body.dataset.links = String(document.querySelectorAll('a.page-link').length);
  body.dataset.status = 'ready';
})();
