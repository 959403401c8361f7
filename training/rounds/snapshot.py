"""A round's training data, frozen as an export snapshot the training run names by hash.

The rows come from the annotation core's exporter (``export_rows_build`` under
``ExportRules``), so aggregation, ties, gold filtering and the TRL layout are exactly
those of any export. A round narrows them in two ways the export rules cannot say:

- scope ``round``: only the rows of this round's candidates (on-policy data, as in
  RLHFlow and the demo recipe); scope ``all``: every row of the project;
- decider ``human``: where a person judged an item, only human verdicts count there;
  elsewhere the AI judge's verdicts do.

The snapshot is stored in the annotation layout (``DATA_DIR/exports/<project>/<sha256>/``
with ``data.jsonl``, dataset card and manifest), so the same data gives the same hash
and the same ``ExportSnapshot`` row.
"""

from __future__ import annotations

from dataclasses import replace

from annotation.io import writers
from annotation.io.rules import ExportRules
from annotation.models import ExportSnapshot, Feedback, Judgment
from annotation.selectors.exports import export_rows_build
from annotation.services.exports import export_snapshot_create, export_snapshot_store
from prefloop.exceptions import ApplicationError
from training.rounds import selectors
from training.rounds.models import Round

FORMAT = {"dpo": "trl-dpo-conversational", "ipo": "trl-dpo-conversational",
          "simpo": "trl-dpo-conversational", "orpo": "trl-dpo-conversational",
          "kto": "trl-kto"}
NO_ROWS = "no training rows for round {index}: {why}"


def round_rules(rnd: Round) -> ExportRules:
    thumbs = rnd.label_kind == Round.LabelKind.THUMBS
    return ExportRules(
        include_ai=rnd.labelling != Round.Labelling.HUMAN, split="train",
        kto_sources="feedback" if thumbs else "pairwise", metadata_columns=True,
    )


def round_snapshot_create(rnd: Round) -> ExportSnapshot:
    """Export the round's rows and freeze them; raises ApplicationError when there are none."""
    fmt, rules = FORMAT[rnd.algorithm], round_rules(rnd)
    if rnd.data_scope == Round.DataScope.ALL and rnd.decider == Round.Decider.VOTES:
        snap, _ = export_snapshot_create(project=rnd.project, fmt=fmt, rules=rules)
        if not snap.counts.get("rows"):
            raise ApplicationError(NO_ROWS.format(index=rnd.index, why=_why(snap.counts)))
        return snap
    rows, counts = round_rows(rnd, fmt=fmt, rules=rules)
    if not rows:
        raise ApplicationError(NO_ROWS.format(index=rnd.index, why=_why(counts)))
    return _snapshot_store(rnd, fmt=fmt, rules=rules, rows=rows, counts=counts)


def round_row_count(rnd: Round) -> int:
    """How many training rows the round's snapshot would hold now (writes nothing)."""
    fmt, rules = FORMAT[rnd.algorithm], round_rules(rnd)
    if rnd.data_scope == Round.DataScope.ALL and rnd.decider == Round.Decider.VOTES:
        rows, _ = export_rows_build(project=rnd.project, fmt=writers.FORMATS[fmt], rules=rules)
        return len(rows)
    return len(round_rows(rnd, fmt=fmt, rules=rules)[0])


def round_rows(rnd: Round, *, fmt: str, rules: ExportRules) -> tuple[list[dict], dict]:
    export_format = writers.FORMATS[fmt]
    rows, counts = export_rows_build(project=rnd.project, fmt=export_format, rules=rules)
    by_response = rnd.label_kind == Round.LabelKind.THUMBS
    key = "prefloop_response_id" if by_response else "prefloop_task_id"
    if rnd.decider == Round.Decider.HUMAN and rules.include_ai:
        human_rows, _ = export_rows_build(
            project=rnd.project, fmt=export_format, rules=replace(rules, include_ai=False)
        )
        judged = _human_judged(rnd, by_response=by_response)
        rows = [r for r in human_rows if r[key] in judged] + [
            r for r in rows if r[key] not in judged
        ]
        rows.sort(key=lambda r: (r[key], r.get("label") is False))
    if rnd.data_scope == Round.DataScope.ROUND:
        mine = (
            selectors.round_response_ids(rnd=rnd)
            if by_response
            else set(selectors.round_task_ids(rnd=rnd))
        )
        kept = [r for r in rows if r[key] in mine]
        dropped = {**counts.get("dropped", {}), "outside_round": len(rows) - len(kept)}
        rows, counts = kept, {**counts, "dropped": dropped}
    return rows, {**counts, "rows": len(rows), "round": rnd.index}


def _human_judged(rnd: Round, *, by_response: bool) -> set[int]:
    if by_response:
        verdicts = Feedback.objects.filter(response__prompt__project=rnd.project,
                                           source=Feedback.Source.HUMAN)
        return set(verdicts.values_list("response_id", flat=True))
    verdicts = Judgment.objects.filter(task__project=rnd.project, source=Judgment.Source.HUMAN)
    return set(verdicts.values_list("task_id", flat=True))


def _why(counts: dict) -> str:
    dropped = counts.get("dropped") or {}
    return ", ".join(f"{n} {reason}" for reason, n in sorted(dropped.items()) if n) or "no labels"


def _snapshot_store(
    rnd: Round, *, fmt: str, rules: ExportRules, rows: list[dict], counts: dict
) -> ExportSnapshot:
    data = writers.jsonl_bytes(rows)
    info = writers.manifest(project=rnd.project.slug, fmt=writers.FORMATS[fmt], rules=rules,
                            counts=counts, digest=writers.content_hash(data))
    info["round"] = {"index": rnd.index, "data_scope": rnd.data_scope, "decider": rnd.decider}
    snap, _ = export_snapshot_store(
        project=rnd.project, fmt=fmt, data=data, manifest=info, card=writers.dataset_card(info),
        rules={**rules.as_dict(), **info["round"]}, user=rnd.created_by,
    )
    return snap
