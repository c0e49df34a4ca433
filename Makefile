# Every target creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: demo test test-quick lint fmt bench bench-quick screenshots clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

## demo: generate the example manifest offline (placeholder provider) into ./assets
demo: $(VENV)/.installed
	$(BIN)/assetgen run examples/manifest.csv --provider placeholder --store assets --ipm 600

## test: lint, then the whole test suite
test: $(VENV)/.installed-test lint
	$(BIN)/pytest

## test-quick: the same without the slow end-to-end tests (a local loop; CI runs everything)
test-quick: $(VENV)/.installed-test lint
	$(BIN)/pytest -m "not slow"

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: $(VENV)/.installed-test
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## bench: every benchmark in full (each under 10 minutes on 2 cores); numbers in bench/RESULTS.md
bench: $(VENV)/.installed-test
	$(BIN)/python bench/dispatch_rate.py
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/renditions.py
	$(BIN)/python bench/plan_scale.py --rows 100000
	$(BIN)/python bench/catalog_scale.py
	$(BIN)/python bench/cost_accuracy.py
	$(BIN)/python bench/ledger.py
	$(BIN)/python bench/provenance.py

## bench-quick: the same, small (each under a minute)
bench-quick: $(VENV)/.installed-test
	$(BIN)/python bench/dispatch_rate.py --quick
	$(BIN)/python bench/overhead.py --quick
	$(BIN)/python bench/renditions.py --quick
	$(BIN)/python bench/plan_scale.py --rows 20000
	$(BIN)/python bench/catalog_scale.py --quick
	$(BIN)/python bench/cost_accuracy.py --quick
	$(BIN)/python bench/ledger.py --quick
	$(BIN)/python bench/provenance.py --quick

## screenshots: the README's images in docs/img/ (offline; the six overlay banners need the Noto fonts, the contact sheet and review app chromium)
screenshots: $(VENV)/.installed-test
	$(BIN)/python docs/screenshots.py
	$(BIN)/python docs/progress_screenshot.py

clean:
	rm -rf $(VENV) assets build .pytest_cache .ruff_cache
