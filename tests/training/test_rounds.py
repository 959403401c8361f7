"""Rounds without a model: settings, the statistics of evaluation, the table and the plot."""

from __future__ import annotations

import pytest

from prefloop.exceptions import ApplicationError
from training.rounds import demo, plot
from training.rounds.config import DEMO_SCORER, RoundSettings
from training.rounds.evaluation import bootstrap_interval, wilson_interval, win_rate_summary
from training.rounds.selectors import TableRow


def test_settings_defaults_follow_the_demo_recipe():
    s = RoundSettings()
    assert (s.algorithm, s.labelling, s.reference, s.samples, s.temperature) == (
        "dpo", "programmatic", "previous", 4, 1.0,
    )
    assert s.judge_spec == f"programmatic:{DEMO_SCORER}"
    assert s.eval_judge_spec == s.judge_spec
    assert s.sampling(2)["seed"] == 2  # a fresh seed per round
    assert s.evaluation()["seed"] == RoundSettings().evaluation()["seed"]  # the same every round
    assert s.kind_for(binary_enabled=True) == "pairwise"
    kto = RoundSettings(algorithm="kto")
    assert kto.kind_for(binary_enabled=True) == "thumbs"
    assert kto.kind_for(binary_enabled=False) == "pairwise"
    assert kto.pairing_for("thumbs") == "none" and s.pairing_for("pairwise") == "all"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"algorithm": "ppo"}, "algorithm must be one of"),
        ({"labelling": "crowd"}, "labelling must be one of"),
        ({"bogus": 1}, "unknown round setting"),
        ({"labelling": "programmatic", "judge": "constitutional"}, "programmatic:"),
        ({"labelling": "human", "partial_policy": "ai_fill"}, "ai_fill needs a judge"),
        ({"label_kind": "thumbs"}, "thumbs labels train KTO only"),
        ({"rounds": 0}, "rounds must be an integer"),
        ({"min_coverage": 0}, "min_coverage"),
        ({"samples": True}, "samples must be an integer"),
    ],
)
def test_settings_refuse_what_cannot_work(data, message):
    with pytest.raises(ApplicationError, match=message):
        RoundSettings.from_dict(data)


def test_human_rounds_need_no_judge_but_evaluate_with_one_if_given():
    human = RoundSettings(labelling="human")
    assert human.judge_spec == "" and human.eval_judge_spec == ""
    judged = RoundSettings(labelling="human", eval_judge="programmatic:x.y")
    assert judged.eval_judge_spec == "programmatic:x.y"


def test_wilson_interval_matches_the_textbook_value():
    # 8 of 10: p = 0.8, z = 1.96 -> centre 0.7167, half-width 0.2266 (Wilson 1927).
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(0, 5)
    assert low == 0.0 and 0.4 < high < 0.5


def test_bootstrap_resamples_prompts_not_samples():
    # Every prompt has the same mean: any resample of prompts gives exactly that mean.
    assert bootstrap_interval([[1.0, 0.0], [0.5, 0.5]], resamples=200, seed=1) == (0.5, 0.5)
    # Two prompts that disagree completely: the interval spans both.
    low, high = bootstrap_interval([[1.0, 1.0], [0.0, 0.0]], resamples=400, seed=1)
    assert low == 0.0 and high == 1.0
    assert bootstrap_interval([], resamples=10) is None


def test_win_rate_counts_ties_as_half():
    summary = win_rate_summary({1: [1.0, 0.5], 2: [0.0, 1.0]}, resamples=100, seed=0)
    assert summary["value"] == pytest.approx(0.625)
    assert (summary["wins"], summary["losses"], summary["ties"], summary["pairs"]) == (2, 1, 1, 4)
    assert summary["prompts"] == 2
    low, high = summary["ci_wilson"]
    assert low < 0.625 < high


def _rows() -> list[TableRow]:
    seconds = {"generate": 7.0, "label": 5.0, "wait": 0.0, "export": 0.2, "train": 21.0,
               "evaluate": 13.0}
    return [
        TableRow(1, "demo-base (v0)", "loop-r1 (v1)", "succeeded", 0.438, 0.731, 0.647, 0.62,
                 0.67, 0.246, 11.3, 11.4, seconds),
        TableRow(2, "loop-r1 (v1)", "loop-r2 (v2)", "succeeded", 0.731, 0.821, 0.545, 0.52,
                 0.56, 0.037, 11.2, 11.3, seconds),
    ]


def test_table_ends_with_the_before_and_after_line():
    lines = demo.table_lines(_rows())
    assert lines[-1] == "held-out accuracy: 43.8% -> 82.1% (+38.3 points)"
    assert "demo-base (v0)" in lines[2] and "43.8%" in lines[2]  # round 0: the base model
    assert "64.7% [62.0, 67.0]" in lines[3]
    assert demo.table_lines([])[-1].startswith("-")  # no rounds: a header only


@pytest.mark.parametrize(("fmt", "magic"), [("png", b"\x89PNG"), ("svg", b"<?xml")])
def test_plot_renders(fmt, magic):
    data = plot.rounds_plot(rows=_rows(), title="demo", fmt=fmt)
    assert data.startswith(magic) and len(data) > 5000
    assert plot.rounds_plot(rows=[], fmt=fmt).startswith(magic)  # an empty project still draws


def test_beat_runs_the_two_periodic_checks():
    from types import SimpleNamespace

    from celery.beat import Scheduler

    from prefloop.celery import app
    from training.rounds import _schedule_checks, tasks

    scheduler = Scheduler(app, lazy=True)
    _schedule_checks(sender=SimpleNamespace(scheduler=scheduler))
    entries = scheduler.schedule
    assert entries["rounds-autostart-check"].task == "training.rounds.tasks.rounds_autostart_check"
    assert entries["rounds-waiting-check"].task == "training.rounds.tasks.rounds_waiting_check"
    assert set(tasks.BEAT_SCHEDULE) == {"rounds-autostart-check", "rounds-waiting-check"}
