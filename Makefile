# The project's own install and run steps: everything a fresh machine (Python 3.11, Node 20) needs.
# Versions are pinned in requirements/constraints-<Airflow version>.txt (Python; the project's own venv uses
# the main version's) and tools/azurite/package-lock.json (npm).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The Airflow version the project's venv, the demo and the full test suite use; `make matrix` covers the others.
MAIN_AIRFLOW := 3.3.2
CONSTRAINTS := requirements/constraints-$(MAIN_AIRFLOW).txt
AZURITE_STAMP := tools/azurite/node_modules/.installed-stamp
# CI sets CI=true; pytest then also prints the slowest tests.
PYTEST_ARGS ?= -q -ra --durations=15

.PHONY: setup demo test lint typecheck unit integration system matrix dist bench clean system-packages

setup: $(STAMP) $(AZURITE_STAMP)

# Three distributions from this repository: the provider (.), the analyzer (analyzer/, no Airflow) and
# the local stand-ins (local/, development only), installed editable. setup.py and the C sources too:
# the editable install compiles the C loops in place.
DISTRIBUTIONS := pyproject.toml setup.py analyzer/pyproject.toml analyzer/setup.py local/pyproject.toml
$(STAMP): $(DISTRIBUTIONS) $(CONSTRAINTS) $(wildcard airflow_provider_logproc/*/*.c analyzer/*/*.c)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip==26.3"
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) -e ./analyzer -e ./local -e ".[dev]"
	touch $(STAMP)

$(AZURITE_STAMP): tools/azurite/package.json tools/azurite/package-lock.json
	cd tools/azurite && npm ci --no-audit --no-fund --loglevel=error
	touch $(AZURITE_STAMP)

# Debian tools the tests use: GoAccess as an independent second opinion on the analyzer's numbers,
# Chromium to open the HTML report as a person would (driven by Playwright, without its own browser).
# Installed only when missing and when we may (root); otherwise those tests say why they skip.
system-packages:
	@missing=""; \
	command -v goaccess >/dev/null || missing="$$missing goaccess"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	      || echo "warning: could not install$$missing; the tests that need them will skip"; \
	  else echo "note: not root, not installing$$missing; the tests that need them will skip"; fi; \
	fi

# README command 1: set up, start the local stack, run the daily pipeline, print where the report is.
demo: setup
	$(BIN)/python -m logproc_local.demo

# README command 2: set up and run every check and test: the full suite on the main Airflow version,
# then the version matrix (wheels installed into each supported Airflow, unit tests, one `dags test`).
test: setup system-packages lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)
	$(BIN)/python -m logproc_local.version_matrix

# What a release publishes, in dist/: sdists, manylinux wheels (auditwheel), pure-Python fallbacks.
dist: setup
	$(BIN)/python -m logproc_local.release --outdir dist

# Airflow 2.11.2, 3.0.6, 3.1.8 and 3.3.2, each in its own cached venv under .local/matrix.
matrix: setup
	$(BIN)/python -m logproc_local.version_matrix

lint: setup
	$(BIN)/ruff check .

typecheck: setup
	$(BIN)/mypy airflow_provider_logproc analyzer/logproc_analyzer local/logproc_local dags bench tests

unit: setup
	$(BIN)/pytest $(PYTEST_ARGS) tests/unit

integration: setup
	$(BIN)/pytest $(PYTEST_ARGS) tests/integration

system: setup
	$(BIN)/pytest $(PYTEST_ARGS) tests/system

bench: setup
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) tools/azurite/node_modules .local .pytest_cache .mypy_cache .ruff_cache
