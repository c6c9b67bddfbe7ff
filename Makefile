# Two commands for a fresh machine: `make demo` and `make test`. Both create and reuse .venv.
#
# torch: TORCH_SPEC is the release installed when .venv has none. On CPU machines (CI) pip takes
# the CPU build of 2.13.0; on a GPU machine, install the CUDA build of torch 2.13 or 2.14 into
# .venv first (or set TORCH_SPEC=torch==2.14.1) and the install step below keeps it.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.attn_deploy-installed
PYTEST_WORKERS ?= 2

.PHONY: setup test demo plugins clean
# TensorRT headers for the plugin library (not installable from PyPI; see plugins/README.md).
TRT_INC ?=

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c "import torch, sys; sys.exit(not torch.__version__.startswith(('2.13.', '2.14.')))" \
		2>/dev/null || $(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[export,test]"
	touch $(STAMP)

setup: $(STAMP)

test: setup
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist load -q

demo: setup
	$(VENV)/bin/attn-deploy report --out reports --readme README.md

# libattn_deploy_plugins.so: CUDA kernels + TensorRT plugins when TRT_INC points at TensorRT's
# include/ folder; without it, the kernels and the TensorRT-free core only.
plugins:
	cmake -S plugins -B build/plugins $(if $(TRT_INC),-DTensorRT_INCLUDE_DIR=$(TRT_INC),)
	cmake --build build/plugins -j
	cd build/plugins && ctest --output-on-failure

clean:
	rm -rf build .pytest_cache
