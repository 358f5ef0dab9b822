# Quick start: `make bench` runs the main job, `make test` the tests. Each creates .venv on first use.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	# setuptools warns about folders named like the package on every editable install; tfperf names one itself
	# when it shadows the package, so that one warning is filtered by its text
	PYTHONWARNINGS="ignore:Editable installation:UserWarning" $(VENV)/bin/python -m pip install -q -e ".[dev]"
	rm -f $(VENV)/.installed-* && touch $@

.PHONY: bench test setup lint
setup: $(STAMP)

bench: $(STAMP)
	$(VENV)/bin/pytest bench --benchmark-only $(ARGS)

test: $(STAMP)
	$(VENV)/bin/pytest tests $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/mypy

# The installed route, as a user gets it: the built wheel (not editable) in a fresh environment, run from an empty
# folder holding only the example copied there (.ci/run runs this after the main job).
INSTALLED := build/installed
.PHONY: installed
installed: $(STAMP)
	rm -rf build/wheel $(INSTALLED)
	$(VENV)/bin/python -m pip wheel -q --no-deps -w build/wheel .
	$(PY) -m venv $(INSTALLED)
	$(INSTALLED)/bin/python -m pip install -q build/wheel/tfperf-*.whl
	set -e; here=$$(pwd); dir=$$(mktemp -d); trap 'rm -rf "$$dir"' EXIT; cd "$$dir"; \
	  cp "$$here/examples/text_classification.py" .; mkdir -p tfperf/docs; \
	  PATH="$$here/$(INSTALLED)/bin:$$PATH"; \
	  tfperf list | tail -n 3; \
	  tfperf run text_classification.py --size smoke --run-id example; \
	  pytest --benchmark-only --tfperf-scenarios text_classification.py --tfperf-size smoke --tfperf-no-profile \
	    --tfperf-run-id pytest-route -k naive -q; \
	  ls results/example/report.html results/pytest-route/benchmarks.json
