# attrib: the two set-up commands of the README are `make demo` and `make test`.
# Both create the project venv (PyTorch 2.11.0 wheel = libtorch for tch 0.24.0,
# Captum 0.9.0 as the test oracle) when it is missing and reuse it otherwise.

SHELL := /bin/bash
ROOT := $(abspath .)
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.attrib-ready
FIXTURES := $(ROOT)/target/fixtures

export VIRTUAL_ENV := $(VENV)
export PATH := $(VENV)/bin:$(PATH)
export LIBTORCH_USE_PYTORCH := 1
export LD_LIBRARY_PATH := $(ROOT)/.libtorch$(if $(LD_LIBRARY_PATH),:$(LD_LIBRARY_PATH))
export ATTRIB_FIXTURES := $(FIXTURES)
export ATTRIB_PYTHON := $(PY)
# Property tests draw the same cases on every run (override to explore: PROPTEST_RNG_SEED=N make test).
export PROPTEST_RNG_SEED ?= 20261125
# Two cores on the reference machines: keep libtorch from oversubscribing them.
export OMP_NUM_THREADS ?= 2

.PHONY: venv demo test fixtures build install bench bench-captum clean-fixtures bundled-models gpu-check gpu-check-prepare

$(STAMP): requirements.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	ln -sfn "$$($(PY) -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')" $(ROOT)/.libtorch
	touch $(STAMP)

venv: $(STAMP)

build: $(STAMP)
	cargo build --release -p attrib-cli

# Install the `attrib` binary (into ~/.cargo/bin, or PREFIX/bin with `make install PREFIX=DIR`).
# Its build script bakes the absolute path of the venv's libtorch into the binary's rpath, so the
# installed binary runs without LD_LIBRARY_PATH as long as this checkout's .venv stays in place.
install: $(STAMP)
	cargo install --locked --path crates/attrib-cli $(if $(PREFIX),--root $(PREFIX))

# The main job on the bundled examples: compare every applicable method on the tch-trained digit
# CNN (one held-out digit per class), the breast-cancer MLP and the sentiment model (token
# attributions at its embedding), and write HTML + JSON reports.
demo: build
	./target/release/attrib compare --model examples/data/digits_cnn.pt --input examples/data/digits.npy \
	  --labels 0,1,2,3,4,5,6,7,8,9 --out-dir out/digits
	./target/release/attrib compare --model examples/data/breast_cancer_mlp.pt --input examples/data/breast_cancer.npy \
	  --feature-names examples/data/breast_cancer_features.json --labels malignant,benign --out-dir out/breast_cancer
	./target/release/attrib compare --model examples/data/sentiment_cnn.pt --input examples/data/sentiment.npy \
	  --vocab examples/data/sentiment_vocab.json --labels negative,positive --out-dir out/sentiment
	@echo "open out/digits/report.html, out/breast_cancer/report.html and out/sentiment/report.html"

# Retrain the bundled example models in examples/data/ with tch (deterministic, seconds; the
# sentiment and image + word models: minutes on two shared cores). Their words come from
# vaderSentiment's sdist on PyPI.
bundled-models: $(STAMP)
	$(PY) examples/python/export_datasets.py
	cargo run --release -p attrib-examples --example train_bundled
	$(PY) -m pip download --quiet --no-deps --no-binary :all: vaderSentiment==3.3.2 -d target/vader
	$(PY) examples/python/export_text.py target/vader/vaderSentiment-3.3.2.tar.gz
	cargo run --release -p attrib-examples --example train_text
	$(PY) examples/python/export_multimodal.py
	cargo run --release -p attrib-examples --example train_multimodal

# TorchScript models, inputs and Captum reference outputs used by the parity tests.
$(FIXTURES)/.stamp: $(STAMP) $(wildcard tests/python/*.py)
	@mkdir -p $(FIXTURES)
	$(PY) tests/python/make_fixtures.py $(FIXTURES)
	touch $@

fixtures: $(FIXTURES)/.stamp

# The CLI tests (crates/attrib-cli/tests) run the `attrib` binary cargo builds for the same run.
test: fixtures
	cargo test --workspace --release --no-fail-fast 2>&1 | tee target/test.log; exit $${PIPESTATUS[0]}

bench: $(STAMP)
	cargo bench -p attrib-benches

# Captum and attrib side by side on the same workloads, printing time ratios (few rounds here;
# the figures in docs/performance.md used more: see that page). Override with e.g.
# `make bench-captum BENCH_REPS=5 BENCH_ROUNDS=16`.
BENCH_REPS ?= 3
BENCH_ROUNDS ?= 2
bench-captum: $(STAMP)
	cargo build --release -p attrib-examples --examples
	cargo build --release -p attrib-cli
	$(PY) benches/side_by_side_ig.py $(BENCH_REPS)
	$(PY) benches/side_by_side_ablation.py $(BENCH_REPS) $(BENCH_ROUNDS)
	$(PY) benches/side_by_side_repeat.py $(BENCH_ROUNDS) 5

clean-fixtures:
	rm -rf $(FIXTURES)

# GPU check (issue 17): every method on CUDA against the CPU, and side-by-side timings with Captum
# on CUDA. `make gpu-check-prepare` builds what the check runs (here, no GPU needed): the CLI, the
# CUDA test binary (copied to target/release/gpu-tests/) and Captum's wheel (target/wheels/, for a
# GPU machine without Captum). `make gpu-check` runs it on this machine; on a machine without a
# CUDA device it says SKIPPED. On a lent GPU machine: carry target/release/attrib,
# target/release/gpu-tests and target/wheels, then `bash scripts/gpu-check.sh /opt/torch/.venv/bin/python`.
gpu-check-prepare: $(STAMP)
	cargo build --release -p attrib-cli
	mkdir -p target/release/gpu-tests target/wheels
	cargo test --release -p attrib-tests --test cuda --no-run --message-format=json \
	  | $(PY) -c 'import json,sys; [print(m["executable"]) for m in map(json.loads, sys.stdin) if m.get("reason")=="compiler-artifact" and m.get("executable")]' \
	  | xargs -I{} cp {} target/release/gpu-tests/cuda
	test -n "$$(ls target/wheels/captum-*.whl 2>/dev/null)" || $(PY) -m pip download --quiet --no-deps -d target/wheels captum==0.9.0

gpu-check: gpu-check-prepare
	bash scripts/gpu-check.sh $(PY)
