"""Bradley–Terry leaderboard of model versions from pairwise judgments.

Model: P(i beats j) = p_i / (p_i + p_j), fitted by maximum likelihood with Newton's
method on log p (``bradley_terry_solve``; the tolerance is ``TOLERANCE``).
Ratings are on an Elo-like scale, ``1000 + 400 * log10(p_i)`` with the
geometric mean of ``p`` fixed at 1, so a 400-point gap means 10:1 odds and the
average model sits at 1000.

Counting rules:
- a tie is half a win for each side;
- **both-bad is ignored** (it says both responses failed, not which is better);
- judgments comparing two responses of the same model version, or a response
  with no model version, are ignored.
- ``prior`` adds that many virtual tie games between every two models, so a
  model that won (or lost) everything still gets a finite rating; it pulls
  ratings slightly towards 1000.

Confidence intervals: percentile bootstrap, resampling judgments with
replacement ``bootstrap`` times from a fixed ``seed`` (reproducible numbers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db.models import F

from annotation.models import Judgment, Project, Task
from annotation.selectors.agreement import DEFAULT_SOURCES

SCORE = {"a": 1.0, "b": 0.0, "tie": 0.5}
# Newton's method stops when no log-strength moves by more than TOLERANCE (1e-9 in
# log-odds, about 2e-7 rating points); it usually needs fewer than 10 iterations.
TOLERANCE = 1e-9
MAX_ITER = 100


@dataclass(frozen=True)
class LeaderboardRow:
    rank: int
    model_version_id: int
    name: str
    rating: float
    ci_low: float
    ci_high: float
    wins: int
    losses: int
    ties: int
    both_bad: int
    count: int  # wins + losses + ties: the games the fit used


@dataclass(frozen=True)
class BradleyTerryFit:
    ratings: np.ndarray  # (n_models,), Elo scale
    iterations: int
    converged: bool


def bradley_terry_fit(
    *,
    first: np.ndarray,
    second: np.ndarray,
    score: np.ndarray,
    n_models: int,
    prior: float = 0.1,
    max_iter: int = MAX_ITER,
    tol: float = TOLERANCE,
) -> np.ndarray:
    """Elo-scale ratings from games ``first[k]`` vs ``second[k]``, where ``score[k]``
    is 1 (first won), 0 (second won) or 0.5 (tie). Returns shape (n_models,)."""
    return bradley_terry_solve(
        first=first, second=second, score=score, n_models=n_models, prior=prior,
        max_iter=max_iter, tol=tol,
    ).ratings


def bradley_terry_solve(
    *,
    first: np.ndarray,
    second: np.ndarray,
    score: np.ndarray,
    n_models: int,
    prior: float = 0.1,
    max_iter: int = MAX_ITER,
    tol: float = TOLERANCE,
) -> BradleyTerryFit:
    """Maximum likelihood by Newton's method on ``theta = log p`` (mean fixed at 0).

    The log-likelihood is concave, so each Newton step (halved until the likelihood
    does not fall) converges quadratically: a few iterations where Hunter's MM
    algorithm crept along a chain of versions to its 10,000-iteration cap. It stops
    when no rating moves by more than ``tol`` (in log-odds; see ``TOLERANCE``)."""
    wins = np.zeros((n_models, n_models))  # wins[i, j]: points i scored against j
    np.add.at(wins, (first, second), score)
    np.add.at(wins, (second, first), 1.0 - score)
    wins += prior / 2 * (1.0 - np.eye(n_models))
    games = wins + wins.T  # (M, M), symmetric
    theta = np.zeros(n_models)
    likelihood = _log_likelihood(theta, wins)
    for iteration in range(1, max_iter + 1):
        step = _newton_step(theta, wins, games)
        scale = 1.0
        while scale > 1e-6:
            candidate = theta + scale * step
            value = _log_likelihood(candidate, wins)
            if value >= likelihood - 1e-12:
                break
            scale /= 2
        theta, likelihood = candidate - candidate.mean(), value
        if np.max(np.abs(scale * step)) < tol:
            return BradleyTerryFit(_elo(theta), iteration, True)
    return BradleyTerryFit(_elo(theta), max_iter, False)


def _newton_step(theta: np.ndarray, wins: np.ndarray, games: np.ndarray) -> np.ndarray:
    p = 1.0 / (1.0 + np.exp(theta[None, :] - theta[:, None]))  # p[i, j] = P(i beats j)
    gradient = wins.sum(axis=1) - (games * p).sum(axis=1)  # (M,)
    curvature = games * p * p.T  # (M, M): n_ij p_ij (1 - p_ij)
    information = np.diag(curvature.sum(axis=1)) - curvature  # minus the Hessian
    n = len(theta)
    # The ratings are fixed only up to a constant: the ones-matrix pins the mean.
    return np.linalg.lstsq(information + np.ones((n, n)) / n, gradient, rcond=None)[0]


def _log_likelihood(theta: np.ndarray, wins: np.ndarray) -> float:
    gap = theta[:, None] - theta[None, :]
    return float(-(wins * np.logaddexp(0.0, -gap)).sum())  # sum w_ij log sigmoid(gap_ij)


def _elo(theta: np.ndarray) -> np.ndarray:
    return 1000.0 + 400.0 * theta / np.log(10.0)


def bradley_terry_bootstrap(
    *,
    first: np.ndarray,
    second: np.ndarray,
    score: np.ndarray,
    n_models: int,
    bootstrap: int = 200,
    seed: int = 0,
    prior: float = 0.1,
) -> tuple[np.ndarray, np.ndarray]:
    """95% percentile intervals: (low, high), each of shape (n_models,)."""
    rng = np.random.default_rng(seed)
    n = len(score)
    samples = np.empty((bootstrap, n_models))
    for b in range(bootstrap):
        idx = rng.integers(0, n, size=n)
        samples[b] = bradley_terry_fit(
            first=first[idx], second=second[idx], score=score[idx], n_models=n_models, prior=prior
        )
    low, high = np.percentile(samples, [2.5, 97.5], axis=0)
    return low, high


def _games(*, project: Project, sources: Sequence[str]) -> list[tuple]:
    return list(
        Judgment.objects.filter(
            task__project=project,
            task__kind=Task.Kind.PAIRWISE,
            source__in=sources,
            task__response_a__model_version__isnull=False,
            task__response_b__model_version__isnull=False,
        )
        .exclude(task__response_a__model_version=F("task__response_b__model_version"))
        .values_list(
            "choice",
            "task__response_a__model_version_id",
            "task__response_a__model_version__name",
            "task__response_b__model_version_id",
            "task__response_b__model_version__name",
        )
    )


def _tally(
    rows: list[tuple], index: dict[int, int]
) -> tuple[list[tuple[int, int, float]], dict[int, dict[str, int]]]:
    """Games for the fit (both-bad left out) and each model's win/loss/tie counts."""
    tally = {mv: {"wins": 0, "losses": 0, "ties": 0, "both_bad": 0} for mv in index}
    games = []
    for choice, a, _, b, _ in rows:
        if choice == Judgment.Choice.BOTH_BAD:
            tally[a]["both_bad"] += 1
            tally[b]["both_bad"] += 1
            continue
        games.append((index[a], index[b], SCORE[choice]))
        if choice == Judgment.Choice.TIE:
            tally[a]["ties"] += 1
            tally[b]["ties"] += 1
        else:
            winner, loser = (a, b) if choice == Judgment.Choice.A else (b, a)
            tally[winner]["wins"] += 1
            tally[loser]["losses"] += 1
    return games, tally


def leaderboard_get(
    *,
    project: Project,
    sources: Sequence[str] = DEFAULT_SOURCES,
    bootstrap: int = 200,
    seed: int = 0,
    prior: float = 0.1,
) -> list[LeaderboardRow]:
    """Model versions ranked by Bradley–Terry rating, best first (one SQL query).

    A model seen only in both-bad judgments has no games and gets no row. ``bootstrap``
    is capped at ``PREFLOOP_LEADERBOARD_MAX_BOOTSTRAP``; 0 skips the intervals (each
    row's interval is then its rating). Pages and the API read the cached leaderboard
    (``annotation.services.leaderboard``) instead of calling this per request."""
    rows = _games(project=project, sources=sources)
    names = {a: an for _, a, an, _, _ in rows} | {b: bn for _, _, _, b, bn in rows}
    ids = sorted(names)
    games, tally = _tally(rows, {mv: k for k, mv in enumerate(ids)})
    if not games:
        return []
    first, second, score = (np.array(column) for column in zip(*games, strict=True))
    args = {"first": first, "second": second, "score": score, "n_models": len(ids), "prior": prior}
    rating = bradley_terry_fit(**args)
    bootstrap = min(bootstrap, settings.PREFLOOP_LEADERBOARD_MAX_BOOTSTRAP)
    if bootstrap > 0:
        low, high = bradley_terry_bootstrap(**args, bootstrap=bootstrap, seed=seed)
    else:  # ratings only: the intervals come from the cache (services.leaderboard)
        low, high = rating, rating
    counts = {mv: t["wins"] + t["losses"] + t["ties"] for mv, t in tally.items()}
    order = [k for k in sorted(range(len(ids)), key=lambda k: -rating[k]) if counts[ids[k]]]
    return [
        LeaderboardRow(
            rank=rank,
            model_version_id=ids[k],
            name=names[ids[k]],
            rating=round(float(rating[k]), 1),
            ci_low=round(float(low[k]), 1),
            ci_high=round(float(high[k]), 1),
            count=counts[ids[k]],
            **tally[ids[k]],
        )
        for rank, k in enumerate(order, start=1)
    ]
