// @ts-check
// The viewer script of inspect/html.ts (run in the browser): draws the page from the JSON payload
// in the attention-data script element. Plain JavaScript, no libraries; the build only inlines it.
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
  /** @returns {HTMLSelectElement} */
  function selectEl(id) { return /** @type {HTMLSelectElement} */ ($(id)); }
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
  function clip(s, n) { return s.length > n ? s.slice(0, n - 1) + '\u2026' : s; }

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
    $('meta').textContent = P.model + ' \u00b7 ' + P.backend + ' \u00b7 ' + L + ' layers \u00d7 ' + H + ' heads \u00b7 ' + P.rows.length + ' text' + (P.rows.length === 1 ? '' : 's');
    (P.links || []).forEach(function (link) {
      var a = el('a', 'page-link', link.label);
      a.setAttribute('href', link.href);
      $('meta').appendChild(document.createTextNode(' \u00b7 '));
      $('meta').appendChild(a);
    });
    var rowSel = selectEl('row');
    P.rows.forEach(function (row, r) {
      var o = el('option', null, '#' + r + ' (' + row.tokens.length + ' tokens) ' + clip(row.text, 60));
      o.value = String(r);
      o.title = row.text;
      rowSel.appendChild(o);
    });
    rowSel.addEventListener('change', function () { selectRow(+rowSel.value); });
    var layerSel = selectEl('layer');
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
      var h = /** @type {HTMLElement} */ (e.target).dataset.head;
      if (h == null) return;
      state.heads[+h] = !state.heads[+h];
      update();
    });
    heads.addEventListener('dblclick', function (e) {
      var h = /** @type {HTMLElement} */ (e.target).dataset.head;
      if (h != null) select(state.layer, [+h]);
    });
    $('all-heads').addEventListener('click', function () { setHeads(null); update(); });
    $('no-heads').addEventListener('click', function () { setHeads([]); update(); });
  }
  function setHeads(list) {
    for (var h = 0; h < H; h++) state.heads[h] = list == null || list.indexOf(h) >= 0;
  }
  function syncControls() {
    selectEl('row').value = String(state.row);
    selectEl('layer').value = String(state.layer);
    var btns = $('heads').children;
    for (var h = 0; h < btns.length; h++) btns[h].classList.toggle('on', state.heads[h]);
    $('head-view-title').textContent = 'Head view \u2014 layer ' + state.layer + ', heads ' + (selectedHeads().length === H ? 'all' : selectedHeads().join(', ') || 'none');
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
  /** Depth (0 = embeddings) to the chart's x, once the chart is drawn. @type {((d: number) => number) | null} */
  var chartX = null;
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
        tip.textContent = 'q' + qi + ' \u00b7 p' + pi + ': ' + vals[vals.length - 1].toFixed(4) + ' at the last layer';
        line.appendChild(tip);
        s.appendChild(line);
        series.push(line);
        var li = el('li'), sw = el('span', 'sw');
        sw.style.background = color;
        li.appendChild(sw);
        li.appendChild(el('span', 'txt', 'q' + qi + ' \u00b7 p' + pi + '  ' + clip(lw.queries[qi], 40) + '  \u2192  ' + clip(lw.passages[pi], 60)));
        li.title = 'query: ' + lw.queries[qi] + '\npassage: ' + lw.passages[pi];
        li.addEventListener('mouseenter', function () { series.forEach(function (o) { o.classList.toggle('dim', o !== line); }); });
        li.addEventListener('mouseleave', function () { series.forEach(function (o) { o.classList.remove('dim'); }); });
        legend.appendChild(li);
      });
    });
    $('chart').appendChild(s);
    chartX = X;
  }
  function syncChart() {
    var c = $('depth-cursor');
    if (!c) return;
    var x = chartX(state.layer + 1); // layer l's output is depth l + 1
    c.setAttribute('x1', String(x)); c.setAttribute('x2', String(x));
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
  body.dataset.renderedRows = String(selectEl('row').options.length);
  body.dataset.renderedLayers = String($('grid').querySelectorAll('tr.layer').length);
  body.dataset.renderedHeads = String($('grid').querySelectorAll('tr.layer')[0].querySelectorAll('canvas.thumb').length);
  body.dataset.renderedThumbnails = String($('grid').querySelectorAll('canvas.thumb').length);
  body.dataset.chartLines = String(series.length);
  body.dataset.links = String(document.querySelectorAll('a.page-link').length);
  body.dataset.status = 'ready';
})();
