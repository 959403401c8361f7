"""Per-batch writes of feedback jobs: a batch's labels, verdicts, routing, revisions and the
job's progress commit in one transaction, so a crash never leaves half a batch.

Where a verdict goes. A confident label becomes an ``annotation.Judgment`` by the
judge's AI annotator (source "ai", ``soft_label`` = P(A better)), so it counts in
agreement, the leaderboard and exports like a human one. An unsure label
(``confidence < min_confidence``) or one that flips with the order gets no verdict:
the task is routed to the human queue instead (it keeps, or gains, a free slot).
"""

from __future__ import annotations

import math
import random

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from annotation.models import Judgment, Response, Task
from annotation.services import content, judgments
from annotation.services.assignment import task_has_free_slot, task_slot_open
from generation.feedback.critique import Round
from generation.feedback.judges import PairLabel
from generation.feedback.models import CritiqueTrace, FeedbackJob, FeedbackLabel, Judge

DEFAULT_MIN_CONFIDENCE = 0.2


def label_record(
    *, judge: Judge, task: Task, label: PairLabel, job: FeedbackJob | None,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE, takes_human_slot: bool = True,
) -> FeedbackLabel:
    """Store one label; call inside the batch's transaction."""
    unsure = label.confidence < min_confidence or label.choice == "tie"
    judgment, routed = None, False
    if unsure or label.flipped:
        routed = _route_to_humans(task)
    else:
        judgment = _verdict_submit(judge=judge, task=task, label=label, job=job,
                                   takes_human_slot=takes_human_slot)
    return FeedbackLabel.objects.create(
        judge=judge, task=task, job=job, judgment=judgment,
        constitution_version_id=judge.constitution_version_id, soft_label=label.p_a,
        confidence=label.confidence, choice=label.choice, p_a_first=label.p_a_first,
        p_a_second=label.p_a_second, flipped=label.flipped, unsure=unsure, routed=routed,
        principles=list(label.principles), details=label.as_dict(),
    )


@transaction.atomic
def judge_batch_store(
    *, job: FeedbackJob, index: int, item_count: int, tasks: list[Task],
    labels: list[PairLabel | None], seconds: float,
) -> None:
    judge = job.judge
    labelled = routed = skipped = 0
    done = set(FeedbackLabel.objects.filter(judge=judge, task__in=tasks).values_list("task_id",
                                                                                     flat=True))
    for task, label in zip(tasks, labels, strict=True):
        if label is None:
            skipped += 1
        elif task.pk not in done:  # another job of this judge may have labelled it meanwhile
            stored = label_record(
                judge=judge, task=task, label=label, job=job,
                min_confidence=job.options.get("min_confidence", DEFAULT_MIN_CONFIDENCE),
                takes_human_slot=job.options.get("takes_human_slot", True),
            )
            labelled += stored.judgment_id is not None
            routed += stored.routed
    _progress(job=job, index=index, item_count=item_count, seconds=seconds,
              labelled=labelled, routed=routed, skipped=skipped)


@transaction.atomic
def critique_batch_store(
    *, job: FeedbackJob, index: int, item_count: int, responses: list[Response],
    traces: list[list[Round]], seconds: float, judge: Judge | None,
) -> None:
    """Store the traces of a batch; with outcome "comparison", also the (revision vs
    original) tasks and the revision judge's verdict for the revision."""
    revisions = labelled = 0
    rounds_wanted = job.options["rounds"]
    for response, rounds in zip(responses, traces, strict=True):
        key = {"response": response, "model_version_id": job.model_version_id,
               "constitution_version_id": job.constitution_version_id, "seed": job.seed,
               "round_count": rounds_wanted}
        if CritiqueTrace.objects.filter(**key).exists():
            continue
        revision = _revision_store(job=job, response=response, rounds=rounds)
        outcome, task = CritiqueTrace.Outcome.UNCHANGED, None
        if revision is not None:
            revisions += 1
            outcome = job.options["outcome"]
            if outcome == CritiqueTrace.Outcome.COMPARISON:
                task, verdict = _revision_pair(job=job, judge=judge, response=response,
                                               revision=revision, rounds=rounds)
                labelled += verdict
        CritiqueTrace.objects.create(
            prompt_id=response.prompt_id, revision=revision, job=job, outcome=outcome, task=task,
            rounds=[r.as_dict() for r in rounds], **key,
        )
    _progress(job=job, index=index, item_count=item_count, seconds=seconds, labelled=labelled,
              revisions=revisions)


def _revision_store(
    *, job: FeedbackJob, response: Response, rounds: list[Round]
) -> Response | None:
    final = rounds[-1].revision.strip() if rounds else ""
    if not final or final == response.text.strip():
        return None
    revision, _ = content.response_get_or_create(
        prompt=response.prompt, text=final, source=Response.Source.REVISION,
        model_version_id=job.model_version_id, sampling=job.options.get("sampling", {}),
        revision_of=response,
        metadata={"critique_job": job.pk, "principles": [r.principle for r in rounds]},
    )
    return None if revision.pk == response.pk else revision


def _revision_pair(
    *, job: FeedbackJob, judge: Judge, response: Response, revision: Response,
    rounds: list[Round],
) -> tuple[Task, bool]:
    revision_first = random.Random(f"{job.seed}:{response.pk}").random() < 0.5
    a, b = (revision, response) if revision_first else (response, revision)
    task, _ = content.task_get_or_create(project=job.project, response_a=a, response_b=b)
    if FeedbackLabel.objects.filter(judge=judge, task=task).exists():
        return task, False
    label = PairLabel(p_a=1.0 if revision_first else 0.0, confidence=1.0,
                      principles=tuple(dict.fromkeys(r.principle for r in rounds)))
    stored = label_record(judge=judge, task=task, label=label, job=job,
                          takes_human_slot=job.options.get("takes_human_slot", True))
    return task, stored.judgment_id is not None


def _verdict_submit(
    *, judge: Judge, task: Task, label: PairLabel, job: FeedbackJob | None, takes_human_slot: bool
) -> Judgment:
    existing = Judgment.objects.filter(task=task, annotator=judge.annotator).first()
    if existing is not None:
        return existing
    locked = Task.objects.select_for_update().get(pk=task.pk)
    if not takes_human_slot or not task_has_free_slot(task=locked, now=timezone.now()):
        task_slot_open(task_id=task.pk)
    levels = task.project.strength_levels
    # A both-orders judge has no single left side: a per-task coin keeps the annotation
    # core's left-pick statistic neutral (the judge's real position bias is in the trust report).
    shown_left = "a" if random.Random(f"left:{task.pk}").random() < 0.5 else "b"
    judgment, _ = judgments.judgment_submit(
        annotator=judge.annotator, task=task, choice=label.choice, shown_left=shown_left,
        strength=max(1, min(levels, math.ceil(label.confidence * levels))),
        source=Judgment.Source.AI, soft_label=label.p_a,
        metadata=_verdict_metadata(judge=judge, label=label, job=job),
    )
    return judgment


def _verdict_metadata(*, judge: Judge, label: PairLabel, job: FeedbackJob | None) -> dict:
    version = judge.constitution_version
    return {
        "judge": judge.name, "method": judge.kind, "feedback_job": job.pk if job else None,
        "model_version": judge.model_version.name if judge.model_version else None,
        "constitution": version.constitution.name if version else None,
        "constitution_version": version.number if version else None,
        "principles": list(label.principles), "confidence": round(label.confidence, 6),
        "p_a_first": label.p_a_first, "p_a_second": label.p_a_second,
    }


def _route_to_humans(task: Task) -> bool:
    """Make sure a human will see the task; False when humans have already judged it."""
    if Judgment.objects.filter(task=task, source=Judgment.Source.HUMAN).exists():
        return False
    locked = Task.objects.select_for_update().get(pk=task.pk)
    if locked.done_count >= locked.overlap_wanted:
        task_slot_open(task_id=task.pk)
    return True


def _progress(*, job: FeedbackJob, index: int, item_count: int, seconds: float, **counts) -> None:
    FeedbackJob.objects.filter(pk=job.pk).update(
        done=F("done") + item_count, batches_done=index + 1,
        engine_seconds=F("engine_seconds") + seconds,
        **{name: F(name) + n for name, n in counts.items() if n},
    )
    job.batches_done = index + 1
