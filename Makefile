# The two commands: `make demo` runs the main job, `make test` the whole test suite.
# Each creates .venv when missing and installs dctnet (editable) with its extras.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.demo: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[examples]"
	touch $@

$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[test,examples,mpi]"
	touch $@

# The main job: JPEG files as coefficients, a short training run, the model saved,
# loaded, converted to the JPEG domain and evaluated there, then predictions
# straight from JPEG files. On the bundled 100-image sample unless DCTNET_DATA
# names the data folder (then a 2-epoch run on 10,000 CIFAR-10 images).
ifdef DCTNET_DATA
DEMO_DATA := --dataset cifar10 --epochs 2 --limit 10000
DEMO_EVAL := --dataset cifar10 --limit 1000
else
DEMO_DATA := --dataset sample --epochs 10 --batch-size 50
DEMO_EVAL := --dataset sample
endif

demo: $(VENV)/.demo
	$(BIN)/python examples/quickstart.py
	$(BIN)/python examples/train.py $(DEMO_DATA) --out runs/demo
	$(BIN)/python examples/jpeg_domain_eval.py runs/demo/model.h5 $(DEMO_EVAL) --frequencies 4 8 15
	$(BIN)/python examples/predict.py runs/demo/model.h5

# CUDA kernels run under Numba's simulator in a process of their own: the
# variable must be set before Numba is first imported.
test: $(VENV)/.test
	$(BIN)/python -m pytest -q tests
	NUMBA_ENABLE_CUDASIM=1 $(BIN)/python -m pytest -q -m cudasim tests

bench: $(VENV)/.test
	$(BIN)/python benchmarks/bench_io.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
