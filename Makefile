# Two commands do all the set-up on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-unit test-slow test-all lint bench guide clean reliability firmware-check

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# The main job end to end on the embedded digits data: train, export every default format, verify.
demo: $(STAMP)
	$(PY) -m cnnkeras train --data digits --out saved_models/demo --overwrite
	$(PY) -m cnnkeras export saved_models/demo --overwrite

# The demo's micro package built with its own Makefile against TFLM and run: host, and Cortex-M4/M55 under QEMU.
# Needs the TFLM sources (TFLM_ROOT=checkout, or CNNKERAS_FIRMWARE_SOURCES=folder of archives; default: the
# ../shared/firmware archives when present), gcc-arm-none-eabi, libnewlib-arm-none-eabi and qemu-system-arm.
FIRMWARE_SOURCES ?= $(abspath $(wildcard ../shared/firmware))
firmware-check: $(STAMP)
	@if [ -z "$${TFLM_ROOT:-}" ] && [ -z "$${CNNKERAS_FIRMWARE_SOURCES:-$(FIRMWARE_SOURCES)}" ]; then \
	  echo "firmware-check needs the TFLM sources: TFLM_ROOT=<tflite-micro checkout> or CNNKERAS_FIRMWARE_SOURCES=<folder of the source archives>"; exit 2; fi
	test -f saved_models/demo/model.keras || $(MAKE) demo
	CNNKERAS_FIRMWARE_SOURCES="$${CNNKERAS_FIRMWARE_SOURCES:-$(FIRMWARE_SOURCES)}" \
	  $(PY) -m cnnkeras export saved_models/demo --out saved_models/demo/firmware_check --overwrite \
	    --formats tflite_int8 micro --firmware-check --strict

# Fast suite (< 20 min on 2 cores). pytest exit 5 ("no tests ran") fails the target.
test: $(STAMP)
	$(PY) -m pytest -m "not slow" -q

# Quick unit lane (no training run, no conversion): spec, sizing, config, formats, CLI parsing, metrics, layout.
test-unit: $(STAMP)
	$(PY) -m pytest -m unit -q

# Unused / undefined / redefined names, import order, broad excepts (rules in pyproject.toml).
lint: $(STAMP)
	$(PY) -m ruff check .

test-slow: $(STAMP)
	$(PY) -m pytest -m slow -q

test-all: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/train_quality.py
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/inference.py
	$(PY) benchmarks/cli_startup.py

# Re-run every command of docs/guide.md and rewrite its outputs and pictures.
guide: $(STAMP)
	$(PY) docs/make_guide.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

# The hostile corpus in full (30-60 min on 2 cores), then docs/reliability.md regenerated from its results.
reliability: $(STAMP)
	$(PY) tests/hostile/report.py
