# camlib — every target runs inside the project's virtual environment, made by `make setup`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.camlib-setup
NB_OUT ?= build/notebooks
# a run's results/figures (a user's: build/); the committed results/ + figures/ are the reference
RESULTS ?= build/results
FIGURES ?= $(if $(filter results,$(RESULTS)),figures,build/figures)
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
PYTEST_ARGS ?=
JOBS ?= 2
PAPER_ARGS ?=
LAB_DIR ?= notebooks
LAB_ARGS ?=

LOCK := requirements.lock
# `make lock` resolves with uv (in its own throwaway venv, never .venv); LOCK_ARGS=--upgrade moves every pin
UV_VERSION ?= 0.13.9
LOCK_VENV ?= build/lock-tools
LOCK_ARGS ?=

.PHONY: help setup lock quick reproduce report refresh-results verify test lint lab clean-notebooks student bench clean
STUDENT_OUT ?= build/student

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

setup: $(STAMP)  ## create .venv from requirements.lock (torch pair: constraints.txt), camlib (editable), a python3 kernel

$(STAMP): pyproject.toml constraints.txt $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r $(LOCK) -c constraints.txt
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (camlib)" >/dev/null
	$(PY) -m camlib.env --check
	touch $(STAMP)

lock:  ## refresh requirements.lock from pyproject.toml (+ dev extra) and constraints.txt (uv; LOCK_ARGS=--upgrade)
	test -x $(LOCK_VENV)/bin/uv || ($(PYTHON) -m venv $(LOCK_VENV) && $(LOCK_VENV)/bin/pip install -q uv==$(UV_VERSION))
	$(LOCK_VENV)/bin/uv pip compile --no-config pyproject.toml --extra dev -c constraints.txt --universal --python-version 3.10 \
		--custom-compile-command "make lock" $(LOCK_ARGS) -o $(LOCK)

quick: setup  ## run every notebook (quick profile, CPU) into build/results + build/figures, then the report
	$(PY) -m camlib.run_notebooks --profile quick --jobs $(JOBS) --out $(NB_OUT) --results-dir $(RESULTS) --figures-dir $(FIGURES) $(NOTEBOOKS)
	$(MAKE) --no-print-directory report RESULTS=$(RESULTS)

refresh-results: setup  ## maintainers, with ../shared: regenerate the committed reference results/ + figures/
	$(MAKE) --no-print-directory quick RESULTS=results FIGURES=figures

VERIFY_ARGS ?=
verify: setup  ## re-run notebooks (NOTEBOOKS="01 03", default all) quick into build/verify; compare with results/ (identical on the same setup, else within the CIs)
	$(PY) -m camlib.tools.verify --out build/verify --jobs $(JOBS) $(VERIFY_ARGS) $(NOTEBOOKS)

reproduce: setup  ## run every notebook with the paper profile (real datasets, GPU advised)
	$(PY) -m camlib.run_notebooks --profile paper --out $(NB_OUT)/paper $(PAPER_ARGS) $(NOTEBOOKS)
	$(MAKE) --no-print-directory report

.PHONY: plan
PLAN_ARGS ?=
plan: setup  ## measure train/eval/decode here (~2 min) and project make reproduce: wall time, GPU-hours, disk per notebook
	$(PY) -m camlib.tools.plan $(PLAN_ARGS)

report: setup  ## paper | reference (results/) | your run (build/results) -> build/results/README.md
	$(PY) -m camlib.report --results $(RESULTS) --reference results --paper results/paper.yaml --out $(RESULTS)/README.md

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

$(VENV)/.camlib-bench: $(STAMP) pyproject.toml constraints.txt $(LOCK)  # the comparison libraries (`bench` extra); make test never needs them
	$(PY) -m pip install -q -c constraints.txt -c $(LOCK) -e '.[bench]'
	$(PY) -c "import torchcam, pytorch_grad_cam, cv2"
	touch $@

DATA_SETS ?=
.PHONY: data
data: setup  ## download Imagenette-160 (+ wsolevaluation ILSVRC val boxes), Caltech-101, CUB-200-2011 into data/ (~1.4 GB; DATA_SETS="cub" for some)
	$(PY) -m camlib.datasets.fetch $(DATA_SETS)

clean:  ## remove executed notebooks and caches (keeps .venv and data)
	rm -rf build .pytest_cache
