"""Bradley–Terry ratings: hand-worked two-model case, a synthetic ladder, bootstrap CIs."""

import math

import numpy as np
import pytest

from annotation.models import Judgment
from annotation.selectors import leaderboard
from generation.models import ModelVersion
from tests.annotation import member_add, pairwise_tasks_build, project_build, user_build


def _simulate(true_ratings, n_games, seed=1):
    rng = np.random.default_rng(seed)
    n = len(true_ratings)
    first = rng.integers(0, n, n_games)
    second = (first + rng.integers(1, n, n_games)) % n  # never the same model
    gap = np.asarray(true_ratings)[first] - np.asarray(true_ratings)[second]
    first_wins = rng.random(n_games) < 1 / (1 + 10 ** (-gap / 400))
    return first, second, first_wins.astype(float)


def test_two_models_by_hand():
    """3 wins, 1 loss, 1 tie: p_x / p_y = 3.5 / 1.5, so the gap is 400 log10(7/3)."""
    first = np.zeros(5, dtype=int)
    second = np.ones(5, dtype=int)
    score = np.array([1, 1, 1, 0, 0.5])
    ratings = leaderboard.bradley_terry_fit(
        first=first, second=second, score=score, n_models=2, prior=0.0
    )
    gap = 400 * math.log10(3.5 / 1.5)
    assert ratings == pytest.approx([1000 + gap / 2, 1000 - gap / 2])


def test_a_synthetic_ladder_is_recovered():
    true = [1200, 1100, 1000, 900]
    first, second, score = _simulate(true, 4000)
    ratings = leaderboard.bradley_terry_fit(first=first, second=second, score=score, n_models=4)
    assert list(np.argsort(-ratings)) == [0, 1, 2, 3]
    centred = np.asarray(true) - np.mean(true) + 1000
    assert np.abs(ratings - centred).max() < 40
    low, high = leaderboard.bradley_terry_bootstrap(
        first=first, second=second, score=score, n_models=4, bootstrap=200, seed=0
    )
    assert np.all(low <= ratings) and np.all(ratings <= high)
    covered = (low <= centred) & (centred <= high)
    assert covered.sum() >= 3  # 95% intervals: one miss in four is allowed
    assert np.all(high - low < 80)


def test_bootstrap_is_reproducible():
    first, second, score = _simulate([1100, 1000, 950], 300)
    a = leaderboard.bradley_terry_bootstrap(first=first, second=second, score=score, n_models=3)
    b = leaderboard.bradley_terry_bootstrap(first=first, second=second, score=score, n_models=3)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_a_clean_sweep_still_gets_a_finite_rating():
    first, second = np.zeros(10, dtype=int), np.ones(10, dtype=int)
    ratings = leaderboard.bradley_terry_fit(
        first=first, second=second, score=np.ones(10), n_models=2
    )
    assert np.all(np.isfinite(ratings)) and ratings[0] > ratings[1]


@pytest.mark.django_db
def test_leaderboard_from_stored_judgments():
    owner = user_build("owner")
    project = project_build(owner=owner, overlap=1)
    judge = user_build("judge")
    member_add(project=project, user=judge)
    new, old = (ModelVersion.objects.create(name=n, source=f"/m/{n}") for n in ("new", "old"))
    tasks = pairwise_tasks_build(project=project, n=7, model_versions=(new, old))
    same = pairwise_tasks_build(project=project, n=1, model_versions=(new, new), start=100)
    verdicts = ["a", "a", "a", "b", "tie", "both_bad", "a"]  # response A is the new model's
    for task, choice in zip(tasks + same, verdicts + ["a"], strict=True):
        Judgment.objects.create(task=task, annotator=judge, choice=choice, shown_left="a")

    rows = leaderboard.leaderboard_get(project=project, bootstrap=50)

    assert [row.name for row in rows] == ["new", "old"]
    top = rows[0]
    assert (top.rank, top.wins, top.losses, top.ties, top.both_bad, top.count) == (1, 4, 1, 1, 1, 6)
    assert (rows[1].wins, rows[1].losses) == (1, 4)
    assert top.ci_low <= top.rating <= top.ci_high
    gap = 400 * math.log10((4.5 + 0.05) / (1.5 + 0.05))  # ties as halves, prior 0.1
    assert top.rating - rows[1].rating == pytest.approx(gap, abs=0.2)
