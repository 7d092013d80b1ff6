# The two commands: `make demo` runs the main job, `make test` the whole test suite
# (`make train-demo`: a short training run). Each creates .venv when missing and
# installs dctnet (editable) with its extras.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo train-demo test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.demo: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[examples]"
	touch $@

$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[test,examples,mpi]"
	touch $@

# The main job (well under a minute): the CIFAR-10 model shipped in examples/models,
# converted to the JPEG domain, evaluated beside the pixel model on the 100 bundled
# CIFAR-10 JPEGs (accuracy, agreement, logit difference, images/s of each path),
# then a few files classified straight from their coefficients. With DCTNET_DATA
# naming the data folder: 300 test files of its cifar10-jpeg.zip.
ifdef DCTNET_DATA
DEMO_ARGS := --data --per-class 30
else
DEMO_ARGS :=
endif

demo: $(VENV)/.demo
	$(BIN)/python examples/demo.py $(DEMO_ARGS)

# A short training run: the paper's network trained, saved, loaded, converted to
# the JPEG domain and evaluated there with ASM/APX ReLU, then predictions straight
# from JPEG files. On the bundled 100-image sample (train = test: a smoke test,
# about a minute) unless DCTNET_DATA names the data folder (then 2 epochs on
# 10,000 CIFAR-10 images, a few minutes). Outputs in runs/train-demo/.
ifdef DCTNET_DATA
TRAIN_DEMO_DATA := --dataset cifar10 --epochs 2 --limit 10000
TRAIN_DEMO_EVAL := --dataset cifar10 --limit 1000
else
TRAIN_DEMO_DATA := --dataset sample --epochs 10 --batch-size 50
TRAIN_DEMO_EVAL := --dataset sample
endif

train-demo: $(VENV)/.demo
	$(BIN)/python examples/train.py $(TRAIN_DEMO_DATA) --out runs/train-demo
	$(BIN)/python examples/jpeg_domain_eval.py runs/train-demo/model.h5 $(TRAIN_DEMO_EVAL) --frequencies 4 8 15
	$(BIN)/python examples/predict.py runs/train-demo/model.h5

# CUDA kernels run under Numba's simulator in a process of their own: the
# variable must be set before Numba is first imported.
test: $(VENV)/.test
	$(BIN)/python -m pytest -q tests
	NUMBA_ENABLE_CUDASIM=1 $(BIN)/python -m pytest -q -m cudasim tests

bench: $(VENV)/.test
	$(BIN)/python benchmarks/bench_io.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
