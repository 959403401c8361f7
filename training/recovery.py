"""Training runs for the orphan reaper (``prefloop.jobs``): a run whose worker was lost
goes back to the ``train`` queue and resumes from its last checkpoint (``attempts`` > 0
makes the trainer start with ``--resume``). Its trainer subprocess died with the worker
(``runner``: PR_SET_PDEATHSIG), and a model is registered only once ``final/`` is
complete, so nothing half-written is ever in the registry."""

from __future__ import annotations

from prefloop.jobs import JobKind
from training import services
from training.models import TrainingRun


def _enqueue(pk: int, task_id: str) -> None:
    services.training_run_enqueue(run_id=pk, task_id=task_id)


JOB_KINDS = [
    JobKind(model=TrainingRun, running=TrainingRun.Status.RUNNING,
            waiting=TrainingRun.Status.QUEUED, failed=TrainingRun.Status.FAILED,
            enqueue=_enqueue),
]  # fmt: skip
