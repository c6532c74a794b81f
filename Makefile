# Two commands do all the set-up on a fresh Debian/Ubuntu machine with Python 3.11:
#   make demo   install, start services, run API + worker, play rides, print what happened
#   make test   install, start the test services, then lint, type-check, layers and the suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TEST_CLUSTER_URL := redis://127.0.0.1:7100/0
TEST_MODULE_URL := redis://127.0.0.1:7200/0
TEST_ENV := DATABASE_URL=postgresql+psycopg2://root@127.0.0.1:5432/ridehail_test \
            REDIS_URL=redis://127.0.0.1:6379/15 \
            KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:19092 \
            REDIS_CLUSTER_URL=$(TEST_CLUSTER_URL) \
            REDIS_MODULE_URL=$(TEST_MODULE_URL)

.PHONY: install services services-test services-down demo test lint bench api worker module

$(BIN)/ridehail: pyproject.toml geo/native/geometry.c
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

install: $(BIN)/ridehail

services: install
	$(BIN)/ridehail services up

services-test: install
	$(TEST_ENV) $(BIN)/ridehail services up
	REDIS_URL=$(TEST_CLUSTER_URL) REDIS_CLUSTER=true $(BIN)/ridehail services redis
	REDIS_URL=$(TEST_MODULE_URL) $(BIN)/ridehail services redis

module: install   # the search module for a Redis of your own: loadmodule <the printed path>
	$(BIN)/python -c "from pathlib import Path; from geo import module; print(module.build(Path('build').resolve()))"

services-down:
	$(BIN)/ridehail services down

demo: services
	$(BIN)/ridehail demo --rides 3

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy .
	$(BIN)/lint-imports

test: services-test lint
	$(TEST_ENV) $(BIN)/pytest -q

api: services
	$(BIN)/ridehail api

worker: services
	$(BIN)/ridehail worker

bench: services-test
	$(TEST_ENV) $(BIN)/python -m benchmarks.run_all
