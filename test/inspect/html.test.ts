/**
 * The attention viewer (inspect/html.ts) and the bertviz export (inspect/bertviz.ts), on synthetic
 * attention with a fixed seed: escaping and payload encoding checked in Node, rendering checked in
 * headless Chromium (Debian `chromium`; skipped when it is not installed).
 * Set INSPECT_HTML_KEEP=<dir> to keep the generated pages and screenshot for a look.
 */
import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { shortestFloat32, toBertvizJson } from '../../inspect/bertviz';
import { AttentionViewError, renderAttentionHtml, type AttentionViewData, type ViewPayload } from '../../inspect/html';
import { decodePng, dumpDom, findChromium, screenshot } from '../support/chromium';

// ---------------------------------------------------------------------------------------------
// Synthetic data: softmax over structured logits + seeded noise, so heads differ like real ones do

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** [H,T,T] post-softmax; head kinds cycle: previous token, [CLS]/[SEP] sink, self, broad. */
function syntheticPattern(H: number, T: number, layer: number, rand: () => number): Float32Array {
  const out = new Float32Array(H * T * T);
  const logits = new Float64Array(T);
  for (let h = 0; h < H; h++) {
    const kind = (layer + h) % 4;
    for (let i = 0; i < T; i++) {
      for (let j = 0; j < T; j++) {
        const structured =
          kind === 0 ? (j === i - 1 ? 4 : 0) : kind === 1 ? (j === 0 || j === T - 1 ? 3.5 : 0) : kind === 2 ? (j === i ? 3 : 0) : 0;
        logits[j] = structured + 1.5 * (rand() - 0.5) * (kind === 3 ? 3 : 1);
      }
      const max = Math.max(...logits);
      let sum = 0;
      for (let j = 0; j < T; j++) sum += logits[j] = Math.exp(logits[j] - max);
      for (let j = 0; j < T; j++) out[(h * T + i) * T + j] = logits[j] / sum;
    }
  }
  return out;
}

function wordPieces(n: number, rand: () => number): string[] {
  const words = ['how', 'do', '##es', 'photo', '##synthesis', 'work', 'in', 'plants', '?', 'light', 'energy', 'is', 'converted', 'into', 'chemical', '##s', 'by', 'chloro', '##phyll', '.'];
  const out = ['[CLS]'];
  while (out.length < n - 1) out.push(words[Math.floor(rand() * words.length)]);
  return [...out, '[SEP]'];
}

function syntheticView(opts: { layers: number; heads: number; tokens: string[][]; texts?: string[]; seed: number; layerwise?: boolean; title?: string }): AttentionViewData {
  const rand = lcg(opts.seed);
  const attention = Array.from({ length: opts.layers }, (_, l) => opts.tokens.map((t) => syntheticPattern(opts.heads, t.length, l, rand)));
  const d: AttentionViewData = {
    title: opts.title,
    model: 'intfloat/e5-large-unsupervised',
    backend: 'wasm (2 threads)',
    texts: opts.texts ?? opts.tokens.map((t) => t.slice(1, -1).join(' ')),
    tokens: opts.tokens,
    attention,
    numHeads: opts.heads,
  };
  if (opts.layerwise) {
    const queries = ['query: how does photosynthesis work', 'query: capital of france'];
    const passages = ['passage: plants convert light into chemical energy', 'passage: paris is the capital of france'];
    // a similarity that starts high (shared subword statistics) and separates with depth
    const scores = queries.map((_, q) => passages.map((_, p) => Array.from({ length: opts.layers + 1 }, (_, k) => 0.82 + (q === p ? 0.1 : -0.12) * (k / opts.layers) + 0.01 * rand())));
    d.layerwise = { queries, passages, scores };
  }
  return d;
}

const HOSTILE = [
  '</script><img src=x onerror="document.body.dataset.pwned=1">',
  '<!--',
  '</SCRIPT >',
  '\u2028',
  '&lt;',
  `'"`,
];

// ---------------------------------------------------------------------------------------------
// Reading our own output back, independently of the page's JS

function dataScript(html: string): string {
  const m = /<script type="application\/json" id="attention-data">([\s\S]*?)<\/script>/.exec(html);
  assert.ok(m, 'no attention-data script in the page');
  return m[1];
}

function executableScripts(html: string): string[] {
  return [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1]);
}

/** What the page draws: uint8 bytes decoded from the payload, [L,H,T,T] for one row. */
function decodedRow(payload: ViewPayload, row: number): Uint8Array {
  return new Uint8Array(Buffer.from(payload.rows[row].attention, 'base64'));
}

function attr(dom: string, name: string): string | undefined {
  const body = /<body([^>]*)>/.exec(dom);
  assert.ok(body, 'no <body> in the dumped DOM');
  return new RegExp(`\\s${name}="([^"]*)"`).exec(body[1])?.[1];
}

// ---------------------------------------------------------------------------------------------

describe('inspect/html: page and payload', () => {
  const tokens = [['[CLS]', ...HOSTILE, '[SEP]'], wordPieces(12, lcg(5))];
  const view = syntheticView({ layers: 2, heads: 3, tokens, seed: 1, texts: ['<img src=x onerror=alert(1)> & </script>', 'plain text'], title: '<b>Title</b> & "quotes"' });

  it('embeds text that looks like HTML as inert JSON and reads back unchanged', () => {
    const html = renderAttentionHtml(view);
    const opens = html.match(/<script/gi)?.length ?? 0;
    assert.equal(opens, 3); // boot, data, viewer
    assert.equal(html.match(/<\/script/gi)?.length, opens, 'a token closed a script element');
    assert.ok(!/<img|<!--/i.test(html), 'markup from the data leaked into the page');
    assert.ok(!html.includes('\u2028'), 'raw U+2028 in the page');
    const payload = JSON.parse(dataScript(html)) as ViewPayload;
    assert.deepEqual(payload.rows.map((r) => r.tokens), tokens);
    assert.deepEqual(payload.rows.map((r) => r.text), view.texts);
    assert.equal(payload.title, view.title);
    assert.match(html, /<title>&#60;b&#62;Title&#60;\/b&#62; &#38; &#34;quotes&#34;<\/title>/);
  });

  it('declares a CSP that forbids the network and allows only its own two inline scripts', () => {
    const benign = syntheticView({ layers: 2, heads: 3, tokens: [wordPieces(9, lcg(4))], seed: 2, layerwise: true });
    const html = renderAttentionHtml(benign);
    const csp = /<meta http-equiv="Content-Security-Policy" content="([^"]*)">/.exec(html)?.[1];
    assert.ok(csp, 'no CSP meta');
    assert.match(csp, /(^|; )default-src 'none'(;|$)/);
    const hashes = executableScripts(html).map((s) => `'sha256-${createHash('sha256').update(s).digest('base64')}'`);
    assert.equal(hashes.length, 2);
    assert.equal(/script-src ([^;]*)/.exec(csp)?.[1], hashes.join(' '));
    assert.ok(!/\s(src|href)=|url\(|@import/i.test(html), 'the page references an external resource');
  });

  it('quantizes attention to uint8 [L,H,T,T] within 1/510 of the input', () => {
    const payload = JSON.parse(dataScript(renderAttentionHtml(view))) as ViewPayload;
    assert.equal(payload.quantization.scale, 1 / 255);
    const H = view.numHeads;
    for (let r = 0; r < tokens.length; r++) {
      const T = tokens[r].length, bytes = decodedRow(payload, r);
      assert.equal(bytes.length, view.attention.length * H * T * T);
      let maxErr = 0;
      view.attention.forEach((layer, l) => {
        layer[r].forEach((p, k) => (maxErr = Math.max(maxErr, Math.abs(bytes[l * H * T * T + k] / 255 - p))));
      });
      assert.ok(maxErr <= 1 / 510 + 1e-7, `row ${r}: max quantization error ${maxErr}`);
    }
  });

  it('rejects malformed data with a typed error naming the field', () => {
    const cases: [string, (d: AttentionViewData) => void, string, string][] = [
      ['short pattern', (d) => (d.attention[1][0] = d.attention[1][0].subarray(1)), 'length_mismatch', 'attention[1][0]'],
      ['NaN', (d) => (d.attention[0][1][7] = NaN), 'not_probability', 'attention[0][1]'],
      ['pre-softmax scores', (d) => (d.attention[0][0][3] = -2.5), 'not_probability', 'attention[0][0]'],
      ['missing row', (d) => d.attention[1].pop(), 'length_mismatch', 'attention[1]'],
      ['texts vs tokens', (d) => d.texts.pop(), 'length_mismatch', 'texts'],
      ['empty row', (d) => (d.tokens[1] = []), 'empty', 'tokens[1]'],
      ['heads', (d) => (d.numHeads = 0), 'bad_field', 'numHeads'],
      ['layerwise depth', (d) => (d.layerwise = { queries: ['q'], passages: ['p'], scores: [[[0.1, 0.2]]] }), 'length_mismatch', 'layerwise.scores[0][0]'],
      ['layerwise NaN', (d) => (d.layerwise = { queries: ['q'], passages: ['p'], scores: [[[0.1, NaN, 0.3]]] }), 'non_finite', 'layerwise.scores[0][0][1]'],
    ];
    for (const [label, mutate, code, field] of cases) {
      const d = syntheticView({ layers: 2, heads: 3, tokens: [wordPieces(5, lcg(1)), wordPieces(6, lcg(2))], seed: 3 });
      mutate(d);
      assert.throws(() => renderAttentionHtml(d), (e: unknown) => {
        assert.ok(e instanceof AttentionViewError, `${label}: ${e}`);
        assert.equal(e.code, code, label);
        assert.equal(e.field, field, label);
        assert.ok(e.message.includes(field), label);
        return true;
      });
    }
    // the NaN error also says where inside the [H,T,T] block: flat 7 with T=6 is head 0, query 1, key 1
    const d = syntheticView({ layers: 1, heads: 2, tokens: [wordPieces(6, lcg(1))], seed: 3 });
    d.attention[0][0][7] = NaN;
    assert.throws(() => renderAttentionHtml(d), /head 0, query 1, key 1/);
  });
});

describe('inspect/bertviz', () => {
  const tokens = [wordPieces(7, lcg(1)), wordPieces(11, lcg(2))];
  const view = syntheticView({ layers: 3, heads: 4, tokens, seed: 9 });

  it('gives one [1,H,T,T] list per layer and the row tokens, values equal as float32', () => {
    for (const row of [0, 1]) {
      const j = toBertvizJson(view, row);
      const T = tokens[row].length, H = view.numHeads;
      assert.deepEqual(j.tokens, tokens[row]);
      assert.equal(j.attention.length, view.attention.length);
      j.attention.forEach((layer, l) => {
        assert.equal(layer.length, 1, `layer ${l}: batch dim`);
        assert.equal(layer[0].length, H);
        for (let h = 0; h < H; h++) {
          assert.equal(layer[0][h].length, T);
          for (let i = 0; i < T; i++) {
            assert.equal(layer[0][h][i].length, T);
            for (let k = 0; k < T; k++) {
              const want = view.attention[l][row][(h * T + i) * T + k];
              assert.equal(Math.fround(layer[0][h][i][k]), want, `layer ${l} head ${h} [${i},${k}]`);
            }
          }
        }
      });
    }
  });

  it('survives JSON text with every value still the same float32', () => {
    const j = JSON.parse(JSON.stringify(toBertvizJson(view, 1))) as ReturnType<typeof toBertvizJson>;
    const flat = Float32Array.from(j.attention[2][0].flat(2));
    assert.deepEqual(flat, view.attention[2][1]);
  });

  it('writes the shortest decimal that reads back as the same float32', () => {
    for (const x of [0, 1, Math.fround(1 / 3), Math.fround(0.1), Math.fround(1e-30), Math.fround(0.999999)]) {
      const v = shortestFloat32(x);
      assert.equal(Math.fround(v), x);
      assert.ok(String(v).replace(/^0\.0*|\.|e.*$/g, '').length <= 9, `${x} → ${v}`);
    }
    assert.equal(shortestFloat32(Math.fround(0.1)), 0.1);
    assert.equal(shortestFloat32(Math.fround(1 / 3)), 0.33333334);
  });

  it('rejects a row that does not exist', () => {
    assert.throws(() => toBertvizJson(view, 2), (e: unknown) => e instanceof AttentionViewError && e.code === 'bad_row');
  });
});

describe('inspect/html in headless Chromium', function () {
  this.timeout(180_000);
  let chromium: string | undefined;
  let dir: string;

  before(async function () {
    chromium = findChromium();
    if (!chromium) {
      console.log(`    skipped: no Chromium at ${process.env.CHROMIUM ?? '/usr/bin/chromium'} (apt-get install -y chromium, or set $CHROMIUM)`);
      this.skip();
    }
    dir = process.env.INSPECT_HTML_KEEP ? path.resolve(process.env.INSPECT_HTML_KEEP) : await fs.mkdtemp(path.join(os.tmpdir(), 'inspect-html-'));
    await fs.mkdir(dir, { recursive: true });
  });

  after(async () => {
    if (dir && !process.env.INSPECT_HTML_KEEP) await fs.rm(dir, { recursive: true, force: true });
  });

  const rand = lcg(42);
  const small = syntheticView({
    layers: 3,
    heads: 4,
    tokens: [['[CLS]', 'query', ':', HOSTILE[0], 'photo', '##synthesis', '[SEP]'], wordPieces(14, rand)],
    seed: 7,
    layerwise: true,
    title: 'Synthetic attention (3 layers × 4 heads)',
  });

  async function writePage(name: string, d: AttentionViewData): Promise<string> {
    const file = path.join(dir, name);
    await fs.writeFile(file, renderAttentionHtml(d));
    return file;
  }

  it('renders every layer and head, the chart, and no errors or console output', async () => {
    const { stdout: dom, console: messages } = await dumpDom(chromium!, await writePage('small.html', small));
    assert.deepEqual(messages, [], 'console output');
    assert.equal(attr(dom, 'data-status'), 'ready');
    assert.equal(attr(dom, 'data-errors'), '0');
    assert.equal(attr(dom, 'data-rendered-rows'), '2');
    assert.equal(attr(dom, 'data-rendered-layers'), '3');
    assert.equal(attr(dom, 'data-rendered-heads'), '4');
    assert.equal(attr(dom, 'data-rendered-thumbnails'), '12');
    assert.equal(attr(dom, 'data-chart-lines'), '4'); // 2 queries × 2 passages
    assert.equal(attr(dom, 'data-head-view-tokens'), '7');
    assert.equal(dom.match(/<canvas[^>]*class="thumb/g)?.length, 12);
    // the hostile token is shown as text, and nothing it carries ran
    assert.equal(attr(dom, 'data-pwned'), undefined);
    assert.ok(!/<img/i.test(dom), 'an <img> element was created');
    assert.ok(dom.includes('&lt;/script&gt;&lt;img src=x onerror="document.body.dataset.pwned=1"&gt;</div>'), 'token text missing');
  });

  it('opens the selection from the URL hash and draws the lines of that head', async () => {
    const row = 1, layer = 2, head = 3;
    const { stdout: dom, console: messages } = await dumpDom(chromium!, await writePage('small.html', small), { hash: `#row=${row}&layer=${layer}&heads=${head}` });
    assert.deepEqual(messages, []);
    assert.equal(attr(dom, 'data-selected-row'), String(row));
    assert.equal(attr(dom, 'data-selected-layer'), String(layer));
    assert.equal(attr(dom, 'data-selected-heads'), String(head));
    const T = small.tokens[row].length;
    assert.equal(attr(dom, 'data-head-view-tokens'), String(T));
    // the page drops lines lighter than 0.01 after uint8 quantization; count them from the input
    const block = small.attention[layer][row].subarray(head * T * T, (head + 1) * T * T);
    const expected = Array.from(block).filter((p) => Math.round(p * 255) / 255 >= 0.01).length;
    assert.equal(attr(dom, 'data-head-view-lines'), String(expected));
    const selected = (dom.match(/<canvas [^>]*>/g) ?? []).filter((tag) => /class="thumb sel"/.test(tag));
    assert.deepEqual(selected.map((tag) => /title="([^"]*)"/.exec(tag)?.[1]), [`layer ${layer}, head ${head}`], 'selected thumbnails');
  });

  it('responds to clicks, hover and row changes (driven by a script injected into a test copy)', async () => {
    // The page's CSP only admits its own scripts, so the test copy drops it to run this driver.
    const driver = `<script>
      (function () {
        var b = document.body;
        document.querySelector('canvas.thumb[data-layer="1"][data-head="2"]').dispatchEvent(new MouseEvent('click', { bubbles: true }));
        b.setAttribute('data-t-click', b.dataset.selectedLayer + '/' + b.dataset.selectedHeads);
        var tok = document.querySelectorAll('.tokens.left .tok')[3];
        tok.dispatchEvent(new MouseEvent('mouseenter'));
        b.setAttribute('data-t-hover-lines', b.dataset.headViewLines);
        tok.dispatchEvent(new MouseEvent('mouseleave'));
        b.setAttribute('data-t-leave-lines', b.dataset.headViewLines);
        document.querySelector('#heads button[data-head="0"]').click();
        b.setAttribute('data-t-toggle', b.dataset.selectedHeads);
        var row = document.getElementById('row');
        row.value = '1';
        row.dispatchEvent(new Event('change'));
        b.setAttribute('data-t-row-tokens', b.dataset.headViewTokens + '/' + document.querySelectorAll('canvas.thumb').length);
        document.getElementById('no-heads').click();
        b.setAttribute('data-t-none', b.dataset.selectedHeads + '/' + b.dataset.headViewLines);
      })();
    </script>`;
    const html = renderAttentionHtml(small).replace(/<meta http-equiv="Content-Security-Policy"[^>]*>/, '').replace('</body>', driver + '</body>');
    const file = path.join(dir, 'small-driven.html');
    await fs.writeFile(file, html);
    const { stdout: dom, console: messages } = await dumpDom(chromium!, file);
    assert.deepEqual(messages, []);
    assert.equal(attr(dom, 'data-errors'), '0');
    assert.equal(attr(dom, 'data-t-click'), '1/2');
    // lines drawn = weights of (layer 1, head 2) after quantization >= 0.01, from query 3 only while hovering
    const T = small.tokens[0].length, a = small.attention[1][0];
    const visible = (i: number, j: number) => Math.round(a[(2 * T + i) * T + j] * 255) / 255 >= 0.01;
    let fromQuery3 = 0, all = 0;
    for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) if (visible(i, j)) (all++, i === 3 && fromQuery3++);
    assert.equal(attr(dom, 'data-t-hover-lines'), String(fromQuery3));
    assert.equal(attr(dom, 'data-t-leave-lines'), String(all));
    assert.equal(attr(dom, 'data-t-toggle'), '0,2');
    assert.equal(attr(dom, 'data-t-row-tokens'), `${small.tokens[1].length}/12`);
    assert.equal(attr(dom, 'data-t-none'), '/0');
  });

  it('lays out 24 layers × 16 heads for a 64-token text (e5-large) in a compact file', async () => {
    const big = syntheticView({ layers: 24, heads: 16, tokens: [wordPieces(64, lcg(3))], seed: 11, layerwise: true, title: 'e5-large shape: 24 × 16, 64 tokens' });
    const file = await writePage('e5-large.html', big);
    const bytes = (await fs.stat(file)).size;
    console.log(`    24×16 heads, 64 tokens: ${(bytes / 1e6).toFixed(2)} MB of HTML`);
    assert.ok(bytes < 2.5e6, `page is ${bytes} bytes; uint8+base64 should stay near 4/3 × L·H·T² = 2.1 MB`);
    const { stdout: dom, console: messages } = await dumpDom(chromium!, file, { virtualTimeBudgetMs: 15_000 });
    assert.deepEqual(messages, []);
    assert.equal(attr(dom, 'data-status'), 'ready');
    assert.equal(attr(dom, 'data-errors'), '0');
    assert.equal(attr(dom, 'data-rendered-layers'), '24');
    assert.equal(attr(dom, 'data-rendered-heads'), '16');
    assert.equal(attr(dom, 'data-rendered-thumbnails'), String(24 * 16));
    assert.equal(attr(dom, 'data-chart-lines'), '4');
  });

  it('screenshot: 1400×1000 and not blank', async () => {
    const png = path.join(dir, 'small.png');
    await fs.rm(png, { force: true });
    const { console: messages } = await screenshot(chromium!, await writePage('small.html', small), png, 1400, 1000);
    assert.deepEqual(messages, []);
    const img = decodePng(await fs.readFile(png));
    assert.equal(img.width, 1400);
    assert.equal(img.height, 1000);
    const colours = new Set<number>();
    let inked = 0;
    for (let k = 0; k < img.pixels.length; k += img.channels) {
      const [r, g, b] = [img.pixels[k], img.pixels[k + 1], img.pixels[k + 2]];
      colours.add((r << 16) | (g << 8) | b);
      if (r + g + b < 3 * 235) inked++;
    }
    const inkedShare = inked / (img.width * img.height);
    assert.ok(colours.size > 200, `only ${colours.size} distinct colours: blank or unstyled page?`);
    assert.ok(inkedShare > 0.03 && inkedShare < 0.6, `${(inkedShare * 100).toFixed(1)}% of pixels are not near-white`);
  });
});
