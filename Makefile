# mnistlr — `make demo` runs the main job on the bundled sample; `make test` runs the tests.
# Both create .venv on first use and need only the package registries.
#
# Targets: demo test lint bench bench-peers completions fetch pipeline clean distclean (see README.md).
# Variables, overridable on the command line (`make pipeline MODEL=ridge L2=10`):
#   DATASET  dataset name (default mnist-sample: bundled, needs no fetch)
#   MODEL    softmax | logistic | ridge
#   L2       L2 penalty (empty: mnistlr's default for the model)
#   SEED     seed for splits, shuffles and initialisation
#   OUT      where results go (default out/)

PYTHON   ?= python3
VENV     ?= .venv
BIN      := $(VENV)/bin
OUT      ?= out
DATASET  ?= mnist-sample
MODEL    ?= softmax
L2       ?=
SEED     ?= 0
MNISTLR  := $(BIN)/mnistlr
# The data directory, asked of mnistlr itself (mnistlr/data/location.py, with the standard library
# only, so before the venv exists): $MNISTLR_DATA, else $XDG_CACHE_HOME/mnistlr, else
# ~/.cache/mnistlr, the home found as Python finds it (from the password database when HOME is
# unset). Passed to every command, so make and mnistlr agree. Asked once, when first used.
SRC_DIR  := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
DATA_DIR ?= $(eval DATA_DIR := $(or $(shell $(PYTHON) '$(SRC_DIR)/scripts/data_dir.py'),\
	$(error cannot resolve DATA_DIR (see the line above); give DATA_DIR=PATH)))$(DATA_DIR)

.PHONY: demo test lint bench bench-peers completions fetch clean distclean pipeline install dev

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
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q tests/test_layers.py

# Fashion-MNIST (60,000/10,000) is benchmarked when Debian's package is installed.
FASHION_DIR := /usr/share/datasets/fashion-mnist

bench: $(VENV)/.installed-dev
	@if [ ! -d $(FASHION_DIR) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing dataset-fashion-mnist for the Fashion-MNIST rows"; \
	    (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1 \
	    || echo "note: could not install dataset-fashion-mnist; the benchmark skips Fashion-MNIST"; \
	fi
	$(BIN)/python bench/run.py --write

# The fast peers of the softmax fit (scikit-learn-intelex, JAX + optax, PyTorch) in a venv of their
# own, so the project's dependencies stay as they are; bench/run.py uses it when present.
# torch==2.13.0 is the CPU build (plain `torch` pulls a multi-GB CUDA build).
PEERS_VENV ?= bench/.venv-peers
bench-peers: $(PEERS_VENV)/.installed
$(PEERS_VENV)/.installed:
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PEERS_VENV)/bin/python -m pip install --quiet numpy scikit-learn scikit-learn-intelex jax optax torch==2.13.0
	touch $@

completions: $(VENV)/.installed
	$(BIN)/python -m mnistlr.cli.completions completions

fetch: $(VENV)/.installed
	$(MNISTLR) fetch $(DATASET) --data-dir $(DATA_DIR)

# ---------------------------------------------------------------------------------------------
# A worked pipeline with real file dependencies: fetch → train → evaluate (figures, metrics) →
# predict, so `make pipeline` redoes only what changed. Each configuration gets its own folder,
# e.g. out/mnist-sample-softmax/ or out/mnist-logistic-l2_1e-4-seed1/:
#   model.joblib      the trained model                  (redone when the install changes)
#   metrics.json      `mnistlr evaluate --json`           (redone when the model changes)
#   *.png             confusion, ROC, learning curves, weight images (with metrics.json)
#   predictions.csv   labels and probabilities for the test images (redone when the model changes)

TAG     := $(if $(L2),-l2_$(L2))$(if $(filter-out 0,$(SEED)),-seed$(SEED))
RUN     := $(OUT)/$(DATASET)-$(MODEL)$(TAG)
FIGURES := $(addprefix $(RUN)/,confusion.png roc.png learning_curves.png weights.png)
L2_OPT  := $(if $(L2),--l2 $(L2))

ifeq ($(DATASET),mnist-sample)
# bundled with the package: nothing to fetch; predict on the sample's own test images
DATA_FILES :=
TEST_IMAGES := mnistlr/data/sample/mnist-sample-t10k-images-idx3-ubyte.gz
else
DATA_FILES  := $(addprefix $(DATA_DIR)/$(DATASET)/,train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz \
	t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz)
TEST_IMAGES := $(DATA_DIR)/$(DATASET)/t10k-images-idx3-ubyte.gz
endif
# What `predict` labels; override with any input predict reads (IDX, .npy, CSV, PNGs, a folder).
PREDICT_INPUT ?= $(TEST_IMAGES)

pipeline: $(RUN)/metrics.json $(FIGURES) $(RUN)/predictions.csv

$(DATA_FILES): | $(VENV)/.installed
	$(MNISTLR) fetch $(DATASET) --data-dir $(DATA_DIR)

$(RUN)/model.joblib: $(VENV)/.installed $(DATA_FILES)
	@mkdir -p $(RUN)
	$(MNISTLR) train --dataset $(DATASET) --data-dir $(DATA_DIR) --model $(MODEL) $(L2_OPT) \
	    --seed $(SEED) -q -o $@

# One evaluate writes the metrics and the four figures; the figures are touched after the JSON,
# so they count as up to date, and a missing figure runs the same evaluate again (in its own
# rule, not a sub-make: `make -n` then prints it and changes nothing).
EVALUATE = $(MNISTLR) evaluate $(RUN)/model.joblib --data-dir $(DATA_DIR) --plot $(RUN) --json -q \
	> $(RUN)/metrics.json.tmp && mv $(RUN)/metrics.json.tmp $(RUN)/metrics.json && touch $(FIGURES)

$(RUN)/metrics.json: $(RUN)/model.joblib
	$(EVALUATE)

$(FIGURES): $(RUN)/metrics.json
	@test -f $@ || { echo '$(EVALUATE)'; $(EVALUATE); }

$(RUN)/predictions.csv: $(RUN)/model.joblib $(PREDICT_INPUT)
	$(MNISTLR) predict $< $(PREDICT_INPUT) --proba -q -o $@

# clean: results and build junk (keeps .venv, so the next make is quick); distclean: .venv too.
clean:
	rm -rf $(OUT) build dist *.egg-info .pytest_cache .ruff_cache .hypothesis
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
