/**
 * The engine's EmbeddingModel (e5/model.ts) as an eval Embedder, and the identity that keys the
 * corpus cache: `<repo>@<commit>#<fingerprint>` for a hub model, `<dir>#<fingerprint>` for a folder.
 *
 * The fingerprint stands for "these weights, this tokenizer, this config" without hashing 1.34 GB:
 *   - every small file that changes what embed() computes (config.json, tokenizer files,
 *     sentence-transformers pooling files), hashed whole;
 *   - every safetensors weight file: its size, its header bytes (names, dtypes, shapes, offsets,
 *     metadata) and, for every tensor, up to three 4 KiB blocks of its data (start, middle, end).
 * Fine-tuning changes every tensor, so it cannot hide from the samples; neither can an edit that
 * rewrites a whole tensor (ablation, a swapped layer). An edit confined to bytes no sample touches
 * can — such folders need a new name or revision. For e5-large that is ~390 tensors × 3 reads, about
 * 5 MB, instead of reading the whole checkpoint.
 *
 * Heads are removed through eval/head-forward.ts, the one place eval/ runs the encoder itself.
 */
import { createHash, Hash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { backendInfo } from '../engine/backend';
import type { EmbeddingModel } from '../e5/model';
import { NUMERICS_REVISION } from '../engine/numerics';
import type { EmbedCallOptions, EmbedCallResult, HeadEmbedder, HeadShape } from './embedder';
import { forwardRowMasked, headOutputSums } from './head-forward';

/** Files besides the weights that decide the vectors (read by the tokenizer, config and pooling loaders). */
export const FINGERPRINT_FILES: readonly string[] = [
  'config.json', 'tokenizer.json', 'vocab.txt', 'tokenizer_config.json', 'special_tokens_map.json',
  'modules.json', 'sentence_bert_config.json', path.join('1_Pooling', 'config.json'),
];
const SAFETENSORS_FILE = 'model.safetensors';
const SAFETENSORS_INDEX = 'model.safetensors.index.json';
/** Bytes read per sample; three samples per tensor. */
export const SAMPLE_BYTES = 4096;
/** Hex digits of the fingerprint kept in the id (64 bits: no accidental collision between models). */
const ID_HEX = 16;

export interface WeightsFingerprint {
  /** sha256 (hex) over everything listed below, in this order. */
  sha256: string;
  /** Weight files hashed (relative to the model folder) with their sizes in bytes. */
  weightFiles: Array<{ file: string; bytes: number }>;
  /** Small files hashed whole (those of FINGERPRINT_FILES present in the folder). */
  configFiles: string[];
  tensorsSampled: number;
  /** Bytes read from the weight files (headers + samples). */
  bytesRead: number;
}

/** Fingerprint of a model folder (see the module comment); reads a few MB at most. */
export function modelFingerprint(dir: string): WeightsFingerprint {
  const h = createHash('sha256');
  h.update('e5-tfjs model fingerprint v1\n');
  const configFiles = FINGERPRINT_FILES.filter((f) => fs.existsSync(path.join(dir, f)));
  for (const f of configFiles) {
    const bytes = fs.readFileSync(path.join(dir, f));
    h.update(`file ${f} ${bytes.length}\n`).update(bytes);
  }
  const weightFiles: WeightsFingerprint['weightFiles'] = [];
  let tensorsSampled = 0, bytesRead = 0;
  for (const file of weightFileNames(dir)) {
    const sampled = hashSafetensors(path.join(dir, file), h, `weights ${file}`);
    weightFiles.push({ file, bytes: sampled.size });
    tensorsSampled += sampled.tensors;
    bytesRead += sampled.bytesRead;
  }
  return { sha256: h.digest('hex'), weightFiles, configFiles, tensorsSampled, bytesRead };
}

/** The safetensors files e5/model.ts reads: model.safetensors, else the shards its index names. */
export function weightFileNames(dir: string): string[] {
  if (fs.existsSync(path.join(dir, SAFETENSORS_FILE))) return [SAFETENSORS_FILE];
  const index = path.join(dir, SAFETENSORS_INDEX);
  if (!fs.existsSync(index)) throw new Error(`${dir}: no ${SAFETENSORS_FILE} or ${SAFETENSORS_INDEX} to fingerprint`);
  const map = (JSON.parse(fs.readFileSync(index, 'utf8')) as { weight_map?: Record<string, string> }).weight_map;
  if (!map || typeof map !== 'object') throw new Error(`${index}: weight_map: missing or not an object`);
  return [...new Set(Object.values(map))].sort();
}

/** Feeds size, header and per-tensor samples of one safetensors file into `h`. */
function hashSafetensors(file: string, h: Hash, label: string): { size: number; tensors: number; bytesRead: number } {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const prefix = readAt(fd, 0, 8, file);
    const headerLength = Number(Buffer.from(prefix).readBigUInt64LE(0));
    if (!(headerLength > 0 && 8 + headerLength <= size)) throw new Error(`${file}: header length ${headerLength} does not fit the file (${size} bytes)`);
    const header = readAt(fd, 8, headerLength, file);
    h.update(`${label} ${size} ${headerLength}\n`).update(header);
    const dataStart = 8 + headerLength;
    let bytesRead = 8 + headerLength;
    const ranges = tensorRanges(header, file);
    for (const [begin, end] of ranges) {
      for (const at of sampleOffsets(begin, end)) {
        const block = readAt(fd, dataStart + at, Math.min(SAMPLE_BYTES, end - at), file);
        h.update(block);
        bytesRead += block.length;
      }
    }
    return { size, tensors: ranges.length, bytesRead };
  } finally {
    fs.closeSync(fd);
  }
}

/** Each tensor's [begin, end) in the data buffer, in header order (sorted by begin for stable reads). */
function tensorRanges(header: Uint8Array, file: string): Array<[number, number]> {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(Buffer.from(header).toString('utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${file}: header is not JSON (${(e as Error).message})`);
  }
  const ranges: Array<[number, number]> = [];
  for (const [name, v] of Object.entries(json)) {
    if (name === '__metadata__') continue;
    const off = (v as { data_offsets?: unknown } | null)?.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((x) => Number.isSafeInteger(x) && x >= 0) || off[0] > off[1]) {
      throw new Error(`${file}: tensor ${JSON.stringify(name)}: data_offsets is not [begin, end]`);
    }
    ranges.push([off[0], off[1]]);
  }
  return ranges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
}

/** Offsets of the start, middle and end blocks of [begin, end); fewer when they would overlap. */
export function sampleOffsets(begin: number, end: number, block = SAMPLE_BYTES): number[] {
  const n = end - begin;
  if (n <= 0) return [];
  if (n <= 3 * block) return Array.from({ length: Math.ceil(n / block) }, (_, i) => begin + i * block); // all of it
  return [begin, begin + Math.floor((n - block) / 2), end - block];
}

function readAt(fd: number, position: number, length: number, file: string): Uint8Array {
  const buf = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, buf, done, length - done, position + done);
    if (n === 0) throw new Error(`${file}: ends at byte ${position + done}, expected ${length - done} more bytes`);
    done += n;
  }
  return buf;
}

/** `<repo>@<commit or revision>` for a hub model, the folder otherwise; then `#` and the fingerprint. */
export function embedderId(info: Pick<EmbeddingModel['info'], 'dir' | 'repoId' | 'commit' | 'revision'>, fingerprintSha256: string): string {
  const where = info.repoId ? `${info.repoId}@${info.commit ?? info.revision ?? 'main'}` : info.dir;
  return `${where}#${fingerprintSha256.slice(0, ID_HEX)}`;
}

export interface EngineEmbedderOptions {
  /** Tokens per forward pass, summed over rows (engine default 8192). */
  maxBatchTokens?: number;
  /** The engine's per-call warnings (a doubled prefix, truncation). */
  onWarning?: (message: string) => void;
  /** A fingerprint computed elsewhere (skips reading the folder). */
  fingerprint?: WeightsFingerprint;
}

/** An EmbeddingModel seen as an eval Embedder: e5 prefixes, the model's pooling, L2-normalised. */
export class EngineEmbedder implements HeadEmbedder {
  readonly id: string;
  readonly pooling: string;
  readonly engine: string;
  readonly fingerprint: WeightsFingerprint;

  constructor(readonly model: EmbeddingModel, private readonly opts: EngineEmbedderOptions = {}) {
    this.fingerprint = opts.fingerprint ?? modelFingerprint(model.info.dir);
    this.id = embedderId(model.info, this.fingerprint.sha256);
    this.pooling = model.bert.defaultPooling;
    // Backends differ in the last bits (~1e-7); thread counts do not change a result.
    // bf16 changes results in the fourth decimal: its own cache entries (fp32 keys are as before).
    this.engine = `e5-tfjs numerics ${NUMERICS_REVISION} on ${backendInfo().name}${model.info.precision === 'bf16' ? ', precision bf16' : ''}`;
  }

  async embed(texts: string[], o: EmbedCallOptions): Promise<EmbedCallResult> {
    const out = await this.model.embed(texts, {
      prefix: o.prefix,
      batchSize: o.batchSize,
      maxLength: o.maxLength,
      onProgress: o.onProgress,
      maxBatchTokens: this.opts.maxBatchTokens,
      onWarning: this.opts.onWarning,
      normalize: true, // eval scores by dot product: the vectors must be unit length
    });
    return { embeddings: out.embeddings, nTokens: out.nTokens, truncated: out.truncated };
  }

  get headShape(): HeadShape {
    const { numHiddenLayers, numAttentionHeads, hiddenSize } = this.model.config;
    return { numHiddenLayers, numAttentionHeads, hiddenSize };
  }

  /** Tokenized as embed() tokenizes (prefix, maxLength, the model's warnings), in batches as embed() plans them. */
  private encodeBatches(texts: string[], o: EmbedCallOptions): ReturnType<EmbeddingModel['encodeBatches']> {
    return this.model.encodeBatches(texts, { prefix: o.prefix, maxLength: o.maxLength, batchSize: o.batchSize, maxBatchTokens: this.opts.maxBatchTokens }, this.opts.onWarning ?? (() => {}));
  }

  async headMeans(texts: string[], o: EmbedCallOptions): Promise<Float32Array> {
    const { encodings, batches } = this.encodeBatches(texts, o);
    const total = new Float64Array(this.model.config.numHiddenLayers * this.model.config.hiddenSize);
    let tokens = 0;
    for (const batch of batches) {
      const s = headOutputSums(this.model.bert, batch.map((i) => encodings[i]));
      s.sums.forEach((v, i) => (total[i] += v));
      tokens += s.tokens;
    }
    return Float32Array.from(total, (v) => v / tokens);
  }

  /**
   * Each planned batch of texts runs once for as many masks as fit in maxBatchTokens (rows = masks ×
   * texts of the batch, packed unpadded, each row with its own mask), so a scan of many cells costs
   * few forwards. The batches are those embed() plans, whatever the number of masks.
   */
  async embedMasked(texts: string[], masks: readonly Float32Array[], fill: Float32Array | undefined, o: EmbedCallOptions): Promise<EmbedCallResult[]> {
    const { encodings, batches } = this.encodeBatches(texts, o);
    const D = this.model.config.hiddenSize;
    const out = masks.map(() => new Array<Float32Array>(texts.length));
    let done = 0;
    for (const batch of batches) {
      const rows = batch.map((i) => encodings[i]);
      const tokens = rows.reduce((n, r) => n + r.nTokens, 0);
      const perForward = Math.max(1, Math.floor((this.opts.maxBatchTokens ?? 8192) / tokens));
      for (let c0 = 0; c0 < masks.length; c0 += perForward) {
        const cells = masks.slice(c0, c0 + perForward);
        const data = await forwardRowMasked(this.model.bert, cells.flatMap(() => rows), cells.flatMap((m) => rows.map(() => m)), fill);
        cells.forEach((_, c) => batch.forEach((orig, r) => (out[c0 + c][orig] = data.slice((c * rows.length + r) * D, (c * rows.length + r + 1) * D))));
      }
      done += batch.length;
      o.onProgress?.(done, texts.length);
    }
    const nTokens = encodings.map((e) => e.nTokens), truncated = encodings.map((e) => e.truncated);
    return out.map((embeddings) => ({ embeddings, nTokens, truncated }));
  }
}
