"""Input validation for the pages' POSTs (the templates render the controls by hand,
so every control can carry its keyboard shortcut in its label)."""

from __future__ import annotations

import json

from django import forms

from annotation.io import readers, rules, writers
from annotation.io.rules import ExportRules
from annotation.services.judgments import KEY_MAX, RATIONALE_MAX
from generation.feedback.constitution import MAX_PRINCIPLES, MAX_TEXT
from training.rounds import config as round_config

SIDES = (("left", "Left better"), ("right", "Right better"), ("tie", "Tie"),
         ("both_bad", "Both bad"))


class _Verdict(forms.Form):
    rationale = forms.CharField(required=False, max_length=RATIONALE_MAX, strip=True)
    time_spent_ms = forms.IntegerField(required=False, min_value=0, max_value=2**31 - 1)
    idempotency_key = forms.CharField(required=False, max_length=KEY_MAX)


class JudgmentForm(_Verdict):
    """Choices as the annotator saw them; the service maps left/right to A/B."""

    choice = forms.ChoiceField(choices=SIDES)
    strength = forms.IntegerField(required=False, min_value=1)


class FeedbackForm(_Verdict):
    thumbs = forms.ChoiceField(choices=(("up", "Thumbs up"), ("down", "Thumbs down")))


class ImportForm(forms.Form):
    file = forms.FileField(label="File (JSONL, CSV, or a zipped save_to_disk folder)")
    format = forms.ChoiceField(choices=[(f, f) for f in readers.FORMATS], initial="auto")
    partial = forms.BooleanField(
        required=False, label="Import the good rows even if some rows are bad"
    )


class ExportForm(forms.Form):
    format = forms.ChoiceField(choices=[(f, f) for f in writers.FORMATS])
    split = forms.ChoiceField(choices=[(s, s) for s in rules.SPLITS], initial="train")
    vote = forms.ChoiceField(choices=[(v, v) for v in rules.VOTES], initial="majority")
    min_judgments = forms.IntegerField(min_value=1, initial=1)
    min_agreement = forms.FloatField(min_value=0, max_value=1, initial=0.0)
    ties = forms.ChoiceField(choices=[(t, t) for t in rules.TIES], initial="drop")
    both_bad = forms.ChoiceField(choices=[(b, b) for b in rules.BOTH_BAD], initial="drop")
    include_ai = forms.BooleanField(required=False, initial=True, label="Count AI-judge verdicts")
    include_imported = forms.BooleanField(
        required=False, initial=True, label="Count imported verdicts"
    )

    def export_rules(self) -> ExportRules:
        data = {k: v for k, v in self.cleaned_data.items() if k != "format"}
        return ExportRules.from_dict(data)


class RoundStartForm(forms.Form):
    """The owner's "Start a round" form; ``round_settings`` builds the validated
    ``RoundSettings`` (its errors, and the service's, are shown as the form's)."""

    policy = forms.ChoiceField(
        required=False, label="Start from model",
        help_text="Default: the model the last round made (needed for a first round).",
    )
    algorithm = forms.ChoiceField(choices=[(a, a) for a in round_config.ALGORITHMS])
    labelling = forms.ChoiceField(
        choices=[(v, v) for v in round_config.LABELLINGS], initial="programmatic"
    )
    judge = forms.CharField(
        required=False, max_length=300, label="Judge spec (optional)",
        help_text="Empty: the labelling's default judge, e.g. "
                  f"{round_config.DEFAULT_JUDGE['programmatic']}.",
    )
    reference = forms.ChoiceField(
        choices=[(r, r) for r in round_config.REFERENCES], initial="previous"
    )
    rounds = forms.IntegerField(min_value=1, max_value=5, initial=1, label="Rounds in a chain")
    min_pairs = forms.IntegerField(
        required=False, min_value=0, initial=0, label="Minimum training pairs",
        help_text="Fewer: a human-labelled round waits for more verdicts; others fail.",
    )
    samples = forms.IntegerField(min_value=0, max_value=64, initial=4, label="Samples per prompt")
    hyperparameters = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        label="Hyperparameters (JSON object)", help_text='e.g. {"lr": 5e-6, "epochs": 1}',
    )

    def __init__(self, *args, policies: list[str] = (), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["policy"].choices = [("", "— the last round's model —")] + [
            (name, name) for name in policies
        ]

    def clean_hyperparameters(self) -> dict:
        text = (self.cleaned_data.get("hyperparameters") or "").strip()
        if not text:
            return {}
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"not valid JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise forms.ValidationError("must be a JSON object")
        return value

    def round_settings(self) -> round_config.RoundSettings:
        """Raises ``ApplicationError`` on a combination ``RoundSettings`` refuses."""
        data = {k: v for k, v in self.cleaned_data.items() if k != "policy"}
        data["min_pairs"] = data.get("min_pairs") or 0
        return round_config.RoundSettings.from_dict(data)


class ConstitutionVersionForm(forms.Form):
    """The note of a new constitution version; its principles come from ``PrincipleGroups``."""

    note = forms.CharField(
        required=False, max_length=MAX_TEXT, label="What changed (note)",
        widget=forms.Textarea(attrs={"rows": 2}),
    )


class ConstitutionCreateForm(ConstitutionVersionForm):
    name = forms.SlugField(
        max_length=100, label="Name",
        help_text="Lower-case letters, digits, '-' or '_'; it cannot be changed later.",
    )
    description = forms.CharField(
        required=False, max_length=MAX_TEXT, widget=forms.Textarea(attrs={"rows": 2})
    )
    field_order = ["name", "description", "note"]


PRINCIPLE_TEXTS = (("critique_request", "Critique request"),
                   ("revision_request", "Revision request"),
                   ("comparison_question", "Comparison question"))
REQUIRED = "Required (clear all of this principle's fields to remove it)."


class PrincipleForm(forms.Form):
    """One principle's controls (prefix ``p<i>``). All blank (the weight aside) means
    "no principle here": an empty group adds nothing and a cleared one is removed."""

    key = forms.CharField(required=False, max_length=60, label="Key",
                          help_text="Lower-case letters, digits, '-' or '_'.")
    name = forms.CharField(required=False, max_length=100, label="Name")
    critique_request = forms.CharField(
        required=False, max_length=MAX_TEXT, label="Critique request",
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    revision_request = forms.CharField(
        required=False, max_length=MAX_TEXT, label="Revision request",
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    comparison_question = forms.CharField(
        required=False, max_length=MAX_TEXT, label="Comparison question",
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    weight = forms.FloatField(required=False, min_value=0, max_value=100, label="Weight",
                              help_text="Relative sampling weight; empty means 1.")

    CONTENT = ("key", "name", "critique_request", "revision_request", "comparison_question")

    @property
    def blank(self) -> bool:
        source = self.data if self.is_bound else self.initial
        key = self.add_prefix if self.is_bound else (lambda f: f)
        return not any(str(source.get(key(f)) or "").strip() for f in self.CONTENT)

    def clean(self) -> dict:
        data = super().clean()
        if not self.blank:
            for field in ("key", "critique_request", "revision_request", "comparison_question"):
                if field not in self.errors and not (data.get(field) or "").strip():
                    self.add_error(field, REQUIRED)
        return data

    def principle(self) -> dict:
        data = self.cleaned_data
        item = {f: data[f].strip() for f in self.CONTENT}
        if data.get("weight") is not None:
            item["weight"] = data["weight"]
        return item

    def raw(self) -> dict:
        """The values as posted, to show them again unvalidated."""
        return {f: self.data.get(self.add_prefix(f), "") for f in self.fields}


class PrincipleGroups:
    """The principle forms of one page: the given principles plus an empty one to add,
    or, bound, as many as the posted ``principle_count`` says."""

    COUNT = "principle_count"

    def __init__(self, data=None, *, initial: list[dict] = (), extra: int = 1) -> None:
        if data is None:
            rows = [*initial, *({} for _ in range(extra))]
            self.forms = [PrincipleForm(prefix=f"p{i}", initial=row) for i, row in enumerate(rows)]
            return
        try:
            count = int(data.get(self.COUNT) or 0)
        except ValueError:
            count = 0
        count = max(0, min(count, MAX_PRINCIPLES + 1))
        self.forms = [PrincipleForm(data, prefix=f"p{i}") for i in range(count)]

    @classmethod
    def redisplay(cls, data, *, extra: int = 1) -> PrincipleGroups:
        """The posted groups again, unvalidated, with ``extra`` empty ones after them."""
        return cls(initial=[form.raw() for form in cls(data).forms], extra=extra)

    @property
    def count(self) -> int:
        return len(self.forms)

    def is_valid(self) -> bool:
        return all([form.is_valid() for form in self.forms])

    def principles(self) -> list[dict]:
        return [form.principle() for form in self.forms if not form.blank]

    def __iter__(self):
        return iter(self.forms)
