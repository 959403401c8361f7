"""Multi-process training runs from the platform: a ``TrainingRun`` with ``processes=2`` goes
through a real Celery worker (Redis broker), whose runner starts the trainer under torchrun (gloo
on the CPU). The result equals a one-process run of the same global batch; cancelling the run or
killing the worker leaves no rank running.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import psutil
import pytest
import redis
from safetensors.torch import load_file

from prefloop import celery_app
from prefloop.exceptions import ApplicationError
from tests.conftest import require
from tests.support.worker import celery_worker
from tests.training.test_runs import FAST, _project, _wait
from training import runner, services, tasks
from training.models import TrainingMetric, TrainingRun

REDIS_URL = os.environ.get("PREFLOOP_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
PARAMS = {**FAST, "epochs": 1, "threads": 1}  # 72 training pairs, batch 8: 9 steps
DONE = ("succeeded", "failed", "cancelled")


def test_one_process_runs_the_trainer_module_directly():
    cmd = runner.trainer_command(config_path=Path("/r/config.json"), resume=False)
    assert cmd == [sys.executable, "-m", "training.core.train", "--config", "/r/config.json"]


def test_several_processes_run_under_torchrun():
    launch = runner.Launch(processes=2)
    cmd = runner.trainer_command(config_path=Path("/r/config.json"), resume=True, launch=launch)
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert {"--nnodes=1", "--nproc-per-node=2", "--standalone"} <= set(cmd)
    assert cmd[-5:] == ["-m", "training.core.train", "--config", "/r/config.json", "--resume"]


def test_several_nodes_meet_at_the_rendezvous_endpoint():
    launch = runner.Launch(processes=8, nodes=4, rdzv_endpoint="head:29500", rdzv_id="run-7")
    cmd = runner.trainer_command(config_path=Path("/r/config.json"), resume=False, launch=launch)
    assert "--standalone" not in cmd
    expected = {
        "--nnodes=4",
        "--nproc-per-node=8",
        "--rdzv-backend=c10d",
        "--rdzv-endpoint=head:29500",
        "--rdzv-id=run-7",
    }
    assert expected <= set(cmd)


def test_launch_check(settings):
    settings.TRAINING_RDZV_ENDPOINT, settings.TRAINING_MAX_PROCESSES = "", 16
    services.training_launch_check(processes=16, nodes=1)
    for processes, nodes, message in (
        (0, 1, "at least 1"),
        (1, 0, "at least 1"),
        (9, 2, "at most 16"),
        (2, 2, "RDZV_ENDPOINT"),
    ):
        with pytest.raises(ApplicationError, match=message):
            services.training_launch_check(processes=processes, nodes=nodes)
    settings.TRAINING_RDZV_ENDPOINT = "head:29500"
    services.training_launch_check(processes=2, nodes=2)


def test_a_run_records_its_process_count(dpo_setup):
    project, snapshot, policy = dpo_setup
    run = services.training_run_create(
        project=project,
        algorithm="dpo",
        snapshot=snapshot,
        policy=policy,
        processes=2,
        enqueue=False,
    )
    run.refresh_from_db()
    assert (run.processes, run.nodes) == (2, 1)
    assert services.training_launch(run) == runner.Launch(
        processes=2, nodes=1, rdzv_endpoint="", rdzv_id=f"prefloop-run-{run.pk}"
    )


@pytest.fixture
def dpo_setup(db, tmp_path, make_user, tiny_model_dir, settings):
    settings.MODELS_DIR = tmp_path / "models"
    return _project(tmp_path, make_user, tiny_model_dir, "dpo")


def _redis_broker() -> str:
    try:
        up = bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        up = False
    require(up, f"needs Redis at {REDIS_URL} (PREFLOOP_TEST_REDIS_URL)")
    redis.Redis.from_url(REDIS_URL).flushdb()
    return REDIS_URL


def _send(run: TrainingRun) -> None:
    """What ``training_run_enqueue`` does, through the Redis broker the worker listens on."""
    with celery_app.connection_for_write(REDIS_URL) as conn:
        tasks.training_run_execute.apply_async(kwargs={"run_id": run.pk}, connection=conn)


def _trainer_processes(run: TrainingRun) -> list[psutil.Process]:
    """torchrun and its ranks: every process whose command line names the run's config."""
    config = str(Path(run.run_dir) / "config.json")
    found = []
    for p in psutil.process_iter(["cmdline"]):
        if config in (p.info["cmdline"] or []):
            found.append(p)
    return found


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
        except psutil.NoSuchProcess:
            pass
    return alive


def _start_two_process_run(setup, log: Path, **params) -> tuple[TrainingRun, list]:
    """A 2-process run sent to the worker, once it has trained 2 steps: (run, its processes)."""
    project, snapshot, policy = setup
    run = services.training_run_create(
        project=project,
        algorithm="dpo",
        snapshot=snapshot,
        policy=policy,
        hyperparameters={**PARAMS, **params},
        processes=2,
        enqueue=False,
    )
    _send(run)
    _wait(
        lambda: TrainingRun.objects.get(pk=run.pk).step >= 2,
        300,
        f"2 steps of run {run.pk}; worker log:\n{log.read_text()[-3000:]}",
    )
    procs = _trainer_processes(run)
    assert len(procs) == 3, procs  # torchrun and two ranks
    return run, procs


def _weights(run: TrainingRun) -> dict:
    return load_file(str(Path(run.output_version.source) / "model.safetensors"))


def _losses(run: TrainingRun) -> list[float]:
    return [m.values["loss"] for m in TrainingMetric.objects.filter(run=run, kind="train")]


@pytest.mark.slow
@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_two_processes_through_a_worker_match_one_and_cancel_stops_every_rank(
    tmp_path, make_user, tiny_model_dir, settings
):
    broker = _redis_broker()
    settings.MODELS_DIR = tmp_path / "models"
    setup = project, snapshot, policy = _project(tmp_path, make_user, tiny_model_dir, "dpo")
    one = services.training_run_create(
        project=project,
        algorithm="dpo",
        snapshot=snapshot,
        policy=policy,
        hyperparameters=PARAMS,
        enqueue=False,
    )
    one = services.training_run_execute(run_id=one.pk)  # one process, in this process's runner
    assert one.status == TrainingRun.Status.SUCCEEDED, one.log_tail[-2000:]

    log = tmp_path / "worker.log"
    env = {"PREFLOOP_MODELS_DIR": str(settings.MODELS_DIR)}
    with celery_worker(broker_url=broker, queues="train", log_path=log, env=env):
        two = services.training_run_create(
            project=project,
            algorithm="dpo",
            snapshot=snapshot,
            policy=policy,
            hyperparameters=PARAMS,
            processes=2,
            enqueue=False,
        )
        _send(two)
        two = _wait(
            lambda: TrainingRun.objects.filter(pk=two.pk, status__in=DONE).first(),
            300,
            f"run {two.pk}; worker log:\n{log.read_text()[-3000:]}",
        )
        assert two.status == TrainingRun.Status.SUCCEEDED, (two.error, two.log_tail[-3000:])
        assert two.summary["world_size"] == 2 and two.step == one.step == 9

        long_run, procs = _start_two_process_run(setup, log, epochs=50)
        services.training_run_cancel(run=long_run)
        _wait(
            lambda: TrainingRun.objects.get(pk=long_run.pk).status == TrainingRun.Status.CANCELLED,
            120,
            "the cancel",
        )
        survivors = _alive(procs)

    a, b = _weights(one), _weights(two)
    assert a.keys() == b.keys()
    diff = max(float((a[k].double() - b[k].double()).abs().max()) for k in a)
    assert diff <= 1e-5, diff
    # rank 0's metrics were streamed: one row per step, the same losses as one process
    assert _losses(two) == pytest.approx(_losses(one), abs=1e-5)
    assert survivors == []


@pytest.mark.slow
@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_killed_worker_leaves_no_rank_running(tmp_path, make_user, tiny_model_dir, settings):
    broker = _redis_broker()
    settings.MODELS_DIR = tmp_path / "models"
    setup = _project(tmp_path, make_user, tiny_model_dir, "dpo")
    log = tmp_path / "worker.log"
    env = {"PREFLOOP_MODELS_DIR": str(settings.MODELS_DIR)}
    with celery_worker(broker_url=broker, queues="train", log_path=log, env=env) as worker:
        run, procs = _start_two_process_run(setup, log, epochs=50)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
    _wait(lambda: not _alive(procs), 60, f"every rank to stop; still running: {_alive(procs)}")
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.RUNNING  # the lost-worker check requeues it
