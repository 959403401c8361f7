"""Training runs in the platform: snapshot → trainer subprocess → new model version.

Covers the command line, the Celery path with a real worker, a worker killed mid-run
(the re-delivered task resumes from the checkpoint; the registry never points at a
partial model), cancel, and failures recorded with the log tail.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from transformers import AutoModelForCausalLM

from annotation.services.exports import export_snapshot_create
from annotation.services.imports import import_file
from annotation.services.projects import project_create
from generation.demo.checker import answer_styles
from generation.demo.facts import capitals, demo_questions
from generation.models import ModelVersion
from generation.services import model_version_register
from tests.support.worker import celery_worker
from training import services
from training.models import TrainingMetric, TrainingRun

FAST = {"lr": 1e-3, "epochs": 3, "batch_size": 8, "max_length": 96, "eval_fraction": 0.25}


def _rows(kind: str, n: int = 96) -> list[dict]:
    """Demo questions with a direct answer preferred to a hedge or a wrong guess.

    Those two styles have a wording of their own, so the preference generalises to
    held-out rows even for a model that has not memorised the facts.
    """
    import random

    rng, styles, caps = random.Random(0), answer_styles(), sorted(capitals(0))
    rows = []
    for fact, question in demo_questions("train")[:n]:
        others = [c for c in caps if c != fact.capital]
        prompt = [{"role": "user", "content": question}]
        good = styles["correct"](fact, others, rng)
        bad = styles[rng.choice(["hedge", "wrong_guess"])](fact, others, rng)
        if kind == "dpo":
            rows.append({"prompt": prompt, "chosen": [{"role": "assistant", "content": good}],
                         "rejected": [{"role": "assistant", "content": bad}]})
        else:
            rows += [{"prompt": prompt, "completion": [{"role": "assistant", "content": t}],
                      "label": label} for t, label in ((good, True), (bad, False))]
    return rows


def _project(tmp_path: Path, make_user, tiny_model_dir: Path, kind: str):
    owner = make_user(f"owner-{kind}")
    project = project_create(slug=f"train-{kind}", owner=owner)
    path = tmp_path / f"{kind}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _rows(kind)))
    report = import_file(project=project, path=path)
    assert report.imported, report.errors
    fmt = "trl-kto" if kind == "kto" else "trl-dpo-conversational"
    snapshot, _ = export_snapshot_create(project=project, fmt=fmt)
    policy = model_version_register(name=f"tiny-{kind}", source=str(tiny_model_dir))
    return project, snapshot, policy


@pytest.fixture
def dpo_setup(db, tmp_path, make_user, tiny_model_dir, settings):
    settings.MODELS_DIR = tmp_path / "models"
    return _project(tmp_path, make_user, tiny_model_dir, "dpo")


def _assert_registered(run: TrainingRun) -> ModelVersion:
    assert run.status == TrainingRun.Status.SUCCEEDED, (run.error, run.log_tail[-2000:])
    version = run.output_version
    assert version.parent == run.policy and version.version == run.policy.version + 1
    assert Path(version.source).name == "final"
    AutoModelForCausalLM.from_pretrained(version.source)  # a complete, loadable model
    return version


@pytest.mark.slow
def test_dpo_run_from_the_command_line_registers_a_better_model(dpo_setup, capsys):
    project, snapshot, _ = dpo_setup
    call_command("train", project=project.slug, algorithm="dpo", snapshot=snapshot.content_hash,
                 policy="tiny-dpo", lr=1e-3, epochs=3, batch_size=8,
                 param=["max_length=96", "eval_fraction=0.25"])
    run = TrainingRun.objects.get(project=project)
    _assert_registered(run)
    assert "succeeded" in capsys.readouterr().out
    steps = TrainingMetric.objects.filter(run=run, kind="train")
    assert steps.count() == run.total_steps == run.step > 0
    first, last = steps.first().values, steps.last().values
    assert last["loss"] < first["loss"]
    held_out = run.summary["eval"]
    assert held_out["rows"] > 0 and held_out["reward_accuracy"] > 0.6


@pytest.mark.slow
def test_kto_run_from_thumbs(db, tmp_path, make_user, tiny_model_dir, settings):
    settings.MODELS_DIR = tmp_path / "models"
    project, snapshot, policy = _project(tmp_path, make_user, tiny_model_dir, "kto")
    run = services.training_run_create(project=project, algorithm="kto", snapshot=snapshot,
                                       policy=policy, hyperparameters=FAST, enqueue=False)
    run = services.training_run_execute(run_id=run.pk)
    _assert_registered(run)
    assert run.summary["eval"]["reward_accuracy"] > 0.6


def test_algorithm_and_snapshot_format_must_match(dpo_setup):
    project, snapshot, policy = dpo_setup
    with pytest.raises(Exception, match="kto needs a snapshot in trl-kto"):
        services.training_run_create(project=project, algorithm="kto", snapshot=snapshot,
                                     policy=policy, enqueue=False)
    with pytest.raises(Exception, match="unknown hyperparameters"):
        services.training_run_create(project=project, algorithm="dpo", snapshot=snapshot,
                                     policy=policy, hyperparameters={"bogus": 1}, enqueue=False)
    assert not TrainingRun.objects.exists()


def test_a_crashing_trainer_fails_the_run_with_its_log_tail(dpo_setup):
    project, snapshot, _ = dpo_setup
    broken = model_version_register(name="missing", source="/nonexistent/model/dir")
    run = services.training_run_create(project=project, algorithm="dpo", snapshot=snapshot,
                                       policy=broken, hyperparameters=FAST, enqueue=False)
    run = services.training_run_execute(run_id=run.pk)
    assert run.status == TrainingRun.Status.FAILED
    assert "exited with code" in run.error
    assert "nonexistent" in run.log_tail
    assert run.output_version is None
    assert ModelVersion.objects.filter(parent=broken).count() == 0
    # Idempotent: a re-delivered task does nothing to a finished run.
    again = services.training_run_execute(run_id=run.pk)
    assert (again.status, again.attempts, again.error) == (run.status, run.attempts, run.error)


def test_cancel_a_pending_run(dpo_setup):
    project, snapshot, policy = dpo_setup
    run = services.training_run_create(project=project, algorithm="dpo", snapshot=snapshot,
                                       policy=policy, enqueue=False)
    run = services.training_run_cancel(run=run)
    assert run.status == TrainingRun.Status.CANCELLED
    assert services.training_run_execute(run_id=run.pk).attempts == 0  # never started


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_run_resumes_and_never_registers_a_partial_model(
    tmp_path, make_user, tiny_model_dir, settings
):
    settings.MODELS_DIR = tmp_path / "models"
    project, snapshot, policy = _project(tmp_path, make_user, tiny_model_dir, "dpo")
    params = {**FAST, "epochs": 12, "checkpoint_every": 1}
    log = tmp_path / "worker.log"
    with celery_worker(queues="train", log_path=log,
                       env={"PREFLOOP_MODELS_DIR": str(settings.MODELS_DIR)}) as worker:
        run = services.training_run_create(project=project, algorithm="dpo",
                                           snapshot=snapshot, policy=policy,
                                           hyperparameters=params)
        _wait(lambda: TrainingRun.objects.get(pk=run.pk).step >= 3, 180,
              f"the worker to train 3 steps; log:\n{log.read_text()[-3000:]}")
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.RUNNING and 3 <= run.step < run.total_steps
    assert ModelVersion.objects.filter(parent=policy).count() == 0
    assert not (Path(run.run_dir) / "final").exists()
    # What the broker does after the visibility timeout: deliver the task again.
    run = services.training_run_execute(run_id=run.pk)
    _assert_registered(run)
    assert run.attempts == 2 and run.step == run.total_steps
    assert ModelVersion.objects.filter(parent=policy).count() == 1


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_cancel_a_running_run_stops_the_trainer(tmp_path, make_user, tiny_model_dir, settings):
    import threading

    from django.db import connections

    settings.MODELS_DIR = tmp_path / "models"
    project, snapshot, policy = _project(tmp_path, make_user, tiny_model_dir, "dpo")
    run = services.training_run_create(project=project, algorithm="dpo", snapshot=snapshot,
                                       policy=policy, hyperparameters={**FAST, "epochs": 50},
                                       enqueue=False)

    def cancel_after_two_steps() -> None:
        try:
            _wait(lambda: TrainingRun.objects.get(pk=run.pk).step >= 2, 120, "2 steps")
            services.training_run_cancel(run=run)
        finally:
            connections.close_all()

    canceller = threading.Thread(target=cancel_after_two_steps)
    canceller.start()
    run = services.training_run_execute(run_id=run.pk)
    canceller.join()
    assert run.status == TrainingRun.Status.CANCELLED
    assert run.step < run.total_steps and run.output_version is None
