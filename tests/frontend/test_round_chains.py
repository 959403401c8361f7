"""The rounds plot draws each chain of rounds as its own line: a round started from the
base model again begins a new chain instead of joining the last one's line."""

from __future__ import annotations

from training.rounds import plot
from training.rounds.selectors import TableRow

SECONDS = {"generate": 1.0}


def _row(index: int, policy: str, new: str, before: float, after: float) -> TableRow:
    return TableRow(index, policy, new, "succeeded", before, after, 0.6, 0.5, 0.7, 0.1, 11.0,
                    11.0, SECONDS)


ROWS = [
    _row(1, "base (v0)", "a-r1 (v1)", 0.40, 0.70), _row(2, "a-r1 (v1)", "a-r2 (v2)", 0.70, 0.85),
    _row(3, "base (v0)", "b-r3 (v1)", 0.40, 0.55), _row(4, "b-r3 (v1)", "", 0.55, None),
]


def test_rounds_group_into_chains_by_their_policy():
    assert [[r.index for r in chain] for chain in plot.chains(ROWS)] == [[1, 2], [3, 4]]
    assert [[r.index for r in c] for c in plot.chains(ROWS[:2])] == [[1, 2]]
    assert plot.chains([]) == []


def test_each_chain_is_its_own_line_with_a_legend():
    svg = plot.rounds_plot(rows=ROWS, title="chains", fmt="svg").decode()
    assert svg.count("from base (v0)") == 2  # one legend entry per chain
    single = plot.rounds_plot(rows=ROWS[:2], title="one", fmt="svg").decode()
    assert "from base" not in single  # one chain: no legend needed
