# Two commands set up and run everything on a fresh machine (README):
#   make bench   srx bench --input 320x180 on the embedded default model
#   make test    ruff + the whole test suite (what CI runs)
# Both create .venv on first use. On machines with a CUDA torch already, set TORCH= to keep it.
# `make test` also makes .venv-serve, where `srx serve` runs in the tests: PyTriton requires
# numpy<2, so it gets an environment of its own (README: Serving) instead of downgrading .venv.

PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
EXTRAS ?= torch,cpu,dev,trt-rtx,kernels,triton-client,video
BIN    := $(VENV)/bin
SERVE_VENV ?= .venv-serve

.PHONY: setup serve-env bench test lint

$(BIN)/srx: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(if $(TORCH),$(BIN)/pip install -q "$(TORCH)")
	$(BIN)/pip install -q -e ".[$(EXTRAS)]"
	touch $@

setup: $(BIN)/srx

# No torch here: the serving tests serve an exported ONNX with onnxruntime.
$(SERVE_VENV)/bin/srx: pyproject.toml
	$(PYTHON) -m venv $(SERVE_VENV)
	$(SERVE_VENV)/bin/pip install -q --upgrade pip
	$(SERVE_VENV)/bin/pip install -q -e ".[serve,cpu]"
	touch $@

serve-env: $(SERVE_VENV)/bin/srx

bench: setup
	$(BIN)/srx bench --input 320x180

lint: setup
	$(BIN)/ruff check srx tests bench
	$(BIN)/ruff format --check srx tests bench

test: lint serve-env
	SRX_SERVE_PYTHON=$(abspath $(SERVE_VENV))/bin/python $(BIN)/python -m pytest -q
