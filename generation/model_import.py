"""Registering a model from a GGUF file: convert it once, then register the folder.

The conversion (:mod:`generation.gguf_import`) runs outside any transaction (it takes
minutes); only the registration writes rows. Registering the same file again under the
same name is a no-op; a second name for the same file shares the converted folder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import transaction

from annotation.models import Project
from generation import services
from generation.gguf_import import GGUFImportError, convert_gguf
from generation.models import ModelVersion
from prefloop.exceptions import InvalidInputError


def is_gguf_source(source: str) -> bool:
    return source.lower().endswith(".gguf")


def model_version_register_gguf(
    *, name: str, gguf_path: str, notes: str = "", project: Project | None = None,
    log: Callable[[str], object] = lambda _m: None,
) -> ModelVersion:
    """Convert ``gguf_path`` under the models folder and register the result as ``name``.

    The version's metadata records the source file's hash, quantisation type and dtype.
    """
    try:
        converted = convert_gguf(Path(gguf_path), Path(settings.MODELS_DIR), log=log)
    except GGUFImportError as exc:
        raise InvalidInputError({"source": str(exc)}) from exc
    with transaction.atomic():
        version = services.model_version_register_checked(
            name=name, source=converted.folder, notes=notes, project=project
        )
        if version.metadata.get("gguf") != converted.metadata()["gguf"]:
            version.metadata = {**version.metadata, **converted.metadata()}
            version.save(update_fields=["metadata"])
    return version
