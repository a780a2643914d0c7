/**
 * The checks `EmbeddingModel.embed()` and `loadModel()` run on their arguments before any work, so a JavaScript
 * caller (no type checker) gets an error naming the option and the accepted values instead of
 * a TypeError deep inside, or — worse — a silent wrong result (`prefix: 'querry'` would prepend
 * "undefined"). One string stands for a list of one.
 */
import { describe } from '../util/describe';
import { POOLING_MODES } from '../weights/sentence_transformers';
import { PRECISIONS } from '../engine/backend';

export { describe };

const PREFIX_VALUES = ['query', 'passage', 'none'] as const;

type Check = (v: unknown) => string | undefined; // what is wrong, or undefined

const oneOf = (values: readonly string[]): Check => (v) =>
  typeof v === 'string' && values.includes(v) ? undefined : `must be one of ${values.map((x) => `'${x}'`).join(', ')}, got ${describe(v)}`;
const integerAtLeast = (min: number): Check => (v) =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= min ? undefined : `must be an integer >= ${min}, got ${describe(v)}`;
const boolean: Check = (v) => (typeof v === 'boolean' ? undefined : `must be true or false, got ${describe(v)}`);
const fn: Check = (v) => (typeof v === 'function' ? undefined : `must be a function, got ${describe(v)}`);
const isTensor = (v: unknown) => typeof v === 'object' && v !== null && Array.isArray((v as { shape?: unknown }).shape) && typeof (v as { dataSync?: unknown }).dataSync === 'function';
/** Shapes are the model's business (engine/heads.ts checks them against the config); here, the form. */
const headIntervention: Check = (v) => {
  if (typeof v !== 'object' || v === null || !isTensor((v as { mask?: unknown }).mask)) return `must be { mask: tf.Tensor [L, H], fill?: tf.Tensor [L, D] }, got ${describe(v)}`;
  const rank = (v as { mask: { shape: number[] } }).mask.shape.length;
  if (rank !== 2) return `.mask must be [layers, heads] (one mask for every text), got rank ${rank}`;
  const fill = (v as { fill?: unknown }).fill;
  return fill === undefined || isTensor(fill) ? undefined : `.fill must be a tf.Tensor [L, D], got ${describe(fill)}`;
};
const string: Check = (v) => (typeof v === 'string' ? undefined : `must be a string, got ${describe(v)}`);
const object: Check = (v) => (typeof v === 'object' && v !== null && !Array.isArray(v) ? undefined : `must be an object, got ${describe(v)}`);
const strings: Check = (v) => (Array.isArray(v) && v.every((x) => typeof x === 'string') ? undefined : `must be an array of strings, got ${describe(v)}`);
const booleanOrFunction: Check = (v) => (typeof v === 'boolean' || typeof v === 'function' ? undefined : `must be false or a function, got ${describe(v)}`);

/** Every option embed() knows, with its check (undefined values mean "the default" and pass). */
const OPTION_CHECKS: Record<string, Check> = {
  prefix: oneOf(PREFIX_VALUES),
  pooling: oneOf(POOLING_MODES),
  normalize: boolean,
  batchSize: integerAtLeast(1),
  maxBatchTokens: integerAtLeast(1),
  maxLength: integerAtLeast(2), // [CLS] and [SEP]
  onProgress: fn,
  onWarning: fn,
  heads: headIntervention,
};

/** Every option loadModel() knows (LoadModelOptions, ResolveOptions included). */
const LOAD_OPTION_CHECKS: Record<string, Check> = {
  revision: string,
  offline: boolean,
  cacheDir: string,
  endpoint: string,
  token: string,
  progress: booleanOrFunction,
  files: strings,
  allowNonFinite: boolean,
  e5: boolean,
  runtime: object,
  prepack: boolean,
  keepLinearWeights: boolean,
  precision: oneOf(PRECISIONS),
  backgroundRead: boolean,
};


/**
 * The texts as a list (one string → a list of one); throws TypeError naming the first text or
 * option that is wrong, and RangeError for an out-of-range number.
 */
export function checkEmbedArgs(texts: unknown, opts: unknown): string[] {
  const list = typeof texts === 'string' ? [texts] : texts;
  if (!Array.isArray(list)) throw new TypeError(`embed(texts): texts must be a string or an array of strings, got ${describe(texts)}`);
  for (let i = 0; i < list.length; i++) {
    if (typeof list[i] !== 'string') throw new TypeError(`embed(texts): texts[${i}] must be a string, got ${describe(list[i])}`);
  }
  checkOptions('embed(texts, options)', opts, OPTION_CHECKS);
  return list;
}

/** loadModel's arguments: a non-empty string, and options as LOAD_OPTION_CHECKS say. */
export function checkLoadArgs(nameOrDir: unknown, opts: unknown): void {
  if (typeof nameOrDir !== 'string' || nameOrDir === '') {
    throw new TypeError(`loadModel(nameOrDir): nameOrDir must be a model folder or a hub id like 'intfloat/e5-large-unsupervised', got ${describe(nameOrDir)}`);
  }
  checkOptions('loadModel(nameOrDir, options)', opts, LOAD_OPTION_CHECKS);
}

/** Throws TypeError naming the first unknown option or wrong value (RangeError for a number out of range). */
function checkOptions(call: string, opts: unknown, checks: Record<string, Check>): void {
  if (opts === undefined) return;
  if (typeof opts !== 'object' || opts === null || Array.isArray(opts)) {
    throw new TypeError(`${call}: options must be an object, got ${describe(opts)}`);
  }
  for (const [key, value] of Object.entries(opts)) {
    const check = checks[key];
    if (!check) throw new TypeError(`${call}: unknown option '${key}' (known: ${Object.keys(checks).join(', ')})`);
    const wrong = value === undefined ? undefined : check(value);
    if (wrong) {
      const Err = typeof value === 'number' ? RangeError : TypeError;
      throw new Err(`${call}: option '${key}' ${wrong}`);
    }
  }
}
