# Two entry points (see README): `make demo` runs the main job, `make test` runs the test suite.
# Each installs what it needs first: a virtualenv from requirements.txt, and from package-lock.json
# the local stand-ins' node packages (the anvil chain, the Solidity compiler for TestUSDT).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint install browser promtool docs

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

# docs/alerts.md is generated from the alert catalogue the apps register (a test fails when it is stale).
docs: install
	DJANGO_SETTINGS_MODULE=pgp_project.settings.local $(PY) manage.py alert_docs

# The unit tier first (no worker, chain, sandbox exchange, server or browser: its failures report
# before any of those start), then the end-to-end tier; tests/conftest.py puts every test in exactly
# one. Both always run, and either failing fails the target. Each runs on PYTEST_WORKERS processes
# (pytest-xdist; each has its own test database and queue): the end-to-end tests mostly wait on
# chains, workers and servers, so two run side by side on two cores; --dist loadfile keeps a
# file's tests, and the worker its module starts, together.
PYTEST_WORKERS ?= 2
test: lint browser promtool
	$(VENV)/bin/pytest -m unit -n $(PYTEST_WORKERS); unit=$$?; \
	$(VENV)/bin/pytest -m "not unit" -n $(PYTEST_WORKERS) --dist loadfile; end_to_end=$$?; \
	test $$unit = 0 && test $$end_to_end = 0

# The browser test drives Debian's Chromium with its ChromeDriver: installed with apt when missing
# and this user can (root, as in CI); otherwise docs/development.md says how, and the browser test says what is missing.
browser:
	@command -v chromedriver >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
		else echo "chromium/chromedriver missing and not installable here: see docs/development.md (the tests)"; fi; }

# The monitoring tests run promtool (Debian's prometheus package) on deploy/prometheus/ and a real
# /metrics scrape: installed with apt when missing and this user can; otherwise they skip (CI fails).
promtool:
	@command -v promtool >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
		else echo "promtool missing and not installable here: the monitoring tests skip (see docs/development.md)"; fi; }

# Static checks: ruff (lint and format) and mypy with django-stubs (settings: pyproject.toml).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
