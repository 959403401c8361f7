"""The reward-model judge: a sequence-classification model built from the tiny model's shape.

Its label is Bradley-Terry over the two rewards, the rewards do not depend on batching
(right padding) or on the order of the pair, and a job labels through it like any judge.
"""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from annotation.services.projects import project_create
from generation.feedback import judges, runner
from generation.feedback.judges import JudgeError, Pair
from generation.feedback.judges.reward_model import RewardModelJudge
from generation.feedback.models import FeedbackLabel
from generation.feedback.services import jobs
from generation.feedback.services import judges as judge_services
from generation.services import model_version_register
from tests.support.feedback import demo_pairs

pytestmark = pytest.mark.slow
QUESTION = [{"role": "user", "content": "What is the capital of Zubria?"}]
PAIRS = [
    Pair(key=1, messages=QUESTION, a="The capital of Zubria is Brakgrad.", b="Maybe Tulon."),
    Pair(key=2, messages=QUESTION, a="No idea.", b="Brakgrad, I think, or Vell or Dorn."),
]


@pytest.fixture(scope="module")
def rm_dir(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("rm")
    config = AutoConfig.from_pretrained(tiny_model_dir, num_labels=1)
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def judge(rm_dir):
    judge = RewardModelJudge(str(rm_dir), dtype="float32", batch_size=3, temperature=2.0)
    yield judge
    judge.close()


def test_labels_are_bradley_terry_over_rewards_scored_one_by_one(judge):
    labels = judge.label(PAIRS)
    for pair, label in zip(PAIRS, labels, strict=True):
        r_a, r_b = (judge.rewards([(pair.messages, text)])[0] for text in (pair.a, pair.b))
        assert label.scores == pytest.approx((r_a, r_b), abs=1e-4)  # batched == one by one
        assert label.p_a == pytest.approx(1 / (1 + math.exp(-(r_a - r_b) / 2.0)), abs=1e-4)
        assert label.p_a_first is None and not label.flipped  # no order to be biased by
    swapped = judge.label([Pair(key=p.key, messages=p.messages, a=p.b, b=p.a) for p in PAIRS])
    assert [x.p_a for x in swapped] == pytest.approx([1 - x.p_a for x in labels], abs=1e-5)


def test_a_model_with_several_outputs_is_refused(tiny_model_dir, tmp_path):
    config = AutoConfig.from_pretrained(tiny_model_dir, num_labels=3)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(tmp_path)
    with pytest.raises(JudgeError, match="3 outputs"):
        RewardModelJudge(str(tmp_path))


@pytest.mark.django_db
def test_reward_model_job(make_user, rm_dir):
    project = project_create(slug="rm", owner=make_user("owner"))
    pairs = demo_pairs(project, count=4, mixed_only=True)
    model_version_register(name="rm-v1", source=str(rm_dir))
    judge = judge_services.judge_from_spec(spec="reward-model:rm-v1",
                                           settings={"temperature": 0.01})
    try:
        job = jobs.feedback_job_create(project=project, judge=judge, enqueue=False,
                                       min_confidence=0.0)
        job = runner.feedback_job_run(job_id=job.pk)
    finally:
        judges.close_reward_model()
    assert job.status == "succeeded", job.error
    assert job.backend == "reward_model"
    labels = FeedbackLabel.objects.filter(judge=judge)
    assert labels.count() == 4 and all(x.details["scores"] for x in labels)
    assert {x.task_id for x in labels} == {p.task.pk for p in pairs}
