"""Labels for a round: comparisons through AI feedback jobs, thumbs from a programmatic judge.

Comparisons go through ``generation.feedback`` feedback jobs (created here without a
Celery task and run in the round's own task, so a re-run resumes the same job).

Thumbs: AI feedback jobs label *comparisons* only. KTO learns from a
thumbs up or down on single responses, which a programmatic judge can give directly:
its score for the response, up when it reaches ``THUMBS_UP_AT``. Verdicts are stored
with the annotation core's ``feedback_submit`` (source "ai", by the judge's AI
annotator account), once per response, so running this twice stores nothing new.
"""

from __future__ import annotations

from collections import Counter

from annotation.models import Feedback, Project, Task
from annotation.services.judgments import feedback_submit
from generation.feedback import runner as feedback_runner
from generation.feedback.judges import JudgeError
from generation.feedback.judges.programmatic import resolve
from generation.feedback.models import FeedbackJob, Judge
from generation.feedback.services import jobs as feedback_jobs
from prefloop.exceptions import ConflictError

THUMBS_UP_AT = 0.5
NOT_PROGRAMMATIC = "thumbs labels come from a programmatic judge; {name} is a {kind} judge"


def thumbs_label(*, judge: Judge | None, task_ids: list[int], round_id: int) -> Counter:
    """Give each binary task in ``task_ids`` the judge's thumbs; returns what happened."""
    if judge is None or judge.kind != Judge.Kind.PROGRAMMATIC:
        name, kind = (judge.name, judge.kind) if judge else ("(none)", "missing")
        raise JudgeError(NOT_PROGRAMMATIC.format(name=name, kind=kind))
    scorer = resolve(judge.callable_path)
    done = set(
        Feedback.objects.filter(annotator=judge.annotator, task_id__in=task_ids).values_list(
            "task_id", flat=True
        )
    )
    tasks = Task.objects.filter(pk__in=task_ids, kind=Task.Kind.BINARY).select_related(
        "prompt", "response_a", "project"
    )
    counts: Counter = Counter(already=len(done))
    for task in tasks.order_by("pk"):
        if task.pk in done:
            continue
        prompt = task.prompt
        try:
            score = scorer(messages=prompt.messages, response=task.response_a.text,
                           metadata=prompt.metadata or {})
        except Exception as exc:  # noqa: BLE001 owner code: any failure ends the step with a reason
            raise JudgeError(f"programmatic judge {judge.name} raised {exc!r}") from exc
        if score is None:
            counts["skipped"] += 1
            continue
        up = float(score) >= THUMBS_UP_AT
        try:
            feedback_submit(annotator=judge.annotator, task=task, thumbs_up=up, source="ai",
                            metadata={"judge": judge.name, "score": float(score),
                                      "round": round_id})
        except ConflictError:
            counts["full"] += 1  # people gave the task every verdict it wants first
            continue
        counts["up" if up else "down"] += 1
    return counts


def describe(counts: Counter) -> str:
    parts = [f"{counts[k]} {k}" for k in ("up", "down", "skipped", "full", "already") if counts[k]]
    return "thumbs: " + (", ".join(parts) or "nothing to label")


def judge_job_create(*, project: Project, judge: Judge, task_ids: list[int]) -> FeedbackJob | None:
    """A feedback job of ``judge`` over ``task_ids``; None when the judge labelled them all."""
    if not task_ids:
        return None
    try:
        return feedback_jobs.feedback_job_create(
            project=project, judge=judge, scope="tasks", task_ids=task_ids, enqueue=False
        )
    except feedback_jobs.NothingSelectedError:  # the judge has labelled them all
        return None


def judge_job_run(job: FeedbackJob | None) -> FeedbackJob | None:
    """Run (or resume, or just return, when it has ended) a feedback job."""
    return None if job is None else feedback_runner.feedback_job_run(job_id=job.pk)
