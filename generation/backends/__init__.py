"""Generation backends, chosen by name; one live backend per process.

    backend = get_backend("vllm", "/models/round-2", enforce_eager=True)
    completions = backend.generate([[{"role": "user", "content": "Hi"}]], SamplingConfig(n=2))

Implementations are imported only when chosen, so a web process never loads torch or
vLLM. A GPU holds one engine at a time: asking for another model swaps it, in place
when only the weights differ (a new training round), else by shutting the old engine
down before the new one starts.
"""

from __future__ import annotations

import gc
import importlib
import logging
import threading
from typing import Any

from generation.backends.base import (
    BackendError,
    Completion,
    GenerationBackend,
    InvalidSamplingError,
    ModelLoadError,
    ModelTooLargeError,
    OptionRequest,
    PromptTooLongError,
    SamplingConfig,
    Score,
    ScoreRequest,
    check_model_source,
)

__all__ = [
    "BACKENDS", "BackendError", "Completion", "GenerationBackend", "InvalidSamplingError",
    "ModelLoadError", "ModelTooLargeError", "OptionRequest", "PromptTooLongError",
    "SamplingConfig", "Score", "ScoreRequest", "active_backend", "close_backend", "get_backend",
]

logger = logging.getLogger(__name__)

BACKENDS = {
    "vllm": "generation.backends.vllm:VLLMBackend",
    "transformers": "generation.backends.hf:TransformersBackend",
    "fake": "generation.backends.fake:FakeBackend",
    "remote": "generation.backends.remote:RemoteBackend",
}
# Backends that hold no engine here: cached beside the live engine, never swapping it out.
LIGHT = frozenset({"remote"})

_lock = threading.Lock()
_active: dict[str, Any] = {"backend": None, "key": None}
_light: dict[tuple, Any] = {}


def backend_class(name: str) -> type:
    if name not in BACKENDS:
        raise BackendError(
            f"unknown generation backend {name!r}; expected one of {sorted(BACKENDS)}"
        )
    module, _, attribute = BACKENDS[name].partition(":")
    try:
        return getattr(importlib.import_module(module), attribute)
    except ImportError as exc:
        raise BackendError(f"generation backend {name!r} is not installed here: {exc}") from exc


def get_backend(name: str, model: str, **options: Any) -> GenerationBackend:
    """The process's backend for ``model``, started, reloaded or swapped as needed."""
    key = (name, tuple(sorted(options.items())))
    check_model_source(model)  # a bad path must not cost the running engine either
    if name in LIGHT:
        return _light_backend(name, model, key, options)
    with _lock:
        backend = _active["backend"]
        if backend is not None and backend.closed:
            _active.update(backend=None, key=None)
            backend = None
        if backend is not None and _active["key"] == key:
            if backend.model == model:
                return backend
            if backend.can_reload(model):
                logger.info("loading weights of %s into the running %s engine", model, name)
                try:
                    backend.reload_weights(model)
                except BackendError:
                    _close_locked()
                    raise
                return backend
        cls = backend_class(name)  # a bad name must not cost the running engine
        _close_locked()
        logger.info("starting %s backend for %s", name, model)
        backend = cls(model, **options)
        _active.update(backend=backend, key=key)
        return backend


def _light_backend(name: str, model: str, key: tuple, options: dict) -> GenerationBackend:
    with _lock:
        backend = _light.get((model, key))
        if backend is None or backend.closed:
            backend = _light[(model, key)] = backend_class(name)(model, **options)
        return backend


def active_backend() -> GenerationBackend | None:
    return _active["backend"]


def close_backend() -> None:
    """Shut the live engine down (worker shutdown, tests, model swaps)."""
    with _lock:
        _close_locked()
        for backend in _light.values():
            backend.close()
        _light.clear()


def _close_locked() -> None:
    backend = _active["backend"]
    _active.update(backend=None, key=None)
    if backend is not None:
        logger.info("shutting down %s backend for %s", backend.name, backend.model)
        backend.close()
        del backend
        gc.collect()
