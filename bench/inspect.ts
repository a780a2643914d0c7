/**
 * Inspection at embedding speed (issue 22's targets), on a model folder (default: the generated
 * e5-large-shaped one, `make large-model`):
 *
 *   whole processes, alternating:  bin/e5 embed --input F   vs
 *                                  bin/e5 inspect --input F --hooks 'blocks.*.hook_resid_post' --output DIR/
 *                                  over 32 passages of 14–197 tokens (seeded, from the model's vocabulary)
 *   in process:                    a compiled forward (8 rows of 128 tokens) plain vs with one head
 *                                  ablated (ForwardOptions.heads), alternating
 *
 * Prints medians and the ratios; the VM is shared, so read the ratios, not the seconds.
 *
 *   ts-node bench/inspect.ts [--model DIR] [--repeats N] [--backend tensorflow]
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { Command } from 'commander';
import { initBackend, loadModel } from '../index';
import type { BackendName } from '../engine/backend';
import { repoRoot } from './engines';
import { median } from './stats';
import { makeWorkload } from './workloads';

async function main(): Promise<void> {
  const o = new Command()
    .option('--model <dir>', 'model folder', path.join(repoRoot(), '.cache/models/e5-large-random'))
    .option('--repeats <n>', 'runs of each, alternating', (v) => Number(v), 3)
    .option('--backend <name>', 'backend', 'tensorflow')
    .option('--threads <n>', 'threads', (v) => Number(v), os.cpus().length)
    .parse()
    .opts<{ model: string; repeats: number; backend: BackendName; threads: number }>();
  const runtime = await initBackend({ backend: o.backend, threads: o.threads });
  const m = await loadModel(o.model);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'e5-bench-inspect-'));
  try {
    // 32 passages of 14–197 tokens, as issue 22 measured.
    const w = makeWorkload({ kind: 'corpus', name: 'inspect32', texts: 32, minTokens: 14, maxTokens: 197 }, m.tokenizer, 22);
    if (w.kind !== 'corpus') throw new Error('unreachable');
    const input = path.join(work, 'passages.jsonl');
    fs.writeFileSync(input, w.texts.map((text, i) => JSON.stringify({ id: String(i), text })).join('\n') + '\n');
    const e5 = path.join(repoRoot(), 'bin/e5');
    const common = ['--model', o.model, '--backend', o.backend, '--threads', String(o.threads), '-q'];
    const commands = {
      embed: ['embed', ...common, '--input', input, '--output', path.join(work, 'out.jsonl'), '--force'],
      inspect: ['inspect', ...common, '--input', input, '--hooks', 'blocks.*.hook_resid_post', '--output', path.join(work, 'dump') + '/', '--force'],
    };
    const times: Record<keyof typeof commands, number[]> = { embed: [], inspect: [] };
    for (let i = 0; i < o.repeats; i++) {
      for (const [name, args] of Object.entries(commands) as Array<[keyof typeof commands, string[]]>) {
        const t0 = process.hrtime.bigint();
        const r = spawnSync(process.execPath, [e5, ...args], { encoding: 'utf8' });
        const s = Number(process.hrtime.bigint() - t0) / 1e9;
        if (r.status !== 0) throw new Error(`e5 ${name} failed (${r.status}): ${r.stderr}`);
        times[name].push(s);
        console.log(`  ${name} run ${i + 1}: ${s.toFixed(2)} s`);
      }
    }
    const [emb, ins] = [median(times.embed), median(times.inspect)];
    console.log(`whole processes, ${w.realTokens} tokens in 32 passages: embed ${emb.toFixed(2)} s, inspect --hooks 'blocks.*.hook_resid_post' ${ins.toFixed(2)} s: ${(ins / emb).toFixed(2)}x`);

    // A compiled forward plain vs with one head ablated (the mask an input of the graph).
    const { numHiddenLayers: L, numAttentionHeads: H } = m.config;
    const batch = { inputIds: Array.from({ length: 8 }, (_, r) => Array.from({ length: 128 }, (_, t) => 1000 + ((r * 131 + t * 7) % 20000))) };
    const mask = tf.tensor2d(Array.from({ length: L * H }, (_, i) => (i === 5 ? 0 : 1)), [L, H]);
    const forward = (heads: boolean) => {
      const t0 = process.hrtime.bigint();
      const out = m.bert.forward(batch, { poolerOutput: false, ...(heads ? { heads: { mask } } : {}) });
      out.embedding.dataSync();
      out.dispose();
      return Number(process.hrtime.bigint() - t0) / 1e9;
    };
    forward(false), forward(true); // build the graph, and each chain's first optimised run
    const plain: number[] = [], ablated: number[] = [];
    for (let i = 0; i < Math.max(3, o.repeats); i++) {
      plain.push(forward(false));
      ablated.push(forward(true));
    }
    mask.dispose();
    const [p, a] = [median(plain), median(ablated)];
    console.log(`in process (${runtime.name}, 8x128): plain ${p.toFixed(3)} s, one head ablated ${a.toFixed(3)} s: ${(a / p).toFixed(2)}x`);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
    m.dispose();
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
