"""How far to trust an AI judge: its labels against human verdicts on the same comparisons.

    python manage.py judge_trust --project demo --judge constitutional-demo-base-...
    python manage.py judge_trust --project demo --judge NAME --json

See docs/ai-feedback.md ("Reading the trust report").
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from annotation.models import Project
from generation.feedback import selectors, trust
from prefloop.exceptions import ApplicationError


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


class Command(BaseCommand):
    help = "Judge-vs-human agreement, Cohen's kappa, confusion, calibration and position bias."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True)
        parser.add_argument("--judge", required=True, help="Judge name.")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args, **o) -> None:
        project = Project.objects.filter(slug=o["project"]).first()
        if project is None:
            raise CommandError(f"no project {o['project']!r}")
        try:
            judge = selectors.judge_get(name=o["judge"], project=project)
            report = trust.judge_trust_report(project=project, judge=judge)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        if o["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
            return
        kappa = "n/a" if report.kappa is None else f"{report.kappa:.3f}"
        lines = [
            f"judge {report.judge} ({report.method}): {report.labels} labels, "
            f"{report.unsure} unsure, {report.flipped} flipped, {report.routed} routed to humans",
            f"compared with a human majority: {report.compared} "
            f"(+{report.human_undecided} where humans chose tie / both bad / split)",
            f"agreement {_pct(report.agreement)} (confident labels only: "
            f"{_pct(report.agreement_confident)} of {report.confident_compared}); "
            f"Cohen's kappa {kappa}; humans with each other {_pct(report.human_agreement)}",
            f"position consistency {_pct(report.position_consistency)}, position bias "
            f"{_pct(report.position_bias)} (first slot {report.preferred_first_slot}, "
            f"second slot {report.preferred_second_slot}) over {report.two_order_labels} labels",
            f"calibration: ECE {_pct(report.expected_calibration_error)}",
            *[f"  P(A) {b.low:.1f}-{b.high:.1f}: n={b.n}, humans chose A "
              f"{_pct(b.human_chose_a)}" for b in report.calibration if b.n],
            "RLAIF for scale: best AI labeler 78% agreement (humans 73-77%); "
            "position bias 18% (large) to 56% (smallest labeler).",
        ]
        self.stdout.write("\n".join(lines))
