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

# Debian packages the tests use: Arm cross compiler, QEMU (a Cortex-M55 board), headless browser, Fashion-MNIST,
# g++ (the Ethos-N bridge).
APT_PACKAGES := gcc-arm-none-eabi libnewlib-arm-none-eabi binutils-arm-none-eabi qemu-system-arm chromium \
  dataset-fashion-mnist gcc g++ make cmake

.PHONY: setup system-deps lint test deploy firmware-check sweep bench docs clean help corpus-wild ethos-n-calibration

help:
	@echo "make setup | lint | test | deploy TARGET=ethos-u55 [MODEL=..] | firmware-check | sweep | bench | docs | clean"

setup: $(STAMP)

# pip prints each package as it goes: the extras hold TensorFlow (about 2.4 GB, 1-2 minutes in all).
$(STAMP): pyproject.toml constraints.txt
	@echo "creating $(VENV) (a few seconds)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@echo "installing the toolchain with the train, tflm, report, dev and distributed extras, pinned by constraints.txt (1-2 minutes)"
	$(PY) -m pip install -c constraints.txt -e '.[train,tflm,report,dev,distributed]'
	touch $@

# Installs what is missing when we are root with apt-get; otherwise the tests that
# need a package skip (or fail under CI=true) with a message naming it.
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages:$$missing (apt-get prints each one)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	  else echo "warning: missing Debian packages:$$missing (tests that need them will skip)"; fi; \
	fi

# ruff (the rules in pyproject.toml [tool.ruff]) and the package layering contracts (import-linter).
lint: setup
	$(VENV)/bin/ruff check toolchain tests benchmarks
	$(VENV)/bin/lint-imports

test: setup system-deps
	@echo "running the test suite: about 12-15 minutes on 2 cores, a dot per test"
	$(PY) -m pytest $(PYTEST_ARGS)

deploy: setup
	$(TOOLCHAIN) deploy $(if $(MODEL),$(MODEL)) $(if $(DATA),--data $(DATA)) --clusters $(CLUSTERS) \
	  $(if $(and $(PROFILE),$(filter file,$(origin TARGET))),,$(foreach t,$(TARGET),--target $(t))) \
	  $(if $(PROFILE),--profile $(PROFILE)) $(if $(CONFIG),--config $(CONFIG)) --output-dir $(BUILD)

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
# --quiet keeps parallel deploys from interleaving their stage lines: one line per point instead, as each finishes
sweep-k%: setup $(if $(MODEL),,sweep-example)
	@echo "sweep: K=$* deploying for $(TARGETS) ..."
	$(TOOLCHAIN) deploy $(if $(MODEL),$(MODEL),--example-dir $(BUILD)/example) $(if $(DATA),--data $(DATA)) \
	  --clusters $* $(foreach t,$(TARGETS),--target $(t)) $(if $(PROFILE),--profile $(PROFILE)) \
	  $(if $(CONFIG),--config $(CONFIG)) --output-dir $(SWEEP_DIR)/k$* --quiet
	@echo "sweep: K=$* done: $(SWEEP_DIR)/k$*"
sweep-example: setup
	@echo "sweep: training (or reusing) the example in $(BUILD)/example"
	$(TOOLCHAIN) example -o $(BUILD)/example --quiet
sweep-local sweep-ray: setup
	$(TOOLCHAIN) sweep $(MODEL) $(if $(DATA),--data $(DATA)) --clusters $(SWEEP_CLUSTERS) \
	  $(foreach t,$(TARGETS),--target $(t)) $(if $(PROFILE),--profile $(PROFILE)) $(if $(CONFIG),--config $(CONFIG)) \
	  --output-dir $(BUILD) --executor $(EXECUTOR) $(if $(JOBS),--jobs $(JOBS)) \
	  $(if $(and $(RAY_ADDRESS),$(filter ray,$(EXECUTOR))),--ray-address $(RAY_ADDRESS))
.PHONY: sweep-example sweep-make sweep-local sweep-ray

# Benchmarks (docs/benchmarks.md; long without the caches in build/bench): each writes its
# benchmarks/results/<name>.json, then the docs' generated tables are rendered from those files.
# Each says it starts, and prints its steps as they happen (unbuffered: its output is often a pipe).
define bench_step
@echo "bench: $(1)"
PYTHONUNBUFFERED=1 $(PY) benchmarks/$(1)
endef
bench: setup system-deps
	$(call bench_step,recluster_speed.py)
	$(call bench_step,compile_speed.py --mobilenet)
	$(call bench_step,restore_clusters.py)
	$(call bench_step,output_aware.py)
	$(call bench_step,verdict.py)
	$(call bench_step,base_models.py)
	$(call bench_step,compression_fashion_mnist.py)
	$(call bench_step,rfc_table.py)
	$(call bench_step,deploy_time.py)
	$(call bench_step,sweep_scaling.py)
	$(call bench_step,sweep_executors.py)
	$(call bench_step,finetune_strategies.py)
	$(call bench_step,corpus_deploy.py)
	$(call bench_step,fuzz_models.py)
	$(call bench_step,ethos_n_calibration.py)
	$(call bench_step,bad_inputs_table.py --write)
	$(PY) benchmarks/render_docs.py

# The Ethos-N78 calibration (docs/targets.md): with Arm's support library (ETHOSN_LIBRARY=PATH, built from
# ARM-software/ethos-n-driver-stack) measure Arm's figures on the grid again; without it, re-run the model on
# the stored grid and check every point (the test suite checks a sample).
ethos-n-calibration: setup
	$(PY) benchmarks/ethos_n_calibration.py $(if $(ETHOSN_LIBRARY),--library $(ETHOSN_LIBRARY))
	ETHOSN_CALIBRATION_FULL=1 $(PY) -m pytest -q tests/test_ethos_n_calibration.py

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
