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

# The console's browser tests drive Debian's Chromium (and need CJK fonts to render Chinese).
CHROMIUM := $(shell command -v chromium 2>/dev/null)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint browser
demo: $(VENV)/.installed
	$(VENV)/bin/siyu demo

browser:
ifeq ($(CHROMIUM),)
	$(SUDO) apt-get update -q
	$(SUDO) apt-get install -y -q chromium fonts-noto-cjk
endif

test: $(VENV)/.installed browser
	$(PY) -m pytest -q -n auto

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check siyu tests bench
	$(VENV)/bin/ruff format --check siyu tests bench
