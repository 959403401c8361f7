"""Configuration of AI feedback, from the environment (engine knobs come from generation.conf).

``FEEDBACK_JUDGE_MODULES``: comma-separated module prefixes under which the API may
name programmatic judges (the management command, run by an operator, may name any).
``FEEDBACK_REWARD_MODEL_BATCH_SIZE``: rows per reward-model forward pass.
"""

from __future__ import annotations

from typing import Any

import environ

from generation import conf as generation_conf
from generation import endpoints
from generation.backends import GenerationBackend, get_backend
from generation.models import ModelVersion

env = environ.Env()
DEFAULT_JUDGE_MODULES = ("generation.feedback.", "generation.demo.", "generation.instruct.")


def allowed_judge_modules() -> tuple[str, ...]:
    extra = [m.strip() for m in env.str("FEEDBACK_JUDGE_MODULES", default="").split(",")]
    return DEFAULT_JUDGE_MODULES + tuple(m for m in extra if m)


def backend_name() -> str:
    return generation_conf.backend_name()


def backend_for(model: str | ModelVersion) -> GenerationBackend:
    """The backend of a model version (its server's when it is an endpoint), or the
    worker's generation backend (vLLM or transformers) loaded with a source path."""
    if isinstance(model, ModelVersion):
        return endpoints.version_backend(model)
    name = backend_name()
    return get_backend(name, model, **generation_conf.backend_options(name))


def reward_model_options() -> dict[str, Any]:
    return {
        "dtype": env.str("GENERATION_DTYPE", default="auto"),
        "device": env.str("GENERATION_DEVICE", default="auto"),
        "batch_size": env.int("FEEDBACK_REWARD_MODEL_BATCH_SIZE", default=32),
    }
