# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE ?= 1
export NO_ALBUMENTATIONS_UPDATE := 1
export DVC_NO_ANALYTICS := 1

.PHONY: install demo test seeds

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

install: $(BIN)/activate
	$(BIN)/pip install --quiet -r requirements.txt -c constraints.txt
	$(BIN)/pip install --quiet --no-deps -e .

demo: install
	PATH=$(CURDIR)/$(BIN):$$PATH dvc repro
	@echo "Report: $(CURDIR)/reports/report.md"

test: install
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest

# The README's results table over removal seeds, from the cached DVC experiments
# (queue them with: dvc exp run --queue -S defend.seed=1 ...; docs in README).
seeds: install
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pipeline.experiments.seeds --min-seeds 3
