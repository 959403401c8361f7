"""Training runs: create, execute (from the Celery task), cancel.

The trainer itself (``training.core``) knows nothing of Django; this module turns a
``TrainingRun`` row into a trainer config, runs it in a subprocess, records its metrics,
and registers the final model as a new ``ModelVersion`` whose parent is the policy.
"""

from __future__ import annotations

import json
import logging
from dataclasses import fields
from pathlib import Path

from django.conf import settings
from django.db import transaction

from annotation.io.paths import UnsafePath, safe_path_under
from annotation.io.writers import DATA_FILE
from annotation.models import ExportSnapshot, Project
from annotation.services.exports import export_snapshot_file
from generation import ownership
from generation import services as generation_services
from generation.models import ModelVersion
from prefloop import jobs as prefloop_jobs
from prefloop.exceptions import ApplicationError, NotFoundError
from prefloop.jobs import Running, job_run
from training import defaults as training_defaults
from training import runner
from training.core.config import TrainConfig
from training.models import TrainingMetric, TrainingRun

logger = logging.getLogger(__name__)

PAIRED_FORMATS = ("trl-dpo", "trl-dpo-conversational")
FORMATS_FOR = {"dpo": PAIRED_FORMATS, "ipo": PAIRED_FORMATS, "simpo": PAIRED_FORMATS,
               "orpo": PAIRED_FORMATS, "kto": ("trl-kto",)}
# Keys the platform sets itself; owners choose every other TrainConfig field.
RESERVED = {"train_path", "policy_path", "reference_path", "output_dir", "resume", "algorithm"}
TUNABLE = {f.name for f in fields(TrainConfig)} - RESERVED
# Tunable settings that name files on the workers, and the folder each must stay inside.
CONFINED_PATHS = {"eval_path": "DATA_DIR", "ref_cache_dir": "MODELS_DIR"}


def _check_request(algorithm: str, snapshot: ExportSnapshot, hyperparameters: dict) -> None:
    if algorithm not in FORMATS_FOR:
        raise ApplicationError(f"unknown algorithm {algorithm!r}; one of {sorted(FORMATS_FOR)}")
    if snapshot.format not in FORMATS_FOR[algorithm]:
        raise ApplicationError(
            f"{algorithm} needs a snapshot in {' or '.join(FORMATS_FOR[algorithm])}, "
            f"not {snapshot.format}"
        )
    unknown = sorted(set(hyperparameters) - TUNABLE)
    if unknown:
        raise ApplicationError(f"unknown hyperparameters {unknown}; allowed: {sorted(TUNABLE)}")
    hyperparameter_paths_check(hyperparameters)


EVAL_NOT_OWN = "hyperparameter eval_path: not a data file of this project's export snapshots"


def _check_owned(
    *, project: Project, models: tuple[ModelVersion | None, ...], hyperparameters: dict
) -> None:
    """The models are the project's own or site-wide; ``eval_path`` is its own snapshot's."""
    for version in models:
        if version is not None:
            ownership.check_owned_by(version, project=project)
    eval_path_check(project=project, hyperparameters=hyperparameters)


def eval_path_check(*, project: Project, hyperparameters: dict) -> None:
    """``eval_path`` (when set) must be the data file of one of ``project``'s export
    snapshots, not merely a file in the data folder (other projects' exports live there
    too). Unknown and foreign paths get the same 404."""
    value = hyperparameters.get("eval_path")
    if value in (None, ""):
        return
    wanted = Path(value).resolve()
    folders = ExportSnapshot.objects.filter(project=project).values_list("path", flat=True)
    if wanted.name != DATA_FILE or not any(
        wanted.parent == Path(folder).resolve() for folder in folders
    ):
        raise NotFoundError(EVAL_NOT_OWN)


def hyperparameter_paths_check(hyperparameters: dict) -> None:
    """Path-valued hyperparameters must be absolute paths inside their allowed folder."""
    for name, setting in CONFINED_PATHS.items():
        value = hyperparameters.get(name)
        if value in (None, ""):
            continue
        if not isinstance(value, str):
            raise ApplicationError(f"hyperparameter {name} must be a path (a string)")
        try:
            safe_path_under(getattr(settings, setting), value, absolute=True)
        except UnsafePath as exc:
            raise ApplicationError(f"hyperparameter {name}: {exc} ({setting})") from exc


def training_launch_check(*, processes: int, nodes: int) -> None:
    """A process count the platform can launch: at least 1 each, at most
    ``TRAINING_MAX_PROCESSES`` in all, and a rendezvous endpoint for several nodes."""
    if processes < 1 or nodes < 1:
        raise ApplicationError("processes and nodes must be at least 1")
    if processes * nodes > settings.TRAINING_MAX_PROCESSES:
        raise ApplicationError(
            f"processes x nodes is {processes * nodes}; at most {settings.TRAINING_MAX_PROCESSES} "
            "(PREFLOOP_TRAINING_MAX_PROCESSES)"
        )
    if nodes > 1 and not settings.TRAINING_RDZV_ENDPOINT:
        raise ApplicationError(
            "a run on several nodes needs PREFLOOP_TRAINING_RDZV_ENDPOINT (host:port where the "
            "nodes meet); see docs/training.md"
        )


def training_launch(run: TrainingRun) -> runner.Launch:
    """How the runner starts ``run``'s trainer (one process, or torchrun)."""
    return runner.Launch(
        processes=run.processes, nodes=run.nodes,
        rdzv_endpoint=settings.TRAINING_RDZV_ENDPOINT, rdzv_id=f"prefloop-run-{run.pk}",
    )


@transaction.atomic
def training_run_create(
    *,
    project: Project,
    algorithm: str,
    snapshot: ExportSnapshot,
    policy: ModelVersion,
    reference: ModelVersion | None = None,
    hyperparameters: dict | None = None,
    output_name: str = "",
    user=None,
    enqueue: bool = True,
    processes: int = 1,
    nodes: int = 1,
) -> TrainingRun:
    """Create a run; with ``enqueue`` it goes to the ``train`` queue after commit.
    ``processes`` > 1 (per node) or ``nodes`` > 1 run the trainer under torchrun."""
    hyperparameters = training_defaults.hyperparameters_with_defaults(
        dict(hyperparameters or {}), policy_folder=policy.source
    )  # the rule in training/defaults.py; an explicit lr always wins
    _check_request(algorithm, snapshot, hyperparameters)
    training_launch_check(processes=processes, nodes=nodes)
    if snapshot.project_id != project.pk:
        raise ApplicationError("the snapshot belongs to another project")
    _check_owned(project=project, models=(policy, reference), hyperparameters=hyperparameters)
    if output_name:  # the predictable default name is reserved below, once the run has an id
        generation_services.model_version_name_reserve(project=project, name=output_name)
    run = TrainingRun.objects.create(
        project=project, algorithm=algorithm, snapshot=snapshot, policy=policy,
        reference=reference or policy, hyperparameters=hyperparameters,
        output_name=output_name or "pending", created_by=user, processes=processes, nodes=nodes,
    )
    if not output_name:
        run.output_name = f"{project.slug}-{algorithm}-run{run.pk}"[:100]
        generation_services.model_version_name_reserve(project=project, name=run.output_name)
    run.run_dir = str(settings.MODELS_DIR / "runs" / f"run-{run.pk}")
    run.save(update_fields=["output_name", "run_dir"])
    if enqueue:
        prefloop_jobs.enqueue(run)  # to the ``train`` queue after commit
    return run


def training_run_cancel(*, run: TrainingRun) -> TrainingRun:
    """Ask a run to stop: a pending run is cancelled at once, a running one within
    seconds; a finished run comes back unchanged."""
    return prefloop_jobs.cancel(TrainingRun, run.pk)


def trainer_config(run: TrainingRun) -> dict:
    data = export_snapshot_file(snapshot=run.snapshot)
    return {
        **run.hyperparameters,
        "algorithm": run.algorithm,
        "train_path": str(data),
        "policy_path": run.policy.source,
        "reference_path": run.reference.source,
        "output_dir": run.run_dir,
    }


def training_run_execute(*, run_id: int) -> TrainingRun:
    """Run the trainer for ``run_id``; safe to call again after a crash: a run started
    before resumes from its last checkpoint."""
    return job_run(TrainingRun, run_id, _execute, failing_on=(ApplicationError,))


def _execute(run: Running) -> None:
    job = run.job
    outcome = runner.trainer_run(
        config=trainer_config(job), run_dir=Path(job.run_dir), resume=job.attempts > 1,
        on_metric=lambda record: _record_metric(job.pk, record),
        should_cancel=lambda: _cancel_requested(job.pk), launch=training_launch(job),
    )
    if outcome.cancelled:
        _end(run, TrainingRun.Status.CANCELLED, log_tail=outcome.log_tail)
    elif outcome.returncode != 0:
        error = f"trainer exited with code {outcome.returncode}; see the log tail"
        _end(run, TrainingRun.Status.FAILED, error=error, log_tail=outcome.log_tail)
    else:
        _register_output(run, log_tail=outcome.log_tail)


def _cancel_requested(run_id: int) -> bool:
    return TrainingRun.objects.filter(pk=run_id, cancel_requested=True).exists()


def _record_metric(run_id: int, record: dict) -> None:
    kind, step = record.get("type", "train"), int(record.get("step", 0))
    TrainingMetric.objects.update_or_create(
        run_id=run_id, step=step, kind=kind, defaults={"values": record}
    )
    update = {"step": step}
    if record.get("total_steps"):
        update["total_steps"] = int(record["total_steps"])
    TrainingRun.objects.filter(pk=run_id).update(**update)


def _register_output(run: Running, *, log_tail: str) -> None:
    job = run.job
    final = Path(job.run_dir) / "final"
    if not (final / "prefloop_training.json").is_file():
        error = "the trainer stopped before writing a final model (interrupted?)"
        _end(run, TrainingRun.Status.FAILED, error=error, log_tail=log_tail)
        return
    summary = json.loads((final / "prefloop_training.json").read_text()).get("summary", {})
    with transaction.atomic():
        version = generation_services.model_version_register(
            name=job.output_name, source=str(final), parent=job.policy,
            notes=f"{job.algorithm} on snapshot {job.snapshot.content_hash[:12]} (run {job.pk})",
            metadata={"training_run": job.pk, "summary": summary},
            project=job.project, reserved=True,
        )
        status = TrainingRun.Status.SUCCEEDED
        _end(run, status, log_tail=log_tail, output_version=version, summary=summary)


def _end(run: Running, status: str, *, error: str = "", log_tail: str = "", **fields) -> None:
    """End the run (the last log lines kept when the trainer printed any)."""
    if log_tail:
        fields["log_tail"] = log_tail
    run.end(status=status, error=error, **fields)
    logger.info("training run %s %s %s", run.pk, status, error)
