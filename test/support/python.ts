/** The Python reference side of the tests: /usr/bin/python3 (Debian's, where python3-torch installs). */
import { spawnSync } from 'node:child_process';

export const PYTHON = '/usr/bin/python3';

const importable = new Map<string, boolean>();

/** Whether PYTHON can import `module` (asked once per module and process). */
export function pythonCanImport(module: string): boolean {
  if (!importable.has(module)) importable.set(module, spawnSync(PYTHON, ['-c', `import ${module}`], { stdio: 'ignore' }).status === 0);
  return importable.get(module)!;
}

/** Skip the running test, saying why, unless PYTHON can import `module`. */
export function skipUnlessPython(ctx: Mocha.Context, module: string, aptPackage: string): void {
  if (pythonCanImport(module)) return;
  console.log(`      (skipped: ${PYTHON} cannot import ${module}; apt-get install ${aptPackage})`);
  ctx.skip();
}
