/** Loading the committed golden files (test/golden/) and the models they were made from. */
import * as fs from 'fs';
import * as path from 'path';
import { BertModel } from '../../engine/model';
import { Checkpoint } from '../../weights/checkpoint';
import { readBertConfig } from '../../weights/config';
import { loadBertParams } from '../../weights/params';
import { SafetensorsFile } from '../../weights/safetensors';
import { GOLDEN_CASES, GOLDEN_DIR, GOLDEN_FORMAT_VERSION, GoldenCase, modelFor, sha256File } from '../parity/make-golden';

export { GOLDEN_CASES };
export type { GoldenCase };

export interface Golden {
  case: GoldenCase;
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
  metadata: Record<string, string>;
  ids: { input_ids: number[][]; attention_mask: number[][]; token_type_ids: number[][] };
  modelDir: string;
}

/** The golden's inputs as the padded batch BertModel takes. */
export function goldenBatch(g: Golden): { inputIds: number[][]; attentionMask: number[][]; tokenTypeIds: number[][] } {
  return { inputIds: g.ids.input_ids, attentionMask: g.ids.attention_mask, tokenTypeIds: g.ids.token_type_ids };
}

/** Read a golden file, checking its format version and that the generated model is the one it was made from. */
export function loadGolden(name: string): Golden {
  const manifest = JSON.parse(fs.readFileSync(path.join(GOLDEN_DIR, 'manifest.json'), 'utf8'));
  if (manifest.format_version !== GOLDEN_FORMAT_VERSION) {
    throw new Error(`test/golden/manifest.json has format_version ${manifest.format_version}, this code reads ${GOLDEN_FORMAT_VERSION}: run 'make golden'`);
  }
  const c = GOLDEN_CASES.find((g) => g.name === name)!;
  const modelDir = modelFor(c);
  const want = manifest.cases[name]?.model_sha256;
  const have = sha256File(path.join(modelDir, 'model.safetensors'));
  if (want !== have) {
    throw new Error(`golden '${name}' was made from a model with sha256 ${want}, but the generator now writes ${have}: ` +
      `the generator changed — run 'make golden' (makes .cache/reference-env with transformers) and commit test/golden/`);
  }
  const f = SafetensorsFile.open(path.join(GOLDEN_DIR, `${name}.safetensors`));
  try {
    if (f.metadata.format !== 'e5-tfjs-parity' || f.metadata.format_version !== '1') {
      throw new Error(`${f.path}: not an e5-tfjs-parity v1 file (format ${f.metadata.format} v${f.metadata.format_version})`);
    }
    const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [n, info] of f.tensors) tensors.set(n, { shape: info.shape, data: f.readF32(n) });
    const ids = JSON.parse(fs.readFileSync(path.join(GOLDEN_DIR, `ids-${c.ids}.json`), 'utf8'));
    return { case: c, tensors, metadata: { ...f.metadata }, ids, modelDir };
  } finally {
    f.close();
  }
}

/** A BertModel straight from a folder (no tokenizer needed). */
export function loadBert(dir: string): BertModel {
  const config = readBertConfig(dir);
  const ckpt = Checkpoint.open(dir);
  try {
    return new BertModel(config, loadBertParams(ckpt, config, dir).params);
  } finally {
    ckpt.close();
  }
}

/** Every tensor of a safetensors file as float32, with its metadata (dumps, goldens). */
export function readAll(file: string): { metadata: Readonly<Record<string, string>>; tensors: Map<string, { shape: number[]; data: Float32Array }> } {
  const f = SafetensorsFile.open(file);
  try {
    const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [name, info] of f.tensors) tensors.set(name, { shape: [...info.shape], data: f.readF32(name) });
    return { metadata: f.metadata, tensors };
  } finally {
    f.close();
  }
}
