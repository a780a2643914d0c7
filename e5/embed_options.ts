/**
 * The checks `EmbeddingModel.embed()` runs on its arguments before any work, so a JavaScript
 * caller (no type checker) gets an error naming the option and the accepted values instead of
 * a TypeError deep inside, or — worse — a silent wrong result (`prefix: 'querry'` would prepend
 * "undefined"). One string stands for a list of one.
 */
import { POOLING_MODES } from '../weights/sentence_transformers';

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

/** A short, safe description of any value for a message (never throws, never huge). */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  switch (typeof v) {
    case 'string': return `'${v.length > 40 ? `${v.slice(0, 40)}…` : v}'`;
    case 'number': case 'boolean': case 'bigint': return String(v);
    case 'undefined': return 'undefined';
    case 'function': return 'a function';
    case 'symbol': return 'a symbol';
    default: return 'an object';
  }
}

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
  if (opts === undefined) return list;
  if (typeof opts !== 'object' || opts === null || Array.isArray(opts)) {
    throw new TypeError(`embed(texts, options): options must be an object, got ${describe(opts)}`);
  }
  for (const [key, value] of Object.entries(opts)) {
    const check = OPTION_CHECKS[key];
    if (!check) throw new TypeError(`embed(texts, options): unknown option '${key}' (known: ${Object.keys(OPTION_CHECKS).join(', ')})`);
    const wrong = value === undefined ? undefined : check(value);
    if (wrong) {
      const Err = typeof value === 'number' ? RangeError : TypeError;
      throw new Err(`embed(texts, options): option '${key}' ${wrong}`);
    }
  }
  return list;
}
