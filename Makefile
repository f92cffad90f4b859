# camlib — every target runs inside the project's virtual environment, made by `make setup`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.camlib-setup
NB_OUT ?= build/notebooks
RESULTS ?= results
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
PYTEST_ARGS ?=
JOBS ?= 2
PAPER_ARGS ?=
LAB_DIR ?= notebooks
LAB_ARGS ?=

.PHONY: help setup quick reproduce report test lint lab clean-notebooks student bench clean
STUDENT_OUT ?= build/student

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

setup: $(STAMP)  ## create .venv with torch+torchvision, camlib (editable), dev tools, a python3 kernel

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (camlib)" >/dev/null
	$(PY) -m camlib.env --check
	touch $(STAMP)

quick: setup  ## run every notebook (quick profile, CPU, embedded data), then the report
	$(PY) -m camlib.run_notebooks --profile quick --jobs $(JOBS) --out $(NB_OUT) $(NOTEBOOKS)
	$(MAKE) --no-print-directory report

reproduce: setup  ## run every notebook with the paper profile (real datasets, GPU advised)
	$(PY) -m camlib.run_notebooks --profile paper --out $(NB_OUT)/paper $(PAPER_ARGS) $(NOTEBOOKS)
	$(MAKE) --no-print-directory report

report: setup  ## results/*.json + results/paper.yaml -> results/README.md
	$(PY) -m camlib.report --results $(RESULTS) --paper results/paper.yaml --out $(RESULTS)/README.md

test: setup  ## unit tests + papermill smoke runs + the browser check (installs chromium via apt when root)
	-$(PY) -m camlib.browser ensure
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: setup  ## ruff (package, tests, benchmarks and the notebooks) + the notebook rules (no outputs, short cells, ...)
	$(PY) -m ruff check camlib tests benchmarks notebooks
	$(PY) -m camlib.notebook_tools check $(NOTEBOOKS)

lab: setup  ## open JupyterLab in the project environment
	$(VENV)/bin/jupyter lab $(LAB_DIR) $(LAB_ARGS)

clean-notebooks: setup  ## strip outputs and execution counts from the committed notebooks
	$(PY) -m camlib.notebook_tools strip $(NOTEBOOKS)

student: setup  ## copies of the notebooks with exercise solutions removed, in build/student
	$(PY) -m camlib.notebook_tools student --out $(STUDENT_OUT) $(NOTEBOOKS)

bench: $(VENV)/.camlib-bench  ## camlib vs torchcam / pytorch-grad-cam, sweep, cost growth -> results/bench.json, figures/bench_*.png
	$(PY) benchmarks/bench.py

$(VENV)/.camlib-bench: $(STAMP) pyproject.toml constraints.txt  # the comparison libraries (`bench` extra); make test never needs them
	$(PY) -m pip install -q -c constraints.txt -e '.[bench]'
	$(PY) -c "import torchcam, pytorch_grad_cam, cv2"
	touch $@

clean:  ## remove executed notebooks and caches (keeps .venv and data)
	rm -rf build .pytest_cache
