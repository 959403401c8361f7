"""Background imports (issue 14, finding 6): a large upload answers 202 with a job, a
worker writes it in short committed batches with progress, and another project's
annotator keeps submitting meanwhile (SQLite: no long write lock)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from annotation.models import ImportJob, Judgment, Prompt, Task
from annotation.services import import_jobs, imports
from annotation.services.assignment import task_next_for_annotator
from annotation.services.judgments import judgment_submit
from tests.annotation import member_add, pairwise_tasks_build, project_build, user_build


def _rows(n_rows: int, n_responses: int) -> bytes:
    rows = [{"prompt": f"Q{i}?", "responses": [f"answer {j} to {i}" for j in range(n_responses)]}
            for i in range(n_rows)]
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


@pytest.fixture
def owner_api(db):
    owner = user_build("imp-owner")
    project = project_build(owner=owner, slug="big", binary_enabled=True)
    client = APIClient()
    client.force_authenticate(owner)
    return project, client


def _upload(client: APIClient, body: bytes, **fields):
    upload = SimpleUploadedFile("big.jsonl", body, content_type="application/octet-stream")
    return client.post("/api/projects/big/imports", {"file": upload, **fields}, format="multipart")


def test_a_large_import_answers_202_with_a_job_that_a_worker_writes(owner_api, settings):
    project, client = owner_api
    settings.PREFLOOP_IMPORT_SYNC_MAX_WRITES = 50
    settings.PREFLOOP_IMPORT_BATCH_SECONDS = 0.0  # one row per batch: progress every row
    response = _upload(client, _rows(6, 4))  # 6 rows × (6 pairs + 4 thumbs) = 66 writes
    assert response.status_code == 202, response.content[:300]
    job = response.json()
    assert (job["status"], job["rows_total"], job["tasks_planned"]) == ("pending", 6, 60)
    assert Prompt.objects.count() == 0  # nothing written in the request
    assert "path" not in job

    seen = []
    original = ImportJob.objects.filter

    def spy(*args, **kwargs):  # progress as the worker records it (not the heartbeat's)
        if kwargs.get("pk") == job["id"] and threading.current_thread() is threading.main_thread():
            seen.append(Prompt.objects.filter(project=project).count())
        return original(*args, **kwargs)

    ImportJob.objects.filter = spy
    try:
        done = import_jobs.import_job_run(job_id=job["id"])
    finally:
        ImportJob.objects.filter = original
    assert done.status == "succeeded" and done.rows_done == 6
    assert seen == sorted(seen) and set(range(1, 7)) <= set(seen)  # row after row
    body = client.get(job["url"]).json()
    assert body["status"] == "succeeded" and body["rows_done"] == 6
    assert body["report"]["created"]["tasks"] == 60 and body["report"]["rows_imported"] == 6
    assert Task.objects.filter(project=project).count() == 60
    assert not Path(ImportJob.objects.get(pk=job["id"]).path).exists()  # the copy is gone


def test_a_cancelled_job_stops_and_small_imports_stay_synchronous(owner_api, settings):
    project, client = owner_api
    settings.PREFLOOP_IMPORT_SYNC_MAX_WRITES = 50
    job = _upload(client, _rows(6, 4)).json()
    cancelled = client.post(job["url"] + "/cancel").json()
    assert cancelled["status"] == "cancelled"
    assert import_jobs.import_job_run(job_id=job["id"]).status == "cancelled"
    assert Prompt.objects.count() == 0
    small = _upload(client, _rows(2, 2))
    assert small.status_code == 201 and small.json()["created"]["prompts"] == 2
    other = project_build(owner=user_build("imp-other"), slug="other")
    assert client.get(f"/api/projects/{other.slug}/imports/{job['id']}").status_code in (403, 404)


def test_a_requeued_job_resumes_after_its_last_committed_batch(owner_api, settings):
    """A lost worker's job is requeued (prefloop.jobs); the rerun skips the rows done."""
    project, client = owner_api
    settings.PREFLOOP_IMPORT_SYNC_MAX_WRITES = 50
    job = _upload(client, _rows(6, 4)).json()
    earlier = {"created": {"prompts": 3, "responses": 12, "tasks": 30}, "existing": {}}
    ImportJob.objects.filter(pk=job["id"]).update(rows_done=3, report=earlier)
    done = import_jobs.import_job_run(job_id=job["id"])
    assert done.status == "succeeded" and done.rows_done == 6
    assert Prompt.objects.filter(project=project).count() == 3  # rows 4-6 only, this time
    assert done.report["created"]["prompts"] == 6 and done.report["created"]["tasks"] == 60


def test_the_import_page_hands_a_large_file_to_a_job(owner_api, settings):
    project, _ = owner_api
    settings.PREFLOOP_IMPORT_SYNC_MAX_WRITES = 50
    page = Client()
    page.force_login(project.created_by)
    upload = SimpleUploadedFile("big.jsonl", _rows(6, 4))
    response = page.post("/p/big/import/", {"file": upload, "format": "auto"}, follow=True)
    assert response.status_code == 200
    job = ImportJob.objects.get(project=project)
    assert f"import job {job.pk} is writing it" in response.content.decode()
    assert Prompt.objects.count() == 0 and job.status == "pending"


@pytest.mark.django_db(transaction=True)
def test_another_projects_annotator_submits_during_a_large_import(settings, tmp_path):
    """Each import batch commits within PREFLOOP_IMPORT_BATCH_SECONDS, so a submission
    waiting on SQLite's write lock gets it well inside a 1-second busy timeout. (Written
    in one transaction, this import held the lock for seconds: the same submissions
    failed with 'database is locked'.)"""
    owner = user_build("lock-owner")
    busy = project_build(owner=owner, slug="annotating", overlap=1)
    annotator = user_build("lock-annotator")
    member_add(project=busy, user=annotator)
    pairwise_tasks_build(project=busy, n=300)
    target = project_build(owner=owner, slug="importing", binary_enabled=True)
    path = tmp_path / "big.jsonl"
    path.write_bytes(_rows(16, 12))  # 16 × (66 pairs + 12 thumbs) = 1,248 tasks

    if connection.vendor == "sqlite":
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA busy_timeout = 1000")
    outcome = {}

    def run_import() -> None:
        try:
            outcome["report"] = imports.import_file(project=target, path=path, batched=True)
        finally:
            connection.close()

    worker = threading.Thread(target=run_import)
    worker.start()
    during = 0
    try:
        while worker.is_alive():
            lease = task_next_for_annotator(project=busy, annotator=annotator)
            if lease is None:
                break
            judgment_submit(assignment=lease, annotator=annotator, choice="left")
            during += worker.is_alive()
    finally:
        worker.join()
    assert outcome["report"].imported and outcome["report"].created["tasks"] == 1_248
    assert during >= 3, "the import finished before the annotator could submit"
    assert Judgment.objects.filter(annotator=annotator).count() >= during
