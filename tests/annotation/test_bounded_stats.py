"""Bounded statistics (issue 14, finding 6): a convergent Bradley–Terry fit, bootstrap
intervals capped and cached per data version, Cohen's kappa pairs capped."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from django.test import Client
from rest_framework.test import APIClient

from annotation import tasks
from annotation.models import Judgment
from annotation.selectors import leaderboard, quality
from annotation.selectors.agreement import PAIRWISE_CATEGORIES, Verdict
from annotation.services import leaderboard as leaderboard_services
from generation.models import ModelVersion
from tests.annotation import member_add, pairwise_tasks_build, project_build, user_build


def version_chain(n_versions: int = 10, games: int = 200, newer_wins: float = 0.98, seed=0):
    """Each version judged only against its parent, and almost always preferred: the
    shape of iterative rounds. Hunter's MM ran to its 10,000-iteration cap on it."""
    rng = np.random.default_rng(seed)
    first = np.repeat(np.arange(1, n_versions), games)
    second = first - 1
    draw = rng.random(len(first))
    score = np.where(draw < newer_wins, 1.0, np.where(draw < newer_wins + 0.02, 0.5, 0.0))
    return first, second, score


def test_the_fit_converges_on_a_chain_of_ten_versions_well_before_the_cap():
    first, second, score = version_chain()
    fit = leaderboard.bradley_terry_solve(first=first, second=second, score=score, n_models=10)
    assert fit.converged and fit.iterations <= 20 < leaderboard.MAX_ITER
    assert list(np.argsort(fit.ratings)) == list(range(10))  # each version above its parent
    # The maximum-likelihood condition: each model's expected points equal its points.
    theta = (fit.ratings - 1000) * np.log(10) / 400
    wins = np.zeros((10, 10))
    np.add.at(wins, (first, second), score)
    np.add.at(wins, (second, first), 1 - score)
    wins += 0.1 / 2 * (1 - np.eye(10))
    p = 1 / (1 + np.exp(theta[None, :] - theta[:, None]))
    expected = ((wins + wins.T) * p).sum(axis=1)
    assert np.abs(expected - wins.sum(axis=1)).max() < 1e-6


def test_the_fit_reports_a_diverging_case_instead_of_looping():
    """No prior and a clean sweep: no finite maximum exists; the cap ends it."""
    fit = leaderboard.bradley_terry_solve(
        first=np.zeros(5, dtype=int), second=np.ones(5, dtype=int), score=np.ones(5),
        n_models=2, prior=0.0, max_iter=30,
    )
    assert not fit.converged and fit.iterations == 30


@pytest.fixture
def board(db):
    owner = user_build("lb-owner")
    project = project_build(owner=owner, slug="lb", overlap=1)
    judge = user_build("lb-judge")
    member_add(project=project, user=judge)
    new, old = (ModelVersion.objects.create(name=n, source=f"/m/{n}") for n in ("new", "old"))
    tasks_ = pairwise_tasks_build(project=project, n=12, model_versions=(new, old))
    for task, choice in zip(tasks_[:10], "aaaaaabbta", strict=True):
        choice = {"t": "tie"}.get(choice, choice)
        Judgment.objects.create(task=task, annotator=judge, choice=choice, shown_left="a")
    client = APIClient()
    client.force_authenticate(owner)
    return project, owner, judge, tasks_, client


@pytest.fixture
def sent(monkeypatch):
    """Refresh messages, sent at once (the test's transaction never commits)."""
    calls = []
    monkeypatch.setattr(
        tasks.leaderboard_refresh, "apply_async", lambda kwargs: calls.append(kwargs)
    )
    monkeypatch.setattr(leaderboard_services, "transaction", SimpleNamespace(on_commit=_now))
    return calls


def _now(send) -> None:
    send()


def test_bootstrap_over_the_cap_is_a_400_naming_the_setting(board, settings, sent):
    _, _, _, _, client = board
    settings.PREFLOOP_LEADERBOARD_MAX_BOOTSTRAP = 100
    response = client.get("/api/projects/lb/leaderboard?bootstrap=2000")
    assert response.status_code == 400
    message = response.json()["bootstrap"][0]
    assert "limit of 100" in message and "PREFLOOP_LEADERBOARD_MAX_BOOTSTRAP" in message
    assert sent == []


def test_intervals_are_computed_once_per_data_version_and_served_from_the_cache(board, sent):
    project, _, judge, tasks_, client = board
    first = client.get("/api/projects/lb/leaderboard?bootstrap=50")
    assert first.status_code == 200 and first["X-Prefloop-Intervals"] == "pending"
    rows = first.json()
    assert [r["name"] for r in rows] == ["new", "old"]
    assert all(r["intervals"] == "pending" and r["ci_low"] == r["rating"] for r in rows)
    again = client.get("/api/projects/lb/leaderboard?bootstrap=50")
    assert again["X-Prefloop-Intervals"] == "pending"
    assert sent == [{"project_id": project.pk, "bootstrap": 50, "seed": 0}]  # once

    tasks.leaderboard_refresh.run(project_id=project.pk, bootstrap=50, seed=0)  # the worker
    cached = client.get("/api/projects/lb/leaderboard?bootstrap=50")
    assert cached["X-Prefloop-Intervals"] == "current"
    top = cached.json()[0]
    assert top["ci_low"] < top["rating"] < top["ci_high"] and top["intervals"] == "current"
    assert len(sent) == 1

    Judgment.objects.create(task=tasks_[11], annotator=judge, choice="b", shown_left="a")
    stale = client.get("/api/projects/lb/leaderboard?bootstrap=50")
    assert stale["X-Prefloop-Intervals"] == "stale"
    newest = stale.json()[0]
    assert newest["count"] == top["count"] + 1 and newest["rating"] < top["rating"]
    assert newest["ci_low"] <= newest["rating"] <= newest["ci_high"]
    assert len(sent) == 2 and sent[1]["bootstrap"] == 50


def test_the_leaderboard_page_reads_the_cache_and_says_when_intervals_are_pending(board, sent):
    project, owner, _, _, _ = board
    client = Client()
    client.force_login(owner)
    page = client.get("/p/lb/leaderboard/").content.decode()
    assert "Intervals are being computed" in page and len(sent) == 1
    leaderboard_services.leaderboard_refresh(project=project, bootstrap=200, seed=0)
    page = client.get("/p/lb/leaderboard/").content.decode()
    assert "being computed" not in page and "new" in page and len(sent) == 1


def _verdicts(n_annotators: int, n_tasks: int = 6) -> list[Verdict]:
    return [
        Verdict(t, a, f"ann{a:03d}", "a" if (a + t) % 3 else "b", 1, "a", None, False, "")
        for a in range(n_annotators)
        for t in range(n_tasks - (a % 2))  # odd annotators have one verdict fewer
    ]


def test_kappa_pairs_are_capped_past_the_setting(settings):
    settings.PREFLOOP_AGREEMENT_MAX_PAIR_ANNOTATORS = 10
    small = quality.kind_agreement(verdicts=_verdicts(10), categories=PAIRWISE_CATEGORIES)
    assert len(small.pairs) == 45 and small.pairs_annotators_limit is None
    big = quality.kind_agreement(verdicts=_verdicts(400), categories=PAIRWISE_CATEGORIES)
    assert big.pairs_annotators_limit == 10 and len(big.pairs) == 45
    named = {p.annotator_a for p in big.pairs} | {p.annotator_b for p in big.pairs}
    assert named == {f"ann{a:03d}" for a in range(0, 20, 2)}  # the ten with most verdicts
    assert len(big.annotators) == 400  # consensus agreement still covers everyone
