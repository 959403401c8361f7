"""Training rows in TRL 1.16's layouts, their canonical JSONL bytes, hash and dataset card.

- ``trl-dpo``: ``prompt``, ``chosen``, ``rejected`` strings. The prompt string is the
  single user turn; prompts with more turns (or a system message) have no faithful
  string form, so they are dropped (``multi_turn_prompt``): use the conversational form.
- ``trl-dpo-conversational``: ``prompt`` is the message list, ``chosen``/``rejected``
  are ``[{"role": "assistant", "content": ...}]``.
- ``trl-kto`` / ``trl-kto-conversational``: ``prompt``, ``completion``, ``label`` (bool).

``data.csv`` is the same rows for spreadsheets (``csv_bytes``): conversations as JSON
text, and cells that a spreadsheet would run as a formula escaped. JSONL and datasets
files are never escaped: they hold the text exactly as it was judged.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from typing import Any

from annotation.io.rules import ExportRules

MULTI_TURN_PROMPT = "multi_turn_prompt"
DUPLICATE = "duplicate"
DATA_FILE = "data.jsonl"
CARD_FILE = "README.md"
MANIFEST_FILE = "prefloop_export.json"
CSV_FILE = "data.csv"  # a spreadsheet view of data.jsonl, made on request
SNAPSHOT_FILES = (DATA_FILE, CARD_FILE, MANIFEST_FILE, CSV_FILE)
# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV
# injection"); such a cell gets a leading single quote in CSV/TSV files, nowhere else.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class ExportFormat:
    name: str
    objective: str  # dpo / kto
    conversational: bool
    trainer: str
    columns: dict[str, str]  # TRL's columns → type (see annotation.io.hf.COLUMN_TYPES)
    metadata: dict[str, str]


def _format(name: str, objective: str, conversational: bool) -> ExportFormat:
    text = "messages" if conversational else "string"
    if objective == "dpo":
        columns = {"prompt": text, "chosen": text, "rejected": text}
        metadata = {"prefloop_task_id": "int64", "agreement": "float64", "n_votes": "int64"}
    else:
        columns = {"prompt": text, "completion": text, "label": "bool"}
        metadata = {
            "prefloop_response_id": "int64", "prefloop_task_id": "int64",
            "prefloop_from": "string", "agreement": "float64", "n_votes": "int64",
        }
    trainer = "DPOTrainer" if objective == "dpo" else "KTOTrainer"
    return ExportFormat(name, objective, conversational, trainer, columns, metadata)


FORMATS = {
    f.name: f
    for f in (
        _format("trl-dpo", "dpo", False),
        _format("trl-dpo-conversational", "dpo", True),
        _format("trl-kto", "kto", False),
        _format("trl-kto-conversational", "kto", True),
    )
}


def columns_of(fmt: ExportFormat, rules: ExportRules) -> dict[str, str]:
    return {**fmt.columns, **(fmt.metadata if rules.metadata_columns else {})}


def prompt_value(messages: list[dict[str, str]], conversational: bool) -> Any:
    """The prompt cell, or None when a string format cannot hold this prompt."""
    if conversational:
        return [{"role": m["role"], "content": m["content"]} for m in messages]
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    return None


def reply_value(text: str, conversational: bool) -> Any:
    return [{"role": "assistant", "content": text}] if conversational else text


def row_build(fmt: ExportFormat, rules: ExportRules, cells: dict, meta: dict) -> dict:
    """TRL's columns in order, then the metadata columns when the rules ask for them."""
    row = {name: cells[name] for name in fmt.columns}
    if rules.metadata_columns:
        row.update({name: meta.get(name) for name in fmt.metadata})
    return row


def jsonl_bytes(rows: list[dict]) -> bytes:
    """Canonical JSONL: fixed key order, UTF-8, one row per line (what the hash covers)."""
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")


def spreadsheet_cell(value: Any) -> Any:
    """A CSV/TSV cell that a spreadsheet shows as text, never runs as a formula.

    Strings starting with ``= + - @``, a tab or a carriage return get a ``'`` prefix;
    lists and objects (conversations) are written as JSON text first; numbers, booleans
    and empty values are left alone (``-0.5`` is a number, not a formula).
    """
    if isinstance(value, (list, dict)):
        value = json.dumps(value, ensure_ascii=False)
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else value


def csv_bytes(rows: list[dict], columns: list[str], delimiter: str = ",") -> bytes:
    """Rows as CSV (TSV with a tab ``delimiter``), UTF-8, header first, cells escaped."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([spreadsheet_cell(row.get(name)) for name in columns])
    return out.getvalue().encode("utf-8")


def content_hash(data: bytes) -> str:
    """sha256 of the JSONL bytes: ``sha256sum data.jsonl`` prints the same."""
    return hashlib.sha256(data).hexdigest()


def manifest(*, project: str, fmt: ExportFormat, rules: ExportRules, counts: dict,
             digest: str) -> dict:
    return {
        "prefloop_export": 1,
        "project": project,
        "format": fmt.name,
        "trainer": f"trl.{fmt.trainer}",
        "content_hash": digest,
        "data_file": DATA_FILE,
        "columns": columns_of(fmt, rules),
        "rules": rules.as_dict(),
        "counts": counts,
    }


def dataset_card(info: dict) -> str:
    """A Hugging Face dataset card (README.md) for a ``manifest``."""
    fmt = FORMATS[info["format"]]
    counts = info["counts"]
    lines = [
        "---",
        f'pretty_name: "Prefloop export: {info["project"]} ({fmt.name})"',
        f"tags: [prefloop, trl, {fmt.objective}, preference]",
        "---",
        "",
        f"# {info['project']}: {fmt.name}",
        "",
        f"Preference data exported by Prefloop for `{info['trainer']}` (TRL 1.16 layout).",
        "",
        f"- Snapshot content hash (sha256 of `{DATA_FILE}`): `{info['content_hash']}`",
        f"- Rows: {counts['rows']}",
        "",
        "## Columns",
        "",
        "| column | type |",
        "|---|---|",
        *[f"| `{name}` | {kind} |" for name, kind in info["columns"].items()],
        "",
        "## Loading",
        "",
        "```python",
        "from datasets import load_dataset, load_from_disk",
        f'rows = load_dataset("json", data_files="{DATA_FILE}", split="train")',
        "# or, for a folder written with save_to_disk: rows = load_from_disk(path)",
        "```",
        "",
        "## Aggregation rules",
        "",
        "| rule | value |",
        "|---|---|",
        *[f"| `{name}` | `{json.dumps(value)}` |" for name, value in info["rules"].items()],
        "",
        "See `docs/data-formats.md` in Prefloop for what each rule means.",
        "",
        "## Counts",
        "",
        *_counts_lines(counts),
    ]
    return "\n".join(lines) + "\n"


def _counts_lines(counts: dict) -> list[str]:
    lines = [f"- rows written: {counts['rows']}"]
    lines += [f"- candidates ({name}): {n}" for name, n in counts.get("candidates", {}).items()]
    dropped = counts.get("dropped", {})
    lines.append(f"- dropped: {sum(dropped.values())}")
    lines += [f"  - {reason}: {n}" for reason, n in sorted(dropped.items())]
    lines.append(f"- votes counted: {counts.get('votes_counted', 0)}")
    excluded = counts.get("annotators_excluded", [])
    lines.append(f"- annotators excluded by gold accuracy: {', '.join(excluded) or 'none'}")
    if "judgments_flagged" in counts:
        lines.append(f"- judgments flagged as bad (left out): {counts['judgments_flagged']}")
    return lines
