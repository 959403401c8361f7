"""Export: TRL layouts read back with `datasets`, round trips, snapshots and the command."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import datasets
import pytest
from django.core.management import CommandError, call_command

from annotation.io.rules import ExportRules
from annotation.models import ExportSnapshot, Judgment
from annotation.selectors import exports as export_selectors
from annotation.services import exports, imports, projects

pytestmark = pytest.mark.django_db

PAIRS = [
    {"prompt": "What is the capital of Zorbia?", "chosen": "Vell.", "rejected": "Maybe Kros."},
    {"prompt": "Name a colour.", "chosen": "Blue.", "rejected": "I'm not sure."},
    {"prompt": "Zorbia's river?", "chosen": "The Ulm.", "rejected": "The Ulm, or the Tess."},
]
CONVERSATIONAL = [
    {
        "prompt": [{"role": "system", "content": "Answer briefly."},
                   {"role": "user", "content": "2+2?"}],
        "chosen": [{"role": "assistant", "content": "4"}],
        "rejected": [{"role": "assistant", "content": "5"}],
    },
    {
        "prompt": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                   {"role": "user", "content": "Bye?"}],
        "chosen": [{"role": "assistant", "content": "Goodbye!"}],
        "rejected": [{"role": "assistant", "content": "No."}],
    },
]
KTO = [
    {"prompt": "Capital of Zorbia?", "completion": "Vell.", "label": True},
    {"prompt": "Capital of Zorbia?", "completion": "Kros.", "label": False},
    {"prompt": "Capital of Tessa?", "completion": "Mor.", "label": True},
]
STRING = datasets.Value("string")


@pytest.fixture
def project(make_user, settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"
    return projects.project_create(slug="exp", owner=make_user("owner"))


def load_rows(project, tmp_path: Path, rows: list[dict], name: str = "in.jsonl") -> None:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    assert imports.import_file(project=project, path=path).imported


def snapshot_rows(snapshot: ExportSnapshot) -> list[dict]:
    data = Path(snapshot.path, "data.jsonl").read_text("utf-8")
    return [json.loads(line) for line in data.splitlines()]


def export(project, fmt: str, **rules) -> tuple[ExportSnapshot, bool]:
    return exports.export_snapshot_create(project=project, fmt=fmt, rules=ExportRules(**rules))


@pytest.mark.parametrize(
    ("fmt", "rows"),
    [("trl-dpo", PAIRS), ("trl-dpo-conversational", CONVERSATIONAL), ("trl-kto", KTO)],
)
def test_import_then_export_reproduces_the_rows(project, tmp_path, fmt, rows):
    load_rows(project, tmp_path, rows)
    snapshot, created = export(project, fmt, metadata_columns=False)
    assert created and snapshot_rows(snapshot) == rows
    with_metadata, _ = export(project, fmt)
    columns = list(rows[0])
    assert [{k: r[k] for k in columns} for r in snapshot_rows(with_metadata)] == rows


def test_implicit_prompt_pairs_export_with_an_explicit_prompt(project, tmp_path):
    user = {"role": "user", "content": "Sky colour?"}
    load_rows(project, tmp_path, [{
        "chosen": [user, {"role": "assistant", "content": "Blue."}],
        "rejected": [user, {"role": "assistant", "content": "Green."}],
    }])
    snapshot, _ = export(project, "trl-dpo-conversational", metadata_columns=False)
    assert snapshot_rows(snapshot) == [{
        "prompt": [user],
        "chosen": [{"role": "assistant", "content": "Blue."}],
        "rejected": [{"role": "assistant", "content": "Green."}],
    }]


def test_pairs_export_to_kto_as_desirable_and_undesirable(project, tmp_path):
    load_rows(project, tmp_path, PAIRS[:1])
    snapshot, _ = export(project, "trl-kto", metadata_columns=False)
    prompt = PAIRS[0]["prompt"]
    assert snapshot_rows(snapshot) == [
        {"prompt": prompt, "completion": "Vell.", "label": True},
        {"prompt": prompt, "completion": "Maybe Kros.", "label": False},
    ]


def test_snapshot_hash_is_stable_and_follows_the_data(project, tmp_path):
    load_rows(project, tmp_path, PAIRS)
    first, created = export(project, "trl-dpo")
    again, created_again = export(project, "trl-dpo")
    assert created and not created_again and again.pk == first.pk
    data = Path(first.path, "data.jsonl").read_bytes()
    assert first.content_hash == hashlib.sha256(data).hexdigest()
    assert Path(first.path) == Path(tmp_path / "data" / "exports" / "exp" / first.content_hash)
    assert export_selectors.export_snapshot_get(content_hash=first.content_hash) == first
    Judgment.objects.filter(task__response_a__text="Vell.").update(choice="b")
    changed, created = export(project, "trl-dpo")
    assert created and changed.content_hash != first.content_hash
    assert ExportSnapshot.objects.count() == 2
    with pytest.raises(exports.NotFoundError):
        export_selectors.export_snapshot_get(content_hash="0" * 64)


def test_card_and_manifest_record_rules_and_counts(project, tmp_path):
    load_rows(project, tmp_path, PAIRS)
    snapshot, _ = export(project, "trl-dpo", min_agreement=0.5, vote="strength")
    manifest = json.loads(Path(snapshot.path, "prefloop_export.json").read_text())
    assert manifest["content_hash"] == snapshot.content_hash
    assert manifest["rules"]["vote"] == "strength" and manifest["rules"]["min_agreement"] == 0.5
    assert manifest["counts"]["rows"] == 3 and manifest["trainer"] == "trl.DPOTrainer"
    card = Path(snapshot.path, "README.md").read_text()
    assert snapshot.content_hash in card and '| `vote` | `"strength"` |' in card
    assert "- rows written: 3" in card and snapshot.counts == manifest["counts"]


def read_back(path: Path, cache: Path) -> datasets.Dataset:
    if path.suffix == ".jsonl":
        return datasets.load_dataset(
            "json", data_files=str(path), split="train", cache_dir=str(cache)
        )
    return datasets.load_from_disk(str(path))


MESSAGES = datasets.List({"role": STRING, "content": STRING})


@pytest.mark.parametrize("target", ["out.jsonl", "out_folder"])
@pytest.mark.parametrize(
    "fmt", ["trl-dpo", "trl-dpo-conversational", "trl-kto", "trl-kto-conversational"]
)
def test_command_output_loads_with_datasets_in_trl_layout(project, tmp_path, fmt, target):
    load_rows(project, tmp_path, PAIRS + CONVERSATIONAL[:1], "pairs.jsonl")
    load_rows(project, tmp_path, KTO, "kto.jsonl")
    out = tmp_path / target
    call_command("export_dataset", "--project", "exp", "--format", fmt, "--out", str(out))
    rows = read_back(out, tmp_path / "cache")
    trl = ["prompt", "chosen", "rejected"] if "dpo" in fmt else ["prompt", "completion", "label"]
    assert rows.column_names[:3] == trl and len(rows) > 0
    conversational = fmt.endswith("conversational")
    for name in trl:
        feature = rows.features[name]
        if name == "label":
            assert feature == datasets.Value("bool")
        elif conversational:
            assert feature == MESSAGES, feature
        else:
            assert feature == STRING
    if "kto" in fmt:
        assert set(rows["label"]) == {True, False}
    if not conversational:
        assert len(rows) == (3 if "dpo" in fmt else 9)  # the system-prompt pair is dropped
    card = out.with_name("out.README.md") if target.endswith(".jsonl") else out / "README.md"
    assert card.is_file() and "Aggregation rules" in card.read_text()


def test_command_rules_from_json_and_flags(project, tmp_path, capsys):
    load_rows(project, tmp_path, PAIRS)
    out = tmp_path / "x.jsonl"
    call_command("export_dataset", "--project", "exp", "--format", "trl-dpo", "--out", str(out),
                 "--rules", '{"vote": "strength", "min_agreement": 0.2}', "--min-agreement",
                 "0.5", "--exclude-ai", "--no-metadata")
    manifest = json.loads((tmp_path / "x.prefloop_export.json").read_text())
    assert manifest["rules"] | {} == {**ExportRules().as_dict(), "vote": "strength",
                                      "min_agreement": 0.5, "include_ai": False,
                                      "metadata_columns": False}
    assert [json.loads(line) for line in out.read_text().splitlines()] == PAIRS
    assert "new snapshot" in capsys.readouterr().out
    call_command("export_dataset", "--project", "exp", "--format", "trl-dpo", "--out", str(out),
                 "--rules", '{"vote": "strength", "min_agreement": 0.5}', "--exclude-ai",
                 "--no-metadata")
    assert "existing snapshot" in capsys.readouterr().out


def test_command_refuses_bad_input(project, tmp_path):
    base = ["export_dataset", "--project", "exp", "--format", "trl-dpo"]
    with pytest.raises(CommandError, match="bad export rules"):
        call_command(*base, "--out", str(tmp_path / "x.jsonl"), "--rules", '{"nope": 1}')
    with pytest.raises(CommandError, match="does not exist"):
        call_command("export_dataset", "--project", "nope", "--format", "trl-dpo",
                     "--out", str(tmp_path / "x.jsonl"))
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(CommandError, match="not empty"):
        call_command(*base, "--out", str(busy))
    assert (busy / "keep.txt").read_text() == "mine"


def test_folder_export_can_be_rewritten(project, tmp_path):
    load_rows(project, tmp_path, PAIRS)
    out = tmp_path / "folder"
    for _ in range(2):
        call_command("export_dataset", "--project", "exp", "--format", "trl-dpo", "--out", str(out))
    assert len(datasets.load_from_disk(str(out))) == 3


def test_empty_export_still_has_trl_columns(project, tmp_path):
    out = tmp_path / "empty"
    call_command("export_dataset", "--project", "exp", "--format", "trl-kto", "--out", str(out))
    rows = datasets.load_from_disk(str(out))
    assert len(rows) == 0 and rows.column_names[:3] == ["prompt", "completion", "label"]
    assert rows.features["label"] == datasets.Value("bool")
