"""Parsing shared by the training commands."""

from __future__ import annotations

import json

from django.core.management.base import CommandError


def key_value_param(text: str) -> tuple[str, object]:
    """``--param KEY=VALUE``: the value is read as JSON when it parses, else kept as text."""
    key, sep, value = text.partition("=")
    if not sep:
        raise CommandError(f"--param needs KEY=VALUE, got {text!r}")
    try:
        return key.replace("-", "_"), json.loads(value)
    except json.JSONDecodeError:
        return key.replace("-", "_"), value
