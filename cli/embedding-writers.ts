/**
 * `e5 embed` output formats. JSONL, JSON and .npy are written chunk by chunk as the embeddings
 * arrive (memory stays flat for any input length); safetensors needs the whole matrix and its
 * header up front, so it is collected and written at the end. .npy to stdout waits in an unlinked
 * spool file (cli/output.ts SpoolFile) for its row count.
 *
 *   jsonl        one object per input: {"index", "id"?, "n_tokens", "truncated", "embedding"}
 *   json         {"model", ..., "embeddings": [<the same objects>]}
 *   npy          an (N, dim) float32 matrix, row i = input i
 *   safetensors  tensor "embeddings" [N, dim] F32; run settings, ids, n_tokens in __metadata__
 */
import type { BackendInfo, EmbedResult, Precision } from '../index';
import { writeSafetensorsTo } from '../index';
import { f32Array } from './format';
import type { InputRecord } from './input';
import { NpyRowWriter } from './npy';
import { AtomicFile, SpoolFile, textSink, TextSink, writeStdout } from './output';

export type EmbedFormat = 'jsonl' | 'json' | 'npy' | 'safetensors';
export const EMBED_FORMATS: readonly EmbedFormat[] = ['jsonl', 'json', 'npy', 'safetensors'];

/** What a run used; recorded in JSON and safetensors outputs. */
export interface RunSettings {
  model: string;
  model_dir: string;
  revision?: string;
  commit?: string;
  backend: BackendInfo;
  /** 'fp32' or 'bf16' (--precision): bf16 embeddings differ from fp32 ones in the fourth decimal. */
  precision: Precision;
  prefix: string;
  pooling: string;
  normalize: boolean;
  max_length: number;
  /** Rows per forward pass: on some backends a row's last bits depend on its batch-mates. */
  batch_size: number;
  dim: number;
  tool: string;
}

export interface EmbeddingWriter {
  write(records: InputRecord[], result: EmbedResult): Promise<void>;
  finish(): Promise<void>;
  abort(): void;
}

/** A writer for `format` into `output`, or stdout when it is undefined. */
export interface WriterOptions {
  /** Replace an existing output file (--force); else fail if one appears (see placeFile). */
  replace: boolean;
  /** Record each row's input line number ("line"; safetensors: `lines`), when rows may have been skipped. */
  lines: boolean;
}

export function embeddingWriter(format: EmbedFormat, output: string | undefined, settings: RunSettings, opts: WriterOptions): EmbeddingWriter {
  switch (format) {
    case 'jsonl': return new JsonlWriter(textSink(output, opts), opts.lines);
    case 'json': return new JsonWriter(textSink(output, opts), settings, opts.lines);
    case 'npy': return output ? new NpyWriter(new AtomicFile(output, { replace: opts.replace }), settings.dim) : new NpyWriter(new SpoolFile('<stdout>'), settings.dim);
    case 'safetensors': return new SafetensorsWriter(output, settings, opts);
  }
}

function itemJson(r: InputRecord, res: EmbedResult, i: number, withLine: boolean): string {
  const id = r.id === undefined ? '' : `"id":${JSON.stringify(r.id)},`;
  const line = withLine ? `"line":${r.line},` : '';
  return `{"index":${r.index},${line}${id}"n_tokens":${res.nTokens[i]},"truncated":${res.truncated[i]},"embedding":${f32Array(res.embeddings[i])}}`;
}

class JsonlWriter implements EmbeddingWriter {
  constructor(private readonly sink: TextSink, private readonly withLine: boolean) {}
  async write(records: InputRecord[], res: EmbedResult): Promise<void> {
    await this.sink.write(records.map((r, i) => itemJson(r, res, i, this.withLine) + '\n').join(''));
  }
  finish(): Promise<void> {
    return this.sink.commit();
  }
  abort(): void {
    this.sink.abort();
  }
}

class JsonWriter implements EmbeddingWriter {
  private first = true;
  private started = false;
  constructor(private readonly sink: TextSink, private readonly settings: RunSettings, private readonly withLine: boolean) {}
  private async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const head = JSON.stringify({ ...this.settings, format: 'e5-tfjs-embeddings' });
    await this.sink.write(`${head.slice(0, -1)},"embeddings":[`);
  }
  async write(records: InputRecord[], res: EmbedResult): Promise<void> {
    await this.start();
    let s = '';
    records.forEach((r, i) => {
      s += (this.first ? '\n' : ',\n') + itemJson(r, res, i, this.withLine);
      this.first = false;
    });
    await this.sink.write(s);
  }
  async finish(): Promise<void> {
    await this.start();
    await this.sink.write(this.first ? ']}\n' : '\n]}\n');
    await this.sink.commit();
  }
  abort(): void {
    this.sink.abort();
  }
}

/**
 * The matrix streams into `file`; its row count is patched into the header at the end, which a
 * pipe cannot take: stdout gets a SpoolFile, copied out when complete.
 */
class NpyWriter implements EmbeddingWriter {
  private readonly matrix: NpyRowWriter;
  constructor(private readonly file: AtomicFile | SpoolFile, dim: number) {
    this.matrix = new NpyRowWriter(file, dim);
  }
  async write(_records: InputRecord[], res: EmbedResult): Promise<void> {
    res.embeddings.forEach((e) => this.matrix.append(e));
  }
  async finish(): Promise<void> {
    this.matrix.finish();
    if (this.file instanceof SpoolFile) await this.file.toStdout();
    else this.file.commit();
  }
  abort(): void {
    this.file.abort();
  }
}

class SafetensorsWriter implements EmbeddingWriter {
  private readonly rows: Float32Array[] = [];
  private readonly ids: Array<string | number | null> = [];
  private readonly nTokens: number[] = [];
  private readonly truncated: boolean[] = [];
  private readonly lines: number[] = [];
  constructor(private readonly target: string | undefined, private readonly settings: RunSettings, private readonly opts: WriterOptions) {}
  async write(records: InputRecord[], res: EmbedResult): Promise<void> {
    records.forEach((r, i) => {
      this.rows.push(res.embeddings[i]);
      this.ids.push(r.id ?? null);
      this.nTokens.push(res.nTokens[i]);
      this.truncated.push(res.truncated[i]);
      this.lines.push(r.line);
    });
  }
  async finish(): Promise<void> {
    const D = this.settings.dim;
    const data = new Float32Array(this.rows.length * D);
    this.rows.forEach((r, i) => data.set(r, i * D));
    const s = this.settings;
    const metadata: Record<string, string> = {
      format: 'e5-tfjs-embeddings',
      tool: s.tool,
      model: s.model,
      model_dir: s.model_dir,
      ...(s.revision ? { revision: s.revision } : {}),
      ...(s.commit ? { commit: s.commit } : {}),
      backend: JSON.stringify(s.backend),
      precision: s.precision,
      prefix: s.prefix,
      pooling: s.pooling,
      normalize: String(s.normalize),
      max_length: String(s.max_length),
      batch_size: String(s.batch_size),
      n_tokens: JSON.stringify(this.nTokens),
      truncated: JSON.stringify(this.truncated),
      ...(this.ids.some((x) => x !== null) ? { ids: JSON.stringify(this.ids) } : {}),
      ...(this.opts.lines ? { lines: JSON.stringify(this.lines) } : {}),
    };
    const tensors = { embeddings: { dtype: 'F32' as const, shape: [this.rows.length, D], data } };
    if (this.target === undefined) { // stdout: the header is known now, nothing needs a seek
      const chunks: Uint8Array[] = [];
      writeSafetensorsTo('<stdout>', tensors, metadata, (bytes) => chunks.push(bytes));
      for (const c of chunks) await writeStdout(c);
      return;
    }
    const file = new AtomicFile(this.target, { replace: this.opts.replace });
    try {
      writeSafetensorsTo(this.target, tensors, metadata, (bytes) => file.write(bytes));
      file.commit();
    } catch (e) {
      file.abort();
      throw e;
    }
  }
  abort(): void {}
}
