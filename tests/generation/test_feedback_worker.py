"""A feedback job through the broker and a real Celery worker (``gpu`` queue, solo pool):
the worker registers the feedback task at start-up and labels with the constitutional
judge on the tiny model (transformers backend)."""

from __future__ import annotations

import time

import pytest

from annotation.services.projects import project_create
from generation.feedback.models import FeedbackJob, FeedbackLabel
from generation.feedback.services import jobs, judges
from generation.services import model_version_register
from tests.support.feedback import DEMO_JUDGE, demo_pairs
from tests.support.worker import celery_worker

pytestmark = [pytest.mark.slow, pytest.mark.services, pytest.mark.django_db(transaction=True)]


def wait_for(job: FeedbackJob, timeout: float, log) -> FeedbackJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status in FeedbackJob.TERMINAL:
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job.pk} still {job.status}; worker log:\n{log.read_text()[-4000:]}")


def test_feedback_jobs_run_in_a_real_worker(make_user, tiny_model_dir, tmp_path):
    project = project_create(slug="worker", owner=make_user("owner"))
    pairs = demo_pairs(project, count=4, mixed_only=True)
    version = model_version_register(name="tiny", source=str(tiny_model_dir))
    constitutional = judges.judge_from_spec(spec="constitutional", model_version=version,
                                            settings={"principles_per_label": 2})
    log = tmp_path / "worker.log"
    with celery_worker(queues="gpu", log_path=log, env={"GENERATION_BACKEND": "transformers"}):
        first = jobs.feedback_job_create(project=project, judge=constitutional, batch_size=3,
                                         min_confidence=0.0)
        first = wait_for(first, 240, log)
        second = jobs.feedback_job_create(project=project,
                                          judge=judges.judge_from_spec(spec=DEMO_JUDGE))
        second = wait_for(second, 60, log)
    assert first.status == "succeeded", first.error
    assert first.backend == "transformers" and first.worker and first.done == 4
    assert FeedbackLabel.objects.filter(judge=constitutional).count() == 4
    assert second.status == "succeeded", second.error
    assert second.labelled == 4
    assert {x.task_id for x in FeedbackLabel.objects.filter(job=second)} == {
        p.task.pk for p in pairs
    }
