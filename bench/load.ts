/**
 * The load alone, ours against sentence-transformers', alternating (issue 25, item 4):
 *
 *   npx ts-node --transpile-only bench/load.ts --model DIR [--rounds 5] [--threads 2] [--python PY]
 *
 * Each round loads with background reads (loadModel's default on tensorflow with make native's
 * addon), then with backgroundRead: false (the reads before loadModel returns), then asks the
 * sentence-transformers server of bench/engines.ts (bench/st_bench.py, which times
 * SentenceTransformer(dir) as bench/run.ts reports it) to load again. Ours is loadModel's wall time,
 * as bench/run.ts measures it, and, for the background load, when the weights had all arrived
 * (info.weightsReadSeconds, from the same start as info.loadSeconds). One untimed load of each first.
 * Prints each round and the medians on stderr/stdout.
 */
import { Command } from 'commander';
import { initBackend } from '../engine/backend';
import { loadModel } from '../e5/model';
import { StEngine } from './engines';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const o = new Command().requiredOption('--model <dir>').option('--rounds <n>', 'rounds', '5').option('--threads <n>', 'threads', '2')
    .option('--python <path>', "sentence-transformers' python", '.cache/reference-env/bin/python').parse().opts();
  const threads = Number(o.threads);
  await initBackend({ backend: 'tensorflow', threads });
  const ours = async (backgroundRead: boolean) => {
    const t0 = performance.now();
    const m = await loadModel(o.model, { backgroundRead, keepLinearWeights: false });
    const wall = (performance.now() - t0) / 1000;
    m.waitForWeights();
    const arrived = m.info.weightsReadSeconds!;
    m.dispose();
    return { wall, arrived };
  };
  await ours(true);
  const st = await StEngine.start(o.model, { python: o.python, threads });
  const rows: Array<{ bg: number; bgArrived: number; sync: number; st: number }> = [];
  try {
    for (let r = 0; r < Number(o.rounds); r++) {
      const bg = await ours(true);
      const sync = await ours(false);
      const s = await st.reload(o.model, threads);
      rows.push({ bg: bg.wall, bgArrived: bg.arrived, sync: sync.wall, st: s });
      process.stderr.write(`round ${r + 1}: ours ${bg.wall.toFixed(3)} s (weights in at ${bg.arrived.toFixed(3)} s), ours without background reads ${sync.wall.toFixed(3)} s, sentence-transformers ${s.toFixed(3)} s\n`);
    }
  } finally {
    await st.close();
  }
  const m = (k: keyof (typeof rows)[number]) => median(rows.map((x) => x[k]));
  console.log(`medians of ${rows.length}: ours ${m('bg').toFixed(3)} s (weights in at ${m('bgArrived').toFixed(3)} s), without background reads ${m('sync').toFixed(3)} s, sentence-transformers ${m('st').toFixed(3)} s; ours / st ${(m('bg') / m('st')).toFixed(2)}x (without: ${(m('sync') / m('st')).toFixed(2)}x)`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
