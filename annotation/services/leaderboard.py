"""The leaderboard's bootstrap intervals, computed once per data version and cached.

Ratings are cheap (one query and a Newton fit of a few milliseconds); the bootstrap
intervals are not (``bootstrap`` fits). So ``leaderboard_cached`` serves what the cache
holds for the project's current *data version* (the number of counted judgments and the
newest one's id); when the data changed it answers at once with fresh ratings and the
previous intervals (``stale``) or, the first time, point intervals (``pending``), and
enqueues one ``annotation.tasks.leaderboard_refresh`` per data version (stale while
recompute). The cache is Django's (``CACHES``: a file cache by default, Redis in
production), shared by web processes and workers.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, Max
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from annotation.models import Judgment, Project, Task
from annotation.selectors import leaderboard as selectors
from annotation.selectors.leaderboard import LeaderboardRow

logger = logging.getLogger(__name__)
CURRENT, STALE, PENDING = "current", "stale", "pending"
CACHE_SECONDS = 30 * 24 * 3600
PENDING_SECONDS = 600  # a lost refresh message is sent again after this long


@dataclass(frozen=True)
class CachedLeaderboard:
    rows: list[LeaderboardRow]
    intervals: str  # current / stale / pending
    data_version: str
    computed_at: str | None  # when the intervals shown were computed (ISO 8601)


def bootstrap_limit_check(bootstrap: int) -> None:
    limit = settings.PREFLOOP_LEADERBOARD_MAX_BOOTSTRAP
    if bootstrap > limit:
        raise ValueError(
            f"bootstrap={bootstrap:,} is over the limit of {limit:,} resamples "
            "(PREFLOOP_LEADERBOARD_MAX_BOOTSTRAP)"
        )


def data_version(*, project: Project, sources: Sequence[str] = selectors.DEFAULT_SOURCES) -> str:
    """Changes whenever a judgment the leaderboard counts is added or removed."""
    found = Judgment.objects.filter(
        task__project=project, task__kind=Task.Kind.PAIRWISE, source__in=sources
    ).aggregate(n=Count("id"), newest=Max("id"))
    return f"{found['n']}:{found['newest'] or 0}"


def leaderboard_cached(
    *, project: Project, bootstrap: int = 200, seed: int = 0
) -> CachedLeaderboard:
    """The leaderboard from the cache, refreshed in the background when the data changed."""
    bootstrap_limit_check(bootstrap)
    version = data_version(project=project)
    entry = cache.get(_key(project, bootstrap, seed))
    if entry is not None and entry["version"] == version:
        rows = [LeaderboardRow(**row) for row in entry["rows"]]
        return CachedLeaderboard(rows, CURRENT, version, entry["computed_at"])
    _refresh_enqueue(project, bootstrap, seed, version)
    rows = selectors.leaderboard_get(project=project, bootstrap=0, seed=seed)
    if entry is None:
        return CachedLeaderboard(rows, PENDING, version, None)
    old = {row["model_version_id"]: row for row in entry["rows"]}
    rows = [_with_old_interval(row, old.get(row.model_version_id)) for row in rows]
    return CachedLeaderboard(rows, STALE, version, entry["computed_at"])


def leaderboard_refresh(*, project: Project, bootstrap: int, seed: int) -> str:
    """Compute the full leaderboard (with intervals) and cache it under its data version."""
    version = data_version(project=project)  # read first: later data makes it stale at once
    key = _key(project, bootstrap, seed)
    entry = cache.get(key)
    if entry is not None and entry["version"] == version:
        return version
    rows = selectors.leaderboard_get(project=project, bootstrap=bootstrap, seed=seed)
    cache.set(
        key,
        {
            "version": version,
            "rows": [dataclasses.asdict(row) for row in rows],
            "computed_at": timezone.now().isoformat(),
        },
        CACHE_SECONDS,
    )
    return version


def _with_old_interval(row: LeaderboardRow, old: dict | None) -> LeaderboardRow:
    if old is None:
        return row
    low, high = min(old["ci_low"], row.rating), max(old["ci_high"], row.rating)
    return dataclasses.replace(row, ci_low=low, ci_high=high)


def _key(project: Project, bootstrap: int, seed: int) -> str:
    """Per project, resample count and seed; the creation time keeps a new database (whose
    ids start again) from reading an old one's entries."""
    born = int(project.created_at.timestamp() * 1e6)
    return f"prefloop:leaderboard:{project.pk}:{born}:{bootstrap}:{seed}"


def _refresh_enqueue(project: Project, bootstrap: int, seed: int, version: str) -> None:
    """One refresh per data version (``cache.add`` is atomic); the page never waits on it."""
    marker = f"{_key(project, bootstrap, seed)}:pending:{version}"
    project_id = project.pk
    if not cache.add(marker, 1, PENDING_SECONDS):
        return
    from annotation.tasks import leaderboard_refresh  # tasks import this module

    def send() -> None:
        try:
            leaderboard_refresh.apply_async(
                kwargs={"project_id": project_id, "bootstrap": bootstrap, "seed": seed}
            )
        except (BrokerError, OSError) as exc:  # the page still shows ratings
            cache.delete(marker)
            logger.warning("could not enqueue the leaderboard refresh: %s", exc)

    transaction.on_commit(send)
