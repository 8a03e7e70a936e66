# Two commands set up and run everything on a fresh machine (README):
#   make bench   srx bench --input 320x180 on the embedded default model
#   make test    ruff + the whole test suite (what CI runs)
# Both create .venv on first use. On machines with a CUDA torch already, set TORCH= to keep it.

PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
EXTRAS ?= torch,cpu,dev,trt-rtx,kernels,video
BIN    := $(VENV)/bin

.PHONY: setup bench test lint

$(BIN)/srx: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(if $(TORCH),$(BIN)/pip install -q "$(TORCH)")
	$(BIN)/pip install -q -e ".[$(EXTRAS)]"
	touch $@

setup: $(BIN)/srx

bench: setup
	$(BIN)/srx bench --input 320x180

lint: setup
	$(BIN)/ruff check srx tests bench
	$(BIN)/ruff format --check srx tests bench

test: lint
	$(BIN)/python -m pytest -q
