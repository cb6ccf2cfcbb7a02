# lstm-ae: `make run` trains the default toy model, `make test` runs the test suite.
# Both create the virtual environment (.venv) on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: help venv run test grid optuna clean
help:
	@echo "make run     train the default toy model (creates $(VENV) if missing)"
	@echo "make test    run the test suite (creates $(VENV) if missing)"
	@echo "make grid    the toy grid search (hparams_search=toy_grid)"
	@echo "make optuna  the toy Optuna search (hparams_search=toy_optuna)"
	@echo "make clean   remove $(VENV), outputs/ and multirun/"

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(STAMP)

run: $(STAMP)
	$(PY) lstm_ae_toy.py

test: $(STAMP)
	$(PY) -m pytest

grid: $(STAMP)
	$(PY) lstm_ae_toy.py -m hparams_search=toy_grid

optuna: $(STAMP)
	$(PY) lstm_ae_toy.py -m hparams_search=toy_optuna

clean:
	rm -rf $(VENV) outputs multirun
