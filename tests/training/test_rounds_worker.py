"""Rounds on real Celery workers: the chain of step tasks runs a round from start to finish,
and a worker killed in the middle of training leaves a round that completes once a worker
is back, with no manual step and one new model version, not two."""

from __future__ import annotations

import os
import signal
import time

import pytest

from generation.models import ModelVersion
from tests.support.worker import celery_worker
from tests.training.test_rounds_helpers import FAST, fast_settings, small_project, tiny_policy
from training.models import TrainingRun
from training.rounds import services
from training.rounds.models import Round

pytestmark = [pytest.mark.slow, pytest.mark.services, pytest.mark.django_db(transaction=True)]
QUEUES = "default,gpu,train"


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _ended(round_id: int) -> bool:
    return Round.objects.get(pk=round_id).status in Round.TERMINAL


def _worker(settings, log):
    env = {"PREFLOOP_MODELS_DIR": str(settings.MODELS_DIR), "PREFLOOP_LOG_LEVEL": "INFO"}
    return celery_worker(queues=QUEUES, log_path=log, env=env)


@pytest.fixture
def setup(make_user, tiny_model_dir, settings, tmp_path):
    settings.MODELS_DIR = tmp_path / "models"
    return small_project(make_user("owner"), slug="worker-loop"), tiny_policy(tiny_model_dir)


def test_a_round_runs_step_by_step_on_a_real_worker(setup, settings, tmp_path):
    project, policy = setup
    log = tmp_path / "worker.log"
    with _worker(settings, log):
        rnd = services.round_create(project=project, settings=fast_settings(), policy=policy)
        _wait(lambda: _ended(rnd.pk), 600, f"the round; worker log:\n{_tail(log)}")
    rnd.refresh_from_db()
    assert rnd.status == Round.Status.SUCCEEDED, (rnd.error, _tail(log))
    assert rnd.new_version.parent == policy and rnd.metrics["win_rate"]["pairs"] > 0
    text = log.read_text()
    for step in services.ORDER:  # every step ran as its own task
        assert f"training.rounds.tasks.round_{step}" in text, step


def test_a_worker_killed_while_training_leaves_a_round_that_finishes_after_restart(
    setup, settings, tmp_path
):
    project, policy = setup
    slow = {**FAST, "epochs": 12, "batch_size": 2, "checkpoint_every": 1}
    log = tmp_path / "worker.log"
    with _worker(settings, log) as worker:
        rnd = services.round_create(project=project, policy=policy,
                                    settings=fast_settings(hyperparameters=slow))

        def training() -> bool:
            run = Round.objects.get(pk=rnd.pk).training_run
            return run is not None and run.step >= 3

        _wait(training, 600, f"3 training steps; worker log:\n{_tail(log)}")
        os.kill(worker.pid, signal.SIGKILL)  # the trainer dies with it (PR_SET_PDEATHSIG)
        worker.wait()
    rnd.refresh_from_db()
    run = rnd.training_run
    assert (rnd.step, rnd.status, run.status) == ("train", "running", "running")
    assert ModelVersion.objects.filter(parent=policy).count() == 0

    # The machine is back: a new worker. Its start-up check finds the round's step held
    # by a process that is gone and requeues it; nobody resumes the round by hand, and
    # the file-system broker (which never redelivers the lost message) is enough.
    with _worker(settings, tmp_path / "worker2.log"):
        _wait(lambda: _ended(rnd.pk), 600, f"the round; log:\n{_tail(tmp_path / 'worker2.log')}")
    rnd.refresh_from_db()
    run.refresh_from_db()
    assert rnd.status == Round.Status.SUCCEEDED, rnd.error
    assert ModelVersion.objects.filter(parent=policy).count() == 1
    assert TrainingRun.objects.filter(project=project).count() == 1
    assert run.attempts == 2 and run.step == run.total_steps  # resumed from its checkpoint
    assert rnd.timings["train"]["attempts"] == 2 and rnd.new_version == run.output_version


def _tail(path) -> str:
    return path.read_text()[-3000:] if path.exists() else "(no log)"
