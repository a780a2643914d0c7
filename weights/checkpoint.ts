// A model folder's weights as one tensor namespace: `model.safetensors`, or
// `model.safetensors.index.json` + the shards it names. Resolution order follows transformers
// (single file first, then the index). Pickle checkpoints are refused: unpickling runs arbitrary code.

import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { SafetensorsError } from './errors';
import { pickleFiles } from './pickle';
import { F32Source, ReadF32Options, SafetensorsFile, TensorData, TensorInfo } from './safetensors';
import { describeJson, JsonObject, JsonSyntaxError, JsonValue, parseJsonStrict } from './strict-json';

export const SAFE_WEIGHTS_NAME = 'model.safetensors';
export const SAFE_WEIGHTS_INDEX_NAME = 'model.safetensors.index.json';

const MAX_INDEX_BYTES = 100_000_000;

export type CheckpointTensorInfo = TensorInfo & { file: string };

export class Checkpoint {
  private constructor(
    readonly dir: string,
    readonly files: string[], // paths of the safetensors files, in index order
    readonly tensors: ReadonlyMap<string, Readonly<CheckpointTensorInfo>>,
    private readonly shards: ReadonlyMap<string, SafetensorsFile>, // by path
  ) {}

  static open(dir: string): Checkpoint {
    requireDirectory(dir);
    const single = nodePath.join(dir, SAFE_WEIGHTS_NAME);
    if (fs.existsSync(single)) return Checkpoint.fromShards(dir, [SafetensorsFile.open(single)]);
    const index = nodePath.join(dir, SAFE_WEIGHTS_INDEX_NAME);
    if (fs.existsSync(index)) return Checkpoint.openSharded(dir, index);
    throw noWeightsError(dir);
  }

  private static openSharded(dir: string, indexPath: string): Checkpoint {
    const weightMap = readIndex(indexPath);
    const shardNames = [...new Set(weightMap.values())];
    for (const shard of shardNames) {
      const first = [...weightMap].find(([, s]) => s === shard)![0];
      checkShardName(indexPath, shard, first);
      if (!fs.existsSync(nodePath.join(dir, shard))) {
        throw new SafetensorsError('missing_shard', indexPath, `shard ${JSON.stringify(shard)} listed in the index does not exist in ${dir}`, first);
      }
    }
    const opened: SafetensorsFile[] = [];
    try {
      for (const shard of shardNames) opened.push(SafetensorsFile.open(nodePath.join(dir, shard)));
      checkIndexAgainstShards(indexPath, weightMap, opened);
      return Checkpoint.fromShards(dir, opened);
    } catch (e) {
      for (const f of opened) f.close();
      throw e;
    }
  }

  private static fromShards(dir: string, shards: SafetensorsFile[]): Checkpoint {
    const tensors = new Map<string, Readonly<CheckpointTensorInfo>>();
    for (const shard of shards) {
      for (const info of shard.tensors.values()) tensors.set(info.name, Object.freeze({ ...info, file: shard.path }));
    }
    return new Checkpoint(dir, shards.map((s) => s.path), tensors, new Map(shards.map((s) => [s.path, s])));
  }

  info(name: string): Readonly<CheckpointTensorInfo> {
    const info = this.tensors.get(name);
    if (!info) throw new SafetensorsError('unknown_tensor', this.dir, `no such tensor in the checkpoint (${this.tensors.size} tensors)`, name);
    return info;
  }

  readF32(name: string, opts?: ReadF32Options): Float32Array {
    return this.shardOf(name).readF32(name, opts);
  }

  /** SafetensorsFile.f32Source in the shard that holds `name`. */
  f32Source(name: string, opts?: { allowNonFinite?: boolean }): F32Source | undefined {
    return this.shardOf(name).f32Source(name, opts);
  }

  read(name: string): TensorData {
    return this.shardOf(name).read(name);
  }

  readRaw(name: string): Uint8Array {
    return this.shardOf(name).readRaw(name);
  }

  close(): void {
    for (const shard of this.shards.values()) shard.close();
  }

  private shardOf(name: string): SafetensorsFile {
    return this.shards.get(this.info(name).file)!;
  }
}

function requireDirectory(dir: string): void {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(dir);
  } catch (e) {
    throw new SafetensorsError('no_weights', dir, `model folder does not exist (expected ${SAFE_WEIGHTS_NAME} in it)`, undefined, { cause: e });
  }
  if (!stat.isDirectory()) throw new SafetensorsError('no_weights', dir, `is not a folder (expected a model folder containing ${SAFE_WEIGHTS_NAME})`);
}

/** Explains what the folder holds instead of weights we read. */
function noWeightsError(dir: string): SafetensorsError {
  const names = fs.readdirSync(dir).sort();
  const pickles = pickleFiles(names);
  if (pickles.length > 0) {
    return new SafetensorsError('pickle_only', dir,
      `has no ${SAFE_WEIGHTS_NAME}, only PyTorch pickle weights (${pickles.join(', ')}). ` +
      'These are refused: loading a pickle can execute arbitrary code. Convert once, with Python, from a source you trust:\n' +
      `  python -c "from transformers import AutoModel; AutoModel.from_pretrained('${dir}').save_pretrained('${dir}', safe_serialization=True)"\n` +
      'or, for a bare state dict:\n' +
      `  python -c "import torch; from safetensors.torch import save_file; sd = torch.load('${nodePath.join(dir, pickles[0])}', map_location='cpu', weights_only=True); ` +
      `save_file({k: v.contiguous().clone() for k, v in sd.items()}, '${nodePath.join(dir, SAFE_WEIGHTS_NAME)}', metadata={'format': 'pt'})"`);
  }
  const others = names.filter((n) => n.endsWith('.safetensors') || n === 'tf_model.h5' || n === 'flax_model.msgpack');
  const found = others.length > 0 ? `; found ${others.join(', ')}, which are not read without an index` : '';
  return new SafetensorsError('no_weights', dir, `no ${SAFE_WEIGHTS_NAME} or ${SAFE_WEIGHTS_INDEX_NAME} in the model folder${found}`);
}

/** `{metadata?, weight_map: {tensor: shard}}` → tensor → shard name. */
function readIndex(indexPath: string): Map<string, string> {
  const fail = (detail: string, tensor?: string, cause?: unknown): never => {
    throw new SafetensorsError('bad_index', indexPath, detail, tensor, { cause });
  };
  let bytes: Buffer;
  try {
    const st = fs.statSync(indexPath);
    if (!st.isFile()) fail('index is not a regular file'); // a FIFO would block the read forever
    if (st.size > MAX_INDEX_BYTES) fail(`index is larger than ${MAX_INDEX_BYTES} bytes`);
    bytes = fs.readFileSync(indexPath);
  } catch (e) {
    if (e instanceof SafetensorsError) throw e;
    return fail(`cannot read the index: ${(e as Error).message}`, undefined, e);
  }
  let text = '';
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes); // a BOM is tolerated here: editors add them
  } catch (e) {
    fail('index is not valid UTF-8', undefined, e);
  }
  let root: JsonValue;
  try {
    root = parseJsonStrict(text);
  } catch (e) {
    if (!(e instanceof JsonSyntaxError)) throw e;
    const tensor = e.path[0] === 'weight_map' ? e.path[1] : undefined;
    if (e.kind === 'duplicate_key') throw new SafetensorsError('duplicate_key', indexPath, `index has a ${e.message}`, tensor, { cause: e });
    return fail(`index is not valid JSON: ${e.message}`, tensor, e);
  }
  if (!(root instanceof Map)) return fail(`index is JSON ${describeJson(root)}, expected an object`);
  const weightMap = root.get('weight_map');
  if (!(weightMap instanceof Map)) return fail(`"weight_map" is ${weightMap === undefined ? 'missing' : describeJson(weightMap)}, expected an object of tensor → shard file`);
  const metadata = root.get('metadata');
  if (metadata !== undefined && !(metadata instanceof Map)) fail(`"metadata" is ${describeJson(metadata)}, expected an object`);
  if (weightMap.size === 0) fail('"weight_map" is empty');
  const out = new Map<string, string>();
  for (const [tensor, shard] of weightMap as JsonObject) {
    if (typeof shard !== 'string') fail(`weight_map entry is ${describeJson(shard)}, expected a shard file name`, tensor);
    out.set(tensor, shard as string);
  }
  return out;
}

/** Shards must be plain names inside the folder: no '..', no separators, nothing absolute. */
function checkShardName(indexPath: string, shard: string, tensor: string): void {
  const plain = shard !== '' && shard !== '.' && shard !== '..' && !/[/\\\0]/.test(shard) && !nodePath.isAbsolute(shard);
  if (!plain) {
    throw new SafetensorsError('bad_shard_name', indexPath, `shard ${JSON.stringify(shard)} is not a plain file name in the model folder`, tensor);
  }
}

/** Every tensor lives in exactly the shard the index names, and the index lists every tensor. */
function checkIndexAgainstShards(indexPath: string, weightMap: Map<string, string>, shards: SafetensorsFile[]): void {
  const foundIn = new Map<string, string>(); // tensor → shard base name
  for (const shard of shards) {
    const shardName = nodePath.basename(shard.path);
    for (const name of shard.tensors.keys()) {
      const other = foundIn.get(name);
      if (other !== undefined) {
        throw new SafetensorsError('duplicate_tensor', indexPath, `is stored in two shards: ${JSON.stringify(other)} and ${JSON.stringify(shardName)}`, name);
      }
      foundIn.set(name, shardName);
    }
  }
  for (const [name, shardName] of foundIn) {
    const listed = weightMap.get(name);
    if (listed === undefined) {
      throw new SafetensorsError('tensor_not_in_index', indexPath, `is stored in shard ${JSON.stringify(shardName)} but missing from weight_map`, name);
    }
    if (listed !== shardName) {
      throw new SafetensorsError('tensor_not_in_shard', indexPath, `weight_map says shard ${JSON.stringify(listed)}, but it is stored in ${JSON.stringify(shardName)}`, name);
    }
  }
  for (const [name, listed] of weightMap) {
    if (!foundIn.has(name)) {
      throw new SafetensorsError('tensor_not_in_shard', indexPath, `weight_map says shard ${JSON.stringify(listed)}, which does not contain it`, name);
    }
  }
}
