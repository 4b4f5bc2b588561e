# Driftless: `make run` shows the main job end to end on a laptop; `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.package-lock.json

.PHONY: run test deps clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --silent

deps: $(STAMP) $(NODE_STAMP)

run: deps
	$(BIN)/python -m devtools.demo

test: deps
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q -n 4

clean:
	rm -rf $(VENV) node_modules .local

# `make bench`: every part at its default size (under 15 min on 2 cores); `make bench QUICK=1`: small sizes, a few
# minutes; BENCH_ARGS passes anything else (`make bench BENCH_ARGS="--parts fleet --fleet-apps 2000"`).
.PHONY: bench
bench: deps
	$(BIN)/python -m bench $(if $(QUICK),--quick) $(BENCH_ARGS)
