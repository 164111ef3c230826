# Two commands a new user needs (Python 3.11 with venv and pip):
#   make figures   set up .venv if needed, run every notebook (default profile), render the report
#   make test      set up .venv if needed, run the test suite
# The environment is installed from requirements.lock (every package pinned); `make lock` refreshes it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= default
LOCK := requirements.lock
# torch first, at the lock's version, so pip never pulls a CUDA build here (the local CPU wheel is found
# through pip's configuration). A CUDA machine: make TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cu128"
TORCH := $(shell grep -E '^torch==' $(LOCK))
TORCH_PIP_ARGS ?=
STAMP := $(VENV)/.installed
PEERS = $$($(LOCK_VENV)/bin/python -c "from gradtools.lockfile import NO_DEPS_PEERS; print(*NO_DEPS_PEERS)")

.PHONY: setup test figures notebook compare sync lock lab benchmarks clean

setup: $(STAMP)

$(STAMP): $(LOCK) pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$$(grep -E '^pip==' $(LOCK))"
	$(PY) -m pip install --quiet $(TORCH_PIP_ARGS) "$(TORCH)"
	# exactly the lock: nothing resolved at install time (curvlinops' torchvision requirement stays out)
	$(PY) -m pip install --quiet --no-deps -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

test: $(STAMP)
	$(PY) -m pytest

figures: $(STAMP)
	$(PY) -m gradtools.runner --profile $(PROFILE)

# make notebook NB=00_tour PROFILE=smoke
notebook: $(STAMP)
	$(PY) -m gradtools.runner --profile $(PROFILE) $(NB)

# the tables a run wrote against the committed ones (REV=HEAD by default)
REV ?= HEAD
compare: $(STAMP)
	$(PY) -m gradtools.runner --compare --profile $(PROFILE) --rev $(REV)

# after editing a notebook's .py (or .ipynb) twin: bring the pair back in sync
sync: $(STAMP)
	$(VENV)/bin/jupytext --sync notebooks/*.ipynb

# resolve pyproject.toml afresh in a throw-away venv and pin everything it installed
LOCK_VENV := build/lock-venv
# torch stays at the locked version unless asked: make lock TORCH_VERSION=2.14.0
TORCH_VERSION ?= $(shell grep -oP '(?<=^torch==)[^+]+' $(LOCK) 2>/dev/null || echo 2.13.0)
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet --upgrade pip
	$(LOCK_VENV)/bin/pip install --quiet $(TORCH_PIP_ARGS) "torch==$(TORCH_VERSION)"
	$(LOCK_VENV)/bin/pip install --quiet -e ".[test]"
	$(LOCK_VENV)/bin/pip install --quiet --no-deps $(PEERS)
	$(LOCK_VENV)/bin/python -m gradtools.lockfile write $(LOCK)
	$(LOCK_VENV)/bin/python -m gradtools.lockfile environment environment.yml

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

benchmarks: $(STAMP)
	$(PY) benchmarks/gram.py
	$(PY) benchmarks/curvature.py

clean:
	rm -rf build
