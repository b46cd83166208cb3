# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE ?= 1
export NO_ALBUMENTATIONS_UPDATE := 1
export DVC_NO_ANALYTICS := 1

.PHONY: install demo test

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
