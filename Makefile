# Quick start: `make run` serves on :14030, `make test` runs every test. Both set up .venv once;
# the stamp files make a second run reuse it instead of reinstalling.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.stamp-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e .
	touch $@

$(VENV)/.stamp-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[dev,xtts]'
	touch $@ $(VENV)/.stamp-run

run: $(VENV)/.stamp-run
	$(BIN)/python -m sentiric_tts serve

test: $(VENV)/.stamp-test
	$(BIN)/python -m pytest

lint: $(VENV)/.stamp-test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

bench: $(VENV)/.stamp-test
	$(BIN)/python bench/bench_service.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info src/*.egg-info
