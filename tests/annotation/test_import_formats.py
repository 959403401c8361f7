"""Import: every file format and row kind, idempotence, and the management command."""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import datasets
import pytest
from django.core.management import CommandError, call_command

from annotation.models import Feedback, Judgment, Membership, Project, Prompt, Response, Task
from annotation.services import imports, projects

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(make_user) -> Project:
    return projects.project_create(slug="imp", owner=make_user("owner"))


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), "utf-8")
    return path


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def run(project: Project, path: Path, **options) -> imports.ImportReport:
    return imports.import_file(project=project, path=path, **options)


def test_prompt_only_jsonl_strings_and_messages(project, tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [
        {"prompt": "What is the capital of Zorbia?", "tags": ["geo"], "split": "eval"},
        {"messages": [{"role": "system", "content": "Be brief."},
                      {"role": "user", "content": "Hi"}]},
        {"prompt": [{"role": "user", "content": "Conversational prompt"}]},
    ])
    report = run(project, path)
    assert report.imported and report.kind == "prompt-only" and report.errors == []
    assert report.created["prompts"] == 3
    first = Prompt.objects.get(
        messages=[{"role": "user", "content": "What is the capital of Zorbia?"}]
    )
    assert first.tags == ["geo"] and first.split == "eval"
    assert Prompt.objects.filter(project=project, split="train").count() == 2


def test_prompt_responses_make_responses_and_tasks(project, tmp_path):
    path = write_jsonl(tmp_path / "r.jsonl", [
        {"prompt": "Q1", "responses": ["A1", {"text": "A2", "model": "base-v0"}, "A3"]},
    ])
    report = run(project, path)
    assert report.kind == "prompt-responses"
    assert report.created["responses"] == 3
    assert report.created["tasks"] == 3  # every pair of three
    assert Response.objects.get(text="A2").metadata == {"model": "base-v0"}
    assert set(Response.objects.values_list("source", flat=True)) == {"imported"}
    assert Task.objects.filter(kind="pairwise").count() == 3


def test_preference_pairs_become_imported_judgments(project, tmp_path):
    path = write_jsonl(tmp_path / "dpo.jsonl", [
        {"prompt": "Q1", "chosen": "good", "rejected": "bad"},
        {"prompt": [{"role": "user", "content": "Q2"}],
         "chosen": [{"role": "assistant", "content": "yes"}],
         "rejected": [{"role": "assistant", "content": "no"}]},
        {"chosen": [{"role": "user", "content": "Q3"}, {"role": "assistant", "content": "up"}],
         "rejected": [{"role": "user", "content": "Q3"}, {"role": "assistant", "content": "down"}]},
    ])
    report = run(project, path)
    assert report.kind == "preference" and report.errors == []
    assert report.created == {
        "prompts": 3,
        "responses": 6,
        "tasks": 3,
        "judgments": 3,
        "feedback": 0,
    }
    for judgment in Judgment.objects.select_related("task__response_a", "annotator"):
        assert judgment.choice == "a" and judgment.source == "imported"
        assert judgment.task.response_a.text in ("good", "yes", "up")
        assert judgment.annotator.username == "prefloop-import-imp"
        assert judgment.task.done_count == 1
    implicit = Prompt.objects.get(messages=[{"role": "user", "content": "Q3"}])
    assert implicit.responses.count() == 2


def test_implicit_prompt_keeps_shared_multi_turn_history(project, tmp_path):
    history = [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "And now?"},
    ]
    path = write_jsonl(tmp_path / "mt.jsonl", [{
        "chosen": [*history, {"role": "assistant", "content": "Now we talk."}],
        "rejected": [*history, {"role": "assistant", "content": "Go away."}],
    }])
    assert run(project, path).imported
    assert Prompt.objects.get().messages == history


def test_kto_rows_become_imported_feedback(project, tmp_path):
    path = write_jsonl(tmp_path / "kto.jsonl", [
        {"prompt": "Q", "completion": "right", "label": True},
        {"prompt": "Q", "completion": "wrong", "label": False},
    ])
    report = run(project, path)
    assert report.kind == "unpaired-preference"
    assert report.created["feedback"] == 2 and report.created["tasks"] == 2
    labels = dict(Feedback.objects.values_list("response__text", "thumbs_up"))
    assert labels == {"right": True, "wrong": False}
    assert set(Feedback.objects.values_list("source", flat=True)) == {"imported"}
    assert set(Task.objects.values_list("kind", flat=True)) == {"binary"}


def test_second_import_creates_nothing_and_reports_existing(project, tmp_path):
    path = write_jsonl(tmp_path / "dpo.jsonl", [
        {"prompt": "Q1", "chosen": "good", "rejected": "bad", "tags": ["x"]},
        {"prompt": "Q2", "chosen": "fine", "rejected": "poor"},
    ])
    first = run(project, path)
    before = [M.objects.count() for M in (Prompt, Response, Task, Judgment)]
    second = run(project, path)
    assert [M.objects.count() for M in (Prompt, Response, Task, Judgment)] == before
    assert sum(second.created.values()) == 0
    assert second.existing == {**first.created, "feedback": 0}


def test_pair_already_present_in_reverse_order_reuses_the_task(project, tmp_path):
    run(project, write_jsonl(tmp_path / "a.jsonl", [{"prompt": "Q", "responses": ["x", "y"]}]))
    pair = [{"prompt": "Q", "chosen": "y", "rejected": "x"}]
    report = run(project, write_jsonl(tmp_path / "b.jsonl", pair))
    assert report.created["tasks"] == 0 and Task.objects.count() == 1
    assert Judgment.objects.get().choice == "b"  # the task's b side ("y") was chosen


def test_csv_with_quoted_newlines_crlf_and_bom(project, tmp_path):
    path = tmp_path / "pairs.csv"
    with path.open("w", newline="", encoding="utf-8-sig") as stream:  # BOM
        writer = csv.writer(stream, lineterminator="\r\n")
        writer.writerow(["prompt", "chosen", "rejected", "tags"])
        writer.writerow(["Write a poem", "Roses\nare red", "no", "poetry, short"])
        writer.writerow(["Second, with comma", 'He said "hi"', "bye", ""])
    report = run(project, path)
    assert report.format == "csv" and report.kind == "preference" and report.errors == []
    assert Response.objects.filter(text="Roses\nare red").exists()
    assert Response.objects.filter(text='He said "hi"').exists()
    assert Prompt.objects.get(messages__0__content="Write a poem").tags == ["poetry", "short"]


def test_csv_reports_records_at_their_first_line(project, tmp_path):
    path = write_csv(tmp_path / "p.csv", ["prompt", "completion", "label"], [
        ["Q1", "multi\nline\nanswer", "true"],
        ["Q2", "ok", "maybe"],
    ])
    report = run(project, path)
    assert [(e["line"], e["reason"]) for e in report.errors] == [
        (5, "'label' must be true or false, got 'maybe'")
    ]


def test_csv_list_columns_hold_json(project, tmp_path):
    path = write_csv(tmp_path / "r.csv", ["messages", "responses"], [[
        json.dumps([{"role": "user", "content": "Q"}]),
        json.dumps(["a", {"text": "b", "model": "m"}]),
    ]])
    report = run(project, path)
    assert report.kind == "prompt-responses" and report.created["responses"] == 2


def test_hf_folder_dataset_and_dataset_dict(project, tmp_path):
    rows = {"prompt": ["Q1", "Q2"], "chosen": ["a", "b"], "rejected": ["c", "d"]}
    datasets.Dataset.from_dict(rows).save_to_disk(str(tmp_path / "ds"))
    report = run(project, tmp_path / "ds")
    assert report.format == "hf" and report.created["judgments"] == 2

    splits = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"prompt": ["T1", "T2"]}),
        "test": datasets.Dataset.from_dict({"prompt": ["E1"]}),
    })
    splits.save_to_disk(str(tmp_path / "dd"))
    report = run(project, tmp_path / "dd")
    assert report.created["prompts"] == 3
    assert Prompt.objects.get(messages__0__content="E1").split == "eval"
    assert Prompt.objects.get(messages__0__content="T1").split == "train"


def test_hf_folder_conversational_rows_and_bad_rows(project, tmp_path):
    good = [{"role": "assistant", "content": "ok"}]
    data = {
        "prompt": [[{"role": "user", "content": "Q1"}], [{"role": "user", "content": "Q2"}]],
        "chosen": [good, [{"role": "user", "content": "not an answer"}]],
        "rejected": [[{"role": "assistant", "content": "meh"}], good],
    }
    datasets.Dataset.from_dict(data).save_to_disk(str(tmp_path / "ds"))
    report = run(project, tmp_path / "ds")
    assert not report.imported
    assert [(e["line"], e["where"]) for e in report.errors] == [(2, "row 2")]
    assert Prompt.objects.count() == 0


def test_zipped_hf_folder(project, tmp_path):
    datasets.Dataset.from_dict({"prompt": ["Z1", "Z2"]}).save_to_disk(str(tmp_path / "ds"))
    archive = tmp_path / "ds.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for file in (tmp_path / "ds").iterdir():
            out.write(file, f"ds/{file.name}")
    assert run(project, archive).created["prompts"] == 2


def test_command_creates_project_for_superuser(tmp_path, make_user, capsys):
    admin = make_user("admin", is_superuser=True, is_staff=True)
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "Q"}])
    call_command("import_prompts", str(path), "--project", "new-one", "--create")
    project = Project.objects.get(slug="new-one")
    assert Membership.objects.get(project=project).user == admin
    assert project.prompts.count() == 1
    assert "prompts: 1 created, 0 existing" in capsys.readouterr().out


def test_command_with_explicit_owner_and_errors(tmp_path, make_user):
    owner = make_user("ann")
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "Q"}, {"prompt": 3}])
    with pytest.raises(CommandError, match="does not exist"):
        call_command("import_prompts", str(path), "--project", "x")
    with pytest.raises(CommandError, match="1 bad row"):
        call_command("import_prompts", str(path), "--project", "x", "--create", "--owner", "ann")
    project = Project.objects.get(slug="x")
    assert project.memberships.get().user == owner and project.prompts.count() == 0
    call_command("import_prompts", str(path), "--project", "x", "--partial")
    assert project.prompts.count() == 1


def test_command_without_superuser_or_owner_refuses(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "Q"}])
    with pytest.raises(CommandError, match="--owner"):
        call_command("import_prompts", str(path), "--project", "x", "--create")
