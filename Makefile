# Front doors: `make deploy TARGET=ethos-u55`, `make test`. See README.md; the manual is in docs/.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TOOLCHAIN := $(VENV)/bin/toolchain
STAMP := $(VENV)/.installed

# Pipeline variables (documented in docs/pipeline.md)
MODEL ?=
DATA ?=
CLUSTERS ?= 16
TARGET ?= ethos-u55
PROFILE ?=
CONFIG ?=
BUILD ?= build
PYTEST_ARGS ?=

# Debian packages the tests use: Arm cross compiler, QEMU (a Cortex-M55 board), headless browser, Fashion-MNIST.
APT_PACKAGES := gcc-arm-none-eabi libnewlib-arm-none-eabi binutils-arm-none-eabi qemu-system-arm chromium \
  dataset-fashion-mnist gcc make cmake

.PHONY: setup system-deps lint test deploy firmware-check sweep bench docs clean help corpus-wild

help:
	@echo "make setup | lint | test | deploy TARGET=ethos-u55 [MODEL=..] | firmware-check | sweep | bench | docs | clean"

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[train,tflm,report,dev,distributed]'
	touch $@

# Installs what is missing when we are root with apt-get; otherwise the tests that
# need a package skip (or fail under CI=true) with a message naming it.
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "warning: missing Debian packages:$$missing (tests that need them will skip)"; fi; \
	fi

# ruff (the rules in pyproject.toml [tool.ruff]) and the package layering contracts (import-linter).
lint: setup
	$(VENV)/bin/ruff check toolchain tests benchmarks
	$(VENV)/bin/lint-imports

test: setup system-deps
	$(PY) -m pytest $(PYTEST_ARGS)

deploy: setup
	$(TOOLCHAIN) deploy $(if $(MODEL),$(MODEL)) $(if $(DATA),--data $(DATA)) --clusters $(CLUSTERS) \
	  $(if $(and $(PROFILE),$(filter file,$(origin TARGET))),,$(foreach t,$(TARGET),--target $(t))) \
	  $(if $(PROFILE),--profile $(PROFILE)) $(if $(CONFIG),--config $(CONFIG)) --build-dir $(BUILD)

# make firmware-check [MODEL=..] [TARGET=..]: the deploy's firmware sources (model array, palette tables, reference
# decoder) built for a Cortex-M55 and run under QEMU, each table compared with the host's weights (docs/firmware.md).
firmware-check: deploy system-deps
	$(TOOLCHAIN) firmware-check $(if $(MODEL),$(MODEL)) \
	  $(if $(and $(PROFILE),$(filter file,$(origin TARGET))),,$(foreach t,$(TARGET),--target $(t))) --build-dir $(BUILD)

# make sweep CLUSTERS="8 16 32" TARGETS="ethos-u55-128 ethos-u85-256" [-j3]: one deploy per K,
# then a Pareto table and plot of accuracy against flash and cycles in $(BUILD)/sweep (docs/pipeline.md).
# EXECUTOR=make (default: make -jN runs the deploys), local (toolchain sweep: a pool of processes, JOBS at a
# time) or ray (toolchain sweep: Ray tasks on a local cluster of JOBS CPUs, or on the cluster at RAY_ADDRESS).
TARGETS ?= ethos-u55-128 ethos-u85-256
EXECUTOR ?= make
JOBS ?=
SWEEP_CLUSTERS := $(if $(filter command line environment,$(origin CLUSTERS)),$(CLUSTERS),8 16 32)
SWEEP_DIR := $(BUILD)/sweep
ifeq ($(filter $(EXECUTOR),make local ray),)
$(error EXECUTOR must be make, local or ray, not '$(EXECUTOR)')
endif
sweep: sweep-$(EXECUTOR)
sweep-make: $(addprefix sweep-k,$(SWEEP_CLUSTERS))
	@echo "executor: make $(filter -j%,$(MAKEFLAGS)) on $$(hostname)"
	$(TOOLCHAIN) report --sweep $(addprefix $(SWEEP_DIR)/k,$(SWEEP_CLUSTERS)) -o $(SWEEP_DIR)
sweep-k%: setup $(if $(MODEL),,sweep-example)
	$(TOOLCHAIN) deploy $(if $(MODEL),$(MODEL),--example-dir $(BUILD)/example) $(if $(DATA),--data $(DATA)) \
	  --clusters $* $(foreach t,$(TARGETS),--target $(t)) $(if $(PROFILE),--profile $(PROFILE)) \
	  $(if $(CONFIG),--config $(CONFIG)) --build-dir $(SWEEP_DIR)/k$* --quiet
sweep-example: setup
	$(TOOLCHAIN) example -o $(BUILD)/example --quiet
sweep-local sweep-ray: setup
	$(TOOLCHAIN) sweep $(MODEL) $(if $(DATA),--data $(DATA)) --clusters $(SWEEP_CLUSTERS) \
	  $(foreach t,$(TARGETS),--target $(t)) $(if $(PROFILE),--profile $(PROFILE)) $(if $(CONFIG),--config $(CONFIG)) \
	  --build-dir $(BUILD) --executor $(EXECUTOR) $(if $(JOBS),--jobs $(JOBS)) \
	  $(if $(and $(RAY_ADDRESS),$(filter ray,$(EXECUTOR))),--ray-address $(RAY_ADDRESS))
.PHONY: sweep-example sweep-make sweep-local sweep-ray

# Benchmarks (docs/benchmarks.md; long without the caches in build/bench): each writes its
# benchmarks/results/<name>.json, then the docs' generated tables are rendered from those files.
bench: setup system-deps
	$(PY) benchmarks/recluster_speed.py
	$(PY) benchmarks/compile_speed.py --mobilenet
	$(PY) benchmarks/restore_clusters.py
	$(PY) benchmarks/output_aware.py
	$(PY) benchmarks/verdict.py
	$(PY) benchmarks/base_models.py
	$(PY) benchmarks/compression_fashion_mnist.py
	$(PY) benchmarks/rfc_table.py
	$(PY) benchmarks/deploy_time.py
	$(PY) benchmarks/sweep_scaling.py
	$(PY) benchmarks/sweep_executors.py
	$(PY) benchmarks/finetune_strategies.py
	$(PY) benchmarks/corpus_deploy.py
	$(PY) benchmarks/fuzz_models.py
	$(PY) benchmarks/bad_inputs_table.py --write
	$(PY) benchmarks/render_docs.py

# Third-party models: downloads the mediapipe 0.10.21 wheel (pip download --no-deps, nothing installed) into
# $(BUILD)/corpus-wild, deploys its 14 float .tflite files for ethos-u55-128 and ethos-u85-256 with synthetic
# calibration, writes benchmarks/results/wild_corpus.json and re-renders the docs (docs/benchmarks.md).
corpus-wild: setup
	$(PY) benchmarks/wild_corpus.py --cache $(BUILD)/corpus-wild
	$(PYTHON) benchmarks/render_docs.py

# Re-render the generated blocks of README.md and docs/*.md from benchmarks/results/*.json
# (standard library only; tests/test_docs.py fails when a block is stale).
docs:
	$(PYTHON) benchmarks/render_docs.py

clean:
	rm -rf $(BUILD)
