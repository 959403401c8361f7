"""Run a generation job: batches of prompts through the backend, into the annotation core.

The job is a list of units (model version, batch of prompt ids): one pass over the
prompts, or two for head-to-head. Each unit generates only the samples that do not
exist yet, then stores them, makes pairs and advances the progress counters in one
transaction, so a job re-run after a crash (a redelivered task) repeats nothing.
Cancellation is checked before every unit. Claiming, heartbeat and the end of the job
are the lifecycle every job shares (``prefloop.jobs.job_running``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from collections.abc import Iterator

from django.db import transaction
from django.db.models import F

from annotation.models import Prompt, Response
from generation import endpoints, pairing, store
from generation.backends import (
    BackendError,
    Completion,
    GenerationBackend,
    PromptTooLongError,
    SamplingConfig,
)
from generation.backends.base import MAX_SEED
from generation.models import GeneratedSample, GenerationJob, ModelVersion
from prefloop.jobs import Running, job_run

logger = logging.getLogger(__name__)
Unit = tuple[ModelVersion, list[int]]


def generation_job_run(*, job_id: int) -> GenerationJob:
    """Execute (or resume) a job; backend errors end it as FAILED with their message."""
    return job_run(GenerationJob, job_id, _job_run, failing_on=(BackendError,))


def _job_run(run: Running) -> None:
    job = run.job
    if job.sampling.get("seed") is None:  # rows made outside the service
        job.sampling = {**job.sampling, "seed": secrets.randbelow(MAX_SEED)}
        GenerationJob.objects.filter(pk=job.pk).update(sampling=job.sampling)
    sampling = SamplingConfig.from_dict(job.sampling)
    for index, (version, prompt_ids) in enumerate(_units(job)):
        if index < job.batches_done:
            continue  # stored before a crash
        run.stop_if_cancelled()
        _unit_run(job=job, index=index, version=version, prompt_ids=prompt_ids,
                  sampling=sampling)


def _units(job: GenerationJob) -> Iterator[Unit]:
    versions = [job.model_version]
    if job.pairing == GenerationJob.Pairing.HEAD_TO_HEAD and job.opponent_version is not None:
        versions.append(job.opponent_version)
    ids = list(job.prompt_ids)
    for version in versions:
        for start in range(0, len(ids), job.batch_size):
            yield version, ids[start : start + job.batch_size]


def sampling_key(sampling: SamplingConfig) -> str:
    """What besides the seed makes two samples different draws (n does not)."""
    data = {"temperature": sampling.temperature, "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _unit_run(
    *, job: GenerationJob, index: int, version: ModelVersion, prompt_ids: list[int],
    sampling: SamplingConfig,
) -> None:
    key = sampling_key(sampling)
    by_id = Prompt.objects.in_bulk(prompt_ids)
    prompts = [by_id[pk] for pk in prompt_ids if pk in by_id]  # deleted prompts drop out
    have = set(
        GeneratedSample.objects.filter(
            prompt_id__in=prompt_ids, model_version=version, seed=sampling.seed, sampling_key=key
        ).values_list("prompt_id", "sample_index")
    )
    todo = [p for p in prompts if any((p.pk, i) not in have for i in range(sampling.n))]
    completions, seconds = _generate(job=job, version=version, prompts=todo, sampling=sampling)
    samples = [
        store.NewSample(prompt=p, sample_index=i, text=c.text, token_count=c.token_count,
                        cumulative_logprob=c.cumulative_logprob, finish_reason=c.finish_reason)
        for p, row in zip(todo, completions, strict=True)
        for i, c in enumerate(row)
        if (p.pk, i) not in have
    ]
    with transaction.atomic():
        created = store.samples_store(job=job, version=version, seed=sampling.seed,
                                      sampling_key=key, samples=samples)
        tasks = store.tasks_get_or_create(
            project=job.project, pairs=_pairs(job=job, version=version, prompts=prompts, key=key)
        )
        GenerationJob.objects.filter(pk=job.pk).update(
            done=F("done") + len(prompt_ids), batches_done=index + 1,
            responses_created=F("responses_created") + created,
            tasks_created=F("tasks_created") + tasks,
            output_tokens=F("output_tokens") + sum(s.token_count for s in samples),
            engine_seconds=F("engine_seconds") + seconds,
        )
    job.batches_done = index + 1


def _generate(
    *, job: GenerationJob, version: ModelVersion, prompts: list[Prompt], sampling: SamplingConfig
) -> tuple[list[list[Completion]], float]:
    if not prompts:
        return [], 0.0
    backend = _backend(job=job, version=version)
    started = time.perf_counter()
    try:
        completions = backend.generate([p.messages for p in prompts], sampling)
    except PromptTooLongError as exc:
        raise PromptTooLongError(f"prompt {prompts[exc.index].pk}: {exc}", index=exc.index,
                                 length=exc.length, limit=exc.limit) from exc
    return completions, time.perf_counter() - started


def _backend(*, job: GenerationJob, version: ModelVersion) -> GenerationBackend:
    name = endpoints.backend_name_for(version)  # "remote" for a version served elsewhere
    if job.backend != name:
        GenerationJob.objects.filter(pk=job.pk).update(backend=name)
        job.backend = name
    return endpoints.version_backend(version)


def _pairs(
    *, job: GenerationJob, version: ModelVersion, prompts: list[Prompt], key: str
) -> list[tuple[Response, Response | None]]:
    """The comparisons (and, for binary projects, the single-response tasks) of a unit."""
    P = GenerationJob.Pairing
    versions = [version]
    if job.pairing == P.HEAD_TO_HEAD:
        if version.pk != (job.opponent_version_id or 0):
            return []  # pairs are made once the opponent's samples exist
        versions = [job.model_version, version]
    samples = (
        GeneratedSample.objects.filter(
            prompt__in=prompts,
            model_version__in=versions,
            seed=job.sampling["seed"],
            sampling_key=key,
        )
        .select_related("response")
        .order_by("sample_index")
    )
    responses: dict[tuple[int, int], list[Response]] = {}
    for sample in samples:
        row = responses.setdefault((sample.prompt_id, sample.model_version_id), [])
        if all(r.pk != sample.response_id for r in row):
            row.append(sample.response)
    out: list[tuple[Response, Response | None]] = []
    for prompt in prompts:
        ours = responses.get((prompt.pk, versions[0].pk), [])
        theirs = responses.get((prompt.pk, versions[-1].pk), [])
        by_id = {r.pk: r for r in ours + theirs}
        if job.project.binary_enabled:
            out += [(r, None) for r in by_id.values()]
        out += [(by_id[a], by_id[b]) for a, b in _strategy(job, prompt, ours, theirs)]
    return out


def _strategy(
    job: GenerationJob, prompt: Prompt, ours: list[Response], theirs: list[Response]
) -> list[pairing.Pair]:
    P = GenerationJob.Pairing
    ids = [r.pk for r in ours]
    if job.pairing == P.RANDOM:
        return pairing.pairs_random(ids, seed=job.sampling["seed"] * 1_000_003 + prompt.pk)
    if job.pairing == P.ALL:
        return pairing.pairs_all(ids)
    if job.pairing == P.HEAD_TO_HEAD:
        return pairing.pairs_head_to_head(ids, [r.pk for r in theirs])
    if job.pairing == P.BEST_VS_WORST:
        scorer = pairing.SCORERS.get(job.judge)
        if scorer is None:
            raise BackendError(f"no judge scorer named {job.judge!r} is registered in this worker")
        return pairing.pairs_best_vs_worst(ids, scorer(prompt=prompt, responses=ours))
    return []
