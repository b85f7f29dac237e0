# Loom — developer commands. `make help` lists them.
# Only python3 (3.11) is needed up front: the first target you run installs uv (in .tools/) and the project's
# locked dependencies (in .venv/). With no DATABASE_URL / REDIS_URL set, embedded PostgreSQL and Redis are
# started and their data kept in .loom/.

.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.8
UV := .tools/bin/uv
RUN := $(UV) run --frozen --no-sync
export UV_PROJECT_ENVIRONMENT := .venv

.PHONY: help install run test check lint format openapi migrate create-admin worker serve bench clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(UV):
	@$(PYTHON) -m venv .tools
	@.tools/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

.venv/.installed: $(UV) pyproject.toml uv.lock
	@# Bytecode compiled once, as in the image (UV_COMPILE_BYTECODE): every `loom` process then starts in
	@# a few seconds even where PYTHONDONTWRITEBYTECODE is set, instead of compiling its imports each time.
	@$(UV) sync --locked --quiet --compile-bytecode
	@touch $@

install: .venv/.installed ## Install uv and the locked dependencies (.venv/)

run: install ## Run the API and the worker (embedded PostgreSQL/Redis unless configured); Ctrl-C stops
	@$(RUN) loom run

test: install ## Run the whole test suite (embedded PostgreSQL/Redis unless DATABASE_URL/REDIS_URL are set)
	@$(RUN) pytest $(PYTEST_ARGS)

check: install ## Lint (ruff), types (mypy), layer rules (import-linter) and OpenAPI drift
	@$(RUN) ruff format --check .
	@$(RUN) ruff check .
	@$(RUN) mypy
	@$(RUN) lint-imports --no-logo --no-cache
	@$(RUN) loom openapi --check

lint: check ## Alias for check

format: install ## Format and auto-fix the code
	@$(RUN) ruff format .
	@$(RUN) ruff check --fix .

openapi: install ## Write openapi/openapi.json from the code
	@$(RUN) loom openapi

migrate: install ## Apply database migrations
	@$(RUN) loom migrate

create-admin: install ## Create an admin: make create-admin EMAIL=you@example.org (asks for the password)
	@$(RUN) loom create-admin --email "$(EMAIL)"

serve: install ## Run only the API
	@$(RUN) loom serve

worker: install ## Run only the worker
	@$(RUN) loom worker

bench: install ## Run the benchmarks (ratios against a baseline measured in the same run)
	@$(RUN) python -m benchmarks

clean: ## Remove caches (keeps .venv and the embedded servers' data in .loom)
	@rm -rf .pytest_cache .mypy_cache .ruff_cache
