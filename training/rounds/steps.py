"""The body of each step of a round. Each is safe to run again after a crash.

A body takes the round (loaded by ``services.round_advance``) and returns an
:class:`Outcome`. The long work runs through the platform's own resumable jobs:
generation jobs, feedback jobs and training runs each skip what they already stored.
A body first looks for the job on the round (``records.attach``: the job and the FK are
written in one transaction), so a second run continues the same job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.utils import timezone

from generation import services as generation_services
from generation.feedback.models import FeedbackJob
from generation.feedback.services import jobs as feedback_jobs
from generation.jobs import generation_job_run
from generation.models import GenerationJob, ModelVersion
from training import services as training_services
from training.models import TrainingRun
from training.rounds import evaluation, labels, records, selectors, served, services, snapshot
from training.rounds.models import Round


@dataclass(frozen=True)
class Outcome:
    state: str  # done / waiting / failed / cancelled
    message: str = ""

    @classmethod
    def done(cls, message: str = "") -> Outcome:
        return cls("done", message)

    @classmethod
    def failed(cls, message: str) -> Outcome:
        return cls("failed", message)


def generate(rnd: Round) -> Outcome:
    if rnd.sampling.get("n", 0) == 0:
        return Outcome.done("no generation: the round trains on the labels already there")
    job = records.attach(rnd, "generation_job", lambda: generation_services.generation_job_create(
        project=rnd.project, model_version=rnd.policy, sampling=rnd.sampling,
        pairing_name=rnd.pairing, split="train", tags=rnd.prompt_selection.get("tags") or [],
        enqueue=False,
    ))
    job = generation_job_run(job_id=job.pk)
    if job.status != GenerationJob.Status.SUCCEEDED:
        return _job_ended(f"generation job {job.pk}", job.status, job.error)
    return Outcome.done(f"{job.responses_created} new responses, {job.tasks_created} tasks")


def label(rnd: Round) -> Outcome:
    if rnd.generation_job is None or rnd.labelling == Round.Labelling.HUMAN:
        return Outcome.done()
    task_ids = selectors.round_task_ids(rnd=rnd)
    if rnd.label_kind == Round.LabelKind.THUMBS:
        counts = labels.thumbs_label(judge=rnd.judge, task_ids=task_ids, round_id=rnd.pk)
        return Outcome.done(labels.describe(counts))
    job = records.attach(rnd, "feedback_job", lambda: labels.judge_job_create(
        project=rnd.project, judge=rnd.judge, task_ids=task_ids))
    return _labelled(job)


def _labelled(job: FeedbackJob | None) -> Outcome:
    job = labels.judge_job_run(job)
    if job is None:
        return Outcome.done("nothing left to label")
    if job.status != FeedbackJob.Status.SUCCEEDED:
        return _job_ended(f"feedback job {job.pk}", job.status, job.error)
    return Outcome.done(f"{job.labelled} labelled, {job.routed} to humans, {job.skipped} skipped")


def wait(rnd: Round) -> Outcome:
    """Wait until the round's tasks have their verdicts (or the deadline passes)."""
    automatic = rnd.labelling in (Round.Labelling.AI, Round.Labelling.PROGRAMMATIC)
    task_ids = selectors.round_task_ids(rnd=rnd)
    if automatic or not task_ids:
        return Outcome.done()
    open_ids = selectors.tasks_uncovered(task_ids=task_ids)
    covered, total = len(task_ids) - len(open_ids), len(task_ids)
    records.metrics_merge(rnd, {"coverage": {"covered": covered, "total": total,
                                     "fraction": round(covered / total, 4)}})
    if covered / total >= rnd.min_coverage:
        short = _pairs_short(rnd)
        if not short:
            return Outcome.done(f"{covered}/{total} tasks labelled")
        if rnd.deadline is None or timezone.now() < rnd.deadline:
            return Outcome("waiting", short)
        return Outcome.failed(f"deadline passed: {short}")
    if rnd.deadline is None or timezone.now() < rnd.deadline:
        return Outcome("waiting", "")
    return _deadline_passed(rnd, open_ids, covered, total)


MIN_PAIRS_SHORT = (
    "only {rows} training pairs so far; this round needs at least {wanted} "
    "(min_pairs): label more, or start the round with a lower min_pairs"
)


def _pairs_short(rnd: Round, rows: int | None = None) -> str:
    """The reason the round has too few training pairs, or "" when it has enough."""
    wanted = int((rnd.config or {}).get("min_pairs") or 0)
    if not wanted:
        return ""
    rows = snapshot.round_row_count(rnd) if rows is None else rows
    return MIN_PAIRS_SHORT.format(rows=rows, wanted=wanted) if rows < wanted else ""


def _deadline_passed(rnd: Round, open_ids: list[int], covered: int, total: int) -> Outcome:
    what = f"deadline passed with {covered}/{total} tasks labelled"
    if rnd.partial_policy == Round.PartialPolicy.FAIL:
        return Outcome.failed(f"{what} (partial-data policy: fail)")
    if rnd.partial_policy == Round.PartialPolicy.AI_FILL:
        if rnd.label_kind == Round.LabelKind.THUMBS:
            counts = labels.thumbs_label(judge=rnd.judge, task_ids=open_ids, round_id=rnd.pk)
            return Outcome.done(f"{what}; the judge labelled the rest: {labels.describe(counts)}")
        outcome = _labelled(labels.judge_job_create(project=rnd.project, judge=rnd.judge,
                                                    task_ids=open_ids))
        if outcome.state != "done":
            return outcome
        return Outcome.done(f"{what}; the judge labelled the rest: {outcome.message}")
    return Outcome.done(f"{what}; training on the labels that arrived (policy: proceed)")


def export(rnd: Round) -> Outcome:
    frozen_at = timezone.now()
    snap = records.attach(rnd, "snapshot", lambda: snapshot.round_snapshot_create(rnd))
    counts = dict(snap.counts)
    short = _pairs_short(rnd, rows=int(counts.get("rows", 0)))
    if short:
        return Outcome.failed(short)
    if "frozen_at" not in (rnd.metrics.get("data") or {}):
        records.metrics_merge(rnd, {"data": {**counts, "frozen_at": frozen_at.isoformat(),
                                     "snapshot": snap.content_hash}})
    return Outcome.done(f"{counts.get('rows', 0)} rows in snapshot {snap.content_hash[:12]}")


def train(rnd: Round) -> Outcome:
    name = f"{rnd.project.slug}-round{rnd.index}-{rnd.algorithm}-{rnd.pk}"[:100]
    run = records.attach(rnd, "training_run", lambda: training_services.training_run_create(
        project=rnd.project, algorithm=rnd.algorithm, snapshot=rnd.snapshot, policy=rnd.policy,
        reference=rnd.reference, hyperparameters=rnd.hyperparameters, output_name=name,
        user=rnd.created_by, enqueue=False,
    ))
    training_services.training_run_execute(run_id=run.pk)  # resumes a run a crash cut short
    run.refresh_from_db()
    if run.status == TrainingRun.Status.SUCCEEDED:
        Round.objects.filter(pk=rnd.pk).update(new_version=run.output_version)
        train = {"run": run.pk, "steps": run.total_steps, **run.summary}
        records.metrics_merge(rnd, {"train": train})
        return Outcome.done(f"run {run.pk} made {run.output_version.name}")
    return _job_ended(f"training run {run.pk}", run.status, run.error)


def evaluate(rnd: Round) -> Outcome:
    rnd.refresh_from_db(fields=["new_version"])
    return Outcome.done(evaluation.round_evaluate(rnd))


def finish(rnd: Round) -> Outcome:
    version = rnd.new_version
    # The registry keeps which round made a version (the training service registers it).
    ModelVersion.objects.filter(pk=version.pk, round_index__isnull=True).update(
        round_index=rnd.index
    )
    if rnd.policy.is_endpoint and not version.is_endpoint:  # the policy runs on a server
        served_version, message = served.round_version_serve(rnd=rnd, version=version)
        if served_version is None:
            return Outcome.done(message)  # stops here: no following round
        Round.objects.filter(pk=rnd.pk).update(new_version=served_version)
        rnd.new_version = served_version
        if rnd.rounds_remaining <= 0:
            return Outcome.done(message)
        return Outcome.done(f"{message}; round {services.round_next_create(rnd=rnd).index} "
                            f"starts from {served_version.name}")
    if rnd.rounds_remaining > 0:
        following = services.round_next_create(rnd=rnd)
        return Outcome.done(f"round {following.index} starts from {version.name}")
    return Outcome.done()


def work_cancel(rnd: Round) -> None:
    """Ask the job the round is running to stop (called by ``round_cancel``); a finished
    job stays as it is."""
    for job in (rnd.generation_job, rnd.eval_job, rnd.baseline_job):
        if job is not None:
            generation_services.generation_job_cancel(job=job)
    for job in (rnd.feedback_job, rnd.eval_feedback_job):
        if job is not None:
            feedback_jobs.feedback_job_cancel(job=job)
    if rnd.training_run is not None:
        training_services.training_run_cancel(run=rnd.training_run)


def _job_ended(what: str, status: str, error: str) -> Outcome:
    if status == "cancelled":
        return Outcome("cancelled", f"{what} was cancelled")
    return Outcome.failed(f"{what} {status}: {error}".rstrip(": "))


STEPS: dict[str, Callable[[Round], Outcome]] = {
    Round.Step.GENERATE: generate,
    Round.Step.LABEL: label,
    Round.Step.WAIT: wait,
    Round.Step.EXPORT: export,
    Round.Step.TRAIN: train,
    Round.Step.EVALUATE: evaluate,
    Round.Step.FINISH: finish,
}
