"""Annotation domain: fields and constraints only (logic lives in services/selectors).

A project holds prompts; prompts hold responses; a ``Task`` is one unit of
annotation work: a pairwise comparison of two responses, or a single response for
thumbs up/down. A ``Judgment`` is one annotator's verdict on a pairwise task, a
``Feedback`` one annotator's thumbs on a response. ``Assignment`` leases a task to
an annotator and records which response was shown on the left.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q


class Project(models.Model):
    slug = models.SlugField(max_length=80, unique=True)
    name = models.CharField(max_length=200)
    guidelines = models.TextField(blank=True, help_text="Markdown shown to annotators.")
    pairwise_enabled = models.BooleanField(default=True)
    binary_enabled = models.BooleanField(default=False)
    overlap = models.PositiveSmallIntegerField(default=1, help_text="Judgments wanted per task.")
    max_overlap = models.PositiveSmallIntegerField(
        default=5, help_text="Adaptive overlap never asks for more judgments than this."
    )
    strength_levels = models.PositiveSmallIntegerField(
        default=3, help_text="Strength scale is 1..strength_levels (1 = slightly better)."
    )
    allow_tie = models.BooleanField(default=True)
    allow_both_bad = models.BooleanField(default=True)
    lease_seconds = models.PositiveIntegerField(default=900)
    exclude_own_responses = models.BooleanField(default=True)
    allow_remote_images = models.BooleanField(default=False)
    auto_round_threshold = models.PositiveIntegerField(
        null=True, blank=True, help_text="Start a round after this many new judgments."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    archived_at = models.DateTimeField(
        null=True, blank=True, help_text="Archived: read-only, hidden from annotators' lists."
    )

    def __str__(self) -> str:
        return self.slug


class AnnotatorProfile(models.Model):
    """Humans and AI judges are both users; the profile says which."""

    class Kind(models.TextChoices):
        HUMAN = "human"
        AI = "ai"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="annotator_profile"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.HUMAN)
    config = models.JSONField(default=dict, blank=True)


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner"
        REVIEWER = "reviewer"
        ANNOTATOR = "annotator"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="membership_unique")
        ]


class Invitation(models.Model):
    """An owner's offer of a role to a user, who accepts or declines it.

    Addressed by username and never checked against the user table when it is made,
    so inviting tells the inviter nothing about which accounts exist.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="invitations")
    username = models.CharField(max_length=150)
    role = models.CharField(max_length=10, choices=Membership.Role.choices)
    token = models.CharField(max_length=64, unique=True)
    inviter = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    declined_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["username", "project"])]


class Prompt(models.Model):
    class Split(models.TextChoices):
        TRAIN = "train"
        EVAL = "eval"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="prompts")
    messages = models.JSONField(help_text="Conversation: a list of {role, content}.")
    content_hash = models.CharField(max_length=64)
    tags = models.JSONField(default=list, blank=True)
    split = models.CharField(max_length=5, choices=Split.choices, default=Split.TRAIN)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "content_hash"], name="prompt_unique")
        ]


class Response(models.Model):
    class Source(models.TextChoices):
        GENERATED = "generated"
        IMPORTED = "imported"
        REVISION = "revision"

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="responses")
    text = models.TextField()
    content_hash = models.CharField(max_length=64)
    source = models.CharField(max_length=10, choices=Source.choices)
    # A data-level reference only: annotation code never imports the generation app.
    model_version = models.ForeignKey(
        "generation.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="responses",
    )
    sampling = models.JSONField(default=dict, blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="authored_responses",
        help_text="A person who wrote this response (they never judge it).",
    )
    revision_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="revisions"
    )
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # content_hash covers the text and the model version that wrote it.
            models.UniqueConstraint(fields=["prompt", "content_hash"], name="response_unique")
        ]


class Task(models.Model):
    """One unit of work: compare two responses (pairwise) or rate one (binary)."""

    class Kind(models.TextChoices):
        PAIRWISE = "pairwise"
        BINARY = "binary"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tasks")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="tasks")
    response_a = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+")
    response_b = models.ForeignKey(
        Response, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    pair_key = models.CharField(
        max_length=64, help_text='"<response_a id>:<response_b id or empty>" (unique).'
    )
    overlap_wanted = models.PositiveSmallIntegerField()
    done_count = models.PositiveIntegerField(default=0)
    queue_key = models.BigIntegerField(
        default=0, help_text="Order within a tier of the next-task queue: last lease time (µs)."
    )
    is_gold = models.BooleanField(default=False)
    gold_answer = models.CharField(
        max_length=10, blank=True, help_text="Pairwise: a/b/tie/both_bad. Binary: up/down."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "pair_key"], name="task_unique"),
            models.CheckConstraint(
                condition=Q(kind="binary", response_b__isnull=True)
                | Q(kind="pairwise", response_b__isnull=False),
                name="task_kind_shape",
            ),
            models.CheckConstraint(
                condition=Q(done_count__lte=F("overlap_wanted")), name="task_not_over_overlap"
            ),
        ]
        indexes = [
            models.Index(fields=["project", "kind", "done_count"]),
            # The next-task queue: open tasks, fewest slots left first, least recently
            # leased first (annotation/data/lease_sql.py orders by exactly these
            # expressions, so the scan stops at the first acceptable row).
            models.Index(
                F("project"),
                F("kind"),
                F("overlap_wanted") - F("done_count"),
                F("queue_key"),
                F("id"),
                name="task_open_queue_v2",
                condition=Q(done_count__lt=F("overlap_wanted")),
            ),
        ]


class Assignment(models.Model):
    """A lease of a task to an annotator; at most one per (task, annotator), ever."""

    class Status(models.TextChoices):
        LEASED = "leased"
        DONE = "done"
        SKIPPED = "skipped"
        EXPIRED = "expired"

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.LEASED)
    left_is_a = models.BooleanField(default=True)
    leased_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    walk_from = models.TextField(
        blank=True,
        default="",
        db_default="",
        help_text="Where the annotator's next queue walk may start (annotation/data/queue_walk.py)",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["task", "annotator"], name="assignment_unique")
        ]
        indexes = [
            models.Index(fields=["status", "expires_at"]),
            # The annotator's latest assignment (its walk_from), read on every next-task call.
            models.Index(fields=["annotator", "id"], name="assignment_by_annotator"),
            # Live leases of one task (counted for every candidate on the hot path) and
            # of one annotator (their current lease): small, only leased rows.
            models.Index(
                fields=["task", "expires_at"],
                name="assignment_live_by_task",
                condition=Q(status="leased"),
            ),
            # "annotator IS NOT NULL" is implied by the caller's own-lease lookup but not by
            # a task's lease count, so the planner can never count a task's leases through
            # this index (it did, with the statistics of an empty table: 0.3 ms a probe).
            models.Index(
                fields=["annotator", "expires_at"],
                name="assignment_live_by_annotator",
                condition=Q(status="leased", annotator__isnull=False),
            ),
        ]


class Judgment(models.Model):
    class Choice(models.TextChoices):
        A = "a"
        B = "b"
        TIE = "tie"
        BOTH_BAD = "both_bad"

    class Source(models.TextChoices):
        HUMAN = "human"
        AI = "ai"
        IMPORTED = "imported"

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="judgments")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="judgments"
    )
    choice = models.CharField(max_length=10, choices=Choice.choices)
    strength = models.PositiveSmallIntegerField(default=1)
    rationale = models.TextField(blank=True)
    shown_left = models.CharField(max_length=1, choices=[("a", "a"), ("b", "b")], default="a")
    time_spent_ms = models.PositiveIntegerField(null=True, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.HUMAN)
    idempotency_key = models.CharField(max_length=80, null=True, blank=True, unique=True)
    soft_label = models.FloatField(null=True, blank=True, help_text="AI: P(A is better).")
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["task", "annotator"], name="judgment_unique")
        ]


class Feedback(models.Model):
    """Thumbs up/down on one response (the KTO signal)."""

    class Source(models.TextChoices):
        HUMAN = "human"
        AI = "ai"
        IMPORTED = "imported"

    response = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="feedback")
    task = models.ForeignKey(
        Task, null=True, blank=True, on_delete=models.CASCADE, related_name="feedback"
    )
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="feedback"
    )
    thumbs_up = models.BooleanField()
    rationale = models.TextField(blank=True)
    time_spent_ms = models.PositiveIntegerField(null=True, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.HUMAN)
    idempotency_key = models.CharField(max_length=80, null=True, blank=True, unique=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["response", "annotator"], name="feedback_unique")
        ]


class ExportSnapshot(models.Model):
    """A frozen export: the file, its content hash, and the rules that made it."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="exports")
    format = models.CharField(max_length=40)
    content_hash = models.CharField(max_length=64, db_index=True)
    path = models.CharField(max_length=500)
    rules = models.JSONField(default=dict)
    counts = models.JSONField(default=dict)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "format", "content_hash"], name="export_unique"
            )
        ]
from annotation.flag_models import JudgmentFlag  # noqa: E402,F401
from annotation.import_models import ImportJob  # noqa: E402,F401
