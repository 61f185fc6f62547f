# Two commands do everything on a fresh machine: `make run` and `make test`.
# Both set up the virtualenv first when it is missing or the lock changed.

PYTHON ?= python# resolves to 3.10 through .python-version (pyenv)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
UV_VERSION := 0.13.9
SPEC   ?=

# One Keras for the whole project: Keras 2 through tf_keras (docs/design.md).
export TF_USE_LEGACY_KERAS := 1

.PHONY: setup run test test-fast lint validate benchmark lock clean engines

setup: $(STAMP)

$(STAMP): requirements.lock requirements-nodeps.txt setup.py
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if v == (3, 10) else "error: Python 3.10 is required (TFX 1.16 wheels), found %d.%d: install it with `pyenv install 3.10` and keep .python-version" % v)'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --python $(BIN)/python --compile-bytecode -r requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --no-deps -r requirements-nodeps.txt
	$(BIN)/uv pip install --python $(BIN)/python --no-deps -e .
	@touch $(STAMP)

run: setup
	$(BIN)/python -m pipeline run $(SPEC)

validate: setup
	$(BIN)/python -m pipeline validate $(SPEC)

# Everything: the lint and every test, pipelines included (docs/testing.md: how long).
# The engines' parts come first, so that the Flink and Spark tests run; a
# machine that cannot download them (or has no Java) skips those tests,
# each with its reason.
test: setup lint
	-@$(MAKE) --no-print-directory engines
	$(BIN)/python -m pytest

# Beam's Flink and Spark job-server jars (Maven Central) and the Flink and
# Spark distributions (PyPI, each in a folder of its own), cached under
# $$PIPELINE_ENGINES_HOME (default ~/.cache/tfx-pipelines/engines):
# docs/scale.md. Needs Java 17 to run them, not to fetch them. Each engine is
# fetched even when the other's parts cannot be had (each says so in one
# line): a Maven mirror without Beam's job servers still gets the clusters.
engines: setup
	-$(BIN)/python -m pipeline engine fetch flink
	-$(BIN)/python -m pipeline engine fetch spark

# The lint and every test that runs no pipeline (`e2e` marks those).
test-fast: setup lint
	$(BIN)/python -m pytest -m "not e2e"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Measures and writes benchmarks/results/ (benchmarks/README.md): about
# 90 minutes here: CsvExampleGen's throughput against the previous executor
# (~8 min, its 1M rows at 0.9 MB/s most of it), the scaling curve, then the
# quality table (every bundled data set, dnn, gbt and the Tuner's choice,
# against scikit-learn's baselines on the same split), then fine-tuned
# MiniLM and EfficientNet-Lite0 against training from scratch (~35 min).
benchmark: setup
	$(BIN)/python benchmarks/cli_benchmark.py
	$(BIN)/python benchmarks/pipeline_benchmark.py
	$(BIN)/python benchmarks/profile_benchmark.py
	$(BIN)/python benchmarks/plain_tfx_benchmark.py
	$(BIN)/python benchmarks/parallel_tuning_benchmark.py
	$(BIN)/python benchmarks/example_gen_benchmark.py
	$(BIN)/python benchmarks/scaling_benchmark.py
	$(BIN)/python benchmarks/quality_benchmark.py
	$(BIN)/python benchmarks/transfer_benchmark.py

# Re-resolve the lock from requirements.in (needs PyPI).
lock: setup
	$(BIN)/uv pip compile requirements.in --python-version 3.10 \
	  --python-platform x86_64-manylinux_2_28 -o requirements.lock

clean:
	rm -rf runs serving
