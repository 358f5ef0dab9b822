# Quick start: `make bench` runs the main job, `make test` the tests. Each creates .venv on first use.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e ".[dev]"
	rm -f $(VENV)/.installed-* && touch $@

.PHONY: bench test setup lint
setup: $(STAMP)

bench: $(STAMP)
	$(VENV)/bin/pytest bench --benchmark-only $(ARGS)

test: $(STAMP)
	$(VENV)/bin/pytest tests $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/mypy
