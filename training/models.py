"""Training runs: one preference-training job on an export snapshot."""

from __future__ import annotations

from django.db import models

from prefloop.jobs.models import Job


class TrainingRun(Job):
    """Its status, worker and attempts are those of every job (``prefloop.jobs``)."""

    task_name = "training.tasks.training_run_execute"

    class Algorithm(models.TextChoices):
        DPO = "dpo"
        IPO = "ipo"
        KTO = "kto"
        SIMPO = "simpo"
        ORPO = "orpo"

    project = models.ForeignKey(
        "annotation.Project", on_delete=models.CASCADE, related_name="training_runs"
    )
    algorithm = models.CharField(max_length=10, choices=Algorithm.choices)
    hyperparameters = models.JSONField(default=dict, blank=True)
    snapshot = models.ForeignKey(
        "annotation.ExportSnapshot", on_delete=models.PROTECT, related_name="training_runs"
    )
    policy = models.ForeignKey(
        "generation.ModelVersion", on_delete=models.PROTECT, related_name="policy_runs"
    )
    reference = models.ForeignKey(
        "generation.ModelVersion", on_delete=models.PROTECT, related_name="reference_runs"
    )
    output_name = models.SlugField(max_length=100)
    processes = models.PositiveSmallIntegerField(
        default=1, help_text="Trainer processes per node (torchrun --nproc-per-node)."
    )
    nodes = models.PositiveSmallIntegerField(
        default=1, help_text="Nodes; more than 1 rendezvous at PREFLOOP_TRAINING_RDZV_ENDPOINT."
    )
    output_version = models.OneToOneField(
        "generation.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="produced_by",
    )
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    summary = models.JSONField(default=dict, blank=True)
    log_tail = models.TextField(blank=True)
    run_dir = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    @property
    def progress(self) -> float:
        return self.step / self.total_steps if self.total_steps else 0.0


class TrainingMetric(models.Model):
    """One logged step of a run (loss, reward accuracy, margins, KL, grad norm, lr, tok/s)."""

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="metrics")
    step = models.PositiveIntegerField()
    kind = models.CharField(max_length=10, default="train")
    values = models.JSONField()

    class Meta:
        ordering = ["step", "id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "step", "kind"], name="metric_unique")
        ]
from training.rounds.models import *  # noqa: E402,F401,F403
