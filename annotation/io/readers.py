"""Files → numbered records. Bad lines become records with an error, never exceptions.

JSONL and CSV are read as bytes, one physical line at a time, so invalid UTF-8 is
reported with its line number; a UTF-8 byte-order mark and CRLF line ends are
accepted. A problem with the whole file (too large, empty, unreadable) raises
``FileRejected``.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from annotation.io.paths import UnsafePath, safe_path_under

FORMATS = ("auto", "jsonl", "csv", "hf")
BOM = b"\xef\xbb\xbf"
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
TOO_MANY_DIGITS = f"invalid JSON: a number has more than {sys.get_int_max_str_digits():,} digits"


class FileRejected(Exception):
    """The whole file cannot be imported (its rows are not even looked at)."""


class FileTooLarge(FileRejected):
    """The file is over the size limit."""


@dataclass(frozen=True)
class Record:
    line: int
    where: str
    data: dict[str, Any] | None = None
    error: str | None = None


def size_of(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def size_check(path: Path, max_bytes: int) -> None:
    size = size_of(path)
    if size > max_bytes:
        raise FileTooLarge(
            f"the file is {size:,} bytes; the import limit is {max_bytes:,} bytes "
            "(PREFLOOP_MAX_IMPORT_BYTES): split it into smaller files"
        )


def format_detect(path: Path, fmt: str = "auto") -> str:
    """``jsonl``, ``csv`` or ``hf`` (a ``save_to_disk`` folder, or a zip of one)."""
    if fmt not in FORMATS:
        raise FileRejected(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt != "auto":
        return fmt
    if path.is_dir() or path.suffix.lower() == ".zip":
        return "hf"
    if path.suffix.lower() in JSONL_SUFFIXES:
        return "jsonl"
    if path.suffix.lower() == ".csv":
        return "csv"
    if zipfile.is_zipfile(path):
        return "hf"
    with path.open("rb") as stream:
        head = stream.read(4096).removeprefix(BOM).lstrip()
    return "jsonl" if head.startswith(b"{") else "csv"


def jsonl_records(path: Path) -> Iterator[Record]:
    """One JSON object per line; blank lines are skipped."""
    with path.open("rb") as stream:
        for number, raw in enumerate(stream, start=1):
            if number == 1:
                raw = raw.removeprefix(BOM)
            if not raw.strip():
                continue
            yield _jsonl_record(number, raw.rstrip(b"\r\n"))


def _jsonl_record(number: int, raw: bytes) -> Record:
    where = f"line {number}"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Record(number, where, error=f"invalid UTF-8 at byte {exc.start + 1} of the line")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return Record(number, where, error=f"invalid JSON: {exc.msg} (column {exc.colno})")
    except RecursionError:
        return Record(number, where, error="invalid JSON: nested too deeply")
    except ValueError:  # Python refuses integers of more than sys.get_int_max_str_digits()
        return Record(number, where, error=TOO_MANY_DIGITS)
    if not isinstance(data, dict):
        return Record(number, where, error="expected a JSON object ({...}) on each line")
    return Record(number, where, data=data)


def csv_records(path: Path) -> Iterator[Record]:
    """A header row, then one record per row; a record may span lines (quoted newlines).

    Empty cells are missing values; line breaks inside quoted cells are read as ``\\n``.
    A record is reported at the line where it starts.
    """
    bad_utf8: dict[int, int] = {}
    with path.open("rb") as stream:
        # Cell sizes are checked later, with a clearer message than csv's own limit.
        csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))
        reader = csv.reader(_decoded_lines(stream, bad_utf8))
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise FileRejected(f"line 1: the CSV header cannot be read: {exc}") from exc
        if header is None:
            return
        columns = _csv_header(header, bad_utf8)
        yield from _csv_rows(reader, columns, bad_utf8)


def _decoded_lines(stream, bad_utf8: dict[int, int]) -> Iterator[str]:
    for number, raw in enumerate(stream, start=1):
        if number == 1:
            raw = raw.removeprefix(BOM)
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad_utf8[number] = exc.start + 1
            yield raw.decode("utf-8", errors="replace")


def _csv_header(header: list[str], bad_utf8: dict[int, int]) -> list[str]:
    if 1 in bad_utf8:
        raise FileRejected(f"line 1: invalid UTF-8 at byte {bad_utf8[1]} of the CSV header")
    columns = [name.strip() for name in header]
    if any(not name for name in columns):
        raise FileRejected("line 1: the CSV header has an empty column name")
    duplicates = sorted(name for name, n in Counter(columns).items() if n > 1)
    if duplicates:
        raise FileRejected(f"line 1: the CSV header repeats column(s) {', '.join(duplicates)}")
    return columns


def _csv_rows(reader, columns: list[str], bad_utf8: dict[int, int]) -> Iterator[Record]:
    previous_end = reader.line_num
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            start = previous_end + 1
            yield Record(start, f"line {start}", error=f"malformed CSV ({exc}); reading stopped")
            return
        start, previous_end = previous_end + 1, reader.line_num
        where = f"line {start}"
        bad = [n for n in range(start, previous_end + 1) if n in bad_utf8]
        if bad:
            yield Record(start, where, error=f"invalid UTF-8 on line {bad[0]}")
        elif not any(cell.strip() for cell in cells):
            continue
        elif len(cells) != len(columns):
            yield Record(start, where, error=f"{len(cells)} cells; the header has {len(columns)}")
        else:
            data = {name: _cell(cell) for name, cell in zip(columns, cells, strict=True)}
            yield Record(start, where, data=data)


def _cell(cell: str) -> str | None:
    return cell.replace("\r\n", "\n") if cell != "" else None


def zip_extract(path: Path, dest: Path, max_bytes: int, max_entries: int = 10_000) -> Path:
    """Unpack a zipped ``save_to_disk`` folder safely; returns the dataset folder inside.

    Refused before anything is written: more than ``max_entries`` entries, more than
    ``max_bytes`` unpacked, a path outside ``dest``, or one name used both for a file
    and for a folder (the second could not be written).
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise FileRejected("not a zip archive of a Hugging Face datasets folder") from exc
    with archive:
        members = archive.infolist()
        if len(members) > max_entries:
            raise FileTooLarge(
                f"the archive has {len(members):,} entries; the limit is {max_entries:,} "
                "(PREFLOOP_IMPORT_MAX_ZIP_ENTRIES)"
            )
        if sum(m.file_size for m in members) > max_bytes:
            raise FileTooLarge(
                f"the archive unpacks to more than {max_bytes:,} bytes (PREFLOOP_MAX_IMPORT_BYTES)"
            )
        targets = _zip_targets(members, dest)
        try:
            _zip_write(archive, targets)
        except (OSError, zipfile.BadZipFile, EOFError, ValueError, NotImplementedError) as exc:
            raise FileRejected(f"the archive cannot be unpacked: {type(exc).__name__}") from exc
    return dataset_folder_find(dest)


def _zip_targets(members: list[zipfile.ZipInfo], dest: Path) -> list[tuple]:
    """(member, target path, is a folder) for each entry; refuses unsafe or clashing names."""
    base = dest.resolve()
    targets, files, folders = [], set(), set()
    for member in members:
        try:
            target = safe_path_under(dest, member.filename)
        except UnsafePath as exc:
            raise FileRejected(f"the archive holds an unsafe path: {member.filename!r}") from exc
        is_dir = member.is_dir()
        (folders if is_dir else files).add(target)
        folders.update(parent for parent in target.parents if parent.is_relative_to(base))
        targets.append((member, target, is_dir))
    clash = files & folders
    if clash:
        name = min(clash).relative_to(base).as_posix() or "."
        raise FileRejected(f"the archive holds both a file and a folder named {name!r}")
    return targets


def _zip_write(archive: zipfile.ZipFile, targets: list[tuple]) -> None:
    for member, target, is_dir in targets:
        if is_dir:
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(member) as source, target.open("wb") as out:
            shutil.copyfileobj(source, out)


def dataset_folder_find(root: Path) -> Path:
    """The shallowest folder holding ``dataset_info.json`` or ``dataset_dict.json``."""
    markers = [*root.rglob("dataset_dict.json"), *root.rglob("dataset_info.json")]
    if not markers:
        raise FileRejected(
            "not a Hugging Face datasets folder: no dataset_info.json or dataset_dict.json "
            "(save the dataset with Dataset.save_to_disk)"
        )
    return min((m.parent for m in markers), key=lambda p: len(p.parts))
