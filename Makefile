# Two commands a new user needs (Python 3.11 with venv and pip):
#   make figures   set up .venv if needed, run every notebook (default profile), render the report
#   make test      set up .venv if needed, run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= default
# A CUDA machine: make TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cu128"
TORCH ?= torch==2.13.0
TORCH_PIP_ARGS ?=
STAMP := $(VENV)/.installed

.PHONY: setup test figures notebook lab benchmarks clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch before anything that depends on it, so pip never pulls a CUDA build here
	$(PY) -m pip install --quiet $(TORCH_PIP_ARGS) "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[test]"
	# curvlinops (benchmark peer) needs backpack, which needs torchvision (no CPU build): skip its deps
	$(PY) -m pip install --quiet --no-deps curvlinops-for-pytorch backpack-for-pytorch einconv \
		linear_operator einops opt-einsum jaxtyping mpmath
	touch $@

test: $(STAMP)
	$(PY) -m pytest

figures: $(STAMP)
	$(PY) -m gradtools.runner --profile $(PROFILE)

# make notebook NB=00_tour PROFILE=smoke
notebook: $(STAMP)
	$(PY) -m gradtools.runner --profile $(PROFILE) $(NB)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

benchmarks: $(STAMP)
	$(PY) benchmarks/gram.py
	$(PY) benchmarks/curvature.py

clean:
	rm -rf build
