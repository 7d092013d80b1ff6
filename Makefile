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
	$(BIN)/python -m pip install -q -e ".[test,examples]"
	touch $@

demo: $(VENV)/.demo
	$(BIN)/python examples/quickstart.py

# CUDA kernels run under Numba's simulator in a process of their own: the
# variable must be set before Numba is first imported.
test: $(VENV)/.test
	$(BIN)/python -m pytest -q tests
	NUMBA_ENABLE_CUDASIM=1 $(BIN)/python -m pytest -q -m cudasim tests

bench: $(VENV)/.test
	$(BIN)/python benchmarks/bench_io.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
