# delos-ref: two commands on a fresh machine with python3 and make.
#   make up    set everything up and start a local cluster (foreground, Ctrl-C stops it)
#   make test  set everything up and run the default test suite
#   make tlc   TLC on every routine TLA+ model (needs TLC: see specs/README.md)
#   make tlc-mutants  TLC on every mutant of the specs: each must be caught
#   make browser      Debian's chromium, for the explorer's browser test (as root; .ci/run does it)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: up down test test-slow tlc tlc-mutants install clean browser

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

# TLC finds its jars through TLA2TOOLS_JAR / TLA_COMMUNITY_JAR, or a `tlc` command on PATH.
tlc: $(STAMP)
	$(BIN)/python specs/tools/run_tlc.py models $(ARGS)

tlc-mutants: $(STAMP)
	$(BIN)/python specs/tools/run_tlc.py mutants $(ARGS)

# tests/test_explorer_browser.py drives /usr/bin/chromium (Debian's package) with Playwright.
browser:
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis *.egg-info
