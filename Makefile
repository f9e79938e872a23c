# The two commands: `make up` (the whole stack) and `make test` (every test).
SHELL := /bin/bash
PY := .venv/bin/python
HASH := $(shell cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)
STAMP := .venv/.installed-$(HASH)

.PHONY: install up test lint test-unit test-api bench bench-models bench-predict bench-train bench-ingest bench-timeline gpu-check clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt scripts/bootstrap.sh
	@./scripts/bootstrap.sh

up: install  ## gateway + workers (+ a private Redis unless REDIS_URL is set), Ctrl-C stops all
	$(PY) -m launcher

test: install  ## lint, unit tests, then the API tests against real processes
	$(PY) -m ruff check .
	$(PY) -m pytest tests api_tests

lint: install
	$(PY) -m ruff check .

test-unit: install
	$(PY) -m pytest tests

test-api: install
	$(PY) -m pytest api_tests

bench: bench-models bench-predict bench-train bench-ingest bench-timeline

bench-models: install
	$(PY) -m benchmarks.bench_models

bench-predict: install
	$(PY) -m benchmarks.bench_predict

bench-train: install
	$(PY) -m benchmarks.bench_train

bench-ingest: install
	$(PY) -m benchmarks.bench_ingest --service

bench-timeline: install
	$(PY) -m benchmarks.bench_timeline

gpu-check: install  ## on a CUDA machine: every preset trains a tiny epoch per stage and predicts with CAMs
	$(PY) -m benchmarks.gpu_check

clean:
	rm -rf .run .pytest_cache
