"""How far to trust a judge: its labels against human verdicts on the same comparisons.

- **agreement**: the judge's choice (a / b) equals the human majority, over the tasks
  whose humans settled on a or b (ties, both-bad and split votes are counted apart);
  RLAIF's best labeler agreed with humans 78 % of the time, humans with each other
  73-77 % (Lee et al. 2023, Table 2 and §4.3);
- **Cohen's kappa** of judge vs human majority (agreement beyond chance);
- **confusion**: judge choice x human majority (a, b, tie, both_bad);
- **calibration**: soft labels in bins against how often humans chose A: a 0.8 label is
  calibrated when humans pick A 80 % of the time (plus ECE and Brier score);
- **position consistency**: of the judge's two-order labels, the share whose two reads
  pick the same response; the rest picked the same *slot* (RLAIF's position bias: 18 %
  for its large labeler, 56 % for the smallest), split into first / second slot.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass

from annotation.models import Judgment, Project
from annotation.selectors.agreement import Verdict, cohen_kappa_pairs
from generation.feedback.models import FeedbackLabel, Judge

CATEGORIES = ("a", "b", "tie", "both_bad")
REFERENCE = {
    "source": "Lee et al. 2023 (RLAIF), arXiv:2309.00267",
    "ai_human_agreement_best": 0.78,
    "human_human_agreement": [0.73, 0.77],
    "position_bias_large_labeler": 0.18,
    "position_bias_smallest_labeler": 0.56,
}


@dataclass(frozen=True)
class CalibrationBin:
    low: float
    high: float
    n: int
    mean_soft_label: float | None
    human_chose_a: float | None


@dataclass(frozen=True)
class TrustReport:
    judge: str
    method: str
    labels: int
    unsure: int
    flipped: int
    routed: int
    compared: int
    human_undecided: int
    agreement: float | None
    agreement_confident: float | None
    confident_compared: int
    agreement_per_verdict: float | None
    kappa: float | None
    confusion: dict[str, dict[str, int]]
    calibration: list[CalibrationBin]
    expected_calibration_error: float | None
    brier_score: float | None
    two_order_labels: int
    position_consistency: float | None
    position_bias: float | None
    preferred_first_slot: int
    preferred_second_slot: int
    human_agreement: float | None
    human_pairs: int
    reference: dict

    def as_dict(self) -> dict:
        return asdict(self)


def judge_trust_report(*, project: Project, judge: Judge, bins: int = 10) -> TrustReport:
    labels = list(FeedbackLabel.objects.filter(judge=judge, task__project=project))
    humans = _human_choices(project=project, task_ids=[label.task_id for label in labels])
    majorities = {task: _majority(choices) for task, choices in humans.items()}
    compared = [x for x in labels if majorities.get(x.task_id) in ("a", "b")]
    confident = [x for x in compared if not (x.unsure or x.flipped)]
    two_order = [x for x in labels if x.p_a_first is not None and x.p_a_second is not None]
    flipped = [x for x in two_order if x.flipped]
    verdicts = [(x.choice, c) for x in labels for c in humans.get(x.task_id, []) if c in ("a", "b")]
    calibration, ece, brier = _calibration(compared, majorities, bins)
    return TrustReport(
        judge=judge.name, method=judge.kind, labels=len(labels),
        unsure=sum(x.unsure for x in labels), flipped=sum(x.flipped for x in labels),
        routed=sum(x.routed for x in labels), compared=len(compared),
        human_undecided=sum(1 for x in labels if x.task_id in humans) - len(compared),
        agreement=_share(x.choice == majorities[x.task_id] for x in compared),
        agreement_confident=_share(x.choice == majorities[x.task_id] for x in confident),
        confident_compared=len(confident),
        agreement_per_verdict=_share(judge_choice == human for judge_choice, human in verdicts),
        kappa=_kappa(compared, majorities), confusion=_confusion(labels, majorities),
        calibration=calibration, expected_calibration_error=ece, brier_score=brier,
        two_order_labels=len(two_order),
        position_consistency=_share(not x.flipped for x in two_order),
        position_bias=_share(x.flipped for x in two_order),
        preferred_first_slot=sum(1 for x in flipped if x.p_a_first > 0.5),
        preferred_second_slot=sum(1 for x in flipped if x.p_a_first < 0.5),
        **_human_agreement(humans), reference=REFERENCE,
    )


def _human_choices(*, project: Project, task_ids: list[int]) -> dict[int, list[str]]:
    choices: dict[int, list[str]] = defaultdict(list)
    rows = Judgment.objects.filter(
        task__project=project, task_id__in=task_ids, source=Judgment.Source.HUMAN
    ).values_list("task_id", "choice")
    for task_id, choice in rows:
        choices[task_id].append(choice)
    return dict(choices)


def _majority(choices: list[str]) -> str | None:
    """The most common human answer, or None on an even split between the top answers."""
    ranked = Counter(choices).most_common()
    if not ranked or (len(ranked) > 1 and ranked[0][1] == ranked[1][1]):
        return None
    return ranked[0][0]


def _share(flags) -> float | None:
    flags = list(flags)
    return sum(flags) / len(flags) if flags else None


def _kappa(compared: list[FeedbackLabel], majorities: dict[int, str | None]) -> float | None:
    verdicts = []
    for label in compared:
        for who, category in ((0, label.choice), (1, majorities[label.task_id])):
            verdicts.append(Verdict(label.task_id, who, ("judge", "humans")[who], category,
                                    1, "a", None, False, ""))
    pairs = cohen_kappa_pairs(verdicts=verdicts, categories=("a", "b", "tie"), min_common=2)
    return pairs[0].kappa if pairs else None


def _confusion(labels: list[FeedbackLabel], majorities: dict) -> dict[str, dict[str, int]]:
    table = {choice: dict.fromkeys((*CATEGORIES, "split"), 0) for choice in ("a", "b", "tie")}
    for label in labels:
        if label.task_id in majorities:
            table[label.choice][majorities[label.task_id] or "split"] += 1
    return table


def _calibration(
    compared: list[FeedbackLabel], majorities: dict, bins: int
) -> tuple[list[CalibrationBin], float | None, float | None]:
    rows: list[list[tuple[float, float]]] = [[] for _ in range(bins)]
    for label in compared:
        outcome = 1.0 if majorities[label.task_id] == "a" else 0.0
        rows[min(int(label.soft_label * bins), bins - 1)].append((label.soft_label, outcome))
    table, gap = [], 0.0
    for i, row in enumerate(rows):
        mean_p = sum(p for p, _ in row) / len(row) if row else None
        observed = sum(y for _, y in row) / len(row) if row else None
        if row:
            gap += len(row) * abs(mean_p - observed)
        table.append(CalibrationBin(round(i / bins, 4), round((i + 1) / bins, 4), len(row),
                                    mean_p, observed))
    n = len(compared)
    brier = sum((p - y) ** 2 for row in rows for p, y in row) / n if n else None
    return table, (gap / n if n else None), brier


def _human_agreement(humans: dict[int, list[str]]) -> dict:
    """Share of agreeing pairs among two humans' verdicts on the same task."""
    agree = pairs = 0
    for choices in humans.values():
        counts = Counter(choices)
        n = len(choices)
        pairs += n * (n - 1) // 2
        agree += sum(c * (c - 1) // 2 for c in counts.values())
    return {"human_agreement": agree / pairs if pairs else None, "human_pairs": pairs}
