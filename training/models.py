"""Training runs: one preference-training job on an export snapshot."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class TrainingRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

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
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    cancel_requested = models.BooleanField(default=False)
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    summary = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    log_tail = models.TextField(blank=True)
    run_dir = models.CharField(max_length=500, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    celery_task_id = models.CharField(max_length=255, blank=True)
    worker = models.CharField(max_length=200, blank=True, help_text="host:pid running it.")
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life of the worker running it."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

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
