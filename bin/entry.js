// Which CLI entry bin/e5 runs: the compiled dist/cli/main.js, or the TypeScript sources through
// ts-node. An installed package (it lives under node_modules/, or ships no sources) always runs
// dist/; it never compiles anything, so editing or touching a file in it cannot break `e5`.
// A checkout runs dist/ when it is built and newer than every source file the build compiles
// (tsconfig.build.json's `include`), else the sources, so it works straight after `npm ci`.
//   E5_FROM_SOURCE=1  (checkout) always run the sources
//   E5_DIST=DIR       run DIR/cli/main.js (a build elsewhere, e.g. the tests' one)
'use strict';
const fs = require('fs');
const path = require('path');

const ROOT = path.resolve(__dirname, '..');

/** @returns {{ kind: 'dist' | 'source', file: string }} */
function cliEntry(root = ROOT, env = process.env) {
  if (env.E5_DIST) return { kind: 'dist', file: path.resolve(env.E5_DIST, 'cli', 'main.js') };
  const dist = { kind: 'dist', file: path.join(root, 'dist', 'cli', 'main.js') };
  const source = { kind: 'source', file: path.join(root, 'cli', 'main.ts') };
  if (isInstalled(root)) return dist;
  if (env.E5_FROM_SOURCE) return source;
  const built = fs.statSync(dist.file, { throwIfNoEntry: false });
  return built && built.mtimeMs >= newestSource(root) ? dist : source;
}

function isInstalled(root) {
  return root.split(path.sep).includes('node_modules') || !fs.existsSync(path.join(root, 'cli', 'main.ts'));
}

/** Newest modification time of the files the build compiles or copies (sources, viewer assets). */
function newestSource(root) {
  let newest = 0;
  const visit = (p) => {
    const st = fs.statSync(p, { throwIfNoEntry: false });
    if (!st) return;
    if (st.isDirectory()) {
      for (const name of fs.readdirSync(p)) if (name !== 'node_modules') visit(path.join(p, name));
    } else if (/\.(ts|js|css)$/.test(p)) {
      newest = Math.max(newest, st.mtimeMs);
    }
  };
  for (const entry of buildInputs(root)) visit(path.join(root, entry));
  return newest;
}

/** tsconfig.build.json's `include` (the file may hold whole-line // comments). */
function buildInputs(root) {
  const text = fs.readFileSync(path.join(root, 'tsconfig.build.json'), 'utf8');
  return JSON.parse(text.replace(/^\s*\/\/.*$/gm, '')).include;
}

module.exports = { cliEntry };
