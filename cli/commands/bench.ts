/**
 * `e5 bench`: the benchmark harness of bench/ (the same code `make bench` runs): our engine
 * next to PyTorch and, when installed, onnxruntime-web/-node, plus --profile, --ceiling and
 * --whole-run. The report (markdown) goes to stdout, progress to stderr. See bench/README.md.
 */
import { Command } from 'commander';
import { addBenchOptions, benchOptions } from '../../bench/options';
import { runBench } from '../../bench/run';
import { usageError } from '../common';

export function register(program: Command): Command {
  const cmd = program.command('bench')
    .description('benchmark our engine against PyTorch (and onnxruntime when installed) on a model folder');
  addBenchOptions(cmd);
  cmd.addHelpText('after', `
Workloads: query (1x16 tokens), ROWSxTOKENS (forward of a fixed batch), corpus (N texts of 16-256
tokens, tokenize + encode + pool). Every engine uses the same threads; medians of --repeats.

Examples:
  $ e5 bench --model .cache/models/e5-large-random --workloads query,8x128 --peers torch
  $ e5 bench --model ./folder --profile --workloads 8x128
  $ e5 bench --model ./folder --whole-run --repeats 3`);
  return cmd.action(async (_o: unknown, c: Command) => {
    let o;
    try {
      o = benchOptions(c.opts());
    } catch (e) {
      return usageError(c, (e as Error).message);
    }
    await runBench(o);
  });
}
