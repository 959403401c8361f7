"""Property-based: arbitrary bytes, JSON and zip archives fed to every import reader
(JSONL, CSV, a zipped ``datasets`` folder, format detection) end in a report or a
4xx refusal, never an unhandled exception (a 500 through the API)."""

from __future__ import annotations

import io
import json
import os
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from annotation.services import imports
from prefloop.exceptions import ApplicationError
from tests.annotation import project_build, user_build

pytestmark = pytest.mark.django_db
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=os.environ.get("CI", "").lower() in ("1", "true", "yes"),  # CI: reproducible
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FORMATS = ["auto", "jsonl", "csv", "hf"]
SUFFIXES = [".jsonl", ".csv", ".zip", ".json", ""]
KEYS = ["prompt", "messages", "responses", "chosen", "rejected", "completion", "label",
        "tags", "split", "role", "content", "text", "model"]

lone_surrogates = st.sampled_from(["\ud800", "x\udfff y", "\x00"])
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | lone_surrogates,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)
rows = st.dictionaries(st.sampled_from(KEYS), json_values, min_size=1, max_size=4)
zip_names = st.lists(
    st.sampled_from(["", "ds", "ds/train", "..", "a", "a/b"]), min_size=0, max_size=3
).map(lambda parts: "/".join(parts)) | st.text(max_size=12)
zip_leaf = st.sampled_from(  # "" makes a folder entry ("ds/"), which may clash with file "ds"
    ["dataset_info.json", "dataset_dict.json", "state.json", "data-00000-of-00001.arrow", "",
     "x", "ds", "a"]
)
huge_numbers = st.integers(min_value=4_000, max_value=6_000).map(
    lambda n: '{"prompt": "p", "responses": ["a", "b"], "n": ' + "9" * n + "}"
)
zip_members = st.dictionaries(
    st.tuples(zip_names, zip_leaf).map(lambda t: f"{t[0]}/{t[1]}".lstrip("/") or "x"),
    st.binary(max_size=64) | json_values.map(lambda v: json.dumps(v).encode()),
    max_size=5,
)


@pytest.fixture
def project():
    return project_build(owner=user_build("fuzz-owner"), slug="fuzz", binary_enabled=True)


def _import(project, tmp_path, body: bytes, suffix: str, fmt: str, partial: bool = True):
    path = tmp_path / f"upload{suffix}"
    path.write_bytes(body)
    try:
        report = imports.import_file(project=project, path=path, fmt=fmt, partial=partial)
    except ApplicationError as refused:  # the API answers these with their status code
        assert refused.status_code in (400, 413), refused
        return None
    assert report.rows >= 0 and isinstance(report.errors, list)
    return report


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            # zipfile cuts a name at its first NUL; one left empty cannot be written at all
            # (an archive can't hold it, so a reader never sees it).
            if name.split("\x00", 1)[0]:
                archive.writestr(name, data)
    return buffer.getvalue()


@FUZZ
@given(body=st.binary(max_size=300), suffix=st.sampled_from(SUFFIXES), fmt=st.sampled_from(FORMATS))
def test_arbitrary_bytes(project, tmp_path, body, suffix, fmt):
    _import(project, tmp_path, body, suffix, fmt)


@FUZZ
@given(
    lines=st.lists((rows | json_values).map(json.dumps) | huge_numbers, min_size=1, max_size=4),
    partial=st.booleans(),
)
def test_arbitrary_json_lines(project, tmp_path, lines, partial):
    body = "\n".join(lines).encode()
    _import(project, tmp_path, body, ".jsonl", "auto", partial)


@FUZZ
@given(lines=st.lists(rows, min_size=1, max_size=4))
def test_arbitrary_csv_of_json_cells(project, tmp_path, lines):
    columns = sorted({key for line in lines for key in line})
    out = io.StringIO()
    out.write(",".join(columns) + "\n")
    for line in lines:
        cells = [json.dumps(line.get(c)) if c in line else "" for c in columns]
        out.write(",".join('"' + cell.replace('"', '""') + '"' for cell in cells) + "\n")
    _import(project, tmp_path, out.getvalue().encode(), ".csv", "auto")


@FUZZ
@given(members=zip_members)
def test_arbitrary_zip_archives(project, tmp_path, members):
    _import(project, tmp_path, _zip(members), ".zip", "hf")


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=200) | zip_members.map(_zip), name=st.sampled_from(
    ["f.jsonl", "f.csv", "f.zip", "f"]))
def test_the_import_api_answers_4xx_or_a_report(project, body, name):
    client = APIClient()
    client.force_authenticate(project.created_by)
    upload = SimpleUploadedFile(name, body, content_type="application/octet-stream")
    response = client.post("/api/projects/fuzz/imports", {"file": upload}, format="multipart")
    assert response.status_code in (201, 202, 400, 413), response.content[:300]
    assert "/tmp" not in response.content.decode("utf-8", "replace")
