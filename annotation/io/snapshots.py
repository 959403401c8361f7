"""The one writer of snapshot folders: ``<root>/<project>/<sha256>/``, written once, atomically.

A snapshot folder holds ``data.jsonl`` (the bytes its hash covers), ``README.md`` (the
dataset card) and ``prefloop_export.json`` (the manifest). Exports, a round's training
data and AI-feedback training data all store their snapshots through
:func:`snapshot_folder_write` (by way of ``annotation.services.exports.export_snapshot_store``),
so the layout, the path confinement and the crash safety are the same for all three.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from annotation.io.paths import safe_path_under
from annotation.io.writers import CARD_FILE, DATA_FILE, MANIFEST_FILE


def snapshot_folder_write(
    *, root: Path | str, slug: str, digest: str, data: bytes, card: str, manifest: dict
) -> Path:
    """The folder ``root/slug/digest``, written unless it already holds the data.

    The path is confined to ``root`` (``UnsafePath`` otherwise). The files are written
    in a private staging folder that is then renamed into place, so a crash never leaves
    half a snapshot, and of two writers of the same data the second keeps the first's.
    """
    folder = safe_path_under(root, f"{slug}/{digest}")
    if (folder / DATA_FILE).is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{digest[:12]}-", dir=folder.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; training workers read it
    (staging / DATA_FILE).write_bytes(data)
    (staging / CARD_FILE).write_text(card, "utf-8")
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    (staging / MANIFEST_FILE).write_text(text, "utf-8")
    try:
        os.replace(staging, folder)
    except OSError:  # another writer of the same data won the race, or a stale folder
        shutil.rmtree(staging, ignore_errors=True)
        if not (folder / DATA_FILE).is_file():
            raise
    return folder
