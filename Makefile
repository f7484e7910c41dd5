# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# PyFlink pins old pyarrow/numpy: it gets its own environment, with payrecon's pure modules.
FLINK_VENV := .venv-flink
FLINK_STAMP := $(FLINK_VENV)/.installed-stamp
# The back-office's JS (htmx, Chart.js) from the npm registry, pinned; gitignored.
WEB_VENDOR := src/payrecon/web/static/vendor
HTMX_VERSION := 2.0.11
CHARTJS_VERSION := 4.6.1

.PHONY: demo test unit lint fmt services bench clean flink-env web-assets

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

$(FLINK_STAMP): requirements-flink.txt pyproject.toml
	$(PYTHON) -m venv $(FLINK_VENV)
	$(FLINK_VENV)/bin/python -m pip install -q -r requirements-flink.txt
	$(FLINK_VENV)/bin/python -m pip install -q --no-deps -e .
	touch $(FLINK_STAMP)

flink-env: $(FLINK_STAMP)

# `npm pack` fetches the published tarballs; without npm the pages work, minus charts.
$(WEB_VENDOR)/.stamp:
	@mkdir -p $(WEB_VENDOR)
	@if command -v npm >/dev/null 2>&1; then \
	  tmp=$$(mktemp -d) && \
	  (cd $$tmp && npm pack --silent htmx.org@$(HTMX_VERSION) chart.js@$(CHARTJS_VERSION) >/dev/null && \
	   for t in *.tgz; do tar xzf $$t; mv package $${t%.tgz}; done) && \
	  cp $$tmp/htmx.org-$(HTMX_VERSION)/dist/htmx.min.js $(WEB_VENDOR)/ && \
	  cp $$tmp/chart.js-$(CHARTJS_VERSION)/dist/chart.umd.min.js $(WEB_VENDOR)/ && \
	  rm -rf $$tmp && touch $@; \
	else echo "web-assets: npm not found; the back-office runs without charts" >&2; fi

web-assets: $(WEB_VENDOR)/.stamp

demo: $(STAMP) web-assets
	$(BIN)/payrecon demo

services:
	bash scripts/services.sh

# The whole suite against real PostgreSQL and MariaDB, then lint and types.
test: $(STAMP) $(FLINK_STAMP) services web-assets
	$(BIN)/python -m pytest
	$(MAKE) lint

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: $(STAMP)
	$(BIN)/python bench/batch.py --rows 1000000

clean:
	rm -rf $(VENV) $(FLINK_VENV) .payrecon .pytest_cache .mypy_cache .ruff_cache
