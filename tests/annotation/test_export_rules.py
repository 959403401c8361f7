"""Export aggregation rules: the pure decisions, then the same rules applied to a project."""

from __future__ import annotations

import pytest

from annotation.io import aggregate
from annotation.io.aggregate import Outcome, Vote
from annotation.io.rules import ExportRules
from annotation.io.writers import FORMATS
from annotation.models import Feedback, Judgment, Prompt, Task
from annotation.selectors import exports as export_selectors
from annotation.services import content, projects


def votes(*choices: str, strength: int = 1, source: str = "human") -> list[Vote]:
    return [Vote(i, c, strength, source) for i, c in enumerate(choices)]


def test_majority_and_agreement():
    outcome = aggregate.outcome_decide(votes("a", "a", "b"), ExportRules())
    assert outcome == Outcome("a", None, pytest.approx(2 / 3), 3)
    assert aggregate.preference_sides(outcome) == ("a", "b")
    strict = ExportRules(min_agreement=0.7)
    assert aggregate.outcome_decide(votes("a", "a", "b"), strict).dropped == "low_agreement"


def test_split_votes_ties_and_both_bad():
    rules = ExportRules()
    assert aggregate.outcome_decide(votes("a", "b"), rules).dropped == "split_vote"
    assert aggregate.preference_sides(aggregate.outcome_decide(votes("tie"), rules)) == "tie"
    both_bad = aggregate.outcome_decide(votes("both_bad", "both_bad", "a"), rules)
    assert aggregate.preference_sides(both_bad) == "both_bad"
    assert aggregate.pairwise_labels(both_bad, rules) == "both_bad"
    assert aggregate.pairwise_labels(both_bad, ExportRules(both_bad="undesirable")) == [
        ("a", False), ("b", False)
    ]
    tie = aggregate.outcome_decide(votes("tie"), rules)
    assert aggregate.pairwise_labels(tie, ExportRules(ties="desirable")) == [
        ("a", True),
        ("b", True),
    ]


def test_strength_weighted_vote_can_overturn_the_head_count():
    mixed = [Vote(1, "a", 1), Vote(2, "a", 1), Vote(3, "b", 3)]
    assert aggregate.outcome_decide(mixed, ExportRules()).verdict == "a"
    weighted = aggregate.outcome_decide(mixed, ExportRules(vote="strength"))
    assert weighted.verdict == "b" and weighted.agreement == pytest.approx(3 / 5)


def test_min_judgments_and_sources():
    assert aggregate.outcome_decide([], ExportRules()).dropped == "no_votes"
    assert aggregate.outcome_decide(votes("a"), ExportRules(min_judgments=2)).dropped == (
        "too_few_votes"
    )
    mixed = [Vote(1, "a", source="ai"), Vote(2, "b", source="imported"), Vote(3, "a")]
    assert len(aggregate.votes_counted(mixed, ExportRules(include_ai=False), set())) == 2
    assert len(aggregate.votes_counted(mixed, ExportRules(include_imported=False), set())) == 2
    assert aggregate.votes_counted(mixed, ExportRules(), {1, 3}) == [mixed[1]]


def test_gold_exclusion_needs_enough_answers():
    accuracy = aggregate.gold_accuracy([(1, True), (1, False), (1, False), (2, False)])
    assert accuracy == {1: (1, 3), 2: (0, 1)}
    assert aggregate.gold_excluded(accuracy, ExportRules()) == set()
    assert aggregate.gold_excluded(accuracy, ExportRules(min_gold_accuracy=0.5)) == {1}
    assert aggregate.gold_excluded(
        accuracy, ExportRules(min_gold_accuracy=0.5, min_gold_answers=1)
    ) == {1, 2}


@pytest.mark.parametrize(
    "bad",
    [{"vote": "loudest"}, {"min_agreement": 2}, {"min_judgments": 0}, {"include_ai": "yes"},
     {"colour": "red"}, {"split": "test"}],
)
def test_rules_reject_bad_values(bad):
    with pytest.raises(ValueError):
        ExportRules.from_dict(bad)


# --- applied to a project ---------------------------------------------------------


@pytest.fixture
def world(db, make_user, settings, tmp_path):
    """Three pairwise tasks and one response with thumbs, judged by three annotators."""
    settings.DATA_DIR = tmp_path / "data"
    owner = make_user("owner")
    project = projects.project_create(slug="agg", owner=owner, overlap=3, max_overlap=5)
    people = [make_user(f"ann{i}") for i in range(3)]
    tasks = []
    for i, split in enumerate(["train", "train", "eval"]):
        prompt, _ = content.prompt_get_or_create(project=project, messages=f"Q{i}", split=split)
        a, _ = content.response_get_or_create(prompt=prompt, text=f"A{i}", source="generated")
        b, _ = content.response_get_or_create(prompt=prompt, text=f"B{i}", source="generated")
        tasks.append(content.task_get_or_create(project=project, response_a=a, response_b=b)[0])
    return project, owner, people, tasks


def judge(task: Task, user, choice: str, strength: int = 1, source: str = "human") -> None:
    Judgment.objects.create(task=task, annotator=user, choice=choice, strength=strength,
                            source=source)


def build(project, fmt: str, **rules):
    return export_selectors.export_rows_build(
        project=project, fmt=FORMATS[fmt], rules=ExportRules(**rules)
    )


def test_project_export_counts_every_drop_reason(world):
    project, _, (p0, p1, p2), (t0, t1, t2) = world
    judge(t0, p0, "a"), judge(t0, p1, "a"), judge(t0, p2, "b")
    judge(t1, p0, "tie")
    judge(t2, p0, "b")
    rows, counts = build(project, "trl-dpo")
    assert [(r["chosen"], r["rejected"], r["n_votes"]) for r in rows] == [("A0", "B0", 3)]
    assert rows[0]["agreement"] == pytest.approx(0.6667)
    assert counts["dropped"] == {"tie": 1, "eval_split": 1}
    assert counts["candidates"] == {"pairwise_tasks": 3} and counts["votes_counted"] == 3
    eval_rows, _ = build(project, "trl-dpo", split="eval")
    assert [(r["chosen"], r["rejected"]) for r in eval_rows] == [("B2", "A2")]
    _, strict = build(project, "trl-dpo", min_agreement=0.75)
    assert strict["dropped"]["low_agreement"] == 1


def test_gold_failing_annotator_is_excluded(world, make_user):
    project, _, (p0, p1, p2), (t0, t1, _) = world
    gold_prompt, _ = content.prompt_get_or_create(project=project, messages="gold")
    ga, _ = content.response_get_or_create(prompt=gold_prompt, text="right", source="generated")
    gb, _ = content.response_get_or_create(prompt=gold_prompt, text="wrong", source="generated")
    gold, _ = content.task_get_or_create(project=project, response_a=ga, response_b=gb,
                                         is_gold=True, gold_answer="a")
    judge(gold, p0, "b"), judge(gold, p1, "a")
    judge(t0, p0, "b"), judge(t0, p1, "a")  # a split vote while p0 counts
    rows, counts = build(project, "trl-dpo", min_gold_accuracy=0.5, min_gold_answers=1)
    assert counts["annotators_excluded"] == ["ann0"]
    assert ("A0", "B0") in [(r["chosen"], r["rejected"]) for r in rows]
    assert build(project, "trl-dpo")[1]["dropped"]["split_vote"] == 2  # t0 and the gold task


def test_kto_from_thumbs_and_pairs(world):
    project, _, (p0, p1, p2), (t0, t1, _) = world
    judge(t0, p0, "a")
    judge(t1, p0, "both_bad")
    response = t0.response_a  # "A0": also chosen in t0, so a duplicate row from the pair
    binary, _ = content.task_get_or_create(project=project, response_a=response)
    for user, up in ((p0, True), (p1, True), (p2, False)):
        Feedback.objects.create(response=response, task=binary, annotator=user, thumbs_up=up)
    rows, counts = build(project, "trl-kto")
    assert [(r["completion"], r["label"], r["prefloop_from"]) for r in rows] == [
        ("A0", True, "feedback"), ("B0", False, "pairwise"),
    ]
    assert counts["dropped"] == {"both_bad": 1, "duplicate": 1, "eval_split": 1}
    rows, _ = build(project, "trl-kto", both_bad="undesirable", kto_sources="pairwise")
    assert [(r["completion"], r["label"]) for r in rows] == [
        ("A0", True), ("B0", False), ("A1", False), ("B1", False),
    ]


def test_ai_and_imported_votes_can_be_left_out(world):
    project, _, (p0, p1, _), (t0, t1, _) = world
    judge(t0, p0, "a", source="ai")
    judge(t1, p1, "b", source="imported")
    assert len(build(project, "trl-dpo")[0]) == 2
    assert len(build(project, "trl-dpo", include_ai=False)[0]) == 1
    rows, counts = build(project, "trl-dpo", include_ai=False, include_imported=False)
    assert rows == [] and counts["dropped"]["no_votes"] == 2


def test_multi_turn_prompts_need_the_conversational_format(world):
    project, _, (p0, *_), _ = world
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    prompt, _ = content.prompt_get_or_create(project=project, messages=messages)
    a, _ = content.response_get_or_create(prompt=prompt, text="x", source="generated")
    b, _ = content.response_get_or_create(prompt=prompt, text="y", source="generated")
    task, _ = content.task_get_or_create(project=project, response_a=a, response_b=b)
    judge(task, p0, "a")
    assert build(project, "trl-dpo")[1]["dropped"]["multi_turn_prompt"] == 1
    rows, _ = build(project, "trl-dpo-conversational", metadata_columns=False)
    assert rows == [{"prompt": messages, "chosen": [{"role": "assistant", "content": "x"}],
                     "rejected": [{"role": "assistant", "content": "y"}]}]
    assert Prompt.objects.filter(project=project).count() == 4
