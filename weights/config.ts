/**
 * config.json → a typed BertConfig. Unknown activations and inconsistent shapes are errors at
 * load time, never surprises in the middle of a forward pass.
 */
import * as path from 'path';
import { ModelFileError, readModelJson } from '../util/model_file';

/** `gelu` is the exact erf form (HF ACT2FN["gelu"]); the tanh approximation has its own names. */
export type HiddenAct = 'gelu' | 'gelu_new' | 'gelu_pytorch_tanh' | 'relu';
export const HIDDEN_ACTS: readonly HiddenAct[] = ['gelu', 'gelu_new', 'gelu_pytorch_tanh', 'relu'];

export interface BertConfig {
  /** Width of the residual stream, D (1024 for e5-large). */
  hiddenSize: number;
  /** Number of encoder layers, L (24). */
  numHiddenLayers: number;
  /** Attention heads per layer, H (16); head size Dh = D / H. */
  numAttentionHeads: number;
  /** Inner width of the feed-forward block, F (4096). */
  intermediateSize: number;
  /** Activation between the FFN matmuls. */
  hiddenAct: HiddenAct;
  /** epsilon of every LayerNorm (1e-12 in BERT). */
  layerNormEps: number;
  /** Rows of the absolute position table: the longest input the model accepts (512). */
  maxPositionEmbeddings: number;
  /** Rows of the token-type (segment) table (2). */
  typeVocabSize: number;
  /** Rows of the word-embedding table (30522). */
  vocabSize: number;
  /** Id of [PAD]. */
  padTokenId: number;
  /** Only absolute positions exist in BERT checkpoints we support. */
  positionEmbeddingType: 'absolute';
  /** `model_type` as written (informational: "bert"). */
  modelType: string;
}

export class ConfigError extends Error {
  constructor(readonly file: string, readonly field: string | undefined, message: string) {
    super(`${file}${field ? `: field '${field}'` : ''}: ${message}`);
    this.name = 'ConfigError';
  }
}

export function readBertConfig(dir: string): BertConfig {
  const file = path.join(dir, 'config.json');
  let raw: unknown;
  try {
    raw = readModelJson(file);
  } catch (e) {
    if (!(e instanceof ModelFileError)) throw e;
    throw new ConfigError(file, undefined, e.code === 'not_found' ? 'missing (a Hugging Face model folder needs config.json)' : e.detail);
  }
  return parseBertConfig(raw, file);
}

export function parseBertConfig(raw: unknown, file = 'config.json'): BertConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError(file, undefined, 'must be a JSON object');
  }
  const o = raw as Record<string, unknown>;
  const int = (key: string, dflt?: number, min = 1): number => {
    const v = o[key] ?? dflt;
    if (v === undefined) throw new ConfigError(file, key, 'is required');
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
      throw new ConfigError(file, key, `must be an integer >= ${min}, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const modelType = o.model_type ?? 'bert';
  if (typeof modelType !== 'string') throw new ConfigError(file, 'model_type', 'must be a string');
  if (!['bert', 'e5'].includes(modelType)) {
    throw new ConfigError(file, 'model_type', `'${modelType}' is not a BERT model (this engine runs model_type "bert")`);
  }
  const act = o.hidden_act ?? 'gelu';
  if (typeof act !== 'string' || !(HIDDEN_ACTS as readonly string[]).includes(act)) {
    throw new ConfigError(file, 'hidden_act', `unsupported activation ${JSON.stringify(act)} (known: ${HIDDEN_ACTS.join(', ')})`);
  }
  const pet = o.position_embedding_type ?? 'absolute';
  if (pet !== 'absolute') {
    throw new ConfigError(file, 'position_embedding_type', `only "absolute" is supported, got ${JSON.stringify(pet)}`);
  }
  const eps = o.layer_norm_eps ?? 1e-12;
  if (typeof eps !== 'number' || !(eps > 0) || !Number.isFinite(eps)) {
    throw new ConfigError(file, 'layer_norm_eps', `must be a positive number, got ${JSON.stringify(eps)}`);
  }
  const cfg: BertConfig = {
    hiddenSize: int('hidden_size'),
    numHiddenLayers: int('num_hidden_layers'),
    numAttentionHeads: int('num_attention_heads'),
    intermediateSize: int('intermediate_size'),
    hiddenAct: act as HiddenAct,
    layerNormEps: eps,
    maxPositionEmbeddings: int('max_position_embeddings', 512),
    typeVocabSize: int('type_vocab_size', 2),
    vocabSize: int('vocab_size'),
    padTokenId: int('pad_token_id', 0, 0),
    positionEmbeddingType: 'absolute',
    modelType,
  };
  if (cfg.hiddenSize % cfg.numAttentionHeads !== 0) {
    throw new ConfigError(file, 'num_attention_heads',
      `hidden_size ${cfg.hiddenSize} is not a multiple of num_attention_heads ${cfg.numAttentionHeads}`);
  }
  if (cfg.padTokenId >= cfg.vocabSize) {
    throw new ConfigError(file, 'pad_token_id', `${cfg.padTokenId} is outside the vocabulary (vocab_size ${cfg.vocabSize})`);
  }
  return cfg;
}

/** The config as config.json spells it (for writing generated models). */
export function toHfConfig(c: BertConfig): Record<string, unknown> {
  return {
    architectures: ['BertModel'],
    attention_probs_dropout_prob: 0.1,
    hidden_act: c.hiddenAct,
    hidden_dropout_prob: 0.1,
    hidden_size: c.hiddenSize,
    initializer_range: 0.02,
    intermediate_size: c.intermediateSize,
    layer_norm_eps: c.layerNormEps,
    max_position_embeddings: c.maxPositionEmbeddings,
    model_type: 'bert',
    num_attention_heads: c.numAttentionHeads,
    num_hidden_layers: c.numHiddenLayers,
    pad_token_id: c.padTokenId,
    position_embedding_type: 'absolute',
    type_vocab_size: c.typeVocabSize,
    vocab_size: c.vocabSize,
  };
}
