/**
 * The Python reference side of the tests, found in one place:
 *   1. $REFERENCE_PYTHON (the Makefile exports it: .cache/reference-env/bin/python, or what you pass);
 *   2. .cache/reference-env/bin/python when `make reference-env` has made it (torch, transformers,
 *      sentence-transformers, safetensors, numpy, pinned in test/parity/requirements.txt);
 *   3. /usr/bin/python3 (Debian's, where python3-torch installs: the plain-torch fallback).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const REFERENCE_ENV_PYTHON = path.resolve(__dirname, '..', '..', '.cache', 'reference-env', 'bin', 'python');

export const PYTHON = process.env.REFERENCE_PYTHON
  ? path.resolve(process.env.REFERENCE_PYTHON)
  : fs.existsSync(REFERENCE_ENV_PYTHON) ? REFERENCE_ENV_PYTHON : '/usr/bin/python3';

const importable = new Map<string, boolean>();

/** Whether PYTHON can import `module` (asked once per module and process). */
export function pythonCanImport(module: string): boolean {
  if (!importable.has(module)) importable.set(module, spawnSync(PYTHON, ['-c', `import ${module}`], { stdio: 'ignore' }).status === 0);
  return importable.get(module)!;
}

/** Skip the running test, saying why, unless PYTHON can import `module`. */
export function skipUnlessPython(ctx: Mocha.Context, module: string, aptPackage: string): void {
  if (pythonCanImport(module)) return;
  console.log(`      (skipped: ${PYTHON} cannot import ${module}; make reference-env, or apt-get install ${aptPackage})`);
  ctx.skip();
}

/** Skip unless PYTHON has the Hugging Face stack (transformers, sentence-transformers): made by `make reference-env`. */
export function skipUnlessHuggingFace(ctx: Mocha.Context, ...modules: string[]): void {
  for (const m of modules.length ? modules : ['transformers']) {
    if (pythonCanImport(m)) continue;
    console.log(`      (skipped: ${PYTHON} cannot import ${m}; run make reference-env)`);
    ctx.skip();
  }
}

/** "torch X, transformers Y, sentence-transformers Z" as PYTHON has them (for logs and manifests). */
export function pythonStack(): Record<string, string> {
  const r = spawnSync(PYTHON, ['-c', STACK_PY], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${PYTHON} could not report its versions: ${r.stderr.trim().split('\n').pop()}`);
  return JSON.parse(r.stdout);
}

const STACK_PY = `
import importlib, json, sys
out = {"python": sys.version.split()[0]}
for m, name in (("torch", "torch"), ("transformers", "transformers"), ("sentence_transformers", "sentence-transformers"), ("safetensors", "safetensors"), ("numpy", "numpy")):
    try:
        out[name] = importlib.import_module(m).__version__
    except ImportError:
        pass
print(json.dumps(out))
`;
