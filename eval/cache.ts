/**
 * Corpus embeddings on disk, one safetensors shard per `shardSize` passages, so a run of hours can be
 * interrupted and resumed without recomputing finished shards.
 *
 *   <cacheDir>/<sha256(key) first 32 hex>/key.json                 the key, human-readable
 *   <cacheDir>/<...>/shard-00000.safetensors                       embeddings F32 [count, dim]
 *
 * The key is everything the vectors depend on: embedder id (model + revision + weights fingerprint),
 * the engine that computes them (numerics revision + backend), pooling, prefix, maxLength, shard size, and the sha256 of the ordered (doc id, embedded text) pairs
 * — so editing one document, reordering the corpus or changing how title and text are joined lands
 * in a new directory.
 *
 * Shards are written by writeSafetensors (temp file, fsync, rename): a shard exists completely or not
 * at all. Each carries its own metadata (key hash, index, start, count, dim, sha256 of its texts) and
 * is re-verified on resume — its data against the sha256 it carries too, so bytes damaged on disk
 * (a zeroed block) are not reused — and one that fails to open or to match is recomputed, with a warning.
 *
 * Several processes, on several machines, may share one cache directory (NFS): temp names carry the
 * writer's pid and host (`.shard-00003.safetensors.<pid>@<host>.<hex>.tmp`), and a temp file is
 * only removed as stale by a process on the same host that finds its pid gone — never one of
 * another machine's live writers, whose pid this host cannot see.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SafetensorsError, SafetensorsFile, writeSafetensors } from '../weights/safetensors';
import { EvalError } from './errors';
import { processAlive } from '../util/process';

/** /2: each shard carries the sha256 of its data bytes (data_sha256), checked on reuse. */
export const CACHE_FORMAT = 'e5-eval-corpus-embeddings/2';

export interface CorpusCacheKey {
  format: typeof CACHE_FORMAT;
  embedder: string;
  /** Embedder.engine: the engine's numerics revision and backend (null for embedders without one). */
  engine: string | null;
  pooling: string | null;
  prefix: 'query' | 'passage';
  maxLength: number | null;
  shardSize: number;
  nDocs: number;
  /** sha256 over the ordered `JSON.stringify([docId, embeddedText]) + "\n"` lines. */
  corpusSha256: string;
}

/** sha256 of ordered (id, text) pairs, framed by JSON so no two different lists hash alike. */
export function hashTexts(ids: readonly string[], texts: readonly string[], from = 0, to = ids.length): string {
  const h = createHash('sha256');
  for (let i = from; i < to; i++) h.update(`${JSON.stringify([ids[i], texts[i]])}\n`);
  return h.digest('hex');
}

export interface ShardMeta {
  start: number;
  count: number;
  /** sha256 of this shard's (id, text) pairs. */
  textsSha256: string;
}

export interface LoadedShard {
  data: Float32Array;
  dim: number;
  nTruncated: number;
  nTokens: number;
}

export type ShardLookup = { status: 'hit'; shard: LoadedShard } | { status: 'missing' } | { status: 'invalid'; reason: string };

export class CorpusEmbeddingCache {
  private constructor(
    readonly dir: string,
    readonly key: CorpusCacheKey,
    readonly keySha256: string,
  ) {}

  /** Opens (creating if needed) the directory for `key` under `cacheDir`. */
  static open(cacheDir: string, key: CorpusCacheKey): CorpusEmbeddingCache {
    const { dir, keySha256 } = openKeyDir(cacheDir, '', key);
    return new CorpusEmbeddingCache(dir, key, keySha256);
  }

  shardPath(index: number): string {
    return path.join(this.dir, `shard-${String(index).padStart(5, '0')}.safetensors`);
  }

  /** Header-only version of load(): whether the shard is there and matches, without reading its data. */
  check(index: number, meta: ShardMeta): ShardLookup['status'] {
    const file = this.shardPath(index);
    if (!fs.existsSync(file)) return 'missing';
    let st: SafetensorsFile | undefined;
    try {
      st = SafetensorsFile.open(file);
      return this.mismatch(st, index, meta) ? 'invalid' : 'hit';
    } catch (e) {
      if (e instanceof SafetensorsError) return 'invalid';
      throw e;
    } finally {
      st?.close();
    }
  }

  /** The shard if present and valid for `meta`; 'invalid' (with why) if present but unusable. */
  load(index: number, meta: ShardMeta): ShardLookup {
    const file = this.shardPath(index);
    if (!fs.existsSync(file)) return { status: 'missing' };
    let st: SafetensorsFile | undefined;
    try {
      st = SafetensorsFile.open(file);
      const why = this.mismatch(st, index, meta);
      if (why) return { status: 'invalid', reason: why };
      const dim = Number(st.metadata.dim);
      const data = st.readF32('embeddings');
      const sha = dataSha256(data);
      if (sha !== st.metadata.data_sha256) return { status: 'invalid', reason: `its data does not match its checksum (sha256 ${sha}, recorded ${st.metadata.data_sha256})` };
      return {
        status: 'hit',
        shard: { data, dim, nTruncated: Number(st.metadata.n_truncated), nTokens: Number(st.metadata.n_tokens) },
      };
    } catch (e) {
      if (e instanceof SafetensorsError) return { status: 'invalid', reason: e.message };
      throw e;
    } finally {
      st?.close();
    }
  }

  private mismatch(st: SafetensorsFile, index: number, meta: ShardMeta): string | undefined {
    const m = st.metadata;
    const want: Record<string, string> = {
      format: CACHE_FORMAT, key_sha256: this.keySha256, shard: String(index),
      start: String(meta.start), count: String(meta.count), texts_sha256: meta.textsSha256,
    };
    for (const [k, v] of Object.entries(want)) {
      if (m[k] !== v) return `metadata ${k} is ${JSON.stringify(m[k])}, expected ${JSON.stringify(v)}`;
    }
    if (!/^[0-9a-f]{64}$/.test(m.data_sha256 ?? '')) return `metadata data_sha256 is ${JSON.stringify(m.data_sha256)}, expected a sha256`;
    for (const k of ['dim', 'n_truncated', 'n_tokens']) {
      if (!/^(0|[1-9][0-9]*)$/.test(m[k] ?? '')) return `metadata ${k} is ${JSON.stringify(m[k])}, expected an integer`;
    }
    const info = st.tensors.get('embeddings');
    if (!info || st.tensors.size !== 1) return `expected exactly one tensor "embeddings", found ${[...st.tensors.keys()].join(', ') || 'none'}`;
    const shape = `[${meta.count}, ${m.dim}]`;
    if (info.dtype !== 'F32' || `[${info.shape.join(', ')}]` !== shape) {
      return `tensor "embeddings" is ${info.dtype} [${info.shape.join(', ')}], expected F32 ${shape}`;
    }
    return undefined;
  }

  /** Writes a finished shard (temp file + rename: readers see all of it or nothing). */
  save(index: number, meta: ShardMeta, shard: LoadedShard): void {
    // writeSafetensors writes the file whole under a temp name of its own and renames it to `tmp`;
    // `tmp` names this host, so another machine sharing the directory never takes it for stale.
    const target = this.shardPath(index);
    const tmp = tempName(target);
    writeSafetensors(
      tmp,
      { embeddings: { dtype: 'F32', shape: [meta.count, shard.dim], data: shard.data } },
      {
        format: CACHE_FORMAT, key_sha256: this.keySha256, shard: String(index), start: String(meta.start),
        count: String(meta.count), dim: String(shard.dim), texts_sha256: meta.textsSha256,
        n_truncated: String(shard.nTruncated), n_tokens: String(shard.nTokens), data_sha256: dataSha256(shard.data),
      },
    );
    try {
      fs.renameSync(tmp, target);
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      throw e;
    }
  }
}

/**
 * `<cacheDir>/<prefix><sha256(key) first 32 hex>`, created if needed, with the key in key.json (a
 * key.json that disagrees is an EvalError('cache_conflict'; `conflictHint` says what differs)), and
 * the temp files of its killed writers removed.
 */
export function openKeyDir(cacheDir: string, prefix: string, key: object, conflictHint = ''): { dir: string; keySha256: string } {
  const keyJson = JSON.stringify(key, null, 2);
  const keySha256 = createHash('sha256').update(keyJson).digest('hex');
  const dir = path.join(cacheDir, `${prefix}${keySha256.slice(0, 32)}`);
  fs.mkdirSync(dir, { recursive: true });
  const keyFile = path.join(dir, 'key.json');
  if (fs.existsSync(keyFile)) {
    if (fs.readFileSync(keyFile, 'utf8') !== keyJson) {
      throw new EvalError('cache_conflict', `${keyFile} holds a different key than its directory name promises${conflictHint}; delete ${dir} to rebuild it`);
    }
  } else {
    writeFileAtomic(keyFile, keyJson);
  }
  removeStaleTempFiles(dir);
  return { dir, keySha256 };
}

/**
 * Deletes the temp files (tempName) in `dir` left by a killed writer of this host (their pid no longer
 * runs); never a live writer's, nor any other host's. writeSafetensors' own temp file inside ours
 * (`..<ours>.<pid>.<hex>.tmp`) is named after ours, so it goes with it.
 */
function removeStaleTempFiles(dir: string): void {
  const host = hostLabel();
  for (const name of fs.readdirSync(dir)) {
    const m = /^\.\.?[^.].*?\.(\d+)@([A-Za-z0-9-]+)\.[0-9a-f]+\.tmp(\.\d+\.[0-9a-f]+\.tmp)?$/.exec(name);
    if (m && m[2] === host && !processAlive(Number(m[1]))) fs.rmSync(path.join(dir, name), { force: true });
  }
}

/** This machine's name as temp names carry it: letters, digits and '-'. */
function hostLabel(): string {
  return os.hostname().replace(/[^A-Za-z0-9-]/g, '-') || 'localhost';
}

/** `.<name>.<pid>@<host>.<random hex>.tmp` beside `file`: unique across processes and machines. */
function tempName(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}@${hostLabel()}.${randomBytes(6).toString('hex')}.tmp`);
}

/** sha256 of float32 data as stored (little-endian bytes). */
export function dataSha256(data: Float32Array): string {
  return createHash('sha256').update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)).digest('hex');
}

/** `text` written to a temp file beside `file`, synced, then renamed over it: readers see all of it or nothing. */
export function writeFileAtomic(file: string, text: string): void {
  const tmp = tempName(file);
  const fd = fs.openSync(tmp, 'wx');
  try {
    fs.writeSync(fd, text);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}
