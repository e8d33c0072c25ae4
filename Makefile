# delos-ref: two commands on a fresh machine with python3 and make.
#   make up    set everything up and start a local cluster (foreground, Ctrl-C stops it)
#   make test  set everything up and run the default test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: up down test test-slow install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall when the packaging metadata changes.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

up: $(STAMP)
	$(BIN)/delos-ref up $(ARGS)

down: $(STAMP)
	$(BIN)/delos-ref down $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis *.egg-info
