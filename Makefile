# The README's two set-up commands: `make bench` runs the main job, `make test` the tests.
# Each creates the virtual environment it needs when missing, installing torch explicitly first
# (an open torch requirement on a machine without torch can pull a multi-GB CUDA build).

PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
DGL_VENV := .venv-dgl

.PHONY: bench test

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install $(TORCH)
	$(VENV)/bin/python -m pip install -e '.[dev]'
	touch $@

# DGL is an optional extra: dgl 1.1.3 is the only release that imports beside this torch, and it
# needs setuptools<70 (pkg_resources) at import, so it lives in its own environment. torch 2.13
# declares setuptools>=77, so resolving '.[dgl]' together with it makes pip backtrack to an older
# CUDA torch: the DGL set is installed without re-resolving torch, then dgl's own runtime needs.
$(DGL_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(DGL_VENV)
	$(DGL_VENV)/bin/python -m pip install $(TORCH)
	$(DGL_VENV)/bin/python -m pip install -e '.[dev]'
	$(DGL_VENV)/bin/python -m pip install --no-deps dgl==1.1.3 'setuptools<70' packaging
	$(DGL_VENV)/bin/python -m pip install scipy requests tqdm psutil
	touch $@

bench: $(VENV)/.installed
	$(VENV)/bin/python -m graphfuse.bench accuracy

test: $(VENV)/.installed $(DGL_VENV)/.installed
	$(VENV)/bin/python -m pytest
	$(DGL_VENV)/bin/python -m pytest -m dgl
