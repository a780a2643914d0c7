/**
 * The benchmark's options (bench/run.ts, `make bench`), declared apart from the harness so
 * tests can build BenchOptions without parsing a command line.
 */
import * as path from 'path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { BACKEND_NAMES, BackendName, Precision, PRECISIONS } from '../engine/backend';
import { PEER_NAMES, PeerName, repoRoot } from './engines';
import { DEFAULT_WORKLOADS, parseWorkload } from './workloads';

export interface BenchOptions {
  model: string;
  repeats: number;
  /** Untimed runs per engine before each batch workload's timed ones. */
  warmup: number;
  /** Idle ms before each timed run (spinning thread pools of the engine before go quiet). */
  settleMs: number;
  workloads: string[];
  peers: PeerName[];
  threads?: number;
  backend?: BackendName;
  /** Our precision (loadModel's; bf16 on tensorflow only), in-process and in whole runs. */
  precision: Precision;
  corpusSize: number;
  batchSize: number;
  seed: number;
  json?: string;
  compare: boolean;
  profile: boolean;
  ceiling: boolean;
  wholeRun: boolean;
  /** Whole runs embed this many generated passages (16–256 tokens) from a file instead of one query; 0 = the query. */
  wholeRunTexts?: number;
  python: string;
  /** The Python with sentence-transformers (the reference venv, make reference-env). */
  stPython?: string;
  /** torch_bench.py's model implementation: auto | transformers | torch. */
  impl: string;
  onnxDir: string;
  /** The Python with onnxruntime and onnx (make bench-env), for the ort-fp32 / ort-int8 peers. */
  ortPython: string;
}

function intAtLeast(min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\s*\d+\s*$/.test(v) || n < min) throw new InvalidArgumentError(`expected an integer >= ${min}, got '${v}'.`);
    return n;
  };
}

function list(v: string): string[] {
  return v.split(',').map((s) => s.trim()).filter(Boolean);
}

export function addBenchOptions(cmd: Command): Command {
  return cmd
    .requiredOption('-m, --model <dir>', 'model folder (HF layout: config.json, model.safetensors, vocab.txt) or hub id')
    .addOption(new Option('--repeats <n>', 'timed repeats per workload and engine (medians are reported)').argParser(intAtLeast(1)).default(3))
    .addOption(new Option('--warmup <n>', 'untimed runs per engine before each batch workload').argParser(intAtLeast(0)).default(1))
    .addOption(new Option('--settle <ms>', 'idle milliseconds before each timed run, so the previous engine\'s spinning threads go quiet').argParser(intAtLeast(0)).default(500))
    .addOption(new Option('--workloads <list>', `comma-separated: query (1x16), ROWSxTOKENS, corpus`).default(DEFAULT_WORKLOADS.join(',')))
    .addOption(new Option('--peers <list>', `comma-separated engines to compare with: ${PEER_NAMES.join(', ')}, or none (missing ones are skipped with a note)`).default(PEER_NAMES.join(',')))
    .addOption(new Option('--threads <n>', 'threads for every engine (default: all cores)').argParser(intAtLeast(1)))
    .addOption(new Option('--backend <name>', 'our tfjs backend (default: the best that loads)').choices([...BACKEND_NAMES]))
    .addOption(new Option('--precision <p>', "our precision: fp32, or bf16 (tensorflow backend)").choices([...PRECISIONS]).default('fp32'))
    .addOption(new Option('--corpus-size <n>', 'texts in the corpus workload').argParser(intAtLeast(1)).default(256))
    .addOption(new Option('--batch-size <n>', 'corpus texts per batch, every engine').argParser(intAtLeast(1)).default(32))
    .addOption(new Option('--seed <n>', 'seed of the generated texts').argParser(intAtLeast(0)).default(7))
    .option('--json <file>', 'also write the full results (every run) as JSON')
    .option('--compare', 'the engine comparison table (the default when no other mode is given)')
    .option('--profile', 'per-op profile of one forward of each workload (ours only)')
    .option('--ceiling', 'our forward vs the same matmuls alone (engine overhead)')
    .option('--whole-run', 'whole processes: bin/e5 embed vs python3 start + import + load + forward (torch, sentence-transformers)')
    .addOption(new Option('--whole-run-texts <n>', 'whole runs embed N generated passages of 16–256 tokens (--input) instead of one query; torch sits out').argParser(intAtLeast(1)))
    .option('--python <path>', 'the Python that has torch', '/usr/bin/python3')
    .option('--st-python <path>', 'the Python that has sentence-transformers (make reference-env)', path.join(repoRoot(), '.cache', 'reference-env', 'bin', 'python'))
    .addOption(new Option('--impl <name>', "torch side's model: transformers when importable, else plain torch BERT").choices(['auto', 'transformers', 'torch']).default('auto'))
    .option('--ort-python <path>', 'the Python with onnxruntime, onnx, torch and transformers (make bench-env), for ort-fp32 and ort-int8', path.join(repoRoot(), '.cache', 'bench-env', 'bin', 'python'))
    .option('--onnx-dir <dir>', 'cache of ONNX exports for the onnxruntime peers', path.join(repoRoot(), '.cache', 'bench-onnx'));
}

/** Commander's parsed options → BenchOptions (validated). */
export function benchOptions(raw: Record<string, any>): BenchOptions {
  const workloads = list(raw.workloads);
  if (workloads.length === 0) throw new InvalidArgumentError('--workloads is empty');
  workloads.forEach((w) => parseWorkload(w, 1)); // throws on an unknown name
  const peerList = list(raw.peers);
  const peers = peerList.length === 1 && peerList[0] === 'none' ? [] : peerList;
  for (const p of peers) {
    if (!(PEER_NAMES as readonly string[]).includes(p)) throw new InvalidArgumentError(`--peers: unknown engine '${p}' (${PEER_NAMES.join(', ')}, or none)`);
  }
  const anyMode = !!(raw.profile || raw.ceiling || raw.wholeRun);
  return {
    model: raw.model, repeats: raw.repeats, warmup: raw.warmup, settleMs: raw.settle, workloads, peers: peers as PeerName[],
    threads: raw.threads, backend: raw.backend, precision: raw.precision ?? 'fp32', corpusSize: raw.corpusSize, batchSize: raw.batchSize, seed: raw.seed,
    json: raw.json, compare: !!raw.compare || !anyMode, profile: !!raw.profile, ceiling: !!raw.ceiling, wholeRun: !!raw.wholeRun, wholeRunTexts: raw.wholeRunTexts,
    python: raw.python, stPython: raw.stPython, impl: raw.impl, onnxDir: raw.onnxDir, ortPython: raw.ortPython,
  };
}
