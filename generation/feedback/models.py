"""AI feedback: constitutions, judges, feedback jobs, labels and critique traces.

Imported by ``generation.models``, so these models belong to the ``generation`` app.
Fields and constraints only; the logic lives in the services, runner and selectors.
"""

from __future__ import annotations

from django.conf import settings as django_settings
from django.db import models

from generation.ownership_fields import OWNER_HELP, name_unique_per_owner
from prefloop.jobs.models import Job

USER = django_settings.AUTH_USER_MODEL

__all__ = [
    "Constitution", "ConstitutionVersion", "CritiqueTrace", "FeedbackJob", "FeedbackLabel",
    "Judge", "Principle",
]


class Constitution(models.Model):
    """A named list of principles; every edit makes a new, immutable ``ConstitutionVersion``.

    It belongs to a project, or is site-wide (the default constitution; staff edit it)."""

    project = models.ForeignKey(
        "annotation.Project", null=True, blank=True, on_delete=models.CASCADE,
        related_name="constitutions", help_text=OWNER_HELP,
    )
    name = models.SlugField(max_length=100)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = name_unique_per_owner("constitution")

    def __str__(self) -> str:
        return self.name


class ConstitutionVersion(models.Model):
    constitution = models.ForeignKey(
        Constitution, on_delete=models.CASCADE, related_name="versions"
    )
    number = models.PositiveIntegerField()
    note = models.TextField(blank=True, help_text="What changed in this version.")
    created_by = models.ForeignKey(
        USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["constitution_id", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["constitution", "number"], name="constitution_version_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.constitution.name} v{self.number}"


class Principle(models.Model):
    version = models.ForeignKey(
        ConstitutionVersion, on_delete=models.CASCADE, related_name="principles"
    )
    key = models.SlugField(max_length=60)
    name = models.CharField(max_length=100)
    critique_request = models.TextField()
    revision_request = models.TextField()
    comparison_question = models.TextField()
    weight = models.FloatField(default=1.0, help_text="How often it is sampled, relatively.")
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["version_id", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["version", "key"], name="principle_key_unique")
        ]


class Judge(models.Model):
    """An AI annotator: a method, what it runs on, and its settings (frozen once made).

    Its verdicts are ``annotation.Judgment`` rows by ``annotator`` (source "ai"). It
    belongs to a project, or is site-wide (made by staff or an operator's command).
    """

    class Kind(models.TextChoices):
        CONSTITUTIONAL = "constitutional"
        PROGRAMMATIC = "programmatic"
        REWARD_MODEL = "reward_model"
        REVISION = "revision", "CAI revision (revision preferred over the original)"

    project = models.ForeignKey(
        "annotation.Project", null=True, blank=True, on_delete=models.CASCADE,
        related_name="judges", help_text=OWNER_HELP,
    )
    name = models.SlugField(max_length=100)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    model_version = models.ForeignKey(
        "generation.ModelVersion", null=True, blank=True, on_delete=models.PROTECT,
        related_name="judges",
    )
    constitution_version = models.ForeignKey(
        ConstitutionVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="judges"
    )
    callable_path = models.CharField(max_length=300, blank=True)
    settings = models.JSONField(default=dict, blank=True)
    config_hash = models.CharField(max_length=64, unique=True)
    annotator = models.OneToOneField(
        USER, on_delete=models.PROTECT, related_name="ai_judge"
    )
    created_by = models.ForeignKey(
        USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = name_unique_per_owner("judge")

    def __str__(self) -> str:
        return self.name


class FeedbackJob(Job):
    """Label comparisons with a judge, or critique-and-revise responses, in batches.

    The items (task ids, or response ids for critique jobs) are frozen at creation,
    so progress has a fixed total and a re-run after a crash works on the same items.
    Its status, worker and attempts are those of every job (``prefloop.jobs``).
    """

    task_name = "generation.feedback.tasks.feedback_job_execute"

    class Kind(models.TextChoices):
        JUDGE = "judge"
        CRITIQUE = "critique"

    project = models.ForeignKey(
        "annotation.Project", on_delete=models.CASCADE, related_name="feedback_jobs"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    judge = models.ForeignKey(
        Judge, null=True, blank=True, on_delete=models.PROTECT, related_name="jobs"
    )
    model_version = models.ForeignKey(
        "generation.ModelVersion", null=True, blank=True, on_delete=models.PROTECT,
        related_name="+", help_text="Critique jobs: the model that critiques and revises.",
    )
    constitution_version = models.ForeignKey(
        ConstitutionVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    selection = models.JSONField(default=dict, blank=True)
    item_ids = models.JSONField(default=list)
    options = models.JSONField(default=dict, blank=True)
    batch_size = models.PositiveIntegerField(default=64)
    seed = models.BigIntegerField(default=0)

    backend = models.CharField(max_length=40, blank=True)

    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    batches_done = models.PositiveIntegerField(default=0)
    labelled = models.PositiveIntegerField(default=0, help_text="Judgments stored.")
    routed = models.PositiveIntegerField(default=0, help_text="Unsure or flipped: to humans.")
    skipped = models.PositiveIntegerField(default=0, help_text="Could not be judged.")
    revisions = models.PositiveIntegerField(default=0, help_text="Critique jobs.")
    engine_seconds = models.FloatField(default=0.0)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["project", "status"])]

    def __str__(self) -> str:
        return f"feedback job {self.pk} ({self.kind}, {self.status})"


class FeedbackLabel(models.Model):
    """Everything a judge said about one comparison, stored once per (judge, task).

    Confident labels also become a ``Judgment``; unsure or order-flipped ones do not
    and are routed to the human queue instead (``routed``).
    """

    judge = models.ForeignKey(Judge, on_delete=models.PROTECT, related_name="labels")
    task = models.ForeignKey("annotation.Task", on_delete=models.CASCADE, related_name="ai_labels")
    job = models.ForeignKey(
        FeedbackJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="labels"
    )
    judgment = models.OneToOneField(
        "annotation.Judgment", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="ai_label",
    )
    constitution_version = models.ForeignKey(
        ConstitutionVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    soft_label = models.FloatField(help_text="P(response A is better).")
    confidence = models.FloatField()
    choice = models.CharField(max_length=4)  # a / b / tie
    p_a_first = models.FloatField(null=True, blank=True, help_text="P(A) read with A first.")
    p_a_second = models.FloatField(null=True, blank=True, help_text="P(A) read with A second.")
    flipped = models.BooleanField(default=False)
    unsure = models.BooleanField(default=False)
    routed = models.BooleanField(default=False)
    principles = models.JSONField(default=list, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["judge", "task"], name="feedback_label_unique")
        ]


class CritiqueTrace(models.Model):
    """CAI's supervised phase for one response: the principle, critique and revision of
    every round, and what became of the final revision."""

    class Outcome(models.TextChoices):
        COMPARISON = "comparison", "Comparison (revision vs original) with an AI judgment"
        SFT = "sft", "SFT example"
        UNCHANGED = "unchanged", "No usable revision (empty or identical)"

    prompt = models.ForeignKey("annotation.Prompt", on_delete=models.CASCADE, related_name="+")
    response = models.ForeignKey(
        "annotation.Response", on_delete=models.CASCADE, related_name="critique_traces"
    )
    revision = models.ForeignKey(
        "annotation.Response", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    model_version = models.ForeignKey(
        "generation.ModelVersion", on_delete=models.PROTECT, related_name="+"
    )
    constitution_version = models.ForeignKey(
        ConstitutionVersion, on_delete=models.PROTECT, related_name="traces"
    )
    job = models.ForeignKey(
        FeedbackJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="traces"
    )
    seed = models.BigIntegerField()
    round_count = models.PositiveSmallIntegerField()
    rounds = models.JSONField(default=list, help_text="[{principle, critique, revision}, ...]")
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    task = models.ForeignKey(
        "annotation.Task", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["response", "model_version", "constitution_version", "seed", "round_count"],
                name="critique_trace_unique",
            )
        ]
