"""The trust report against hand-worked numbers (six labels, five tasks with human verdicts).

    task  P(A)  A first  A second  humans  judge  notes
    t0    0.90  0.90     0.90      a a     a      agrees
    t1    0.80  0.85     0.75      a b     a      humans split: not compared
    t2    0.30  0.20     0.40      b b     b      agrees
    t3    0.70  0.80     0.60      b b     a      disagrees
    t4    0.55  0.90     0.20      a a     a      flipped (first slot), unsure
    t5    0.35  0.10     0.60      -       b      flipped (second slot), no humans: routed

Compared t0, t2, t3, t4: agreement 3/4. Kappa: p_o = 3/4, judge marginals (3/4, 1/4),
human (1/2, 1/2), p_e = 1/2, kappa = (3/4 - 1/2) / (1/2) = 1/2. Per verdict: 7 of 10.
ECE = (0.1 + 0.3 + 0.7 + 0.45) / 4 = 0.3875; Brier = (0.01 + 0.09 + 0.49 + 0.2025) / 4.
Position: 2 of 6 flipped (consistency 4/6). Humans agree on 4 of their 5 pairs.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from annotation.services.judgments import judgment_submit
from annotation.services.projects import project_create
from generation.feedback import store, trust
from generation.feedback.judges import PairLabel
from generation.feedback.judges.base import confidence_of
from generation.feedback.services import judges
from tests.support.feedback import DEMO_JUDGE, demo_pairs, human

pytestmark = pytest.mark.django_db
ROWS = [
    (0.90, 0.90, 0.90, "aa"), (0.80, 0.85, 0.75, "ab"), (0.30, 0.20, 0.40, "bb"),
    (0.70, 0.80, 0.60, "bb"), (0.55, 0.90, 0.20, "aa"), (0.35, 0.10, 0.60, ""),
]


@pytest.fixture
def report_setup(make_user):
    owner = make_user("owner")
    project = project_create(slug="trust", owner=owner)
    tasks = [p.task for p in demo_pairs(project, count=6, mixed_only=True, overlap=5)]
    people = [human("h1", project), human("h2", project)]
    judge = judges.judge_from_spec(spec=DEMO_JUDGE)
    for task, (p_a, first, second, choices) in zip(tasks, ROWS, strict=True):
        for person, choice in zip(people, choices, strict=False):
            judgment_submit(annotator=person, task=task, choice=choice)
        label = PairLabel(p_a=p_a, confidence=confidence_of(p_a), p_a_first=first,
                          p_a_second=second, principles=("honesty",))
        store.label_record(judge=judge, task=task, label=label, job=None)
    return project, judge, owner, people


def test_trust_report_by_hand(report_setup):
    project, judge, _, _ = report_setup
    r = trust.judge_trust_report(project=project, judge=judge)
    assert (r.labels, r.unsure, r.flipped, r.routed) == (6, 1, 2, 1)
    assert (r.compared, r.human_undecided) == (4, 1)
    assert r.agreement == pytest.approx(0.75)
    assert (r.agreement_confident, r.confident_compared) == (pytest.approx(2 / 3), 3)
    assert r.agreement_per_verdict == pytest.approx(0.7)
    assert r.kappa == pytest.approx(0.5)
    assert r.confusion["a"] == {"a": 2, "b": 1, "tie": 0, "both_bad": 0, "split": 1}
    assert r.confusion["b"]["b"] == 1 and sum(r.confusion["tie"].values()) == 0
    filled = {round(b.low, 1): (b.n, b.mean_soft_label, b.human_chose_a)
              for b in r.calibration if b.n}
    assert filled == {0.9: (1, 0.9, 1.0), 0.3: (1, 0.3, 0.0), 0.7: (1, 0.7, 0.0),
                      0.5: (1, 0.55, 1.0)}
    assert r.expected_calibration_error == pytest.approx(0.3875)
    assert r.brier_score == pytest.approx(0.7925 / 4)
    assert r.two_order_labels == 6
    assert r.position_consistency == pytest.approx(4 / 6)
    assert r.position_bias == pytest.approx(2 / 6)
    assert (r.preferred_first_slot, r.preferred_second_slot) == (1, 1)
    assert (r.human_agreement, r.human_pairs) == (pytest.approx(0.8), 5)
    assert r.reference["ai_human_agreement_best"] == 0.78


def test_trust_report_api_and_command(report_setup, capsys):
    project, judge, owner, people = report_setup
    client = APIClient()
    url = f"/api/projects/{project.slug}/judges/{judge.name}/trust"
    client.force_authenticate(people[0])
    assert client.get(url).status_code == 403
    client.force_authenticate(owner)
    body = client.get(url).json()
    assert body["agreement"] == pytest.approx(0.75) and body["kappa"] == pytest.approx(0.5)
    assert client.get(f"/api/projects/{project.slug}/judges/nobody/trust").status_code == 404
    call_command("judge_trust", project=project.slug, judge=judge.name)
    out = capsys.readouterr().out
    assert "agreement 75.0%" in out and "Cohen's kappa 0.500" in out
    assert "position bias 33.3%" in out


def test_a_judge_without_labels_reports_nothing_to_compare(make_user):
    project = project_create(slug="empty", owner=make_user("owner"))
    r = trust.judge_trust_report(project=project, judge=judges.judge_from_spec(spec=DEMO_JUDGE))
    assert (r.labels, r.compared, r.agreement, r.kappa, r.position_bias) == (0, 0, None, None, None)
