"""Rounds: create, advance step by step, wait, resume, cancel (auto-start: ``autostart``).

The state machine. A round's ``step`` says what comes next:

    generate → label → wait → export → train → evaluate → finish → done

``round_advance(round_id, step)`` is the only way a step runs (the Celery task of each
step calls it; ``round_run_inline`` calls it in a loop for ``run_round --sync``). Each
step is a job (``prefloop.jobs``): it claims the round at that step (and returns at once
when the round stands elsewhere: a re-delivered task, a duplicate), runs the step's
body from ``steps`` outside the lock with a heartbeat, then locks again to record the
outcome and, on workers, to enqueue the next step's task after commit. A step whose
worker is lost is requeued by the lost-worker check like any job. Each body reuses the
work it made before (its FK on the round is written in the same transaction as the work
is created), so running a step twice makes nothing twice, and a step cut short by a
killed worker continues where it stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from annotation.models import Project
from generation import ownership
from generation.backends import BackendError
from generation.feedback.judges import JudgeError
from generation.feedback.services.judges import judge_from_spec
from generation.models import ModelVersion
from generation.selectors import model_version_get
from prefloop import jobs as prefloop_jobs
from prefloop.exceptions import ApplicationError, ConflictError
from training import services as training_services
from training.rounds import steps
from training.rounds.config import RoundSettings
from training.rounds.models import Round

logger = logging.getLogger(__name__)

Status, Step = Round.Status, Round.Step
ORDER = (Step.GENERATE, Step.LABEL, Step.WAIT, Step.EXPORT, Step.TRAIN, Step.EVALUATE,
         Step.FINISH)
DOMAIN_ERRORS = (ApplicationError, ValidationError, BackendError, JudgeError)
ACTIVE = "round {index} of this project is still {status}; cancel it or let it finish"
NO_POLICY = "no policy to start from: name a model version (--policy) for the first round"
NOT_RESUMABLE = "only running, waiting or failed rounds can be resumed"
THUMBS_OFF = "thumbs labels need a project with binary (thumbs) tasks enabled"
PAIRWISE_OFF = "pairwise labels need a project with pairwise comparisons enabled"
TWO_SAMPLES = "pairwise labels need at least 2 samples per prompt"


@transaction.atomic
def round_create(
    *, project: Project, settings: RoundSettings, policy: ModelVersion | None = None,
    previous: Round | None = None, created_by: AbstractBaseUser | None = None,
    inline: bool = False, auto_started: bool = False,
    allowed_judge_modules: tuple[str, ...] | None = None,
) -> Round:
    """Make the project's next round; on workers its first step is enqueued after commit.

    ``policy`` defaults to the newest model a round of this project made. One round at a
    time per project: the project row is locked while the index is chosen.
    """
    project = Project.objects.select_for_update().get(pk=project.pk)
    active = Round.objects.filter(project=project).exclude(status__in=Round.TERMINAL)
    active = active.exclude(pk=previous.pk).first() if previous else active.first()
    if active is not None:
        raise ConflictError(ACTIVE.format(index=active.index, status=active.status))
    policy = policy or _current_policy(project)
    if policy is None:
        raise ApplicationError(NO_POLICY)
    ownership.check_owned_by(policy, project=project)
    kind = settings.kind_for(binary_enabled=project.binary_enabled)
    _project_checked(project=project, settings=settings, kind=kind)
    initial = previous.initial_version if previous else _lineage_root(project, policy)
    last = Round.objects.filter(project=project).order_by("-index").first()
    index = last.index + 1 if last else 1
    judges = _judges(settings, initial=initial, created_by=created_by, project=project,
                     allowed_judge_modules=allowed_judge_modules)
    deadline = None
    if settings.deadline_hours:
        deadline = timezone.now() + timedelta(hours=settings.deadline_hours)
    rnd = Round.objects.create(
        project=project, index=index, previous=previous or last, initial_version=initial,
        policy=policy, reference_choice=settings.reference,
        reference=initial if settings.reference == "initial" else policy,
        algorithm=settings.algorithm, hyperparameters=dict(settings.hyperparameters),
        labelling=settings.labelling, decider=settings.decider, label_kind=kind,
        judge_spec=settings.judge_spec, judge=judges.get(settings.judge_spec),
        eval_judge=judges.get(settings.eval_judge_spec), config=settings.as_dict(),
        prompt_selection={"split": "train", "tags": list(settings.tags)},
        sampling=settings.sampling(index), pairing=settings.pairing_for(kind),
        data_scope=settings.data_scope, evaluation=settings.evaluation(),
        min_coverage=settings.min_coverage, deadline=deadline,
        partial_policy=settings.partial_policy, rounds_remaining=settings.rounds - 1,
        inline=inline, auto_started=auto_started, created_by=created_by,
        steps={step: "pending" for step in ORDER},
    )
    if not inline:
        prefloop_jobs.enqueue(rnd)  # the generate step's task, after commit
    return rnd


def _judges(
    settings: RoundSettings, *, initial: ModelVersion, created_by, project: Project,
    allowed_judge_modules,
) -> dict:
    """The labelling and evaluation judges by spec (an LM judge runs on ``judge_model``,
    by default the lineage's initial model, so it stays the same across rounds); they
    belong to the project."""
    name = settings.judge_model
    version = model_version_get(name=name, project=project) if name else initial
    return {
        spec: judge_from_spec(spec=spec, model_version=version, created_by=created_by,
                              allowed_prefixes=allowed_judge_modules, project=project)
        for spec in {settings.judge_spec, settings.eval_judge_spec} if spec
    }


def _project_checked(*, project: Project, settings: RoundSettings, kind: str) -> None:
    if kind == Round.LabelKind.THUMBS and not project.binary_enabled:
        raise ApplicationError(THUMBS_OFF)
    if kind == Round.LabelKind.PAIRWISE and not project.pairwise_enabled:
        raise ApplicationError(PAIRWISE_OFF)
    unknown = sorted(set(settings.hyperparameters) - training_services.TUNABLE)
    if unknown:
        raise ApplicationError(f"unknown hyperparameters {unknown}; see TrainConfig")
    training_services.hyperparameter_paths_check(settings.hyperparameters)
    training_services.eval_path_check(project=project, hyperparameters=settings.hyperparameters)
    pairing = settings.pairing_for(kind)
    if kind == Round.LabelKind.PAIRWISE and settings.samples == 1 and pairing != "none":
        raise ApplicationError(TWO_SAMPLES)


def _current_policy(project: Project) -> ModelVersion | None:
    done = Round.objects.filter(project=project, new_version__isnull=False).order_by("-index")
    last = done.select_related("new_version").first()
    return last.new_version if last else None


def _lineage_root(project: Project, policy: ModelVersion) -> ModelVersion:
    """The initial model of the rounds that led to ``policy`` (itself for a first round)."""
    made = Round.objects.filter(project=project, new_version=policy).first()
    return made.initial_version if made else policy


def round_next_create(*, rnd: Round) -> Round:
    """The round that continues ``rnd`` (``--rounds N``): same settings, its new model as
    the policy. Idempotent: a finish step run twice finds the round it made."""
    existing = rnd.next_rounds.order_by("pk").first()
    if existing is not None:
        return existing
    data = {**rnd.config, "rounds": rnd.rounds_remaining}
    return round_create(
        project=rnd.project, settings=RoundSettings.from_dict(data), policy=rnd.new_version,
        previous=rnd, created_by=rnd.created_by, inline=rnd.inline,
    )


# --- the state machine ------------------------------------------------------------------


def round_advance(*, round_id: int, step: str) -> Round:
    """Run ``step`` of a round if the round stands there; safe to call any number of times."""
    rnd = _step_begin(round_id=round_id, step=step)
    if rnd is None:
        return Round.objects.get(pk=round_id)
    try:
        with prefloop_jobs.heartbeat(Round, round_id):
            outcome = steps.STEPS[step](rnd)
    except DOMAIN_ERRORS as exc:
        outcome = steps.Outcome.failed(_message(exc))
    except BaseException:
        prefloop_jobs.release(Round, round_id)  # the task's error policy decides
        raise
    logger.info("round %s step %s: %s %s", round_id, step, outcome.state, outcome.message)
    return _step_end(round_id=round_id, step=step, outcome=outcome)


@transaction.atomic
def _step_begin(*, round_id: int, step: str) -> Round | None:
    """Claim the round's current step (``prefloop.jobs.claim``) and note its timing."""
    rnd = prefloop_jobs.claim(Round, round_id, where={"step": step})
    if rnd is None:
        return None
    now = timezone.now()
    timing = dict(rnd.timings.get(step) or {})
    timing.setdefault("started", now.isoformat())
    timing["attempts"] = timing.get("attempts", 0) + 1
    timing["attempt_started"] = now.isoformat()
    rnd.timings = {**rnd.timings, step: timing}
    rnd.steps = {**rnd.steps, step: "running"}
    rnd.save(update_fields=["timings", "steps"])
    return rnd


@transaction.atomic
def _step_end(*, round_id: int, step: str, outcome: steps.Outcome) -> Round:
    rnd = Round.objects.select_for_update().get(pk=round_id)
    if rnd.status in Round.TERMINAL or rnd.step != step:
        return rnd  # cancelled meanwhile, or a twin got here first
    now = timezone.now()
    timing = dict(rnd.timings.get(step) or {})
    attempt = datetime.fromisoformat(timing.pop("attempt_started", now.isoformat()))
    timing["busy_seconds"] = round(timing.get("busy_seconds", 0.0) + _seconds(attempt, now), 3)
    note = f"{step}: {outcome.message}"
    if outcome.message and (not rnd.notes or rnd.notes[-1] != note):  # a wait says it once
        rnd.notes = [*rnd.notes, note]
    # The step's task is over: the next one (or the next wait check) claims afresh.
    rnd.worker, rnd.heartbeat_at = "", now
    if outcome.state == "done":
        started = datetime.fromisoformat(timing["started"])
        timing.update(finished=now.isoformat(), seconds=round(_seconds(started, now), 3))
        rnd.attempts = 0
        _advance(rnd, step, now)
    elif outcome.state == "waiting":
        rnd.status, rnd.attempts = Status.WAITING, 0
    else:
        rnd.status, rnd.error, rnd.finished_at = outcome.state, outcome.message, now
    rnd.steps = {**rnd.steps, step: outcome.state}
    rnd.timings = {**rnd.timings, step: timing}
    rnd.save(update_fields=["timings", "steps", "status", "step", "error", "notes",
                            "finished_at", "attempts", "worker", "heartbeat_at"])
    return rnd


def _advance(rnd: Round, step: str, now) -> None:
    following = ORDER[ORDER.index(step) + 1] if step != Step.FINISH else Step.DONE
    rnd.step = following
    if following == Step.DONE:
        rnd.status, rnd.finished_at = Status.SUCCEEDED, now
        return
    rnd.status = Status.RUNNING
    if not rnd.inline:
        prefloop_jobs.enqueue(rnd)  # the next step's task, after commit


def _seconds(start, end) -> float:
    return max((end - start).total_seconds(), 0.0)


def _message(exc: Exception) -> str:
    if isinstance(exc, ApplicationError):
        return exc.message
    if isinstance(exc, ValidationError):
        return "; ".join(exc.messages)
    return str(exc)


# --- running, waiting, resuming, cancelling ---------------------------------------------


def round_run_inline(
    *, round_id: int, poll_seconds: float = 10.0,
    on_step: Callable[[Round, str], None] | None = None,
) -> Round:
    """Run a round and the rounds it chains to in this process (``run_round --sync``).

    A round waiting for humans is checked every ``poll_seconds`` until its labels or
    its deadline arrive. Returns the last round run.
    """
    rnd = Round.objects.get(pk=round_id)
    while True:
        if rnd.status in Round.TERMINAL:
            following = rnd.next_rounds.order_by("pk").first()
            if rnd.status != Status.SUCCEEDED or following is None:
                return rnd
            rnd = following
            continue
        if rnd.status == Status.WAITING:
            time.sleep(poll_seconds)
        step = rnd.step
        rnd = round_advance(round_id=rnd.pk, step=step)
        if on_step is not None:
            on_step(rnd, step)


def rounds_waiting_check() -> list[Round]:
    """Check every waiting round once (periodic task): labels or deadline arrived?"""
    waiting = Round.objects.filter(status=Status.WAITING, inline=False).values_list("pk", flat=True)
    return [round_advance(round_id=pk, step=Step.WAIT) for pk in waiting]


@transaction.atomic
def round_resume(*, rnd: Round, inline: bool = False) -> Round:
    """Run a failed round's current step again (after fixing what made it fail), or hand
    a round to the calling process (``inline``: ``run_round --resume --sync``).

    A round whose worker was lost needs no resume: its step is a job, and the lost-worker
    check (``prefloop.jobs.orphans_recover``) requeues it.
    """
    rnd = Round.objects.select_for_update().get(pk=rnd.pk)
    if rnd.status in (Status.SUCCEEDED, Status.CANCELLED):
        raise ConflictError(NOT_RESUMABLE)
    if rnd.status == Status.FAILED:
        rnd.notes = [*rnd.notes, f"{rnd.step}: resumed after failure: {rnd.error}"]
        rnd.error, rnd.finished_at, rnd.attempts = "", None, 0
    rnd.status, rnd.inline, rnd.worker = Status.RUNNING, inline, ""
    if inline:
        rnd.celery_task_id = ""  # this process owns it now, not a task
    rnd.save(update_fields=["notes", "error", "finished_at", "attempts", "status", "inline",
                            "worker", "celery_task_id"])
    if not inline:
        prefloop_jobs.enqueue(rnd)
    return rnd


@transaction.atomic
def round_cancel(*, rnd: Round) -> Round:
    """Stop a round: it runs no further step, and the job in flight is asked to stop too.
    A finished round comes back unchanged."""
    if Round.objects.select_for_update().get(pk=rnd.pk).status in Round.TERMINAL:
        return Round.objects.get(pk=rnd.pk)
    rnd = prefloop_jobs.cancel(Round, rnd.pk, at_once=True)
    rnd.steps = {**rnd.steps, rnd.step: "cancelled"}
    rnd.save(update_fields=["steps"])
    steps.work_cancel(rnd)
    return rnd
