/**
 * The record `e5 embed --shard I/N` leaves beside its output, and `e5 merge` checks: a sidecar
 * `<output>.shard.json` saying which inputs the file holds and what made them.
 *
 *   {"format": "e5-tfjs-embedding-shard/1",
 *    "shard": {"index": 1, "count": 3, "block_size": 256},     inputs in blocks of block_size, block b → shard b mod count
 *    "input": {"count": 1000, "sha256": "..."},                 every input (not only this shard's), in order
 *    "rows": 256, "ranges": [[256, 512]],                       the global input indexes of the rows, in file order
 *    "output": {"file": "part-1.npy", "format": "npy", "bytes": 262272, "sha256": "..."},   the data file's name, size and sha256
 *    "model_sha256": "...", "settings": {...the run settings of JSON/safetensors outputs, batch_size included}}
 *
 * Merge refuses a data file whose name, size or sha256 is not its sidecar's (a swapped or rewritten
 * part), and shards whose settings differ in anything that changes bits (manifestMismatch).
 *
 * Order of writing: an old sidecar is removed first, then the data file is committed (temp +
 * rename), then the sidecar. A worker killed at any point leaves either no sidecar (merge refuses
 * the file: rerun the worker) or a sidecar that describes the data file beside it.
 */
import { createHash, Hash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import type { RunSettings } from './embedding-writers';
import { describe } from '../util/describe';
import { ModelFileError, pathExists, readModelJson, requireRegularFile } from '../util/model_file';
import { InputDataError } from './errors';
import type { InputRecord } from './input';
import { AtomicFile } from './output';
import { ownedBlock, ownedBlocks, ownsBlock, ShardSpec } from './shard';

export const SHARD_FORMAT = 'e5-tfjs-embedding-shard/2';
export type ShardedFormat = 'jsonl' | 'npy' | 'safetensors';
export const SHARDED_FORMATS: readonly ShardedFormat[] = ['jsonl', 'npy', 'safetensors'];

export interface ShardManifest {
  format: typeof SHARD_FORMAT;
  shard: { index: number; count: number; block_size: number };
  input: { count: number; sha256: string };
  rows: number;
  ranges: Array<[number, number]>;
  output: { file: string; format: ShardedFormat; bytes: number; sha256: string };
  model_sha256: string;
  settings: RunSettings;
}

export function manifestPath(dataFile: string): string {
  return `${dataFile}.shard.json`;
}

/** sha256 over every input's `JSON.stringify([id, text])` line, in input order. */
export class InputFingerprint {
  private readonly h: Hash = createHash('sha256');
  count = 0;
  add(r: InputRecord): void {
    this.h.update(`${JSON.stringify([r.id ?? null, r.text])}\n`);
    this.count++;
  }
  digest(): string {
    return this.h.digest('hex');
  }
}

/** The records of `records` that shard `s` owns (blocks of `blockSize`), fingerprinting all of them. */
export async function* shardRecords(records: AsyncIterable<InputRecord>, s: ShardSpec, blockSize: number, fp: InputFingerprint): AsyncGenerator<InputRecord> {
  for await (const r of records) {
    fp.add(r);
    if (ownsBlock(s, Math.floor(r.index / blockSize))) yield r;
  }
}

/** [start, end) of each block shard `s` owns among `total` inputs. */
export function shardRanges(s: ShardSpec, total: number, blockSize: number): Array<[number, number]> {
  return Array.from({ length: ownedBlocks(s, total, blockSize) }, (_, k) => ownedBlock(s, k, total, blockSize));
}

/** sha256 of a file's bytes, read in 1 MiB pieces. */
export function fileSha256(file: string): string {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0;) h.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

/** Before a sharded run writes `dataFile`: no sidecar may outlive the data it described. */
export function removeManifest(dataFile: string): void {
  fs.rmSync(manifestPath(dataFile), { force: true });
}

export function writeManifest(dataFile: string, m: ShardManifest): void {
  const file = new AtomicFile(manifestPath(dataFile));
  try {
    // One top-level field per line, each value compact (ranges can run to thousands of pairs).
    file.write(`{\n${Object.entries(m).map(([k, v]) => ` ${JSON.stringify(k)}: ${JSON.stringify(v)}`).join(',\n')}\n}\n`);
    file.commit();
  } catch (e) {
    file.abort();
    throw e;
  }
}

/**
 * A shard's sidecar, checked for shape and against its data file; errors name the file. Read with
 * the model files' limits (util/model_file.ts): a regular file, of bounded size and JSON depth.
 */
export function readManifest(dataFile: string): ShardManifest {
  const mf = manifestPath(dataFile);
  if (!pathExists(dataFile)) throw new Error(`${dataFile}: no such file`);
  if (!pathExists(mf)) throw new Error(`${dataFile}: no ${path.basename(mf)} beside it: not a finished 'e5 embed --shard' output (rerun that worker)`);
  let m: ShardManifest;
  try {
    requireRegularFile(dataFile);
    m = readModelJson(mf) as ShardManifest;
  } catch (e) {
    if (e instanceof ModelFileError) throw new InputDataError(e.message);
    throw e;
  }
  const bad = (what: string) => new InputDataError(`${mf}: ${what}`);
  if (typeof m !== 'object' || m === null || Array.isArray(m)) throw bad('expected a JSON object');
  if (m.format !== SHARD_FORMAT) {
    const format: unknown = m.format;
    const older = typeof format === 'string' && format.startsWith('e5-tfjs-embedding-shard/') ? ' (made by another e5-tfjs version: rerun that worker with this one)' : '';
    throw bad(`format is ${describe(format)}, expected '${SHARD_FORMAT}'${older}`);
  }
  const int = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
  const obj = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!obj(m.shard) || !int(m.shard.index) || !int(m.shard.count) || !(m.shard.index < m.shard.count) || !int(m.shard.block_size) || m.shard.block_size < 1) {
    throw bad('shard: expected {index < count, count, block_size >= 1}');
  }
  if (!obj(m.input) || !int(m.input.count) || typeof m.input.sha256 !== 'string') throw bad('input: expected {count, sha256}');
  if (!obj(m.output) || !SHARDED_FORMATS.includes(m.output.format) || typeof m.output.file !== 'string' || !int(m.output.bytes) || typeof m.output.sha256 !== 'string') {
    throw bad('output: expected {file, format (jsonl, npy or safetensors), bytes, sha256}');
  }
  if (m.output.file !== path.basename(dataFile)) {
    throw bad(`describes ${m.output.file}, not ${path.basename(dataFile)}: a shard's file and its sidecar are renamed together or not at all (name it ${m.output.file} again, or rerun its worker)`);
  }
  if (typeof m.model_sha256 !== 'string') throw bad('model_sha256: expected a string');
  if (!obj(m.settings)) throw bad(`settings: expected an object, got ${describe(m.settings)}`);
  if (!int(m.settings.dim) || m.settings.dim < 1) throw bad(`settings.dim: expected an integer >= 1, got ${describe(m.settings.dim)}`);
  // Compared block by block, never expanded: the counts are checked against the ranges the file
  // holds, so a count of 10^15 costs no more than the sidecar's own length.
  const spec = { index: m.shard.index, count: m.shard.count, source: mf };
  const what = `shard ${m.shard.index}/${m.shard.count} of ${m.input.count} inputs in blocks of ${m.shard.block_size}`;
  const blocks = ownedBlocks(spec, m.input.count, m.shard.block_size);
  if (!Array.isArray(m.ranges) || m.ranges.length !== blocks) {
    throw bad(`ranges ${Array.isArray(m.ranges) ? `lists ${m.ranges.length} blocks` : 'is not a list'}; ${what} has ${blocks}`);
  }
  let rows = 0;
  for (let k = 0; k < blocks; k++) {
    const [a, b] = ownedBlock(spec, k, m.input.count, m.shard.block_size);
    const r = m.ranges[k] as unknown;
    if (!Array.isArray(r) || r.length !== 2 || r[0] !== a || r[1] !== b) throw bad(`ranges[${k}] is not [${a}, ${b}], the block ${what} has there`);
    rows += b - a;
  }
  if (m.rows !== rows) throw bad(`rows ${m.rows} is not the size of its ranges (${rows})`);
  const bytes = fs.statSync(dataFile).size;
  if (bytes !== m.output.bytes) throw new InputDataError(`${dataFile}: ${bytes} bytes, its sidecar says ${m.output.bytes}: the file was replaced or cut; rerun its worker`);
  if (fileSha256(dataFile) !== m.output.sha256) throw new InputDataError(`${dataFile}: its sha256 is not the one its sidecar records: the file was replaced or changed since its worker wrote it; rerun its worker`);
  return m;
}

/** Why two shards cannot be joined (undefined when they can): the first differing field. */
export function manifestMismatch(a: ShardManifest, b: ShardManifest): string | undefined {
  const fields: Array<[string, (m: ShardManifest) => unknown]> = [
    ['model weights (sha256)', (m) => m.model_sha256],
    ['input (sha256 of every text and id)', (m) => m.input.sha256],
    ['input count', (m) => m.input.count],
    ['shard count', (m) => m.shard.count],
    ['block size (--chunk-size)', (m) => m.shard.block_size],
    ['output format', (m) => m.output.format],
    ['prefix', (m) => m.settings.prefix],
    ['pooling', (m) => m.settings.pooling],
    ['normalize', (m) => m.settings.normalize],
    ['max length', (m) => m.settings.max_length],
    ['batch size (--batch-size)', (m) => m.settings.batch_size],
    ['dimension', (m) => m.settings.dim],
    // name and the tfjs/native versions may change the last bits; the thread count does not
    // (deploy/README.md), so tasks on machines of other core counts still merge
    ['backend (name and versions)', (m) => { const b = m.settings.backend; return b && JSON.stringify([b.name, b.tfjsVersion, b.nativeVersion]); }],
    ['precision (--precision)', (m) => m.settings.precision ?? 'fp32'], // manifests from before it: fp32
    ['tool version', (m) => m.settings.tool],
  ];
  for (const [name, get] of fields) {
    if (get(a) !== get(b)) return `${name}: ${JSON.stringify(get(a))} vs ${JSON.stringify(get(b))}`;
  }
  return undefined;
}
