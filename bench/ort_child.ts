/**
 * onnxruntime side of the benchmark harness: a child Node process (one per runtime, so each
 * has its own peak RSS and threads) answering JSON lines like bench/torch_bench.py.
 *
 *   web   onnxruntime-web on its wasm backend, ort.env.wasm.numThreads set explicitly
 *         (its default is half the cores): the engine in our class
 *   node  onnxruntime-node (native CPU provider), intraOpNumThreads set
 *
 * Both are optional peers, never dependencies: `npm install --no-save --ignore-scripts
 * onnxruntime-web onnxruntime-node`. The graph (model + masked mean pool + L2 normalise) is
 * exported by torch_bench.py. Inputs are HF-style padded int64 batches; corpus texts are
 * tokenized with our BertTokenizer (neither runtime has a tokenizer), sorted by length
 * (longest first), cut into batches and padded to the longest row of each batch, like torch.
 */
import * as readline from 'readline';
import { BertTokenizer } from '../tokenizer';

// The few parts of the onnxruntime API used here (its packages are optional, so no type import).
interface OrtTensor { data: unknown; dims: readonly number[] }
interface OrtSession {
  inputNames: readonly string[];
  outputNames: readonly string[];
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
}
interface Ort {
  env: { wasm: { numThreads?: number; simd?: boolean }; versions?: Record<string, string> };
  Tensor: new (type: 'int64', data: BigInt64Array, dims: number[]) => OrtTensor;
  InferenceSession: { create(path: string, options: Record<string, unknown>): Promise<OrtSession> };
}

interface Batch { ids: BigInt64Array; mask: BigInt64Array; B: number; T: number }
type Prepared = { kind: 'batch'; batch: Batch } | { kind: 'texts'; texts: string[]; batchSize: number; maxLength: number };

let ort: Ort;
let session: OrtSession;
let tokenizer: BertTokenizer | null = null;
const workloads = new Map<string, Prepared>();

function toBatch(rows: number[][]): Batch {
  const B = rows.length, T = Math.max(...rows.map((r) => r.length));
  const ids = new BigInt64Array(B * T), mask = new BigInt64Array(B * T);
  rows.forEach((r, b) => r.forEach((id, t) => {
    ids[b * T + t] = BigInt(id);
    mask[b * T + t] = 1n;
  }));
  return { ids, mask, B, T };
}

async function embed(b: Batch): Promise<Float32Array> {
  const t = (a: BigInt64Array) => new ort.Tensor('int64', a, [b.B, b.T]);
  const out = await session.run({ input_ids: t(b.ids), attention_mask: t(b.mask), token_type_ids: t(new BigInt64Array(b.B * b.T)) });
  return out.embedding.data as Float32Array;
}

const handlers: Record<string, (req: Record<string, any>) => Promise<Record<string, unknown>>> = {
  async load(req) {
    const kind = req.kind as 'web' | 'node';
    const threads = Number(req.threads);
    ort = require(kind === 'web' ? 'onnxruntime-web' : 'onnxruntime-node');
    const t0 = performance.now();
    if (kind === 'web') {
      ort.env.wasm.numThreads = threads;
      ort.env.wasm.simd = true;
      session = await ort.InferenceSession.create(req.onnx, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
    } else {
      session = await ort.InferenceSession.create(req.onnx, {
        executionProviders: ['cpu'], graphOptimizationLevel: 'all', executionMode: 'sequential',
        // ORT's defaults otherwise (its pool spins briefly between ops; engines run one at a time).
        intraOpNumThreads: threads, interOpNumThreads: 1,
      });
    }
    const loadSeconds = (performance.now() - t0) / 1000;
    tokenizer = BertTokenizer.fromFolder(req.model_dir);
    return {
      load_seconds: loadSeconds, version: ort.env.versions?.[kind] ?? ort.env.versions?.common ?? 'unknown', threads: kind === 'web' ? ort.env.wasm.numThreads : threads,
      inputs: session.inputNames, outputs: session.outputNames,
    };
  },
  async prepare(req) {
    workloads.set(req.name, { kind: 'batch', batch: toBatch(req.input_ids) });
    return {};
  },
  async prepare_texts(req) {
    workloads.set(req.name, { kind: 'texts', texts: req.texts, batchSize: req.batch_size ?? 32, maxLength: req.max_length ?? 512 });
    return {};
  },
  async run(req) {
    const w = workloads.get(req.name);
    if (!w) throw new Error(`no workload '${req.name}' prepared`);
    const t0 = performance.now();
    if (w.kind === 'batch') {
      const e = await embed(w.batch);
      const D = e.length / w.batch.B;
      return { seconds: (performance.now() - t0) / 1000, real_tokens: w.batch.B * w.batch.T, padded_tokens: w.batch.B * w.batch.T, probe: Array.from(e.subarray(0, D)) };
    }
    const rows = w.texts.map((t) => Array.from(tokenizer!.encode(t, { maxLength: w.maxLength }).inputIds));
    const tokenizeSeconds = (performance.now() - t0) / 1000;
    const order = rows.map((_, i) => i).sort((a, b) => rows[b].length - rows[a].length || a - b);
    let probe: number[] = [], padded = 0;
    for (let s = 0; s < order.length; s += w.batchSize) {
      const idx = order.slice(s, s + w.batchSize);
      const batch = toBatch(idx.map((i) => rows[i]));
      padded += batch.B * batch.T;
      const e = await embed(batch);
      const D = e.length / batch.B;
      const at = idx.indexOf(0);
      if (at >= 0) probe = Array.from(e.subarray(at * D, (at + 1) * D));
    }
    return {
      seconds: (performance.now() - t0) / 1000, tokenize_seconds: tokenizeSeconds,
      real_tokens: rows.reduce((n, r) => n + r.length, 0), padded_tokens: padded, probe,
    };
  },
  async stats() {
    return { maxrss_kib: process.resourceUsage().maxRSS };
  },
};

async function main(): Promise<void> {
  const out = (o: unknown) => new Promise<void>((resolve) => process.stdout.write(JSON.stringify(o) + '\n', () => resolve()));
  for await (const line of readline.createInterface({ input: process.stdin })) {
    if (!line.trim()) continue;
    let cmd: string | undefined;
    try {
      const req = JSON.parse(line);
      cmd = req.cmd;
      if (cmd === 'quit') {
        await out({ ok: true });
        break;
      }
      const h = cmd ? handlers[cmd] : undefined;
      if (!h) throw new Error(`unknown cmd ${JSON.stringify(cmd)}`);
      await out({ ok: true, ...(await h(req)) });
    } catch (e) {
      await out({ ok: false, error: `${(e as Error).name}: ${(e as Error).message}` });
    }
  }
  // The wasm runtime's worker threads would keep Node alive.
  process.exit(0);
}

if (require.main === module) {
  // Keep stdout for the protocol: anything the runtimes log goes to stderr.
  console.log = console.error;
  main();
}
