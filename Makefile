# LineageDB developer commands. `make help` lists them.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
MLMD_VENV := .venv-mlmd
MLFLOW_VENV := .venv-mlflow
HTTP_PORT ?= 5000
# LineageDB's own client on the Pythons the official one does not run on: 3.13 with the server
# extra (embedded mode) and the ml_metadata drop-in; 3.12 with the client alone (no drivers).
PYTHON313 ?= $(firstword $(wildcard /root/.pyenv/versions/3.13.*/bin/python3.13) python3.13)
PYTHON312 ?= $(firstword $(wildcard /root/.pyenv/versions/3.12.*/bin/python3.12) python3.12)
CLIENT313_VENV := .venv-client313
CLIENT312_VENV := .venv-client312
PORT ?= 8080
# pytest-xdist workers for `make test`: the suite runs twice as fast on two cores (every test
# makes its own databases, ports and temporary files).
TEST_WORKERS ?= 2
HOST ?= 0.0.0.0
DATABASE ?= sqlite:///$(CURDIR)/lineagedb.sqlite
PROTO_SOURCES := $(shell find protos -name '*.proto')
PROTO_STAMP := src/lineagedb/proto/.generated

.DEFAULT_GOAL := help
.PHONY: help install proto serve test test-fast soak lint typecheck bench bench-workers bench-scale mlmd-venv mlflow-venv client-venvs clean

help: ## List the commands
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[server,s3,dev]'
	@touch $@

$(PROTO_STAMP): $(PROTO_SOURCES) scripts/gen_protos.py $(VENV)/.installed
	$(BIN)/python scripts/gen_protos.py
	@touch $@

install: $(VENV)/.installed $(PROTO_STAMP) ## Create .venv with LineageDB installed and its gRPC code generated
proto: $(PROTO_STAMP) ## Regenerate Python code from protos/

serve: install ## Start the server on port 8080 (gRPC) and 5000 (HTTP: MLflow's port) with an embedded SQLite database
	$(BIN)/lineagedb serve --host $(HOST) --port $(PORT) --http-port $(HTTP_PORT) --database $(DATABASE)

$(MLMD_VENV)/.installed: tests/compat/requirements-mlmd.txt
	$(PYTHON) -m venv $(MLMD_VENV) || python3 -m venv $(MLMD_VENV)
	$(MLMD_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(MLMD_VENV)/bin/python -m pip install --quiet -r tests/compat/requirements-mlmd.txt
	@touch $@

mlmd-venv: $(MLMD_VENV)/.installed ## Virtualenv with the official ml-metadata client (protobuf<5)

$(MLFLOW_VENV)/.installed: tests/mlflow/requirements-mlflow.txt
	$(PYTHON) -m venv $(MLFLOW_VENV) || python3 -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(MLFLOW_VENV)/bin/python -m pip install --quiet -r tests/mlflow/requirements-mlflow.txt
	@touch $@

mlflow-venv: $(MLFLOW_VENV)/.installed ## Virtualenv with the pinned mlflow client and server (tests/mlflow, bench/mlflow.py)

CLIENT_DEPS := pyproject.toml clients/python-ml-metadata/pyproject.toml tests/pyclient/requirements-client.txt

$(CLIENT313_VENV)/.installed: $(CLIENT_DEPS) | $(PROTO_STAMP)
	$(PYTHON313) -m venv $(CLIENT313_VENV)
	$(CLIENT313_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CLIENT313_VENV)/bin/python -m pip install --quiet -r tests/pyclient/requirements-client.txt -e '.[server]'
	$(CLIENT313_VENV)/bin/python -m pip install --quiet --no-deps -e clients/python-ml-metadata
	@touch $@

$(CLIENT312_VENV)/.installed: $(CLIENT_DEPS) | $(PROTO_STAMP)
	$(PYTHON312) -m venv $(CLIENT312_VENV)
	$(CLIENT312_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CLIENT312_VENV)/bin/python -m pip install --quiet -r tests/pyclient/requirements-client.txt -e .
	$(CLIENT312_VENV)/bin/python -m pip install --quiet --no-deps -e clients/python-ml-metadata
	@touch $@

client-venvs: $(CLIENT313_VENV)/.installed $(CLIENT312_VENV)/.installed ## Virtualenvs running lineagedb.client on Python 3.13 (with embedded mode and the ml_metadata drop-in) and 3.12 (client only)

test: install mlmd-venv mlflow-venv client-venvs lint typecheck ## Run the full test suite (after lint and type checks), on two workers
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

soak: install mlmd-venv client-venvs ## Long fault and fuzz runs (RELIABILITY soak counts; tens of minutes)
	LINEAGEDB_SOAK=1 $(BIN)/python -m pytest -m soak

test-fast: install client-venvs ## Run the tests that need no official-client virtualenv
	$(BIN)/python -m pytest -m 'not compat'

lint: install ## ruff, and the layering contracts (import-linter)
	$(BIN)/ruff check src tests scripts bench clients/python-ml-metadata
	$(BIN)/ruff format --check src tests scripts bench clients/python-ml-metadata
	$(BIN)/lint-imports

typecheck: install ## mypy
	$(BIN)/mypy

bench: install mlmd-venv mlflow-venv client-venvs ## Benchmark against MLMD's own store, then auth on vs off (BENCH_ARGS=--quick | --full; see bench/README.md)
	$(BIN)/python bench/run.py $(BENCH_ARGS)
	$(BIN)/python bench/auth_overhead.py $(AUTH_BENCH_ARGS)
	$(BIN)/python bench/audit_overhead.py $(AUDIT_BENCH_ARGS)
	$(BIN)/python bench/lineage_answers.py $(LINEAGE_BENCH_ARGS)
	$(BIN)/python bench/retention.py $(RETENTION_BENCH_ARGS)
	$(BIN)/python bench/archive.py $(ARCHIVE_BENCH_ARGS)
	$(BIN)/python bench/mlflow.py $(MLFLOW_BENCH_ARGS)
	$(BIN)/python bench/client_overhead.py $(CLIENT_BENCH_ARGS)
	$(BIN)/python bench/concurrency.py $(CONCURRENCY_BENCH_ARGS)

bench-workers: install ## Throughput of --workers 1 vs 2 on PostgreSQL with 8 concurrent clients
	$(BIN)/python bench/workers.py

bench-scale: install ## Grow a store to 10^7 artifacts on PostgreSQL (10^6 on SQLite, MariaDB): load and read costs per size (BENCH_SCALE_ARGS="--max 1000000 --backends postgresql"; see bench/README.md)
	$(BIN)/python bench/scale.py $(BENCH_SCALE_ARGS)

clean: ## Remove virtualenvs and generated code
	rm -rf $(VENV) $(MLMD_VENV) $(MLFLOW_VENV) $(CLIENT313_VENV) $(CLIENT312_VENV) src/lineagedb/proto
