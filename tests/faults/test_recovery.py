"""The reaper of orphaned jobs (``prefloop.jobs``), on rows in every state it must judge:
a lost worker's job is requeued (or failed past the attempt limit, with the reason), a
live one is left alone, and a running job's heartbeat really moves. Also: a training
attempt that fails takes its trainer subprocess down with it."""

from __future__ import annotations

import subprocess
import time
from datetime import timedelta
from pathlib import Path

import psutil
import pytest
from django.db import OperationalError
from django.utils import timezone

from annotation.models import ExportSnapshot
from annotation.services.projects import project_create
from generation import jobs as generation_jobs
from generation import tasks as generation_tasks
from generation.models import GenerationJob, ModelVersion
from prefloop import jobs
from tests.faults.support import gone
from tests.generation.test_jobs import make_prompts
from tests.training.test_runs import FAST, _project
from training import runner
from training import services as training_services
from training import tasks as training_tasks
from training.models import TrainingRun


@pytest.fixture
def sent(monkeypatch) -> list[tuple[str, dict]]:
    """What the reaper hands to the broker (the broker itself is not under test here)."""
    out: list[tuple[str, dict]] = []
    for task in (generation_tasks.generation_job_execute, training_tasks.training_run_execute):
        monkeypatch.setattr(task, "apply_async",
                            lambda name=task.name, **kw: out.append((name, kw)))
    return out


@pytest.fixture
def project(make_user):
    project = project_create(slug="reap", owner=make_user("owner"))
    make_prompts(project)
    return project


def _job(project, **fields) -> GenerationJob:
    version, _ = ModelVersion.objects.get_or_create(name="m", defaults={"source": "org/m"})
    defaults = {"status": GenerationJob.Status.RUNNING, "attempts": 1, "total": 6,
                "celery_task_id": "",
                "prompt_ids": list(project.prompts.values_list("pk", flat=True)),
                "sampling": {"n": 1, "seed": 1}, "started_at": timezone.now()}
    return GenerationJob.objects.create(project=project, model_version=version,
                                        **{**defaults, **fields})


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.mark.django_db
def test_a_job_whose_worker_went_silent_is_requeued(
    project, sent, settings, django_capture_on_commit_callbacks
):
    settings.PREFLOOP_JOB_STALE_S = 60
    old = timezone.now() - timedelta(seconds=61)
    silent = _job(project, worker="elsewhere:42", heartbeat_at=old, celery_task_id="first")
    alive = _job(project, worker="elsewhere:43", heartbeat_at=timezone.now(), celery_task_id="t")
    inline = _job(project, worker="elsewhere:44", heartbeat_at=old)  # a round's step runs it
    with django_capture_on_commit_callbacks(execute=True):
        recovered = jobs.orphans_recover()
    assert [(r.pk, r.action) for r in recovered] == [(silent.pk, "requeued")]
    silent.refresh_from_db()
    assert silent.status == GenerationJob.Status.PENDING and silent.celery_task_id != "first"
    assert "no heartbeat from elsewhere:42" in silent.error and "requeued" in silent.error
    assert sent == [("generation.tasks.generation_job_execute",
                     {"kwargs": {"job_id": silent.pk}, "task_id": silent.celery_task_id})]
    for untouched in (alive, inline):
        untouched.refresh_from_db()
        assert untouched.status == GenerationJob.Status.RUNNING and untouched.error == ""
    assert jobs.orphans_recover() == []  # a requeued job is not requeued twice


@pytest.mark.django_db
def test_a_job_of_a_dead_process_on_this_host_is_requeued_at_once(project, sent):
    pid = _dead_pid()
    job = _job(project, worker=f"{jobs.worker_id().rpartition(':')[0]}:{pid}",
               heartbeat_at=timezone.now(), celery_task_id="t")
    [recovered] = jobs.orphans_recover()
    assert recovered.action == "requeued" and f"process {job.worker} is gone" in recovered.reason


@pytest.mark.django_db
def test_past_the_attempt_limit_a_lost_job_fails_with_the_reason(project, sent, settings,
                                                                 tmp_path):
    settings.PREFLOOP_JOB_MAX_ATTEMPTS = 2
    gone = f"{jobs.worker_id().rpartition(':')[0]}:{_dead_pid()}"
    job = _job(project, worker=gone, attempts=2, celery_task_id="t")
    snapshot = ExportSnapshot.objects.create(project=project, format="trl-dpo", content_hash="h",
                                             path=str(tmp_path / "s.jsonl"))
    run = TrainingRun.objects.create(
        project=project, algorithm="dpo", snapshot=snapshot, policy=job.model_version,
        reference=job.model_version, output_name="r", status=TrainingRun.Status.RUNNING,
        attempts=1, worker=gone, started_at=timezone.now(), celery_task_id="t",
    )
    outcomes = {(r.kind, r.action) for r in jobs.orphans_recover()}
    assert outcomes == {("generation job", "failed"), ("training run", "requeued")}
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.FAILED and job.finished_at is not None
    assert "is gone" in job.error and "started 2 times without finishing" in job.error
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.PENDING and "is gone" in run.error
    # A redelivered message for the failed job finds it finished and does nothing.
    assert generation_jobs.generation_job_run(job_id=job.pk).status == GenerationJob.Status.FAILED


@pytest.mark.django_db
def test_a_job_started_too_often_is_failed_instead_of_started(project, settings):
    settings.PREFLOOP_JOB_MAX_ATTEMPTS = 3
    job = _job(project, status=GenerationJob.Status.PENDING, attempts=3)
    job = generation_jobs.generation_job_run(job_id=job.pk)
    assert job.status == GenerationJob.Status.FAILED
    assert "started 3 times without finishing" in job.error and job.attempts == 3


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_moves_while_the_block_runs_and_stops_after(project, settings):
    settings.PREFLOOP_JOB_HEARTBEAT_S = 0.05
    job = _job(project, heartbeat_at=None)
    seen = set()
    with jobs.heartbeat(GenerationJob, job.pk):
        deadline = time.monotonic() + 30
        while len(seen) < 3 and time.monotonic() < deadline:
            job.refresh_from_db()
            if job.heartbeat_at is not None:
                seen.add(job.heartbeat_at)
            time.sleep(0.05)
    assert len(seen) >= 3, "the heartbeat did not advance"
    time.sleep(0.3)
    last = GenerationJob.objects.get(pk=job.pk).heartbeat_at
    time.sleep(0.3)
    assert GenerationJob.objects.get(pk=job.pk).heartbeat_at == last


@pytest.mark.slow
@pytest.mark.django_db
def test_a_failing_caller_stops_its_trainer(tmp_path, make_user, tiny_model_dir, settings):
    """A retry must never run next to the trainer of the failed attempt (same folder)."""
    settings.MODELS_DIR = tmp_path / "models"
    project, snapshot, policy = _project(tmp_path, make_user, tiny_model_dir, "dpo")
    run = training_services.training_run_create(
        project=project, algorithm="dpo", snapshot=snapshot, policy=policy,
        hyperparameters={**FAST, "epochs": 20}, enqueue=False,
    )
    config = training_services.trainer_config(run)

    def database_gone(record: dict) -> None:
        if record.get("type") == "train":
            raise OperationalError("the database went away")

    with pytest.raises(OperationalError):
        runner.trainer_run(config=config, run_dir=Path(run.run_dir), resume=False,
                           on_metric=database_gone, should_cancel=lambda: False)
    config_path = str(Path(run.run_dir) / "config.json")
    left = [p.pid for p in psutil.process_iter(["cmdline"])
            if config_path in (p.info["cmdline"] or []) and not gone(p.pid)]
    assert left == [], "the trainer outlived the failed attempt"
