"""One writer of snapshot folders, confined to its root, used by every kind of snapshot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings

from annotation.io import snapshots, writers
from annotation.io.paths import UnsafePath
from annotation.models import ExportSnapshot, Project
from annotation.services import exports
from generation.feedback import training_data
from tests.annotation import project_build, user_build
from training.rounds import snapshot as round_snapshot
from training.rounds.models import Round


def _rows(tag: str) -> list[dict]:
    """Rows of their own: the same bytes would name (and reuse) the same folder."""
    return [{"prompt": f"Capital of Zubria? ({tag})", "chosen": "Vell.", "rejected": "Dorn."}]


def _write(root: Path, *, slug: str = "demo", digest: str = "ab" * 32) -> Path:
    return snapshots.snapshot_folder_write(
        root=root, slug=slug, digest=digest, data=b'{"a": 1}\n', card="# card\n",
        manifest={"content_hash": digest, "counts": {"rows": 1}},
    )


def test_the_folder_holds_data_card_and_manifest_and_is_written_once(tmp_path):
    folder = _write(tmp_path)
    assert folder == (tmp_path / "demo" / ("ab" * 32)).resolve()
    assert (folder / writers.DATA_FILE).read_bytes() == b'{"a": 1}\n'
    assert (folder / writers.CARD_FILE).read_text("utf-8") == "# card\n"
    assert json.loads((folder / writers.MANIFEST_FILE).read_text("utf-8"))["counts"] == {"rows": 1}
    (folder / writers.CARD_FILE).write_text("kept", "utf-8")
    assert _write(tmp_path) == folder and (folder / writers.CARD_FILE).read_text() == "kept"
    assert [p.name for p in (tmp_path / "demo").iterdir()] == ["ab" * 32]  # no staging left


@pytest.mark.parametrize(
    ("slug", "digest"),
    [("../outside", "ab"), ("demo", "../../outside"), ("/tmp/outside", "ab"), ("de\x00mo", "ab")],
)
def test_a_folder_outside_the_root_is_refused(tmp_path, slug, digest):
    root = tmp_path / "exports"
    with pytest.raises(UnsafePath):
        _write(root, slug=slug, digest=digest)
    assert not (tmp_path / "outside").exists() and not root.exists()


def test_a_symlink_out_of_the_root_is_refused(tmp_path):
    root, elsewhere = tmp_path / "exports", tmp_path / "elsewhere"
    root.mkdir(), elsewhere.mkdir()
    (root / "demo").symlink_to(elsewhere)
    with pytest.raises(UnsafePath):
        _write(root)
    assert list(elsewhere.iterdir()) == []


@pytest.fixture
def spy(monkeypatch):
    """Every call of the one writer, as the services make it."""
    calls = []
    real = exports.snapshot_folder_write

    def record(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(exports, "snapshot_folder_write", record)
    return calls


def _written_through(calls: list[dict], snap: ExportSnapshot) -> None:
    assert len(calls) == 1
    assert calls[0]["root"] == Path(settings.DATA_DIR) / "exports"
    assert calls[0]["digest"] == snap.content_hash and calls[0]["slug"] == snap.project.slug
    assert Path(snap.path) == Path(settings.DATA_DIR, "exports", snap.project.slug,
                                   snap.content_hash).resolve()
    assert writers.content_hash((Path(snap.path) / writers.DATA_FILE).read_bytes()) == (
        snap.content_hash
    )


@pytest.mark.django_db
def test_an_export_writes_through_the_writer(spy):
    project = project_build(owner=user_build("owner"))
    snap, created = exports.export_snapshot_create(project=project, fmt="trl-dpo")
    assert created
    _written_through(spy, snap)


@pytest.mark.django_db
def test_a_project_whose_slug_leaves_the_root_writes_nothing(spy):
    project = Project.objects.create(slug="..", name="escape")  # save() does not validate
    data_dir = Path(settings.DATA_DIR)
    data_dir.mkdir(parents=True, exist_ok=True)
    before = set(data_dir.iterdir())
    with pytest.raises(UnsafePath):
        exports.export_snapshot_create(project=project, fmt="trl-dpo")
    assert set(data_dir.iterdir()) == before and not ExportSnapshot.objects.exists()


@pytest.mark.django_db
def test_a_rounds_training_data_writes_through_the_writer(spy, monkeypatch):
    owner = user_build("owner")
    project = project_build(owner=owner)
    rnd = Round(project=project, index=1, algorithm="dpo", created_by=owner,
                data_scope=Round.DataScope.ROUND, decider=Round.Decider.VOTES)
    monkeypatch.setattr(round_snapshot, "round_rows", lambda *a, **k: (_rows("round"), {"rows": 1}))
    snap = round_snapshot.round_snapshot_create(rnd)
    _written_through(spy, snap)
    assert snap.rules["index"] == 1 and snap.format == "trl-dpo-conversational"


@pytest.mark.django_db
def test_ai_feedback_training_data_writes_through_the_writer(spy, monkeypatch):
    project = project_build(owner=user_build("owner"))
    counts = {"rows": 1, "traces": 1, "dropped": {}}
    monkeypatch.setattr(training_data, "revision_rows", lambda **k: (_rows("ai"), counts))
    snap, _ = training_data.ai_export_create(
        project=project, fmt="trl-dpo", rules=training_data.ConversionRules(source="revisions")
    )
    _written_through(spy, snap)
    card = (Path(snap.path) / writers.CARD_FILE).read_text("utf-8")
    assert "Prefloop AI-feedback export" in card and snap.counts == counts
