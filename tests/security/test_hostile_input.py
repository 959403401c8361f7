"""Hostile input (docs/security.md): oversized bodies, bad bytes, deep JSON, NUL, CSV
injection, path traversal and markup in model output, each through the real stack."""

from __future__ import annotations

import csv
import io
import json
import os
import zipfile
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.test import APIClient

from annotation.io import writers
from annotation.io.paths import UnsafePath, safe_path_under
from annotation.models import Assignment, Project, Prompt, Response
from annotation.services import exports
from generation.models import ModelVersion
from prefloop.parsers import json_depth_check
from tests.annotation import binary_tasks_build, project_build, user_build
from training.models import TrainingRun

pytestmark = pytest.mark.django_db
HOSTILE_HTML = '<script>alert(1)</script><img src=x onerror="alert(2)">'


class Unreadable(io.RawIOBase):
    """A request body that fails the test if anything reads it."""

    def read(self, *_args):
        raise AssertionError("the body was read")

    readline = readinto = read


@pytest.fixture
def owner():
    """A project owner who may create projects (the "Project creators" group)."""
    user = user_build("hostile-owner")
    user.groups.add(Group.objects.get(name="Project creators"))
    return user


@pytest.fixture
def project(owner) -> Project:
    return project_build(owner=owner, slug="hostile", binary_enabled=True)


@pytest.fixture
def api(owner) -> APIClient:
    client = APIClient()
    client.force_authenticate(owner)
    return client


def _import(api: APIClient, name: str, body: bytes, **fields):
    upload = SimpleUploadedFile(name, body, content_type="application/octet-stream")
    return api.post("/api/projects/hostile/imports", {"file": upload, **fields}, format="multipart")


def _jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


# --- 413: oversized bodies ----------------------------------------------------------------
def test_a_body_over_the_limit_is_refused_from_its_header_without_being_read(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000
    response = api.generic(
        "POST", "/api/projects/create", content_type="application/json",
        CONTENT_LENGTH="50000000", **{"wsgi.input": Unreadable()},
    )
    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert "PREFLOOP_MAX_REQUEST_BYTES" in response.json()["detail"]
    assert not Project.objects.filter(slug="x").exists()


def test_an_oversized_json_body_or_form_post_gets_413_json_for_the_api_a_page_elsewhere(
    api, settings
):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000
    body = {"slug": "big", "guidelines": "x" * 2_000}
    response = api.post("/api/projects/create", body, format="json")
    assert response.status_code == 413 and not Project.objects.filter(slug="big").exists()
    page = Client().post("/accounts/login/", {"username": "u", "password": "p" * 2_000})
    assert page.status_code == 413 and page["Content-Type"].startswith("text/html")
    assert b"PREFLOOP_MAX_REQUEST_BYTES" in page.content
    small = api.post("/api/projects/create", {"slug": "small"}, format="json")
    assert small.status_code == 201


def test_uploads_have_their_own_limit_and_oversized_ones_get_413(api, project, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000
    settings.PREFLOOP_MAX_IMPORT_BYTES = 20_000
    rows = [{"prompt": f"Question number {i} " + "y" * 60} for i in range(100)]  # ~9 kB
    accepted = _import(api, "ok.jsonl", _jsonl(rows))
    assert accepted.status_code == 201, accepted.content  # above the body limit: an upload
    too_big = _import(api, "big.jsonl", _jsonl(rows * 3))  # ~27 kB: the import limit
    assert too_big.status_code == 413 and "PREFLOOP_MAX_IMPORT_BYTES" in too_big.json()["detail"]
    huge = api.generic(
        "POST", "/api/projects/hostile/imports", content_type="multipart/form-data; boundary=x",
        CONTENT_LENGTH=str(10 * 2**20), **{"wsgi.input": Unreadable()},
    )
    assert huge.status_code == 413
    assert Prompt.objects.count() == 100


# --- Invalid UTF-8, deep nesting, NUL -----------------------------------------------------
def test_invalid_utf8_in_a_json_body_is_a_400_and_stores_nothing(api):
    body = b'{"slug": "bad-bytes", "name": "caf\xe9"}'
    response = api.generic("POST", "/api/projects/create", body, content_type="application/json")
    assert response.status_code == 400 and "not valid utf-8" in response.json()["detail"]
    assert not Project.objects.filter(slug="bad-bytes").exists()


@pytest.mark.parametrize("name", ["p.jsonl", "p.csv"])
def test_invalid_utf8_in_an_import_file_is_reported_and_nothing_is_stored(api, project, name):
    jsonl = b'{"prompt": "ok"}\n{"prompt": "caf\xe9"}\n'
    body = b"prompt\nfine\ncaf\xe9\n" if name.endswith(".csv") else jsonl
    response = _import(api, name, body)
    assert response.status_code == 400
    assert "invalid UTF-8" in response.json()["errors"][0]["reason"]
    assert Prompt.objects.count() == 0


def test_deeply_nested_json_is_a_400_not_a_recursion_error(api):
    for body in ("[" * 100_000 + "]" * 100_000, '{"a":' * 50_000 + "1" + "}" * 50_000):
        response = api.generic("POST", "/api/projects/create", body,
                               content_type="application/json")
        assert response.status_code == 400 and "nested deeper" in response.json()["detail"]


def test_json_nested_beyond_64_levels_is_refused_but_brackets_in_strings_are_text(api):
    deep = json.loads("[" * 70 + "]" * 70)  # Python parses it; later code might not
    with pytest.raises(Exception, match="nested deeper"):
        json_depth_check(deep)
    json_depth_check(json.loads("[" * 64 + "]" * 64))
    response = api.post("/api/projects/create", {"slug": "deep", "x": deep}, format="json")
    assert response.status_code == 400 and "nested deeper" in response.json()["detail"]
    text = {"slug": "brackets", "name": "[" * 40 + '\\"{' * 40}
    assert api.post("/api/projects/create", text, format="json").status_code == 201


def test_deep_json_inside_import_files_is_a_row_error(api, project):
    jsonl = b'{"prompt": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"
    csv_body = b'messages\n"' + b"[" * 100_000 + b'"\n'
    for name, body in (("deep.jsonl", jsonl), ("deep.csv", csv_body)):
        response = _import(api, name, body)
        assert response.status_code == 400, (name, response.content[:300])
        assert "nested too deeply" in response.json()["errors"][0]["reason"]
    assert Prompt.objects.count() == 0


def test_nul_characters_are_400_wherever_they_arrive(api, project, owner):
    ModelVersion.objects.create(name="base", source="org/base")
    snapshot, _ = exports.export_snapshot_create(project=project, fmt="trl-dpo", user=owner)
    run = {"algorithm": "dpo", "snapshot": snapshot.content_hash, "policy": "base",
           "hyperparameters": {"device": "cpu\x00"}}  # a JSON column: PostgreSQL refuses NUL
    refused = [
        api.post("/api/projects/create", {"slug": "nul", "name": "a\x00b"}, format="json"),
        api.post("/api/projects/create", {"slug": "nul", "x\x00": 1}, format="json"),
        api.post("/api/projects/hostile/training-runs", run, format="json"),
        api.post("/api/projects/create", {"slug": "nul", "name": "a\x00b"}),  # multipart
        api.post("/api/projects/hostile/update", "name=a%00b",
                 content_type="application/x-www-form-urlencoded"),
        api.get("/api/projects/hostile/leaderboard?bootstrap=1%00"),
        api.get("/api/projects/hostile/exports/abc%00def"),
        _import(api, "p.jsonl", b'{"prompt": "a\\u0000b"}\n'),
        _import(api, "p.csv", b"prompt\na\x00b\n"),
    ]
    assert [r.status_code for r in refused] == [400] * len(refused)
    assert not Project.objects.filter(slug="nul").exists() and Prompt.objects.count() == 0
    assert TrainingRun.objects.count() == 0
    assert Project.objects.get(slug="hostile").name == "hostile"


@pytest.mark.parametrize("bad", [{"tags": 5}, {"tags": [1]}, {"judge": 5},
                                 {"deadline_hours": 1e300}, {"deadline_hours": -1}])
def test_free_form_round_settings_of_the_wrong_type_are_400(api, project, bad):
    ModelVersion.objects.create(name="base", source="org/base")
    url = "/api/projects/hostile/rounds"
    response = api.post(url, {"policy": "base", "settings": bad}, format="json")
    assert response.status_code == 400, (bad, response.content)
    ok = api.post(url, {"policy": "base", "settings": {"deadline_hours": 2.5}}, format="json")
    assert ok.status_code == 201, ok.content


# --- CSV injection ------------------------------------------------------------------------
FORMULAS = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tTAB", "\rCR"]


def test_formula_cells_are_escaped_in_csv_and_left_alone_in_jsonl(api, project):
    rows = [{"prompt": f"Q{i}: {text}" if i % 2 else text, "chosen": text, "rejected": f"no {i}"}
            for i, text in enumerate(FORMULAS)]
    assert _import(api, "pairs.jsonl", _jsonl(rows)).status_code == 201
    snapshot = api.post("/api/projects/hostile/exports", {"format": "trl-dpo"}, format="json")
    url = snapshot.json()["download_url"]
    data = b"".join(api.get(url).streaming_content).decode()
    jsonl_chosen = {json.loads(line)["chosen"] for line in data.splitlines()}
    assert jsonl_chosen == set(FORMULAS)  # the training data keeps the exact text
    download = api.get(url + "?file=data.csv")
    assert download.status_code == 200
    assert download["Content-Type"] == "text/csv; charset=utf-8"
    table = list(csv.DictReader(io.StringIO(b"".join(download.streaming_content).decode())))
    assert {row["chosen"] for row in table} == {"'" + text for text in FORMULAS}
    assert all(not row[c].startswith(("=", "+", "-", "@", "\t", "\r"))
               for row in table for c in row)


def test_spreadsheet_cells_keep_numbers_and_write_conversations_as_json():
    assert writers.spreadsheet_cell(-0.5) == -0.5 and writers.spreadsheet_cell(True) == "true"
    assert writers.spreadsheet_cell(None) == "" and writers.spreadsheet_cell("a=b") == "a=b"
    assert writers.spreadsheet_cell([{"role": "user", "content": "=1"}]).startswith("[")
    tsv = writers.csv_bytes([{"a": "=1", "b": 2}], ["a", "b"], delimiter="\t")
    assert tsv == b"a\tb\r\n'=1\t2\r\n"


# --- Path traversal -----------------------------------------------------------------------
def test_safe_path_under_refuses_every_way_out(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (root / "link").symlink_to(outside)
    assert safe_path_under(root, "sub/file.txt") == (root / "sub" / "file.txt").resolve()
    assert safe_path_under(root, str(root / "sub")) == (root / "sub").resolve()
    for bad in ("../outside", "sub/../../outside", str(outside), "/etc/passwd", "link/x",
                "a\x00b", ""):
        with pytest.raises(UnsafePath):
            safe_path_under(root, bad)
    with pytest.raises(UnsafePath):
        safe_path_under(root, "sub", absolute=True)


def test_export_download_names_only_the_snapshot_files(api, project, owner):
    snapshot, _ = exports.export_snapshot_create(project=project, fmt="trl-kto", user=owner)
    base = f"/api/projects/hostile/exports/{snapshot.content_hash}/download?file="
    for name in ("../../../../etc/passwd", "/etc/passwd", "..%2Fprefloop_export.json"):
        assert api.get(base + name).status_code == 404
    assert api.get(base + "data.jsonl%00.md").status_code == 400
    assert api.get(base + "prefloop_export.json").status_code == 200


REGISTER = "/api/models/register?project=hostile"  # the project's own models


def test_model_paths_must_stay_inside_the_model_roots(api, project, tmp_path, settings):
    settings.PREFLOOP_MODEL_ROOTS = [tmp_path / "models"]
    good, elsewhere = tmp_path / "models" / "m1", tmp_path / "elsewhere"
    for folder in (good, elsewhere):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
    (tmp_path / "models" / "escape").symlink_to(elsewhere)
    for source in (str(elsewhere), f"{good}/../../elsewhere", str(tmp_path / "models/escape"),
                   "../../etc", "/etc"):
        response = api.post(REGISTER, {"name": "bad", "source": source})
        assert response.status_code == 400, source
        assert "PREFLOOP_MODEL_ROOTS" in str(response.json()["source"])
    assert api.post(REGISTER, {"name": "ok", "source": str(good)}).status_code == 201
    assert api.post(REGISTER, {"name": "hub", "source": "org/m"}).status_code == 201
    assert list(ModelVersion.objects.values_list("name", flat=True)) == ["ok", "hub"]


def test_training_paths_must_stay_inside_their_folders(api, project, owner):
    ModelVersion.objects.create(name="base", source="org/base")
    snapshot, _ = exports.export_snapshot_create(project=project, fmt="trl-dpo", user=owner)
    url = "/api/projects/hostile/training-runs"
    body = {"algorithm": "dpo", "snapshot": snapshot.content_hash, "policy": "base"}
    for hyper in ({"eval_path": "/etc/passwd"}, {"eval_path": "../../etc/passwd"},
                  {"eval_path": "data.jsonl"}, {"ref_cache_dir": "/tmp"},
                  {"ref_cache_dir": f"{django_settings.MODELS_DIR}/../.."}):
        response = api.post(url, {**body, "hyperparameters": hyper}, format="json")
        assert response.status_code == 400, hyper
    inside = {"eval_path": f"{Path(snapshot.path)}/data.jsonl"}
    response = api.post(url, {**body, "hyperparameters": inside}, format="json")
    assert response.status_code == 201, response.content
    assert TrainingRun.objects.count() == 1


def test_a_zip_import_cannot_write_outside_its_folder(api, project, tmp_path):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("dataset_info.json", "{}")
        zf.writestr("../../../../tmp/prefloop-zip-escape.txt", "pwned")
    response = _import(api, "data.zip", archive.getvalue())
    assert response.status_code == 400 and "unsafe path" in response.json()["detail"]
    assert not os.path.exists("/tmp/prefloop-zip-escape.txt")


DATASET_ESCAPES = [  # zipped save_to_disk folders whose metadata points outside, or is junk
    {"state.json": '{"_data_files": [{"filename": "../../../../etc/passwd"}]}'},
    {"state.json": '{"_data_files": [{"filename": "/etc/passwd"}]}'},
    {"dataset_dict.json": '{"splits": ["../../../../etc"]}'},
    {"state.json": '{"_data_files": 5}'},
    {"state.json": "[]"},
    {"dataset_dict.json": '{"splits": 5}'},
    {"dataset_dict.json": "[" * 100_000},
]


@pytest.mark.parametrize("members", DATASET_ESCAPES)
def test_a_datasets_folder_cannot_name_files_outside_itself(api, project, members):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("dataset_info.json", "{}")
        for name, text in members.items():
            zf.writestr(name, text)
    response = _import(api, "data.zip", archive.getvalue())
    assert response.status_code == 400, response.content
    if "etc" in str(members):  # refused before datasets opens anything out there
        assert "outside its folder" in response.json()["detail"]
    assert Prompt.objects.count() == 0


# --- Markup in model output -----------------------------------------------------------------
def test_task_payloads_return_response_text_verbatim_as_json(api, project, owner):
    task = binary_tasks_build(project=project, n=1)[0]
    Response.objects.filter(pk=task.response_a_id).update(text=HOSTILE_HTML)
    response = api.post("/api/projects/hostile/tasks/next?kind=binary")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert HOSTILE_HTML in _strings(response.json())  # verbatim: not escaped, not stripped
    assert Assignment.objects.filter(annotator=owner).count() == 1


def _strings(value) -> list[str]:
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return [value] if isinstance(value, str) else []


def test_owner_pages_escape_hostile_text(owner, project):
    Project.objects.filter(pk=project.pk).update(name=HOSTILE_HTML)
    client = Client()
    client.force_login(owner)
    table = io.StringIO()
    csv.writer(table).writerows([["prompt", "split"], ["Q", HOSTILE_HTML]])
    upload = SimpleUploadedFile("p.csv", table.getvalue().encode())
    pages = [
        client.get("/p/hostile/dashboard/"),
        client.get("/p/hostile/export/"),
        client.post("/p/hostile/import/", {"file": upload, "format": "auto"}),
    ]
    assert [p.status_code for p in pages] == [200, 200, 400]
    for page in pages:
        html = page.content.decode()
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "<script>alert(1)" not in html and "<img src=x" not in html
