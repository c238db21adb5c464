# Two commands matter: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed

.PHONY: run test lint format bench eval stage1-expected clean system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUNTIME_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[semantic]'
	touch $@

$(DEV_STAMP): pyproject.toml $(RUNTIME_STAMP)
	$(BIN)/pip install --quiet -e '.[dev,semantic]'
	touch $@

## make run: install, migrate, load the shipped surveys and serve on http://127.0.0.1:8080
run: $(RUNTIME_STAMP)
	$(BIN)/python main.py migrate
	@echo "Staff app: http://127.0.0.1:8080/staff/ (first admin: $(BIN)/python main.py user add --role admin --username NAME)"
	$(BIN)/python main.py run

## make test: install dev dependencies (and PostgreSQL/Chromium when missing), lint, run every test
## (in TEST_WORKERS processes, each with its own PostgreSQL cluster and browser)
TEST_WORKERS ?= 2
test: $(DEV_STAMP) system-deps
	$(BIN)/ruff check .
	$(BIN)/pytest -n $(TEST_WORKERS) --durations=15

system-deps:
	bash scripts/system-deps.sh

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(DEV_STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(DEV_STAMP)
	$(BIN)/python bench/bench_dispatcher.py

## make eval: recall, precision and F1 of the disclosure detector on tests/data/devset.jsonl
eval:
	$(BIN)/python -m moderation.evaluate

## make stage1-expected: re-record stage 1's screenings of tests/data/*.jsonl (after a rules change)
stage1-expected:
	PYTHONPATH=. $(BIN)/python tests/moderation/stage1_expected.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
