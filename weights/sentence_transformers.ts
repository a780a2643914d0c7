/**
 * sentence-transformers side files, when a model folder has them: `modules.json`,
 * `1_Pooling/config.json` (pooling mode) and `sentence_bert_config.json` (max_seq_length).
 * e5-large-unsupervised ships none of them on the Hub as far as we know; then pooling is mean.
 */
import * as path from 'path';
import { ModelFileError, pathExists, readModelJson } from '../util/model_file';

export type PoolingMode = 'mean' | 'cls' | 'max';
export const POOLING_MODES: readonly PoolingMode[] = ['mean', 'cls', 'max'];

export interface SentenceTransformersConfig {
  /** Pooling mode from 1_Pooling/config.json, if present. */
  pooling?: PoolingMode;
  /** Whether modules.json lists a Normalize module. */
  normalize?: boolean;
  /** max_seq_length from sentence_bert_config.json. */
  maxSeqLength?: number;
  /** Files that were found and parsed. */
  files: string[];
}

export class SentenceTransformersError extends Error {
  constructor(readonly file: string, message: string) {
    super(`${file}: ${message}`);
    this.name = 'SentenceTransformersError';
  }
}

function readJson(file: string): Record<string, unknown> | undefined {
  if (!pathExists(file)) return undefined;
  let v: unknown;
  try {
    v = readModelJson(file);
  } catch (e) {
    if (!(e instanceof ModelFileError)) throw e;
    throw new SentenceTransformersError(file, e.detail);
  }
  if (typeof v !== 'object' || v === null) throw new SentenceTransformersError(file, 'must be a JSON object or array');
  return v as Record<string, unknown>;
}

export function readSentenceTransformersConfig(dir: string): SentenceTransformersConfig {
  const out: SentenceTransformersConfig = { files: [] };
  const modulesFile = path.join(dir, 'modules.json');
  const modules = readJson(modulesFile);
  let poolingDir = '1_Pooling';
  if (modules) {
    if (!Array.isArray(modules)) throw new SentenceTransformersError(modulesFile, 'must be a JSON array of modules');
    out.files.push('modules.json');
    for (const [i, m] of (modules as unknown[]).entries()) {
      const type = (m as { type?: unknown })?.type;
      if (typeof type !== 'string') throw new SentenceTransformersError(modulesFile, `entry ${i}: 'type' must be a string`);
      if (type.endsWith('.Pooling')) poolingDir = String((m as { path?: unknown }).path ?? poolingDir);
      if (type.endsWith('.Normalize')) out.normalize = true;
    }
  }
  const poolingFile = path.join(dir, poolingDir, 'config.json');
  const pooling = readJson(poolingFile);
  if (pooling) {
    out.files.push(path.join(poolingDir, 'config.json'));
    out.pooling = poolingFromConfig(pooling, poolingFile);
  }
  const sbertFile = path.join(dir, 'sentence_bert_config.json');
  const sbert = readJson(sbertFile);
  if (sbert) {
    out.files.push('sentence_bert_config.json');
    const m = sbert.max_seq_length;
    if (m !== undefined) {
      if (typeof m !== 'number' || !Number.isSafeInteger(m) || m < 1) {
        throw new SentenceTransformersError(sbertFile, `'max_seq_length' must be a positive integer, got ${JSON.stringify(m)}`);
      }
      out.maxSeqLength = m;
    }
  }
  return out;
}

function poolingFromConfig(o: Record<string, unknown>, file: string): PoolingMode {
  const modes: Array<[string, PoolingMode]> = [
    ['pooling_mode_mean_tokens', 'mean'],
    ['pooling_mode_cls_token', 'cls'],
    ['pooling_mode_max_tokens', 'max'],
  ];
  for (const [k, v] of Object.entries(o)) {
    if (k.startsWith('pooling_mode_') && typeof v !== 'boolean') {
      throw new SentenceTransformersError(file, `'${k}' must be true or false, got ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'an object' : JSON.stringify(v)}`);
    }
  }
  const on = modes.filter(([k]) => o[k] === true).map(([, m]) => m);
  const unsupported = Object.keys(o).filter((k) => k.startsWith('pooling_mode_') && o[k] === true && !modes.some(([m]) => m === k));
  if (unsupported.length) throw new SentenceTransformersError(file, `unsupported pooling mode ${unsupported.join(', ')}`);
  if (on.length !== 1) {
    throw new SentenceTransformersError(file, `exactly one of ${modes.map(([k]) => k).join(', ')} must be true (found ${on.length})`);
  }
  return on[0];
}
