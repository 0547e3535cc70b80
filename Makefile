# The workbench's commands. From a fresh clone:
#   make run    set everything up, then run the main job on the bundled emoji scenes
#   make test   set everything up, then run the whole test suite
#   make lab    open JupyterLab on the notebooks
#   make student  write the student copies (no answers, no outputs) to results/student/
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: run test lab student setup system-packages benchmarks clean

run: setup
	$(BIN)/workbench run

test: setup system-packages-browser
	$(BIN)/python -m pytest

lab: setup
	$(BIN)/jupyter lab notebooks

student: setup
	$(BIN)/python -m workbench.notebook.course notebooks results/student

setup: system-packages $(STAMP)

system-packages:
	@scripts/install-system-packages.sh

system-packages-browser:
	@scripts/install-system-packages.sh --browser

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

benchmarks: setup
	for script in benchmarks/bench_*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf results .pytest_cache
