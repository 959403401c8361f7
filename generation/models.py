"""Model registry: every model the platform can load, and where it came from."""

from __future__ import annotations

from django.db import models

from generation.ownership_fields import OWNER_HELP, name_unique_per_owner
from prefloop.jobs.models import Job


class ModelVersion(models.Model):
    """A loadable model: a local Hugging Face folder or a hub id.

    The base model of a lineage is version 0 with no parent; every training run
    registers its output as a child of the policy it started from. It belongs to a
    project, or is site-wide (``project`` empty: the demo base model, staff's models).
    """

    project = models.ForeignKey(
        "annotation.Project", null=True, blank=True, on_delete=models.CASCADE,
        related_name="model_versions", help_text=OWNER_HELP,
    )
    name = models.SlugField(max_length=100)
    source = models.CharField(
        max_length=500, help_text="Local path of a Hugging Face model folder, or a hub id."
    )
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    version = models.PositiveIntegerField(default=0)
    round_index = models.PositiveIntegerField(null=True, blank=True)
    notes = models.TextField(blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # A model served elsewhere (an OpenAI-compatible server): then ``source`` is only where
    # its tokenizer loads from (may be empty), and the remote backend serves it.
    endpoint_url = models.URLField(
        max_length=500, blank=True, help_text="Base URL of an OpenAI-compatible server."
    )
    served_name = models.CharField(
        max_length=200, blank=True, help_text="The model's name on that server."
    )
    api_key_env = models.CharField(
        max_length=100, blank=True,
        help_text="NAME of the environment variable holding the server's API key (never the key).",
    )

    class Meta:
        ordering = ["created_at", "id"]
        constraints = name_unique_per_owner("model_version")

    def __str__(self) -> str:
        return f"{self.name} (v{self.version})"

    @property
    def is_endpoint(self) -> bool:
        return bool(self.endpoint_url)


class ModelNameReservation(models.Model):
    """A model name a project has promised to a training run's output (made when the run
    is created), so that nobody registers it first. Registering the output ends it."""

    project = models.ForeignKey(
        "annotation.Project", on_delete=models.CASCADE, related_name="+"
    )
    name = models.SlugField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="model_name_reserved_once")
        ]


class GenerationJob(Job):
    """Sample candidate responses for a project's prompts and pair them for annotation.

    The prompt selection is frozen into ``prompt_ids`` when the job is created, so
    progress has a fixed total and a re-run after a crash works on the same prompts.
    Its status, worker and attempts are those of every job (``prefloop.jobs``).
    """

    task_name = "generation.tasks.generation_job_execute"

    class Pairing(models.TextChoices):
        NONE = "none", "No pairs (responses only)"
        RANDOM = "random", "Random disjoint pairs of one prompt's samples"
        ALL = "all", "Every pair of one prompt's samples"
        HEAD_TO_HEAD = "head_to_head", "Sample i of the model vs sample i of the opponent"
        BEST_VS_WORST = "best_vs_worst", "Highest vs lowest judge score"

    project = models.ForeignKey(
        "annotation.Project", on_delete=models.CASCADE, related_name="generation_jobs"
    )
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, related_name="generation_jobs"
    )
    opponent_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="Head-to-head only: the other model version.",
    )
    selection = models.JSONField(default=dict, blank=True, help_text="tags, split, lacking.")
    prompt_ids = models.JSONField(default=list)
    sampling = models.JSONField(default=dict, help_text="n, temperature, top_p, max_tokens, seed.")
    pairing = models.CharField(max_length=20, choices=Pairing.choices, default=Pairing.RANDOM)
    judge = models.CharField(max_length=100, blank=True, help_text="best_vs_worst: scorer name.")
    batch_size = models.PositiveIntegerField(default=256, help_text="Prompts per engine call.")

    backend = models.CharField(max_length=40, blank=True)

    total = models.PositiveIntegerField(default=0, help_text="Prompt generations to do.")
    done = models.PositiveIntegerField(default=0)
    batches_done = models.PositiveIntegerField(default=0)
    responses_created = models.PositiveIntegerField(default=0)
    tasks_created = models.PositiveIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    engine_seconds = models.FloatField(default=0.0)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["project", "status"])]

    def __str__(self) -> str:
        return f"generation job {self.pk} ({self.status})"


class GeneratedSample(models.Model):
    """The unique key of one generated sample, so that re-running a batch adds nothing.

    Several samples may point at one ``Response`` (identical texts collapse there).
    """

    prompt = models.ForeignKey("annotation.Prompt", on_delete=models.CASCADE, related_name="+")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    seed = models.BigIntegerField()
    sampling_key = models.CharField(
        max_length=64, help_text="Hash of temperature, top_p, max_tokens."
    )
    sample_index = models.PositiveSmallIntegerField()
    response = models.ForeignKey(
        "annotation.Response", on_delete=models.CASCADE, related_name="generated_samples"
    )
    job = models.ForeignKey(
        GenerationJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="samples"
    )
    token_count = models.PositiveIntegerField(default=0)
    cumulative_logprob = models.FloatField(null=True, blank=True)
    finish_reason = models.CharField(max_length=10, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["prompt", "model_version", "seed", "sampling_key", "sample_index"],
                name="generated_sample_unique",
            )
        ]
from generation.feedback.models import *  # noqa: E402,F401,F403
