/**
 * The published build (`npm run build`, `make build`, and `npm pack` through prepack): a clean
 * dist/ holding the library and the CLI only, compiled with tsconfig.build.json.
 *
 *   npx ts-node --transpile-only devtools/build.ts [--out DIR]
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

export const REPO_ROOT = path.resolve(__dirname, '..');

/** Compile `project` into `outDir` (emptied first). Throws with tsc's messages on a type error. */
export function build(outDir = path.join(REPO_ROOT, 'dist'), project = path.join(REPO_ROOT, 'tsconfig.build.json')): void {
  fs.rmSync(outDir, { recursive: true, force: true });
  tsc(['-p', project, '--outDir', outDir]);
}

function tsc(args: string[]): void {
  execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), ...args], { stdio: 'inherit' });
}

if (require.main === module) {
  const i = process.argv.indexOf('--out');
  try {
    build(i > 0 ? path.resolve(process.argv[i + 1]) : undefined);
  } catch {
    process.exit(1); // tsc has printed the errors
  }
}
