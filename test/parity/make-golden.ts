/**
 * Regenerates the committed golden files in test/golden/ with the reference
 * (test/parity/reference.py run by the reference Python, test/support/python.ts: transformers.BertModel
 * from .cache/reference-env; the committed set must come from transformers):
 *
 *   make golden        (= npx ts-node --transpile-only test/parity/make-golden.ts)
 *
 * Each golden file is the reference's safetensors dump for one generated model and one input
 * batch; test/golden/manifest.json records the sha256 of every model.safetensors it was made
 * from, so a change in the generator shows up as a stale-golden failure with this hint, and the
 * reference stack (python, torch, transformers, ... versions) that made them.
 */
import { execFileSync } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { cachedModel, hasSharedVocab, Preset, REPO_ROOT } from '../../devtools/generate-model';
import { PYTHON, pythonStack } from '../support/python';

/** The committed goldens; E5_GOLDEN_DIR points tests and this script at a live-made set (make parity). */
export const GOLDEN_DIR = process.env.E5_GOLDEN_DIR ? path.resolve(process.env.E5_GOLDEN_DIR) : path.join(REPO_ROOT, 'test', 'golden');
export const GOLDEN_FORMAT_VERSION = 1;

export interface GoldenCase {
  /** File name (without .safetensors) in test/golden/. */
  name: string;
  preset: Preset;
  dtype: 'F32' | 'F16' | 'BF16';
  ids: 'batch' | 'model-card';
  hooks: 'all' | 'default';
  ablate?: string;
}

export const GOLDEN_CASES: GoldenCase[] = [
  { name: 'tiny-F32-all', preset: 'tiny', dtype: 'F32', ids: 'batch', hooks: 'all' },
  { name: 'tiny-F16', preset: 'tiny', dtype: 'F16', ids: 'batch', hooks: 'default' },
  { name: 'tiny-BF16', preset: 'tiny', dtype: 'BF16', ids: 'batch', hooks: 'default' },
  { name: 'tiny-F32-ablate', preset: 'tiny', dtype: 'F32', ids: 'batch', hooks: 'default', ablate: '0.1,1.3,1.0' },
  { name: 'small-F32', preset: 'small', dtype: 'F32', ids: 'batch', hooks: 'default' },
  { name: 'small-F32-model-card', preset: 'small', dtype: 'F32', ids: 'model-card', hooks: 'default' },
];

/**
 * A padded batch exercising every layout HF accepts: right padding, a full row with a
 * sentence pair (token_type_ids 1), left padding (positions still 0..T-1, as HF does), and
 * a 3-token row.
 */
export function batchIds(): { input_ids: number[][]; attention_mask: number[][]; token_type_ids: number[][] } {
  const T = 16;
  const rows: Array<{ ids: number[]; types?: number[]; left?: boolean }> = [
    { ids: [101, 2129, 2172, 3010, 2323, 1037, 2931, 4521, 102] },
    { ids: [101, 7163, 9375, 102, 6210, 1997, 7163, 2005, 2394, 2653, 15205, 1012, 1024, 1015, 1996, 102],
      types: [0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1] },
    { ids: [101, 2004, 1037, 2236, 5009, 1010, 1996, 26629, 102], left: true },
    { ids: [101, 1012, 102] },
  ];
  const out = { input_ids: [] as number[][], attention_mask: [] as number[][], token_type_ids: [] as number[][] };
  for (const r of rows) {
    const pad = T - r.ids.length;
    const padIds = new Array(pad).fill(0), zeros = new Array(pad).fill(0);
    const types = r.types ?? new Array(r.ids.length).fill(0);
    const ones = new Array(r.ids.length).fill(1);
    out.input_ids.push(r.left ? [...padIds, ...r.ids] : [...r.ids, ...padIds]);
    out.attention_mask.push(r.left ? [...zeros, ...ones] : [...ones, ...zeros]);
    out.token_type_ids.push(r.left ? [...zeros, ...types] : [...types, ...zeros]);
  }
  return out;
}

/** The model card's queries and passages (test/fixtures/model-card.json). */
export function modelCard(): { queries: string[]; passages: string[] } {
  return JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'test', 'fixtures', 'model-card.json'), 'utf8'));
}

/** The model card's four texts with their prefixes, queries first. */
export function modelCardTexts(): string[] {
  const card = modelCard();
  return [...card.queries.map((q) => 'query: ' + q), ...card.passages.map((p) => 'passage: ' + p)];
}

/** Texts for a padded batch up to 512 tokens: one far longer than 512 (truncated), one of ~200 tokens, one short. */
export function longTexts(): string[] {
  const words = modelCard().passages.join(' ').split(/\s+/);
  const take = (n: number, from: number) => Array.from({ length: n }, (_, i) => words[(from + i * 7) % words.length]).join(' ');
  return [`passage: ${take(700, 0)}`, `passage: ${take(180, 3)}`, 'query: summit define'];
}

/** The model card's four texts, prefixed, tokenized by Hugging Face's Rust tokenizer (npm `tokenizers`). */
export async function modelCardIds(): Promise<{ input_ids: number[][]; attention_mask: number[][]; token_type_ids: number[][]; texts: string[] }> {
  const texts = modelCardTexts();
  const { Tokenizer } = require('tokenizers');
  const tk = Tokenizer.fromFile(path.join(REPO_ROOT, '..', 'shared', 'data', 'bert-base-uncased', 'tokenizer.json'));
  const encs: Array<{ getIds(): number[] }> = await Promise.all(texts.map((t) => tk.encode(t)));
  return { texts, ...padRows(encs) };
}

function padRows(encs: Array<{ getIds(): number[] }>) {
  const ids = encs.map((e) => e.getIds());
  const T = Math.max(...ids.map((r) => r.length));
  return {
    input_ids: ids.map((r) => [...r, ...new Array(T - r.length).fill(0)]),
    attention_mask: ids.map((r) => [...new Array(r.length).fill(1), ...new Array(T - r.length).fill(0)]),
    token_type_ids: ids.map(() => new Array(T).fill(0)),
  };
}

export function sha256File(file: string): string {
  const h = crypto.createHash('sha256');
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.alloc(1 << 20);
  try {
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0;) h.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

export function modelFor(c: GoldenCase): string {
  return cachedModel({ preset: c.preset, dtype: c.dtype });
}

async function main(): Promise<void> {
  if (!hasSharedVocab()) throw new Error('../shared/data/bert-base-uncased is needed to make the model-card golden (Rust tokenizer ids)');
  const stack = pythonStack();
  const committed = GOLDEN_DIR === path.join(REPO_ROOT, 'test', 'golden');
  if (committed && !stack.transformers) {
    throw new Error(`${PYTHON} has no transformers: the committed goldens come from transformers.BertModel — run 'make reference-env' (or make golden)`);
  }
  console.error(`reference: ${PYTHON}: ${Object.entries(stack).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  fs.mkdirSync(GOLDEN_DIR, { recursive: true });
  const idsFiles: Record<GoldenCase['ids'], string> = {
    batch: path.join(GOLDEN_DIR, 'ids-batch.json'),
    'model-card': path.join(GOLDEN_DIR, 'ids-model-card.json'),
  };
  const mc = await modelCardIds();
  fs.writeFileSync(idsFiles.batch, JSON.stringify(batchIds()) + '\n');
  const { texts: modelCardTexts, ...mcIds } = mc;
  fs.writeFileSync(idsFiles['model-card'], JSON.stringify(mcIds) + '\n');
  const manifest: Record<string, unknown> = { format_version: GOLDEN_FORMAT_VERSION, reference: stack, model_card_texts: modelCardTexts, cases: {} };
  for (const c of GOLDEN_CASES) {
    const model = modelFor(c);
    const out = path.join(GOLDEN_DIR, `${c.name}.safetensors`);
    const args = [path.join(REPO_ROOT, 'test', 'parity', 'reference.py'), '--model', model, '--ids', idsFiles[c.ids], '--output', out, '--hooks', c.hooks];
    if (c.ablate) args.push('--ablate', c.ablate);
    execFileSync(PYTHON, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    (manifest.cases as Record<string, unknown>)[c.name] = { ...c, model_sha256: sha256File(path.join(model, 'model.safetensors')) };
    console.error(`wrote ${path.relative(REPO_ROOT, out)} (${(fs.statSync(out).size / 1024).toFixed(0)} KiB)`);
  }
  fs.writeFileSync(path.join(GOLDEN_DIR, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  });
}
