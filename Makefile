# Everything bootstraps from nothing: `make test` on a fresh clone creates the
# venv, installs the project with its test extras, and runs the suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
CERTS  := certs

.PHONY: help venv test test-deps lint protos certs run-server run-client demo bench bench-quick clean

help:
	@echo "make demo        start a server, run the client against it, show the handshake"
	@echo "make test-deps   .venv, and the Debian packages the tests drive (root or sudo; .ci/test-peers.txt)"
	@echo "make test        run the test suite (bootstraps .venv)"
	@echo "make lint        ruff + mypy --strict (the package and tests/)"
	@echo "make protos      regenerate shared/grpc's protobuf modules from its .proto files"
	@echo "make certs       create the demo PKI under $(CERTS)/ (keeps what exists)"
	@echo "make run-server  serve on the address in mtls.toml (Ctrl-C to stop)"
	@echo "make run-client  connect to it and exchange a few lines"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,dev]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

# The peers nobody here wrote (nginx, HAProxy, redis, Chromium, ...; .ci/test-peers.txt): apt-get
# installs the missing ones. Tests never install anything: without a peer they skip saying which
# package to install, and fail under CI=true.
test-deps: $(STAMP)
	bash .ci/test-deps

# mypy --strict checks the package as it installs (mtls_ref.server, ...), and tests/: a link tree
# under build/ maps the top-level folders to that name, as pyproject's package-dir does.
TYPECHECK := build/typecheck/mtls_ref

lint: $(STAMP)
	$(BIN)/ruff check shared server client tests
	mkdir -p $(TYPECHECK)
	for part in server client shared; do ln -sfn ../../../$$part $(TYPECHECK)/$$part; done
	$(BIN)/mypy

# shared/grpc/*_pb2.py(i) from the .proto files beside them, with grpcio-tools' protoc (a test
# extra); commit the result. tests/test_grpc_protos.py fails while they differ.
protos: $(STAMP)
	$(BIN)/python -m tests.support.protos

certs: $(STAMP)
	$(BIN)/mtls-certs demo

# ARGS: extra flags, e.g. `make run-server ARGS=--record-handshakes` (see docs/browser.md).
run-server: certs
	$(BIN)/mtls-server $(ARGS)

run-client: certs
	$(BIN)/mtls-client $(ARGS)

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache *.egg-info

demo: certs
	$(BIN)/python -P -m mtls_ref.client.demo

# The benchmark is not part of `make test` (it takes minutes); it runs nginx and HAProxy, which
# test-deps installs. See docs/performance.md.
bench: test-deps
	$(BIN)/python -m tests.bench

bench-quick: test-deps
	$(BIN)/python -m tests.bench --quick
