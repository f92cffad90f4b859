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
# the paper profile's results and figures: their own folders, so no table mixes profiles
PAPER_RESULTS ?= build/results-paper
PAPER_FIGURES ?= build/figures-paper
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
PYTEST_ARGS ?=
# glibc malloc for every process make starts (notebook kernels, tests, lab): buffers up to 256 MiB come from the
# heap and up to 1 GiB of freed memory is kept, instead of an mmap + page faults + trim per CNN activation
# buffer (a third to a half of the CPU time of a Lite0 pass was system time); numbers are unchanged
# (camlib.tools.run_notebooks.MALLOC_ENV says the same for direct runs; a test ties the two)
export MALLOC_MMAP_THRESHOLD_ ?= 268435456
export MALLOC_TRIM_THRESHOLD_ ?= 1073741824
# pytest-xdist workers of `make test` (auto: one per CPU core, at most PYTEST_MAX_WORKERS); 0 runs in one process
PYTEST_WORKERS ?= auto
PYTEST_MAX_WORKERS ?= 4
JOBS ?= 2
PAPER_ARGS ?=
LAB_DIR ?= notebooks
LAB_ARGS ?=

LOCK := requirements.lock
# `make lock` resolves with uv (in its own throwaway venv, never .venv); LOCK_ARGS=--upgrade moves every pin
UV_VERSION ?= 0.13.9
LOCK_VENV ?= build/lock-tools
LOCK_ARGS ?=

.PHONY: help setup hooks lock quick reproduce report refresh-results verify test lint lab clean-notebooks student bench clean site
STUDENT_OUT ?= build/student
SITE ?= build/site
# the git hooks of this checkout (empty outside a git repository: no hooks then); in a worktree, the shared ones
GIT_HOOK := $(shell git rev-parse --git-path hooks/pre-commit 2>/dev/null)
GIT_ATTRIBUTES := $(shell git rev-parse --git-path info/attributes 2>/dev/null)
# nbstripout as the .ipynb git filter: the flags of the nbstripout hook in .pre-commit-config.yaml
NBSTRIPOUT_KEYS := metadata.papermill cell.metadata.papermill metadata.jupytext \
	metadata.language_info.codemirror_mode metadata.language_info.file_extension metadata.language_info.mimetype \
	metadata.language_info.nbconvert_exporter metadata.language_info.pygments_lexer metadata.language_info.version
NBSTRIPOUT_ARGS := --keep-id --drop-tagged-cells injected-parameters --extra-keys "$(NBSTRIPOUT_KEYS)"

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

setup: $(STAMP) hooks  ## create .venv from requirements.lock (torch pair: constraints.txt), camlib (editable), a python3 kernel, the git hooks

$(STAMP): pyproject.toml constraints.txt $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r $(LOCK) -c constraints.txt
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (camlib)" >/dev/null
	$(PY) -m camlib.env --check
	touch $(STAMP)

hooks: $(GIT_HOOK)  ## (part of setup) pre-commit at `git commit`, nbstripout as the .ipynb git filter

$(GIT_HOOK): $(STAMP) .pre-commit-config.yaml
	$(VENV)/bin/pre-commit install
	$(PY) -m nbstripout --install --attributes "$(GIT_ATTRIBUTES)"
	git config filter.nbstripout.clean '"$(abspath $(PY))" -m nbstripout $(NBSTRIPOUT_ARGS)'
	git config diff.ipynb.textconv '"$(abspath $(PY))" -m nbstripout -t $(NBSTRIPOUT_ARGS)'
	touch $@

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

reproduce: setup  ## paper profile, in order (02 fine-tunes first; 03-05 read build/checkpoints/), stops at the first failure
	$(PY) -m camlib.run_notebooks --profile paper --stop-on-failure --out $(NB_OUT)/paper --results-dir $(PAPER_RESULTS) --figures-dir $(PAPER_FIGURES) $(PAPER_ARGS) $(NOTEBOOKS)
	$(MAKE) --no-print-directory report RESULTS=$(PAPER_RESULTS)

.PHONY: plan
PLAN_ARGS ?=
plan: setup  ## measure train/eval/decode here (~2 min) and project make reproduce: wall time, GPU-hours, disk per notebook
	$(PY) -m camlib.tools.plan $(PLAN_ARGS)

report: setup  ## paper | reference (results/) | your run (build/results) -> build/results/README.md
	$(PY) -m camlib.report --results $(RESULTS) --reference results --paper results/paper.yaml --out $(RESULTS)/README.md

test: setup lint  ## lint, then unit tests + papermill smoke runs + the browser check (installs chromium via apt when root)
	-$(PY) -m camlib.browser ensure
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --maxprocesses $(PYTEST_MAX_WORKERS) --durations=15 $(PYTEST_ARGS)

lint: setup  ## pre-commit on every file: ruff check + format (package, tests, benchmarks, notebooks), nbstripout, the notebook rules
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/pre-commit run --all-files --show-diff-on-failure

lab: setup  ## open JupyterLab in the project environment
	$(VENV)/bin/jupyter lab $(LAB_DIR) $(LAB_ARGS)

clean-notebooks: setup  ## strip outputs, execution counts and volatile metadata (nbconvert's ClearOutput / ClearMetadata)
	$(PY) -m camlib.notebook_tools strip $(NOTEBOOKS)

site: setup  ## a browsable course site from the last `make quick` (executed notebooks, results table, captioned figures) -> build/site/index.html; runs nothing
	$(PY) -m camlib.tools.site --notebooks $(NB_OUT) --results $(RESULTS) --figures $(FIGURES) --out $(SITE)

student: setup  ## copies without the solution and instructor cells (nbconvert's TagRemove), in build/student
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
