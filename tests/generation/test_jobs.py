"""Generation jobs run in this process with the real transformers backend on the tiny model:
prompt selection, pairing strategies, idempotency, cancellation, failures with reasons."""

from __future__ import annotations

import shutil

import pytest

from annotation.models import Prompt, Response, Task
from annotation.services.content import prompt_get_or_create, response_get_or_create
from annotation.services.projects import project_create
from generation import jobs, pairing, services, store
from generation.models import GeneratedSample, GenerationJob
from prefloop.exceptions import InvalidInputError

pytestmark = pytest.mark.django_db

QUESTIONS = ["Zubria", "Morvania", "Quillon", "Teskar", "Ostrel", "Vandomir"]


def make_prompts(project, *, count: int = 6) -> list[Prompt]:
    prompts = []
    for i, country in enumerate(QUESTIONS[:count]):
        prompt, _ = prompt_get_or_create(
            project=project,
            messages=[{"role": "user", "content": f"What is the capital of {country}?"}],
            tags=["capitals", "even" if i % 2 == 0 else "odd"],
            split="eval" if i >= 4 else "train",
        )
        prompts.append(prompt)
    return prompts


@pytest.fixture
def owner(make_user):
    return make_user("owner")


@pytest.fixture
def project(owner):
    project = project_create(slug="gen", owner=owner)
    make_prompts(project)
    return project


@pytest.fixture
def tiny_version(tiny_model_dir):
    return services.model_version_register(name="tiny", source=str(tiny_model_dir))


@pytest.fixture(autouse=True)
def transformers_backend(settings):
    settings.GENERATION_BACKEND = "transformers"


def run(project, version, **options) -> GenerationJob:
    options.setdefault("sampling", {"n": 2, "temperature": 1.0, "max_tokens": 16, "seed": 7})
    job = services.generation_job_create(
        project=project, model_version=version, enqueue=False, **options
    )
    return jobs.generation_job_run(job_id=job.pk)


def test_job_lands_responses_and_random_pairs(project, tiny_version):
    job = run(project, tiny_version, sampling={"n": 3, "max_tokens": 16, "seed": 7})
    assert job.status == GenerationJob.Status.SUCCEEDED, job.error
    job.refresh_from_db()
    assert (job.done, job.total, job.batches_done) == (6, 6, 1)
    assert GeneratedSample.objects.filter(job=job).count() == 6 * 3
    responses = Response.objects.filter(prompt__project=project)
    assert job.responses_created == responses.count() > 6
    for r in responses:
        assert r.source == Response.Source.GENERATED and r.model_version_id == tiny_version.pk
        assert r.sampling["seed"] == 7 and r.sampling["sample_index"] in (0, 1, 2)
        assert r.metadata["finish_reason"] in ("stop", "length")
    tasks = Task.objects.filter(project=project, kind=Task.Kind.PAIRWISE)
    assert job.tasks_created == tasks.count() >= 1
    for task in tasks:
        assert task.response_a.prompt_id == task.response_b.prompt_id == task.prompt_id
    prompt_ids = list(tasks.values_list("prompt_id", flat=True))
    assert len(prompt_ids) == len(set(prompt_ids))  # 3 samples: one disjoint random pair
    assert job.output_tokens > 0 and job.engine_seconds > 0 and job.backend == "transformers"


def test_all_pairs_pairs_every_distinct_response(project, tiny_version):
    job = run(project, tiny_version, pairing_name="all", sampling={"n": 3, "seed": 1})
    assert job.status == GenerationJob.Status.SUCCEEDED, job.error
    for prompt in project.prompts.all():
        k = prompt.responses.count()
        assert Task.objects.filter(prompt=prompt).count() == k * (k - 1) // 2


def test_head_to_head_pairs_sample_i_of_each_version(project, tiny_version, tiny_model_dir):
    other = services.model_version_register(
        name="tiny-twin", source=str(tiny_model_dir), parent=tiny_version
    )
    job = run(project, tiny_version, pairing_name="head_to_head", opponent_version=other)
    assert job.status == GenerationJob.Status.SUCCEEDED, job.error
    job.refresh_from_db()
    assert (job.done, job.total, job.batches_done) == (12, 12, 2)
    tasks = Task.objects.filter(project=project)
    assert tasks.count() == 6 * 2
    for task in tasks:
        assert task.response_a.model_version_id == tiny_version.pk
        assert task.response_b.model_version_id == other.pk


def test_binary_project_gets_a_thumbs_task_per_response(owner, tiny_version):
    project = project_create(slug="thumbs", owner=owner, binary_enabled=True)
    make_prompts(project, count=2)
    job = run(project, tiny_version, pairing_name="none")
    assert job.status == GenerationJob.Status.SUCCEEDED, job.error
    responses = Response.objects.filter(prompt__project=project)
    binary = Task.objects.filter(project=project, kind=Task.Kind.BINARY)
    assert binary.count() == responses.count()
    assert not Task.objects.filter(project=project, kind=Task.Kind.PAIRWISE).exists()


def test_best_vs_worst_uses_the_registered_judge(project, tiny_version, monkeypatch):
    monkeypatch.setitem(
        pairing.SCORERS, "length", lambda *, prompt, responses: [len(r.text) for r in responses]
    )
    job = run(project, tiny_version, pairing_name="best_vs_worst", judge="length",
              sampling={"n": 4, "temperature": 1.0, "max_tokens": 16, "seed": 3})
    assert job.status == GenerationJob.Status.SUCCEEDED, job.error
    for task in Task.objects.filter(project=project):
        others = task.prompt.responses.values_list("text", flat=True)
        assert len(task.response_a.text) == max(len(t) for t in others)
        assert len(task.response_b.text) == min(len(t) for t in others)


def test_generation_job_execute_is_idempotent(project, tiny_version):
    """A finished job returns early; the same batch run again (a crash before the counters
    moved, or a second job with the same seed) adds no response, sample or task."""
    job = run(project, tiny_version)
    counts = (Response.objects.count(), GeneratedSample.objects.count(), Task.objects.count())
    assert jobs.generation_job_run(job_id=job.pk).status == GenerationJob.Status.SUCCEEDED
    GenerationJob.objects.filter(pk=job.pk).update(
        status=GenerationJob.Status.RUNNING, batches_done=0
    )
    assert jobs.generation_job_run(job_id=job.pk).status == GenerationJob.Status.SUCCEEDED
    again = run(project, tiny_version)
    assert again.status == GenerationJob.Status.SUCCEEDED
    assert (Response.objects.count(), GeneratedSample.objects.count(), Task.objects.count()) == (
        counts
    )
    again.refresh_from_db()
    assert again.responses_created == again.tasks_created == again.output_tokens == 0


def test_cancel_stops_between_batches(project, tiny_version, monkeypatch):
    job = services.generation_job_create(
        project=project, model_version=tiny_version, batch_size=2, enqueue=False,
        sampling={"n": 2, "max_tokens": 8, "seed": 1},
    )
    real = store.samples_store

    def store_then_cancel(**kwargs):
        result = real(**kwargs)
        services.generation_job_cancel(job=job)  # the owner presses cancel during batch 1
        return result

    monkeypatch.setattr(store, "samples_store", store_then_cancel)
    job = jobs.generation_job_run(job_id=job.pk)
    assert job.status == GenerationJob.Status.CANCELLED
    assert (job.done, job.batches_done, job.total) == (2, 1, 6)
    assert GeneratedSample.objects.count() == 2 * 2


def test_cancel_of_a_pending_job_is_immediate(project, tiny_version):
    job = services.generation_job_create(
        project=project, model_version=tiny_version, sampling={"n": 2}, enqueue=False
    )
    assert services.generation_job_cancel(job=job).status == GenerationJob.Status.CANCELLED
    assert jobs.generation_job_run(job_id=job.pk).status == GenerationJob.Status.CANCELLED
    assert not Response.objects.exists()


# --- failures end the job with a reason -------------------------------------------------


def test_unknown_model_path_fails_the_job(project, tmp_path):
    version = services.model_version_register(name="ghost", source=str(tmp_path / "missing"))
    job = run(project, version)
    assert job.status == GenerationJob.Status.FAILED
    assert "does not exist" in job.error and "missing" in job.error


def test_model_too_large_for_memory_fails_the_job(project, tiny_model_dir, tmp_path):
    huge = tmp_path / "huge"
    huge.mkdir()
    shutil.copy(tiny_model_dir / "config.json", huge / "config.json")
    with open(huge / "model.safetensors", "wb") as f:  # sparse: no disk is used
        f.truncate(1 << 42)
    version = services.model_version_register(name="huge", source=str(huge))
    job = run(project, version)
    assert job.status == GenerationJob.Status.FAILED
    assert "4096.0 GiB of weights but only" in job.error


def test_prompt_longer_than_the_context_fails_the_job(project, tiny_version):
    long_prompt, _ = prompt_get_or_create(
        project=project, messages="Tell me about " + "the capital of Zubria " * 80, tags=["long"]
    )
    job = run(project, tiny_version, tags=["long"])
    assert job.status == GenerationJob.Status.FAILED
    assert job.error.startswith(f"prompt {long_prompt.pk}: prompt is ")
    assert "the model's context is 256 tokens" in job.error


def test_invalid_sampling_in_a_stored_job_fails_it(project, tiny_version):
    job = services.generation_job_create(
        project=project, model_version=tiny_version, sampling={"n": 2}, enqueue=False
    )
    GenerationJob.objects.filter(pk=job.pk).update(sampling={**job.sampling, "top_p": 0})
    job = jobs.generation_job_run(job_id=job.pk)
    assert job.status == GenerationJob.Status.FAILED
    assert job.error == "invalid sampling: top_p must be in (0, 1]"


# --- creation rules -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"sampling": {"n": 2, "top_p": 1.5}}, "invalid sampling: top_p must be in (0, 1]"),
        ({"sampling": {"n": 2, "temprature": 1}}, "unknown parameter(s) ['temprature']"),
        ({"sampling": {"n": 1}}, "random pairing needs n >= 2"),
        ({"sampling": {"n": 2}, "pairing_name": "head_to_head"}, services.OPPONENT_NEEDED),
        (
            {"sampling": {"n": 2}, "pairing_name": "best_vs_worst", "judge": "nobody"},
            "no scorer named 'nobody'",
        ),
        ({"sampling": {"n": 2}, "tags": ["no-such-tag"]}, services.NO_PROMPTS),
        ({"sampling": {"n": 2}, "pairing_name": "sideways"}, "unknown pairing 'sideways'"),
    ],
)
def test_bad_job_requests_are_rejected(project, tiny_version, options, message):
    with pytest.raises(InvalidInputError) as err:
        services.generation_job_create(
            project=project, model_version=tiny_version, enqueue=False, **options
        )
    assert message in err.value.message, err.value.fields
    assert not GenerationJob.objects.exists()


def test_selection_by_tag_split_and_lacking_candidates(project, tiny_version):
    prompts = list(project.prompts.order_by("id"))
    for text in ("one", "two"):
        response_get_or_create(prompt=prompts[0], text=text, source="imported")
    select = {"project": project, "model_version": tiny_version, "sampling": {"n": 2},
              "enqueue": False}
    assert services.generation_job_create(**select, tags=["even"]).prompt_ids == [
        p.pk for p in prompts[::2]
    ]
    assert services.generation_job_create(**select, split="eval").total == 2
    lacking = services.generation_job_create(**select, lacking_candidates=True)
    assert lacking.prompt_ids == [p.pk for p in prompts[1:]]
    seeded = services.generation_job_create(**select)
    assert isinstance(seeded.sampling["seed"], int)  # chosen once, so re-runs repeat
