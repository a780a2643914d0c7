/**
 * Random-weight BERT folders in exact Hugging Face layout, so every test, parity run and
 * benchmark has a model without the Hub: config.json, model.safetensors (written by our own
 * writer, tensor by tensor), tokenizer files (the real bert-base-uncased vocabulary from
 * ../shared when present, else a synthetic vocabulary of the same size).
 *
 * Weights are deliberately non-trivial so bugs cannot hide: LayerNorm gammas ≠ 1, non-zero
 * biases everywhere, and query/key scales that make attention far from uniform.
 *
 *   npx ts-node --transpile-only devtools/generate-model.ts --preset tiny|small|large --out DIR [--dtype F32|F16|BF16] [--seed N]
 */
import * as fs from 'fs';
import * as path from 'path';
import { BertConfig, toHfConfig } from '../weights/config';
import { expectedTensors } from '../weights/params';
import { Dtype, f32ToBF16Bits, f32ToF16Bits, writeSafetensorsStreaming } from '../weights/safetensors';

export type Preset = 'tiny' | 'small' | 'large';
export const PRESETS: Record<Preset, BertConfig> = {
  tiny: cfg(2, 32, 4, 64),
  small: cfg(4, 128, 4, 512),
  // The shape of intfloat/e5-large-unsupervised (BERT-large uncased).
  large: cfg(24, 1024, 16, 4096),
};

function cfg(layers: number, hidden: number, heads: number, ffn: number): BertConfig {
  return {
    hiddenSize: hidden, numHiddenLayers: layers, numAttentionHeads: heads, intermediateSize: ffn,
    hiddenAct: 'gelu', layerNormEps: 1e-12, maxPositionEmbeddings: 512, typeVocabSize: 2,
    vocabSize: 30522, padTokenId: 0, positionEmbeddingType: 'absolute', modelType: 'bert',
  };
}

export const REPO_ROOT = path.resolve(__dirname, '..');
export const SHARED_VOCAB_DIR = path.resolve(REPO_ROOT, '..', 'shared', 'data', 'bert-base-uncased');
export function hasSharedVocab(): boolean {
  return fs.existsSync(path.join(SHARED_VOCAB_DIR, 'vocab.txt'));
}

/** xoshiro128** — small, fast and identical everywhere, so a seed always gives the same model. */
export class Rng {
  private s: Uint32Array;
  constructor(seed: number) {
    this.s = new Uint32Array(4);
    let x = seed >>> 0 || 0x9e3779b9;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0; // splitmix32
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
  }
  nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 11);
    return result;
  }
  /** Uniform in [0, 1). */
  uniform(): number {
    return this.nextU32() / 4294967296;
  }
  /** Fill with N(mean, std) (Box–Muller). */
  normal(n: number, std: number, mean = 0): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i += 2) {
      const u = 1 - this.uniform(), v = this.uniform();
      const r = Math.sqrt(-2 * Math.log(u)) * std;
      out[i] = mean + r * Math.cos(2 * Math.PI * v);
      if (i + 1 < n) out[i + 1] = mean + r * Math.sin(2 * Math.PI * v);
    }
    return out;
  }
}
function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** The distribution of each tensor: chosen so activations stay O(1) and attention is peaked. */
function initFor(name: string, shape: number[], c: BertConfig): { std: number; mean: number } {
  const fanIn = shape.length === 2 ? shape[1] : 1;
  if (/LayerNorm\.weight$/.test(name)) return { mean: 1, std: 0.2 };
  if (/LayerNorm\.bias$/.test(name)) return { mean: 0, std: 0.1 };
  if (/embeddings\./.test(name)) return { mean: 0, std: 0.5 };
  if (/\.bias$/.test(name)) return { mean: 0, std: 0.1 };
  if (/attention\.self\.(query|key)\.weight$/.test(name)) return { mean: 0, std: 1.6 / Math.sqrt(fanIn) };
  return { mean: 0, std: 1 / Math.sqrt(fanIn) };
}

export interface GenerateOptions {
  preset?: Preset;
  config?: BertConfig;
  dtype?: 'F32' | 'F16' | 'BF16';
  seed?: number;
  withPooler?: boolean;
  /** Add a `bert.` prefix to every tensor name (as BertFor* checkpoints have). */
  prefix?: string;
  /** Also write modules.json + 1_Pooling/config.json with this pooling mode. */
  sentenceTransformersPooling?: 'mean' | 'cls' | 'max';
}

/** Write a model folder; returns its config. Existing files in `dir` are replaced. */
export function generateModel(dir: string, opts: GenerateOptions = {}): BertConfig {
  const c = opts.config ?? PRESETS[opts.preset ?? 'tiny'];
  const dtype: Dtype = opts.dtype ?? 'F32';
  const rng = new Rng(opts.seed ?? 1234);
  fs.mkdirSync(dir, { recursive: true });
  writeJson(path.join(dir, 'config.json'), toHfConfig(c));
  writeTokenizerFiles(dir, c.vocabSize);
  if (opts.sentenceTransformersPooling) writeSentenceTransformers(dir, opts.sentenceTransformersPooling, c.hiddenSize);

  const tensors = expectedTensors(c, opts.withPooler ?? true);
  const prefix = opts.prefix ?? '';
  const byName = new Map(tensors.map((t) => [prefix + t.name, t]));
  // Values are drawn in this fixed order (not file order), so the same seed gives the same weights for every dtype.
  const values = new Map<string, Float32Array>();
  const draw = (name: string) => {
    const t = byName.get(name)!;
    const { mean, std } = initFor(t.name, t.shape, c);
    return rng.normal(t.shape.reduce((a, b) => a * b, 1), std, mean);
  };
  const order = [...byName.keys()];
  let drawn = 0;
  writeSafetensorsStreaming(
    path.join(dir, 'model.safetensors'),
    [...byName.entries()].map(([name, t]) => ({ name, dtype, shape: t.shape })),
    (name) => {
      // Draw every tensor up to this one in canonical order; keep only those not yet written.
      while (!values.has(name)) {
        const next = order[drawn++];
        values.set(next, draw(next));
      }
      const x = values.get(name)!;
      values.delete(name);
      return dtype === 'F16' ? f32ToF16Bits(x) : dtype === 'BF16' ? f32ToBF16Bits(x) : x;
    },
    // The generator label is part of the file's bytes, whose sha256 test/golden/manifest.json
    // records: it keeps the file's old path so the committed goldens stay valid.
    { format: 'pt', generator: 'e5-tfjs test/support/generate-model.ts', seed: String(opts.seed ?? 1234) },
  );
  return c;
}

function writeJson(file: string, value: unknown): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(value, null, 2) + '\n');
  fs.renameSync(tmp, file);
}

function writeTokenizerFiles(dir: string, vocabSize: number): void {
  if (hasSharedVocab()) {
    for (const f of ['vocab.txt', 'tokenizer.json', 'tokenizer_config.json']) {
      fs.writeFileSync(path.join(dir, f), fs.readFileSync(path.join(SHARED_VOCAB_DIR, f))); // not copyFile: ../shared is read-only
    }
  } else {
    fs.writeFileSync(path.join(dir, 'vocab.txt'), syntheticVocab(vocabSize).join('\n') + '\n');
    writeJson(path.join(dir, 'tokenizer_config.json'), { do_lower_case: true, model_max_length: 512 });
  }
  writeJson(path.join(dir, 'special_tokens_map.json'), {
    unk_token: '[UNK]', sep_token: '[SEP]', pad_token: '[PAD]', cls_token: '[CLS]', mask_token: '[MASK]',
  });
}

/** A vocabulary with BERT's special-token ids, every printable ASCII char and filler entries. */
export function syntheticVocab(size: number): string[] {
  const v = ['[PAD]'];
  for (let i = 0; i < 99; i++) v.push(`[unused${i}]`);
  v.push('[UNK]', '[CLS]', '[SEP]', '[MASK]');
  for (let ch = 33; ch < 127; ch++) if (!(ch >= 65 && ch <= 90)) v.push(String.fromCharCode(ch));
  for (let ch = 97; ch <= 122; ch++) v.push('##' + String.fromCharCode(ch));
  for (const w of ['the', 'of', 'and', 'query', 'passage', 'how', 'much', 'protein', 'should', 'female', 'eat', 'summit', 'define']) v.push(w);
  while (v.length < size) v.push(`[filler${v.length}]`);
  return v.slice(0, size);
}

function writeSentenceTransformers(dir: string, mode: 'mean' | 'cls' | 'max', hiddenSize: number): void {
  writeJson(path.join(dir, 'modules.json'), [
    { idx: 0, name: '0', path: '', type: 'sentence_transformers.models.Transformer' },
    { idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' },
    { idx: 2, name: '2', path: '2_Normalize', type: 'sentence_transformers.models.Normalize' },
  ]);
  fs.mkdirSync(path.join(dir, '1_Pooling'), { recursive: true });
  writeJson(path.join(dir, '1_Pooling', 'config.json'), {
    word_embedding_dimension: hiddenSize,
    pooling_mode_cls_token: mode === 'cls',
    pooling_mode_mean_tokens: mode === 'mean',
    pooling_mode_max_tokens: mode === 'max',
    pooling_mode_mean_sqrt_len_tokens: false,
  });
  writeJson(path.join(dir, 'sentence_bert_config.json'), { max_seq_length: 512, do_lower_case: false });
}

/** A generated model in a cache folder keyed by its options (re-used across test runs). */
export function cachedModel(opts: GenerateOptions & { preset: Preset }): string {
  const key = [opts.preset, opts.dtype ?? 'F32', opts.seed ?? 1234, opts.withPooler === false ? 'nopool' : 'pool',
    opts.prefix ? 'prefixed' : '', opts.sentenceTransformersPooling ?? '', hasSharedVocab() ? 'realvocab' : 'synthvocab']
    .filter(Boolean).join('-');
  const root = process.env.E5_TEST_MODELS ?? path.join(REPO_ROOT, '.cache', 'models');
  const dir = path.join(root, key);
  if (!fs.existsSync(path.join(dir, 'model.safetensors'))) {
    const tmp = `${dir}.${process.pid}.tmp`;
    fs.rmSync(tmp, { recursive: true, force: true });
    generateModel(tmp, opts);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(tmp, dir);
  }
  return dir;
}

if (require.main === module) {
  const { Command } = require('commander') as typeof import('commander');
  const program = new Command()
    .name('generate-model')
    .description('write a random-weight BERT folder in Hugging Face layout')
    .requiredOption('--out <dir>', 'output folder')
    .option('--preset <name>', 'tiny | small | large (the e5-large shape, 1.34 GB)', 'tiny')
    .option('--dtype <dtype>', 'F32 | F16 | BF16', 'F32')
    .option('--seed <n>', 'PRNG seed', '1234')
    .option('--no-pooler', 'omit pooler.dense')
    .option('--sentence-transformers <pooling>', 'also write modules.json + 1_Pooling/config.json: mean | cls | max')
    .parse();
  const o = program.opts();
  if (!(o.preset in PRESETS)) program.error(`unknown preset '${o.preset}' (tiny, small, large)`);
  if (!['F32', 'F16', 'BF16'].includes(o.dtype)) program.error(`unknown dtype '${o.dtype}' (F32, F16, BF16)`);
  if (o.sentenceTransformers && !['mean', 'cls', 'max'].includes(o.sentenceTransformers)) program.error(`unknown pooling '${o.sentenceTransformers}' (mean, cls, max)`);
  const t0 = Date.now();
  const c = generateModel(o.out, { preset: o.preset, dtype: o.dtype, seed: Number(o.seed), withPooler: o.pooler, sentenceTransformersPooling: o.sentenceTransformers });
  console.error(`wrote ${o.out}: ${c.numHiddenLayers} layers, hidden ${c.hiddenSize}, ${o.dtype}, ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}
