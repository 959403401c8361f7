"""Chart geometry (``frontend.charts``)."""

from __future__ import annotations

from annotation.selectors.quality import PositionBias
from frontend import charts


def test_line_chart_spans_the_plot_area():
    chart = charts.line_chart(title="loss", series={"train": [(1, 0.7), (2, 0.5), (3, 0.3)]})
    xs = [x for x, _ in chart.lines[0].dots]
    ys = [y for _, y in chart.lines[0].dots]
    assert xs[0] == chart.frame.left and xs[-1] == chart.frame.width - chart.frame.right
    assert ys[0] == chart.frame.top and ys[-1] == chart.frame.plot_bottom  # falling loss
    assert charts.line_chart(title="x", series={"train": []}) is None


def test_bias_bars_grow_from_the_middle_and_flag_significant_bias():
    rows = [PositionBias(1, "fair", 20, 10, 0.5, 1.0), PositionBias(2, "lefty", 20, 20, 1.0, 2e-6)]
    chart = charts.position_bias_chart(rows)
    fair, lefty = chart.bars
    assert not fair.flagged and lefty.flagged
    assert lefty.x == chart.center_x and lefty.x + lefty.width == chart.frame.width - 230
    assert fair.ci_x1 < chart.center_x < fair.ci_x2


def test_wilson_interval():
    low, high = charts.wilson_interval(5, 10)
    assert round(low, 3) == 0.237 and round(high, 3) == 0.763
