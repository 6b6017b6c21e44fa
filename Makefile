# PsyLens: `make demo` runs the product, `make test` runs every test. Both set up what they need
# (venv, packages, frontend build, Chromium, embedded PostgreSQL/Redis when DATABASE_URL/REDIS_URL
# are unset) and reuse it on later runs.
SHELL := /bin/bash
PYTHON_BASE ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
NODE_MODULES := frontend/node_modules/.installed
FRONTEND_BUILD := frontend/dist/index.html
FRONTEND_SOURCES := $(shell find frontend/src frontend/index.html frontend/vite.config.ts \
	frontend/tsconfig.json frontend/public -type f 2>/dev/null)
STACK := $(PY) -m backend.core.stack
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: setup demo test test-python test-frontend lint format bench chromium clean

setup: $(INSTALLED) $(FRONTEND_BUILD) chromium

$(PY):
	$(PYTHON_BASE) -m venv $(VENV)

$(INSTALLED): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

$(NODE_MODULES): frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(FRONTEND_BUILD): $(NODE_MODULES) $(FRONTEND_SOURCES)
	cd frontend && npm run build --silent

# Debian's Chromium for the browser tests (never a downloaded browser).
chromium:
	@command -v chromium >/dev/null || { \
		echo "Installing Debian's chromium…"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

demo: setup
	$(STACK) demo

test: setup
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory test-frontend
	$(STACK) run -- $(PY) -m pytest $(PYTEST_ARGS)

test-python: $(INSTALLED)
	$(STACK) run -- $(PY) -m pytest $(PYTEST_ARGS)

test-frontend: $(NODE_MODULES)
	cd frontend && npm test --silent

lint: $(INSTALLED) $(NODE_MODULES)
	$(VENV)/bin/ruff check backend worker tests bench
	$(VENV)/bin/ruff format --check backend worker tests bench
	$(STACK) run -- $(VENV)/bin/mypy backend worker
	cd frontend && npm run lint --silent

format: $(INSTALLED)
	$(VENV)/bin/ruff check --fix backend worker tests bench
	$(VENV)/bin/ruff format backend worker tests bench
	cd frontend && npm run format --silent

bench: setup
	$(STACK) run -- $(PY) bench/run_all.py $(BENCH_ARGS)

clean:
	$(STACK) down || true
	rm -rf frontend/dist
