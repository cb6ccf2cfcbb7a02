# lstm-ae: `make run` trains the default toy model, `make test` runs the test suite.
# Both create the virtual environment (.venv) on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SCALE_STAMP := $(VENV)/.installed-scale

.PHONY: help venv run test test-scale grid optuna reproduce reproduce-smoke report bench clean
help:
	@echo "make run     train the default toy model (creates $(VENV) if missing)"
	@echo "make test    run the test suite (creates $(VENV) if missing)"
	@echo "make test-scale  the engine tests: a Ray cluster, submitit, PostgreSQL (installs their extras)"
	@echo "make grid    the toy grid search (hparams_search=toy_grid)"
	@echo "make optuna  the toy Optuna search (hparams_search=toy_optuna)"
	@echo "make reproduce        every experiment of the assignment, default settings (hours on 2 cores)"
	@echo "make reproduce-smoke  the same chain on tiny settings (minutes), into outputs/reproduce/smoke"
	@echo "make report           report/report.md and report/report.html from outputs/reproduce/full"
	@echo "make bench            throughput and time-to-accuracy benchmarks (bench/results/)"
	@echo "make clean   remove $(VENV), outputs/, multirun/ and report/"

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@# extras the tests use: optuna-dashboard, TensorBoard, ONNX, MLflow (tests/test_{dashboard,loggers,export,mlflow}.py)
	$(PY) -m pip install --quiet -e '.[dev,dashboard,tensorboard,export,mlflow]'
	@# hydra-optuna-sweeper (optuna<3) was a dependency before the project's own sweeper; left in an
	@# old .venv it would register the same hydra/sweeper=optuna option
	$(PY) -m pip uninstall --quiet --yes hydra-optuna-sweeper 2>/dev/null || true
	touch $@

venv: $(STAMP)

run: $(STAMP)
	$(PY) lstm_ae_toy.py

test: $(STAMP)
	$(PY) -m pytest -n auto --dist loadgroup -m "not scale"
	@# the official hydra-optuna-sweeper's own test suite, run against the project's sweeper
	cd upstream/hydra_optuna_sweeper && $(abspath $(PY)) -m pytest -n auto -p no:cacheprovider tests

# the engine tests (pytest -m scale): a Ray cluster, submitit, PostgreSQL; with the extras they need
$(SCALE_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,ray,slurm,postgres,scale-test]'
	touch $@

test-scale: $(SCALE_STAMP)
	$(PY) -m pytest -n auto --dist loadgroup -m scale

grid: $(STAMP)
	$(PY) lstm_ae_toy.py -m hparams_search=toy_grid

optuna: $(STAMP)
	$(PY) lstm_ae_toy.py -m hparams_search=toy_optuna

reproduce: $(STAMP)
	$(PY) -m lstm_ae.reproduce --budget full
	$(PY) -m lstm_ae.report --runs outputs/reproduce/full --out report

reproduce-smoke: $(STAMP)
	$(PY) -m lstm_ae.reproduce --budget smoke
	$(PY) -m lstm_ae.report --runs outputs/reproduce/smoke --out report_smoke

report: $(STAMP)
	$(PY) -m lstm_ae.report --runs outputs/reproduce/full --out report

bench: $(STAMP)
	$(PY) -m bench.throughput --out bench/results/throughput.json
	$(PY) -m bench.time_to_accuracy --out bench/results/time_to_accuracy.json

clean:
	rm -rf $(VENV) outputs multirun report report_smoke
