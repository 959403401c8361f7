"""Validate a whole file before anything is written: every bad line is reported.

``file_validate`` reads JSONL, CSV or a ``datasets`` folder, decides the file's row
kind from its first row (or CSV header), parses each record and collects an ``Issue``
for each bad one, including rows that contradict an earlier row of the same file.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from annotation.io import readers
from annotation.io.readers import FileRejected, Record
from annotation.io.rows import (
    KIND_COLUMNS,
    MAX_RESPONSES_PER_ROW,
    PREFERENCE,
    UNPAIRED,
    ImportRow,
    RowError,
    kind_detect,
    row_parse,
)


@dataclass(frozen=True)
class ImportLimits:
    max_bytes: int
    max_field_chars: int = 100_000
    max_rows: int = 100_000
    max_responses_per_row: int = MAX_RESPONSES_PER_ROW
    max_zip_entries: int = 10_000


@dataclass(frozen=True)
class Issue:
    line: int
    where: str
    reason: str

    def as_dict(self) -> dict:
        return {"line": self.line, "where": self.where, "reason": self.reason}


@dataclass
class Validation:
    format: str
    kind: str | None = None
    records: int = 0
    rows: list[ImportRow] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)


def file_validate(path: Path, *, fmt: str = "auto", limits: ImportLimits) -> Validation:
    """Parse and check every row of ``path``; raises ``FileRejected`` for whole-file problems."""
    if not path.exists():
        raise FileRejected(f"no such file or folder: {path}")
    readers.size_check(path, limits.max_bytes)
    fmt = readers.format_detect(path, fmt)
    with tempfile.TemporaryDirectory(prefix="prefloop-import-") as scratch:
        records = _records(path, fmt, Path(scratch), limits)
        validation = _records_validate(records, fmt, limits)
    if validation.records == 0:
        raise FileRejected("the file is empty: there are no rows to import")
    return validation


def _records(path: Path, fmt: str, scratch: Path, limits: ImportLimits) -> Iterator[Record]:
    if fmt == "jsonl":
        return readers.jsonl_records(path)
    if fmt == "csv":
        return readers.csv_records(path)
    from annotation.io import hf  # imports `datasets` (slow): only for folders

    folder = (
        path
        if path.is_dir()
        else readers.zip_extract(path, scratch, limits.max_bytes, limits.max_zip_entries)
    )
    parts = hf.folder_open(folder)
    if hf.row_count(parts) > limits.max_rows:
        raise FileRejected(_too_many_rows(limits))
    return hf.folder_records(parts)


def _records_validate(records: Iterator[Record], fmt: str, limits: ImportLimits) -> Validation:
    validation = Validation(format=fmt)
    kind_where, columns, seen = "", set(), {}
    for record in records:
        validation.records += 1
        if validation.records > limits.max_rows:
            raise FileRejected(_too_many_rows(limits))
        if record.error is not None:
            validation.issues.append(Issue(record.line, record.where, record.error))
            continue
        columns |= set(record.data)
        try:
            row_kind = kind_detect(set(record.data))
            if validation.kind is None:
                validation.kind, kind_where = row_kind, record.where
            elif row_kind != validation.kind:
                raise RowError(
                    f"this is a {row_kind} row, but the file holds {validation.kind} rows "
                    f"(as {kind_where} showed); import each kind from its own file"
                )
            row = row_parse(
                record.data, kind=row_kind, line=record.line, where=record.where,
                max_chars=limits.max_field_chars, csv=fmt == "csv",
                max_responses=limits.max_responses_per_row,
            )
            _contradiction_check(row, seen)
        except RowError as exc:
            validation.issues.append(Issue(record.line, record.where, str(exc)))
        else:
            validation.rows.append(row)
    if validation.kind:
        validation.ignored_columns = sorted(columns - KIND_COLUMNS[validation.kind])
    return validation


def _contradiction_check(row: ImportRow, seen: dict) -> None:
    """The same pair (or completion) twice with opposite verdicts cannot both be imported."""
    prompt = json.dumps(row.messages, sort_keys=True)
    if row.kind == PREFERENCE:
        key, verdict = (prompt, frozenset((row.chosen, row.rejected))), row.chosen
    elif row.kind == UNPAIRED:
        key, verdict = (prompt, row.completion), row.label
    else:
        return
    if key in seen and seen[key][0] != verdict:
        what = "pair" if row.kind == PREFERENCE else "completion"
        raise RowError(f"contradicts {seen[key][1]}: the same {what} with the opposite verdict")
    seen.setdefault(key, (verdict, row.where))


def _too_many_rows(limits: ImportLimits) -> str:
    return (
        f"the file has more than {limits.max_rows:,} rows (PREFLOOP_MAX_IMPORT_ROWS): "
        "split it into smaller files"
    )
