/**
 * `e5`: the command-line interface. It sits on the public library API (../index.ts) and does no
 * model math itself; see cli/commands/ for the commands and cli/errors.ts for the exit codes.
 */
import { Command, CommanderError } from 'commander';
import { COMMANDS } from './commands';
import { describeError, exitCodeFor, EXIT_FAILURE } from './errors';
import { toolVersion } from './format';
import { removeTempFiles } from './output';

export function buildProgram(): Command {
  const program = new Command('e5')
    .description('e5 text embeddings (intfloat/e5-large-unsupervised and other BERT models) on tfjs, with PyTorch parity tooling')
    .version(toolVersion(), '-v, --version')
    .exitOverride()
    .showSuggestionAfterError()
    .configureOutput({ writeOut: (s) => process.stdout.write(s), writeErr: (s) => process.stderr.write(s), outputError: errorLine('e5') })
    .addHelpText('after', `
Examples:
  $ e5 similarity --query "how much protein should a female eat" --query "summit define" \\
      --passage "As a general guideline, the CDC's average requirement of protein for women ages 19 to 70 is 46 grams per day." \\
      --passage "Definition of summit for English Language Learners. : 1 the highest point of a mountain"
  $ e5 embed --prefix passage --input docs.jsonl --output docs.npy
  $ e5 verify --model ./my-e5-folder

Exit codes: 0 ok, 1 runtime failure (model, I/O, input data), 2 bad usage, 3 parity/verify check failed.
Errors are one line, 'e5 COMMAND: message'; a trailing [code] (e.g. [non_finite]) is the error's
machine-readable code, the same as the library error's .code.`);
  for (const c of COMMANDS) c.register(program);
  // Usage errors name the command's usage line (commander prints `error: ...` first).
  for (const cmd of program.commands) {
    cmd.configureOutput({ ...cmd.configureOutput(), outputError: errorLine(`e5 ${cmd.name()}`) });
    cmd.showHelpAfterError(`usage: e5 ${cmd.name()} ${cmd.usage()}\n(run 'e5 ${cmd.name()} --help' for the options and an example)`);
  }
  return program;
}

/** Commander's own errors (`error: unknown option ...`) in the format of every other error: `e5 CMD: ...`. */
function errorLine(name: string): (s: string, write: (s: string) => void) => void {
  return (s, write) => write(s.replace(/^error: /, `${name}: `));
}

/** Run the CLI on `argv` and return the exit code (never throws). */
export async function main(argv: string[] = process.argv): Promise<number> {
  const program = buildProgram();
  // -V, the version flag of earlier releases (commander's default), still works
  if (argv[2] === '-V') argv = [...argv.slice(0, 2), '--version', ...argv.slice(3)];
  let current: Command | undefined;
  program.hook('preAction', (_program, action) => {
    current = action;
  });
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    removeTempFiles();
    const code = exitCodeFor(e);
    if (!(e instanceof CommanderError)) {
      const name = current ? `e5 ${current.name()}` : 'e5';
      process.stderr.write(`${name}: ${describeError(e)}\n`);
      if (current?.opts().debug && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
    }
    return code;
  }
}

/** Entry point for bin/e5: run, flush stdout, exit (wasm worker threads would keep Node alive). */
export function run(): void {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0); // `e5 embed ... | head`: the reader left, not an error
    throw e;
  });
  const interrupted = (signal: NodeJS.Signals) => {
    removeTempFiles();
    process.stderr.write(`\ne5: interrupted (${signal})\n`);
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  main().then(
    (code) => process.stdout.write('', () => process.exit(code)),
    (e) => {
      process.stderr.write(`e5: ${describeError(e)}\n`);
      process.exit(EXIT_FAILURE);
    },
  );
}

if (require.main === module) run();
