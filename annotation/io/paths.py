"""The one place where a user-provided value becomes a filesystem path.

``safe_path_under(root, value)`` joins, resolves (following symlinks) and then checks
that the result is still inside ``root``: ``../../etc/passwd``, an absolute path
elsewhere, a symlink pointing out of the folder and a NUL byte are all refused with
``UnsafePath`` (a ``ValueError``; the APIs answer 400). Whatever a caller does with the
returned path, it never reads or writes outside the allowed folder.

Django-free (backends and the file readers import it), so it lives here rather than in
the ``prefloop`` project package, whose ``__init__`` loads the Celery app.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

NUL = "\x00"


class UnsafePath(ValueError):
    """A user-provided path that would leave its allowed folder (or cannot be a path)."""


def safe_path_under(root: Path | str, value: Path | str, *, absolute: bool = False) -> Path:
    """``root / value`` resolved, guaranteed to lie inside ``root`` (or be ``root``).

    With ``absolute`` the value must be an absolute path (a relative one would be read
    against some other process's working folder later).
    """
    text = str(value)
    if NUL in text:
        raise UnsafePath("the path contains a NUL character")
    if not text.strip():
        raise UnsafePath("the path is empty")
    if absolute and not Path(text).expanduser().is_absolute():
        raise UnsafePath(f"{text!r} is not an absolute path")
    base = Path(root).resolve()
    try:
        candidate = (base / Path(text).expanduser()).resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop, a name too long
        raise UnsafePath(f"{text!r} cannot be resolved: {exc}") from exc
    if not candidate.is_relative_to(base):
        raise UnsafePath(f"{text!r} is outside the allowed folder")
    return candidate


def safe_path_within(roots: Iterable[Path | str], value: Path | str) -> Path:
    """An absolute ``value`` that lies inside one of ``roots`` (resolved), else ``UnsafePath``."""
    refusal = UnsafePath("no folder is allowed")
    for root in roots:
        try:
            return safe_path_under(root, value, absolute=True)
        except UnsafePath as exc:
            refusal = exc
    raise refusal
