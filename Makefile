# delos-ref: two commands on a fresh machine with python3 and make.
#   make up    set everything up and start a local cluster (foreground, Ctrl-C stops it)
#   make test  set everything up and run the default test suite
#   make tlc   TLC on every routine TLA+ model (needs TLC: see specs/README.md)
#   make tlc-mutants  TLC on every mutant of the specs: each must be caught
#   make browser      Debian's chromium, for the explorer's browser test (as root; .ci/run does it)
#   make peers  install ZooKeeper and etcd (Debian packages) for `delos-ref bench compare`
#   make paper  `delos-ref bench paper` into docs/figures/paper/ (the full run: 15-30 min; ARGS="--quick")
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: up down test test-slow test-paper tlc tlc-mutants install clean browser peers paper

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall when the packaging metadata changes.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test,plots]'
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

# bench paper --quick end to end (a few minutes; CI runs it as its own step after make test).
test-paper: $(STAMP)
	$(BIN)/python -m pytest -m paper $(ARGS)

# TLC finds its jars through TLA2TOOLS_JAR / TLA_COMMUNITY_JAR, or a `tlc` command on PATH.
tlc: $(STAMP)
	$(BIN)/python specs/tools/run_tlc.py models $(ARGS)

tlc-mutants: $(STAMP)
	$(BIN)/python specs/tools/run_tlc.py mutants $(ARGS)

# tests/test_explorer_browser.py drives /usr/bin/chromium (Debian's package) with Playwright.
browser:
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)
# Debian's zookeeper (3.8) and etcd (3.4): the peers of `bench compare`, started by the bench
# itself on free ports (no service is enabled). Needs root (or sudo) and apt-get.
peers:
	@command -v apt-get >/dev/null || { echo "make peers: needs apt-get (Debian/Ubuntu); install ZooKeeper 3.8 and etcd 3.4 by hand" >&2; exit 1; }
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq zookeeper etcd-server etcd-client default-jdk-headless

paper: $(STAMP)
	$(BIN)/delos-ref bench paper --out docs/figures/paper $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis *.egg-info
