# meshproof — the two commands users run first: `make certify` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TARGET ?=
PROFILE ?= nightly
REPORT_DIR ?= reports
PYTEST_ARGS ?=
MARK ?=
# The quick tier: no lab, no real servers. It runs on every core (pytest-xdist); the rest
# (lab, end-to-end, Prometheus, Locust, static checks) runs one test at a time, since two
# labs or a lab beside other work make its timings wrong.
QUICK := not lab and not e2e and not prometheus and not static and not load

.PHONY: help venv system-deps test test-fast test-lab certify bench lint typecheck clean lab-up lab-down

help:
	@echo "make certify   run the nightly profile (against the lab unless TARGET=FILE)"
	@echo "make test      run the project's own tests (unit, lab, end-to-end)"
	@echo "make test-fast run the quick tests only (no lab, no real servers)"
	@echo "make test-lab  run the rest only (MARK='e2e' or MARK='not e2e' narrows it)"
	@echo "make bench     run the benchmarks in bench/ and update docs/benchmarks.md"
	@echo "make kind-up   build two kind clusters with the mesh (needs Docker)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip >/dev/null
	@$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

system-deps:
	@bash .ci/system-deps

test: test-fast test-lab

test-fast: $(STAMP)
	$(BIN)/python -m pytest -n auto -m "$(QUICK)" $(PYTEST_ARGS)

test-lab: $(STAMP) system-deps
	$(BIN)/python -m pytest -m "not ($(QUICK))$(if $(MARK), and ($(MARK)))" $(PYTEST_ARGS)

# Without TARGET, certify brings the lab up (and down again if it started it).
certify: $(STAMP) system-deps
	@set -e; target="$(TARGET)"; started=; \
	if [ -z "$$target" ]; then \
	  target=lab; \
	  if ! $(BIN)/meshproof lab status >/dev/null 2>&1; then $(BIN)/meshproof lab up; started=1; fi; \
	fi; \
	rc=0; $(BIN)/meshproof run --target "$$target" --profile $(PROFILE) --report-dir $(REPORT_DIR) || rc=$$?; \
	if [ -n "$$started" ]; then $(BIN)/meshproof lab down >/dev/null || true; fi; \
	exit $$rc

# Every benchmark (or BENCH="name ..."), each on a lab of its own; results into docs/benchmarks.md.
bench: $(STAMP) system-deps
	$(BIN)/python -m bench --docs docs/benchmarks.md $(BENCH)

lint: $(STAMP)
	$(BIN)/ruff check src tests steps bench loadtests

typecheck: $(STAMP)
	$(BIN)/mypy

lab-up: $(STAMP) system-deps
	$(BIN)/meshproof lab up

lab-down: $(STAMP)
	$(BIN)/meshproof lab down

clean:
	rm -rf $(VENV) .meshproof reports .pytest_cache

-include clusters/kind.mk
