# Two commands for a newcomer: `make demo` and `make test`. Both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Debian packages: vtest.avi sample video; RTSP test server (GStreamer); headless Chromium; compose validation;
# promtool (prometheus) to lint every process's /metrics.
DEMO_DEBS := opencv-doc
TEST_DEBS := opencv-doc chromium python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp \
	gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly \
	gstreamer1.0-libav gstreamer1.0-tools docker-compose prometheus
PYTEST_ARGS ?=

.PHONY: demo test lint typecheck unit broker e2e audit audit-strict install install-dev debs-demo debs-test pgvector asyncapi-deps clean

demo: install debs-demo
	$(BIN)/sightline up --config demo

test: install-dev debs-test pgvector asyncapi-deps lint typecheck audit
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=15 $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-logo --no-cache

typecheck: install-dev
	$(BIN)/mypy

unit: install-dev
	$(BIN)/python -m pytest -q tests/unit $(PYTEST_ARGS)
broker: install-dev
	$(BIN)/python -m pytest -q tests/broker $(PYTEST_ARGS)
e2e: install-dev
	$(BIN)/python -m pytest -q tests/e2e $(PYTEST_ARGS)

# Known vulnerabilities in the pinned runtime dependencies (the image's requirements.lock), by
# pip-audit: a known vulnerability fails `make test`. A pin without reachable
# advisory data is listed as UNCHECKED (and fails only `make audit-strict`): see docs/reliability.md.
audit: install-dev
	$(BIN)/python scripts/audit.py
audit-strict: install-dev
	$(BIN)/python scripts/audit.py --strict

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch==2.13.0 (the [gpu] extra, used by the engine tests) resolves to the CPU wheel kept on this
# machine kind's local disk; the project downloads no model and no browser.
$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@
$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $(VENV)/.runtime $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

debs-demo:
	@bash scripts/ensure-debs.sh $(DEMO_DEBS)
debs-test:
	@bash scripts/ensure-debs.sh $(TEST_DEBS)

# The AsyncAPI initiative's own parser (npm @asyncapi/parser, pinned by its package-lock.json) checks
# `sightline schema export --asyncapi` in the tests. Node and npm from Debian unless a node with npm is there.
ASYNCAPI := scripts/asyncapi
asyncapi-deps: $(ASYNCAPI)/node_modules/.package-lock.json
$(ASYNCAPI)/node_modules/.package-lock.json: $(ASYNCAPI)/package-lock.json
	@command -v npm >/dev/null || bash scripts/ensure-debs.sh nodejs npm
	npm ci --prefix $(ASYNCAPI) --no-audit --no-fund --loglevel=error
# pgvector into the local PostgreSQL (search's vector index), built from ../shared/vendor when missing.
pgvector:
	@bash scripts/ensure-pgvector.sh

clean:
	rm -rf $(VENV) data artifacts .pytest_cache .mypy_cache .ruff_cache $(ASYNCAPI)/node_modules
