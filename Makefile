# The two commands of the README: `make demo` and `make test`. Both create .venv if it is missing.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3
# The CPU build used where no NVIDIA GPU is found; a GPU machine gets the CUDA build from the index.
CPU_TORCH := torch==2.13.0

.PHONY: setup test demo check-sync lab mlflow

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if nvidia-smi -L >/dev/null 2>&1; then \
	  echo "NVIDIA GPU found: torch comes from the package index (CUDA build)"; \
	else \
	  echo "No NVIDIA GPU: installing the CPU build $(CPU_TORCH)"; \
	  $(BIN)/python -m pip install -q $(CPU_TORCH); \
	fi
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

# Fails if nbdev-clean or nbdev-export would change a file, then runs the notebooks and pytest.
test: setup
	$(BIN)/python tools/check_nbdev_sync.py
	$(BIN)/nbdev-test --n-workers 2
	rc=0; $(BIN)/python -m pytest || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; rc=0; fi; exit $$rc

demo: setup
	$(BIN)/wan-nb demo

check-sync: setup
	$(BIN)/python tools/check_nbdev_sync.py

lab: setup
	$(BIN)/jupyter lab

# The MLflow UI over the local store (runs/mlflow.db); open http://127.0.0.1:5000
mlflow: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/runs/mlflow.db --default-artifact-root $(CURDIR)/runs/artifacts
