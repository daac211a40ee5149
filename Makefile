# envgen developer entry points.  `make demo` and `make test` are what the two
# Quick-start commands of README.md (`./dev demo`, `./dev test`) run; both first
# install the Debian packages they need (scripts/host-deps: as root; otherwise
# it names the `sudo apt-get install` to run), then set up the venvs.

PYTHON ?= python3
VENV   := .venv
ABIDE_VENV := .venv-abide
BIN    := $(VENV)/bin
UV     := $(BIN)/uv
UV_PIP := $(UV) pip
SNAPSHOT_DATE_ABIDE := 2025-05-08T00:00:00Z

.PHONY: setup demo test test-fast test-envgen test-abide lint typecheck requirements clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements/dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

$(ABIDE_VENV)/.installed: requirements/abide-test.txt pipelines/abide/pyproject.toml $(VENV)/.installed
	$(UV) venv --quiet --allow-existing -p $(PYTHON) $(ABIDE_VENV)
	$(UV_PIP) sync --quiet -p $(ABIDE_VENV)/bin/python --require-hashes requirements/abide-test.txt
	$(UV_PIP) install --quiet -p $(ABIDE_VENV)/bin/python --no-deps -e pipelines/abide
	touch $@

# The main job: snapshot and build the locked ABIDE env, run the pipeline in it
# on synthetic data, print the scores and where outputs and provenance are.
demo:
	scripts/host-deps demo
	$(MAKE) --no-print-directory setup
	scripts/demo.sh

# The whole check, as CI runs it (.ci/run): lint, typecheck, both test suites.
test:
	scripts/host-deps test
	$(MAKE) --no-print-directory lint typecheck test-envgen test-abide

test-envgen: setup
	$(BIN)/pytest tests

# The quick tier: no network, nothing slow, no Nix (a few seconds to a minute).
test-fast: setup
	$(BIN)/pytest tests -m "not network and not slow and not nix"

lint: setup
	$(BIN)/ruff check envgen tests bench pipelines/abide

typecheck: setup
	$(BIN)/mypy envgen

test-abide: $(ABIDE_VENV)/.installed
	$(ABIDE_VENV)/bin/python -m pytest -p no:cacheprovider pipelines/abide/tests

# Re-pin the developer and pipeline-test requirements (needs the network).
requirements: setup
	$(UV_PIP) compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 -q --no-header -o requirements/dev.txt
	$(UV_PIP) compile pipelines/abide/pyproject.toml requirements/abide-test.in --generate-hashes \
	  --exclude-newer $(SNAPSHOT_DATE_ABIDE) --python-version 3.11 -q --no-header -o requirements/abide-test.txt

clean:
	rm -rf $(VENV) $(ABIDE_VENV) .pytest_cache
