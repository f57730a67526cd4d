# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test unit lint format images bench clean

$(BIN)/.installed: setup.cfg setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

images:
	images/build.sh seeker-demo:latest

demo: $(BIN)/.installed images
	$(BIN)/python -m seeker.cli.demo --data-dir .demo

test: $(BIN)/.installed
	$(BIN)/pytest

unit: $(BIN)/.installed
	$(BIN)/pytest tests/unit

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(BIN)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(BIN)/.installed images
	$(BIN)/python -m bench

clean:
	rm -rf .demo .pytest_cache build *.egg-info images/busybox/busybox
