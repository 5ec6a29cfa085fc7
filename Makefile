# The two set-up commands are `make demo` and `make test`; everything else is a step of theirs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Optional: install within a constraints file, e.g. CONSTRAINTS=constraints/airflow-3.3.2.txt
# (CI on Python 3.12); the files name the Python they were resolved for.
CONSTRAINTS ?=

.PHONY: venv lint format test unit integration demo emulator clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	scripts/ensure-system-packages.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	# Bytecode now, not at every start: where PYTHONDONTWRITEBYTECODE is set, each Airflow process
	# (tests, demo, benchmarks) would otherwise compile Airflow again: its import took 4 s, 1.5 s from bytecode.
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python \
	  $(if $(CONSTRAINTS),--constraint $(CONSTRAINTS)) -e '.[test,bench]'
	touch $(STAMP)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

unit: venv
	$(BIN)/pytest tests/unit -q

integration: venv
	$(BIN)/pytest tests/integration -q

test: venv lint
	$(BIN)/pytest -q -p no:cacheprovider

demo: venv
	$(BIN)/python scripts/demo.py

emulator: venv
	$(BIN)/fb-catalog emulator --port 8765

clean:
	rm -rf $(VENV) .venv-airflow-* .demo .airflow-test .pytest_cache .mypy_cache .ruff_cache

.PHONY: e2e mwaa-bundle

# The multi-process end-to-end test alone (real api-server, scheduler, dag-processor, triggerer,
# Celery worker / LocalExecutor on PostgreSQL and Redis); `make test` runs it too.
e2e: venv
	$(BIN)/pytest tests/e2e -q -p no:cacheprovider -s

# The Amazon MWAA bundle in dist/mwaa/: dags/, requirements.txt, plugins.zip (see docs/deployment.md).
# Extra arguments, e.g. --build-sdists when a dependency MWAA lacks is published only as source.
MWAA_BUNDLE_ARGS ?=
mwaa-bundle: venv
	$(BIN)/python scripts/build_mwaa_bundle.py --out dist/mwaa $(MWAA_BUNDLE_ARGS)

.PHONY: bench

# The benchmarks (benchmarks/README.md): real Airflow processes on the local PostgreSQL, moto S3
# and the Graph API emulator. Each script rewrites its own table at the head of benchmarks/RESULTS.md
# and appends its full dated section to benchmarks/HISTORY.md.
# Takes about 20 minutes (the 1,000,000-product feed run and the 10,000,000-item ledger included); `.ci/run` starts PostgreSQL.
bench: venv
	$(BIN)/python -m benchmarks.worker_slot
	$(BIN)/python -m benchmarks.triggerer_footprint
	$(BIN)/python -m benchmarks.feed_throughput
	$(BIN)/python -m benchmarks.rate_limit_pacing
	$(BIN)/python -m benchmarks.hourly_delta
	$(BIN)/python -m benchmarks.reconcile_readback

.PHONY: soak

# The fault soak (benchmarks/README.md, "soak.py"): 200 simulated hours of the hourly sync under
# random faults against moto S3 and the Graph API emulator, every tenth hour and every hour with a
# SIGKILL through the real DAG; checks its invariants every hour and records its table in
# benchmarks/RESULTS.md. About 25 minutes here. `make test` runs a 24-hour version
# (tests/soak/test_soak.py; `pytest -m soak` alone).
SOAK_ARGS ?= --hours 200 --seed 1
soak: venv
	$(BIN)/python -m benchmarks.soak $(SOAK_ARGS)

.PHONY: venv-compat test-compat

# One compatibility lane: the unit and integration suites on another Airflow that Amazon MWAA
# runs (3.0.6, 3.2.1), in its own venv (.venv-airflow-X) on Python 3.12 (MWAA's), installed from
# constraints/airflow-X.txt. `.ci/run` runs every lane after `make test`.
AIRFLOW ?= 3.0.6
COMPAT_PYTHON ?= $(firstword $(wildcard /root/.pyenv/versions/3.12*/bin/python) $(shell command -v python3.12))
COMPAT_VENV := .venv-airflow-$(AIRFLOW)
COMPAT_STAMP := $(COMPAT_VENV)/.installed-stamp

venv-compat: $(COMPAT_STAMP)

$(COMPAT_STAMP): pyproject.toml constraints/airflow-$(AIRFLOW).txt | venv
	test -x $(COMPAT_VENV)/bin/python || $(BIN)/uv venv --quiet --python "$(COMPAT_PYTHON)" $(COMPAT_VENV)
	UV_PYTHON_DOWNLOADS=never $(BIN)/uv pip install --quiet --compile-bytecode --python $(COMPAT_VENV)/bin/python \
	  --constraint constraints/airflow-$(AIRFLOW).txt -e '.[test]'
	$(COMPAT_VENV)/bin/python -c "import airflow, sys; sys.exit(airflow.__version__ != '$(AIRFLOW)' and 'installed Airflow ' + airflow.__version__)"
	touch $(COMPAT_STAMP)

# PYTEST_ARGS picks tests, e.g. PYTEST_ARGS=tests/integration/test_catalogs_dag.py
PYTEST_ARGS ?= tests/unit tests/integration
test-compat: venv-compat
	$(COMPAT_VENV)/bin/pytest $(PYTEST_ARGS) -q -p no:cacheprovider
