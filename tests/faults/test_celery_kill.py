"""Drill: ``kill -9`` a Celery worker in the middle of a generation job and of a training run.

Generation (transformers backend, the tiny model, one prompt per batch so the job takes
several seconds):

* the *pool child* running the job is killed: the worker sees it lost and the broker
  redelivers the task at once (``acks_late`` + ``reject_on_worker_lost``);
* the *worker process* itself is killed: nothing redelivers the message before the
  visibility timeout (hours), so a new worker's start-up check (``prefloop.jobs``) finds
  the job's worker gone and requeues it.

Either way the job resumes after its last stored batch and ends ``succeeded`` with every
sample stored exactly once. Training: the worker is killed mid-run, its trainer
subprocess dies with it, nothing is registered; a new worker requeues the run, which
resumes from its last checkpoint and registers one complete model.
"""

from __future__ import annotations

import math
import os
import signal
import time
from pathlib import Path

import psutil
import pytest
from transformers import AutoModelForCausalLM

from annotation.models import Response, Task
from annotation.services.content import prompt_get_or_create
from annotation.services.projects import project_create
from generation import services
from generation.models import GeneratedSample, GenerationJob, ModelVersion
from prefloop import celery_app
from tests.faults.support import celery_worker, gone, wait_for
from tests.training.test_runs import FAST, _project
from training import services as training_services
from training.models import TrainingMetric, TrainingRun

pytestmark = [pytest.mark.slow, pytest.mark.services, pytest.mark.django_db(transaction=True)]
FAST_BEAT = {"PREFLOOP_JOB_HEARTBEAT_S": "0.5"}
GEN_ENV = {**FAST_BEAT, "GENERATION_BACKEND": "transformers"}
SAMPLING = {"n": 2, "temperature": 1.0, "max_tokens": 24, "seed": 3}
PROMPTS = 16


@pytest.fixture(autouse=True)
def empty_queues() -> None:
    """Messages left by earlier tests must not reach the drill's workers."""
    celery_app.control.purge()


@pytest.fixture
def project(make_user):
    project = project_create(slug="drill", owner=make_user("owner"))
    for tag in ("child", "main"):
        for i in range(PROMPTS):
            text = f"Which city is the capital of land {tag}-{i}?"
            prompt_get_or_create(project=project, tags=[tag], messages=text)
    return project


def _job(project, version: ModelVersion, tag: str) -> GenerationJob:
    return services.generation_job_create(project=project, model_version=version,
                                          sampling=SAMPLING, tags=[tag], batch_size=1)


def _refreshed(job):
    job.refresh_from_db()
    return job


def _assert_complete_once(job: GenerationJob) -> None:
    """Resumed, finished, and nothing stored twice."""
    assert job.status == GenerationJob.Status.SUCCEEDED and job.error == "", job.error
    assert job.attempts == 2, "the job should have been started twice (killed, then resumed)"
    assert job.done == job.total == PROMPTS
    assert job.batches_done == math.ceil(PROMPTS / job.batch_size)
    samples = GeneratedSample.objects.filter(job=job)
    keys = set(samples.values_list("prompt_id", "sample_index"))
    assert samples.count() == len(keys) == PROMPTS * SAMPLING["n"]
    responses = Response.objects.filter(prompt_id__in=job.prompt_ids)
    assert responses.count() == job.responses_created  # counted once each, none repeated
    assert Task.objects.filter(prompt_id__in=job.prompt_ids).count() == job.tasks_created > 0


def test_a_generation_job_resumes_after_its_pool_child_or_its_worker_is_killed(
    project, tiny_model_dir, tmp_path
):
    version = services.model_version_register(name="tiny", source=str(tiny_model_dir))
    log = tmp_path / "worker.log"

    # 1. The pool child dies: Celery redelivers at once, to the respawned child.
    with celery_worker(log_path=log, queues="gpu", pool="prefork", env=GEN_ENV) as worker:
        job = _job(project, version, "child")
        wait_for(lambda: _refreshed(job).batches_done >= 3, timeout=300,
                 what="3 batches in the prefork child", log=log)
        child = int(job.worker.rpartition(":")[2])
        assert child in [p.pid for p in psutil.Process(worker.pid).children()]
        os.kill(child, signal.SIGKILL)
        wait_for(lambda: _refreshed(job).status in GenerationJob.TERMINAL, timeout=300,
                 what="the redelivered job to finish", log=log)
        assert int(job.worker.rpartition(":")[2]) != child
    _assert_complete_once(job)

    # 2. The worker process dies: its message stays unacknowledged for hours.
    with celery_worker(log_path=log, queues="gpu", env=GEN_ENV) as worker:
        job = _job(project, version, "main")
        wait_for(lambda: _refreshed(job).batches_done >= 3, timeout=300,
                 what="3 batches in the solo worker", log=log)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
    stalled = _refreshed(job).batches_done
    time.sleep(1.5)
    assert _refreshed(job).status == GenerationJob.Status.RUNNING and job.batches_done == stalled
    assert stalled < PROMPTS

    with celery_worker(log_path=log, queues="gpu", env=GEN_ENV):
        wait_for(lambda: _refreshed(job).status in GenerationJob.TERMINAL, timeout=300,
                 what="the requeued job to finish", log=log)
    _assert_complete_once(job)
    assert f"generation job {job.pk} requeued: its worker process" in log.read_text()


def _trainer_of(worker_pid: int) -> psutil.Process:
    for proc in psutil.Process(worker_pid).children(recursive=True):
        if "training.core.train" in " ".join(proc.cmdline()):
            return proc
    raise AssertionError("no trainer subprocess under the worker")


def test_a_training_run_killed_with_its_worker_resumes_from_its_checkpoint(
    tmp_path, make_user, tiny_model_dir, settings
):
    settings.MODELS_DIR = tmp_path / "models"
    project, snapshot, policy = _project(tmp_path, make_user, tiny_model_dir, "dpo")
    env = {**FAST_BEAT, "PREFLOOP_MODELS_DIR": str(settings.MODELS_DIR)}
    log = tmp_path / "worker.log"
    with celery_worker(log_path=log, queues="train", env=env) as worker:
        run = training_services.training_run_create(
            project=project, algorithm="dpo", snapshot=snapshot, policy=policy,
            hyperparameters={**FAST, "epochs": 4, "checkpoint_every": 1},
        )
        wait_for(lambda: _refreshed(run).step >= 3, timeout=300, what="3 training steps", log=log)
        trainer = _trainer_of(worker.pid)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
    wait_for(lambda: gone(trainer.pid), timeout=30, what="the trainer to die with its worker")

    run = _refreshed(run)
    assert run.status == TrainingRun.Status.RUNNING and 3 <= run.step < run.total_steps
    assert not (Path(run.run_dir) / "final").exists()
    assert not ModelVersion.objects.filter(parent=policy).exists()

    with celery_worker(log_path=log, queues="train", env=env):
        wait_for(lambda: _refreshed(run).status in TrainingRun.TERMINAL, timeout=300,
                 what="the requeued run to finish", log=log)
    assert run.status == TrainingRun.Status.SUCCEEDED, (run.error, run.log_tail[-2000:])
    assert run.attempts == 2 and run.step == run.total_steps and run.error == ""
    starts = TrainingMetric.objects.filter(run=run, kind="start")
    assert [m.values["resumed"] for m in starts.order_by("step")] == [False, True]
    assert TrainingMetric.objects.filter(run=run, kind="train").count() == run.total_steps
    [version] = ModelVersion.objects.filter(parent=policy)
    assert run.output_version == version and Path(version.source) == Path(run.run_dir) / "final"
    AutoModelForCausalLM.from_pretrained(version.source)  # complete and loadable
