"""One job lifecycle (``prefloop.jobs``), the same for every job kind: generation jobs,
AI-feedback jobs, training runs and round steps.

Each kind's body (the work between claim and finish) is replaced by a probe that counts
its calls, so these tests pin the lifecycle itself: claiming, cancelling, failing, the
lost-worker check and the attempts cap, through each kind's own task and services. The
lost worker is a real process, SIGKILLed while it holds the job.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from annotation.models import ExportSnapshot
from annotation.services.projects import project_create
from generation import services as generation_services
from generation.backends import BackendError
from generation.feedback.judges import JudgeError
from generation.feedback.models import FeedbackJob
from generation.feedback.services import jobs as feedback_services
from generation.models import GenerationJob, ModelVersion
from prefloop import jobs
from prefloop.celery import job_task
from prefloop.exceptions import ApplicationError
from tests.support.worker import ROOT
from tests.support.worker import test_database_url as database_url
from training import services as training_services
from training.models import TrainingRun
from training.rounds import services as round_services
from training.rounds import steps
from training.rounds.models import Round

pytestmark = pytest.mark.django_db(transaction=True)
Status = jobs.JobStatus


@dataclass(frozen=True)
class Kind:
    model: type[jobs.Job]
    make: Callable  # (project, version) -> a pending job, as if just enqueued
    cancel: Callable  # the kind's cancel service: (job) -> job
    body: str  # where the body is patched: "module:attribute", or "round" (the step)
    domain_error: type[Exception]
    task_name: str  # the task that runs it (for a round: its first step's)

    @property
    def task(self):
        return job_task(self.task_name)[0]


def _generation(project, version) -> GenerationJob:
    return GenerationJob.objects.create(project=project, model_version=version,
                                        sampling={"n": 1, "seed": 1}, celery_task_id="t-1")


def _feedback(project, version) -> FeedbackJob:
    return FeedbackJob.objects.create(project=project, kind=FeedbackJob.Kind.JUDGE,
                                      celery_task_id="t-1")


def _training(project, version) -> TrainingRun:
    snapshot = ExportSnapshot.objects.create(project=project, format="trl-dpo",
                                             content_hash="0" * 64, path="x")
    return TrainingRun.objects.create(project=project, algorithm="dpo", snapshot=snapshot,
                                      policy=version, reference=version, output_name="out",
                                      celery_task_id="t-1")


def _round(project, version) -> Round:
    return Round.objects.create(project=project, index=1, initial_version=version,
                                policy=version, reference=version, labelling="ai",
                                celery_task_id="t-1")


KINDS = {
    "generation": Kind(GenerationJob, _generation,
                       lambda job: generation_services.generation_job_cancel(job=job),
                       "generation.jobs:_job_run", BackendError,
                       "generation.tasks.generation_job_execute"),
    "ai-feedback": Kind(FeedbackJob, _feedback,
                        lambda job: feedback_services.feedback_job_cancel(job=job),
                        "generation.feedback.runner:_job_run", JudgeError,
                        "generation.feedback.tasks.feedback_job_execute"),
    "training-run": Kind(TrainingRun, _training,
                         lambda run: training_services.training_run_cancel(run=run),
                         "training.services:_execute", ApplicationError,
                         "training.tasks.training_run_execute"),
    "round-step": Kind(Round, _round, lambda rnd: round_services.round_cancel(rnd=rnd),
                       "round", ApplicationError, "training.rounds.tasks.round_generate"),
}


@pytest.fixture(params=list(KINDS))
def kind(request) -> Kind:
    return KINDS[request.param]


@pytest.fixture
def job(kind, make_user):
    project = project_create(slug="lifecycle", owner=make_user("owner"))
    version = ModelVersion.objects.create(name="base", source="/nowhere")
    return kind.make(project, version)


@pytest.fixture
def sent(monkeypatch) -> list[dict]:
    """Messages the services send (to every job kind's task), instead of a broker."""
    calls: list[dict] = []
    for kind in KINDS.values():
        monkeypatch.setattr(kind.task, "apply_async", lambda **kw: calls.append(kw))
    for name in ("round_label", "round_wait"):
        task = job_task(f"training.rounds.tasks.{name}")[0]
        monkeypatch.setattr(task, "apply_async", lambda **kw: calls.append(kw))
    return calls


class Probe:
    """Stands in for a kind's body: counts calls and does ``action`` (inside the job)."""

    def __init__(self, kind: Kind, monkeypatch, action: Callable | None = None) -> None:
        self.calls, self.action = 0, action
        if kind.body == "round":
            monkeypatch.setitem(steps.STEPS, "generate", self._step)
        else:
            module, name = kind.body.split(":")
            monkeypatch.setattr(f"{module}.{name}", self._run)

    def _run(self, run: jobs.Running) -> None:
        self.calls += 1
        if self.action is not None:
            self.action(run.job)
        run.stop_if_cancelled()  # what every body does between its batches

    def _step(self, rnd: Round) -> steps.Outcome:
        self.calls += 1
        if self.action is not None:
            self.action(rnd)
        return steps.Outcome.done()


def _execute(kind: Kind, job) -> jobs.Job:
    """Deliver the job's task message (as a worker would) and read the row back."""
    argument = job_task(kind.task_name)[1]
    kind.task(**{argument: job.pk})
    job.refresh_from_db()
    return job


def _attempts(kind: Kind, job) -> int:
    """How often the job (for a round: its generate step) was started."""
    if kind.model is Round:
        return job.timings["generate"]["attempts"]
    return job.attempts


def _finished(kind: Kind, job) -> bool:
    """Succeeded: a job ends; a round step ends when the round moves to the next step."""
    if kind.model is Round:
        return job.step == Round.Step.LABEL and job.steps["generate"] == "done"
    return job.status == Status.SUCCEEDED


def test_claiming_twice(kind, job):
    first = jobs.claim(kind.model, job.pk)
    assert (first.status, first.attempts, first.worker) == (Status.RUNNING, 1, jobs.worker_id())
    # A duplicate message in another live worker must not start a second executor.
    other = f"{socket.gethostname()}:{os.getppid()}"  # a live process of this host
    kind.model.objects.filter(pk=job.pk).update(worker=other)
    assert jobs.claim(kind.model, job.pk) is None
    job.refresh_from_db()
    assert job.attempts == 1
    # The same worker again (a retry) takes it up, counting the attempt.
    kind.model.objects.filter(pk=job.pk).update(worker=jobs.worker_id())
    assert jobs.claim(kind.model, job.pk).attempts == 2


def test_cancel_before_running(kind, job, monkeypatch):
    probe = Probe(kind, monkeypatch)
    cancelled = kind.cancel(job)
    assert cancelled.status == Status.CANCELLED and cancelled.finished_at is not None
    job = _execute(kind, job)
    assert (job.status, job.attempts, probe.calls) == (Status.CANCELLED, 0, 0)


def test_cancel_while_running(kind, job, monkeypatch, sent):
    seen = []

    def cancel_now(current) -> None:
        seen.append(kind.cancel(current).status)

    probe = Probe(kind, monkeypatch, cancel_now)
    job = _execute(kind, job)
    assert probe.calls == 1 and job.status == Status.CANCELLED and job.cancel_requested
    # A job stops at its next check; a round stops at once (it runs no further step).
    assert seen == [Status.CANCELLED if kind.model is Round else Status.RUNNING]
    assert sent == []  # nothing runs after a cancelled job


def test_cancel_after_running_changes_nothing(kind, job, monkeypatch, sent):
    Probe(kind, monkeypatch)
    job = _execute(kind, job)
    if kind.model is Round:  # let the round finish: cancel it past its last step
        Round.objects.filter(pk=job.pk).update(status=Status.SUCCEEDED, step=Round.Step.DONE)
        job.refresh_from_db()
    before = (job.status, job.finished_at, job.error)
    again = kind.cancel(job)  # never raises
    assert (again.status, again.finished_at, again.error) == before
    assert not again.cancel_requested


def test_failure_with_a_reason(kind, job, monkeypatch):
    def broken(_job) -> None:
        raise kind.domain_error("the engine is out of memory")

    Probe(kind, monkeypatch, broken)
    job = _execute(kind, job)
    assert job.status == Status.FAILED and job.error == "the engine is out of memory"
    assert job.finished_at is not None


def test_an_unexpected_error_is_recorded_by_the_task_and_raised(kind, job, monkeypatch):
    def broken(_job) -> None:
        raise RuntimeError("bug")

    Probe(kind, monkeypatch, broken)
    with pytest.raises(RuntimeError):
        _execute(kind, job)
    job.refresh_from_db()
    assert job.status == Status.FAILED and job.error == "internal error: RuntimeError('bug')"


WORKER = """
import sys, time
import django
django.setup()
from prefloop.celery import job_task
from training.rounds import steps

def body(*args):
    print("claimed", flush=True)
    time.sleep(600)

name, body_at, pk = sys.argv[1:]
if body_at == "round":
    steps.STEPS["generate"] = body
else:
    module, attribute = body_at.split(":")
    setattr(__import__(module, fromlist=[attribute]), attribute, body)
task, argument = job_task(name)
task(**{argument: int(pk)})
"""


def test_a_worker_killed_mid_job_is_requeued_and_the_job_finishes_once(
    kind, job, monkeypatch, sent, settings
):
    env = {**os.environ, "DATABASE_URL": database_url(),
           "DJANGO_SETTINGS_MODULE": "prefloop.settings"}
    args = [sys.executable, "-c", WORKER, kind.task_name, kind.body, str(job.pk)]
    worker = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout.readline().strip() == "claimed"
        job.refresh_from_db()
        assert job.status == Status.RUNNING and job.worker.endswith(f":{worker.pid}")
        assert jobs.orphans_recover() == []  # alive: not an orphan
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    [recovered] = jobs.orphans_recover()
    assert (recovered.pk, recovered.action) == (job.pk, "requeued")
    job.refresh_from_db()
    assert job.status == Status.PENDING and f":{worker.pid} is gone" in job.error
    [message] = sent
    assert message["task_id"] == job.celery_task_id != "t-1"

    probe = Probe(kind, monkeypatch)
    job = _execute(kind, job)  # the requeued message
    assert _finished(kind, job) and _attempts(kind, job) == 2
    job = _execute(kind, job)  # the old message, delivered late: nothing happens
    assert probe.calls == 1 and _finished(kind, job) and _attempts(kind, job) == 2


def test_the_attempts_cap(kind, job, monkeypatch, settings):
    settings.PREFLOOP_JOB_MAX_ATTEMPTS = 3
    probe = Probe(kind, monkeypatch)
    kind.model.objects.filter(pk=job.pk).update(attempts=3)
    job = _execute(kind, job)
    assert job.status == Status.FAILED and "started 3 times" in job.error and probe.calls == 0
