"""Iterative rounds: generate → label → (wait) → export → train → evaluate → next policy.

Imported at the end of ``training.models``, so ``Round`` belongs to the ``training`` app.
Fields and constraints only; the state machine lives in ``training.rounds.services``.
"""

from __future__ import annotations

from django.db import models

from prefloop.jobs.models import Job

__all__ = ["Round"]


class Round(Job):
    """One turn of the loop for a project, and everything it made and measured.

    ``step`` is where the round stands; ``steps`` holds each step's status and
    ``timings`` its wall time, so a round resumed after a crash continues at ``step``
    and shows what it had already done. The FKs point at the work each step made
    (written in the same transaction as the work is created), which is what makes a
    repeated step reuse that work instead of making it twice.

    Each step is a job (``prefloop.jobs``) run by its own task: ``attempts``,
    ``worker`` and ``heartbeat_at`` are those of the current step, so the lost-worker
    check requeues a step like any job. Besides the job statuses a round can be
    ``waiting`` for human labels.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        WAITING = "waiting", "Waiting for human labels"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    class Step(models.TextChoices):
        GENERATE = "generate"
        LABEL = "label"
        WAIT = "wait"
        EXPORT = "export"
        TRAIN = "train"
        EVALUATE = "evaluate"
        FINISH = "finish"
        DONE = "done"

    class Labelling(models.TextChoices):
        HUMAN = "human", "Humans only (the round waits for them)"
        AI = "ai", "An AI judge (constitutional or reward model)"
        PROGRAMMATIC = "programmatic", "A program scores each response"
        MIX = "mix", "AI judge first; unsure and order-flipped items go to humans"

    class Decider(models.TextChoices):
        VOTES = "votes", "Every verdict counts (majority under the export rules)"
        HUMAN = "human", "Where a human judged an item, only human verdicts count"

    class Reference(models.TextChoices):
        INITIAL = "initial", "The lineage's initial model (RLHFlow, OpenRLHF)"
        PREVIOUS = "previous", "The previous round's model (the policy it starts from)"

    class PartialPolicy(models.TextChoices):
        PROCEED = "proceed", "Train on the labels that arrived"
        FAIL = "fail", "Fail the round"
        AI_FILL = "ai_fill", "Let the round's AI judge label what humans left"

    class DataScope(models.TextChoices):
        ROUND = "round", "Only this round's candidates (on-policy)"
        ALL = "all", "Every label in the project so far"

    class LabelKind(models.TextChoices):
        PAIRWISE = "pairwise"
        THUMBS = "thumbs"

    TERMINAL = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    project = models.ForeignKey(
        "annotation.Project", on_delete=models.CASCADE, related_name="rounds"
    )
    index = models.PositiveIntegerField(help_text="1, 2, 3 ... within the project.")
    previous = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="next_rounds"
    )
    initial_version = models.ForeignKey(
        "generation.ModelVersion", on_delete=models.PROTECT, related_name="+",
        help_text="The model the lineage started from (reference 'initial').",
    )
    policy = models.ForeignKey(
        "generation.ModelVersion", on_delete=models.PROTECT, related_name="policy_rounds"
    )
    reference_choice = models.CharField(
        max_length=10, choices=Reference.choices, default=Reference.PREVIOUS
    )
    reference = models.ForeignKey(
        "generation.ModelVersion", on_delete=models.PROTECT, related_name="+"
    )
    algorithm = models.CharField(max_length=10, default="dpo")
    hyperparameters = models.JSONField(default=dict, blank=True)

    # Labelling
    labelling = models.CharField(max_length=12, choices=Labelling.choices)
    decider = models.CharField(max_length=8, choices=Decider.choices, default=Decider.VOTES)
    label_kind = models.CharField(
        max_length=8, choices=LabelKind.choices, default=LabelKind.PAIRWISE
    )
    judge_spec = models.CharField(max_length=300, blank=True)
    judge = models.ForeignKey(
        "generation.Judge", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    eval_judge = models.ForeignKey(
        "generation.Judge", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="Judges new vs previous on held-out prompts (win rate, leaderboard).",
    )

    # What to generate and how to evaluate
    config = models.JSONField(default=dict, help_text="The RoundSettings it was made with.")
    prompt_selection = models.JSONField(default=dict, blank=True, help_text="tags (train prompts).")
    sampling = models.JSONField(default=dict, help_text="n, temperature, max_tokens, seed.")
    pairing = models.CharField(max_length=20, default="all")
    data_scope = models.CharField(max_length=6, choices=DataScope.choices, default=DataScope.ROUND)
    evaluation = models.JSONField(default=dict, blank=True, help_text="samples, seed, ...")

    # Waiting for humans
    min_coverage = models.FloatField(
        default=1.0, help_text="Share of the round's tasks whose overlap must be met."
    )
    deadline = models.DateTimeField(null=True, blank=True)
    partial_policy = models.CharField(
        max_length=8, choices=PartialPolicy.choices, default=PartialPolicy.PROCEED
    )

    # Chaining and how it runs
    rounds_remaining = models.PositiveIntegerField(
        default=0, help_text="Rounds to start after this one, each from the last new model."
    )
    inline = models.BooleanField(
        default=False, help_text="Run in the calling process (run_round --sync), not on workers."
    )
    auto_started = models.BooleanField(default=False)

    # State
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    step = models.CharField(max_length=10, choices=Step.choices, default=Step.GENERATE)
    steps = models.JSONField(default=dict, blank=True, help_text="step -> pending/running/done.")
    timings = models.JSONField(default=dict, blank=True, help_text="step -> seconds, attempts.")
    metrics = models.JSONField(default=dict, blank=True)
    notes = models.JSONField(default=list, blank=True, help_text="What the round decided, why.")

    # The work each step made
    generation_job = models.ForeignKey(
        "generation.GenerationJob", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    feedback_job = models.ForeignKey(
        "generation.FeedbackJob", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    snapshot = models.ForeignKey(
        "annotation.ExportSnapshot", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    training_run = models.OneToOneField(
        "training.TrainingRun", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="round",
    )
    new_version = models.ForeignKey(
        "generation.ModelVersion", null=True, blank=True, on_delete=models.PROTECT,
        related_name="made_by_rounds",
    )
    eval_job = models.ForeignKey(
        "generation.GenerationJob", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+", help_text="Held-out samples of the new version.",
    )
    baseline_job = models.ForeignKey(
        "generation.GenerationJob", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+", help_text="Held-out samples of the policy (the previous version).",
    )
    eval_feedback_job = models.ForeignKey(
        "generation.FeedbackJob", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["project_id", "index"]
        constraints = [
            models.UniqueConstraint(fields=["project", "index"], name="round_index_unique")
        ]
        indexes = [models.Index(fields=["status"])]

    @property
    def task_name(self) -> str:
        """The task of the step the round stands at (``training.rounds.tasks``)."""
        return f"training.rounds.tasks.round_{self.step}"

    def __str__(self) -> str:
        return f"round {self.index} of {self.project_id} ({self.status}, {self.step})"
