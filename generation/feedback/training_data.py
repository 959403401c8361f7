"""From AI feedback to training data, frozen as export snapshots a training run can name.

- **soft labels → DPO**: a judge's label gives (chosen, rejected) by its arg-max and keeps
  the probability as a column (``prefloop_probability`` = P(chosen is better),
  ``prefloop_soft_label`` = P(A is better)), so a trainer can weight or filter by it;
  labels below ``min_probability`` are dropped, and so are the unsure / order-flipped
  ones that went to humans, unless ``include_routed``. (TRL's DPO has no per-example
  soft targets; Lee et al. 2023 and Bai et al. 2022 trained on them.)
- **CAI revisions → DPO**: (revision = chosen, original = rejected), no judge needed, as in
  the open reproduction of CAI (Hugging Face H4, 2024);
- **CAI revisions → SFT**: TRL's prompt-completion rows (CAI's SL-CAI fine-tunes on them).

The ``trl-dpo`` snapshots are what ``training`` accepts for DPO-family runs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from django.contrib.auth.models import AbstractBaseUser

from annotation.io import writers
from annotation.models import ExportSnapshot, Project
from annotation.services.exports import export_snapshot_store
from generation import ownership
from generation.feedback.models import CritiqueTrace, FeedbackLabel, Judge
from prefloop.exceptions import ApplicationError, NotFoundError

FORMATS = {  # name -> (objective, conversational)
    "trl-dpo": ("dpo", False),
    "trl-dpo-conversational": ("dpo", True),
    "trl-sft": ("sft", False),
    "trl-sft-conversational": ("sft", True),
}
SOURCES = ("soft_labels", "revisions")
SPLITS = ("train", "eval", "all")


@dataclass(frozen=True)
class ConversionRules:
    source: str = "soft_labels"
    judge: str = ""
    min_probability: float = 0.5
    include_routed: bool = False
    split: str = "train"
    constitution: str = ""

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ApplicationError(f"source must be one of {', '.join(SOURCES)}")
        if self.split not in SPLITS:
            raise ApplicationError(f"split must be one of {', '.join(SPLITS)}")
        if not 0.5 <= self.min_probability <= 1:
            raise ApplicationError("min_probability must be between 0.5 and 1")
        if self.source == "soft_labels" and not self.judge:
            raise ApplicationError("soft-label exports need the judge's name")


def ai_export_create(
    *, project: Project, fmt: str, rules: ConversionRules, user: AbstractBaseUser | None = None
) -> tuple[ExportSnapshot, bool]:
    """Build the rows, hash them, and store a snapshot unless one with that hash exists."""
    if fmt not in FORMATS:
        raise ApplicationError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    objective, conversational = FORMATS[fmt]
    if rules.source == "soft_labels" and objective != "dpo":
        raise ApplicationError("soft labels give preference pairs: use a trl-dpo format")
    if rules.source == "soft_labels":
        judge = ownership.visible_get(Judge.objects.all(), name=rules.judge, project=project)
        if judge is None:
            raise NotFoundError(f"no judge named {rules.judge!r}")
        rows, counts = soft_label_rows(project=project, judge=judge, rules=rules,
                                       conversational=conversational)
    else:
        rows, counts = revision_rows(project=project, rules=rules, objective=objective,
                                     conversational=conversational)
    if not rows:
        raise ApplicationError(f"nothing to export: {json.dumps(counts['dropped'])}")
    data = writers.jsonl_bytes(rows)
    digest = writers.content_hash(data)
    info = {"prefloop_export": 1, "project": project.slug, "format": fmt,
            "trainer": "trl.DPOTrainer" if objective == "dpo" else "trl.SFTTrainer",
            "content_hash": digest, "data_file": writers.DATA_FILE, "columns": list(rows[0]),
            "rules": asdict(rules), "counts": counts}
    return export_snapshot_store(project=project, fmt=fmt, data=data, manifest=info,
                                 card=_card(info), rules=asdict(rules), user=user)


def soft_label_rows(
    *, project: Project, judge: Judge, rules: ConversionRules, conversational: bool
) -> tuple[list[dict], dict]:
    dropped: dict[str, int] = {}
    rows = []
    labels = FeedbackLabel.objects.filter(judge=judge, task__project=project).select_related(
        "task__prompt", "task__response_a", "task__response_b"
    )
    for label in labels.order_by("task_id"):
        task = label.task
        p_chosen = max(label.soft_label, 1 - label.soft_label)
        reason = _drop_reason(rules, task.prompt.split, conversational, task.prompt.messages)
        if reason is None and (label.routed or label.unsure or label.flipped):
            reason = None if rules.include_routed else "unsure_or_flipped"
        if reason is None and (label.choice == "tie" or p_chosen < rules.min_probability):
            reason = "below_min_probability"
        if reason:
            dropped[reason] = dropped.get(reason, 0) + 1
            continue
        chosen, rejected = (task.response_a, task.response_b)
        if label.choice == "b":
            chosen, rejected = rejected, chosen
        rows.append({
            "prompt": writers.prompt_value(task.prompt.messages, conversational),
            "chosen": writers.reply_value(chosen.text, conversational),
            "rejected": writers.reply_value(rejected.text, conversational),
            "prefloop_task_id": task.pk, "prefloop_probability": round(p_chosen, 6),
            "prefloop_soft_label": round(label.soft_label, 6), "prefloop_judge": judge.name,
        })
    return rows, {"rows": len(rows), "labels": labels.count(), "dropped": dropped}


def revision_rows(
    *, project: Project, rules: ConversionRules, objective: str, conversational: bool
) -> tuple[list[dict], dict]:
    traces = CritiqueTrace.objects.filter(prompt__project=project).select_related(
        "prompt", "response", "revision", "constitution_version__constitution"
    )
    if rules.constitution:
        traces = traces.filter(constitution_version__constitution__name=rules.constitution)
    dropped: dict[str, int] = {}
    rows = []
    for trace in traces.order_by("pk"):
        reason = _drop_reason(rules, trace.prompt.split, conversational, trace.prompt.messages)
        if reason is None and trace.revision is None:
            reason = "no_revision"
        if reason:
            dropped[reason] = dropped.get(reason, 0) + 1
            continue
        prompt = writers.prompt_value(trace.prompt.messages, conversational)
        revised = writers.reply_value(trace.revision.text, conversational)
        row = {"prompt": prompt, "completion": revised}
        if objective == "dpo":
            row = {"prompt": prompt, "chosen": revised,
                   "rejected": writers.reply_value(trace.response.text, conversational)}
        row.update(prefloop_trace_id=trace.pk, prefloop_task_id=trace.task_id,
                   prefloop_principles=",".join(r["principle"] for r in trace.rounds))
        rows.append(row)
    return rows, {"rows": len(rows), "traces": traces.count(), "dropped": dropped}


def _drop_reason(rules: ConversionRules, split: str, conversational: bool, messages) -> str | None:
    if rules.split != "all" and split != rules.split:
        return f"{split}_split"
    if writers.prompt_value(messages, conversational) is None:
        return writers.MULTI_TURN_PROMPT
    return None


def _card(info: dict) -> str:
    rules = "\n".join(f"| `{k}` | `{json.dumps(v)}` |" for k, v in info["rules"].items())
    dropped = "\n".join(f"  - {k}: {n}" for k, n in sorted(info["counts"]["dropped"].items()))
    return (
        f'---\npretty_name: "Prefloop AI-feedback export: {info["project"]} ({info["format"]})"\n'
        f"tags: [prefloop, trl, ai-feedback]\n---\n\n# {info['project']}: {info['format']}\n\n"
        f"Rows made from AI feedback (source `{info['rules']['source']}`) for "
        f"`{info['trainer']}`.\n\n- Content hash (sha256 of `{writers.DATA_FILE}`): "
        f"`{info['content_hash']}`\n- Rows: {info['counts']['rows']}\n- Columns: "
        f"{', '.join(f'`{c}`' for c in info['columns'])}\n\n## Rules\n\n| rule | value |\n"
        f"|---|---|\n{rules}\n\n## Dropped\n\n{dropped or '  - none'}\n\n"
        "See `docs/ai-feedback.md` in Prefloop for what the columns mean.\n"
    )
