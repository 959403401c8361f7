"""Import validation: every bad line reported, nothing written, limits, encodings, partial."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.db import connection

from annotation.io.validate import ImportLimits, file_validate
from annotation.models import Feedback, Judgment, Project, Prompt, Response, Task
from annotation.services import imports, projects

pytestmark = pytest.mark.django_db
MODELS = (Prompt, Response, Task, Judgment, Feedback)


@pytest.fixture
def project(make_user) -> Project:
    return projects.project_create(slug="val", owner=make_user("owner"))


def counts() -> list[int]:
    return [model.objects.count() for model in MODELS]


def lines(path: Path, *raw: str | bytes) -> Path:
    path.write_bytes(b"".join((r.encode() if isinstance(r, str) else r) + b"\n" for r in raw))
    return path


def reasons(report) -> list[tuple[int, str]]:
    return [(e["line"], e["reason"]) for e in report.errors]


def test_malformed_file_reports_every_bad_line_and_writes_nothing(project, tmp_path):
    path = lines(
        tmp_path / "bad.jsonl",
        json.dumps({"prompt": "Q1", "chosen": "a", "rejected": "b"}),  # 1 good
        "{not json",  # 2
        json.dumps({"prompt": "Q3", "chosen": "same", "rejected": "same"}),  # 3
        "",  # 4: blank lines are skipped
        json.dumps(["a", "list"]),  # 5
        json.dumps({"prompt": 42, "chosen": "a", "rejected": "b"}),  # 6
        json.dumps({"prompt": "Q7", "chosen": "a"}),  # 7
        json.dumps({"prompt": "Q8"}),  # 8: another kind
        json.dumps({"chosen": "x", "rejected": "y"}),  # 9: string pair without prompt
        json.dumps({"prompt": "Q1", "chosen": "b", "rejected": "a"}),  # 10: contradicts 1
        json.dumps({"prompt": [{"role": "robot", "content": "x"}], "chosen": "a", "rejected": "b"}),
        json.dumps({"prompt": "Q12", "chosen": "a", "rejected": "b"}),  # 12 good
    )
    before = counts()
    report = imports.import_file(project=project, path=path)
    assert not report.imported and counts() == before
    got = reasons(report)
    assert [line for line, _ in got] == [2, 3, 5, 6, 7, 8, 9, 10, 11]
    assert got[0][1].startswith("invalid JSON")
    assert got[1][1] == "'chosen' and 'rejected' are the same text"
    assert got[2][1] == "expected a JSON object ({...}) on each line"
    assert got[3][1] == "'prompt' must be a string or a list of messages, got int"
    assert got[4][1] == "'rejected' is missing"
    assert "prompt-only row, but the file holds preference rows (as line 1 showed)" in got[5][1]
    assert "'prompt' is missing" in got[6][1]
    assert got[7][1].startswith("contradicts line 1")
    assert "role 'robot'" in got[8][1]
    assert report.rows == 11 and report.rows_valid == 2


def test_wrong_types_are_reported(project, tmp_path):
    path = lines(
        tmp_path / "kto.jsonl",
        json.dumps({"prompt": "Q", "completion": "c", "label": "yes"}),
        json.dumps({"prompt": "Q", "completion": ["c"], "label": True}),
        json.dumps({"prompt": "Q", "completion": "d", "label": True, "tags": "x"}),
        json.dumps({"prompt": "Q", "completion": "e", "label": True, "split": "holdout"}),
        json.dumps({"prompt": "", "completion": "f", "label": False}),
        json.dumps({"prompt": "Q", "completion": "g", "label": None}),
    )
    got = reasons(imports.import_file(project=project, path=path))
    assert got == [
        (1, "'label' must be a boolean (true/false), got string"),
        (2, "completion[0] must be an object with 'role' and 'content'"),
        (3, "'tags' must be a list of strings, got string"),
        (4, "'split' must be 'train' or 'eval' (or test/validation), got 'holdout'"),
        (5, "'prompt' is empty"),
        (6, "'label' is missing"),
    ]


def test_partial_import_writes_good_rows_and_reports_bad_ones(project, tmp_path):
    path = lines(
        tmp_path / "mixed.jsonl",
        json.dumps({"prompt": "good 1"}),
        json.dumps({"prompt": None}),
        json.dumps({"prompt": "good 2", "tags": ["t"]}),
        b"\xff\xfe not utf-8",
    )
    report = imports.import_file(project=project, path=path, partial=True)
    assert report.imported and report.rows_imported == 2
    assert [line for line, _ in reasons(report)] == [2, 4]
    assert Prompt.objects.count() == 2


def test_contradiction_with_an_earlier_import_is_a_bad_line(project, tmp_path):
    first = lines(tmp_path / "1.jsonl", json.dumps({"prompt": "Q", "chosen": "a", "rejected": "b"}))
    imports.import_file(project=project, path=first)
    second = lines(
        tmp_path / "2.jsonl",
        json.dumps({"prompt": "Q2", "chosen": "c", "rejected": "d"}),
        json.dumps({"prompt": "Q", "chosen": "b", "rejected": "a"}),
    )
    before = counts()
    report = imports.import_file(project=project, path=second)
    assert not report.imported and counts() == before  # rolled back, Q2 included
    assert reasons(report) == [(2, "contradicts the verdict already imported for this pair")]
    report = imports.import_file(project=project, path=second, partial=True)
    assert report.imported and report.created["judgments"] == 1
    assert Judgment.objects.count() == 2


def test_invalid_utf8_is_reported_with_its_line(project, tmp_path):
    path = lines(tmp_path / "u.jsonl", json.dumps({"prompt": "ok"}), b'{"prompt": "caf\xe9"}')
    report = imports.import_file(project=project, path=path)
    assert reasons(report) == [(2, "invalid UTF-8 at byte 16 of the line")]

    csv_path = lines(tmp_path / "u.csv", "prompt", "fine", b"caf\xe9", '"multi', b'line \xff"')
    report = imports.import_file(project=project, path=csv_path)
    assert reasons(report) == [(3, "invalid UTF-8 on line 3"), (4, "invalid UTF-8 on line 5")]


def test_lone_surrogates_and_nul_are_rejected(project, tmp_path):
    path = lines(tmp_path / "s.jsonl", '{"prompt": "bad \\ud800"}', '{"prompt": "nul \\u0000"}')
    got = reasons(imports.import_file(project=project, path=path))
    assert got == [
        (1, "'prompt' contains an invalid Unicode escape (lone surrogate)"),
        (2, "'prompt' contains a NUL character"),
    ]


def test_bom_and_crlf_jsonl(project, tmp_path):
    path = tmp_path / "w.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"prompt": "one"}\r\n{"prompt": "two"}\r\n\r\n')
    report = imports.import_file(project=project, path=path)
    assert report.imported and report.created["prompts"] == 2
    assert set(Prompt.objects.values_list("messages__0__content", flat=True)) == {"one", "two"}


@pytest.mark.parametrize("content", [b"", b"\n\n  \n", b"\xef\xbb\xbf", b"prompt\r\n"])
def test_empty_files_are_refused_clearly(project, tmp_path, content):
    path = tmp_path / ("e.csv" if content.startswith(b"prompt") else "e.jsonl")
    path.write_bytes(content)
    with pytest.raises(imports.ImportRejected, match="the file is empty"):
        imports.import_file(project=project, path=path)


def test_oversize_file_is_refused_before_reading(project, tmp_path, settings):
    settings.PREFLOOP_MAX_IMPORT_BYTES = 100
    path = lines(tmp_path / "big.jsonl", *[json.dumps({"prompt": f"Q{i}"}) for i in range(20)])
    with pytest.raises(imports.ImportTooLarge, match="PREFLOOP_MAX_IMPORT_BYTES"):
        imports.import_file(project=project, path=path)


def test_oversize_field_and_too_many_rows(project, tmp_path, settings):
    settings.PREFLOOP_MAX_IMPORT_FIELD_CHARS = 50
    path = lines(
        tmp_path / "f.jsonl", json.dumps({"prompt": "x" * 51}), json.dumps({"prompt": "ok"})
    )
    assert reasons(imports.import_file(project=project, path=path)) == [
        (1, "'prompt' is 51 characters; the limit is 50")
    ]
    settings.PREFLOOP_MAX_IMPORT_ROWS = 1
    with pytest.raises(imports.ImportRejected, match="more than 1 rows"):
        imports.import_file(project=project, path=path)


def test_huge_csv_cell_is_a_clear_row_error(project, tmp_path):
    path = lines(tmp_path / "h.csv", "prompt", "x" * 200_001, "fine")
    assert reasons(imports.import_file(project=project, path=path)) == [
        (2, "'prompt' is 200,001 characters; the limit is 100,000")
    ]


def test_csv_shape_errors(project, tmp_path):
    path = lines(tmp_path / "s.csv", "prompt,tags", "a,b,c", "ok,t1")
    assert reasons(imports.import_file(project=project, path=path)) == [
        (2, "3 cells; the header has 2")
    ]
    dup = lines(tmp_path / "d.csv", "prompt,prompt", "a,b")
    with pytest.raises(imports.ImportRejected, match="repeats column"):
        imports.import_file(project=project, path=dup)


def test_unknown_columns_warn_and_unknown_files_fail(project, tmp_path):
    path = lines(tmp_path / "x.jsonl", json.dumps({"prompt": "Q", "source": "web", "id": 3}))
    assert imports.import_file(project=project, path=path).warnings == [
        "ignored columns: id, source"
    ]
    nothing = lines(tmp_path / "n.jsonl", json.dumps({"question": "Q"}))
    report = imports.import_file(project=project, path=nothing)
    assert "no known columns" in report.errors[0]["reason"]
    with pytest.raises(imports.ImportRejected, match="not a Hugging Face datasets folder"):
        imports.import_file(project=project, path=tmp_path, fmt="hf")
    with pytest.raises(imports.ImportRejected, match="no such file"):
        imports.import_file(project=project, path=tmp_path / "missing.jsonl")


def test_pure_validation_reads_without_a_database(tmp_path):
    path = lines(tmp_path / "p.jsonl", json.dumps({"prompt": "Q", "responses": ["a", "b"]}))
    validation = file_validate(path, limits=ImportLimits(max_bytes=10_000))
    assert validation.kind == "prompt-responses" and validation.issues == []
    assert validation.rows[0].responses == [("a", ""), ("b", "")]


def test_import_is_one_transaction_on_postgres(require_postgres, project, tmp_path):
    """A late conflict rolls back rows already written earlier in the same import."""
    assert connection.vendor == "postgresql"
    test_contradiction_with_an_earlier_import_is_a_bad_line(project, tmp_path)


def test_partial_import_with_no_good_rows_imports_nothing(project, tmp_path):
    path = lines(tmp_path / "bad.jsonl", json.dumps({"prompt": 1}), json.dumps({"prompt": ""}))
    report = imports.import_file(project=project, path=path, partial=True)
    assert not report.imported and report.rows_imported == 0 and len(report.errors) == 2


def test_dataset_dict_rows_are_numbered_in_order_and_named_by_split(project, tmp_path):
    import datasets

    datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"prompt": ["ok", ""]}),
        "test": datasets.Dataset.from_dict({"prompt": ["", "fine"]}),
    }).save_to_disk(str(tmp_path / "dd"))
    report = imports.import_file(project=project, path=tmp_path / "dd")
    assert [(e["line"], e["where"]) for e in report.errors] == [
        (2, "train row 2"),
        (3, "test row 1"),
    ]
