# The two set-up commands of the README: `make demo` and `make test`.
# Both create .venv and install Siyu into it on first use, so a fresh clone needs only
# python3 (>= 3.11) and make.
VENV ?= .venv
PY := $(VENV)/bin/python

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

.PHONY: demo test lint
demo: $(VENV)/.installed
	$(VENV)/bin/siyu demo

test: $(VENV)/.installed
	$(PY) -m pytest -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check siyu tests bench
	$(VENV)/bin/ruff format --check siyu tests bench
