"""Shared fixtures.

Services: tests that need PostgreSQL, Redis or a live worker call ``require(...)``.
Outside CI a missing service skips the test; with ``CI=true`` it fails, so a
green CI run always means the real service was exercised.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.db import connection

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip (locally) or fail (in CI) when a needed service is missing."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture
def require_postgres() -> None:
    require(
        connection.vendor == "postgresql",
        "needs PostgreSQL: set DATABASE_URL=postgres://postgres@127.0.0.1:5432/prefloop",
    )


@pytest.fixture
def make_user(django_user_model):
    def make(username: str, password: str = "pw-for-tests-only", **extra):
        return django_user_model.objects.create_user(username=username, password=password, **extra)

    return make


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """A quickly trained demo-architecture model (seconds): for plumbing, parity, speed.

    Its answers are poor; tests of accuracy use ``demo_model_dir``.
    """
    from django.conf import settings

    from generation.demo.build import build_demo_model

    out = settings.VAR_DIR / "test-models" / "tiny-s30"
    build_demo_model(out, seed=0, steps=30, log=lambda _msg: None, eval_samples_per_question=1)
    return out


@pytest.fixture(scope="session")
def demo_model_dir() -> Path:
    """The real demo model (built once per machine into var/models/demo-base, minutes)."""
    from django.conf import settings

    from generation.demo.build import build_demo_model

    build_demo_model(settings.DEMO_MODEL_DIR, seed=0, log=lambda _msg: None)
    return settings.DEMO_MODEL_DIR
