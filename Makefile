# journeys: `make run` serves the API, `make test` checks everything. Both set up what they
# need first (virtualenv, pinned dependencies, generated code, tools).
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

.PHONY: help setup generate run test lint format clean

help:
	@echo "make run    set up and serve the API (REST + gRPC on 127.0.0.1:8080, gRPC on :50051)"
	@echo "make test   set up, lint and run the whole test suite"
	@echo "make lint   ruff, mypy --strict, buf lint"
	@echo "make clean  remove the virtualenv and generated code (keeps ./data)"

setup: $(VENV)/.installed $(GENERATED) $(BUF)

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
	$(BIN)/python -m grpc_tools.protoc -Iprotos -I"$$site" --include_imports \
		--descriptor_set_out=$(DESCRIPTOR) $(PROTOS) google/rpc/error_details.proto && \
	rm -rf protos/third_party && mkdir -p protos/third_party/google/api && \
	cp "$$site"/google/api/{annotations,http}.proto protos/third_party/google/api/
	touch service/gamifyhost/__init__.py service/gamifyhost/userjourneys/__init__.py \
		service/gamifyhost/userjourneys/v1/__init__.py
	touch $@

$(BUF): package.json
	# No lock file: buf 1.75.0 lists platform packages the registry lacks, which `npm ci`
	# rejects. The exact version in package.json pins buf and its linux binary.
	npm install --no-audit --no-fund --no-package-lock --loglevel=error
	touch $@

run: setup
	$(BIN)/journeys migrate
	exec $(BIN)/journeys serve --demo-key

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	cd protos && ../$(BUF) lint

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
	$(BIN)/pytest -n $(PYTEST_WORKERS)

clean:
	rm -rf $(VENV) service/gamifyhost gateway/build protos/third_party node_modules \
		.mypy_cache .ruff_cache .pytest_cache .hypothesis
