/**
 * Parity on the full e5-large shape (make parity-large): the random-weight 1.34 GB folder, the
 * model card's four texts (tokenized by HF's Rust tokenizer for the reference, by ours for the
 * engine) and a padded batch up to 512 tokens (one full row, one left-padded row). PyTorch
 * (test/parity/reference.py) dumps every hidden state and attention pattern; the engine is run
 * with hooks that compare each tensor as it is produced, so nothing is accumulated in memory.
 * Then the Hugging Face user's view of the same folder: `bin/e5 embed` against
 * SentenceTransformer(folder).encode(normalize_embeddings=True) on the model card's texts and on a
 * padded batch up to 512 tokens, and `bin/e5 similarity` against the model card's own code.
 *
 *   npx ts-node --transpile-only test/parity/parity-large.ts --model DIR [--threads N] [--keep]
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { Command } from 'commander';
import { initBackend } from '../../engine/backend';
import { compareArrays, CompareResult } from '../../engine/compare';
import { HookName } from '../../engine/hooks';
import { loadModel } from '../../e5/model';
import { SafetensorsFile } from '../../weights/safetensors';
import { PYTHON } from '../support/python';
import { hfEmbed } from './hf-stack';
import { longTexts, modelCard, modelCardIds, modelCardTexts } from './make-golden';

const TOL = { hidden: 1e-4, attention: 1e-5, embedding: 1e-5, scores: 1e-3 };
const E5 = path.join(__dirname, '..', '..', 'bin', 'e5');

interface Row { name: string; result: CompareResult; atol: number }

/** Run bin/e5 and parse its JSON output. */
function e5Json<T>(args: string[]): T {
  return JSON.parse(execFileSync(process.execPath, [E5, ...args, '--format', 'json'], { encoding: 'utf8', maxBuffer: 256 << 20, stdio: ['ignore', 'pipe', 'inherit'] }));
}

/** bin/e5 embed / similarity vs sentence-transformers and the model card's code, on the folder. */
function huggingFaceRows(model: string, work: string): Row[] {
  const rows: Row[] = [];
  const compare = (name: string, ours: number[][], ref: number[][], atol: number) =>
    rows.push({ name, result: compareArrays(Float32Array.from(ours.flat()), Float32Array.from(ref.flat()), [ref.length, ref[0].length], { atol }), atol });
  for (const [name, texts] of [['model-card', modelCardTexts()], ['long-512', longTexts()]] as const) {
    const t0 = Date.now();
    const st = hfEmbed(model, texts, 'st', work);
    const input = path.join(work, `${name}.jsonl`);
    fs.writeFileSync(input, texts.map((text) => JSON.stringify({ text })).join('\n') + '\n');
    const ours = e5Json<{ embeddings: Array<{ embedding: number[]; n_tokens: number }> }>(['embed', '--model', model, '--input', input, '--prefix', 'none']).embeddings;
    console.error(`${name}: sentence-transformers ${st.versions['sentence-transformers']} and e5 embed in ${((Date.now() - t0) / 1000).toFixed(1)} s (tokens ${ours.map((e) => e.n_tokens)})`);
    compare(`${name} e5 embed vs SentenceTransformer.encode`, ours.map((e) => e.embedding), st.embeddings, TOL.embedding);
  }
  const card = modelCard();
  const ref = hfEmbed(model, modelCardTexts(), 'card', work, card.queries.length);
  const sim = e5Json<{ scores: number[][] }>(['similarity', '--model', model, ...card.queries.flatMap((q) => ['--query', q]), ...card.passages.flatMap((p) => ['--passage', p])]);
  compare('model-card e5 similarity vs the card\'s (q @ p.T) * 100', sim.scores, ref.scores!, TOL.scores);
  console.log(`model-card scores x100 (transformers ${ref.versions.transformers}, the card's code): ${JSON.stringify(ref.scores!.map((r) => r.map((v) => +v.toFixed(4))))}`);
  return rows;
}

function longBatch(): { input_ids: number[][]; attention_mask: number[][]; token_type_ids: number[][] } {
  const T = 512, short = 200;
  const full = [101, ...Array.from({ length: T - 2 }, (_, i) => 1996 + ((i * 7919) % 27000)), 102];
  const part = [101, ...Array.from({ length: short - 2 }, (_, i) => 2000 + ((i * 104729) % 26000)), 102];
  return {
    input_ids: [full, [...new Array(T - short).fill(0), ...part]],
    attention_mask: [new Array(T).fill(1), [...new Array(T - short).fill(0), ...new Array(short).fill(1)]],
    token_type_ids: [new Array(T).fill(0), new Array(T).fill(0)],
  };
}

async function main(): Promise<void> {
  const o = new Command().requiredOption('--model <dir>').option('--threads <n>', 'threads (torch and wasm)', String(os.cpus().length)).option('--keep', 'keep the reference dumps').parse().opts();
  const backend = await initBackend({ threads: Number(o.threads) });
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'parity-large-'));
  const m = await loadModel(o.model);
  const rows: Row[] = [];
  let failed = false, disposed = false, reference = '';
  try {
    const card = await modelCardIds();
    const cases = [
      { name: 'model-card', ids: { input_ids: card.input_ids, attention_mask: card.attention_mask, token_type_ids: card.token_type_ids } },
      { name: 'long-512', ids: longBatch() },
    ];
    // Our tokenizer must give the Rust tokenizer's ids on the model card texts.
    const ours = card.texts.map((t) => Array.from(m.tokenizer.encode(t).inputIds));
    ours.forEach((ids, i) => {
      const rust = card.input_ids[i].filter((_, t) => card.attention_mask[i][t] === 1);
      if (JSON.stringify(ids) !== JSON.stringify(rust)) throw new Error(`tokenizer differs from Rust on model-card text ${i}`);
    });
    for (const c of cases) {
      const idsFile = path.join(work, `${c.name}.json`), ref = path.join(work, `${c.name}.safetensors`);
      fs.writeFileSync(idsFile, JSON.stringify(c.ids));
      const t0 = Date.now();
      execFileSync(PYTHON, [path.join(__dirname, 'reference.py'), '--model', o.model, '--ids', idsFile, '--output', ref, '--threads', o.threads], { stdio: ['ignore', 'inherit', 'inherit'] });
      console.error(`${c.name}: PyTorch reference in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      const f = SafetensorsFile.open(ref);
      reference ||= `${f.metadata.impl}, torch ${f.metadata.torch_version}`;
      const check = (name: string, x: tf.Tensor, atol: number, label = name) => {
        const r = compareArrays(x.dataSync(), f.readF32(name), f.tensors.get(name)!.shape, { atol });
        rows.push({ name: `${c.name} ${label}`, result: r, atol });
        failed ||= !r.pass;
      };
      const t1 = Date.now();
      const out = m.bert.runWithHooks({ inputIds: c.ids.input_ids, attentionMask: c.ids.attention_mask, tokenTypeIds: c.ids.token_type_ids }, [
        [(n: HookName) => n === 'hook_full_embed' || n.endsWith('hook_normalized_resid_post'), (x, info) => void check(info.name, x, TOL.hidden)],
        ['blocks.*.attn.hook_pattern', (x, info) => void check(info.name, x, TOL.attention)],
      ]);
      console.error(`${c.name}: engine forward + comparison in ${((Date.now() - t1) / 1000).toFixed(1)} s`);
      check('hook_embedding', out.embedding, TOL.embedding);
      // Hook-free, as `e5 embed` runs it: on tensorflow the encoder graph once a forward has 256 tokens.
      const batch = { inputIds: c.ids.input_ids, attentionMask: c.ids.attention_mask, tokenTypeIds: c.ids.token_type_ids };
      const t2 = Date.now();
      const plain = m.bert.forward(batch);
      console.error(`${c.name}: hook-free forward in ${((Date.now() - t2) / 1000).toFixed(1)} s`);
      const last = `blocks.${m.config.numHiddenLayers - 1}.hook_normalized_resid_post`;
      check(last, plain.lastHiddenState, TOL.hidden, `${last} (hook-free forward)`);
      check('hook_embedding', plain.embedding, TOL.embedding, 'hook_embedding (hook-free forward)');
      plain.dispose();
      if (c.name === 'model-card') {
        // The card's experiment: (queries @ passages.T) * 100, ours vs PyTorch's embeddings.
        const refEmb = tf.tensor2d(f.readF32('hook_embedding'), [4, m.config.hiddenSize]);
        const score = (e: tf.Tensor2D) => tf.tidy(() => tf.mul(tf.matMul(tf.slice(e, [0, 0], [2, -1]), tf.transpose(tf.slice(e, [2, 0], [2, -1]))), 100));
        const ours2 = score(out.embedding), theirs = score(refEmb);
        const r = compareArrays(ours2.dataSync(), theirs.dataSync(), [2, 2], { atol: TOL.scores });
        rows.push({ name: 'model-card scores x100', result: r, atol: TOL.scores });
        failed ||= !r.pass;
        console.log(`model-card scores x100 (ours): ${JSON.stringify(Array.from(ours2.dataSync()).map((v) => +v.toFixed(4)))}`);
        [refEmb, ours2, theirs].forEach((t) => t.dispose());
      }
      out.dispose();
      f.close();
    }
    m.dispose();
    disposed = true;
    const hf = huggingFaceRows(o.model, work);
    rows.push(...hf);
    failed ||= hf.some((r) => !r.result.pass);
  } finally {
    if (!disposed) m.dispose();
    if (!o.keep) fs.rmSync(work, { recursive: true, force: true });
    else console.error(`reference dumps kept in ${work}`);
  }
  console.log(`backend ${backend.name} (${backend.threads} threads); reference ${reference}\n`);
  console.log('| tensor | shape | max abs diff | at | mean abs | cosine | atol | ok |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const { name, result: r, atol } of rows) {
    console.log(`| ${name} | [${r.shape}] | ${r.maxAbs.toExponential(2)} | [${r.where}] | ${r.meanAbs.toExponential(2)} | ${r.cosine.toFixed(9)} | ${atol} | ${r.pass ? 'ok' : 'FAIL'} |`);
  }
  if (failed) {
    console.error('parity-large: FAILED');
    process.exit(3);
  }
  console.error('parity-large: all tensors within tolerance');
  process.exit(0);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exit(1);
});
