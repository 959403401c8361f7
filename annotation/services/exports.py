"""Export snapshots: judgments → TRL rows under ``ExportRules``, frozen by content hash.

A snapshot lives in ``DATA_DIR/exports/<project>/<sha256>/`` as ``data.jsonl`` (the
bytes the hash covers), ``README.md`` (dataset card) and ``prefloop_export.json``.
The same data gives the same hash, so exporting again returns the existing snapshot.
The rows come from ``annotation.selectors.exports.export_rows_build``; training runs
refer to a snapshot by its hash (``annotation.selectors.exports.export_snapshot_get``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from annotation.io import writers
from annotation.io.paths import safe_path_under
from annotation.io.rules import ExportRules
from annotation.io.snapshots import snapshot_folder_write
from annotation.models import ExportSnapshot, Project
from annotation.selectors.exports import export_rows_build
from prefloop.exceptions import ApplicationError, NotFoundError

JSONL_SUFFIXES = (".jsonl", ".json")


def export_snapshot_create(
    *,
    project: Project,
    fmt: str,
    rules: ExportRules | None = None,
    user: AbstractBaseUser | None = None,
) -> tuple[ExportSnapshot, bool]:
    """Build the rows, hash them, and store a snapshot unless one with that hash exists."""
    if fmt not in writers.FORMATS:
        raise ApplicationError(
            f"unknown format {fmt!r}; expected one of {', '.join(writers.FORMATS)}"
        )
    export_format, rules = writers.FORMATS[fmt], rules or ExportRules()
    rows, counts = export_rows_build(project=project, fmt=export_format, rules=rules)
    data = writers.jsonl_bytes(rows)
    digest = writers.content_hash(data)
    info = writers.manifest(
        project=project.slug, fmt=export_format, rules=rules, counts=counts, digest=digest
    )
    return export_snapshot_store(
        project=project, fmt=fmt, data=data, manifest=info, card=writers.dataset_card(info),
        rules=rules.as_dict(), user=user,
    )


def export_snapshot_store(
    *,
    project: Project,
    fmt: str,
    data: bytes,
    manifest: dict,
    card: str,
    rules: dict,
    user: AbstractBaseUser | None = None,
) -> tuple[ExportSnapshot, bool]:
    """Store ``data`` (JSONL rows) as the project's snapshot, once per content hash.

    The one path by which snapshots are written (exports, rounds, AI-feedback training
    data): the folder under ``DATA_DIR/exports`` by ``snapshot_folder_write``, then its
    ``ExportSnapshot`` row. ``manifest`` holds ``content_hash`` and ``counts``.
    """
    digest = manifest["content_hash"]
    folder = snapshot_folder_write(
        root=Path(settings.DATA_DIR) / "exports", slug=project.slug, digest=digest,
        data=data, card=card, manifest=manifest,
    )
    return ExportSnapshot.objects.get_or_create(
        project=project, format=fmt, content_hash=digest,
        defaults={"path": str(folder), "rules": rules, "counts": manifest["counts"],
                  "created_by": user},
    )


def export_snapshot_file(*, snapshot: ExportSnapshot, name: str = writers.DATA_FILE) -> Path:
    """One of the snapshot's files (data, card, manifest, or the CSV view of the data)."""
    if name not in writers.SNAPSHOT_FILES:
        raise NotFoundError(f"a snapshot has no file {name!r}")
    path = safe_path_under(snapshot.path, name)
    if name == writers.CSV_FILE and not path.is_file():
        _csv_write(snapshot, path)
    if not path.is_file():
        raise NotFoundError(f"the snapshot's {name} is missing from {snapshot.path}")
    return path


def _csv_write(snapshot: ExportSnapshot, path: Path) -> None:
    """``data.csv``, made from ``data.jsonl`` on first request (spreadsheet-safe cells)."""
    source = export_snapshot_file(snapshot=snapshot)
    info = json.loads(export_snapshot_file(snapshot=snapshot, name=writers.MANIFEST_FILE)
                      .read_text("utf-8"))
    rows = [json.loads(line) for line in source.read_text("utf-8").splitlines() if line]
    data = writers.csv_bytes(rows, list(info["columns"]))
    handle, staging = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    os.chmod(staging, 0o644)
    os.replace(staging, path)


def export_snapshot_write(*, snapshot: ExportSnapshot, out: Path) -> list[Path]:
    """Copy a snapshot to ``out``: ``*.jsonl`` gets JSONL, any other path a datasets folder.

    Beside a JSONL file the card and manifest are ``<stem>.README.md`` and
    ``<stem>.prefloop_export.json`` (so an existing README.md is never overwritten);
    a folder holds ``README.md`` and ``prefloop_export.json`` next to the Arrow data.
    """
    out = Path(out)
    source = export_snapshot_file(snapshot=snapshot)
    card = export_snapshot_file(snapshot=snapshot, name=writers.CARD_FILE)
    manifest = export_snapshot_file(snapshot=snapshot, name=writers.MANIFEST_FILE)
    if out.suffix.lower() in JSONL_SUFFIXES:
        out.parent.mkdir(parents=True, exist_ok=True)
        targets = [out, out.with_name(f"{out.stem}.{writers.CARD_FILE}"),
                   out.with_name(f"{out.stem}.{writers.MANIFEST_FILE}")]
        for src, target in zip((source, card, manifest), targets, strict=True):
            shutil.copyfile(src, target)
        return targets
    _folder_prepare(out)
    from annotation.io import hf  # imports `datasets` (slow): only for folders

    rows = [json.loads(line) for line in source.read_text("utf-8").splitlines()]
    hf.folder_save(rows, json.loads(manifest.read_text("utf-8"))["columns"], out)
    shutil.copyfile(card, out / writers.CARD_FILE)
    shutil.copyfile(manifest, out / writers.MANIFEST_FILE)
    return [out]


def _folder_prepare(out: Path) -> None:
    """A datasets folder is written only where nothing but an earlier export lives."""
    if out.exists() and not out.is_dir():
        raise ApplicationError(f"{out} is a file; give a .jsonl path or a folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / writers.MANIFEST_FILE).is_file():
            raise ApplicationError(f"refusing to write into {out}: the folder is not empty")
        shutil.rmtree(out)
