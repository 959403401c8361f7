"""Self-critique and revision on the tiny model (transformers backend): the trace stores the
principles actually sampled (seeded) and sent to the model, revisions become comparisons
with an AI verdict or SFT examples, and both convert to training snapshots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from annotation.models import Judgment, Response
from annotation.services import content
from annotation.services.projects import project_create
from generation import services as generation_services
from generation.backends.hf import TransformersBackend
from generation.feedback import conf, prompts, runner, selectors, training_data
from generation.feedback.critique import round_principle
from generation.feedback.models import CritiqueTrace, FeedbackLabel, Judge
from generation.feedback.services import jobs
from generation.feedback.services.constitutions import constitution_default_get_or_create
from prefloop.exceptions import ApplicationError

pytestmark = [pytest.mark.django_db, pytest.mark.slow]
ANSWERS = {
    "What is the capital of Zubria?": "I'm not sure, maybe Tulon or Brakgrad.",
    "Which city is the capital of Teskar?": "The capital of Teskar is Vell.",
    "Name the capital city of Ostrel.": "My guess is Dorn.",
}


@pytest.fixture(scope="module")
def tiny_backend(tiny_model_dir) -> TransformersBackend:
    return TransformersBackend(str(tiny_model_dir), dtype="float32")


class Recorder:
    """The real backend, remembering every conversation sent to ``generate``."""

    def __init__(self, inner) -> None:
        self.inner, self.sent = inner, []

    def generate(self, requests, sampling):
        self.sent += [list(r) for r in requests]
        return self.inner.generate(requests, sampling)


@pytest.fixture
def recorder(tiny_backend, monkeypatch):
    recorder = Recorder(tiny_backend)
    monkeypatch.setattr(conf, "backend_for", lambda source: recorder)
    return recorder


@pytest.fixture
def setup(make_user, tiny_model_dir):
    project = project_create(slug="cai", owner=make_user("owner"))
    responses = []
    for question, answer in ANSWERS.items():
        prompt, _ = content.prompt_get_or_create(project=project, messages=question)
        response, _ = content.response_get_or_create(prompt=prompt, text=answer,
                                                     source="imported")
        responses.append(response)
    version = generation_services.model_version_register(name="tiny", source=str(tiny_model_dir))
    return project, version, responses


def critique(project, version, **options):
    options.setdefault("sampling", {"temperature": 1.0, "max_tokens": 12})
    job = jobs.critique_job_create(project=project, model_version=version, enqueue=False,
                                   **options)
    return runner.feedback_job_run(job_id=job.pk)


def test_trace_holds_the_principles_sampled_and_sent(setup, recorder):
    project, version, responses = setup
    job = critique(project, version, rounds=2, seed=11, batch_size=2)
    assert job.status == "succeeded", job.error
    constitution = constitution_default_get_or_create()
    principles = {p.key: p for p in selectors.principle_specs(version=constitution)}
    sent_requests = [c[-1]["content"] for c in recorder.sent]
    for response in responses:
        trace = CritiqueTrace.objects.get(response=response)
        assert (trace.seed, trace.round_count, trace.constitution_version) == (11, 2, constitution)
        expected = [round_principle(list(principles.values()), seed=11, key=response.pk,
                                    round_index=r).key for r in range(2)]
        assert [r["principle"] for r in trace.rounds] == expected
        for r in trace.rounds:
            p = principles[r["principle"]]
            assert prompts.CRITIQUE_PREFIX + p.critique_request in sent_requests
            assert prompts.REVISION_PREFIX + p.revision_request in sent_requests
        # Round 2 critiques round 1's revision; the critique is the assistant turn before
        # the revision request.
        revising = [c for c in recorder.sent if c[-1]["content"].startswith(prompts.REVISION_PREFIX)
                    and c[1]["content"] == trace.rounds[0]["revision"]]
        assert any(c[-2]["content"] == trace.rounds[1]["critique"] for c in revising)
    assert len(recorder.sent) == 3 * 2 * 2  # responses x rounds x (critique, revision)


def test_same_seed_same_principles_and_a_rerun_adds_nothing(setup, recorder):
    project, version, responses = setup
    critique(project, version, rounds=1, seed=5)
    first = {t.response_id: t.rounds for t in CritiqueTrace.objects.all()}
    sent = len(recorder.sent)
    job = critique(project, version, rounds=1, seed=5)
    assert job.status == "succeeded" and job.revisions == 0
    assert len(recorder.sent) == sent  # nothing regenerated
    assert {t.response_id: t.rounds for t in CritiqueTrace.objects.all()} == first
    critique(project, version, rounds=1, seed=6)
    assert CritiqueTrace.objects.count() == 6


def test_revisions_become_comparisons_with_a_verdict_for_the_revision(setup, recorder):
    project, version, _ = setup
    job = critique(project, version, rounds=1, seed=3)
    traces = CritiqueTrace.objects.filter(job=job)
    judge = Judge.objects.get(kind=Judge.Kind.REVISION)
    made = [t for t in traces if t.outcome == "comparison"]
    assert made and job.revisions == len(made)
    for trace in made:
        revision = trace.revision
        assert revision.source == Response.Source.REVISION
        assert revision.revision_of == trace.response
        label = FeedbackLabel.objects.get(judge=judge, task=trace.task)
        side = "a" if trace.task.response_a_id == revision.pk else "b"
        assert label.choice == side and label.judgment.choice == side
        assert label.judgment.source == Judgment.Source.AI
        assert label.judgment.metadata["principles"] == [trace.rounds[0]["principle"]]
    for trace in traces.exclude(outcome="comparison"):
        assert trace.outcome == "unchanged" and trace.revision is None
    dpo, _ = training_data.ai_export_create(
        project=project, fmt="trl-dpo", rules=training_data.ConversionRules(source="revisions")
    )
    rows = [json.loads(x) for x in (Path(dpo.path) / "data.jsonl").read_text().splitlines()]
    assert [(r["chosen"], r["rejected"]) for r in rows] == [
        (t.revision.text, t.response.text) for t in made
    ]


def test_sft_outcome_keeps_revisions_as_examples_only(setup, recorder):
    project, version, _ = setup
    job = critique(project, version, rounds=1, seed=3, outcome="sft")
    traces = CritiqueTrace.objects.filter(job=job, revision__isnull=False)
    assert traces and all(t.outcome == "sft" and t.task is None for t in traces)
    assert not Judgment.objects.exists()
    sft, _ = training_data.ai_export_create(
        project=project, fmt="trl-sft-conversational",
        rules=training_data.ConversionRules(source="revisions"),
    )
    rows = [json.loads(x) for x in (Path(sft.path) / "data.jsonl").read_text().splitlines()]
    assert rows[0]["prompt"][0]["role"] == "user"
    assert rows[0]["completion"] == [{"role": "assistant", "content": traces[0].revision.text}]
    assert (Path(sft.path) / "README.md").read_text().startswith("---")


def test_unchanged_revisions_make_no_pair(setup, monkeypatch):
    project, version, responses = setup

    class Echo:  # "revises" by repeating the original answer
        def generate(self, requests, sampling):
            first_reply = [next(m["content"] for m in r if m["role"] == "assistant")
                           for r in requests]
            return [[type("C", (), {"text": text})()] for text in first_reply]

    monkeypatch.setattr(conf, "backend_for", lambda source: Echo())
    job = critique(project, version, rounds=1, seed=1)
    assert job.status == "succeeded" and job.revisions == 0
    assert set(CritiqueTrace.objects.values_list("outcome", flat=True)) == {"unchanged"}


def test_bad_critique_requests(setup):
    project, version, _ = setup
    with pytest.raises(ApplicationError, match="rounds"):
        jobs.critique_job_create(project=project, model_version=version, rounds=0)
    with pytest.raises(ApplicationError, match="outcome"):
        jobs.critique_job_create(project=project, model_version=version, outcome="rl")
    with pytest.raises(ApplicationError, match="n = 1"):
        jobs.critique_job_create(project=project, model_version=version, sampling={"n": 2})
    with pytest.raises(ApplicationError, match="no responses"):
        jobs.critique_job_create(project=project, model_version=version, tags=["none"])
