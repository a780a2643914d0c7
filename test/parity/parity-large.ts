/**
 * Parity on the full e5-large shape (make parity-large): the random-weight 1.34 GB folder, the
 * model card's four texts (tokenized by HF's Rust tokenizer for the reference, by ours for the
 * engine) and a padded batch up to 512 tokens (one full row, one left-padded row). PyTorch
 * (test/parity/reference.py) dumps every hidden state and attention pattern; the engine is run
 * with hooks that compare each tensor as it is produced, so nothing is accumulated in memory.
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
import { loadModel } from '../../engine/load';
import { SafetensorsFile } from '../../weights/safetensors';
import { PYTHON } from '../support/python';
import { modelCardIds } from './make-golden';

const TOL = { hidden: 1e-4, attention: 1e-5, embedding: 1e-5, scores: 1e-3 };

interface Row { name: string; result: CompareResult; atol: number }

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
  let failed = false;
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
      const check = (name: string, x: tf.Tensor, atol: number) => {
        const r = compareArrays(x.dataSync(), f.readF32(name), f.tensors.get(name)!.shape, { atol });
        rows.push({ name: `${c.name} ${name}`, result: r, atol });
        failed ||= !r.pass;
      };
      const t1 = Date.now();
      const out = m.bert.runWithHooks({ inputIds: c.ids.input_ids, attentionMask: c.ids.attention_mask, tokenTypeIds: c.ids.token_type_ids }, [
        [(n: HookName) => n === 'hook_full_embed' || n.endsWith('hook_normalized_resid_post'), (x, info) => void check(info.name, x, TOL.hidden)],
        ['blocks.*.attn.hook_pattern', (x, info) => void check(info.name, x, TOL.attention)],
      ]);
      console.error(`${c.name}: engine forward + comparison in ${((Date.now() - t1) / 1000).toFixed(1)} s`);
      check('hook_embedding', out.embedding, TOL.embedding);
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
  } finally {
    m.dispose();
    if (!o.keep) fs.rmSync(work, { recursive: true, force: true });
    else console.error(`reference dumps kept in ${work}`);
  }
  console.log(`backend ${backend.name} (${backend.threads} threads)\n`);
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
