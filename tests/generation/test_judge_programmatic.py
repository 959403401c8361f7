"""The programmatic judge: the demo checker labels demo comparisons exactly as the checker
says, its verdicts are AI judgments like any other, and they export to DPO and KTO."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from annotation.io.rules import ExportRules
from annotation.models import Judgment
from annotation.services import content
from annotation.services.exports import export_snapshot_create
from annotation.services.projects import project_create
from generation import pairing
from generation.demo import facts
from generation.demo.checker import check_answer
from generation.feedback import runner
from generation.feedback.judges import JudgeError, Pair
from generation.feedback.judges.programmatic import ProgrammaticJudge, resolve
from generation.feedback.models import FeedbackLabel, Judge
from generation.feedback.services import jobs, judges
from prefloop.exceptions import ApplicationError
from tests.support.feedback import DEMO_JUDGE, demo_pairs

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(make_user):
    return project_create(slug="demo", owner=make_user("owner"), binary_enabled=True)


def demo_judge() -> Judge:
    return judges.judge_from_spec(spec=DEMO_JUDGE)


def run_job(project, judge, **options):
    job = jobs.feedback_job_create(project=project, judge=judge, enqueue=False, **options)
    return runner.feedback_job_run(job_id=job.pk)


def test_demo_checker_labels_agree_with_the_checker_everywhere(project):
    pairs = demo_pairs(project, count=40, seed=3)
    assert any(p.a_correct != p.b_correct for p in pairs)
    assert any(p.a_correct == p.b_correct for p in pairs)  # both right or both wrong
    judge = demo_judge()
    job = run_job(project, judge, batch_size=16)
    assert job.status == "succeeded", job.error
    decided = [p for p in pairs if p.a_correct != p.b_correct]
    for pair in pairs:
        label = FeedbackLabel.objects.get(judge=judge, task=pair.task)
        if pair.a_correct == pair.b_correct:  # the checker cannot tell them apart: humans do
            assert label.unsure and label.routed and label.judgment is None
            continue
        expected = "a" if pair.a_correct else "b"
        assert label.choice == expected and label.judgment.choice == expected
        assert label.judgment.source == Judgment.Source.AI
        assert label.judgment.soft_label == (1.0 if expected == "a" else 0.0)
        assert label.judgment.annotator == judge.annotator
        assert label.judgment.metadata["method"] == "programmatic"
    job.refresh_from_db()
    assert (job.labelled, job.routed, job.done) == (len(decided), len(pairs) - len(decided), 40)
    assert Judgment.objects.filter(task__project=project).count() == len(decided)


def test_demo_labels_export_to_dpo_and_kto(project):
    fact_of = {q: f for f, q in facts.demo_questions("train", 0)}
    demo_pairs(project, count=30, seed=5, mixed_only=True)
    run_job(project, demo_judge())
    dpo, _ = export_snapshot_create(project=project, fmt="trl-dpo")
    rows = [json.loads(line) for line in (Path(dpo.path) / "data.jsonl").read_text().splitlines()]
    assert len(rows) == 30
    for row in rows:
        fact = fact_of[row["prompt"]]
        assert check_answer(fact, row["chosen"]) and not check_answer(fact, row["rejected"])
    rules = ExportRules(kto_sources="pairwise")
    kto, _ = export_snapshot_create(project=project, fmt="trl-kto", rules=rules)
    rows = [json.loads(line) for line in (Path(kto.path) / "data.jsonl").read_text().splitlines()]
    assert len(rows) == 60
    for row in rows:
        assert row["label"] == check_answer(fact_of[row["prompt"]], row["completion"])
    none, _ = export_snapshot_create(project=project, fmt="trl-dpo",
                                     rules=ExportRules(include_ai=False))
    assert none.counts["rows"] == 0  # AI verdicts can be left out like any source


def test_demo_checker_is_a_best_vs_worst_scorer_for_generation_jobs(project):
    pair = demo_pairs(project, count=1, mixed_only=True)[0]
    scores = pairing.SCORERS["demo-checker"](
        prompt=pair.task.prompt, responses=[pair.task.response_a, pair.task.response_b]
    )
    assert scores == [float(pair.a_correct), float(pair.b_correct)]


def test_resolution_of_dotted_paths():
    assert resolve("generation.feedback.judges.programmatic:demo_capital_score")
    for path, message in [
        ("nodots", "not a dotted path"),
        ("generation.feedback.nope.fn", "cannot import"),
        ("generation.feedback.judges.programmatic.DEMO", "cannot import"),
        ("generation.demo.facts.N_FACTS", "not callable"),
    ]:
        with pytest.raises(JudgeError, match=message):
            resolve(path)
    with pytest.raises(JudgeError, match="not under an allowed module"):
        resolve("os.path.join", allowed_prefixes=("generation.",))


def test_scores_that_fail_or_are_missing(project):
    def broken(**_):
        raise ValueError("no such fact")

    pair = Pair(key=1, messages=[{"role": "user", "content": "q"}], a="x", b="y")
    with pytest.raises(JudgeError, match="raised ValueError: no such fact"):
        ProgrammaticJudge(broken, name="broken").label([pair])
    with pytest.raises(JudgeError, match="not a number"):
        ProgrammaticJudge(lambda **_: "good").label([pair])
    assert ProgrammaticJudge(lambda **_: None).label([pair]) == [None]
    soft = ProgrammaticJudge(lambda response, **_: len(response), temperature=1.0)
    (label,) = soft.label([Pair(key=2, messages=pair.messages, a="long", b="x")])
    assert 0.95 < label.p_a < 1.0  # sigmoid(4 - 1)


def test_prompts_without_demo_facts_are_skipped(project):
    prompt, _ = content.prompt_get_or_create(project=project, messages="Hello?")
    a, _ = content.response_get_or_create(prompt=prompt, text="Hi", source="imported")
    b, _ = content.response_get_or_create(prompt=prompt, text="Hey", source="imported")
    content.task_get_or_create(project=project, response_a=a, response_b=b)
    job = run_job(project, demo_judge())
    assert (job.status, job.skipped, job.labelled) == ("succeeded", 1, 0)
    assert not FeedbackLabel.objects.exists()


def test_judge_specs_and_identity(project):
    assert demo_judge() == demo_judge()  # same configuration, same judge and annotator
    soft = judges.judge_from_spec(spec=DEMO_JUDGE, settings={"temperature": 0.5})
    assert soft != demo_judge() and soft.annotator.annotator_profile.kind == "ai"
    with pytest.raises(ApplicationError, match="unknown judge"):
        judges.judge_from_spec(spec="oracle")
    with pytest.raises(ApplicationError, match="not under an allowed module"):
        judges.judge_from_spec(spec="programmatic:os.getcwd", allowed_prefixes=("generation.",))
    with pytest.raises(ApplicationError, match="needs a model version"):
        judges.judge_from_spec(spec="constitutional")
