# The README's two set-up commands: `make bench` runs the main job, `make test` the tests; and
# `make docs` builds the documentation site (docs/_build/html) with warnings as errors.
# Each creates the virtual environment it needs when missing, installing torch explicitly first
# (an open torch requirement on a machine without torch can pull a multi-GB CUDA build).

PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
DGL_VENV := .venv-dgl
# Debian's dataset-fashion-mnist installs the real photographs of the benchmark's `fashion` task here.
FASHION_MNIST := /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz

.PHONY: bench test docs fashion-mnist

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install $(TORCH)
	$(VENV)/bin/python -m pip install -e '.[dev,bench,hf,docs]'
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

# The fashion task reads Fashion-MNIST from Debian's package (nothing is downloaded at run time). As root
# with apt-get it is installed here; elsewhere the benchmark skips that task and says how to install it.
fashion-mnist:
	@if [ -e $(FASHION_MNIST) ] || [ -n "$$GRAPHFUSE_FASHION_MNIST" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
		{ apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1; } || \
		echo "note: apt-get could not install dataset-fashion-mnist; the fashion task will be skipped"; \
	else \
		echo "note: Fashion-MNIST is not installed; the fashion task will be skipped" \
			"(sudo apt-get install dataset-fashion-mnist)"; \
	fi

bench: $(VENV)/.installed fashion-mnist
	$(VENV)/bin/python -m graphfuse.bench accuracy

test: $(VENV)/.installed $(DGL_VENV)/.installed
	$(VENV)/bin/python -m pytest
	$(DGL_VENV)/bin/python -m pytest -m dgl

# -E reads every page again, so that a warning of an unchanged page is not hidden by the last build.
docs: $(VENV)/.installed
	$(VENV)/bin/python -m sphinx -E -W --keep-going -q -b html docs docs/_build/html
	@echo "the site: docs/_build/html/index.html"
