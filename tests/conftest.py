"""Shared fixtures.

Services: tests that need PostgreSQL, Redis or a live worker call ``require(...)``.
Outside CI a missing service skips the test; with ``CI=true`` it fails, so a
green CI run always means the real service was exercised.
"""

from __future__ import annotations

import os

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
