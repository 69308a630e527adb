# mnistlr — `make demo` runs the main job on the bundled sample; `make test` runs the tests.
# Both create .venv on first use and need only the package registries.

PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
OUT     ?= out
DATASET ?= mnist-sample
MODEL   ?= softmax
L2      ?=
SEED    ?= 0
MNISTLR := $(BIN)/mnistlr
L2_OPT  := $(if $(L2),--l2 $(L2),)

.PHONY: demo test lint bench completions fetch clean pipeline install dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamps record what was installed, redone when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	@mkdir -p $(OUT)
	$(MNISTLR) train --dataset mnist-sample --model softmax --seed $(SEED) -o $(OUT)/demo.joblib
	$(MNISTLR) evaluate $(OUT)/demo.joblib

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check mnistlr tests bench

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/run.py

completions: $(VENV)/.installed
	$(BIN)/python -m mnistlr.completions completions

fetch: $(VENV)/.installed
	$(MNISTLR) fetch $(DATASET)

# A worked pipeline with real file dependencies: train → evaluate (figures) → predict.
# `make pipeline DATASET=mnist MODEL=logistic L2=1e-4` redoes only what changed.
$(OUT)/$(DATASET)-$(MODEL).joblib: $(VENV)/.installed
	@mkdir -p $(OUT)
	$(MNISTLR) train --dataset $(DATASET) --model $(MODEL) $(L2_OPT) --seed $(SEED) -q -o $@

$(OUT)/$(DATASET)-$(MODEL)-report.json: $(OUT)/$(DATASET)-$(MODEL).joblib
	$(MNISTLR) evaluate $< --dataset $(DATASET) --json > $@.tmp && mv $@.tmp $@

pipeline: $(OUT)/$(DATASET)-$(MODEL)-report.json

clean:
	rm -rf $(OUT) build dist *.egg-info .pytest_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
