"""Agreement, bias, time and gold numbers against hand-worked cases and the libraries."""

import krippendorff
import numpy as np
import pytest
from scipy import stats
from statsmodels.stats import inter_rater

from annotation.selectors import agreement, quality
from annotation.selectors.agreement import PAIRWISE_CATEGORIES, Verdict
from annotation.services.judgments import feedback_submit, judgment_submit
from tests.annotation import (
    binary_tasks_build,
    member_add,
    pairwise_tasks_build,
    project_build,
    user_build,
)


def _v(task, who, category, strength=1, shown_left="a", ms=None, gold=""):
    return Verdict(task, who, f"u{who}", category, strength, shown_left, ms, bool(gold), gold)


def test_ordinal_scale():
    values = [
        agreement.ordinal_value(choice=c, strength=s)
        for c, s in [("a", 3), ("a", 1), ("tie", 0), ("b", 2), ("both_bad", 0)]
    ]
    assert values == [3, 1, 0, -2, None]


def test_nominal_alpha_by_hand():
    """Two coders, four units: [a,a,b,b] and [a,a,b,a].

    Coincidences: o_aa = 4, o_bb = 2, o_ab = o_ba = 1; n_a = 5, n_b = 3, n = 8.
    D_o = 2/8, D_e = 2*5*3/(8*7) = 30/56, alpha = 1 - (2/8)/(30/56) = 8/15.
    """
    units = [(1, "a"), (1, "a"), (2, "a"), (2, "a"), (3, "b"), (3, "b"), (4, "b"), (4, "a")]
    alpha = agreement.krippendorff_alpha(units=units, domain=("a", "b"), level="nominal")
    assert alpha == pytest.approx(8 / 15)


def test_ordinal_alpha_matches_the_library_and_skips_both_bad():
    coders = [[2, 1, 0, -1, -2, 1], [2, 1, 0, -2, -1, None], [1, 1, 0, -1, -2, 2]]
    units = [(u, row[u]) for row in coders for u in range(6)]
    ours = agreement.krippendorff_alpha(units=units, domain=range(-2, 3), level="ordinal")
    data = np.array([[np.nan if v is None else v for v in row] for row in coders], dtype=float)
    expected = krippendorff.alpha(
        reliability_data=data, level_of_measurement="ordinal", value_domain=list(range(-2, 3))
    )
    assert ours == pytest.approx(expected)


def test_undefined_alpha_is_none():
    units = [(1, "a"), (1, "a")]
    assert agreement.krippendorff_alpha(units=units, domain=("a", "b"), level="nominal") is None
    assert (
        agreement.krippendorff_alpha(units=[(1, "a")], domain=("a", "b"), level="nominal") is None
    )


def test_fleiss_by_hand_uses_tasks_with_the_common_rater_count():
    """Subjects [2,0], [0,2], [1,1] with 2 raters: P = 2/3, P_e = 1/2, kappa = 1/3.
    A fourth task with three raters is left out (Fleiss needs equal counts)."""
    units = [
        (1, "a"),
        (1, "a"),
        (2, "b"),
        (2, "b"),
        (3, "a"),
        (3, "b"),
        (4, "a"),
        (4, "a"),
        (4, "b"),
    ]
    kappa, n_tasks, n_raters = agreement.fleiss_kappa(units=units, categories=("a", "b"))
    assert (n_tasks, n_raters) == (3, 2)
    assert kappa == pytest.approx(1 / 3)
    table = np.array([[2, 0], [0, 2], [1, 1]])
    assert kappa == pytest.approx(inter_rater.fleiss_kappa(table))


def test_cohen_by_hand():
    """[a,a,b,b] vs [a,a,b,a]: p_o = 3/4, p_e = .5*.75 + .5*.25 = .5, kappa = 1/2."""
    verdicts = [_v(t, 1, c) for t, c in enumerate("aabb")] + [
        _v(t, 2, c) for t, c in enumerate("aaba")
    ]
    (pair,) = agreement.cohen_kappa_pairs(verdicts=verdicts, categories=("a", "b"))
    assert (pair.annotator_a, pair.annotator_b, pair.n_common) == ("u1", "u2", 4)
    assert pair.kappa == pytest.approx(0.5)


def test_leave_one_out_consensus():
    """Task 1: a, a, b. Task 2: a, a, a. The first two annotators face a 1-1 split on
    task 1 (no consensus); the third is outvoted there and agrees on task 2."""
    verdicts = [
        _v(1, 1, "a"),
        _v(1, 2, "a"),
        _v(1, 3, "b"),
        _v(2, 1, "a"),
        _v(2, 2, "a"),
        _v(2, 3, "a"),
    ]
    assert agreement.consensus_agreement(verdicts=verdicts) == {1: (1, 1), 2: (1, 1), 3: (1, 2)}


def test_position_bias_binomial_test():
    """9 of 10 decisive picks on the left: two-sided p = 2 * 11/1024."""
    verdicts = [_v(t, 1, "a", shown_left="a") for t in range(9)]
    verdicts += [_v(9, 1, "a", shown_left="b"), _v(10, 1, "tie"), _v(11, 1, "both_bad")]
    overall, row = quality.position_bias(verdicts=verdicts)
    assert overall.username == "(all)"
    assert (row.n_decisive, row.left_picks, row.left_share) == (10, 9, 0.9)
    assert row.p_value == pytest.approx(22 / 1024)
    assert row.p_value == pytest.approx(stats.binomtest(9, 10).pvalue)


def test_time_on_task_and_gold():
    verdicts = [
        _v(t, 1, "a", ms=ms, gold="a" if t < 2 else "")
        for t, ms in enumerate([100, 200, 300, 400, 500])
    ]
    verdicts += [_v(0, 2, "b", ms=1000, gold="a"), _v(1, 2, "a", gold="a")]
    times = quality.time_on_task(verdicts=verdicts, kind="pairwise")
    assert times[0].username == "(all)" and times[0].n == 6
    mine = next(row for row in times if row.username == "u1")
    assert (mine.n, mine.median_ms, mine.mean_ms, mine.p10_ms, mine.p90_ms) == (
        5,
        300,
        300,
        140,
        460,
    )
    gold = {
        row.username: (row.n_gold, row.n_correct, row.accuracy)
        for row in quality.gold_accuracy(verdicts=verdicts)
    }
    assert gold == {"u1": (2, 2, 1.0), "u2": (2, 1, 0.5)}


@pytest.mark.django_db
def test_quality_report_from_stored_judgments():
    owner = user_build("owner")
    project = project_build(owner=owner, overlap=3, binary_enabled=True)
    users = [user_build(f"ann{i}") for i in range(3)]
    for user in users:
        member_add(project=project, user=user)
    tasks = pairwise_tasks_build(project=project, n=4)
    choices = [  # rows: annotators; columns: tasks; (choice, strength)
        [("a", 2), ("b", 1), ("tie", 0), ("a", 1)],
        [("a", 1), ("b", 2), ("a", 1), ("both_bad", 0)],
        [("a", 2), ("a", 1), ("tie", 0), ("a", 1)],
    ]
    for user, row in zip(users, choices, strict=True):
        for task, (choice, strength) in zip(tasks, row, strict=True):
            judgment_submit(
                task=task, annotator=user, choice=choice, strength=strength or 1, time_spent_ms=1000
            )
    (thumbs_task,) = binary_tasks_build(project=project, n=1)
    for user, up in zip(users, (True, True, False), strict=True):
        feedback_submit(task=thumbs_task, annotator=user, thumbs_up=up)

    report = quality.quality_report(project=project)

    signed = [[agreement.ordinal_value(choice=c, strength=s) for c, s in row] for row in choices]
    data = np.array([[np.nan if v is None else v for v in row] for row in signed], dtype=float)
    expected_alpha = krippendorff.alpha(
        reliability_data=data, level_of_measurement="ordinal", value_domain=list(range(-3, 4))
    )
    assert report.pairwise.alpha_ordinal == pytest.approx(expected_alpha)
    assert report.pairwise.both_bad_excluded == 1
    index = {c: k for k, c in enumerate(PAIRWISE_CATEGORIES)}
    codes = np.array([[index[c] for c, _ in row] for row in choices]).T  # (tasks, raters)
    table, _ = inter_rater.aggregate_raters(codes, n_cat=4)
    assert report.pairwise.fleiss_kappa == pytest.approx(inter_rater.fleiss_kappa(table))
    assert (report.pairwise.fleiss_n_tasks, report.pairwise.fleiss_n_raters) == (4, 3)
    assert len(report.pairwise.pairs) == 3
    assert report.binary.n_verdicts == 3 and report.binary.alpha_ordinal is None
    assert [row.username for row in report.pairwise.annotators] == ["ann0", "ann1", "ann2"]
    assert report.time_on_task[0].median_ms == 1000
    shares = agreement.task_majority_shares(project=project)
    assert shares[tasks[0].pk] == 1.0 and shares[tasks[3].pk] == pytest.approx(2 / 3)
