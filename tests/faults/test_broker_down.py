"""Drill: the broker is down. Starting a generation job, an AI-feedback job, a training
run or a round answers a clear 503 within seconds, and the job is recorded as failed with the
reason: no job is left ``pending`` / ``queued`` waiting for a message never sent.

The web server is a real gunicorn process whose ``CELERY_BROKER_URL`` points at a port
where nothing listens, so the settings' publish retry policy and connect timeout are the
ones production uses.
"""

from __future__ import annotations

import json
import time

import pytest

from annotation.services.exports import export_snapshot_create
from annotation.services.imports import import_file
from annotation.services.projects import project_create
from generation.feedback.models import FeedbackJob
from generation.feedback.services import judges
from generation.models import GenerationJob
from generation.services import model_version_register
from tests.faults.support import api, gunicorn, token_for
from tests.generation.test_jobs import make_prompts
from tests.support.feedback import DEMO_JUDGE, demo_pairs
from training.models import TrainingRun
from training.rounds.models import Round

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
DEAD_BROKER = "redis://127.0.0.1:1/0"


def _preferences(project, tmp_path):
    rows = [{"prompt": [{"role": "user", "content": f"Capital of land {i}?"}],
             "chosen": [{"role": "assistant", "content": f"City {i}."}],
             "rejected": [{"role": "assistant", "content": "I'm not sure."}]}
            for i in range(4)]
    path = tmp_path / "prefs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert import_file(project=project, path=path).imported
    snapshot, _ = export_snapshot_create(project=project, fmt="trl-dpo-conversational")
    return snapshot


def _post_timed(session, url: str, body: dict):
    started = time.monotonic()
    response = session.post(url, json=body, timeout=120)
    return response, time.monotonic() - started


def _assert_queue_down(response, seconds: float) -> None:
    assert response.status_code == 503, response.text[:2000]
    assert "task queue is unavailable" in response.json()["detail"]
    assert response.headers.get("Retry-After")
    assert seconds < 30, f"the request hung for {seconds:.1f} s while the broker was down"


def test_jobs_started_while_the_broker_is_down_fail_loudly(make_user, tmp_path):
    owner = make_user("owner")
    project = project_create(slug="nobroker", owner=owner)
    make_prompts(project)
    demo_pairs(project, count=4, mixed_only=True)
    model_version_register(name="base", source="example-org/tiny-model")  # a hub id
    judge = judges.judge_from_spec(spec=DEMO_JUDGE)
    snapshot = _preferences(project, tmp_path)
    session = api(token_for(owner))
    log = tmp_path / "gunicorn.log"
    with gunicorn(log_path=log, workers=1, env={"CELERY_BROKER_URL": DEAD_BROKER}) as server:
        base = f"{server.url}/api/projects/{project.slug}"
        response, seconds = _post_timed(session, f"{base}/generation-jobs/create", {
            "model_version": "base", "pairing": "none", "sampling": {"n": 1}})
        _assert_queue_down(response, seconds)
        response, seconds = _post_timed(session, f"{base}/feedback-jobs/create",
                                        {"judge": judge.name})
        _assert_queue_down(response, seconds)
        response, seconds = _post_timed(session, f"{base}/training-runs", {
            "algorithm": "dpo", "snapshot": snapshot.content_hash, "policy": "base"})
        _assert_queue_down(response, seconds)
        response, seconds = _post_timed(session, f"{base}/rounds", {
            "policy": "base", "settings": {"rounds": 1, "samples": 2}})
        _assert_queue_down(response, seconds)

    for model in (GenerationJob, FeedbackJob, TrainingRun):
        job = model.objects.get()
        assert job.status == "failed", (model.__name__, job.status)
        assert job.error.startswith("task queue unavailable:") and "127.0.0.1:1" in job.error
        assert job.finished_at is not None and job.celery_task_id
    rnd = Round.objects.get()
    assert rnd.status == "failed" and rnd.error.startswith("task queue unavailable:")
    assert "could not enqueue" in log.read_text()  # the operator sees it in the log too
