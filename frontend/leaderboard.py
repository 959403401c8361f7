"""What the leaderboard page shows, honestly: a model with fewer than
``PREFLOOP_LEADERBOARD_MIN_GAMES`` games gets no rank (it is marked provisional and
listed after the ranked ones), and an interval of zero width (one game, or intervals
not computed yet) is never drawn or printed as if it were one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class BoardRow:
    rank: int | None  # None: provisional
    name: str
    rating: float
    ci_low: float
    ci_high: float
    has_interval: bool
    wins: int
    losses: int
    ties: int
    both_bad: int
    count: int

    @property
    def provisional(self) -> bool:
        return self.rank is None


def board_rows(rows: Sequence, *, min_games: int | None = None) -> list[BoardRow]:
    """``LeaderboardRow``s (best first) as the page shows them: ranked ones first,
    numbered without gaps, then the provisional ones by rating."""
    least = settings.PREFLOOP_LEADERBOARD_MIN_GAMES if min_games is None else min_games
    ranked = [r for r in rows if r.count >= least]
    provisional = [r for r in rows if r.count < least]
    out = [_row(r, rank) for rank, r in enumerate(ranked, start=1)]
    return out + [_row(r, None) for r in provisional]


def _row(row, rank: int | None) -> BoardRow:
    return BoardRow(
        rank=rank, name=row.name, rating=row.rating, ci_low=row.ci_low, ci_high=row.ci_high,
        has_interval=row.ci_high > row.ci_low, wins=row.wins, losses=row.losses,
        ties=row.ties, both_bad=row.both_bad, count=row.count,
    )
