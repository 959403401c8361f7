"""Hugging Face ``datasets`` folders (``save_to_disk`` / ``load_from_disk``).

The only module here that imports ``datasets`` (slow to import): callers load it
when a folder is actually read or written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import datasets

from annotation.io.paths import UnsafePath, safe_path_under
from annotation.io.readers import FileRejected, Record
from annotation.io.rows import SPLIT_ALIASES

MESSAGES = datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")})
COLUMN_TYPES = {
    "string": datasets.Value("string"),
    "messages": MESSAGES,
    "bool": datasets.Value("bool"),
    "int64": datasets.Value("int64"),
    "float64": datasets.Value("float64"),
}

Parts = list[tuple[str | None, datasets.Dataset]]


def folder_open(path: Path) -> Parts:
    """The dataset, or each split of a ``DatasetDict``, with its split name."""
    metadata_check(path)
    try:
        loaded = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError, TypeError, KeyError, AttributeError) as exc:
        raise FileRejected(f"not a Hugging Face datasets folder (save_to_disk): {exc}") from exc
    if isinstance(loaded, datasets.DatasetDict):
        return list(loaded.items())
    return [(None, loaded)]


def metadata_check(folder: Path) -> None:
    """``load_from_disk`` opens the files its JSON metadata names: every split folder
    (``dataset_dict.json``) and data file (``state.json``) must lie inside ``folder``."""
    if (folder / "dataset_dict.json").is_file():
        splits = _metadata(folder / "dataset_dict.json").get("splits")
        if not isinstance(splits, list) or not all(isinstance(s, str) for s in splits):
            raise FileRejected("dataset_dict.json: 'splits' must be a list of names")
        for split in splits:
            metadata_check(_inside(folder, split))
        return
    if (folder / "state.json").is_file():
        files = _metadata(folder / "state.json").get("_data_files")
        if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
            raise FileRejected("state.json: '_data_files' must be a list of objects")
        for entry in files:
            _inside(folder, entry.get("filename"))


def _metadata(path: Path) -> dict:
    try:
        data = json.loads(path.read_bytes())
    except (ValueError, RecursionError) as exc:
        raise FileRejected(f"{path.name} is not valid JSON") from exc
    if not isinstance(data, dict):
        raise FileRejected(f"{path.name} must hold a JSON object")
    return data


def _inside(folder: Path, name: object) -> Path:
    try:
        return safe_path_under(folder, name if isinstance(name, str) else "")
    except UnsafePath as exc:
        raise FileRejected(f"the dataset names a file outside its folder: {name!r}") from exc


def row_count(parts: Parts) -> int:
    return sum(len(dataset) for _, dataset in parts)


def folder_records(parts: Parts) -> Iterator[Record]:
    """Rows in order, numbered from 1 over the whole folder (``where`` counts within a split).

    A DatasetDict split name sets the prompt split of its rows.
    """
    number = 0
    for name, dataset in parts:
        split = _split_from_name(name)
        for index, row in enumerate(dataset, start=1):
            number += 1
            where = f"{name} row {index}" if name else f"row {index}"
            data = dict(row)
            if split and data.get("split") is None:
                data["split"] = split
            yield Record(number, where, data=data)


def _split_from_name(name: str | None) -> str | None:
    if name is None:
        return None
    for alias, split in SPLIT_ALIASES.items():
        if name.lower().startswith(alias):
            return split
    return None


def folder_save(rows: list[dict], columns: dict[str, str], out: Path) -> None:
    """Write ``rows`` as a ``Dataset`` with an explicit schema (stable even with no rows)."""
    features = datasets.Features({name: COLUMN_TYPES[kind] for name, kind in columns.items()})
    table = {name: [row.get(name) for row in rows] for name in columns}
    dataset = datasets.Dataset.from_dict(table, features=features)
    # With no rows, save_to_disk writes no shard and load_from_disk fails (datasets 5.2).
    dataset.save_to_disk(str(out), num_shards=1 if not rows else None)
