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

# Debian packages the tests use: Arm cross compiler, headless browser, Fashion-MNIST, g++ (the Ethos-N bridge).
APT_PACKAGES := gcc-arm-none-eabi libnewlib-arm-none-eabi binutils-arm-none-eabi chromium dataset-fashion-mnist gcc g++ make cmake

.PHONY: setup system-deps lint test deploy sweep bench docs clean help ethos-n-calibration

help:
	@echo "make setup | lint | test | deploy TARGET=ethos-u55 [MODEL=..] | sweep | bench | docs | clean"

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[train,tflm,report,dev]'
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

# make sweep CLUSTERS="8 16 32" TARGETS="ethos-u55-128 ethos-u85-256" [-j3]: one deploy per K,
# then a Pareto table and plot of accuracy against flash and cycles in $(BUILD)/sweep (docs/pipeline.md).
TARGETS ?= ethos-u55-128 ethos-u85-256
SWEEP_CLUSTERS := $(if $(filter command line environment,$(origin CLUSTERS)),$(CLUSTERS),8 16 32)
SWEEP_DIR := $(BUILD)/sweep
sweep: $(addprefix sweep-k,$(SWEEP_CLUSTERS))
	$(TOOLCHAIN) report --sweep $(addprefix $(SWEEP_DIR)/k,$(SWEEP_CLUSTERS)) -o $(SWEEP_DIR)
sweep-k%: setup $(if $(MODEL),,sweep-example)
	$(TOOLCHAIN) deploy $(if $(MODEL),$(MODEL),--example-dir $(BUILD)/example) $(if $(DATA),--data $(DATA)) \
	  --clusters $* $(foreach t,$(TARGETS),--target $(t)) $(if $(PROFILE),--profile $(PROFILE)) \
	  $(if $(CONFIG),--config $(CONFIG)) --build-dir $(SWEEP_DIR)/k$* --quiet
sweep-example: setup
	$(TOOLCHAIN) example -o $(BUILD)/example --quiet
.PHONY: sweep-example

# Benchmarks (docs/benchmarks.md; long without the caches in build/bench): each writes its
# benchmarks/results/<name>.json, then the docs' generated tables are rendered from those files.
bench: setup system-deps
	$(PY) benchmarks/recluster_speed.py
	$(PY) benchmarks/compile_speed.py --mobilenet
	$(PY) benchmarks/restore_clusters.py
	$(PY) benchmarks/output_aware.py
	$(PY) benchmarks/base_models.py
	$(PY) benchmarks/compression_fashion_mnist.py
	$(PY) benchmarks/rfc_table.py
	$(PY) benchmarks/deploy_time.py
	$(PY) benchmarks/sweep_scaling.py
	$(PY) benchmarks/corpus_deploy.py
	$(PY) benchmarks/fuzz_models.py
	$(PY) benchmarks/ethos_n_calibration.py
	$(PY) benchmarks/bad_inputs_table.py --write
	$(PY) benchmarks/render_docs.py

# The Ethos-N78 calibration (docs/targets.md): with Arm's support library (ETHOSN_LIBRARY=PATH, built from
# ARM-software/ethos-n-driver-stack) measure Arm's figures on the grid again; without it, re-run the model on
# the stored grid and check every point (the test suite checks a sample).
ethos-n-calibration: setup
	$(PY) benchmarks/ethos_n_calibration.py $(if $(ETHOSN_LIBRARY),--library $(ETHOSN_LIBRARY))
	ETHOSN_CALIBRATION_FULL=1 $(PY) -m pytest -q tests/test_ethos_n_calibration.py

# Re-render the generated blocks of README.md and docs/*.md from benchmarks/results/*.json
# (standard library only; tests/test_docs.py fails when a block is stale).
docs:
	$(PYTHON) benchmarks/render_docs.py

clean:
	rm -rf $(BUILD)
