# e5-tfjs — every target installs what it needs first (npm ci when package-lock.json changed).
#
#   make demo           the model card's example: embed 2 queries + 2 passages, print the score matrix
#   make native         make @tensorflow/tfjs-node (the native 'tensorflow' backend) work here, offline too
#   make test           install, build, make native (where it can), run the whole suite (wasm), then the
#                       engine/parity/hook/inspection/CLI suites on tensorflow (the parity ones twice: also on
#                       oneDNN's AVX2 kernels) and the engine suites on cpu
#   make test-deploy    deploy/slurm run for real on a one-node Slurm cluster (Slurm and munge from apt)
#   make reference-env  the Python reference stack (torch CPU, transformers, sentence-transformers) in
#                       .cache/reference-env, pinned in test/parity/requirements.txt; made once, re-made when the pins change
#   make parity         regenerate models + transformers references live and compare
#   make parity-large   the same on the full e5-large shape (1.34 GB random-weight folder), + sentence-transformers
#   make explain-large  e5 explain's attributions on the e5-large shape vs the float64 PyTorch reference (N = 4)
#   make golden         rewrite the committed golden files in test/golden/ (from transformers)
#   (REFERENCE_PYTHON=/usr/bin/python3 make parity: Debian's python3-torch instead, plain-torch reference)
#   make bench          engine vs PyTorch (and onnxruntime when installed), one process run, alternating
#   make bench-env      the onnxruntime peers' Python (reference pins + onnx, onnxruntime) in .cache/bench-env
#   make bench-tokenizer

SHELL := /bin/bash
MODEL ?= intfloat/e5-large-unsupervised
LARGE_DIR ?= .cache/models/e5-large-random
NODE_BIN := node_modules/.bin
TS_NODE := $(NODE_BIN)/ts-node --transpile-only
CARD := test/fixtures/model-card.json
REFERENCE_ENV := .cache/reference-env
REFERENCE_REQS := test/parity/requirements.txt
BENCH_ENV := .cache/bench-env
BENCH_REQS := bench/requirements.txt
# The Python of the reference side; the venv unless given (then the venv is not made).
REFERENCE_PYTHON ?= $(REFERENCE_ENV)/bin/python
REFERENCE_DEP := $(if $(filter $(REFERENCE_ENV)/bin/python,$(REFERENCE_PYTHON)),reference-env)
RUN_REFERENCE := REFERENCE_PYTHON=$(abspath $(REFERENCE_PYTHON))
# The interpreter the venv is made from, and pip's retries: pip's default of 5 retries per package against an
# unreachable default index costs minutes where only local indexes answer; set PIP_RETRIES=5 on a flaky network.
VENV_PYTHON ?= python3
PIP_RETRIES ?= 0
# The model card's texts, as arguments for `e5 similarity`.
CARD_ARGS = $(shell node -e 'const c=require("./$(CARD)");const q=s=>"\x27"+s.replace(/\x27/g,"\x27\\\x27\x27")+"\x27";console.log([...c.queries.map(x=>"--query "+q(x)),...c.passages.map(x=>"--passage "+q(x))].join(" "))')

.PHONY: all install build native demo demo-random test test-cpu test-tensorflow reference-env bench-env parity parity-large explain-large golden bench bench-inspect bench-explain bench-tokenizer bench-ablation large-model clean

all: build

node_modules/.package-lock.json: package-lock.json package.json
	npm ci --no-audit --no-fund
	@touch $@

install: node_modules/.package-lock.json

# dist/ is remade only when a file it is built from changed (tsconfig.build.json's include, the
# viewer's assets, the build itself): `make build` twice, or make demo after make test, compiles once.
BUILD_INPUTS := $(shell node -e 'const t=require("fs").readFileSync("tsconfig.build.json","utf8").replace(/^\s*\/\/.*$$/gm,"");console.log(JSON.parse(t).include.join(" "))')
BUILD_FILES := $(shell find $(BUILD_INPUTS) -name node_modules -prune -o -type f \( -name '*.ts' -o -name '*.js' -o -name '*.css' -o -name '*.html' \) -print) \
  tsconfig.build.json tsconfig.json package.json devtools/build.ts inspect/viewer/tsconfig.json
dist/cli/main.js: $(BUILD_FILES) | install
	$(TS_NODE) devtools/build.ts
	@touch $@

build: dist/cli/main.js

# Offline (the hub unreachable, nothing cached) the default model falls back to the generated
# e5-large-shaped folder, saying so: the same pipeline, meaningless scores.
DEFAULT_MODEL := intfloat/e5-large-unsupervised
demo: build
	@bin/e5 similarity --model $(MODEL) $(CARD_ARGS) || { [ "$(MODEL)" = "$(DEFAULT_MODEL)" ] && \
	  echo "make demo: $(MODEL) could not be loaded (above); running the same pipeline on a generated random-weight folder of its exact shape (make demo-random: the scores are meaningless)" >&2 && \
	  $(MAKE) --no-print-directory demo-random; }

# The same pipeline on the random-weight e5-large-shaped folder (scores are meaningless, the run is real).
demo-random: build $(LARGE_DIR)/model.safetensors
	bin/e5 similarity --model $(LARGE_DIR) $(CARD_ARGS)

# tfjs-node from its own install where its download works, else built from a tensorflow-cpu wheel
# (TF_WHEEL=path, or one pip fetches); see scripts/native.sh. Idempotent; re-run after npm ci.
native: install
	@bash scripts/native.sh

NO_REFERENCE := make test: no Python reference stack here (above: why); the tests that need it skip and say so
test: build
	@$(MAKE) --no-print-directory native || echo "make test: no native backend here (above: why); the tensorflow suites will be skipped, wasm and cpu run"
	@$(if $(REFERENCE_DEP),$(MAKE) --no-print-directory reference-env || echo "$(NO_REFERENCE)",true)
	$(NODE_BIN)/mocha 'test/**/*.test.ts'
	$(MAKE) --no-print-directory test-tensorflow
	$(MAKE) --no-print-directory test-cpu

# The engine, parity, hook/inspection and CLI suites once more on tensorflow (skipped, saying so, where
# tfjs-node does not load). Not backend.test (wasm and cpu kernels) nor eval-engine, which asserts
# that a row's embedding is the same in any batch: oneDNN's GEMM blocking moves with the row count,
# so on tensorflow the last bits do. eval-ablation runs here for the compiled heads chain (a per-row mask
# as a graph input); its bit-level checks take the embedding tolerance on tensorflow.
TF_SUITES := test/engine/model.test.ts test/engine/parity.test.ts test/engine/sublayer-parity.test.ts test/inspect/analysis.test.ts \
  test/cli/inspect.test.ts test/cli/cli.test.ts test/engine/native.test.ts test/engine/graph.test.ts \
  test/eval/ablation.test.ts test/e5/explain.test.ts test/cli/explain.test.ts test/engine/bf16.test.ts test/engine/background.test.ts
# The numerical ones run a second time on oneDNN's AVX2 kernels (ONEDNN_MAX_CPU_ISA): oneDNN picks
# kernels per CPU, so the last bits differ between machines of our kind, and a tolerance tighter than
# the documented one (test/support/tolerance.ts) fails here rather than on someone else's machine.
TF_PARITY_SUITES := test/engine/parity.test.ts test/engine/sublayer-parity.test.ts test/inspect/analysis.test.ts test/engine/graph.test.ts test/engine/model.test.ts test/cli/cli.test.ts
test-tensorflow: install
	@if node scripts/native-check.js >/dev/null 2>&1; then \
	  E5_TEST_BACKEND=tensorflow $(NODE_BIN)/mocha $(TF_SUITES) && \
	  echo "make test-tensorflow: the parity suites again on oneDNN's AVX2 kernels (ONEDNN_MAX_CPU_ISA=AVX2)" && \
	  ONEDNN_MAX_CPU_ISA=AVX2 E5_TEST_BACKEND=tensorflow $(NODE_BIN)/mocha $(TF_PARITY_SUITES); \
	else echo "make test-tensorflow: SKIPPED — @tensorflow/tfjs-node does not load here; run 'make native' (it says what is missing)"; fi

# Everything must pass on the cpu backend too: the engine suites once more on it.
test-cpu: install
	E5_TEST_BACKEND=cpu $(NODE_BIN)/mocha test/engine/model.test.ts test/engine/parity.test.ts test/engine/sublayer-parity.test.ts test/engine/heap.test.ts

# deploy/slurm on a real one-node Slurm cluster started under a temp folder (scripts/test-deploy.sh):
# installs Slurm and munge from apt where missing (skipped, saying so, where it cannot), ~1 min.
.PHONY: test-deploy
test-deploy: build
	@bash scripts/test-deploy.sh

$(LARGE_DIR)/model.safetensors: | install
	$(TS_NODE) devtools/generate-model.ts --preset large --sentence-transformers mean --out $(LARGE_DIR)

large-model: $(LARGE_DIR)/model.safetensors

# Built beside its final place and moved in when complete, so a failed install leaves nothing that looks usable.
$(REFERENCE_ENV)/requirements.txt: $(REFERENCE_REQS)
	rm -rf $(REFERENCE_ENV) $(REFERENCE_ENV).tmp
	$(VENV_PYTHON) -m venv $(REFERENCE_ENV).tmp
	PIP_RETRIES=$(PIP_RETRIES) $(REFERENCE_ENV).tmp/bin/python -m pip install -qq --disable-pip-version-check -r $(REFERENCE_REQS)
	mv $(REFERENCE_ENV).tmp $(REFERENCE_ENV)
	cp $(REFERENCE_REQS) $@

reference-env: $(REFERENCE_ENV)/requirements.txt
	@$(REFERENCE_ENV)/bin/python -c 'import torch, transformers, sentence_transformers as st, safetensors, numpy; \
	  print(f"reference-env: torch {torch.__version__}, transformers {transformers.__version__}, sentence-transformers {st.__version__}, safetensors {safetensors.__version__}, numpy {numpy.__version__}")'

# The same way, for bench/ort_bench.py (the ort-fp32 / ort-int8 peers); requirements.txt's -r is relative to bench/.
$(BENCH_ENV)/requirements.txt: $(BENCH_REQS) $(REFERENCE_REQS)
	rm -rf $(BENCH_ENV) $(BENCH_ENV).tmp
	$(VENV_PYTHON) -m venv $(BENCH_ENV).tmp
	PIP_RETRIES=$(PIP_RETRIES) $(BENCH_ENV).tmp/bin/python -m pip install -qq --disable-pip-version-check -r $(BENCH_REQS)
	mv $(BENCH_ENV).tmp $(BENCH_ENV)
	cp $(BENCH_REQS) $@

bench-env: $(BENCH_ENV)/requirements.txt
	@$(BENCH_ENV)/bin/python -c 'import onnx, onnxruntime as ort, torch; print(f"bench-env: onnxruntime {ort.__version__}, onnx {onnx.__version__}, torch {torch.__version__}")'

golden: install $(REFERENCE_DEP)
	$(RUN_REFERENCE) $(TS_NODE) test/parity/make-golden.ts

parity: install $(REFERENCE_DEP)
	rm -rf .cache/parity-live && mkdir -p .cache/parity-live
	$(RUN_REFERENCE) E5_GOLDEN_DIR=.cache/parity-live $(TS_NODE) test/parity/make-golden.ts
	$(RUN_REFERENCE) E5_GOLDEN_DIR=.cache/parity-live $(NODE_BIN)/mocha --grep golden test/engine/parity.test.ts test/parity/hf.test.ts

parity-large: build $(LARGE_DIR)/model.safetensors $(REFERENCE_DEP)
	$(RUN_REFERENCE) $(TS_NODE) test/parity/parity-large.ts --model $(LARGE_DIR)

# Attributions (e5 explain) on the e5-large shape against the float64 PyTorch reference, within 1e-3 × max at N = 4.
explain-large: build $(LARGE_DIR)/model.safetensors $(REFERENCE_DEP)
	$(RUN_REFERENCE) $(TS_NODE) test/parity/explain-large.ts --model $(LARGE_DIR)

bench: build $(LARGE_DIR)/model.safetensors $(REFERENCE_DEP)
	$(TS_NODE) bench/run.ts --model $(LARGE_DIR) --python $(abspath $(REFERENCE_PYTHON)) $(BENCH_ARGS)

# Issue 22's targets: e5 inspect vs e5 embed over 32 passages (whole processes), and a compiled
# forward with a head ablated vs plain (make build first: bin/e5 runs dist/).
bench-inspect: build $(LARGE_DIR)/model.safetensors
	$(TS_NODE) bench/inspect.ts --model $(LARGE_DIR) $(BENCH_ARGS)

# e5 explain's three targets on the e5-large shape (tensorflow, 2 threads) and its JVP-vs-VJP measurement.
bench-explain: build $(LARGE_DIR)/model.safetensors
	$(TS_NODE) bench/explain.ts --model $(LARGE_DIR) --threads 2 $(BENCH_ARGS)

bench-tokenizer: install
	$(TS_NODE) bench/tokenizer.ts

# Issue 24: a query-side head scan against plain embedding once per cell (bench/README.md).
bench-ablation: build $(LARGE_DIR)/model.safetensors
	$(TS_NODE) bench/ablation-scan.ts --model $(LARGE_DIR) --backend tensorflow --threads 2 $(BENCH_ARGS)

clean:
	rm -rf dist .cache/parity-live $(REFERENCE_ENV).tmp $(BENCH_ENV).tmp
