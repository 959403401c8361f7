"""Landing generated samples in the annotation core, in bulk, idempotently.

These are the bulk forms of ``annotation.services.content.response_get_or_create``
and ``task_get_or_create`` (same content hash, same ``pair_key`` format): one query
to find what exists and one ``bulk_create`` for the rest, so that storing a batch of
hundreds of samples costs milliseconds rather than a transaction per row.
Callers hold the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from annotation.models import Project, Prompt, Response, Task
from annotation.services.content import response_hash
from generation.models import GeneratedSample, GenerationJob, ModelVersion


@dataclass(frozen=True)
class NewSample:
    prompt: Prompt
    sample_index: int
    text: str
    token_count: int
    cumulative_logprob: float | None
    finish_reason: str


def samples_store(
    *, job: GenerationJob, version: ModelVersion, seed: int, sampling_key: str,
    samples: Sequence[NewSample],
) -> int:
    """Store samples (responses + unique sample keys); returns how many responses are new."""
    responses, created = _responses_get_or_create(job=job, version=version, samples=samples)
    existing = set(
        GeneratedSample.objects.filter(
            prompt_id__in={s.prompt.pk for s in samples}, model_version=version, seed=seed,
            sampling_key=sampling_key,
        ).values_list("prompt_id", "sample_index")
    )
    GeneratedSample.objects.bulk_create([
        GeneratedSample(
            prompt=s.prompt, model_version=version, seed=seed, sampling_key=sampling_key,
            sample_index=s.sample_index, response=response, job=job, token_count=s.token_count,
            cumulative_logprob=s.cumulative_logprob, finish_reason=s.finish_reason,
        )
        for s, response in zip(samples, responses, strict=True)
        if (s.prompt.pk, s.sample_index) not in existing
    ])
    return created


def _responses_get_or_create(
    *, job: GenerationJob, version: ModelVersion, samples: Sequence[NewSample]
) -> tuple[list[Response], int]:
    keys = [(s.prompt.pk, response_hash(s.text, version.pk)) for s in samples]
    found = {
        (r.prompt_id, r.content_hash): r
        for r in Response.objects.filter(
            prompt_id__in={k[0] for k in keys}, content_hash__in={k[1] for k in keys}
        )
    }
    new: dict[tuple[int, str], Response] = {}
    for s, key in zip(samples, keys, strict=True):
        if key not in found and key not in new:
            new[key] = Response(
                prompt=s.prompt, text=s.text, content_hash=key[1],
                source=Response.Source.GENERATED, model_version=version,
                sampling={**job.sampling, "sample_index": s.sample_index, "job": job.pk},
                metadata={"token_count": s.token_count, "finish_reason": s.finish_reason,
                          "cumulative_logprob": s.cumulative_logprob},
            )
    Response.objects.bulk_create(new.values())
    found.update(new)
    return [found[key] for key in keys], len(new)


def tasks_get_or_create(
    *, project: Project, pairs: Sequence[tuple[Response, Response | None]]
) -> int:
    """Pairwise tasks for (a, b) and binary tasks for (a, None); returns how many are new."""
    wanted: dict[tuple[str, str], tuple[Response, Response | None]] = {}
    for a, b in pairs:
        kind = Task.Kind.BINARY if b is None else Task.Kind.PAIRWISE
        wanted[(kind, f"{a.pk}:{b.pk if b else ''}")] = (a, b)
    if not wanted:
        return 0
    existing = set(
        Task.objects.filter(pair_key__in={key for _, key in wanted}).values_list("kind", "pair_key")
    )
    new = [
        Task(
            project=project,
            kind=kind,
            prompt_id=a.prompt_id,
            response_a=a,
            response_b=b,
            pair_key=key,
            overlap_wanted=project.overlap,
        )
        for (kind, key), (a, b) in wanted.items()
        if (kind, key) not in existing
    ]
    Task.objects.bulk_create(new)
    return len(new)
