"""The Django-free layers import neither Django, Celery nor the ``prefloop`` project package.

Backends, the pure AI-feedback modules, the trainer core and losses, and the file
readers/writers run in processes that have no Django settings (vLLM workers,
``torchrun`` ranks, a laptop script). Each module is imported in a fresh interpreter,
so one module's imports never hide another's. ``prefloop`` is forbidden as a whole:
its ``__init__`` loads the Celery app, which loads Django (see docs/architecture.md,
"Layers").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("django", "celery", "prefloop")
DJANGO_FREE = (
    "annotation/io/*.py",
    "generation/backends/*.py",
    "generation/feedback/constitution.py",
    "generation/feedback/prompts.py",
    "generation/feedback/critique.py",
    "generation/feedback/judges/*.py",
    "generation/gguf_import.py",
    "generation/instruct/*.py",
    "generation/pairing.py",
    "training/core/*.py",
    "training/losses.py",
)
# Optional third-party packages a module may need (vLLM, peft, ...): without them the
# module cannot be checked here (skipped locally, a failure in CI).
PROJECT_PACKAGES = ("annotation", "generation", "training", "frontend", "prefloop", "tests")
PROBE = """
import importlib, json, sys
error, missing = "", None
try:
    importlib.import_module(sys.argv[1])
except ModuleNotFoundError as exc:
    error, missing = repr(exc), exc.name
except Exception as exc:
    error = repr(exc)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in sys.argv[2].split(","))
print(json.dumps({"error": error, "missing": missing, "loaded": loaded}))
"""


def _module_names() -> list[str]:
    paths = sorted({p for pattern in DJANGO_FREE for p in ROOT.glob(pattern)})
    return [
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in paths
    ]


def _probe(module: str, *, extra_path: Path | None = None) -> dict:
    """Import ``module`` alone in a fresh interpreter: its error, the forbidden modules loaded."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if extra_path is not None:
        env["PYTHONPATH"] = str(extra_path)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, module, ",".join(FORBIDDEN)],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_layers_are_found():
    names = _module_names()
    for expected in ("generation.backends.base", "generation.backends.vllm",
                     "generation.feedback.judges.constitutional", "training.core.train",
                     "training.losses", "annotation.io.paths"):
        assert expected in names
    assert "generation.backends" in names  # the package's __init__ counts too


@pytest.mark.parametrize("module", _module_names())
def test_module_imports_without_django(module):
    result = _probe(module)
    missing = result["missing"] or ""
    if missing and missing.split(".")[0] not in PROJECT_PACKAGES:
        require(False, f"{module} needs {missing}, which is not installed")
    assert not result["error"], result["error"]
    assert result["loaded"] == [], f"{module} loads {', '.join(result['loaded'][:8])}"


@pytest.mark.parametrize(
    "source",
    [
        "from generation.backends.base import BackendError\nimport prefloop\n",
        "from generation.backends.base import BackendError\n"
        "from prefloop.exceptions import ApplicationError\n",
    ],
    ids=["imports-prefloop", "imports-prefloop-exceptions"],
)
def test_a_backend_importing_prefloop_is_caught(tmp_path, source):
    (tmp_path / "throwaway_backend.py").write_text(source, "utf-8")
    result = _probe("throwaway_backend", extra_path=tmp_path)  # it may fail too: no settings
    assert {"django", "celery", "prefloop"} <= {m.split(".")[0] for m in result["loaded"]}
    assert "django.db" in result["loaded"]
