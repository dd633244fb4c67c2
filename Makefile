# The two commands: `make run` (the whole stack on loopback) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv run test screenshots lint typecheck layers check bench bundle deploy clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-cli.txt requirements-dev.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "missing prerequisite: $(PYTHON) (Python 3.11)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

run: venv
	$(PY) -m infra.local.prereqs
	$(PY) -m infra.local.stack

test: venv
	$(PY) -m infra.local.prereqs --tests
	$(PY) -m pytest

# The README's pictures of the status page, taken by its browser tests.
screenshots: venv
	$(PY) -m infra.local.prereqs --tests
	SCREENSHOT_DIR=docs $(PY) -m pytest tests/ui

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: venv
	$(PY) -m mypy

# shared/'s layers (pyproject.toml, [tool.importlinter]): imports point down, no cycles.
layers: venv
	$(VENV)/bin/lint-imports --no-cache

check: lint typecheck layers

# Benchmarks print their figures and merge them into bench-results.json; not part of `make test`.
bench: venv
	@set -e; for script in tests/bench/bench_*.py; do \
		module=$$(echo "$${script%.py}" | tr / .); \
		echo "== $$module"; $(PY) -m "$$module"; \
	done

# The functions' source as Cloud Functions wants it (make deploy builds it too).
bundle: venv
	$(PY) -m infra.deploy.bundle build/functions

# Settings from the environment or deploy.env (see infra/deploy.example.env); DRY_RUN=1
# prints every command and request body instead of running them.
deploy: venv
	$(PY) -m infra.deploy $(if $(DEPLOY_ENV_FILE),--env-file $(DEPLOY_ENV_FILE))

clean:
	rm -rf $(VENV) .local-cloud .pytest_cache .mypy_cache .ruff_cache build *.egg-info
