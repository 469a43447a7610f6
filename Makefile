# journeys: `make run` serves the API, `make test` checks everything. Both set up what they
# need first: `make run` only Python's (virtualenv, pinned dependencies, generated code);
# `make test`, `make lint` and `make run-postgres` also their tools (buf, PostgreSQL, Chromium).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PROTOS := $(sort $(wildcard protos/gamifyhost/userjourneys/v1/*.proto))
GENERATED := service/gamifyhost/.generated
DESCRIPTOR := gateway/build/user_journeys.binpb
BUF := node_modules/.bin/buf
PYTEST_WORKERS ?= 2
OPENAPI := gateway/build/openapi.json
# `make dist` writes the client wheel here (staging its sources in CLIENT_BUILD).
DIST ?= dist
CLIENT_BUILD ?= build/client-python
SERVER_BUILD ?= build/server

.PHONY: help setup runtime generate postgres chromium run run-postgres test lint format clean dist wheel

help:
	@echo "make run    set up and serve the API (REST + gRPC on 127.0.0.1:8080, gRPC on :50051)"
	@echo "make run-postgres   the same on a local PostgreSQL cluster under ./data/postgres"
	@echo "make test   set up, lint and run the whole test suite"
	@echo "make lint   ruff, mypy --strict, buf lint"
	@echo "make fuzz   the hardening suite with the long hypothesis profile"
	@echo "make dist   build the Python client wheel (journeys-client) into dist/"
	@echo "make wheel  build the server wheel (journeys) into dist/"
	@echo "make bench  benchmarks vs same-run baselines (bench-quick: under 2 minutes)"
	@echo "make bench-offers  the learning offer engine in a 60-day simulation"
	@echo "make clean  remove the virtualenv and generated code (keeps ./data)"

# Everything: what the server needs, and every tool of lint and test.
setup: runtime $(BUF) postgres chromium

# What `journeys serve` needs, from Python alone (no npm, no system packages).
runtime: $(VENV)/.installed $(GENERATED) $(OPENAPI)

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check pip==26.3
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

# Generated code is never committed or edited: it is rebuilt whenever a proto changes.
generate: $(GENERATED)

$(GENERATED): $(PROTOS) $(VENV)/.installed
	rm -rf service/gamifyhost gateway/build
	mkdir -p gateway/build
	site=$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') && \
	$(BIN)/python -m grpc_tools.protoc -Iprotos -I"$$site" \
		--python_out=service --grpc_python_out=service \
		--plugin=protoc-gen-mypy=$(BIN)/protoc-gen-mypy \
		--plugin=protoc-gen-mypy_grpc=$(BIN)/protoc-gen-mypy_grpc \
		--mypy_out=service --mypy_grpc_out=service $(PROTOS) && \
	$(BIN)/python -m grpc_tools.protoc -Iprotos -I"$$site" --include_imports --include_source_info \
		--descriptor_set_out=$(DESCRIPTOR) $(PROTOS) google/rpc/error_details.proto && \
	rm -rf protos/third_party && mkdir -p protos/third_party/google/api && \
	cp "$$site"/google/api/{annotations,field_behavior,http,httpbody}.proto protos/third_party/google/api/
	touch service/gamifyhost/__init__.py service/gamifyhost/userjourneys/__init__.py \
		service/gamifyhost/userjourneys/v1/__init__.py
	touch $@

# The OpenAPI document of the REST surface, generated from the descriptor set's google.api.http
# annotations and comments (never committed, like the code above). Envoy serves it, as is and
# without a key, at /v1/user-journeys/openapi.json.
$(OPENAPI): $(GENERATED) $(wildcard service/journeys/gateway/*.py) service/journeys/usecases/validation.py
	$(BIN)/python -m journeys.gateway.openapi $(DESCRIPTOR) $@

# The Python client as a wheel (clients/python): the generated messages, stubs and type stubs,
# nothing of the server.
dist: $(GENERATED)
	rm -rf $(CLIENT_BUILD) && mkdir -p $(CLIENT_BUILD)/src
	cp clients/python/pyproject.toml clients/python/README.md $(CLIENT_BUILD)/
	cp -R service/gamifyhost $(CLIENT_BUILD)/src/
	rm -f $(CLIENT_BUILD)/src/gamifyhost/.generated
	find $(CLIENT_BUILD)/src -name __pycache__ -prune -exec rm -rf {} +
	touch $(CLIENT_BUILD)/src/gamifyhost/py.typed
	$(BIN)/pip wheel --quiet --disable-pip-version-check --no-deps --wheel-dir $(DIST) $(CLIENT_BUILD)
	@ls $(DIST)/journeys_client-*.whl

# The server as a wheel (journeys), for a normal install anywhere: its package with the
# generated code and, as package data, the gateway's files (staged in SERVER_BUILD).
wheel: $(GENERATED) $(OPENAPI)
	rm -rf $(SERVER_BUILD) && mkdir -p $(SERVER_BUILD)/service/journeys/_gateway/build
	cp pyproject.toml README.md $(SERVER_BUILD)/
	cp -R service/journeys service/gamifyhost $(SERVER_BUILD)/service/
	rm -f $(SERVER_BUILD)/service/gamifyhost/.generated
	cp gateway/envoy.yaml.tmpl gateway/envelope.lua $(SERVER_BUILD)/service/journeys/_gateway/
	cp $(DESCRIPTOR) $(OPENAPI) $(SERVER_BUILD)/service/journeys/_gateway/build/
	find $(SERVER_BUILD) -name __pycache__ -prune -exec rm -rf {} +
	$(BIN)/pip wheel --quiet --disable-pip-version-check --no-deps --wheel-dir $(DIST) $(SERVER_BUILD)
	@ls $(DIST)/journeys-*.whl

$(BUF): package.json
	# No lock file: buf 1.75.0 lists platform packages the registry lacks, which `npm ci`
	# rejects. The exact version in package.json pins buf and its linux binary.
	npm install --no-audit --no-fund --no-package-lock --loglevel=error
	touch $@

# PostgreSQL's own programs (initdb, pg_ctl): every API test also runs on a throw-away
# cluster, and `make run-postgres` keeps one under ./data/postgres. Installed if missing.
postgres:
	@$(PYTHON) scripts/pgcluster.py bindir >/dev/null || { \
		echo "PostgreSQL not found: installing it with apt-get"; \
		sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$sudo apt-get update && \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql && \
		$(PYTHON) scripts/pgcluster.py bindir; }

# A real browser for the CORS test (tests/api/test_browser.py). Installed if missing.
chromium:
	@command -v chromium >/dev/null || { \
		echo "Chromium not found: installing it with apt-get"; \
		sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$sudo apt-get update && \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

run: runtime
	$(BIN)/journeys migrate
	exec $(BIN)/journeys serve --demo-key

# Starts the cluster (created on first use), migrates, serves; stops the cluster afterwards.
run-postgres: runtime postgres
	exec $(BIN)/python scripts/pgcluster.py run data/postgres -- \
		bash -c '$(BIN)/journeys migrate && exec $(BIN)/journeys serve --demo-key'

lint: runtime $(BUF)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	cd protos && ../$(BUF) lint

format: runtime
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint postgres chromium
	$(BIN)/pytest -n $(PYTEST_WORKERS)

# The hardening suite (tests/hardening) with the long hypothesis profile: many more, randomized
# examples than `make test` runs (a failure prints a blob to reproduce it).
.PHONY: fuzz
fuzz: runtime postgres
	JOURNEYS_FUZZ_PROFILE=long $(BIN)/pytest -n $(PYTEST_WORKERS) tests/hardening

clean:
	rm -rf $(VENV) service/gamifyhost gateway/build protos/third_party node_modules build dist \
		.mypy_cache .ruff_cache .pytest_cache .hypothesis

# Benchmarks (bench/, README "Performance"): speed and memory as ratios to baselines measured in
# the same run; the table goes to stdout and bench/results/latest.{md,json}. h2load (Debian's
# nghttp2-client) is the load generator, installed with apt-get when missing; py-spy (pinned)
# is the profiler used on missed targets.
.PHONY: bench bench-quick bench-offers bench-tools

bench: bench-tools
	$(BIN)/python -m bench

bench-quick: bench-tools
	$(BIN)/python -m bench --quick

# The learning offer engine in a simulated population (bench/offers.py, README "Offer engine
# simulator"): claims per offer of the learned policy, the fixed priority and an oracle.
bench-offers: runtime
	$(BIN)/python -m bench.offers

bench-tools: runtime postgres
	@command -v h2load >/dev/null || { \
		echo "h2load not found: installing nghttp2-client with apt-get"; \
		sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$sudo apt-get update && \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y nghttp2-client; }
	@[ -x $(BIN)/py-spy ] || $(BIN)/pip install --quiet --disable-pip-version-check py-spy==0.4.3
