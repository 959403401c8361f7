"""A picture of a project's rounds: accuracy, win rate, KL and length, one point per round.

Drawn with matplotlib's Agg backend (no display needed), as PNG or SVG bytes, for the
rounds API, the owner's rounds page and ``run_round --plot``.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402 the backend is chosen first

from annotation.models import Project  # noqa: E402
from training.rounds import selectors  # noqa: E402
from training.rounds.selectors import TableRow  # noqa: E402

FORMATS = ("png", "svg")


COLORS = ("tab:green", "tab:blue", "tab:purple", "tab:orange", "tab:red", "tab:brown")


def chains(rows: list[TableRow]) -> list[list[TableRow]]:
    """Rounds grouped into chains: a round whose policy is an earlier round's new version
    continues that round's chain; any other round (e.g. from the base model again)
    starts a new one."""
    found: list[list[TableRow]] = []
    by_output: dict[str, list[TableRow]] = {}
    for row in rows:
        chain = by_output.get(row.policy)
        if chain is None:
            chain = []
            found.append(chain)
        chain.append(row)
        if row.new_version:
            by_output[row.new_version] = chain
    return found


def rounds_plot(*, rows: list[TableRow], title: str = "", fmt: str = "png") -> bytes:
    """Four panels over the rounds, one line per chain of rounds (``chains``); the point
    before a chain's first round is its starting model where that was measured."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}")
    fig = Figure(figsize=(10, 6.5), layout="constrained")
    axes = fig.subplots(2, 2)
    groups = chains(rows)
    for k, chain in enumerate(groups):
        color = COLORS[k % len(COLORS)]
        label = f"from {chain[0].policy}" if len(groups) > 1 else None
        _accuracy(axes[0][0], chain, color=color, label=label)
        _win_rate(axes[0][1], chain, color=color)
        _series(axes[1][0], chain, [r.kl for r in chain], color=color)
        _series(axes[1][1], chain, [r.mean_tokens for r in chain], color=color,
                start=chain[0].mean_tokens_before)
    titles = ("held-out accuracy (%)", "win rate vs previous version (%, 95% CI)",
              "KL to reference (nats / answer)", "mean answer length (tokens)")
    for ax, text in zip(axes.flat, titles, strict=True):
        ax.set_title(text)
    axes[0][0].set_ylim(0, 105)
    axes[0][1].set_ylim(0, 100)
    axes[0][1].axhline(50, color="grey", linestyle="--", linewidth=1)
    if len(groups) > 1:
        axes[0][0].legend(fontsize=7, loc="lower right")
    for ax in axes.flat:
        ax.set_xlabel("round")
        ax.grid(alpha=0.3)
        ax.set_xticks(range(0, (rows[-1].index if rows else 0) + 1))
    fig.suptitle(title or "Rounds")
    out = io.BytesIO()
    fig.savefig(out, format=fmt, dpi=110)
    return out.getvalue()


def rounds_plot_write(*, project: Project, path: Path) -> Path:
    fmt = "svg" if path.suffix.lower() == ".svg" else "png"
    data = rounds_plot(rows=selectors.round_table(project=project), title=project.slug, fmt=fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _accuracy(ax, rows: list[TableRow], *, color: str, label: str | None) -> None:
    points = [(r.index, r.accuracy) for r in rows if r.accuracy is not None]
    if rows and rows[0].accuracy_before is not None:
        points.insert(0, (rows[0].index - 1, rows[0].accuracy_before))
    if points:
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, [100 * y for y in ys], marker="o", color=color, label=label)
        for x, y in points:
            ax.annotate(f"{100 * y:.0f}%", (x, 100 * y), textcoords="offset points",
                        xytext=(0, 6), ha="center", fontsize=8)


def _win_rate(ax, rows: list[TableRow], *, color: str) -> None:
    kept = [r for r in rows if r.win_rate is not None]
    if kept:
        xs = [r.index for r in kept]
        ys = [100 * r.win_rate for r in kept]
        low = [100 * (r.win_rate - (r.win_low if r.win_low is not None else r.win_rate))
               for r in kept]
        high = [100 * ((r.win_high if r.win_high is not None else r.win_rate) - r.win_rate)
                for r in kept]
        ax.errorbar(xs, ys, yerr=[low, high], marker="o", capsize=4, color=color)


def _series(
    ax, rows: list[TableRow], values: list[float | None], *, color: str,
    start: float | None = None,
) -> None:
    points = [(r.index, v) for r, v in zip(rows, values, strict=True) if v is not None]
    if start is not None:
        points.insert(0, (rows[0].index - 1, start))
    if points:
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, marker="o", color=color)
