# Quick start: `make run` serves on :14030, `make test` runs every test. Both set up .venv once;
# the stamp files make a second run reuse it instead of reinstalling.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Docker: `make up` runs the GPU service; `make up SERVICE=tts-cpu` the CPU one (profile cpu).
COMPOSE ?= docker compose
SERVICE ?= tts
# `make bench BENCH_ARGS="--requests-per-worker 12 --rounds 10"` for a longer run.
BENCH_ARGS ?=

.PHONY: run test test-unit lint bench clean build up down logs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.stamp-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e .
	touch $@

$(VENV)/.stamp-test: pyproject.toml tests/pipecat-requirements.txt | $(BIN)/python
	$(BIN)/pip install -e '.[dev,xtts]'
	$(BIN)/pip install -r tests/pipecat-requirements.txt
	$(BIN)/pip install --no-deps pipecat-ai==1.14.0  # why --no-deps: tests/pipecat-requirements.txt
	touch $@ $(VENV)/.stamp-run

run: $(VENV)/.stamp-run
	$(BIN)/python -m sentiric_tts serve

test: $(VENV)/.stamp-test
	$(BIN)/python -m pytest

# The unit tier alone (tests/unit: a fake engine, no model, server or network), in seconds.
test-unit: $(VENV)/.stamp-test
	$(BIN)/python -m pytest tests/unit -q

lint: $(VENV)/.stamp-test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/hadolint docker/Dockerfile docker/Dockerfile.cpu

bench: $(VENV)/.stamp-test
	$(BIN)/python bench/run_bench.py $(BENCH_ARGS)

build:
	$(COMPOSE) build $(SERVICE)

# ./data is created here so that it belongs to you, not to root (Docker would create it as root).
up:
	mkdir -p data
	$(COMPOSE) up -d $(SERVICE)

down:
	$(COMPOSE) --profile cpu down

logs:
	$(COMPOSE) --profile cpu logs -f

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info src/*.egg-info
