/**
 * What every command shares: the model/backend/verbosity options, number parsing for option
 * values, the stderr reporter (warnings, notes, progress) and opening a model.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import {
  BACKEND_NAMES, BackendName, DEFAULT_MODEL_ID, DownloadProgress, EmbeddingModel, initBackend, installedBackends, loadModel, maxThreads, Precision, PRECISIONS,
} from '../index';
import { barStream, downloadBar, Progress, ProgressMode } from './progress';

export interface ModelOptions {
  model: string;
  revision?: string;
  offline?: boolean;
}
export interface BackendOptions {
  backend: 'auto' | BackendName;
  threads?: number;
  /** --precision (default fp32). */
  precision?: Precision;
}
export interface GeneralOptions {
  quiet?: boolean;
  debug?: boolean;
  progress: ProgressMode;
}

/** --model, --revision, --offline */
export function addModelOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('-m, --model <dir|org/name>', 'model folder or Hugging Face hub id').default(DEFAULT_MODEL_ID))
    .option('--revision <rev>', 'hub branch, tag or commit (default: main)')
    .option('--offline', 'never touch the network: use the Hugging Face cache only (also HF_HUB_OFFLINE=1)');
}

/** --backend, --threads */
export function addBackendOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--backend <name>', `tfjs backend: auto picks tensorflow, else wasm, else cpu (installed here: ${installedBackends().join(', ')}; tensorflow: npm install @tensorflow/tfjs-node, or e5 native)`)
      .choices(['auto', ...BACKEND_NAMES]).default('auto'))
    .addOption(new Option('--threads <n>', `threads (wasm: its thread pool; tensorflow: TensorFlow intra-op threads; default and most: the cores, ${maxThreads()} here)`).argParser(intArg(1, maxThreads(), 'the cores of this machine')))
    .addOption(new Option('--precision <p>', "fp32 (the reference) or bf16: the encoder's matmuls on bfloat16 operands, float32 accumulation, weights held as bfloat16 (tensorflow backend only; faster on CPUs with AVX512_BF16 or AMX)")
      .choices([...PRECISIONS]).default('fp32'));
}

/** -q, --debug, --progress */
export function addGeneralOptions(cmd: Command): Command {
  return cmd
    .option('-q, --quiet', 'no warnings or notes on stderr (errors are still printed)')
    .option('--debug', 'print stack traces with errors')
    .addOption(new Option('--progress <when>', 'progress bar on stderr: auto = when stderr is a terminal and there is more than one batch')
      .choices(['auto', 'on', 'off']).default('auto'));
}

/** An option parser for integers >= min (and <= max, said to be `maxIs`). */
export function intArg(min: number, max = Number.MAX_SAFE_INTEGER, maxIs = ''): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\s*[+-]?\d+\s*$/.test(value) || !Number.isSafeInteger(n)) throw new InvalidArgumentError(`'${value}' is not an integer.`);
    if (n < min) throw new InvalidArgumentError(`must be at least ${min}, got ${n}.`);
    if (n > max) throw new InvalidArgumentError(`must be at most ${max}${maxIs ? `, ${maxIs}` : ''}, got ${n}.`);
    return n;
  };
}

/** An option parser for finite numbers (>= 0 when `nonNegative`). */
export function numberArg(nonNegative = false): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`'${value}' is not a number.`);
    if (nonNegative && n < 0) throw new InvalidArgumentError(`must be >= 0, got ${n}.`);
    return n;
  };
}

/** Everything a command prints that is not data goes to stderr through here. */
export class Reporter {
  private readonly seen = new Set<string>();
  constructor(readonly quiet: boolean, readonly progressMode: ProgressMode, private readonly err: NodeJS.WriteStream = process.stderr) {}

  static from(o: Partial<GeneralOptions>): Reporter {
    return new Reporter(!!o.quiet, o.progress ?? 'auto');
  }

  /** A warning (silenced by -q); an identical message is printed once. */
  warn(message: string): void {
    if (this.quiet || this.seen.has(message)) return;
    this.seen.add(message);
    this.err.write(`warning: ${message}\n`);
  }

  /** A note about what ran (silenced by -q). */
  note(message: string): void {
    if (!this.quiet) this.err.write(`${message}\n`);
  }

  /** A progress bar for `total` items in `batches` batches (a no-op unless wanted; see --progress; -q: none unless --progress on). */
  progress(label: string, total: number | undefined, batches: number | undefined): Progress {
    return Progress.create(this.barMode(), label, total, batches, this.err);
  }

  /** Whether a bar may be drawn at all (before counting what it would show). */
  mayShowBar(): boolean {
    const mode = this.barMode();
    return mode === 'on' || (mode === 'auto' && barStream(this.err).tty);
  }

  private barMode(): ProgressMode {
    return this.quiet && this.progressMode === 'auto' ? 'off' : this.progressMode;
  }
}

/** "wasm (2 threads)", "cpu": the backend as notes and reports name it (the library's wording). */
export { describeBackendInfo as describeBackend } from '../index';

/**
 * Initialise the backend the options ask for, then resolve and load the model. Commands that
 * only embed pass `embeddingOnly`: the Linear weights then live only in XNNPACK's packed copies
 * (loadModel keepLinearWeights: false; 1.15 GB less for e5-large, and a faster load).
 */
export async function openModel(o: ModelOptions & BackendOptions & GeneralOptions, use: { embeddingOnly?: boolean } = {}): Promise<EmbeddingModel> {
  await initBackend({ backend: o.backend === 'auto' ? undefined : o.backend, threads: o.threads, nativeLogs: o.debug });
  return loadModel(o.model, {
    revision: o.revision,
    offline: o.offline ? true : undefined,
    progress: downloadProgress(o),
    keepLinearWeights: !use.embeddingOnly,
    precision: o.precision,
  });
}

/** The hub download bar: --progress on/off, silenced by -q, else shown when stderr is a terminal (Reporter.mayShowBar). */
export function downloadProgress(o: ModelOptions & GeneralOptions): false | ((p: DownloadProgress) => void) {
  return Reporter.from(o).mayShowBar() && downloadBar(`Downloading ${o.model}`);
}

/** Usage errors go through commander, so they print the usage line and exit 2 like its own. */
export function usageError(cmd: Command, message: string): never {
  cmd.error(`error: ${message}`, { exitCode: 2, code: 'e5.usage' });
}

/** The model name a result records: the hub id when there is one, else the folder. */
export function modelLabel(m: EmbeddingModel): string {
  return m.info.repoId ?? m.info.dir;
}

/** The model for a note on stderr: its label, and its precision where it is not the reference fp32. */
export function modelNote(m: EmbeddingModel): string {
  return `${modelLabel(m)}${m.info.precision === 'fp32' ? '' : ` at precision ${m.info.precision}`}`;
}
