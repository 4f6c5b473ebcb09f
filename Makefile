# Everyday commands. `make dev` and `make test` are the README's quick start.
SHELL := /bin/bash
UV_VERSION := 0.13.8
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
RUN := $(UV) run --frozen

.PHONY: install dev test test-fast contract faults fmt inventory openapi migrate seed cron bench capacity help

help:  ## list the targets
	@grep -E '^[a-z][a-z -]*:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

install:  ## create .venv from the lock (installs uv first if missing)
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv==$(UV_VERSION)"
	@$(UV) sync --frozen --quiet

dev: install  ## run every unit on http://127.0.0.1:8080 (PORT overrides; embedded services if unset)
	$(RUN) python -m infra.local.dev

test: install  ## lint, types, bandit, derived-file drift, then every test on real PostgreSQL/Redis
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy
	$(RUN) bandit -q -c pyproject.toml -r shared functions infra
	$(RUN) python -m infra.generate --check
	$(RUN) pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

test-fast: install  ## lint, types, then the tests that need no tool environment, browser or subprocess stack
	$(RUN) ruff check .
	$(RUN) mypy
	$(RUN) pytest -n 2 --dist loadgroup -m "not slow and not browser and not tools" $(PYTEST_ARGS)

contract: install  ## schemathesis against the live API (every operation, three roles, stateful)
	$(RUN) pytest -n 2 --dist loadgroup tests/test_contract.py tests/test_contract_rules.py $(PYTEST_ARGS)

faults: install  ## the fault suite's long run: outages of PostgreSQL/Redis and a kill under load
	$(RUN) python -m tests.faults

fmt: install  ## format and fix lint in place
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

inventory openapi: install  ## regenerate files derived from the registry
	$(RUN) python -m infra.generate

migrate: install  ## upgrade DATABASE_URL to the newest schema, create the first admin
	$(RUN) python -m imangor.migrate

seed: install  ## load N products (default 10000) and N/10 orders (DATABASE_URL, else make dev's database)
	$(RUN) python -m infra.local.seed --products $(or $(N),10000) --orders $$(( $(or $(N),10000) / 10 ))

cron: install  ## run scheduled job NAME now through the running make dev, print its outcome
	@$(RUN) python -m infra.local.cron $(NAME)

bench: install  ## run every benchmark (results in bench/results/, summarised in the README)
	@# HTTP load comes from wrk (a C client: the Python fallback eats the CPU it measures).
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing wrk (apt-get)"; \
	    apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; } || true; \
	  fi; \
	  command -v wrk >/dev/null 2>&1 || echo "wrk is missing (sudo apt-get install -y wrk): bench/api.py falls back to its Python client"; \
	}
	$(RUN) python bench/cold_start.py --runs 30
	$(RUN) python bench/login.py
	$(RUN) python bench/tasks.py
	$(RUN) python bench/api.py
	$(RUN) python bench/reads.py

capacity: install  ## what RPS req/s of the model's mix needs on Google Cloud (default 10000)
	$(RUN) python -m infra.capacity --rps $(or $(RPS),10000)
