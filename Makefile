# lambdamesh — the README's commands. Every target installs what it needs first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# python3.13 may be a pyenv shim that is not active; find a real 3.13 interpreter.
PYTHON313 ?= $(shell for p in python3.13 $$HOME/.pyenv/versions/3.13*/bin/python3.13 /usr/local/bin/python3.13 /usr/bin/python3.13; do \
	"$$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' >/dev/null 2>&1 && { command -v "$$p"; break; }; done)
VENV := .venv
UV := $(VENV)/bin/uv
RUN := $(VENV)/bin
EMULATOR_PYTHON := .lambdamesh/emulator/venv/bin/python
SERVICES := users catalog reviews orders payments inventory notifications

.PHONY: help setup demo up down status test browser lint typecheck unit e2e bench parity fuzz chaos load lock clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.synced: pyproject.toml uv.lock
	@test -n "$(PYTHON313)" || { echo "error: Python 3.13 not found; install it (e.g. 'pyenv install 3.13') or pass PYTHON313=/path/to/python3.13" >&2; exit 1; }
	@test -x $(UV) || { echo "==> creating $(VENV) with $(PYTHON313)"; "$(PYTHON313)" -m venv $(VENV) && $(VENV)/bin/pip install -q --disable-pip-version-check "uv==0.13.9"; }
	@echo "==> installing locked dependencies into $(VENV)"
	@UV_PYTHON_DOWNLOADS=never $(UV) sync --locked --quiet --python $(VENV)/bin/python
	@touch $@

setup: $(VENV)/.synced ## create .venv and the embedded LocalStack's virtualenv
	@$(RUN)/lambdamesh install

up: setup ## start the embedded LocalStack (or use LAMBDAMESH_ENDPOINT)
	@$(RUN)/lambdamesh up

down: $(VENV)/.synced ## stop what 'make up' started
	@$(RUN)/lambdamesh down

status: $(VENV)/.synced ## show the emulator's state
	@$(RUN)/lambdamesh status

demo: setup ## run the whole system on the embedded LocalStack and trace an order
	@$(RUN)/lambdamesh demo

lint: $(VENV)/.synced ## ruff
	@$(RUN)/ruff check .
	@$(RUN)/ruff format --check .

typecheck: setup ## mypy --strict (the LocalStack plugins against LocalStack itself)
	@$(RUN)/mypy
	@for service in $(SERVICES); do \
		MYPYPATH=functions/$$service $(RUN)/mypy functions/$$service/app.py $$(find functions/$$service/chalicelib -name '*.py') || exit 1; \
	done
	@$(RUN)/mypy --python-executable $(EMULATOR_PYTHON) infra/localstack-plugins/lambdamesh_localstack

browser: ## Debian's chromium for the dashboard's browser test (installed when missing)
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
		if ! command -v apt-get >/dev/null 2>&1; then \
			echo "warning: no chromium and no apt-get: install Chromium for the dashboard's browser test" >&2; exit 0; fi; \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		echo "==> installing chromium (Debian) for the dashboard's browser test"; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

# The e2e tier on two workers, an embedded LocalStack and a deploy each (modules kept together);
# against one LocalStack of one's own (LAMBDAMESH_ENDPOINT) the workers would share its stacks,
# so it runs on one.
E2E_WORKERS ?= 2
E2E_PARALLEL = $(if $(LAMBDAMESH_ENDPOINT),,-n $(E2E_WORKERS) --dist loadscope)

# The checks (ruff, mypy, the unit tier) run beside the e2e tier, whose workers wait on their
# emulators for about half of their time: ≈ 60 s less than one after the other on 2 cores.
# They run niced, taking the CPU the e2e tier leaves idle rather than slowing its chain of
# waits (5.6 min instead of 6.0, same machine and caches). The
# checks' output goes to a file, shown after the e2e tier's so that its progress stays readable;
# one line says when they are done and whether they passed.
test: setup browser ## ruff, mypy --strict and unit tests, beside the e2e tests
	@checks=$$(mktemp -d); trap 'kill 0' INT TERM; \
	( nice -n 10 $(MAKE) --no-print-directory -j2 lint typecheck unit > $$checks/log 2>&1; echo $$? > $$checks/status; \
	  if [ "$$(cat $$checks/status)" = 0 ]; then verdict=passed; else verdict=FAILED; fi; \
	  echo; echo "==> ruff, mypy and the unit tier $$verdict (their output follows the e2e tier's)" ) & \
	$(RUN)/pytest tests/e2e $(E2E_PARALLEL); e2e=$$?; wait; \
	echo "==> ruff, mypy and the unit tier:"; cat $$checks/log; \
	status=$$(cat $$checks/status); rm -rf $$checks; \
	test $$e2e = 0 && test $$status = 0

unit: setup ## the unit tests alone (no network, moto in process), one worker per CPU
	@$(RUN)/pytest tests/unit -n auto

e2e: setup browser ## the end-to-end tests alone, on the embedded LocalStack (or LAMBDAMESH_ENDPOINT)
	@$(RUN)/pytest tests/e2e $(E2E_PARALLEL)

parity: setup ## the parity suite alone (AWS's documented behaviour), on LAMBDAMESH_ENDPOINT if set
	@$(RUN)/pytest tests/e2e/parity -m parity

fuzz: setup ## every API route fuzzed from its OpenAPI document (LAMBDAMESH_FUZZ_EXAMPLES, default 200)
	@LAMBDAMESH_FUZZ_EXAMPLES=$${LAMBDAMESH_FUZZ_EXAMPLES:-200} $(RUN)/pytest tests/e2e/test_fuzzing.py -p no:randomly

chaos: setup ## 1 000 orders while faults are on, then every invariant checked (LAMBDAMESH_CHAOS_ORDERS)
	@$(RUN)/lambdamesh chaos --orders $${LAMBDAMESH_CHAOS_ORDERS:-1000}

load: setup ## 16 clients place orders right after every function went cold, then warm: figures printed
	@$(RUN)/lambdamesh load

bench: setup ## benchmarks with figures and ratios against a floor measured in the same run
	@$(RUN)/pytest tests/benchmarks -s -p no:randomly --timeout 1800

lock: $(VENV)/.synced ## re-resolve uv.lock and the emulator's requirements
	@$(UV) lock --python $(VENV)/bin/python
	@$(UV) pip compile --quiet --no-header --annotation-style line --python-version 3.13 \
		infra/emulator/requirements.in -o infra/emulator/requirements.txt

clean: down ## remove virtualenvs and emulator state
	rm -rf $(VENV) .lambdamesh
