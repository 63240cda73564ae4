# geoseek: `make demo` sets up and runs the demo service; `make test` sets up and runs the tests.
# Everything installs from the project's own files: Python packages into .venv/, Debian
# packages (chromium for the browser tests), npm assets (OpenLayers) into geoseek/service/web/.

SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= $(abspath ../shared/data)
DEMO_DIR ?= $(abspath .demo)
HOST ?= 127.0.0.1
PORT ?= 8765

export GEOSEEK_DATA := $(DATA)

.PHONY: setup setup-python setup-system setup-web demo test test-fast clean

setup: setup-python setup-system setup-web

# Python: torch 2.13.0 (CPU) lies on local disk here; pinned exactly so nothing pulls a CUDA build.
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	# GeoCLIP's pretrained location encoder: only the wheel's weights are used (its heavy
	# requirements, transformers and a second torch, are not needed), hence --no-deps.
	$(BIN)/python -m pip install -q --no-deps geoclip==1.3.0
	$(BIN)/python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $@

setup-python: $(BIN)/.installed

# Debian's chromium for the Playwright browser tests (no browser download).
setup-system:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi; }

# OpenLayers from npm into the web page's vendor folder (served by the app; no CDN at run time).
setup-web:
	@if [ -f geoseek/service/web/package.json ]; then \
	  cd geoseek/service/web && npm install --no-audit --no-fund --loglevel=error; fi

demo: setup
	$(BIN)/python -m geoseek.demo --data $(DATA) --dir $(DEMO_DIR) --host $(HOST) --port $(PORT)

test: setup
	$(BIN)/python -m pytest -q

test-fast: setup-python
	$(BIN)/python -m pytest -q -m "not slow and not browser"

clean:
	rm -rf $(DEMO_DIR) .pytest_cache
