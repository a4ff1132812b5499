# Two entry points (see README): `make demo` runs the main job, `make test` runs the test suite.
# Each installs what it needs first: a virtualenv from requirements.txt, and from package-lock.json
# the local stand-ins' node packages (the anvil chain, the Solidity compiler for TestUSDT).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint install

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

node_modules/.installed: package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(VENV)/.installed node_modules/.installed

demo: install
	DJANGO_SETTINGS_MODULE=pgp_project.settings.local $(PY) manage.py run_demo

test: lint
	$(VENV)/bin/pytest

# Static checks: ruff (lint and format) and mypy with django-stubs (settings: pyproject.toml).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
