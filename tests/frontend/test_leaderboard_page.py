"""The leaderboard as the page shows it: no rank below the games threshold (marked
provisional), no zero-width interval, full model names."""

from __future__ import annotations

import pytest
from django.test import Client

from annotation.selectors.leaderboard import LeaderboardRow
from frontend import charts
from frontend.leaderboard import board_rows
from generation.models import ModelVersion
from tests.frontend.owner_data import owner_project_make

LONG = "org/a-very-long-model-name-that-used-to-be-cut-short-dpo-round-12"


def _row(name: str, rating: float, count: int, low: float, high: float) -> LeaderboardRow:
    return LeaderboardRow(rank=0, model_version_id=hash(name) % 1000, name=name, rating=rating,
                          ci_low=low, ci_high=high, wins=count, losses=0, ties=0, both_bad=0,
                          count=count)


def test_models_with_too_few_games_get_no_rank():
    rows = [_row("lucky", 1300, 1, 1300, 1300), _row("a", 1100, 40, 1050, 1150),
            _row("b", 900, 40, 850, 950)]
    board = board_rows(rows, min_games=10)
    assert [(r.name, r.rank) for r in board] == [("a", 1), ("b", 2), ("lucky", None)]
    lucky = board[-1]
    assert lucky.provisional and not lucky.has_interval
    chart = charts.rating_chart(board)
    drawn = {item.label: item for item in chart.rows}
    assert not drawn["lucky"].has_interval and "(" not in drawn["lucky"].text
    assert drawn["lucky"].provisional and "provisional" in drawn["lucky"].text
    assert drawn["a"].text == "1100 (1050–1150)"


@pytest.mark.django_db
def test_page_marks_provisional_models_and_shows_full_names(settings):
    data = owner_project_make("board")
    ModelVersion.objects.filter(name="board-dpo-r1").update(name=LONG)
    settings.PREFLOOP_LEADERBOARD_MIN_GAMES = 10**6
    client = Client()
    client.force_login(data.owner)
    html = client.get("/p/board/leaderboard/").content.decode()
    assert html.count('class="provisional-row"') >= 2 and "<tr><td>" not in html  # no rank
    assert f">{LONG}</th>" in html
    assert f"<title>{LONG}</title>" in html  # the chart's label keeps the full name as a tooltip
    assert 'class="whisker"' not in html
    settings.PREFLOOP_LEADERBOARD_MIN_GAMES = 1
    html = client.get("/p/board/leaderboard/").content.decode()
    assert "provisional-row" not in html and "<tr><td>1</td>" in html
