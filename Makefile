# Two commands work on a fresh clone: `make demo` and `make test` (both create .venv).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# pytest workers: the CI machine has 2 cores
JOBS ?= 2

.PHONY: all demo test lint fuzz bench clean

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,lint,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mptcp-lab demo

test: $(STAMP)
	$(PY) -m pytest -n $(JOBS) -q

lint: $(STAMP)
	$(VENV)/bin/ruff check mptcp tcpinc innerspace accecn interop tests
	$(VENV)/bin/mypy --strict

# Codec properties with >= 100 000 hypothesis examples each (long: not part of `make test`).
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -n $(JOBS) -q -m codec_fuzz -p no:cacheprovider

bench: $(STAMP)
	$(VENV)/bin/mptcp-lab bench codec

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
