#!/usr/bin/env bash
# make native (a checkout) / e5 native (an installed package, the same script): make
# @tensorflow/tfjs-node (the native 'tensorflow' backend) usable here.
#
#   1. Already loads → check it and stop (idempotent).
#   2. The normal route: tfjs-node's own install, which downloads libtensorflow (works where that
#      download is reachable).
#   3. Otherwise from a TensorFlow C library: the C API that ships inside the `tensorflow-cpu` wheel
#      (TF_WHEEL=path/to/tensorflow_cpu-*.whl, or one `pip download` fetches from its configured
#      indexes). Its two libraries and the ~20 C API headers go into the package's deps/, with the
#      wheel's licence files beside them, and the addon is built from source with node-gyp.
#   4. Checks what it made (scripts/native-check.js): loads it, prints TF's version, runs a matMul
#      against the cpu backend.
#
# Where: in a checkout, everything stays inside it (downloads under .cache/native/). In a project
# that installed e5-tfjs (node_modules/e5-tfjs), the packages go into that project's node_modules,
# beside e5-tfjs's own @tensorflow/tfjs-core (tfjs-node must share it), and the downloads under
# node_modules/.cache/e5-tfjs-native/. Exit 0 on success; on failure one message saying what is
# missing, exit 1 — e5-tfjs keeps working on wasm.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd) # the e5-tfjs package: a checkout, or <project>/node_modules/e5-tfjs
NAME=${E5_NATIVE_NAME:-make native}

say() { echo "$NAME: $*"; }
fail() { echo "$NAME: $*" >&2; echo "$NAME: e5-tfjs keeps working on the wasm backend" >&2; exit 1; }

if [ "$(basename "$(dirname "$HERE")")" = node_modules ]; then
  ROOT=$(dirname "$(dirname "$HERE")")
  [ -f "$ROOT/package.json" ] || fail "$HERE is not inside a project (no $ROOT/package.json; a global install?): install e5-tfjs in a project folder (npm install e5-tfjs) and run npx e5 native there"
  CACHE=node_modules/.cache/e5-tfjs-native
else
  ROOT=$HERE
  CACHE=.cache/native
fi
cd "$ROOT"

TFJS_NODE_VERSION=$(node -p 'require(process.argv[1]).optionalDependencies["@tensorflow/tfjs-node"]' "$HERE/package.json")
TF_CPU_VERSION=${TF_CPU_VERSION:-2.21.0}
PKG=node_modules/@tensorflow/tfjs-node

check() { node "$HERE/scripts/native-check.js" 2>"$CACHE/check.log" || { cat "$CACHE/check.log" >&2; return 1; }; }

# The POSIX calls Node lacks (scripts/posix-addon): dup()/dup2() keep TensorFlow's load-time log
# lines off stderr whatever stderr is; page-aligned memory lets weights reach TensorFlow without a
# copy. Optional: without a compiler the lines may show and weights are copied once more.
posix_addon() {
  local out=node_modules/e5-tfjs-posix
  local src=$HERE/scripts/posix-addon
  [ "$out/index.node" -nt "$src/posix.c" ] && return 0 # built, and from this source
  local gyp nodedir build=$CACHE/posix-addon
  gyp=$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js
  nodedir=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")
  rm -rf "$build" && cp -r "$src" "$build" # built in a copy: an installed package's folder stays as npm made it
  if (cd "$build" && node "$gyp" rebuild --nodedir="${npm_config_nodedir:-$nodedir}") >"$CACHE/posix-addon.log" 2>&1; then
    mkdir -p "$out"
    # A new file renamed over the old: a process that has the old one loaded keeps its mapping
    # (cp would rewrite the mapped file under it).
    cp "$build/build/Release/e5_posix.node" "$out/index.node.tmp" && mv -f "$out/index.node.tmp" "$out/index.node"
    echo '{"name": "e5-tfjs-posix", "version": "1.0.0", "main": "index.node", "private": true}' >"$out/package.json"
    rm -rf "$build"
  else
    rm -rf "$build"
    say "note: scripts/posix-addon did not build (log: $CACHE/posix-addon.log); TensorFlow's load-time log lines may reach stderr, weights are copied once more"
  fi
}

mkdir -p "$CACHE"
if [ -d "$PKG" ] && check 2>/dev/null; then posix_addon; exit 0; fi

# ---- 2. the normal route (npm ci already tried it once if the package is absent; try again only
# when asked, since offline it costs a failed download).
if [ ! -d "$PKG" ] && [ "${NATIVE_TRY_DOWNLOAD:-1}" = 1 ]; then
  say "trying tfjs-node's own install (downloads libtensorflow)"
  if npm install --no-save --no-audit --no-fund "@tensorflow/tfjs-node@$TFJS_NODE_VERSION" >"$CACHE/npm-online.log" 2>&1 && [ -d "$PKG" ] && check; then
    posix_addon
    exit 0
  fi
  say "its download did not work here (log: $CACHE/npm-online.log); building from a TensorFlow wheel instead"
fi

# ---- 3. from the tensorflow-cpu wheel
if [ ! -d "$PKG/binding" ]; then
  say "installing the tfjs-node package without its install script"
  npm install --no-save --no-audit --no-fund --prefer-offline --ignore-scripts "@tensorflow/tfjs-node@$TFJS_NODE_VERSION" >"$CACHE/npm.log" 2>&1 \
    || fail "npm could not install @tensorflow/tfjs-node@$TFJS_NODE_VERSION (log: $CACHE/npm.log)"
fi

wheel=${TF_WHEEL:-}
if [ -z "$wheel" ]; then
  wheel=$(ls "$CACHE"/tensorflow_cpu-"$TF_CPU_VERSION"-*.whl 2>/dev/null | head -1 || true)
fi
if [ -z "$wheel" ]; then
  py=$(command -v python3 || true)
  [ -n "$py" ] || fail "no TensorFlow C library: set TF_WHEEL=path/to/tensorflow_cpu-$TF_CPU_VERSION-*.whl (python3 with pip would fetch one)"
  say "fetching tensorflow-cpu==$TF_CPU_VERSION with pip (its configured indexes)"
  PIP_RETRIES=${PIP_RETRIES:-1} "$py" -m pip download --no-deps --only-binary=:all: -d "$CACHE" "tensorflow-cpu==$TF_CPU_VERSION" >"$CACHE/pip.log" 2>&1 \
    || fail "pip could not fetch tensorflow-cpu==$TF_CPU_VERSION (log: $CACHE/pip.log); set TF_WHEEL=path/to/tensorflow_cpu-*.whl"
  wheel=$(ls "$CACHE"/tensorflow_cpu-"$TF_CPU_VERSION"-*.whl | head -1)
fi
[ -f "$wheel" ] || fail "TF_WHEEL=$wheel is not a file"
command -v python3 >/dev/null || fail "python3 is needed to open $wheel"
command -v g++ >/dev/null && command -v make >/dev/null || fail "g++ and make are needed to build the addon (apt-get install g++ make)"

say "extracting the C API from $(basename "$wheel")"
x=$CACHE/wheel
rm -rf "$x" && mkdir -p "$x"
python3 - "$wheel" "$x" <<'PY' || fail "$wheel does not hold TensorFlow's C library (tensorflow/libtensorflow_cc.so.2)"
import fnmatch, sys, zipfile
wanted = ['tensorflow/libtensorflow_cc.so.2', 'tensorflow/libtensorflow_framework.so.2',
          'tensorflow/include/tensorflow/c/*', 'tensorflow/include/tensorflow/core/platform/ctstring*',
          'tensorflow/include/tsl/platform/ctstring*', 'tensorflow/include/xla/tsl/c/*',
          'tensorflow/include/LICENSE', 'tensorflow/THIRD_PARTY_NOTICES.txt']
with zipfile.ZipFile(sys.argv[1]) as z:
    names = [n for n in z.namelist() if any(fnmatch.fnmatch(n, w) for w in wanted)]
    if 'tensorflow/libtensorflow_cc.so.2' not in names:
        sys.exit(1)
    for n in names:
        z.extract(n, sys.argv[2])
PY

deps=$PKG/deps
rm -rf "$deps" && mkdir -p "$deps/lib" "$deps/include"
# Stripped of debug symbols (815 MB → ~600 MB); the addon links the names its binding.gyp asks for.
strip --strip-unneeded -o "$deps/lib/libtensorflow_cc.so.2" "$x/tensorflow/libtensorflow_cc.so.2" 2>/dev/null || cp "$x/tensorflow/libtensorflow_cc.so.2" "$deps/lib/"
strip --strip-unneeded -o "$deps/lib/libtensorflow_framework.so.2" "$x/tensorflow/libtensorflow_framework.so.2" 2>/dev/null || cp "$x/tensorflow/libtensorflow_framework.so.2" "$deps/lib/"
ln -s libtensorflow_cc.so.2 "$deps/lib/libtensorflow.so"
ln -s libtensorflow_cc.so.2 "$deps/lib/libtensorflow.so.2"
ln -s libtensorflow_framework.so.2 "$deps/lib/libtensorflow_framework.so"
# tfjs-node's install script skips its download when this file exists.
ln -s libtensorflow_cc.so.2 "$deps/lib/libtensorflow.so.2.9.1"
cp -r "$x/tensorflow/include/." "$deps/include/"
cp "$x/tensorflow/include/LICENSE" "$deps/lib/LICENSE"
cp "$x/tensorflow/THIRD_PARTY_NOTICES.txt" "$deps/lib/THIRD_PARTY_NOTICES.txt"
echo "TensorFlow C library from $(basename "$wheel") (Apache-2.0: LICENSE, THIRD_PARTY_NOTICES.txt)" >"$deps/lib/SOURCE"
rm -rf "$x"

say "building the addon from source (node-gyp against this Node's headers)"
# custom-binary.json naming only a tf-lib makes the install script build instead of fetching a binary.
echo '{"tf-lib": "file:///dev/null"}' >"$PKG/scripts/custom-binary.json"
nodedir=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")
if ! (cd "$PKG" && PATH="$PWD/node_modules/.bin:$PWD/../../.bin:$PATH" npm_config_nodedir=${npm_config_nodedir:-$nodedir} node scripts/install.js) >"$CACHE/build.log" 2>&1; then
  tail -20 "$CACHE/build.log" >&2
  fail "building the tfjs-node addon failed (log: $CACHE/build.log)"
fi
check || fail "the addon was built but does not work (log: $CACHE/build.log)"
posix_addon
