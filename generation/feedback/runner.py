"""Run a feedback job: batches of comparisons through a judge, or of responses through the
critique → revision loop, each batch stored in one transaction (``store``).

A re-run after a crash or a redelivered task skips the batches already stored
(``batches_done``) and, within a batch, items already done, so nothing is repeated
and nothing is lost. Cancellation is checked before every batch. The engine (or the
judge's model) is loaded only when a batch still has work. Claiming, heartbeat and the
end of the job are the lifecycle every job shares (``prefloop.jobs.job_running``).
"""

from __future__ import annotations

import logging

from annotation.models import Response, Task
from generation import endpoints
from generation.backends import BackendError, SamplingConfig
from generation.feedback import conf, critique, judges, selectors, store
from generation.feedback.judges import JudgeError, Pair, PairJudge
from generation.feedback.judges.constitutional import ConstitutionalJudge, ConstitutionalSettings
from generation.feedback.judges.programmatic import ProgrammaticJudge, resolve
from generation.feedback.models import CritiqueTrace, FeedbackJob, FeedbackLabel, Judge
from generation.feedback.services.judges import revision_judge_get_or_create
from prefloop.jobs import Running, job_run

logger = logging.getLogger(__name__)


def feedback_job_run(*, job_id: int) -> FeedbackJob:
    """Execute (or resume) a job; judge and backend errors end it as FAILED with a reason."""
    return job_run(FeedbackJob, job_id, _job_run, failing_on=(BackendError, JudgeError))


def _job_run(run: Running) -> None:
    job, worker = run.job, _Lazy(run.job)
    for index, start in enumerate(range(0, len(job.item_ids), job.batch_size)):
        if index < job.batches_done:
            continue  # stored before a crash
        run.stop_if_cancelled()
        ids = job.item_ids[start : start + job.batch_size]
        if job.kind == FeedbackJob.Kind.JUDGE:
            _judge_batch(job=job, index=index, ids=ids, worker=worker)
        else:
            _critique_batch(job=job, index=index, ids=ids, worker=worker)


class _Lazy:
    """The job's judge or critic, built on first use (and the backend name recorded)."""

    def __init__(self, job: FeedbackJob) -> None:
        self.job, self._value = job, None

    def get(self):
        if self._value is None:
            self._value = (
                judge_build(self.job.judge)
                if self.job.kind == FeedbackJob.Kind.JUDGE
                else _critic_build(self.job)
            )
            if self.job.judge is None or self.job.judge.kind == Judge.Kind.CONSTITUTIONAL:
                version = (self.job.judge or self.job).model_version
                self.job.backend = endpoints.backend_name_for(version)
            else:
                self.job.backend = self.job.judge.kind
            FeedbackJob.objects.filter(pk=self.job.pk).update(backend=self.job.backend)
        return self._value


def judge_build(judge: Judge) -> PairJudge:
    """The runnable judge of a ``Judge`` row (loads the engine or the model as needed)."""
    settings = dict(judge.settings)
    if judge.kind == Judge.Kind.CONSTITUTIONAL:
        principles = selectors.principle_specs(version=judge.constitution_version)
        backend = conf.backend_for(judge.model_version)
        return ConstitutionalJudge(backend, principles, ConstitutionalSettings.from_dict(settings))
    if judge.kind == Judge.Kind.PROGRAMMATIC:
        return ProgrammaticJudge(resolve(judge.callable_path), name=judge.callable_path,
                                 temperature=settings.get("temperature"))
    if judge.kind == Judge.Kind.REWARD_MODEL:
        return judges.reward_model_judge(
            judge.model_version.source, temperature=settings.get("temperature") or 1.0,
            **conf.reward_model_options(),
        )
    raise JudgeError(f"judge {judge.name} ({judge.kind}) cannot label comparisons")


def _critic_build(job: FeedbackJob) -> critique.CritiqueReviser:
    return critique.CritiqueReviser(
        conf.backend_for(job.model_version),
        selectors.principle_specs(version=job.constitution_version),
        rounds=job.options["rounds"], sampling=SamplingConfig.from_dict(job.options["sampling"]),
        seed=job.seed,
    )


def _judge_batch(*, job: FeedbackJob, index: int, ids: list[int], worker: _Lazy) -> None:
    by_id = Task.objects.select_related("prompt", "response_a", "response_b", "project").in_bulk(
        ids
    )
    labelled = set(
        FeedbackLabel.objects.filter(judge=job.judge, task_id__in=ids).values_list(
            "task_id", flat=True
        )
    )
    tasks = [by_id[pk] for pk in ids if pk in by_id and pk not in labelled]  # deleted drop out
    labels, seconds = [], 0.0
    if tasks:
        judge = worker.get()
        before = judge.engine_seconds
        labels = judge.label([_pair(task) for task in tasks])
        seconds = judge.engine_seconds - before
    store.judge_batch_store(job=job, index=index, item_count=len(ids), tasks=tasks,
                            labels=labels, seconds=seconds)


def _pair(task: Task) -> Pair:
    return Pair(key=task.pk, messages=task.prompt.messages, a=task.response_a.text,
                b=task.response_b.text, metadata=task.prompt.metadata or {})


def _critique_batch(*, job: FeedbackJob, index: int, ids: list[int], worker: _Lazy) -> None:
    by_id = Response.objects.select_related("prompt").in_bulk(ids)
    done = set(
        CritiqueTrace.objects.filter(
            response_id__in=ids, model_version_id=job.model_version_id,
            constitution_version_id=job.constitution_version_id, seed=job.seed,
            round_count=job.options["rounds"],
        ).values_list("response_id", flat=True)
    )
    responses = [by_id[pk] for pk in ids if pk in by_id and pk not in done]
    traces, seconds = [], 0.0
    if responses:
        critic = worker.get()
        before = critic.engine_seconds
        items = [critique.CritiqueItem(key=r.pk, messages=r.prompt.messages, response=r.text)
                 for r in responses]
        traces = critic.run(items)
        seconds = critic.engine_seconds - before
    judge = None
    if job.options["outcome"] == CritiqueTrace.Outcome.COMPARISON:
        judge = revision_judge_get_or_create(
            model_version=job.model_version, constitution_version=job.constitution_version,
            project=job.project,
        )
    store.critique_batch_store(job=job, index=index, item_count=len(ids), responses=responses,
                               traces=traces, seconds=seconds, judge=judge)
