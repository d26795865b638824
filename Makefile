# Two entry points, both working on a fresh clone: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
# the tested set; `CONSTRAINTS= make test` takes the newest releases pyproject's bounds allow (.github/workflows/newest.yml)
CONSTRAINTS ?= constraints.txt
TORCH ?= torch==2.13.0
# sentence-transformers' ONNX backend and optimum's ORTModel need transformers<4.58: their own environment
ST5_ONNX ?= .venv-st5-onnx
export HUBFORGE_ST5_ONNX_PYTHON := $(abspath $(ST5_ONNX))/bin/python
# transformers.js (node) for the consumer check, from the lock file in src/hubforge/clients/js
NODE_CLIENTS ?= .node-clients
export HUBFORGE_NODE_CLIENTS := $(abspath $(NODE_CLIENTS))

# llama-cpp-python builds llama.cpp from source (pip keeps the wheel in its cache): only the library, for the
# x86-64 level every host here has (AVX2/FMA/F16C), not -march=native, so a cached wheel runs on each of them
LLAMA_CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DLLAMA_OPENSSL=OFF

.PHONY: install demo test bench

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
		$(PY) -m pip install -q $(if $(CONSTRAINTS),-c $(CONSTRAINTS)) -e ".[test,clients,gguf,devhub]"
	$(PY) -m pip check
	touch $@

$(ST5_ONNX)/.installed: src/hubforge/clients/st5_onnx.txt
	python3 -m venv $(ST5_ONNX)
	$(ST5_ONNX)/bin/python -m pip install -q --upgrade pip
	$(ST5_ONNX)/bin/python -m pip install -q torch==2.13.0
	$(ST5_ONNX)/bin/python -m pip install -q -r src/hubforge/clients/st5_onnx.txt
	touch $@

# onnxruntime-node ships its CPU binaries in the package; its install script only fetches CUDA ones from outside
# the registry, so scripts are skipped
$(NODE_CLIENTS)/.installed: src/hubforge/clients/js/package.json src/hubforge/clients/js/package-lock.json
	mkdir -p $(NODE_CLIENTS)
	cp src/hubforge/clients/js/package.json src/hubforge/clients/js/package-lock.json $(NODE_CLIENTS)/
	npm ci --prefix $(NODE_CLIENTS) --ignore-scripts --no-audit --no-fund --silent
	touch $@

install: $(VENV)/.installed $(ST5_ONNX)/.installed $(NODE_CLIENTS)/.installed

demo: install
	$(VENV)/bin/hubforge demo

test: install
	$(PY) -m pytest -n 2

bench: install
	$(PY) benchmarks/bench_minilm.py
